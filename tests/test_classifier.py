"""Tests of cysoftmax.Classifier: the scikit-learn contract (the full
estimator check suite, meta-estimators, pickling), save/load and refusing
tampered files, determinism, dtypes and sparse input, early stopping,
verbose output, divergence, Ctrl-C, labels, and accuracy on Fashion-MNIST
(the embedded sample; the full data set in a slow test)."""

import importlib.util
import inspect
import io
import pickle
import re
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import _requires
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

import cysoftmax
from cysoftmax import Classifier, load
from cysoftmax.datasets import load_fashion_mnist, load_fashion_mnist_sample

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_fashion_mnist.py"

# ConvergenceWarning is expected from short runs; silence it for the module
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---------------------------------------------------------------------------
# data and helpers


@pytest.fixture(scope="module")
def fmnist():
    """The embedded Fashion-MNIST sample: 3,000 train / 1,000 test, float32 in [0, 1]."""
    X, y = load_fashion_mnist_sample("train")
    Xt, yt = load_fashion_mnist_sample("test")
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def small(fmnist):
    """1,000 training images: enough for every behaviour test, fast on 2 cores."""
    X, y, Xt, yt = fmnist
    return np.ascontiguousarray(X[:1000]), y[:1000].copy(), Xt, yt


def blobs(n=150, centers=4, n_features=5, seed=0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=n_features, random_state=seed)
    return StandardScaler().fit_transform(X), y


def same_weights(a, b):
    return (all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))
            and all(np.array_equal(p, q) for p, q in zip(a.intercepts_, b.intercepts_)))


def fitted_state(clf):
    """The fitted attributes, copied, for 'unchanged' comparisons."""
    keys = sorted(k for k in vars(clf) if k.endswith("_") and not k.startswith("__"))
    out = {}
    for k in keys:
        v = getattr(clf, k)
        out[k] = [w.copy() for w in v] if k in ("coefs_", "intercepts_") else pickle.dumps(v)
    return out


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if k in ("coefs_", "intercepts_"):
            assert all(np.array_equal(p, q) for p, q in zip(a[k], b[k])), k
        else:
            assert a[k] == b[k], k


def numpy_logits(clf, X):
    """The network's logits, computed independently of the compiled forward pass."""
    act = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "identity": lambda a: a,
           "logistic": lambda a: 1 / (1 + np.exp(-a))}[clf.activation]
    a = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        a = a @ W.astype(np.float64) + b
        if i < len(clf.coefs_) - 1:
            a = act(a)
    return a


# ---------------------------------------------------------------------------
# the scikit-learn contract

# Small, fast instances: a (16,) network on the checks' tiny data sets; a
# learning rate of 0.01 (MLPClassifier's test instance uses max_iter=100 with
# 100 units) lets 100 epochs reach check_classifiers_train's 0.83 training
# accuracy with a wide margin (0.94-0.98).  No check is marked as expected
# to fail.
CHECKED = [
    Classifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0),
    Classifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.05, max_iter=100,
               random_state=0),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_parameters_are_mlpclassifiers():
    ours = Classifier().get_params()
    theirs = MLPClassifier().get_params()
    # MLPClassifier's parameters with its defaults, then ours alone, each at
    # the default that trains as MLPClassifier; in the constructor, its
    # parameters in its order (max_fun last), then ours
    assert {k: ours[k] for k in theirs} == theirs
    names = list(inspect.signature(Classifier).parameters)
    assert names[:len(theirs)] == list(inspect.signature(MLPClassifier).parameters)
    assert {k: v for k, v in ours.items() if k not in theirs} == dict(
        class_weight=None, dropout=0.0, label_smoothing=0.0, warmup_epochs=0,
        early_stopping_metric="accuracy")
    assert set(Classifier._parameter_constraints) == set(ours)
    with pytest.raises(ValueError, match="solver"):
        Classifier(solver="newton").fit([[0.0], [1.0]], [0, 1])


@pytest.mark.parametrize("kw", [
    dict(solver="adam"),
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1),
    dict(activation="tanh", alpha=0.01),
    dict(activation="logistic", alpha=0.1),
])
def test_matches_mlpclassifier_full_batch(kw):
    # one batch per epoch (no shuffling effect) and the same initialization
    # draws: the same optimization as MLPClassifier, to rounding
    X, y = blobs()
    ours = Classifier(hidden_layer_sizes=(7,), max_iter=15, batch_size=len(X), random_state=0,
                      **kw).fit(X, y)
    ref = MLPClassifier(hidden_layer_sizes=(7,), max_iter=15, batch_size=len(X),
                        random_state=0, **kw).fit(X, y)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.t_ == ref.t_
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_allclose(a, b, rtol=0, atol=1e-12)
    # our epoch loss adds the L2 term with the end-of-epoch weights
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-5)
    assert_allclose(ours.best_loss_, ref.best_loss_, rtol=1e-5)


