"""The row kernels before and after a change, ABAB, in fresh processes.

Two Python interpreters are given, each importing its own build of
cysoftmax (for instance two virtual environments with editable installs of
two commits).  Each round starts one process per side, in alternating
order; a process times every case (`best_time_ns`: the minimum over
repeats of a call's time, one thread) and reports ns per element.  The
script prints, per case, the median over rounds of each side, the median of
the paired ratios after/before (the two processes of a round ran back to
back, so the VM's load cancels best there) with their min..max, and a flag
where the paired median exceeds --limit (default 1.05: "no kernel more than
5% slower").

    python benchmarks/bench_kernels_ab.py --before /venv_old/bin/python \\
        --after /venv_new/bin/python [--rounds 6] [--markdown]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, shape, dtype): the kernels' benchmark shapes (bench_kernels.py) plus
# the small-m block path at its two typical sizes
SHAPES = [((4096, 1000), "float32"), ((4096, 1000), "float64"),
          ((256, 32000), "float32"), ((256, 32000), "float64"),
          ((60000, 10), "float32"), ((60000, 10), "float64"),
          ((128, 10), "float32"), ((128, 10), "float64")]

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from _common import best_time_ns
import numpy as np
from threadpoolctl import threadpool_limits
import cysoftmax as cs
shapes = json.loads(sys.argv[2])
out = {}
with threadpool_limits(limits=1):
    for shape, dt in shapes:
        rng = np.random.default_rng(0)
        z = (rng.standard_normal(shape) * 3).astype(dt)
        y = rng.integers(0, shape[1], shape[0])
        w = rng.random(shape[0])
        o = np.empty_like(z)
        size = z.size
        cases = {
            "softmax": lambda: cs.softmax(z, out=o),
            "log_softmax": lambda: cs.log_softmax(z, out=o),
            "logsumexp": lambda: cs.logsumexp(z),
            "nll+grad (mean)": lambda: cs.nll_loss_and_gradient(z, y),
            "nll+grad (weights, none)": lambda: cs.nll_loss_and_gradient(
                z, y, sample_weight=w, reduction="none", out=o),
            "nll (mean)": lambda: cs.nll_loss(z, y),
        }
        for name, fn in cases.items():
            t = best_time_ns(fn, target_ms=40.0, repeats=5, warmup_ms=10.0)
            out[f"{name} {dt} {shape[0]}x{shape[1]}"] = t / size
print(json.dumps(out))
"""


def run_side(python, shapes):
    res = subprocess.run([python, "-c", CHILD, HERE, json.dumps(shapes)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="python of the build before")
    p.add_argument("--after", required=True, help="python of the build after")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--limit", type=float, default=1.05)
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    shapes = [[list(s), d] for s, d in SHAPES]
    runs = {"before": [], "after": []}
    for r in range(a.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for side in order:
            runs[side].append(run_side(getattr(a, side), shapes))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    keys = list(runs["before"][0])
    rows = []
    worst = 0.0
    for k in keys:
        b = [x[k] for x in runs["before"]]
        f = [x[k] for x in runs["after"]]
        pairs = [fa / ba for fa, ba in zip(f, b)]
        med = statistics.median(pairs)
        worst = max(worst, med)
        flag = "  SLOWER" if med > a.limit else ""
        rows.append((k, statistics.median(b), statistics.median(f), med, min(pairs), max(pairs), flag))
    sep = " | " if a.markdown else "  "
    head = ["case", "before ns/el", "after ns/el", "after/before (paired median)", "min..max", ""]
    if a.markdown:
        print("| " + " | ".join(head[:-1]) + " |")
        print("|" + "---|" * (len(head) - 1))
    else:
        print(sep.join(head))
    for k, b, f, med, lo, hi, flag in rows:
        cells = [k, f"{b:.3f}", f"{f:.3f}", f"{med:.3f}", f"{lo:.2f}..{hi:.2f}"]
        if a.markdown:
            print("| " + " | ".join(cells) + (" **over the limit** |" if flag else " |"))
        else:
            print(sep.join(cells) + flag)
    print(f"\nworst paired median after/before: {worst:.3f} (limit {a.limit}), "
          f"{a.rounds} rounds of fresh processes, ABAB")


if __name__ == "__main__":
    main()
