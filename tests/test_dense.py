"""Dense forward/backprop, the optimizers and the training trainer.

The numpy reference (tests/_reference.py) is written from the formulas
(DESIGN.md and scikit-learn's ``_backprop``), independently of the compiled code.
"""

import itertools
import pickle
import tracemalloc

import numpy as np
import pytest

from cysoftmax import _engine
from cysoftmax._network_api import backprop, forward

from _reference import (ref_activations, ref_backprop, ref_softmax, rss_bytes,
                        under_address_sanitizer)

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


# ---------------------------------------------------------------- reference
# in tests/_reference.py: ref_activations (the float64 activations [X, ..., logits]),
# ref_softmax (row softmax), ref_backprop (float64; gradients in X's dtype
# unless cast=False)


def random_net(rng, sizes, dtype=np.float64, scale=1.0):
    coefs = [(rng.standard_normal((a, b)) * scale / np.sqrt(a)).astype(dtype)
             for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [(0.3 * rng.standard_normal(b)).astype(dtype) for b in sizes[1:]]
    return coefs, intercepts


def random_problem(seed, n_hidden, activation, dtype=np.float64, n=7, margin=1e-4):
    """A small network and data; for relu, no hidden pre-activation within `margin` of 0."""
    rng = np.random.default_rng(seed)
    widths = list(rng.integers(2, 6, size=n_hidden + 1))
    sizes = [int(w) for w in widths] + [int(rng.integers(2, 5))]
    for _ in range(1000):
        X = rng.standard_normal((n, sizes[0])).astype(dtype)
        coefs, intercepts = random_net(rng, sizes, dtype, scale=1.5)
        if activation != "relu":
            break
        A = [X.astype(np.float64)]
        zmin = np.inf
        for W, b in zip(coefs[:-1], intercepts[:-1]):
            z = A[-1] @ W + b
            zmin = min(zmin, np.abs(z).min())
            A.append(np.maximum(z, 0))
        if zmin > margin:
            break
    else:  # pragma: no cover
        raise RuntimeError("could not draw a problem away from the relu kink")
    y = rng.integers(0, sizes[-1], size=n)
    y[: sizes[-1]] = np.arange(sizes[-1])   # every class present
    w = rng.uniform(0.2, 2.0, size=n)
    return X, y, coefs, intercepts, w


CONFIGS = list(itertools.product((1, 2, 3), ACTIVATIONS, (0.0, 0.7), (False, True)))


def _cfg_id(c):
    return f"h{c[0]}-{c[1]}-a{c[2]}-{'w' if c[3] else 'now'}"


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_gradient_matches_finite_differences(cfg):
    n_hidden, activation, alpha, weighted = cfg
    X, y, coefs, intercepts, w = random_problem(CONFIGS.index(cfg), n_hidden, activation)
    sw = w if weighted else None
    loss, gW, gb = backprop(X, y, coefs, intercepts, activation=activation, alpha=alpha,
                            sample_weight=sw)

    def f():
        return backprop(X, y, coefs, intercepts, activation=activation, alpha=alpha,
                        sample_weight=sw)[0]

    h = 1e-6
    for params, grads in ((coefs, gW), (intercepts, gb)):
        for p, g in zip(params, grads):
            fd = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + h
                fp = f()
                p[idx] = old - h
                fm = f()
                p[idx] = old
                fd[idx] = (fp - fm) / (2 * h)
            np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    assert loss == f()


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_backprop_matches_numpy_reference_float64(cfg):
    n_hidden, activation, alpha, weighted = cfg
    X, y, coefs, intercepts, w = random_problem(CONFIGS.index(cfg) + 1, n_hidden, activation,
                                                n=23)
    sw = w if weighted else None
    loss, gW, gb = backprop(X, y, coefs, intercepts, activation=activation, alpha=alpha,
                            sample_weight=sw)
    rloss, rgW, rgb = ref_backprop(X, y, coefs, intercepts, activation, alpha, sw)
    np.testing.assert_allclose(loss, rloss, rtol=1e-12, atol=1e-14)
    for g, r in zip(gW + gb, rgW + rgb):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_backprop_matches_numpy_reference_float32(cfg):
    n_hidden, activation, alpha, weighted = cfg
    X, y, coefs, intercepts, w = random_problem(CONFIGS.index(cfg) + 2, n_hidden, activation,
                                                dtype=np.float32, n=23, margin=1e-2)
    sw = w if weighted else None
    loss, gW, gb = backprop(X, y, coefs, intercepts, activation=activation, alpha=alpha,
                            sample_weight=sw)
    # the float64 reference gradients, not rounded to float32
    rloss, rgW, rgb = ref_backprop(X, y, coefs, intercepts, activation, alpha, sw, cast=False)
    np.testing.assert_allclose(loss, rloss, rtol=1e-4, atol=1e-6)
    for g, r in zip(gW + gb, rgW + rgb):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def test_backprop_matches_sklearn_mlp():
    """Our gradients are scikit-learn's _backprop (multiclass: softmax output)."""
    import inspect

    from sklearn.neural_network import MLPClassifier
    if "sample_weight" not in inspect.signature(MLPClassifier._backprop).parameters:
        pytest.skip("MLPClassifier._backprop takes sample_weight from scikit-learn 1.7 on")

    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    w = rng.uniform(0.5, 2, 40)
    clf = MLPClassifier(hidden_layer_sizes=(5, 4), activation="tanh", alpha=0.3,
                        max_iter=1, random_state=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    Y = np.eye(3)[y]
    activations = [X] + [None] * (clf.n_layers_ - 1)
    deltas = [None] * (clf.n_layers_ - 1)
    cg = [None] * (clf.n_layers_ - 1)
    ig = [None] * (clf.n_layers_ - 1)
    sk_loss, sk_cg, sk_ig = clf._backprop(X, Y, w, activations, deltas, cg, ig)
    loss, gW, gb = backprop(X, y, clf.coefs_, clf.intercepts_, activation="tanh", alpha=0.3,
                            sample_weight=w)
    # sklearn clips probabilities at eps before the log: same loss up to that
    np.testing.assert_allclose(loss, sk_loss, rtol=1e-10)
    for g, r in zip(gW + gb, list(sk_cg) + list(sk_ig)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- forward

@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_is_softmax_of_reference_logits(activation, dtype):
    rng = np.random.default_rng(1)
    # more rows than one forward block, to cross block boundaries
    X = rng.standard_normal((1100, 6)).astype(dtype)
    coefs, intercepts = random_net(rng, [6, 9, 5, 4], dtype)
    P = forward(X, coefs, intercepts, activation=activation)
    assert P.dtype == dtype and P.shape == (1100, 4) and P.flags.c_contiguous
    ref = ref_softmax(ref_activations(X, coefs, intercepts, activation)[-1])
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(P, ref, **tol)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=10 * np.finfo(dtype).eps)


def test_forward_without_hidden_layer_is_softmax_regression():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((10, 3))
    W = rng.standard_normal((3, 4))
    b = rng.standard_normal(4)
    np.testing.assert_allclose(forward(X, [W], [b]), ref_softmax(X @ W + b), rtol=1e-13)


def test_forward_into_logits_and_log_proba():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 5))
    coefs, intercepts = random_net(rng, [5, 6, 3])
    z = ref_activations(X, coefs, intercepts, "relu")[-1]
    out = np.empty((30, 3))
    _engine.forward_into(X, coefs, intercepts, "relu", out, "logits")
    np.testing.assert_allclose(out, z, rtol=1e-13, atol=1e-15)
    _engine.forward_into(X, coefs, intercepts, "relu", out, "log_proba")
    np.testing.assert_allclose(out, np.log(ref_softmax(z)), rtol=1e-13, atol=1e-15)


