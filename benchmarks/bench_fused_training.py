"""The training step with the fused output layer against the unfused one.

`Classifier` trains its output layer block by block (`_output.linear_nll`,
the code of `linear_nll_loss_and_gradient`) when a mini-batch's logits would
pass the block budget (``batch_size * n_classes > 2**24``).  This script
measures, for a few class counts around and past that threshold, one epoch
of ``_engine.Trainer.run_epoch`` (Adam, 784-128-m relu, float32, the
Fashion-MNIST input width, random data) with ``output_chunk=0`` (unfused:
the whole batch's logits) and with the automatic block, interleaved
(ABAB...) in one process, median and spread of the repeats, and the
trainer's allocated buffers (tracemalloc, the numpy buffers the trainer
owns) for each.

    python benchmarks/bench_fused_training.py                 # m = 10,000 .. 200,000
    python benchmarks/bench_fused_training.py --classes 100000 --repeats 5 --threads 1
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", default="10000,50000,100000,200000")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--rows", type=int, default=2000, help="rows per epoch")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import environment_lines, format_table
    from cysoftmax import _engine

    for line in environment_lines():
        print(line)
    rng = np.random.default_rng(0)
    f = 784
    rows = []
    for m in (int(c) for c in args.classes.split(",")):
        X = rng.random((args.rows, f), dtype=np.float32)
        y = rng.integers(0, m, args.rows)
        order = np.arange(args.rows, dtype=np.intp)
        auto = _engine.output_chunk_rows(args.batch, m)
        auto = auto if auto < args.batch else 0
        trainers, mem = {}, {}
        for name, chunk in (("unfused", 0), ("fused", auto or None)):
            if name == "fused" and not auto:
                continue
            coefs = [(rng.standard_normal((f, args.hidden)) * 0.05).astype(np.float32),
                     (rng.standard_normal((args.hidden, m)) * 0.05).astype(np.float32)]
            ints = [np.zeros(args.hidden, np.float32), np.zeros(m, np.float32)]
            tracemalloc.start()
            t = _engine.Trainer(coefs, ints, args.batch, "relu", "adam", 0.0, 1e-3,
                                output_chunk=chunk if name == "fused" else 0)
            t.run_epoch(X, y, None, order[:args.batch], args.batch)   # warm-up, X buffer
            mem[name] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            trainers[name] = t
        times = {k: [] for k in trainers}
        for _ in range(args.repeats):
            for name, t in trainers.items():          # interleaved: ABAB
                t0 = time.perf_counter()
                t.run_epoch(X, y, None, order, args.batch)
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        spread = {k: (max(v) - min(v)) / med[k] for k, v in times.items()}
        rows.append([f"{m:,}", str(auto or "-"), f"{med['unfused']:.3f}",
                     f"{spread['unfused']:.0%}",
                     f"{med['fused']:.3f}" if "fused" in med else "-",
                     f"{spread['fused']:.0%}" if "fused" in med else "-",
                     f"{med['fused'] / med['unfused']:.2f}x" if "fused" in med else "-",
                     f"{mem['unfused'] / 2**20:.0f}",
                     f"{mem['fused'] / 2**20:.0f}" if "fused" in mem else "-",
                     f"{args.batch * m * 4 / 2**20:.0f}"])
        print(rows[-1], flush=True)
    print()
    print(format_table(["classes", "block rows", "unfused s", "spread", "fused s", "spread",
                        "fused/unfused", "unfused MiB", "fused MiB", "batch logits MiB"],
                       rows, markdown=True,
                       title=f"one epoch of {args.rows} rows, batch {args.batch}, "
                             f"784-{args.hidden}-m relu, Adam, float32 (median of "
                             f"{args.repeats}, ABAB)"))


if __name__ == "__main__":
    main()
