"""The training additions of Classifier v2 in the compiled engine, against
independent references: the new activations' derivatives (finite
differences, PyTorch autograd), dropout (its masks' statistics, the
gradient through a dropped network against a NumPy backprop with the same
mask, reproducibility, rate 0 = no dropout at all), and the cosine schedule
(its closed form, an epoch against single steps at the closed-form rates,
partial_fit / warm_start, epochs read in slices from a memmap)."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, ndtr

import _requires
from cysoftmax import Classifier, backprop, forward
from cysoftmax._engine import Trainer, dropout_mask, scheduled_rate
from cysoftmax.datasets import load_fashion_mnist_sample

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

NEW = ["leaky_relu", "gelu", "silu"]
ALL = ["identity", "logistic", "tanh", "relu"] + NEW

# independent NumPy/SciPy definitions (f, f')
REF = {
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
    "logistic": (expit, lambda z: expit(z) * (1 - expit(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z),
                   lambda z: np.where(z > 0, 1.0, 0.01)),
    "gelu": (lambda z: z * ndtr(z),
             lambda z: ndtr(z) + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)),
    "silu": (lambda z: z * expit(z), lambda z: expit(z) * (1 + z * (1 - expit(z)))),
}


def _net(rng, sizes, dtype=np.float64, scale=1.0):
    coefs = [rng.normal(0, scale / math.sqrt(a), (a, b)).astype(dtype)
             for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [rng.normal(0, 0.3, b).astype(dtype) for b in sizes[1:]]
    return coefs, intercepts


def _np_backprop(X, y, coefs, intercepts, act, alpha=0.0, masks=None):
    """Loss and gradients of the mean NLL + alpha/(2n) sum ||W||^2, in NumPy;
    masks[l] multiplies hidden layer l's activation (dropout)."""
    f, df = REF[act]
    n = X.shape[0]
    A, Z = [X], []
    for l, (W, b) in enumerate(zip(coefs, intercepts)):
        z = A[-1] @ W + b
        Z.append(z)
        if l < len(coefs) - 1:
            a = f(z)
            if masks is not None:
                a = a * masks[l]
            A.append(a)
    z = Z[-1]
    r = z.max(axis=1, keepdims=True)
    lse = r[:, 0] + np.log(np.exp(z - r).sum(axis=1))
    loss = np.mean(lse - z[np.arange(n), y]) + 0.5 * alpha * sum((W ** 2).sum() for W in coefs) / n
    D = np.exp(z - lse[:, None])
    D[np.arange(n), y] -= 1
    D /= n
    gW, gb = [None] * len(coefs), [None] * len(coefs)
    for l in range(len(coefs) - 1, -1, -1):
        gW[l] = A[l].T @ D + alpha / n * coefs[l]
        gb[l] = D.sum(axis=0)
        if l:
            D = (D @ coefs[l].T) * df(Z[l - 1])
            if masks is not None:
                D = D * masks[l - 1]
    return loss, gW, gb


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------

