"""
Fashion-MNIST: the main job
===========================

Trains a :class:`cysoftmax.Classifier` (784-256-128-10, ReLU, Adam, mini-batches
of 128) on Fashion-MNIST with early stopping on a 10% hold-out, then shows
the learning curve, the confusion matrix on the test set and a grid of the
test images it got wrong.

This is the job of README's Quick start (``examples/train_fashion_mnist.py``),
shortened to 10 epochs so that the page builds in seconds.
"""

# %%
# The data
# --------
# The full data set (60,000 training and 10,000 test images) when it is found
# on this machine, else the 3,000 / 1,000 image sample shipped in the package.
# Pixels come as float32 in ``[0, 1]``, and the classifier keeps float32 from
# end to end.
import time

import matplotlib.pyplot as plt
import numpy as np

from cysoftmax import Classifier
from cysoftmax.datasets import (FASHION_MNIST_CLASSES, load_fashion_mnist,
                                load_fashion_mnist_sample)

try:
    (X, y), (X_test, y_test) = (load_fashion_mnist("train", download=False),
                                load_fashion_mnist("test", download=False))
    source = "full Fashion-MNIST"
except (OSError, ValueError):
    (X, y), (X_test, y_test) = (load_fashion_mnist_sample("train"),
                                load_fashion_mnist_sample("test"))
    source = "embedded sample"
print(f"{source}: train {X.shape} {X.dtype}, test {X_test.shape}")

# %%
# Training
# --------
# ``early_stopping=True`` holds out 10% of the training rows (stratified),
# scores them after each epoch and restores the best epoch's weights at the
# end. Each epoch runs as one compiled call without the GIL.
#
# Ten epochs is a budget here, shorter than the plateau rule would train, so
# the ``ConvergenceWarning`` that says so is silenced.
import warnings

from sklearn.exceptions import ConvergenceWarning

clf = Classifier(hidden_layer_sizes=(256, 128), batch_size=128, max_iter=10,
                 early_stopping=True, n_iter_no_change=4, random_state=0)
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X, y)
seconds = time.perf_counter() - t0
accuracy = clf.score(X_test, y_test)
print(f"{clf.n_iter_} epochs in {seconds:.1f} s; test accuracy {accuracy:.4f}")

# %%
# The learning curve: the training loss (NLL plus the L2 penalty) and the
# accuracy on the hold-out, epoch by epoch.
epochs = np.arange(1, clf.n_iter_ + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epochs, clf.loss_curve_, marker="o", color="C0")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss", color="C0")
ax2 = ax.twinx()
ax2.plot(epochs, clf.validation_scores_, marker="s", color="C1")
ax2.set_ylabel("hold-out accuracy", color="C1")
ax.set_title(f"{source}: {clf.n_iter_} epochs, test accuracy {accuracy:.4f}")
fig.tight_layout()

# %%
# The confusion matrix
# --------------------
# Rows are the true classes and columns the predicted ones. Shirts, T-shirts,
# pullovers and coats are the classes the network confuses most.
pred = clf.predict(X_test)
cm = np.zeros((10, 10), dtype=int)
np.add.at(cm, (y_test, pred), 1)
fig, ax = plt.subplots(figsize=(6.5, 6))
ax.imshow(cm, cmap="Blues")
ax.set_xticks(range(10), FASHION_MNIST_CLASSES, rotation=60, ha="right")
ax.set_yticks(range(10), FASHION_MNIST_CLASSES)
for i in range(10):
    for j in range(10):
        ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                color="white" if cm[i, j] > cm.max() / 2 else "black")
ax.set_xlabel("predicted")
ax.set_ylabel("true")
fig.tight_layout()

# %%
# What it got wrong
# -----------------
# The test images with the most confident wrong predictions, with the
# predicted class, its probability, and the true class.
proba = clf.predict_proba(X_test)
wrong = np.flatnonzero(pred != y_test)
worst = wrong[np.argsort(-proba[wrong].max(axis=1))][:18]
fig, axes = plt.subplots(3, 6, figsize=(9, 5.4))
for ax, i in zip(axes.flat, worst):
    ax.imshow(X_test[i].reshape(28, 28), cmap="gray_r")
    ax.set_title(f"{FASHION_MNIST_CLASSES[pred[i]]} {proba[i].max():.2f}\n"
                 f"(is {FASHION_MNIST_CLASSES[y_test[i]]})", fontsize=8)
    ax.axis("off")
fig.suptitle("most confident mistakes: predicted, probability (true class)")
fig.tight_layout()
plt.show()