def test_fitted_attributes(small):
    X, y, _, _ = small
    clf = Classifier(hidden_layer_sizes=(16, 8), max_iter=3, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, np.arange(10))
    assert [c.shape for c in clf.coefs_] == [(784, 16), (16, 8), (8, 10)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (8,), (10,)]
    assert clf.n_features_in_ == 784 and not hasattr(clf, "feature_names_in_")
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3 and clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.t_ == 3 * len(X)
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10 and clf.out_activation_ == "softmax"


def test_pipeline_gridsearch_cross_val_clone(small):
    X, y, Xt, yt = small
    X, y = X[:600] * 255, y[:600]        # unscaled: the pipeline's scaler handles it
    pipe = make_pipeline(StandardScaler(), Classifier(hidden_layer_sizes=(16,), max_iter=10,
                                                      random_state=0))
    pipe.fit(X, y)
    assert pipe.score(Xt * 255, yt) > 0.6
    grid = GridSearchCV(pipe, {"classifier__alpha": [1e-4, 1e-1]}, cv=2).fit(X, y)
    assert grid.best_params_["classifier__alpha"] in (1e-4, 1e-1)
    assert grid.predict(Xt[:10] * 255).shape == (10,)
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.5)
    clf = pipe[-1]
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        twin.predict(X)
    twin.fit(StandardScaler().fit_transform(X), y)      # clone + refit: the same model
    assert same_weights(twin, clf)


def test_pickle_round_trip(small):
    X, y, Xt, _ = small
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    assert_array_equal(back.predict_proba(Xt), clf.predict_proba(Xt))
    assert_array_equal(back.predict(Xt), clf.predict(Xt))
    assert same_weights(back, clf)
    # the optimizer state (Adam's moments) travels too: partial_fit resumes
    # exactly where the original would
    clf.partial_fit(X[:300], y[:300])
    back.partial_fit(X[:300], y[:300])
    assert same_weights(back, clf)


# ---------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(small, tmp_path):
    X, y, Xt, _ = small
    clf = Classifier(hidden_layer_sizes=(16, 8), activation="tanh", max_iter=3, alpha=1e-3,
                     random_state=0).fit(X, y)
    path = tmp_path / "model.npz"
    clf.save(path)
    back = load(path)
    assert isinstance(back, Classifier)
    assert back.get_params() == clf.get_params()
    assert_array_equal(back.predict_proba(Xt), clf.predict_proba(Xt))
    assert_array_equal(back.predict(Xt), clf.predict(Xt))
    assert back.coefs_[0].dtype == np.float32
    for k in ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "n_layers_", "n_outputs_",
              "out_activation_", "n_features_in_", "validation_scores_",
              "best_validation_score_"):
        assert getattr(back, k) == getattr(clf, k), k
    # file objects work too, and str paths are not renamed by numpy
    buf = io.BytesIO()
    clf.save(buf)
    buf.seek(0)
    assert_array_equal(load(buf).predict_proba(Xt[:50]), clf.predict_proba(Xt[:50]))
    clf.save(str(tmp_path / "model.bin"))
    assert (tmp_path / "model.bin").exists()
    # a loaded model trains on (partial_fit) and is a normal estimator
    back.partial_fit(X[:200], y[:200])
    assert back.n_iter_ == clf.n_iter_ + 1