@pytest.mark.parametrize("act", ALL)
def test_forward_matches_the_definitions(act):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    coefs, intercepts = _net(rng, [6, 9, 7, 4], scale=3.0)
    f, _ = REF[act]
    a = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        a = f(a @ W + b)
    z = a @ coefs[-1] + intercepts[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert_allclose(forward(X, coefs, intercepts, activation=act), p, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("act", ALL)
def test_backprop_against_numpy_and_finite_differences(act):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    y = rng.integers(0, 3, 40)
    coefs, intercepts = _net(rng, [5, 8, 6, 3], scale=2.0)
    loss, gW, gb = backprop(X, y, coefs, intercepts, activation=act, alpha=0.3)
    ref_loss, rW, rb = _np_backprop(X, y, coefs, intercepts, act, alpha=0.3)
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    for a, b in zip(gW + gb, rW + rb):
        assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    # central differences of the loss itself, entry by entry of the first layer
    h = 1e-6
    for (i, j) in [(0, 0), (2, 3), (4, 7), (1, 5)]:
        cp = [c.copy() for c in coefs]
        cm = [c.copy() for c in coefs]
        cp[0][i, j] += h
        cm[0][i, j] -= h
        fd = (backprop(X, y, cp, intercepts, activation=act, alpha=0.3)[0]
              - backprop(X, y, cm, intercepts, activation=act, alpha=0.3)[0]) / (2 * h)
        assert gW[0][i, j] == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("act", NEW)
def test_new_activations_against_torch_autograd(act):
    torch = _requires.import_module("torch", "torch")
    F = torch.nn.functional
    fn = {"leaky_relu": lambda t: F.leaky_relu(t, 0.01), "gelu": lambda t: F.gelu(t),
          "silu": F.silu}[act]
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 7))
    y = rng.integers(0, 4, 64)
    coefs, intercepts = _net(rng, [7, 16, 12, 4], scale=2.5)
    # some pre-activations exactly 0 for leaky_relu's kink (PyTorch: slope there)
    loss, gW, gb = backprop(X, y, coefs, intercepts, activation=act)
    tW = [torch.tensor(c, requires_grad=True) for c in coefs]
    tb = [torch.tensor(b, requires_grad=True) for b in intercepts]
    a = torch.tensor(X)
    for W, b in zip(tW[:-1], tb[:-1]):
        a = fn(a @ W + b)
    tl = F.cross_entropy(a @ tW[-1] + tb[-1], torch.tensor(y))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-13)
    for ours, t in zip(gW + gb, tW + tb):
        assert_allclose(ours, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("act", NEW)
def test_float32_stays_float32_and_close_to_float64(act):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 5))
    y = rng.integers(0, 3, 30)
    coefs, intercepts = _net(rng, [5, 8, 3])
    l64, g64, _ = backprop(X, y, coefs, intercepts, activation=act)
    l32, g32, _ = backprop(X.astype(np.float32), y, [c.astype(np.float32) for c in coefs],
                           [b.astype(np.float32) for b in intercepts], activation=act)
    assert all(g.dtype == np.float32 for g in g32)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for a, b in zip(g32, g64):
        assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def test_gelu_is_exact_far_in_the_negative_tail():
    # 1 + erf(z / sqrt 2) cancels for z << 0; z Phi(z) through erfc does not
    z = np.array([[-8.0, -20.0, -30.0]])
    out = forward(z, [np.eye(3)], [np.zeros(3)], activation="gelu")   # no hidden layer: softmax
    assert out.shape == (1, 3)
    coefs = [np.eye(3), np.eye(3)]
    intercepts = [np.zeros(3), np.zeros(3)]
    got = forward(z, coefs, intercepts, activation="gelu")
    a = z * ndtr(z)                       # tiny but exact negatives, e.g. -8 * 6.2e-16
    p = np.exp(a - a.max())
    assert_allclose(got, p / p.sum(), rtol=1e-15)
    assert np.all(a < 0)


# --------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.9])
def test_dropout_mask_statistics(rate):
    m = dropout_mask(2000, 500, rate, seed=12345, batch=3, layer=1)
    n = m.size
    zero = (m == 0).mean()
    p = round(rate * 65536) / 65536           # the rate as drawn (16-bit resolution)
    # binomial: 6 standard deviations
    assert abs(zero - p) < 6 * math.sqrt(p * (1 - p) / n)
    kept = m[m != 0]
    assert_array_equal(np.unique(kept), [1.0 / (1.0 - p)])
    # inverted dropout keeps the expected activation
    assert abs(m.mean() - 1.0) < 6 * math.sqrt(p / (1 - p) / n)
    # no structure along rows, columns or the 4 lanes of one draw
    assert abs((m[:, ::2] == 0).mean() - (m[:, 1::2] == 0).mean()) < 8 * math.sqrt(p / n)
    lanes = (m.reshape(-1, 4) == 0).mean(axis=0)
    assert np.ptp(lanes) < 10 * math.sqrt(p * (1 - p) * 4 / n)


def test_dropout_masks_differ_by_seed_batch_and_layer_and_are_pure():
    base = dropout_mask(100, 100, 0.5, seed=1, batch=0, layer=0)
    assert_array_equal(base, dropout_mask(100, 100, 0.5, seed=1, batch=0, layer=0))
    for other in (dropout_mask(100, 100, 0.5, seed=2, batch=0, layer=0),
                  dropout_mask(100, 100, 0.5, seed=1, batch=1, layer=0),
                  dropout_mask(100, 100, 0.5, seed=1, batch=0, layer=1)):
        agree = ((base == 0) == (other == 0)).mean()
        assert abs(agree - 0.5) < 0.03           # independent masks agree half the time


