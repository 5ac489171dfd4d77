"""
Training over a Dask cluster
============================

The same classifier on a :class:`distributed.LocalCluster` of two
workers: the training set is a stack of ``.npy`` blocks that the workers
memory-map (a chunked dask array; nothing goes through the scheduler),
:class:`dask_ml.wrappers.Incremental` carries the model from block to
block (each block is one ``partial_fit`` on a worker), and
:class:`dask_ml.wrappers.ParallelPostFit` predicts block by block, in
parallel. ``examples/dask_fashion_mnist.py`` is the script version, with
options.

Incremental scales the size of the data, not the speed of training: the
passes are sequential, one block at a time. What runs in parallel is
prediction and independent fits, such as a grid search.
"""

# %%
# The cluster and the data
# ------------------------
# Two workers with one thread each, without a dashboard. They are threads
# of this process (``processes=False``), so that the page also runs as a
# plain script: worker *processes* start by importing the script that
# created them, which then needs an ``if __name__ == "__main__":`` guard, as
# ``examples/dask_fashion_mnist.py`` has (its workers talk over TCP on
# 127.0.0.1). The compiled epoch and the kernels release the GIL, so the two
# threads do run in parallel. The blocks live in a temporary folder.
import os
import tempfile

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask_ml.wrappers import Incremental, ParallelPostFit
from distributed import Client, LocalCluster

from cysoftmax import Classifier
from cysoftmax.datasets import load_fashion_mnist_sample

X, y = load_fashion_mnist_sample("train")
X_test, y_test = load_fashion_mnist_sample("test")
classes = np.unique(y)

tmp = tempfile.TemporaryDirectory(prefix="cysoftmax-gallery-dask-")


def npy_stack(name, a, n_blocks):
    """`a` written as .npy blocks, read back as a dask array the workers memory-map."""
    folder = os.path.join(tmp.name, name)
    rows = -(-a.shape[0] // n_blocks)
    with dask.config.set(scheduler="synchronous"):
        da.to_npy_stack(folder, da.from_array(a, chunks=(rows,) + a.shape[1:]))
    return da.from_npy_stack(folder, mmap_mode="r")


cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=None)
client = Client(cluster)
dX, dy = npy_stack("X", X, 6), npy_stack("y", y, 6)
dX_test = npy_stack("X_test", X_test, 2)
print(f"{len(client.scheduler_info()['workers'])} workers; train {dX.shape} in "
      f"{dX.numblocks[0]} blocks of {dX.chunks[0][0]} rows")

# %%
# Passes over the blocks
# ----------------------
# Each pass calls ``partial_fit`` once per block, in a shuffled order; the
# test accuracy after each pass is computed on the cluster.
clf = Classifier(hidden_layer_sizes=(128,), batch_size=64, random_state=0)
model = Incremental(clf, shuffle_blocks=True, random_state=0)
accuracy = []
for p in range(8):
    model.partial_fit(dX, dy, classes=classes)
    accuracy.append(ParallelPostFit(model.estimator_).score(dX_test, y_test))
    print(f"pass {p + 1}: test accuracy {accuracy[-1]:.4f}")

# %%
# Prediction block by block
# -------------------------
# ``predict_proba`` is lazy: a dask array with one block per test block,
# computed by the workers.
proba = ParallelPostFit(model.estimator_).predict_proba(dX_test)
print(proba)
pred = classes[proba.argmax(axis=1).compute()]
print(f"test accuracy {np.mean(pred == y_test):.4f}")

fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.plot(np.arange(1, len(accuracy) + 1), accuracy, marker="o")
ax.set_xlabel("pass over the 6 blocks")
ax.set_ylabel("test accuracy")
ax.set_title("Incremental training on a 2-worker LocalCluster", fontsize=10)
fig.tight_layout()

# %%
# Shutting down
# -------------
client.close()
cluster.close()
tmp.cleanup()
plt.show()
