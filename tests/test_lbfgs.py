"""solver="lbfgs" (``_lbfgs``): the objective against finite differences, the
fit against scikit-learn's MLPClassifier(solver="lbfgs"), the limits
(max_iter, max_fun) and their warnings, float32, sample weights, the
estimator contract (check_estimator, partial_fit refused, parameter checks)
and save/load of max_fun."""

import io
import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import cysoftmax
from cysoftmax import Classifier, _lbfgs


def _tiny(dtype=np.float64, seed=0, n=13, sizes=(4, 5, 3, 3)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    y[:sizes[-1]] = np.arange(sizes[-1])
    coefs = [rng.normal(scale=0.7, size=(a, b)).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    intercepts = [rng.normal(scale=0.3, size=b).astype(dtype) for b in sizes[1:]]
    return X, y, coefs, intercepts


# ---------------------------------------------------------------------------
# the objective


@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu"])
@pytest.mark.parametrize("weighted", [False, True])
def test_objective_gradient_matches_finite_differences(activation, weighted):
    X, y, coefs, intercepts = _tiny()
    w = np.random.default_rng(1).uniform(0.1, 3.0, X.shape[0]) if weighted else None
    buf, c, b = _lbfgs.flat_network(coefs, intercepts, np.float64)
    f = _lbfgs.Objective(buf, c, b, activation, 0.3, X, y, w)
    x0 = buf.copy()
    _, g = f(x0)
    g = g.copy()
    h = 1e-6
    fd = np.empty_like(x0)
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = h
        fd[i] = (f(x0 + e)[0] - f(x0 - e)[0]) / (2 * h)
    # central differences of a smooth function: error ~ h^2 f''' + eps f / h ~ 1e-9
    # (relu: no kink lies within h of these points for this draw)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_objective_loss_is_the_penalized_mean_nll():
    X, y, coefs, intercepts = _tiny()
    buf, c, b = _lbfgs.flat_network(coefs, intercepts, np.float64)
    alpha = 0.3
    loss, _ = _lbfgs.Objective(buf, c, b, "tanh", alpha, X, y)(buf.copy())
    a = X
    for l, (W, bb) in enumerate(zip(coefs, intercepts)):
        a = a @ W + bb
        if l < len(coefs) - 1:
            a = np.tanh(a)
    z = a - a.max(axis=1, keepdims=True)
    nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    ref = nll.mean() + alpha / (2 * len(y)) * sum((W ** 2).sum() for W in coefs)
    assert loss == pytest.approx(ref, rel=1e-12)


def test_flat_network_views_one_buffer():
    _, _, coefs, intercepts = _tiny()
    buf, c, b = _lbfgs.flat_network(coefs, intercepts, np.float32)
    assert all(a.base is buf and a.dtype == np.float32 and a.flags.c_contiguous for a in c + b)
    ref = np.concatenate([a.ravel() for a in coefs + intercepts]).astype(np.float32)
    np.testing.assert_array_equal(buf, ref)        # scikit-learn's _pack order
    buf[...] = 0
    assert not any(a.any() for a in c + b)


# ---------------------------------------------------------------------------
# against MLPClassifier(solver="lbfgs")


def _digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _synthetic():
    return make_classification(n_samples=2000, n_features=20, n_informative=10, n_classes=3,
                               random_state=0)


# Measured here (random_state 0 and 1): the same iterations, loss_ equal to 6+
# digits and the same held-out accuracy (digits: 54/72 iterations, loss
# 1.5e-4/1.1e-4, accuracy 0.961/0.967; synthetic: 100 iterations, loss
# 0.0434/0.0427, accuracy 0.820/0.853).  Same initial draws and the same
# objective make the same path until rounding separates them; the bounds
# leave room for another BLAS, and an objective off by a term fails them.
@pytest.mark.parametrize("problem, kw", [
    (_digits, dict(hidden_layer_sizes=(32,), max_iter=100)),
    (_synthetic, dict(hidden_layer_sizes=(16,), activation="tanh", max_iter=100)),
], ids=["digits", "synthetic"])
@pytest.mark.parametrize("random_state", [0, 1])
def test_matches_mlpclassifier(problem, kw, random_state):
    X, y = problem()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = Classifier(solver="lbfgs", random_state=random_state, **kw).fit(Xtr, ytr)
        ref = MLPClassifier(solver="lbfgs", random_state=random_state, **kw).fit(Xtr, ytr)
    assert ours.n_iter_ <= kw["max_iter"]
    assert ours.loss_ == pytest.approx(ref.loss_, rel=0.05)
    assert abs(ours.score(Xte, yte) - ref.score(Xte, yte)) <= 0.01
    assert len(ours.loss_curve_) == ours.n_iter_
    assert ours.loss_curve_[-1] == pytest.approx(ours.loss_, rel=1e-12)


# ---------------------------------------------------------------------------
# limits


def test_max_iter_stops_with_a_convergence_warning():
    X, y = _digits()
    clf = Classifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=7, random_state=0)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf.fit(X, y)
    assert clf.n_iter_ == 7
    assert len(clf.loss_curve_) == 7
    assert np.all(np.diff(clf.loss_curve_) < 0)     # L-BFGS's line search decreases f


def test_max_fun_stops_with_a_convergence_warning():
    X, y = _digits()
    clf = Classifier(hidden_layer_sizes=(16,), solver="lbfgs", max_fun=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf.fit(X, y)
    assert 1 <= clf.n_iter_ <= 5
    assert len(clf.loss_curve_) == clf.n_iter_


def test_converges_without_warning_and_loss_is_at_the_returned_point():
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = Classifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=500, alpha=1e-2,
                         random_state=0).fit(X, y)
    assert clf.n_iter_ < 500
    # loss_ (scipy's fun) is the objective at the weights the model holds
    buf = clf.coefs_[0].base
    f = _lbfgs.Objective(buf, clf.coefs_, clf.intercepts_, "relu", 1e-2, X, y)
    assert f(buf.copy())[0] == pytest.approx(clf.loss_, rel=1e-12)


def test_warm_start_continues_from_the_current_weights():
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = Classifier(warm_start=True, **kw).fit(X, y)
        first = clf.loss_
        cold_start = Classifier(**kw).fit(X, y).loss_curve_[0]
        clf.fit(X, y)
    assert clf.loss_curve_[0] < first < cold_start


def test_divergence_raises_and_leaves_the_estimator_unfitted():
    X, y = _digits()
    clf = Classifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="diverged"):
            clf.fit(X * 1e300, y)               # the logits overflow
    assert not hasattr(clf, "coefs_")