def test_expected_activation_is_preserved_over_many_masks():
    # E[mask * a] = a: average the dropped activations of one batch over epochs
    rng = np.random.default_rng(4)
    a = rng.uniform(0.5, 2.0, (64, 32))
    acc = np.zeros_like(a)
    k = 400
    for seed in range(k):
        acc += dropout_mask(64, 32, 0.3, seed=seed, batch=0, layer=0) * a
    p = round(0.3 * 65536) / 65536
    sd = a * math.sqrt(p / (1 - p) / k)
    assert np.all(np.abs(acc / k - a) < 6 * sd)


@pytest.mark.parametrize("act", ["relu", "tanh", "logistic", "gelu", "silu", "leaky_relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_gradient_against_numpy_with_the_same_mask(act, dtype):
    """One plain-SGD step (lr 1, no L2) through a dropped network changes the
    weights by minus the gradient that NumPy computes with the same masks."""
    rng = np.random.default_rng(5)
    n, sizes = 32, [6, 10, 9, 4]
    X = rng.normal(size=(n, 6)).astype(dtype)
    y = rng.integers(0, 4, n)
    coefs, intercepts = _net(rng, sizes, dtype=dtype, scale=2.0)
    rates = [0.3, 0.6]
    masks = [dropout_mask(n, sizes[l + 1], rates[l], seed=99, batch=0, layer=l)
             for l in range(2)]
    assert all((mk == 0).any() for mk in masks)
    ref_loss, rW, rb = _np_backprop(X.astype(np.float64), y,
                                    [c.astype(np.float64) for c in coefs],
                                    [b.astype(np.float64) for b in intercepts], act,
                                    masks=masks)
    W0 = [c.copy() for c in coefs]
    b0 = [b.copy() for b in intercepts]
    tr = Trainer(coefs, intercepts, n, act, "sgd", momentum=0.0, dropout=rates)
    loss = tr.step(X, y, None, np.arange(n), lr=1.0, seed=99)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-5)
    assert loss / n == pytest.approx(ref_loss, rel=tol["rtol"])
    for new, old, g in zip(coefs + intercepts, W0 + b0, rW + rb):
        assert_allclose(old - new, g, **tol)


def test_dropout_is_never_applied_in_prediction_or_gradient():
    X, y = load_fashion_mnist_sample("train")
    X, y = X[:400], y[:400]
    clf = Classifier((32, 16), dropout=0.5, max_iter=3, random_state=0).fit(X, y)
    p1 = clf.predict_proba(X)
    assert_array_equal(p1, clf.predict_proba(X))
    assert_allclose(p1, forward(X, clf.coefs_, clf.intercepts_), rtol=1e-6, atol=1e-7)
    tr = Trainer(clf.coefs_, clf.intercepts_, 400, "relu", None, dropout=0.5)
    free = Trainer(clf.coefs_, clf.intercepts_, 400, "relu", None)
    assert tr.gradient(X, y)[0] == free.gradient(X, y)[0]


def _fit(**kw):
    X, y = load_fashion_mnist_sample("train")
    return Classifier((48, 24), max_iter=3, batch_size=64, random_state=0, **kw).fit(
        X[:1000], y[:1000])


def test_dropout_same_seed_same_bits_other_seed_other_model():
    a, b = _fit(dropout=0.3), _fit(dropout=0.3)
    for c1, c2 in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(c1, c2)
    X, y = load_fashion_mnist_sample("train")
    c = Classifier((48, 24), max_iter=3, batch_size=64, random_state=1, dropout=0.3).fit(
        X[:1000], y[:1000])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_dropout_rate_zero_is_no_dropout_bit_for_bit():
    ref = _fit()
    for kw in (dict(dropout=0.0), dict(dropout=[0.0, 0.0])):
        got = _fit(**kw)
        for c1, c2 in zip(ref.coefs_ + ref.intercepts_, got.coefs_ + got.intercepts_):
            assert_array_equal(c1, c2)
        assert got.loss_curve_ == ref.loss_curve_


def test_dropout_changes_training_and_per_layer_rates_apply():
    ref, one = _fit(), _fit(dropout=[0.0, 0.5])
    assert not np.array_equal(ref.coefs_[0], one.coefs_[0])
    assert Trainer(one.coefs_, one.intercepts_, 8, "relu", None, dropout=[0.0, 0.5]).dropout \
        == (0.0, 0.5)


# --------------------------------------------------------------------------
# the cosine schedule
# --------------------------------------------------------------------------

def _closed_form(lr0, step, nb, warmup, total):
    p = step / nb
    if p < warmup:
        return lr0 * min(1.0, (step + 1) / (warmup * nb))
    u = (p - warmup) / (total - warmup)
    return 0.0 if u >= 1 else lr0 * (1 + math.cos(math.pi * u)) / 2


@pytest.mark.parametrize("warmup", [0, 1, 2.5])
def test_scheduled_rate_against_the_closed_form(warmup):
    nb, total, lr0 = 7, 10, 0.05
    for step in [0, 1, 6, 7, 13, 17, 18, 35, 69, 70, 100]:
        e, k = divmod(step, nb)
        got = scheduled_rate(lr0, e, k, nb, warmup, total)
        assert got == pytest.approx(_closed_form(lr0, step, nb, warmup, total), rel=1e-14,
                                    abs=1e-18)
    # landmarks: the peak right after the warm-up, half way, 0 at the end
    assert scheduled_rate(lr0, 0, 0, nb, 0, total) == lr0
    assert scheduled_rate(lr0, 5, 0, nb, 0, total) == pytest.approx(lr0 / 2)
    assert scheduled_rate(lr0, 10, 0, nb, 0, total) == 0.0
    if warmup == 1:
        assert scheduled_rate(lr0, 0, 0, nb, 1, total) == pytest.approx(lr0 / nb)
        assert scheduled_rate(lr0, 0, nb - 1, nb, 1, total) == pytest.approx(lr0)
        rates = [scheduled_rate(lr0, 0, k, nb, 1, total) for k in range(nb)]
        assert np.all(np.diff(rates) > 0)


def test_warm_up_never_passes_lr0():
    # warmup * n_batches not a whole number: the last warm-up batch is capped
    assert scheduled_rate(1.0, 0, 0, 10, 0.05, 10) == 1.0
    assert scheduled_rate(1.0, 0, 1, 3, 0.5, 10) == 1.0
    rates = [scheduled_rate(1.0, e, k, 7, 2.3, 10) for e in range(10) for k in range(7)]
    assert max(rates) == 1.0 and min(rates) > 0


def test_partial_fit_draws_new_dropout_masks_every_call(monkeypatch):
    # partial_fit re-seeds from random_state on every call (as MLPClassifier,
    # the same shuffle each call); the masks still change from epoch to epoch
    X, y = load_fashion_mnist_sample("train")
    X, y = X[:300], y[:300]
    keys = []
    real = Classifier._run_epoch

    def spy(self, *args, **kwargs):
        keys.append(args[-1])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, "_run_epoch", spy)
    clf = Classifier((8,), dropout=0.5, random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.unique(y))
    assert len(set(keys)) == 3