def test_save_load_string_labels_and_early_stopping(small, tmp_path):
    X, y, Xt, _ = small
    names = np.array(["top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "boot"], dtype=object)
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=4, early_stopping=True,
                     random_state=0).fit(X.astype(np.float64), names[y])
    clf.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert list(back.classes_) == list(clf.classes_) == sorted(names)
    assert_array_equal(back.predict(Xt), clf.predict(Xt))
    assert_array_equal(back.predict_proba(Xt), clf.predict_proba(Xt))
    assert back.coefs_[0].dtype == np.float64
    assert back.validation_scores_ == clf.validation_scores_
    assert back.best_validation_score_ == clf.best_validation_score_


def test_save_load_dataframe_feature_names(small, tmp_path):
    pd = _requires.import_module("pandas", "pandas")
    X, y, Xt, _ = small
    cols = [f"px{i}" for i in range(X.shape[1])]
    df, dft = pd.DataFrame(X, columns=cols), pd.DataFrame(Xt, columns=cols)
    labels = np.array(list("abcdefghij"))[y]
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(df, labels)
    assert list(clf.feature_names_in_) == cols
    clf.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert_array_equal(back.feature_names_in_, clf.feature_names_in_)
    assert_array_equal(back.predict(dft), clf.predict(dft))
    assert_array_equal(back.predict_proba(dft), clf.predict_proba(dft))
    with pytest.raises(ValueError, match="feature names"):
        back.predict(dft[cols[::-1]])


class _Booby:
    """Unpickling this would leave a mark: a tampered file must never get that far."""

    touched = []

    def __reduce__(self):
        return (_Booby.touched.append, ("unpickled!",))


def _rewrite(src, dst, drop=(), **replace):
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    arrays.update(replace)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


TAMPER = {
    "coef wrong rows": (lambda d: {"coef_1": d["coef_1"][:-1]}, "rows"),
    "intercept wrong length": (lambda d: {"intercept_0": d["intercept_0"][:-1]}, "intercept_0"),
    "coef 3-D": (lambda d: {"coef_0": d["coef_0"][None]}, "coef_0"),
    "coef int": (lambda d: {"coef_0": d["coef_0"].astype(np.int64)}, "coef_0"),
    "mixed dtypes": (lambda d: {"coef_1": d["coef_1"].astype(np.float32),
                                "intercept_1": d["intercept_1"].astype(np.float32)}, "dtype"),
    "too few classes": (lambda d: {"classes": d["classes"][:-1]}, "classes"),
    "unsorted classes": (lambda d: {"classes": d["classes"][::-1].copy()}, "sorted"),
    "nan weights": (lambda d: {"coef_0": np.full_like(d["coef_0"], np.nan)}, "non-finite"),
    "more layers claimed": (lambda d: {"n_layers": np.array(5)}, "coef_2|missing"),
    "bad params json": (lambda d: {"params": np.array("{not json")}, "params|Expecting"),
    "invalid activation": (lambda d: {"params": np.array(
        str(d["params"]).replace('"relu"', '"evil"'))}, "activation"),
    "unknown parameter": (lambda d: {"params": np.array(
        str(d["params"])[:-1] + ', "max_fnu": 3}')}, "unknown parameters"),
    "future format": (lambda d: {"format": np.array(99)}, "format"),
    "hidden sizes lie": (lambda d: {"params": np.array(
        str(d["params"]).replace('"hidden_layer_sizes": [16]',
                                 '"hidden_layer_sizes": [17]'))}, "hidden_layer_sizes"),
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    X, y = blobs(n=120, centers=3, n_features=4)
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "ok.npz"
    clf.save(path)
    return path


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_load_refuses_tampered_arrays(saved_model, tmp_path, case):
    change, match = TAMPER[case]
    with np.load(saved_model, allow_pickle=False) as data:
        replace = change(data)
    bad = tmp_path / "bad.npz"
    _rewrite(saved_model, bad, **replace)
    with pytest.raises(ValueError, match=match):
        load(bad)


@pytest.mark.parametrize("key", ["params", "classes", "coef_0", "intercept_1", "format",
                                 "n_layers"])
def test_load_refuses_missing_keys(saved_model, tmp_path, key):
    bad = tmp_path / "bad.npz"
    _rewrite(saved_model, bad, drop=(key,))
    with pytest.raises(ValueError, match=re.escape(key)):
        load(bad)


@pytest.mark.parametrize("key", ["classes", "params", "coef_0"])
def test_load_never_unpickles(saved_model, tmp_path, key):
    bad = tmp_path / "evil.npz"
    evil = np.array([_Booby(), _Booby()], dtype=object)
    _rewrite(saved_model, bad, **{key: evil})    # np.savez pickles object arrays
    _Booby.touched.clear()
    with pytest.raises(ValueError, match="not a valid cysoftmax model"):
        load(bad)
    assert _Booby.touched == []


def test_load_refuses_files_that_are_not_npz(saved_model, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a model\n")
    npy = tmp_path / "array.npy"
    np.save(npy, np.arange(3.0))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved_model.read_bytes()[:200])
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(_Booby()))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    other_zip = tmp_path / "other.npz"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "zip, but no arrays")
    _Booby.touched.clear()
    for path in (text, npy, truncated, pickled, empty, other_zip):
        with pytest.raises(ValueError, match="not a (valid )?cysoftmax model"):
            load(path)
    assert _Booby.touched == []
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