# ---------------------------------------------------------------------------
# dtypes, weights, sparse input


def test_float32_trains_in_float32_close_to_float64():
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        c32 = Classifier(**kw).fit(X.astype(np.float32), y)
        c64 = Classifier(**kw).fit(X, y)
    assert all(a.dtype == np.float32 for a in c32.coefs_ + c32.intercepts_)
    assert c32.predict_proba(X[:3]).dtype == np.float32
    # the same path, apart from float32 rounding (measured: 1e-6 relative)
    np.testing.assert_allclose(c32.loss_curve_, c64.loss_curve_, rtol=1e-3)
    assert np.mean(c32.predict(X) == c64.predict(X)) > 0.99


def test_integer_sample_weights_equal_repeated_rows():
    X, y = _synthetic()
    X, y = X[:300], y[:300]
    w = np.random.default_rng(0).integers(0, 4, X.shape[0])
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, alpha=1e-3,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = Classifier(**kw).fit(X, y, sample_weight=w)
        repeated = Classifier(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.n_iter_ == repeated.n_iter_
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-6)
    for a, b in zip(weighted.coefs_ + weighted.intercepts_,
                    repeated.coefs_ + repeated.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_all_zero_sample_weights_are_refused():
    X, y = _synthetic()
    with pytest.raises(ValueError, match="non-zero"):
        Classifier(solver="lbfgs").fit(X, y, sample_weight=np.zeros(len(y)))


def test_sparse_X_gives_the_dense_model():
    X, y = _synthetic()
    X[np.abs(X) < 1] = 0
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=15, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = Classifier(**kw).fit(X, y)
        csr = Classifier(**kw).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(dense.coefs_[0], csr.coefs_[0])
    assert dense.loss_ == csr.loss_


def test_verbose_prints_each_iteration(capsys):
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Classifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=3, verbose=True,
                   random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Iteration ") == 3 and "L-BFGS" in out


# ---------------------------------------------------------------------------
# the estimator contract


def test_partial_fit_is_not_available():
    clf = Classifier(solver="lbfgs")
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit") as ours:
        clf.partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1])
    assert "lbfgs is not stochastic" in str(ours.value.__cause__)
    with pytest.raises(AttributeError) as theirs:     # as MLPClassifier refuses it
        MLPClassifier(solver="lbfgs").partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1])
    assert str(ours.value).replace("Classifier", "") == \
        str(theirs.value).replace("MLPClassifier", "")
    assert hasattr(Classifier(solver="adam"), "partial_fit")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "x"], ids=repr)
def test_bad_max_fun_is_refused_at_fit(bad):
    clf = Classifier(solver="lbfgs", max_fun=bad)
    with pytest.raises(InvalidParameterError, match="max_fun"):
        clf.fit([[0.0], [1.0]], [0, 1])


def test_save_load_keeps_max_fun():
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = Classifier(hidden_layer_sizes=(8,), solver="lbfgs", max_fun=77, max_iter=5,
                         random_state=0).fit(X, y)
    f = io.BytesIO()
    clf.save(f)
    f.seek(0)
    back = cysoftmax.load(f)
    assert back.max_fun == 77 and back.solver == "lbfgs"
    assert back.n_iter_ == clf.n_iter_ and back.loss_curve_ == clf.loss_curve_
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_load_of_a_file_without_max_fun_takes_the_default():
    # a file written by 0.1, whose params have no max_fun
    X, y = _digits()
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    f = io.BytesIO()
    clf.save(f)
    f.seek(0)
    with np.load(f) as d:
        arrays = {k: d[k] for k in d.files}
    params = json.loads(str(arrays["params"]))
    del params["max_fun"]
    arrays["params"] = np.array(json.dumps(params))
    g = io.BytesIO()
    np.savez(g, **arrays)
    g.seek(0)
    assert cysoftmax.load(g).max_fun == 15000


# Small, fast: a (16,) network on the checks' tiny data sets; max_iter=200
# L-BFGS iterations (MLPClassifier's defaults) fit them with a wide margin.
@parametrize_with_checks([Classifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=200,
                                     random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
