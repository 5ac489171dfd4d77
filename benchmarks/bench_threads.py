"""Training steps on 1 vs 2 BLAS threads: the measurements behind the thread policy.

For networks of growing size and batch sizes 32/128/512, the same Adam (or
SGD) steps are timed with BLAS limited to 1 thread and to ``--threads``
threads, alternating (A B A B ...) inside the process, ``--rounds`` rounds
of ``--steps`` steps on fresh shuffles.  Each line gives the gemm work of a
step (``6 * batch * sum_l fan_in * fan_out`` flops: forward, deltas, weight
gradients), the median time per step on each side with its spread
(min-max), and the ratio t(2 threads) / t(1 thread): below 1, the threads
pay.  Run it in several processes (``--repeat-processes``) and on a quiet
machine: spinning OpenBLAS threads make 2 threads lose badly whenever the
other core is busy.  The Classifier's policy (``_trainer.TRAIN_THREADS_MIN_FLOPS``)
is chosen from these lines.

    python benchmarks/bench_threads.py [--solver adam] [--rounds 5] [--quick]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import ThreadpoolController

NETS = [(784, 16, 10), (784, 32, 10), (784, 64, 10), (784, 128, 10), (784, 256, 10),
        (784, 256, 128, 10), (784, 512, 256, 10)]
BATCHES = [32, 128, 512]


def step_flops(sizes, batch):
    return 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def child(args):
    from cysoftmax._engine import Trainer

    ctl = ThreadpoolController()
    rng = np.random.default_rng(0)
    out = []
    nets = [tuple(int(u) for u in net.split("-")) for net in args.nets.split(",")]
    for sizes in nets:
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            n = bs * args.steps
            X = rng.random((n, sizes[0])).astype(np.float32)
            y = rng.integers(0, sizes[-1], n).astype(np.intp)
            r = np.random.default_rng(1)
            coefs = [r.uniform(-.1, .1, (a, b)).astype(np.float32)
                     for a, b in zip(sizes[:-1], sizes[1:])]
            ints = [r.uniform(-.1, .1, b).astype(np.float32) for b in sizes[1:]]
            tr = Trainer(coefs, ints, bs, "relu", args.solver, 1e-4, 1e-3, 0.0)
            times = {1: [], args.threads: []}
            tr.run_epoch(X, y, None, np.arange(n), bs)        # warm-up
            for _ in range(args.rounds):
                order = r.permutation(n)
                for t in (1, args.threads):
                    with ctl.limit(limits=t, user_api="blas"):
                        time.sleep(0.15)                      # the other pool sleeps
                        t0 = time.perf_counter()
                        tr.run_epoch(X, y, None, order, bs)
                        times[t].append((time.perf_counter() - t0) / args.steps)
            out.append([list(sizes), bs, step_flops(sizes, bs), times[1], times[args.threads]])
    json.dump(out, sys.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--solver", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--repeat-processes", type=int, default=3)
    ap.add_argument("--nets", default=",".join("-".join(map(str, n)) for n in NETS),
                    help="layer sizes, e.g. 784-64-10,784-256-128-10")
    ap.add_argument("--batch-sizes", default=",".join(map(str, BATCHES)))
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.solver}, float32, "
          f"{args.repeat_processes} processes x {args.rounds} rounds x {args.steps} steps")
    runs = []
    for _ in range(args.repeat_processes):
        cmd = [sys.executable, __file__, "--child", "--threads", str(args.threads),
               "--rounds", str(args.rounds), "--steps", str(args.steps), "--solver", args.solver,
               "--nets", args.nets, "--batch-sizes", args.batch_sizes]
        runs.append(json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                              check=True).stdout))
    print(f"\n| network | batch | step MFLOP | 1 thread us/step | {args.threads} threads us/step "
          f"| {args.threads}t / 1t |")
    print("|:--|--:|--:|--:|--:|--:|")
    for k, row in enumerate(runs[0]):
        sizes, bs, flops = row[:3]
        t1 = [t for run in runs for t in run[k][3]]
        t2 = [t for run in runs for t in run[k][4]]
        m1, m2 = statistics.median(t1), statistics.median(t2)
        print(f"| {'-'.join(map(str, sizes))} | {bs} | {flops / 1e6:.1f} "
              f"| {m1 * 1e6:.0f} ({min(t1) * 1e6:.0f}-{max(t1) * 1e6:.0f}) "
              f"| {m2 * 1e6:.0f} ({min(t2) * 1e6:.0f}-{max(t2) * 1e6:.0f}) | {m2 / m1:.2f} |",
              flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