# ---------------------------------------------------------------------------
# partial_fit


def test_partial_fit_reaches_fit_accuracy(fmnist):
    X, y, Xt, yt = fmnist
    epochs = 8
    full = Classifier(hidden_layer_sizes=(32,), max_iter=epochs, random_state=0).fit(X, y)
    inc = Classifier(hidden_layer_sizes=(32,), random_state=0)
    classes = np.unique(y)
    for _ in range(epochs):
        for chunk in np.array_split(np.arange(len(X)), 5):
            inc.partial_fit(X[chunk], y[chunk], classes=classes)
    acc_full, acc_inc = full.score(Xt, yt), inc.score(Xt, yt)
    # stated tolerance: 3 points of test accuracy (the chunks shuffle only
    # within themselves, so the batches differ from fit's)
    assert acc_full > 0.75
    assert acc_inc >= acc_full - 0.03, (acc_inc, acc_full)
    assert inc.n_iter_ == 5 * epochs and inc.t_ == epochs * len(X)


def test_partial_fit_classes_and_labels(small):
    X, y, _, _ = small
    clf = Classifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:50], y[:50])
    assert not hasattr(clf, "classes_")
    # a chunk may lack classes; classes_ comes from `classes`
    clf.partial_fit(X[y < 5][:50], y[y < 5][:50], classes=np.arange(10))
    assert_array_equal(clf.classes_, np.arange(10))
    before = fitted_state(clf)
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X[:50], y[:50], classes=np.arange(11))
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X[:50], np.where(y[:50] == 3, 42, y[:50]))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:50, :-1], y[:50])
    assert_same_state(before, fitted_state(clf))
    clf.partial_fit(X[:50], y[:50])
    assert clf.n_iter_ == 2


def test_partial_fit_keeps_optimizer_state_across_trainer_rebuilds(small):
    # a larger chunk needs larger batch buffers: the trainer is rebuilt and
    # Adam's moments and step count must carry over
    X, y, _, _ = small
    kw = dict(hidden_layer_sizes=(8,), batch_size=64, random_state=0)
    a, fresh = Classifier(**kw), Classifier(**kw)
    for clf in (a, fresh):
        with pytest.warns(UserWarning, match="clipped"):
            clf.partial_fit(X[:30], y[:30], classes=np.arange(10))     # one batch of 30
        assert clf._trainer_cache.max_batch == 30
    fresh._trainer_cache = None                # what a lost optimizer state would look like
    for clf in (a, fresh):
        clf.partial_fit(X[30:330], y[30:330])                          # 5 batches of <= 64
    assert a._trainer_cache.max_batch == 64
    assert a._trainer_cache.optimizer_state["t"] == 1 + 5
    assert fresh._trainer_cache.optimizer_state["t"] == 5
    assert not same_weights(a, fresh)


# ---------------------------------------------------------------------------
# determinism, dtypes, sparse input, memory


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_same_bits(small, solver, dtype):
    X, y, _, _ = small
    X = X.astype(dtype)
    kw = dict(hidden_layer_sizes=(32, 16), max_iter=3, solver=solver, random_state=7)
    a = Classifier(**kw).fit(X, y)
    b = Classifier(**kw).fit(X, y)
    assert same_weights(a, b)
    assert a.loss_curve_ == b.loss_curve_
    assert a.coefs_[0].dtype == dtype
    c = Classifier(**{**kw, "random_state": 8}).fit(X, y)
    assert not same_weights(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtypes_are_kept(small, dtype):
    X, y, Xt, _ = small
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X.astype(dtype), y)
    assert all(c.dtype == dtype for c in clf.coefs_ + clf.intercepts_)
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert getattr(clf, method)(Xt.astype(dtype)).dtype == dtype, method
    # the other float dtype is converted to the model's
    other = np.float64 if dtype == np.float32 else np.float32
    assert clf.predict_proba(Xt.astype(other)).dtype == dtype


def test_float32_layouts_stay_float32(small):
    X, y, _, _ = small
    X, y = X[:300], y[:300]
    ref = Classifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    readonly = X.copy()
    readonly.flags.writeable = False
    for Z in (np.asfortranarray(X), X.astype(">f4"), readonly, X[:, ::-1][:, ::-1]):
        clf = Classifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(Z, y)
        assert clf.coefs_[0].dtype == np.float32
        assert same_weights(clf, ref)
        assert_array_equal(clf.predict_proba(Z), ref.predict_proba(X))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float16])
