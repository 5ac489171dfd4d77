"""Classifier.fit before and after a refactor that must not change behaviour, ABAB.

Two copies of the package (each with its own compiled modules) are given
as directories; each round starts a fresh process per side, in alternating
order, fits the same model on the same data, and reports the per-epoch time
(median over the epochs of that fit).  The script prints the medians per
side over all rounds, their spread (min..max of the round medians), the
ratio after/before of the medians, the paired ratios (after/before of the
two processes of each round, which ran back to back: the load of the VM
cancels better in a pair than across rounds) with their median and
quartiles, and whether the fitted weights are the same bits on both
sides.

    python benchmarks/bench_refactor.py BEFORE_DIR AFTER_DIR [--rounds 6]
        [--epochs 8] [--n 20000]

BEFORE_DIR/AFTER_DIR hold a ``cysoftmax`` package directory (for instance a
``git archive`` of ``src/cysoftmax`` with the built ``.so`` files copied in).
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import sys, json, time, hashlib
sys.meta_path[:] = [f for f in sys.meta_path if "meson" not in type(f).__module__.lower()
                    and "editable" not in type(f).__module__.lower()]
sys.path.insert(0, sys.argv[1])
import numpy as np, warnings
import cysoftmax
assert cysoftmax.__file__.startswith(sys.argv[1]), cysoftmax.__file__
n, epochs = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
X = rng.random((n, 784), dtype=np.float32)
y = rng.integers(0, 10, n)
times = []
clf = cysoftmax.Classifier(hidden_layer_sizes=(256, 128), max_iter=1, random_state=0,
                           batch_size=128, warm_start=True)
warnings.simplefilter("ignore")
for e in range(epochs):
    t0 = time.perf_counter(); clf.fit(X, y); times.append(time.perf_counter() - t0)
h = hashlib.sha256(b"".join(w.tobytes() for w in clf.coefs_ + clf.intercepts_)).hexdigest()
print(json.dumps({"median": float(np.median(times)), "hash": h}))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--n", type=int, default=20000)
    a = p.parse_args()
    res = {"before": [], "after": []}
    hashes = {"before": set(), "after": set()}
    for r in range(a.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for side in order:
            out = subprocess.run([sys.executable, "-c", CHILD, getattr(a, side), str(a.n),
                                  str(a.epochs)], check=True, capture_output=True, text=True,
                                 env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                      "PATH": "/usr/bin:/bin"})
            d = json.loads(out.stdout.strip().splitlines()[-1])
            res[side].append(d["median"])
            hashes[side].add(d["hash"])
    import statistics
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"Classifier.fit epoch, {a.n} x 784 float32, 784-256-128-10, batch 128, 1 thread; "
          f"{a.rounds} rounds ABAB, {a.epochs} epochs per process")
    for k in ("before", "after"):
        print(f"  {k:6s} median {med[k]*1e3:8.1f} ms  (round medians "
              f"{min(res[k])*1e3:.1f}..{max(res[k])*1e3:.1f} ms)")
    print(f"  after/before = {med['after'] / med['before']:.3f} (of the medians)")
    pairs = sorted(b / a for a, b in zip(res["before"], res["after"]))
    q = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
    print(f"  paired after/before: median {statistics.median(pairs):.3f}, quartiles "
          f"{q[0]:.3f}..{q[2]:.3f}, all {' '.join(f'{r:.3f}' for r in pairs)}")
    same = len(hashes["before"]) == 1 and hashes["before"] == hashes["after"]
    print(f"  fitted weights: {'the same bits' if same else 'DIFFER'} on both sides")


if __name__ == "__main__":
    main()
