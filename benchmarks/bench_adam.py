"""Adam's update with subnormal moments, flushed (the default) and not.

The moments of a parameter whose gradient stays 0 (a dead relu unit's
weights) decay into the subnormal range; arithmetic on subnormals is slow on
x86.  ``_optim.adam_update`` stores a moment as 0 once it is below the
smallest normal number.  This times one Adam update of every parameter of a
784-256-128-10 network (``Trainer.apply_gradients``, 235,146 parameters)
from a state of normal moments and from one whose moments are subnormal
(all of them, or a fraction), with zero gradients (a dead unit's), with the
flush on (``_flush_below`` = the smallest normal) and off (0).  Variants are
interleaved round by round (A B A B ...); each round times ``--steps``
updates from a freshly set state, and the table gives the median and the
spread (min-max) over rounds.

    python benchmarks/bench_adam.py [--dtypes float32,float64] [--rounds 7]

Targets: flushed, subnormal state / normal state ~ 1.0 (<= 1.1).  Without
the flush the ratio shows what the flush saves on this CPU.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cysoftmax._engine import Trainer

SIZES = [784, 256, 128, 10]


def make(dtype):
    rng = np.random.default_rng(0)
    coefs = [rng.uniform(-0.1, 0.1, (a, b)).astype(dtype) for a, b in zip(SIZES[:-1], SIZES[1:])]
    ints = [rng.uniform(-0.1, 0.1, b).astype(dtype) for b in SIZES[1:]]
    return Trainer(coefs, ints, 128, "relu", "adam", 0.0, 1e-3), coefs, ints


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=30, help="updates per timed round")
    ap.add_argument("--fractions", default="1.0,0.05",
                    help="shares of the moments that are subnormal")
    args = ap.parse_args(argv)
    threadpool_limits(limits=1)
    print(f"load average {os.getloadavg()[0]:.2f}; one Adam update of "
          f"{'-'.join(map(str, SIZES))} (235,146 parameters), zero gradients; "
          f"{args.rounds} rounds of {args.steps} updates, interleaved\n")
    print("| dtype | subnormal share | flush | normal state us | subnormal state us "
          "| subnormal / normal |")
    print("|:--|--:|:--|--:|--:|--:|")
    verdicts = []
    for dtype in [np.dtype(d) for d in args.dtypes.split(",")]:
        tr, coefs, ints = make(dtype)
        tiny = tr._flush_below
        zeros = ([np.zeros_like(c) for c in coefs], [np.zeros_like(b) for b in ints])
        st = tr.optimizer_state
        rng = np.random.default_rng(1)
        masks = {f: [rng.random(a.shape) < f for a in st["ms"]]
                 for f in (float(x) for x in args.fractions.split(","))}

        def set_state(mask):
            for a, m in zip(st["ms"] + st["vs"], masks_all(mask)):
                a[...] = 1e-3
                if m is not None:
                    a[m] = tiny / 8          # subnormal (not 0 after a step either)

        def masks_all(mask):
            return (mask or [None] * len(st["ms"])) * 2

        def timed(mask):
            set_state(mask)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                tr.apply_gradients(*zeros)
            return (time.perf_counter() - t0) / args.steps

        for frac, mask in masks.items():
            times = {}
            for _ in range(args.rounds):
                for flush in (tiny, 0.0):
                    tr._flush_below = flush
                    for state in ("normal", "subnormal"):
                        times.setdefault((flush > 0, state), []).append(
                            timed(None if state == "normal" else mask))
            tr._flush_below = tiny
            for flush in (True, False):
                a, b = times[(flush, "normal")], times[(flush, "subnormal")]
                ratio = statistics.median(b) / statistics.median(a)
                print(f"| {dtype.name} | {frac:g} | {'on' if flush else 'off'} "
                      f"| {statistics.median(a) * 1e6:.0f} ({min(a) * 1e6:.0f}-{max(a) * 1e6:.0f}) "
                      f"| {statistics.median(b) * 1e6:.0f} ({min(b) * 1e6:.0f}-{max(b) * 1e6:.0f}) "
                      f"| {ratio:.2f} |", flush=True)
                if flush:
                    verdicts.append((f"{dtype.name}, {frac:g} subnormal, flushed: "
                                     f"subnormal/normal = {ratio:.2f} (target <= 1.1)",
                                     ratio <= 1.1))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}\ntargets:")
    for text, ok in verdicts:
        print(f"  [{'met' if ok else 'NOT met'}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