def test_other_dtypes_train_in_float64(small, dtype):
    X, y, _, _ = small
    Xi = (X * 255).astype(dtype) if dtype != np.float16 else X.astype(np.float16)
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(Xi[:200], y[:200])
    assert clf.coefs_[0].dtype == np.float64
    assert clf.predict_proba(Xi[:5]).dtype == np.float64


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_input_gives_the_dense_model(small, fmt, dtype):
    X, y, Xt, _ = small
    X = X[:500].astype(dtype)
    y = y[:500]
    kw = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    dense = Classifier(**kw).fit(X, y)
    Xs = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    sparse = Classifier(**kw).fit(Xs, y)
    assert sparse.coefs_[0].dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(dense.coefs_ + dense.intercepts_, sparse.coefs_ + sparse.intercepts_):
        assert_allclose(a, b, rtol=tol, atol=tol)
    Xts = sp.csr_matrix(Xt) if fmt == "csr" else sp.csc_matrix(Xt)
    assert_array_equal(sparse.predict(Xts), dense.predict(Xt))
    assert_allclose(sparse.predict_proba(Xts), dense.predict_proba(Xt.astype(dtype)),
                    rtol=tol, atol=tol)
    # sparse arrays (not only matrices); CSR rows with unsorted column indices
    # train the same model and are not sorted in place (the caller's data)
    Xa = sp.csr_array(X)
    for i in range(Xa.shape[0]):
        lo, hi = Xa.indptr[i], Xa.indptr[i + 1]
        Xa.indices[lo:hi] = Xa.indices[lo:hi][::-1].copy()
        Xa.data[lo:hi] = Xa.data[lo:hi][::-1].copy()
    Xa.has_sorted_indices = False
    indices = Xa.indices.copy()
    arr = Classifier(**kw).fit(Xa, y)
    assert_array_equal(Xa.indices, indices)
    for a, b in zip(dense.coefs_, arr.coefs_):
        assert_allclose(a, b, rtol=tol, atol=tol)


def test_c_contiguous_float_x_is_not_copied(small, monkeypatch):
    X, y, _, _ = small
    seen = []
    original = Classifier._run_epoch

    def spy(self, ws, Xe, *args):
        seen.append(Xe)
        return original(self, ws, Xe, *args)

    monkeypatch.setattr(Classifier, "_run_epoch", spy)
    for dtype in (np.float32, np.float64):
        Xd = np.ascontiguousarray(X, dtype=dtype)
        for early in (False, True):
            seen.clear()
            Classifier(hidden_layer_sizes=(8,), max_iter=2, early_stopping=early,
                       random_state=0).fit(Xd, y)
            assert len(seen) == 2
            assert all(s is Xd for s in seen), (dtype, early)


def test_fit_memory_stays_below_the_data(fmnist):
    X, y, _, _ = fmnist                    # 3000 x 784 float32: 9.4 MB
    clf = Classifier(hidden_layer_sizes=(32,), max_iter=2, random_state=0)
    tracemalloc.start()
    try:
        clf.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 4, (peak, X.nbytes)


# ---------------------------------------------------------------------------
# probabilities and accuracy


@pytest.fixture(scope="module")
def trained(fmnist):
    X, y, _, _ = fmnist
    return Classifier(hidden_layer_sizes=(64,), max_iter=8, random_state=0).fit(X, y)


def test_accuracy_on_the_sample(trained, fmnist):
    _, _, Xt, yt = fmnist
    acc = trained.score(Xt, yt)
    assert acc > 0.75, acc          # chance is 0.1


def test_probabilities(trained, fmnist):
    _, _, Xt, _ = fmnist
    p = trained.predict_proba(Xt)
    assert p.dtype == np.float32 and p.shape == (len(Xt), 10)
    assert_allclose(p.sum(axis=1), 1, rtol=0, atol=1e-5)
    assert np.all((p >= 0) & (p <= 1))
    z = trained.decision_function(Xt)
    logp = trained.predict_log_proba(Xt)
    assert np.isfinite(logp).all()
    # the same logits through the same row kernels: equal, not just close
    assert_array_equal(logp, cysoftmax.log_softmax(z))
    assert_array_equal(p, cysoftmax.softmax(z))
    assert_allclose(np.exp(logp), p, rtol=1e-5, atol=1e-7)
    assert_array_equal(trained.predict(Xt), np.argmax(p, axis=1))
    assert_allclose(z, numpy_logits(trained, Xt), rtol=1e-4, atol=1e-4)


