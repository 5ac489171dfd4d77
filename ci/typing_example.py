"""A typed user of cysoftmax, checked with `mypy --strict` against the
installed wheel (its .pyi stubs and py.typed) by ci/wheel_check.sh, then run.

Not a test module (pytest does not collect ci/): its assertions only make
sure the example does what its types say.
"""

import io

import numpy as np
from numpy.typing import NDArray

import cysoftmax as cs
from cysoftmax import Classifier, load
from cysoftmax.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist_sample


def probabilities(z: NDArray[np.float32]) -> NDArray[np.float32]:
    return cs.softmax(z)


def mean_loss(z: NDArray[np.float64], y: NDArray[np.intp]) -> float:
    loss, grad = cs.nll_loss_and_gradient(z, y)
    g: NDArray[np.float64] = grad
    assert g.shape == z.shape
    return loss


def per_row(z: NDArray[np.float32], y: list[int]) -> NDArray[np.float32]:
    return cs.nll_loss(z, y, reduction="none")


def train() -> float:
    X, y = load_fashion_mnist_sample("train")
    Xt, yt = load_fashion_mnist_sample("test", dtype="float32")
    clf = Classifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(X, y)
    buf = io.BytesIO()
    clf.save(buf)
    buf.seek(0)
    clf2: Classifier = load(buf)
    proba = clf2.predict_proba(Xt[:5])
    assert proba.shape == (5, len(FASHION_MNIST_CLASSES))
    return clf2.score(Xt, yt)


def main() -> None:
    z32 = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -np.inf]], dtype=np.float32)
    p = probabilities(z32)
    assert p.dtype == np.float32
    logp: NDArray[np.float32] = cs.log_softmax(z32, axis=1)
    assert np.isfinite(logp[0]).all()
    lse = cs.logsumexp(z32)
    print("logsumexp", lse)
    z64: NDArray[np.float64] = np.zeros((2, 3))
    print("mean loss", mean_loss(z64, np.array([0, 2], dtype=np.intp)))
    print("per-row loss", per_row(z32, [2, 0]))
    grad: NDArray[np.float64] = cs.local_gradient([[0.0, 1.0]], [1])
    print("local gradient", grad)
    X = np.ones((4, 3))
    coefs = [np.full((3, 5), 0.1), np.full((5, 2), -0.1)]
    intercepts = [np.zeros(5), np.zeros(2)]
    out: NDArray[np.float64] = cs.forward(X, coefs, intercepts, activation="tanh")
    loss, dW, db = cs.backprop(X, [0, 1, 0, 1], coefs, intercepts, alpha=1e-3)
    assert out.shape == (4, 2) and len(dW) == len(db) == 2
    print("backprop loss", round(loss, 6))
    print("accuracy on the sample test set", round(train(), 3))
    print("version", cs.__version__)
    cs.show_config()


if __name__ == "__main__":
    main()
