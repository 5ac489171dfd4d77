"""Full Fashion-MNIST: test accuracy and fit time of cysoftmax, MLPClassifier and PyTorch.

Same architecture (784-256-128-10 relu), Adam (learning rate 1e-3, betas
0.9/0.999, eps 1e-8), L2 alpha 1e-4, batch 128, 20 epochs, float32, seeds 0, 1,
2, and the same number of threads for all (BLAS via threadpoolctl, PyTorch
via torch.set_num_threads).  PyTorch is optional.

    python benchmarks/bench_fashion_mnist.py --threads 2 --seeds 0,1,2
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits


def run_cysoftmax(X, y, Xt, yt, seed, args):
    from cysoftmax import Classifier

    clf = Classifier(hidden_layer_sizes=(256, 128), max_iter=args.epochs, batch_size=128,
                     random_state=seed)
    t0 = time.perf_counter()
    clf.fit(X, y)
    t = time.perf_counter() - t0
    return float(np.mean(clf.predict(Xt) == yt)), t


def run_sklearn(X, y, Xt, yt, seed, args):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=args.epochs, batch_size=128,
                        random_state=seed)
    t0 = time.perf_counter()
    clf.fit(X, y)
    t = time.perf_counter() - t0
    return float(np.mean(clf.predict(Xt) == yt)), t


def run_torch(X, y, Xt, yt, seed, args):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))
    # weight_decay = alpha / batch as scikit-learn's per-batch L2 term
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=1e-4 / 128)
    Xtr, ytr = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(Xtr.shape[0], generator=gen)
        for i in range(0, Xtr.shape[0], 128):
            idx = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
    t = time.perf_counter() - t0
    with torch.no_grad():
        pred = model(torch.from_numpy(Xt)).argmax(1).numpy()
    return float(np.mean(pred == yt)), t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--only", default="cysoftmax,sklearn,torch")
    args = ap.parse_args()

    import cysoftmax
    from cysoftmax.datasets import load_fashion_mnist

    X, y = load_fashion_mnist("train", dtype="float32")
    Xt, yt = load_fashion_mnist("test", dtype="float32")
    seeds = [int(s) for s in args.seeds.split(",")]
    runners = {"cysoftmax": run_cysoftmax, "sklearn": run_sklearn, "torch": run_torch}
    wanted = [w for w in args.only.split(",") if w]
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        wanted = [w for w in wanted if w != "torch"]
    cysoftmax.show_config()
    print(f"threads {args.threads}, epochs {args.epochs}, seeds {seeds}, float32, "
          "784-256-128-10 relu, adam lr 1e-3, batch 128\n")
    rows = {}
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in wanted:
            for seed in seeds:
                acc, t = runners[name](X, y, Xt, yt, seed, args)
                rows.setdefault(name, []).append((acc, t))
                print(f"{name:10s} seed {seed}: test accuracy {acc:.4f}, fit {t:7.1f} s", flush=True)
    print("\n| library | mean test accuracy | accuracies | mean fit s | fit time vs cysoftmax |")
    print("|:--|--:|:--|--:|--:|")
    base = statistics.mean(t for _, t in rows["cysoftmax"]) if "cysoftmax" in rows else None
    for name, rs in rows.items():
        accs = [a for a, _ in rs]
        ts = statistics.mean(t for _, t in rs)
        ratio = f"{ts / base:.2f}x" if base else "-"
        print(f"| {name} | {statistics.mean(accs):.4f} | {', '.join(f'{a:.4f}' for a in accs)} "
              f"| {ts:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