def test_forward_and_backprop_accept_any_layout():
    X, y, coefs, intercepts, w = random_problem(4, 2, "tanh", n=9)
    expected = backprop(X, y, coefs, intercepts, activation="tanh", sample_weight=w)
    P = forward(X, coefs, intercepts, activation="tanh")
    Xf = np.asfortranarray(X)
    Xs = np.repeat(X, 2, axis=0)[::2]                       # non-contiguous rows
    Xn = X[::-1][::-1]                                      # negative strides (a view)
    Xr = X.copy()
    Xr.flags.writeable = False
    coefs_f = tuple(np.asfortranarray(W) for W in coefs)    # tuples work too
    ints_s = [np.repeat(b, 2)[::2] for b in intercepts]
    for Xv in (Xf, Xs, Xn, Xr):
        np.testing.assert_allclose(forward(Xv, coefs_f, ints_s, activation="tanh"), P,
                                   rtol=1e-14)
        got = backprop(Xv, list(y), coefs_f, ints_s, activation="tanh", sample_weight=list(w))
        assert got[0] == pytest.approx(expected[0], rel=1e-14)
        for g, e in zip(got[1] + got[2], expected[1] + expected[2]):
            np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-16)


def test_backprop_example_values():
    X = np.array([[0.5, -1.0], [2.0, 1.0]])
    coefs = [np.zeros((2, 3)), np.zeros((3, 2))]
    intercepts = [np.zeros(3), np.zeros(2)]
    loss, dW, db = backprop(X, [0, 1], coefs, intercepts)
    assert loss == pytest.approx(np.log(2), rel=1e-15)
    assert isinstance(dW, list) and isinstance(db, list)
    np.testing.assert_array_equal(db[1], [0.0, 0.0])
    # closed form: all weights 0, so the hidden layer is relu(0) = 0 and the
    # output delta D = (p - onehot) / n = [[-1/4, 1/4], [1/4, -1/4]] meets a
    # zero activation (dW[1] = A^T D) and a zero W1 (D W1^T): all exactly 0
    for g, ref in zip(dW + db, coefs + intercepts):
        assert g.shape == ref.shape and g.dtype == ref.dtype
        np.testing.assert_array_equal(g, 0.0)
    # with output weights, the hidden delta is D W1^T * relu'(0) (= 0 at 0)
    # and dW[1] = A^T D with A = relu(X W0): here W0 = I, so A = relu(X)
    coefs = [np.eye(2, 3), np.array([[1.0, -1.0], [2.0, 0.5], [0.0, 3.0]])]
    loss, dW, db = backprop(X, [0, 1], coefs, intercepts)
    A = np.maximum(X @ coefs[0], 0.0)
    Z = A @ coefs[1]
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    D = (P - np.eye(2)[[0, 1]]) / 2
    np.testing.assert_allclose(dW[1], A.T @ D, rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(db[1], D.sum(axis=0), rtol=1e-15, atol=1e-17)
    D0 = (D @ coefs[1].T) * (X @ coefs[0] > 0)
    np.testing.assert_allclose(dW[0], X.T @ D0, rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(db[0], D0.sum(axis=0), rtol=1e-15, atol=1e-17)


@pytest.mark.parametrize("scale", [2.0 ** 1000, 1e308, 2.0 ** -1070, 5e-324])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_backprop_weights_at_the_ends_of_float64(scale, alpha):
    """Scaling all weights by a constant leaves the loss (penalty alpha/sum_w
    included, with alpha scaled alike) unchanged; sum_w must not overflow."""
    X, y, coefs, intercepts, w = random_problem(21, 2, "tanh", n=6)
    w = np.full(6, 1.0)
    loss, gW, gb = backprop(X, y, coefs, intercepts, activation="tanh", alpha=alpha * scale,
                            sample_weight=w * scale)
    rloss, rgW, rgb = ref_backprop(X, y, coefs, intercepts, "tanh", alpha, None)
    if alpha and scale < 1e-300:
        # alpha * scale is itself subnormal (or 0): only the data part survives exactly
        rloss, rgW, rgb = ref_backprop(X, y, coefs, intercepts, "tanh",
                                       alpha * scale / scale, None)
    np.testing.assert_allclose(loss, rloss, rtol=1e-10)
    for g, r in zip(gW + gb, rgW + rgb):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-15)


def test_zero_weight_rows_do_not_count():
    X, y, coefs, intercepts, w = random_problem(9, 1, "logistic", n=10)
    w[3] = 0
    X2 = X.copy()
    X2[3] = 1e300                     # would overflow if it were used
    a = backprop(X, y, coefs, intercepts, activation="logistic", sample_weight=w)
    keep = np.arange(10) != 3
    b = backprop(X[keep], y[keep], coefs, intercepts, activation="logistic",
                 sample_weight=w[keep])
    assert a[0] == pytest.approx(b[0], rel=1e-13)
    for g, e in zip(a[1] + a[2], b[1] + b[2]):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- optimizers

def ref_optimizer(solver, params, grads_seq, lr, momentum=0.9, nesterov=True, beta_1=0.9,
                  beta_2=0.999, epsilon=1e-8):
    """scikit-learn's update rules, from the documentation, in float64."""
    params = [p.astype(np.float64) for p in params]
    vel = [np.zeros_like(p) for p in params]
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    t = 0
    for grads in grads_seq:
        grads = [g.astype(np.float64) for g in grads]
        if solver == "adam":
            t += 1
            lr_t = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
            for i, g in enumerate(grads):
                ms[i] = beta_1 * ms[i] + (1 - beta_1) * g
                vs[i] = beta_2 * vs[i] + (1 - beta_2) * g ** 2
                params[i] += -lr_t * ms[i] / (np.sqrt(vs[i]) + epsilon)
        else:
            for i, g in enumerate(grads):
                upd = momentum * vel[i] - lr * g
                vel[i] = upd
                if nesterov:
                    upd = momentum * vel[i] - lr * g
                params[i] += upd
    return params, dict(velocities=vel, ms=ms, vs=vs, t=t)


OPTIMIZERS = [
    ("sgd", dict(momentum=0.0)),
    ("sgd", dict(momentum=0.9, nesterovs_momentum=False)),
    ("sgd", dict(momentum=0.8, nesterovs_momentum=True)),
    ("adam", dict(beta_1=0.85, beta_2=0.99, epsilon=1e-7)),
]


def _opt_ws(coefs, intercepts, solver, kw, lr=0.05):
    return _engine.Trainer(coefs, intercepts, 8, "relu", solver, 0.0, lr,
                            kw.get("momentum", 0.9), kw.get("nesterovs_momentum", True),
                            kw.get("beta_1", 0.9), kw.get("beta_2", 0.999),
                            kw.get("epsilon", 1e-8))


@pytest.mark.parametrize("n_steps", [1, 2, 10])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver,kw", OPTIMIZERS, ids=lambda v: str(v))
def test_optimizer_matches_reference(solver, kw, dtype, n_steps):
    rng = np.random.default_rng(10)
    coefs, intercepts = random_net(rng, [4, 5, 3], dtype)
    params0 = [p.copy() for p in coefs + intercepts]
    ws = _opt_ws(coefs, intercepts, solver, kw)
    grads_seq = [[rng.standard_normal(p.shape).astype(dtype) for p in params0]
                 for _ in range(n_steps)]
    for grads in grads_seq:
        ws.apply_gradients(grads[:2], grads[2:])
    ref_kw = {k.replace("nesterovs_momentum", "nesterov"): v for k, v in kw.items()}
    expect, state = ref_optimizer(solver, params0, grads_seq, 0.05, **ref_kw)
    tol = dict(rtol=1e-13, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for p, e in zip(coefs + intercepts, expect):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, e, **tol)
    st = ws.optimizer_state
    if solver == "adam":
        assert ws.t == st["t"] == n_steps
        for a, b in zip(st["ms"] + st["vs"], state["ms"] + state["vs"]):
            np.testing.assert_allclose(a, b, **tol)
    elif kw["momentum"]:
        for a, b in zip(st["velocities"], state["velocities"]):
            np.testing.assert_allclose(a, b, **tol)
    else:
        assert st == {}


@pytest.mark.parametrize("solver,kw", OPTIMIZERS, ids=lambda v: str(v))
def test_optimizer_matches_sklearn_classes(solver, kw):
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    rng = np.random.default_rng(11)
    coefs, intercepts = random_net(rng, [3, 4, 2])
    params = [p.copy() for p in coefs + intercepts]
    if solver == "adam":
        opt = AdamOptimizer(params, 0.05, kw["beta_1"], kw["beta_2"], kw["epsilon"])
    else:
        opt = SGDOptimizer(params, 0.05, "constant", kw["momentum"],
                           kw.get("nesterovs_momentum", True))
    ws = _opt_ws(coefs, intercepts, solver, kw)
    for _ in range(5):
        grads = [rng.standard_normal(p.shape) for p in params]
        opt.update_params(params, grads)
        ws.apply_gradients(grads[:2], grads[2:])
    for p, e in zip(coefs + intercepts, params):
        np.testing.assert_allclose(p, e, rtol=1e-13, atol=1e-15)


def test_adam_bias_correction_step_1_and_10():
    """At step 1 Adam moves every entry by lr * g / (|g| + eps / sqrt(1-b2)) = ~lr sign(g)."""
    rng = np.random.default_rng(12)
    W = rng.standard_normal((3, 2))
    b = rng.standard_normal(2)
    W0, b0 = W.copy(), b.copy()
    ws = _engine.Trainer([W], [b], 4, "relu", "adam", 0.0, 0.01, 0.9, True, 0.9, 0.999, 1e-8)
    gW = rng.standard_normal((3, 2))
    gb = rng.standard_normal(2)
    ws.apply_gradients([gW], [gb])
    lr_t = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expect = W0 - lr_t * (0.1 * gW) / (np.sqrt(0.001 * gW ** 2) + 1e-8)
    np.testing.assert_allclose(W, expect, rtol=1e-13)
    np.testing.assert_allclose(W - W0, -0.01 * np.sign(gW), rtol=1e-4)
    expect_b = b0 - lr_t * (0.1 * gb) / (np.sqrt(0.001 * gb ** 2) + 1e-8)
    np.testing.assert_allclose(b, expect_b, rtol=1e-13)
    # steps 2..10 with the same gradient: m and v converge to g, g^2 exactly
    # after bias correction, so each step is again ~lr sign(g)
    for _ in range(9):
        W1 = W.copy()
        ws.apply_gradients([gW], [gb])
    assert ws.t == 10
    m = (1 - 0.9 ** 10) * gW
    v = (1 - 0.999 ** 10) * gW ** 2
    lr_t = 0.01 * np.sqrt(1 - 0.999 ** 10) / (1 - 0.9 ** 10)
    np.testing.assert_allclose(W - W1, -lr_t * m / (np.sqrt(v) + 1e-8), rtol=1e-10)
    np.testing.assert_allclose(W - W1, -0.01 * np.sign(gW), rtol=1e-4)
    np.testing.assert_allclose(W - W0, -0.1 * np.sign(gW), rtol=1e-4)


# ---------------------------------------------------------------- training step

@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("solver,kw", OPTIMIZERS, ids=lambda v: str(v))
def test_step_is_backprop_then_update(solver, kw, alpha, weighted):
    """A trainer step on a gathered batch = reference gradient of that batch
    (penalty alpha / batch sum_w) + the reference update rule."""
    rng = np.random.default_rng(13)
    n = 30
    X = rng.standard_normal((n, 5))
    y = rng.integers(0, 3, n)
    w = rng.uniform(0.1, 2, n) if weighted else None
    coefs, intercepts = random_net(rng, [5, 6, 4, 3])
    params0 = [p.copy() for p in coefs + intercepts]
    ws = _engine.Trainer(coefs, intercepts, 12, "tanh", solver, alpha, 0.05,
                          kw.get("momentum", 0.9), kw.get("nesterovs_momentum", True),
                          kw.get("beta_1", 0.9), kw.get("beta_2", 0.999), kw.get("epsilon", 1e-8))
    batches = [rng.choice(n, 12, replace=False), rng.choice(n, 7, replace=False)]
    ref_params = [p.copy() for p in params0]
    grads_seq = []
    for idx in batches:
        wb = None if w is None else w[idx]
        total = ws.step(X, y, w, idx)
        L = len(coefs)
        rloss, rgW, rgb = ref_backprop(X[idx], y[idx], ref_params[:L], ref_params[L:], "tanh",
                                       alpha, wb)
        swb = len(idx) if wb is None else wb.sum()
        pen = alpha / (2 * swb) * sum((W * W).sum() for W in ref_params[:L])
        assert total == pytest.approx((rloss - pen) * swb, rel=1e-12)
        grads_seq.append(rgW + rgb)
        ref_kw = {k.replace("nesterovs_momentum", "nesterov"): v for k, v in kw.items()}
        ref_params, _ = ref_optimizer(solver, params0, grads_seq, 0.05, **ref_kw)
    for p, e in zip(coefs + intercepts, ref_params):
        np.testing.assert_allclose(p, e, rtol=1e-11, atol=1e-14)


def _blobs(seed=0, n_per=20, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    X = np.concatenate([c + 0.7 * rng.standard_normal((n_per, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per)
    return X.astype(dtype), y


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_descent_decreases_loss_monotonically(activation, dtype):
    X, y = _blobs(dtype=dtype)
    n = len(y)
    rng = np.random.default_rng(1)
    coefs, intercepts = random_net(rng, [2, 8, 3], dtype)
    ws = _engine.Trainer(coefs, intercepts, n, activation, "sgd", 0.0, 0.05, 0.0)
    idx = np.arange(n)
    losses = [ws.step(X, y, None, idx) / n for _ in range(300)]
    assert np.all(np.diff(losses) < 0), "full-batch gradient descent must decrease the loss"
    assert losses[-1] < 0.1 * losses[0]
    P = forward(X, coefs, intercepts, activation=activation)
    assert (P.argmax(axis=1) == y).all()


@pytest.mark.parametrize("solver,kw,lr", [("sgd", dict(momentum=0.0), 0.05),
                                          ("sgd", dict(momentum=0.9), 0.01),
                                          ("adam", dict(), 0.01)])
def test_run_epoch_decreases_loss(solver, kw, lr):
    X, y = _blobs(seed=3, n_per=40)
    n = len(y)
    rng = np.random.default_rng(2)
    coefs, intercepts = random_net(rng, [2, 10, 6, 3])
    ws = _opt_ws(coefs, intercepts, solver, kw, lr)
    # a twin trained batch by batch: the epoch's total is the sum of its
    # batches' sum w_i C_i, each taken before that batch's update
    twin_c, twin_b = [W.copy() for W in coefs], [b.copy() for b in intercepts]
    twin = _opt_ws(twin_c, twin_b, solver, kw, lr)
    full = [backprop(X, y, coefs, intercepts)[0]]
    for _ in range(8):
        order = rng.permutation(n)
        total = ws.run_epoch(X, y, None, order, 8)
        want = sum(twin.step(X, y, None, order[i:i + 8]) for i in range(0, n, 8))
        assert total == pytest.approx(want, rel=1e-12)
        for a, b in zip(coefs + intercepts, twin_c + twin_b):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        full.append(backprop(X, y, coefs, intercepts)[0])
    assert np.all(np.diff(full) < 0), full
    assert (forward(X, coefs, intercepts).argmax(axis=1) == y).all()


def test_run_epoch_equals_sequence_of_steps():
    rng = np.random.default_rng(4)
    n = 53
    X = rng.standard_normal((n, 4)).astype(np.float32)
    y = rng.integers(0, 3, n)
    w = rng.uniform(0, 2, n)
    c1, i1 = random_net(rng, [4, 7, 3], np.float32)
    c2, i2 = [c.copy() for c in c1], [b.copy() for b in i1]
    ws1 = _engine.Trainer(c1, i1, 10, "relu", "adam", 1e-3, 0.01)
    ws2 = _engine.Trainer(c2, i2, 10, "relu", "adam", 1e-3, 0.01)
    order = rng.permutation(n)
    total = ws1.run_epoch(X, y, w, order, 10)
    total2 = sum(ws2.step(X, y, w, order[s:s + 10]) for s in range(0, n, 10))
    assert total == pytest.approx(total2, rel=1e-12)
    for a, b in zip(c1 + i1, c2 + i2):
        np.testing.assert_array_equal(a, b)
    assert ws1.t == ws2.t == 6


def test_run_epoch_with_csr_equals_dense():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(5)
    n = 40
    X = rng.standard_normal((n, 9))
    X[rng.random((n, 9)) < 0.6] = 0
    X[7] = 0                                      # an empty row
    y = rng.integers(0, 4, n)
    order = rng.permutation(n)
    ref = None
    for variant in ("dense", "csr32", "csr64", "csr_array"):
        coefs, intercepts = random_net(np.random.default_rng(6), [9, 5, 4])
        ws = _engine.Trainer(coefs, intercepts, 16, "relu", "sgd", 0.01, 0.1, 0.5)
        if variant == "dense":
            Xv = X
        elif variant == "csr_array":
            Xv = sp.csr_array(X)
        else:
            Xv = sp.csr_matrix(X)
            dt = np.int32 if variant == "csr32" else np.int64
            Xv.indices = Xv.indices.astype(dt)
            Xv.indptr = Xv.indptr.astype(dt)
        total = ws.run_epoch(Xv, y, None, order, 16)
        out = np.empty((n, 4))
        _engine.forward_into(Xv, coefs, intercepts, "relu", out, "proba")
        got = (total, [c.copy() for c in coefs + intercepts], out)
        if ref is None:
            ref = got
            continue
        assert got[0] == ref[0]
        for a, b in zip(got[1], ref[1]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got[2], ref[2])


def test_run_epoch_subset_order_and_zero_weight_batches():
    rng = np.random.default_rng(7)
    n = 20
    X = rng.standard_normal((n, 3))
    y = rng.integers(0, 2, n)
    w = np.ones(n)
    w[:5] = 0
    coefs, intercepts = random_net(rng, [3, 4, 2])
    before = [p.copy() for p in coefs + intercepts]
    ws = _engine.Trainer(coefs, intercepts, 5, "relu", "sgd", 0.1, 0.1, 0.0)
    # a batch of zero-weight rows has no mean: it is skipped, nothing changes
    assert ws.run_epoch(X, y, w, np.arange(5), 5) == 0.0
    for a, b in zip(coefs + intercepts, before):
        np.testing.assert_array_equal(a, b)
    assert ws.run_epoch(X, y, w, np.arange(0), 5) == 0.0
    idx = np.array([3, 9, 12])                                # a subset of the rows
    # one batch: its sum w_i C_i at the weights before the update (row 3 has w 0)
    loss = backprop(X[idx], y[idx], coefs, intercepts, sample_weight=w[idx])[0]
    _, dW, db = backprop(X[idx], y[idx], coefs, intercepts, alpha=0.1, sample_weight=w[idx])
    total = ws.run_epoch(X, y, w, idx, 5)
    assert total == pytest.approx(loss * w[idx].sum(), rel=1e-12)
    # and the update was one SGD step on that batch alone (alpha = lr = 0.1)
    for a, b, g in zip(coefs + intercepts, before, dW + db):
        np.testing.assert_allclose(a, b - 0.1 * g, rtol=1e-12, atol=1e-15)


def test_trainer_updates_the_callers_arrays_in_place():
    rng = np.random.default_rng(8)
    coefs, intercepts = random_net(rng, [3, 4, 2])
    ids = [id(p) for p in coefs + intercepts]
    ws = _engine.Trainer(coefs, intercepts, 4, "relu", "sgd", 0.0, 0.1, 0.0)
    assert [id(p) for p in ws.coefs + ws.intercepts] == ids
    before = coefs[0].copy()
    ws.step(rng.standard_normal((4, 3)), np.array([0, 1, 0, 1]), None, np.arange(4))
    assert not np.array_equal(coefs[0], before)
    assert ws.layer_sizes == [3, 4, 2]


def test_trainer_pickle_roundtrip_continues_identically():
    rng = np.random.default_rng(9)
    n = 30
    X = rng.standard_normal((n, 4))
    y = rng.integers(0, 3, n)
    coefs, intercepts = random_net(rng, [4, 6, 3])
    ws = _engine.Trainer(coefs, intercepts, 10, "logistic", "adam", 1e-2, 0.01,
                          0.9, True, 0.8, 0.99, 1e-7)
    order = rng.permutation(n)
    ws.run_epoch(X, y, None, order, 10)
    est = {"coefs_": coefs, "intercepts_": intercepts, "ws": ws}
    est2 = pickle.loads(pickle.dumps(est))
    ws2 = est2["ws"]
    # the same arrays as the estimator's after loading (pickle memoizes them)
    assert all(a is b for a, b in zip(ws2.coefs, est2["coefs_"]))
    assert all(a is b for a, b in zip(ws2.intercepts, est2["intercepts_"]))
    assert ws2.t == ws.t == 3
    for attr in ("max_batch", "dtype", "activation", "solver", "alpha", "learning_rate_init",
                 "momentum", "nesterovs_momentum", "beta_1", "beta_2", "epsilon"):
        assert getattr(ws2, attr) == getattr(ws, attr)
    for a, b in zip(ws.optimizer_state["ms"] + ws.optimizer_state["vs"],
                    ws2.optimizer_state["ms"] + ws2.optimizer_state["vs"]):
        np.testing.assert_array_equal(a, b)
    ws.run_epoch(X, y, None, order, 10)
    ws2.run_epoch(X, y, None, order, 10)
    for a, b in zip(coefs + intercepts, est2["coefs_"] + est2["intercepts_"]):
        np.testing.assert_array_equal(a, b)
    # momentum state too
    ws3 = _engine.Trainer(coefs, intercepts, 10, "relu", "sgd", 0.0, 0.01, 0.9)
    ws3.run_epoch(X, y, None, order, 10)
    ws4 = pickle.loads(pickle.dumps(ws3))
    for a, b in zip(ws3.optimizer_state["velocities"], ws4.optimizer_state["velocities"]):
        np.testing.assert_array_equal(a, b)


def test_trainer_step_allocates_nothing():
    rng = np.random.default_rng(10)
    n = 256
    X = rng.standard_normal((n, 2048)).astype(np.float32)
    y = rng.integers(0, 5, n).astype(np.intp)
    w = rng.uniform(0.5, 1, n)
    coefs, intercepts = random_net(rng, [2048, 16, 8, 5], np.float32)
    ws = _engine.Trainer(coefs, intercepts, 32, "relu", "adam", 1e-4, 1e-3)
    idx = rng.permutation(n)[:32].astype(np.intp)
    order = rng.permutation(n).astype(np.intp)
    for _ in range(20):                       # warm-up: first-use allocations
        ws.step(X, y, w, idx)
        ws.run_epoch(X, y, w, order, 32)
    rss0 = rss_bytes()
    tracemalloc.start()
    try:
        ws.step(X, y, w, idx)
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            ws.step(X, y, w, idx)
        grown = tracemalloc.get_traced_memory()[0] - base
        rss1 = rss_bytes()
        for _ in range(50):
            ws.run_epoch(X, y, w, order, 32)
        grown_epochs = tracemalloc.get_traced_memory()[0] - base
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert grown < 1024, grown
    assert grown_epochs < 1024, grown_epochs
    # no buffer-sized temporary either (a batch of X is 32 * 2048 * 4 = 256 KiB)
    assert peak < 64 << 10, peak
    # nor C-level allocations (which tracemalloc does not see): the resident
    # set does not grow over the 1,000 steps (a leak of one batch per step
    # would be 256 MiB)
    if rss0 is not None and not under_address_sanitizer():
        assert rss1 - rss0 < 1 << 20, (rss0, rss1)


def test_trainer_gradient_mode_and_squared_norm():
    X, y, coefs, intercepts, w = random_problem(11, 2, "relu", n=12)
    ws = _engine.Trainer(coefs, intercepts, 12, "relu", None, 0.5)
    total, sw = ws.gradient(X, y, w)
    rloss, rgW, rgb = ref_backprop(X, y, coefs, intercepts, "relu", 0.5, w)
    assert sw == pytest.approx(w.sum())
    pen = 0.25 * ws.squared_norm() / sw
    assert total / sw + pen == pytest.approx(rloss, rel=1e-13)
    assert ws.squared_norm() == pytest.approx(sum((W * W).sum() for W in coefs), rel=1e-14)
    for g, r in zip(ws.coef_grads + ws.intercept_grads, rgW + rgb):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="solver=None"):
        ws.step(X, y, None, np.arange(3))


# ---------------------------------------------------------------- trainer errors

def test_trainer_errors():
    rng = np.random.default_rng(12)
    coefs, intercepts = random_net(rng, [3, 4, 2])
    X = rng.standard_normal((10, 3))
    y = rng.integers(0, 2, 10)
    ws = _engine.Trainer(coefs, intercepts, 4, "relu", "sgd")
    with pytest.raises(ValueError, match="batch_size"):
        ws.run_epoch(X, y, None, np.arange(10), 5)
    with pytest.raises(ValueError, match="order"):
        ws.run_epoch(X, y, None, np.array([0, 10]), 4)
    with pytest.raises(ValueError, match="order"):
        ws.run_epoch(X, y, None, np.array([-1]), 4)
    with pytest.raises(ValueError, match="label"):
        ws.run_epoch(X, np.full(10, 2), None, np.arange(10), 4)
    with pytest.raises(ValueError, match="sample_weight"):
        ws.run_epoch(X, y, -np.ones(10), np.arange(10), 4)
    with pytest.raises(TypeError, match="y must hold integer"):
        ws.run_epoch(X, y.astype(float), None, np.arange(10), 4)
    with pytest.raises(TypeError, match="order"):
        ws.run_epoch(X, y, None, np.arange(10.0), 4)
    with pytest.raises(TypeError, match="X"):
        ws.run_epoch(X.astype(np.float32), y, None, np.arange(10), 4)
    with pytest.raises(ValueError, match="X"):
        ws.run_epoch(np.asfortranarray(X), y, None, np.arange(10), 4)
    with pytest.raises(ValueError, match="read-only"):
        ro = [c.copy() for c in coefs]
        ro[0].flags.writeable = False
        _engine.Trainer(ro, intercepts, 4)
    with pytest.raises(ValueError, match="solver"):
        _engine.Trainer(coefs, intercepts, 4, "relu", "lbfgs")
    with pytest.raises(ValueError, match="intercepts\\[0\\]"):
        _engine.Trainer(coefs, [intercepts[0][:2], intercepts[1]], 4)
    with pytest.raises(ValueError, match="shapes"):
        ws.bind(*random_net(rng, [3, 5, 2]))


# ---------------------------------------------------------------- validation

@pytest.fixture
def net():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    coefs, intercepts = random_net(rng, [3, 4, 3])
    return X, y, coefs, intercepts


def _both(net, **kw):
    """Call forward (where the argument applies) and backprop."""
    X, y, coefs, intercepts = net
    args = dict(X=X, y=y, coefs=coefs, intercepts=intercepts)
    args.update(kw)
    yield lambda: backprop(args["X"], args["y"], args["coefs"], args["intercepts"],
                           **{k: v for k, v in args.items()
                              if k in ("activation", "alpha", "sample_weight")})
    if not set(kw) & {"y", "alpha", "sample_weight"}:
        yield lambda: forward(args["X"], args["coefs"], args["intercepts"],
                              **{k: v for k, v in args.items() if k == "activation"})


def _raises(net, exc, match, **kw):
    for call in _both(net, **kw):
        with pytest.raises(exc, match=match):
            call()


def test_coefs_not_a_sequence(net):
    _raises(net, TypeError, "coefs must be a list or tuple", coefs=np.zeros((3, 3)))


def test_intercepts_not_a_sequence(net):
    _raises(net, TypeError, "intercepts must be a list or tuple", intercepts=None)


def test_coefs_empty(net):
    _raises(net, ValueError, "coefs must hold at least one layer", coefs=[], intercepts=[])


def test_coefs_intercepts_length_mismatch(net):
    _raises(net, ValueError, "coefs has 2 layers but intercepts has 1",
            intercepts=net[3][:1])


def test_first_layer_does_not_match_X(net):
    _raises(net, ValueError, r"coefs\[0\] has 3 rows but X's width is 2", X=net[0][:, :2])


def test_layers_do_not_chain(net):
    coefs = [net[2][0], net[2][1][:3]]
    _raises(net, ValueError, r"coefs\[1\] has 3 rows but coefs\[0\] columns is 4", coefs=coefs)


def test_intercept_length_mismatch(net):
    ints = [net[3][0], net[3][1][:2]]
    _raises(net, ValueError, r"intercepts\[1\] has 2 entries but coefs\[1\] has 3 columns",
            intercepts=ints)


def test_coefs_wrong_ndim(net):
    _raises(net, ValueError, r"coefs\[1\] must be 2-D", coefs=[net[2][0], net[2][1].ravel()])


def test_X_wrong_ndim(net):
    _raises(net, ValueError, "X must be 2-D", X=net[0].ravel())


def test_dtype_mix_names_the_arrays(net):
    coefs = [net[2][0], net[2][1].astype(np.float32)]
    _raises(net, TypeError, r"float32 for coefs\[1\] and float64 for X, coefs\[0\]",
            coefs=coefs)
    _raises(net, TypeError, r"float32 for X and float64", X=net[0].astype(np.float32))


def test_integer_X_is_rejected(net):
    _raises(net, TypeError, "X must be float32 or float64", X=np.ones((6, 3), dtype=np.int64))


def test_non_float_parameters_are_rejected(net):
    _raises(net, TypeError, r"intercepts\[0\] must be float32 or float64",
            intercepts=[net[3][0].astype(complex), net[3][1]])
    _raises(net, TypeError, r"coefs\[0\] must be float32 or float64",
            coefs=[net[2][0] > 0, net[2][1]])


def test_output_layer_needs_two_units(net):
    X, y, coefs, intercepts = net
    coefs = [coefs[0], coefs[1][:, :1]]
    intercepts = [intercepts[0], intercepts[1][:1]]
    _raises(net, ValueError, "needs at least 2 classes", coefs=coefs, intercepts=intercepts,
            y=np.zeros(6, int))


def test_empty_layer(net):
    coefs = [net[2][0][:, :0], net[2][1][:0]]
    ints = [net[3][0][:0], net[3][1]]
    _raises(net, ValueError, r"coefs\[0\] has no columns", coefs=coefs, intercepts=ints)


def test_labels_out_of_range(net):
    _raises(net, ValueError, r"y holds label 3, outside \[0, 3\)", y=np.array([0, 1, 2, 3, 0, 1]))
    _raises(net, ValueError, "y holds label -1", y=np.array([0, 1, 2, -1, 0, 1]))


def test_labels_not_integer(net):
    _raises(net, TypeError, "y must hold integer class labels", y=np.zeros(6))


def test_labels_ragged(net):
    _raises(net, TypeError, r"y must be an array", y=[0, [1], 2, 0, 1, 2])


def test_labels_wrong_length(net):
    _raises(net, ValueError, "y has 5 labels but X has 6 rows", y=np.zeros(5, int))


def test_unknown_activation(net):
    _raises(net, ValueError, "activation must be one of .*'softplus'", activation="softplus")
    _raises(net, TypeError, "activation must be one of", activation=None)


def test_alpha_invalid(net):
    _raises(net, ValueError, "alpha must be finite and >= 0", alpha=-1.0)
    _raises(net, ValueError, "alpha must be finite and >= 0", alpha=np.nan)
    _raises(net, TypeError, "alpha must be a real number", alpha="0.1")


def test_sample_weight_invalid(net):
    _raises(net, ValueError, "sample_weight has 5 weights", sample_weight=np.ones(5))
    _raises(net, ValueError, "sample_weight must be non-negative",
            sample_weight=np.array([1, 1, -1, 1, 1, 1.0]))
    _raises(net, ValueError, "sample_weight is all zero", sample_weight=np.zeros(6))
    _raises(net, ValueError, "sample_weight must be finite",
            sample_weight=np.array([1, 1, np.nan, 1, 1, 1.0]))
    _raises(net, TypeError, "sample_weight must hold real numbers",
            sample_weight=np.array(["a"] * 6))


def test_no_rows(net):
    X, y, coefs, intercepts = net
    with pytest.raises(ValueError, match="X has no rows"):
        backprop(X[:0], y[:0], coefs, intercepts)
    assert forward(X[:0], coefs, intercepts).shape == (0, 3)


def test_malformed_csr_is_an_error_not_a_crash():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(14)
    X = sp.random(20, 6, density=0.5, format="csr", random_state=0)
    y = rng.integers(0, 2, 20)
    coefs, intercepts = random_net(rng, [6, 4, 2])
    ws = _engine.Trainer(coefs, intercepts, 8, "relu", "sgd")
    out = np.empty((20, 2))
    bad_col = X.copy()
    bad_col.indices[3] = 6                        # a column outside [0, 6)
    bad_ptr = X.copy()
    bad_ptr.indptr[5] = bad_ptr.indptr[4] - 1     # decreasing indptr
    bad_end = X.copy()
    bad_end.indptr[-1] = X.nnz + 100               # past the end of data
    for Xb in (bad_col, bad_ptr, bad_end):
        with pytest.raises(ValueError, match="malformed CSR"):
            ws.run_epoch(Xb, y, None, np.arange(20), 8)
        with pytest.raises(ValueError, match="malformed CSR"):
            _engine.forward_into(Xb, coefs, intercepts, "relu", out, "proba")