def test_log_proba_finite_where_probabilities_underflow(trained, fmnist):
    _, _, Xt, _ = fmnist
    X = Xt[:200] * 40                            # huge logits, still finite in float32
    p = trained.predict_proba(X)
    assert (p == 0).any()                        # probabilities underflow ...
    logp = trained.predict_log_proba(X)
    assert np.isfinite(logp).all()               # ... their logs do not
    assert logp.min() < -104                     # below log(smallest float32 subnormal)
    assert_array_equal(logp, cysoftmax.log_softmax(trained.decision_function(X)))


def test_overflowing_inputs_raise_instead_of_nan(trained, fmnist):
    _, _, Xt, _ = fmnist
    huge32 = Xt[:20] * np.float32(3e38)                # finite, but the logits overflow
    huge64 = Xt[:20].astype(np.float64) * 1e300        # finite, inf once cast to float32
    for X in (huge32, huge64):
        for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
            with pytest.raises(ValueError, match="not finite"):
                getattr(trained, method)(X)
    with pytest.raises(ValueError, match="NaN"):
        trained.predict(np.full((2, 784), np.nan, np.float32))


# ---------------------------------------------------------------------------
# early stopping, verbose output


def test_early_stopping_restores_the_best_weights(small):
    X, y, _, _ = small
    clf = Classifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=2,
                     learning_rate_init=0.01, max_iter=40, random_state=0).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None                     # as MLPClassifier
    assert clf.n_iter_ < 40                            # it did stop early
    # the split, reproduced: the initialization draws come first, then a
    # stratified split of the rows with the same random state (MLPClassifier's order)
    rng = np.random.RandomState(0)
    for W, b in zip(clf.coefs_, clf.intercepts_):
        rng.uniform(size=W.shape)
        rng.uniform(size=b.shape)
    _, X_val, _, y_val = train_test_split(X, y, random_state=rng, test_size=0.1, stratify=y)
    assert len(y_val) == 100
    assert clf.score(X_val, y_val) == clf.best_validation_score_
    assert scores[-1] < clf.best_validation_score_     # so the restore mattered


def test_verbose_prints_one_line_per_epoch(small, capsys):
    X, y, _, _ = small
    Classifier(hidden_layer_sizes=(8,), max_iter=3, n_iter_no_change=100, verbose=True,
               random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert re.fullmatch(rf"Epoch {i}, loss = \d+\.\d{{8}}, \d+\.\d\d s", line), line
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=3, n_iter_no_change=100, verbose=True,
                     early_stopping=True, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        m = re.fullmatch(rf"Epoch {i}, loss = (\d+\.\d{{8}}), validation score = (\d\.\d{{6}}), "
                         r"validation loss = (\d+\.\d{6}), \d+\.\d\d s", line)
        assert m, line
        assert float(m.group(1)) == pytest.approx(clf.loss_curve_[i - 1], abs=1e-8)
        assert float(m.group(2)) == pytest.approx(clf.validation_scores_[i - 1], abs=1e-6)
        assert float(m.group(3)) == pytest.approx(clf.validation_loss_curve_[i - 1], abs=1e-6)
    Classifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


def test_stopping_message_and_convergence_warning(small, capsys):
    X, y, _, _ = small
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        Classifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=200, tol=10.0, n_iter_no_change=2,
                     verbose=True, random_state=0).fit(X, y)
    # epoch 1 improves on inf; epochs 2, 3, 4 do not: the count exceeds 2 (as MLPClassifier)
    assert clf.n_iter_ == 4
    assert "did not improve more than tol" in capsys.readouterr().out


def test_unit_sample_weights_change_nothing(small):
    X, y, _, _ = small
    kw = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    a = Classifier(**kw).fit(X, y)
    b = Classifier(**kw).fit(X, y, sample_weight=np.ones(len(y)))
    assert same_weights(a, b)
    with pytest.raises(ValueError, match="Negative"):
        Classifier(**kw).fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="zero"):
        Classifier(**kw).fit(X, y, sample_weight=np.zeros(len(y)))