@pytest.mark.parametrize("solver,momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9)])
def test_a_cosine_epoch_equals_single_steps_at_the_closed_form_rates(solver, momentum):
    rng = np.random.default_rng(6)
    n, b = 100, 16
    X = rng.normal(size=(n, 8))
    y = rng.integers(0, 3, n)
    ca, ia = _net(rng, [8, 12, 3])
    cb, ib = [c.copy() for c in ca], [v.copy() for v in ia]
    A = Trainer(ca, ia, b, "relu", solver, momentum=momentum)
    B = Trainer(cb, ib, b, "relu", solver, momentum=momentum)
    order = rng.permutation(n)
    nb = -(-n // b)
    lr0, done, warmup, total = 0.1, 2, 1, 5
    A.run_epoch(X, y, None, order, b, schedule=(lr0, done, warmup, total, nb))
    for k in range(nb):
        B.step(X, y, None, order[k * b:(k + 1) * b],
               lr=_closed_form(lr0, done * nb + k, nb, warmup, total))
    for u, v in zip(ca + ia, cb + ib):
        assert_allclose(u, v, rtol=1e-14, atol=1e-16)


def test_cosine_fit_equals_partial_fit_calls_and_warm_start_restarts():
    X, y = load_fashion_mnist_sample("train")
    X, y = X[:600], y[:600]
    kw = dict(hidden_layer_sizes=(16,), learning_rate="cosine", warmup_epochs=1, max_iter=4,
              shuffle=False, random_state=0, batch_size=100, n_iter_no_change=100)
    full = Classifier(**kw).fit(X, y)
    part = Classifier(**kw)
    for _ in range(4):
        part.partial_fit(X, y, classes=np.unique(y))
    for u, v in zip(full.coefs_, part.coefs_):
        assert_array_equal(u, v)
    # past max_iter epochs the rate is 0: nothing changes, and a warning says why
    before = [c.copy() for c in part.coefs_]
    with pytest.warns(UserWarning, match="cosine schedule ended"):
        part.partial_fit(X, y)
    for u, v in zip(before, part.coefs_):
        assert_array_equal(u, v)
    # a warm-start fit starts a new schedule: the same as a fresh fit from those weights
    ws = Classifier(warm_start=True, **kw).fit(X, y)
    start = [c.copy() for c in ws.coefs_], [b.copy() for b in ws.intercepts_]
    ws.fit(X, y)
    assert not np.array_equal(start[0][0], ws.coefs_[0])


def test_cosine_and_dropout_through_a_memmap_in_slices(tmp_path, monkeypatch):
    from cysoftmax import _mmap
    X, y = load_fashion_mnist_sample("train")
    X, y = np.ascontiguousarray(X[:700]), y[:700]
    path = tmp_path / "X.npy"
    np.save(path, X)
    kw = dict(hidden_layer_sizes=(16, 8), learning_rate="cosine", warmup_epochs=1, max_iter=3,
              dropout=0.3, random_state=0, batch_size=50)
    ref = Classifier(**kw).fit(X, y)
    monkeypatch.setattr(_mmap, "_MAPPED_SLICE_BYTES", 2 * 50 * 784 * 4)  # 2 batches a slice
    got = Classifier(**kw).fit(np.load(path, mmap_mode="r"), y)
    for u, v in zip(ref.coefs_ + ref.intercepts_, got.coefs_ + got.intercepts_):
        assert_array_equal(u, v)


def test_cosine_first_epoch_is_a_step_at_lr0():
    # one batch per epoch: the first epoch's rate is learning_rate_init itself
    X, y = load_fashion_mnist_sample("train")
    X, y = X[:300], y[:300]
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, batch_size=300,
              random_state=0, shuffle=False)
    one = Classifier(learning_rate_init=0.5, max_iter=1, **kw).fit(X, y)
    first = Classifier(learning_rate="cosine", learning_rate_init=0.5, max_iter=3, **kw)
    first.partial_fit(X, y, classes=np.unique(y))
    assert_array_equal(first.coefs_[0], one.coefs_[0])


# --------------------------------------------------------------------------
# the main job's recipe on full Fashion-MNIST
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_the_example_recipe_reaches_0_897_on_full_fashion_mnist(capsys):
    """README's first command (examples/train_fashion_mnist.py, its defaults),
    seed 0: the three-seed mean is in benchmarks/bench_fashion_mnist.py."""
    import importlib.util
    from pathlib import Path

    from cysoftmax.datasets import load_fashion_mnist
    try:
        load_fashion_mnist("test", download=False)
    except FileNotFoundError as exc:
        _requires.missing("fashion-mnist", f"full Fashion-MNIST not installed: {exc}")
    path = Path(__file__).resolve().parents[1] / "examples" / "train_fashion_mnist.py"
    if not path.exists():
        _requires.missing("checkout", f"{path} is not there")
    spec = importlib.util.spec_from_file_location("train_fashion_mnist_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    acc = module.main(["--no-plots", "--no-download", "--seed", "0"])
    out = capsys.readouterr().out
    assert "full Fashion-MNIST" in out and "recipe:" in out
    # no more multiply-adds per sample than 784-256-128-10, at most 20 epochs
    assert "784-256-128-10" in out and "20 epochs" in out
    assert acc >= 0.897, acc
