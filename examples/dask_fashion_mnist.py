"""Train a cysoftmax Classifier on Fashion-MNIST over a local Dask cluster.

Starts a LocalCluster of worker processes (on 127.0.0.1 only, no dashboard),
stores the data as a stack of .npy blocks that the workers memory-map (a
chunked dask array; nothing is shipped through the scheduler), trains with
dask-ml's Incremental -- the model travels from block to block, each block is
one `partial_fit` on a worker -- for several passes, printing each pass's time
and test accuracy, predicts with ParallelPostFit (block by block, in
parallel), and shuts everything down.  Uses the full data set when it is
found (see cysoftmax.datasets: $CYSOFTMAX_DATA, ~/.cache/cysoftmax, or
Debian's dataset-fashion-mnist package; never downloads), and otherwise the
small sample shipped inside the package, saying which.

    pip install "cysoftmax[dask]"
    python examples/dask_fashion_mnist.py --passes 5 --workers 2

Incremental scales the data size, not the training speed: the passes are
sequential, one block at a time.  What runs in parallel is prediction
(ParallelPostFit) and independent fits (e.g. a grid search, see README).
"""

import argparse
import os
import sys
import tempfile
import time


def load_data(sample):
    """(X, y, Xt, yt, description): the full data set when found, else the sample."""
    from cysoftmax.datasets import load_fashion_mnist, load_fashion_mnist_sample

    if not sample:
        try:
            X, y = load_fashion_mnist("train", download=False)
            Xt, yt = load_fashion_mnist("test", download=False)
            return X, y, Xt, yt, "full Fashion-MNIST (60,000 train / 10,000 test images)"
        except (OSError, ValueError) as exc:
            print(f"full Fashion-MNIST not found ({exc.__class__.__name__}: "
                  f"{str(exc).splitlines()[0]}); using the embedded sample", file=sys.stderr)
    X, y = load_fashion_mnist_sample("train")
    Xt, yt = load_fashion_mnist_sample("test")
    return X, y, Xt, yt, "embedded sample (3,000 train / 1,000 test images)"


def as_npy_stack(folder, a, n_blocks):
    """`a` written as .npy blocks in `folder`, read back as a dask array whose
    blocks the workers memory-map (da.from_npy_stack) -- the same as for data
    that would not fit in memory."""
    import dask
    import dask.array as da

    rows = -(-a.shape[0] // n_blocks)
    with dask.config.set(scheduler="synchronous"):       # written here, not by the cluster
        da.to_npy_stack(folder, da.from_array(a, chunks=(rows,) + a.shape[1:]))
    return da.from_npy_stack(folder, mmap_mode="r")


def worker_threads(client):
    """{worker: (OMP_NUM_THREADS, cysoftmax's OpenMP threads, BLAS threads)}."""
    def probe():
        from threadpoolctl import threadpool_info

        from cysoftmax import _softmax
        blas = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        omp = _softmax.max_threads() if _softmax.openmp_enabled() else None
        return os.environ.get("OMP_NUM_THREADS"), omp, blas

    return client.run(probe)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=5, help="passes over the data, default 5")
    ap.add_argument("--workers", type=int, default=2, help="worker processes, default 2")
    ap.add_argument("--blocks", type=int, default=6, help="blocks of the training set, default 6")
    ap.add_argument("--hidden", default="128", help="hidden layer sizes, default 128")
    ap.add_argument("--batch-size", type=int, default=128, help="mini-batch size, default 128")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", action="store_true",
                    help="use the embedded sample even if the full data is found")
    args = ap.parse_args(argv)

    import dask
    import numpy as np
    from dask_ml.wrappers import Incremental, ParallelPostFit
    from distributed import Client, LocalCluster

    import cysoftmax
    from cysoftmax import Classifier

    X, y, Xt, yt, source = load_data(args.sample)
    classes = np.unique(y)
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    print(f"cysoftmax {cysoftmax.__version__}; data: {source}")

    # one temporary folder for the data blocks and the cluster's scratch space,
    # removed after the cluster has shut down (the context managers unwind in
    # reverse order: client, cluster, config, folder)
    with tempfile.TemporaryDirectory(prefix="cysoftmax-dask-") as tmp, \
            dask.config.set({"temporary-directory": tmp}), \
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dX = as_npy_stack(os.path.join(tmp, "X"), X, args.blocks)
        dy = as_npy_stack(os.path.join(tmp, "y"), y, args.blocks)
        dXt = as_npy_stack(os.path.join(tmp, "Xt"), Xt, args.workers)
        print(f"cluster: {args.workers} worker processes at {cluster.scheduler_address}; "
              f"train {dX.shape} in {dX.numblocks[0]} blocks of {dX.chunks[0][0]} rows")
        for address, (env, omp, blas) in sorted(worker_threads(client).items()):
            print(f"  worker {address}: OMP_NUM_THREADS={env}, cysoftmax OpenMP threads "
                  f"{omp}, BLAS threads {blas}")

        model = Incremental(
            Classifier(hidden_layer_sizes=hidden, batch_size=args.batch_size,
                       random_state=args.seed),
            shuffle_blocks=True, random_state=args.seed)
        total = 0.0
        for p in range(1, args.passes + 1):
            t0 = time.perf_counter()
            model.partial_fit(dX, dy, classes=classes)     # one partial_fit per block
            seconds = time.perf_counter() - t0
            total += seconds
            acc = ParallelPostFit(model.estimator_).score(dXt, yt)
            print(f"pass {p}: {seconds:.2f} s, last block's loss {model.estimator_.loss_:.4f}, "
                  f"test accuracy {acc:.4f}")

        clf = model.estimator_
        proba = ParallelPostFit(clf).predict_proba(dXt)      # lazy, block by block
        pred = clf.classes_[proba.argmax(axis=1).compute()]
        print(f"training: {total:.1f} s for {args.passes} passes "
              f"({clf.n_iter_} block updates, {clf.t_} samples)")
        print(f"ParallelPostFit: predict_proba {proba.shape} in {proba.numblocks[0]} blocks; "
              f"test accuracy {np.mean(pred == yt):.4f}")
    print("cluster closed")


if __name__ == "__main__":
    main()