def test_warm_start_continues(small):
    X, y, _, _ = small
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=True,
                     random_state=0).fit(X, y)
    first = [c.copy() for c in clf.coefs_]
    clf.fit(X, y)
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4
    assert not all(np.array_equal(a, b) for a, b in zip(first, clf.coefs_))
    with pytest.raises(ValueError, match="not in classes"):
        clf.fit(X[:20], np.full(20, 99))
    assert clf.n_iter_ == 4


# ---------------------------------------------------------------------------
# divergence and Ctrl-C


def test_divergence_raises_and_leaves_a_fitted_estimator_unchanged(small):
    X, y, Xt, _ = small
    clf = Classifier(hidden_layer_sizes=(16,), solver="sgd", max_iter=2,
                     random_state=0).fit(X, y)
    before = fitted_state(clf)
    proba = clf.predict_proba(Xt)
    clf.set_params(learning_rate_init=1e6)
    with pytest.raises(ValueError, match="learning rate") as info:
        clf.fit(X * 255, y)
    assert "scale" in str(info.value)
    assert_same_state(before, fitted_state(clf))
    assert_array_equal(clf.predict_proba(Xt), proba)
    # also when a warm start would have trained the existing weights in place
    clf.set_params(warm_start=True)
    with pytest.raises(ValueError, match="learning rate"):
        clf.fit(X * 255, y)
    assert_same_state(before, fitted_state(clf))


def test_divergence_leaves_an_unfitted_estimator_unfitted(small):
    X, y, _, _ = small
    for early_stopping in (False, True):
        clf = Classifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=1e6,
                         max_iter=5, early_stopping=early_stopping, random_state=0)
        with pytest.raises(ValueError, match="learning rate"):
            clf.fit(X * 255, y)
        with pytest.raises(NotFittedError):
            check_is_fitted(clf)
        assert set(vars(clf)) == set(clf.get_params())


def test_divergence_in_partial_fit_keeps_the_optimizer_state(small):
    X, y, _, _ = small
    kw = dict(hidden_layer_sizes=(16,), solver="sgd", momentum=0.9, random_state=0)
    a, b = Classifier(**kw), Classifier(**kw)
    for clf in (a, b):
        clf.partial_fit(X[:500], y[:500], classes=np.arange(10))
    a.set_params(learning_rate_init=1e8)
    with pytest.raises(ValueError, match="learning rate"):
        a.partial_fit(X * 255, y)
    a.set_params(learning_rate_init=0.001)
    for clf in (a, b):
        clf.partial_fit(X[500:], y[500:])
    assert same_weights(a, b)
    assert a.n_iter_ == b.n_iter_ == 2


def _interrupt_at(monkeypatch, epoch, *, after_return=False):
    """Raise KeyboardInterrupt in the 'epoch'-th call: instead of the compiled
    epoch, or (after_return) right after it returned, before its bookkeeping."""
    calls = {"run": 0, "end": 0}
    run, end = Classifier._run_epoch, Classifier._end_epoch

    def fake_run(self, *args):
        calls["run"] += 1
        if calls["run"] == epoch and not after_return:
            raise KeyboardInterrupt
        return run(self, *args)

    def fake_end(self, *args):
        calls["end"] += 1
        if calls["end"] == epoch and after_return:
            raise KeyboardInterrupt
        return end(self, *args)

    monkeypatch.setattr(Classifier, "_run_epoch", fake_run)
    monkeypatch.setattr(Classifier, "_end_epoch", fake_end)


def test_keyboard_interrupt_keeps_finished_epochs(small, monkeypatch):
    X, y, Xt, _ = small
    _interrupt_at(monkeypatch, 3)
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        out = clf.fit(X, y)
    assert out is clf
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.t_ == 2 * len(X)
    assert all(np.isfinite(c).all() for c in clf.coefs_ + clf.intercepts_)
    # the weights are those of epoch 2: the same as a 2-epoch fit
    monkeypatch.undo()
    ref = Classifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X, y)
    assert same_weights(clf, ref)
    assert np.isfinite(clf.predict_proba(Xt)).all()


def test_keyboard_interrupt_after_the_compiled_epoch_counts_it(small, monkeypatch):
    X, y, _, _ = small
    _interrupt_at(monkeypatch, 3, after_return=True)
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X, y)
    monkeypatch.undo()
    ref = Classifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3 and clf.loss_curve_ == ref.loss_curve_
    assert same_weights(clf, ref)


def test_keyboard_interrupt_with_early_stopping_restores_best(small, monkeypatch):
    X, y, _, _ = small
    _interrupt_at(monkeypatch, 4)
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=10, early_stopping=True,
                     learning_rate_init=0.05, random_state=0)
    with pytest.warns(UserWarning, match="best"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.validation_scores_) == 3
    assert clf.best_validation_score_ == max(clf.validation_scores_)


# ---------------------------------------------------------------------------
# labels


def test_string_labels(small):
    X, y, Xt, yt = small
    # labels that sort like the integers: the very same model, relabelled
    names = np.array([f"class_{k}" for k in range(10)])
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, names[y])
    ref = Classifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, names)
    assert same_weights(clf, ref)
    assert_array_equal(clf.predict(Xt), names[ref.predict(Xt)])
    assert clf.score(Xt, names[yt]) == ref.score(Xt, yt)
    # any sortable labels: real names (object dtype too), classes_ sorted
    real = np.array(["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                     "sneaker", "bag", "ankle boot"], dtype=object)
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=15, random_state=0).fit(X, real[y])
    assert list(clf.classes_) == sorted(real)
    pred = clf.predict(Xt)
    assert set(pred) <= set(real)
    assert clf.score(Xt, real[yt]) > 0.65
    proba = clf.predict_proba(Xt)
    assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], pred)


def test_binary_problem(small):
    X, y, Xt, _ = small
    keep = (y == 0) | (y == 6)                   # t-shirt vs shirt: not trivial
    yb = np.where(y[keep] == 0, "top", "shirt")
    clf = Classifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X[keep], yb)
    assert clf.coefs_[-1].shape[1] == 2 and clf.n_outputs_ == 2   # a 2-unit softmax
    d = clf.decision_function(Xt)
    assert d.shape == (len(Xt),)
    z = numpy_logits(clf, Xt)
    assert_allclose(d, z[:, 1] - z[:, 0], rtol=1e-4, atol=1e-4)
    logp = clf.predict_log_proba(Xt)
    assert_allclose(d, logp[:, 1] - logp[:, 0], rtol=1e-4, atol=1e-4)
    assert_array_equal(clf.predict(Xt), clf.classes_[(d > 0).astype(int)])
    assert clf.predict_proba(Xt).shape == (len(Xt), 2)
    assert clf.score(X[keep], yb) > 0.7


@pytest.mark.parametrize("labels", [np.zeros(30, int), np.array(["only"] * 30)])
def test_one_class_is_refused(labels):
    X = np.random.default_rng(0).normal(size=(30, 4))
    clf = Classifier(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, labels)
    assert set(vars(clf)) == set(clf.get_params())


def test_multioutput_and_continuous_targets_are_refused():
    # (a multilabel indicator y trains sigmoid outputs: tests/test_classifier_v2.py)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    with pytest.raises(ValueError, match="Unknown label type: 'continuous'"):
        Classifier(hidden_layer_sizes=(4,)).fit(X, rng.normal(size=30))
    with pytest.raises(ValueError, match="multi"):
        Classifier(hidden_layer_sizes=(4,)).fit(X, rng.integers(0, 3, size=(30, 2)))
    with pytest.raises(ValueError, match="Unknown label type"):
        Classifier(hidden_layer_sizes=(4,)).fit(X, np.array([{"a": 1}] * 15 + [{}] * 15))


# ---------------------------------------------------------------------------
# Fashion-MNIST end to end


@pytest.mark.slow
def test_full_fashion_mnist_accuracy():
    try:
        X, y = load_fashion_mnist("train", download=False)
        Xt, yt = load_fashion_mnist("test", download=False)
    except FileNotFoundError as exc:
        _requires.missing("fashion-mnist", f"full Fashion-MNIST not installed: {exc}")
    assert X.dtype == np.float32
    clf = Classifier(hidden_layer_sizes=(256, 128), max_iter=20, batch_size=128, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    seconds = time.perf_counter() - t0
    acc = clf.score(Xt, yt)
    print(f"\nfull Fashion-MNIST, 784-256-128-10 adam, batch 128, {clf.n_iter_} epochs: "
          f"test accuracy {acc:.4f}, fit {seconds:.1f} s")
    assert clf.coefs_[0].dtype == np.float32
    assert acc >= 0.885, acc


def test_example_script_runs_on_the_sample(capsys):
    spec = importlib.util.spec_from_file_location("train_fashion_mnist_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    acc = module.main(["--sample", "--epochs", "2", "--hidden", "32", "--no-plots"])
    assert acc > 0.5
    out = capsys.readouterr().out
    assert "embedded sample" in out and "test accuracy" in out
