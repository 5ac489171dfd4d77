"""Tests of the Classifier's second-round parameters: class_weight, dropout,
label_smoothing, the leaky_relu/gelu/silu activations, the cosine schedule
with warm-up, the validation loss and early_stopping_metric, multilabel
(indicator) targets, and save/load of all of them (also of files written
without them).

References are independent of our own output: scikit-learn's
MLPClassifier and compute_class_weight, PyTorch (where installed) and
NumPy formulas; no snapshot of a value we computed before.
"""

import inspect
import io
import json
import warnings
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import erf, expit, log_expit, logsumexp
from sklearn.datasets import make_blobs, make_classification, make_multilabel_classification
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

import _requires
from cysoftmax import Classifier, _inputs, load

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

try:
    import torch
    import torch.nn.functional as F
    HAVE_TORCH, TORCH_WHY = True, ""
except ImportError as exc:          # pragma: no cover - depends on the environment
    HAVE_TORCH, TORCH_WHY = False, f"import torch failed: {exc}"
needs_torch = _requires.skip_unless("torch", HAVE_TORCH, TORCH_WHY)


# ---------------------------------------------------------------------------
# data and helpers


def blobs(n=150, centers=4, n_features=5, seed=0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=n_features, random_state=seed)
    return StandardScaler().fit_transform(X), y


def multilabel(n=200, n_features=8, n_labels=4, seed=0):
    X, Y = make_multilabel_classification(n_samples=n, n_features=n_features,
                                          n_classes=n_labels, random_state=seed)
    return StandardScaler().fit_transform(X), Y


def same_weights(a, b):
    return (len(a.coefs_) == len(b.coefs_)
            and all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))
            and all(np.array_equal(p, q) for p, q in zip(a.intercepts_, b.intercepts_)))


def assert_same_weights(a, b):
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(p, q)


ACT = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "logistic": expit,
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),       # PyTorch's default slope
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),      # the exact (erf) GELU
    "silu": lambda z: z * expit(z),
}


def numpy_logits(coefs, intercepts, activation, X):
    a = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        a = a @ np.asarray(W, np.float64) + b
        if i < len(coefs) - 1:
            a = ACT[activation](a)
    return a


def glorot(units, activation, seed):
    """MLPClassifier's initial weights, rewritten here: Glorot-uniform, the
    coefficient then the intercept of each layer, from one RandomState."""
    rng = np.random.RandomState(seed)
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rng.uniform(-bound, bound, fan_out))
    return coefs, intercepts


def smoothed_ce(z, y, eps, sample_weight=None):
    """PyTorch cross_entropy(label_smoothing=eps) from logits, as NumPy:
    (1 - eps) * NLL + eps * mean over classes of -log p; weighted mean over rows."""
    logp = z - logsumexp(z, axis=1, keepdims=True)
    per_row = -(1 - eps) * logp[np.arange(len(y)), y] - eps * logp.mean(axis=1)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    return float(np.sum(w * per_row) / np.sum(w))


def multilabel_bce(z, Y, sample_weight=None):
    """Binary cross-entropy from logits, summed over labels, (weighted) mean over rows:
    MLPClassifier's multilabel loss."""
    per_row = -(Y * log_expit(z) + (1 - Y) * log_expit(-z)).sum(axis=1)
    w = np.ones(len(Y)) if sample_weight is None else np.asarray(sample_weight, float)
    return float(np.sum(w * per_row) / np.sum(w))


@pytest.fixture
def capture_holdout(monkeypatch):
    """The early-stopping validation rows of the next fit: `_inputs.holdout`
    wrapped, its result recorded unchanged."""
    seen = []
    real = _inputs.holdout

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(_inputs, "holdout", spy)
    return seen


# ---------------------------------------------------------------------------
# 1. the scikit-learn contract with each new parameter

FAST = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0)
CHECKED_V2 = [
    Classifier(dropout=0.2, **FAST),
    Classifier(class_weight="balanced", **FAST),
    Classifier(activation="gelu", **FAST),
    Classifier(learning_rate="cosine", **FAST),
    Classifier(label_smoothing=0.1, **FAST),
]

_DROPOUT_WHY = ("dropout draws one mask per row, so an integer sample weight k is not the "
                "row repeated k times (the copies draw other masks)")

def expected_failures(est):
    """The checks that cannot pass for an instance, with the reason; nothing else."""
    if est.dropout:
        return {"check_sample_weight_equivalence_on_dense_data": _DROPOUT_WHY,
                "check_sample_weight_equivalence_on_sparse_data": _DROPOUT_WHY}
    if est.class_weight == "balanced" and not _CCW_TAKES_SAMPLE_WEIGHT:
        return {f"check_sample_weight_equivalence_on_{kind}_data": _CCW_WHY
                for kind in ("dense", "sparse")}
    return {}


# compute_class_weight takes the sample weights from scikit-learn 1.7 on;
# before, "balanced" counts rows, and a weight k is not k repeated rows
_CCW_TAKES_SAMPLE_WEIGHT = "sample_weight" in inspect.signature(
    compute_class_weight).parameters
_CCW_WHY = ("this scikit-learn's compute_class_weight takes no sample_weight: 'balanced' "
            "counts rows, so an integer weight is not the row repeated")
# strict where this scikit-learn offers it (1.7+): an expected failure that
# passes is reported, so the list stays exact
_STRICT = ({"xfail_strict": True}
           if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {})


@parametrize_with_checks(CHECKED_V2, expected_failed_checks=expected_failures, **_STRICT)
def test_sklearn_estimator_checks_v2(estimator, check):
    check(estimator)


def test_multi_label_tag_follows_parameters():
    # class_weight and label_smoothing refuse a multilabel y: the tag says so
    assert Classifier().__sklearn_tags__().classifier_tags.multi_label
    assert not Classifier(class_weight="balanced").__sklearn_tags__().classifier_tags.multi_label
    assert not Classifier(class_weight={0: 2.0}).__sklearn_tags__().classifier_tags.multi_label
    assert not Classifier(label_smoothing=0.1).__sklearn_tags__().classifier_tags.multi_label


def test_new_parameter_defaults_keep_mlpclassifier_model():
    # the new parameters at their defaults (and dropout 0 spelt out per layer)
    # change nothing: MLPClassifier's full-batch optimization to rounding
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(7, 5), max_iter=10, batch_size=len(X), random_state=0)
    ref = MLPClassifier(**kw).fit(X, y)
    base = Classifier(**kw).fit(X, y)
    for a, b in zip(base.coefs_ + base.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_allclose(a, b, rtol=0, atol=1e-12)
    spelt = Classifier(**kw, dropout=[0.0, 0.0], label_smoothing=0.0, class_weight=None,
                       warmup_epochs=0, early_stopping_metric="loss").fit(X, y)
    assert_same_weights(spelt, base)


# ---------------------------------------------------------------------------
# 2. class_weight


def _encoded(y):
    classes = np.unique(y)
    return classes, np.searchsorted(classes, y)


def test_class_weight_balanced_is_its_sample_weights():
    X, y = blobs(n=160)
    y = np.where(y == 3, 2, y)                  # imbalanced: 40 / 40 / 80
    classes, idx = _encoded(y)
    sw = compute_class_weight("balanced", classes=classes, y=y)[idx]
    assert not np.allclose(sw, 1.0)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    a = Classifier(class_weight="balanced", **kw).fit(X, y)
    b = Classifier(**kw).fit(X, y, sample_weight=sw)
    assert_same_weights(a, b)
    assert a.loss_curve_ == b.loss_curve_
    assert not same_weights(a, Classifier(**kw).fit(X, y))


def test_class_weight_dict_is_its_sample_weights():
    X, y = blobs()
    labels = np.array(["ant", "bee", "cat", "dog"])[y]       # string labels as keys
    cw = {"ant": 3.0, "cat": 0.25}                           # bee and dog weigh 1
    sw = np.array([cw.get(v, 1.0) for v in labels])
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    a = Classifier(class_weight=cw, **kw).fit(X, labels)
    b = Classifier(**kw).fit(X, labels, sample_weight=sw)
    assert_same_weights(a, b)


def test_class_weight_dict_numpy_keys():
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    a = Classifier(class_weight={np.int64(1): 2.0}, **kw).fit(X, y)
    b = Classifier(class_weight={1: 2.0}, **kw).fit(X, y)
    assert_same_weights(a, b)


def test_class_weight_times_sample_weight():
    X, y = blobs()
    sw = np.random.RandomState(1).uniform(0.2, 3.0, len(y))
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    cw = {0: 2.0, 2: 0.5}
    a = Classifier(class_weight=cw, **kw).fit(X, y, sample_weight=sw)
    b = Classifier(**kw).fit(X, y, sample_weight=sw * np.array([cw.get(v, 1.0) for v in y]))
    assert_same_weights(a, b)


def test_class_weight_balanced_with_sample_weight():
    # "balanced" balances the *weighted* class totals where scikit-learn's
    # compute_class_weight takes sample_weight (as LogisticRegression does)
    X, y = blobs()
    sw = np.random.RandomState(2).uniform(0.2, 3.0, len(y))
    classes, idx = _encoded(y)
    extra = ({"sample_weight": sw}
             if "sample_weight" in inspect.signature(compute_class_weight).parameters else {})
    cw = compute_class_weight("balanced", classes=classes, y=y, **extra)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    a = Classifier(class_weight="balanced", **kw).fit(X, y, sample_weight=sw)
    b = Classifier(**kw).fit(X, y, sample_weight=sw * cw[idx])
    assert_same_weights(a, b)


def test_class_weight_balanced_with_a_zero_weight_class():
    # every row of class 1 weighs 0: compute_class_weight gives it an
    # infinite weight; its rows must still weigh 0 (not NaN), and the model is
    # that of the other classes' rows alone
    X, y = blobs(centers=3)
    sw = (y != 1).astype(float)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        a = Classifier(class_weight="balanced", **kw).fit(X, y, sample_weight=sw)
    assert all(np.isfinite(c).all() for c in a.coefs_)
    assert np.isfinite(a.loss_)


def test_class_weight_balanced_improves_minority_recall():
    X, y = make_classification(n_samples=1000, n_features=10, n_informative=4,
                               weights=[0.93], flip_y=0.0, class_sep=0.6, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, stratify=y, random_state=0)
    kw = dict(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=0.01, random_state=0)
    plain = recall_score(yte, Classifier(**kw).fit(Xtr, ytr).predict(Xte))
    balanced = recall_score(yte, Classifier(class_weight="balanced", **kw)
                            .fit(Xtr, ytr).predict(Xte))
    assert balanced > plain + 0.25, (plain, balanced)


def test_class_weight_dict_in_partial_fit():
    X, y = blobs()
    cw = {0: 2.0, 3: 0.5}
    sw = np.array([cw.get(v, 1.0) for v in y])
    kw = dict(hidden_layer_sizes=(8,), random_state=0)
    a = Classifier(class_weight=cw, **kw)
    b = Classifier(**kw)
    for _ in range(3):
        a.partial_fit(X, y, classes=np.arange(4))
        b.partial_fit(X, y, sample_weight=sw, classes=np.arange(4))
    assert_same_weights(a, b)


def test_class_weight_balanced_in_partial_fit_is_the_first_calls():
    # "balanced" from the first call's data, kept for the calls after it: the
    # same model as passing those weights as sample weights in every call
    X, y = blobs()
    y = np.where(y == 3, 2, y)                  # 40 / 40 / 80 rows
    classes = np.arange(3)
    first = compute_class_weight("balanced", classes=classes, y=y[:100])
    kw = dict(hidden_layer_sizes=(8,), random_state=0)
    a, b = Classifier(class_weight="balanced", **kw), Classifier(**kw)
    for part in (slice(0, 100), slice(100, 150), slice(0, 150)):
        a.partial_fit(X[part], y[part], classes=classes)
        b.partial_fit(X[part], y[part], sample_weight=first[y[part]], classes=classes)
    assert_same_weights(a, b)


def test_class_weight_balanced_partial_fit_needs_every_class_first():
    X, y = blobs()
    clf = Classifier(class_weight="balanced", hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match=r"first call.*no sample of the classes \[3\]"):
        clf.partial_fit(X[y != 3], y[y != 3], classes=np.arange(4))
    assert not hasattr(clf, "coefs_")


# ---------------------------------------------------------------------------
# dropout, activations, cosine


def test_dropout_deterministic_and_effective():
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(16, 8), max_iter=5, random_state=0)
    a = Classifier(dropout=0.3, **kw).fit(X, y)
    b = Classifier(dropout=0.3, **kw).fit(X, y)
    assert_same_weights(a, b)
    assert not same_weights(a, Classifier(**kw).fit(X, y))
    assert not same_weights(a, Classifier(dropout=[0.3, 0.0], **kw).fit(X, y))
    # no dropout at prediction: the plain forward pass of the weights
    z = numpy_logits(a.coefs_, a.intercepts_, "relu", X)
    assert_allclose(a.predict_proba(X), np.exp(z - logsumexp(z, axis=1, keepdims=True)),
                    rtol=1e-10, atol=1e-12)
    assert_array_equal(a.predict_proba(X), a.predict_proba(X))


@pytest.mark.parametrize("activation", ["leaky_relu", "gelu", "silu"])
def test_new_activations_forward(activation):
    X, y = blobs()
    clf = Classifier(hidden_layer_sizes=(9, 6), activation=activation, max_iter=5,
                     random_state=0).fit(X, y)
    z = numpy_logits(clf.coefs_, clf.intercepts_, activation, X)
    assert_allclose(clf.decision_function(X), z, rtol=1e-10, atol=1e-12)
    assert_allclose(clf.predict_log_proba(X), z - logsumexp(z, axis=1, keepdims=True),
                    rtol=1e-10, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("activation", ["leaky_relu", "gelu", "silu"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_one_sgd_step_matches_torch(activation, label_smoothing):
    # one full-batch plain-SGD step from MLPClassifier's initial weights: the
    # weights after it are W0 - lr * grad, with grad from torch autograd
    X, y = blobs(n=60, centers=3)
    units = [X.shape[1], 7, 5, 3]
    lr = 0.5
    clf = Classifier(hidden_layer_sizes=(7, 5), activation=activation, solver="sgd",
                     momentum=0.0, alpha=0.0, batch_size=len(X), max_iter=1, shuffle=False,
                     learning_rate_init=lr, label_smoothing=label_smoothing,
                     random_state=0).fit(X, y)
    coefs, intercepts = glorot(units, activation, 0)
    Ws = [torch.tensor(w, requires_grad=True) for w in coefs]
    bs = [torch.tensor(b, requires_grad=True) for b in intercepts]
    tact = {"leaky_relu": F.leaky_relu, "gelu": F.gelu, "silu": F.silu}[activation]
    a = torch.tensor(X)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        a = a @ W + b
        if i < len(Ws) - 1:
            a = tact(a)
    loss = F.cross_entropy(a, torch.tensor(y), label_smoothing=label_smoothing)
    loss.backward()
    assert_allclose(clf.loss_, loss.item(), rtol=1e-12)
    for ours, W in zip(clf.coefs_ + clf.intercepts_, Ws + bs):
        assert_allclose(ours, (W - lr * W.grad).detach().numpy(), rtol=1e-9, atol=1e-12)


def test_cosine_schedule_and_warmup_run():
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(8,), max_iter=6, random_state=0, learning_rate="cosine")
    a = Classifier(**kw).fit(X, y)
    b = Classifier(warmup_epochs=2, **kw).fit(X, y)
    assert a.n_iter_ == b.n_iter_ == 6
    assert not same_weights(a, b)
    assert not same_weights(a, Classifier(**{**kw, "learning_rate": "constant"}).fit(X, y))


# ---------------------------------------------------------------------------
# 3. multilabel


def test_multilabel_matches_mlpclassifier_full_batch():
    # one batch per epoch and MLPClassifier's initial draws: its optimization
    # (sigmoid outputs, binary cross-entropy summed over labels) to rounding
    X, Y = multilabel()
    kw = dict(hidden_layer_sizes=(7,), max_iter=15, batch_size=len(X), random_state=0)
    ours = Classifier(**kw).fit(X, Y)
    ref = MLPClassifier(**kw).fit(X, Y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_allclose(a, b, rtol=0, atol=1e-12)
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-6)
    assert ours.out_activation_ == ref.out_activation_ == "logistic"
    assert_array_equal(ours.classes_, ref.classes_)
    assert ours.classes_.dtype == ref.classes_.dtype
    for method in ("predict", "predict_proba"):
        p, q = getattr(ours, method)(X), getattr(ref, method)(X)
        assert p.shape == q.shape and p.dtype == q.dtype, method
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-10, atol=1e-14)


def test_multilabel_accuracy_comparable_to_mlpclassifier():
    X, Y = multilabel(n=600, n_features=12, n_labels=5, seed=1)
    Xtr, Xte, Ytr, Yte = train_test_split(X, Y, random_state=0)
    kw = dict(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0)
    ours = Classifier(**kw).fit(Xtr, Ytr).predict(Xte)
    ref = MLPClassifier(**kw).fit(Xtr, Ytr).predict(Xte)
    assert abs((ours == Yte).mean() - (ref == Yte).mean()) < 0.03           # per label
    assert abs((ours == Yte).all(1).mean() - (ref == Yte).all(1).mean()) < 0.06   # subsets
    assert (ours == Yte).mean() > 0.75


def test_multilabel_outputs_are_sigmoids_of_logits():
    X, Y = multilabel()
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X, Y)
    z = clf.decision_function(X)
    assert z.shape == Y.shape
    assert_allclose(z, numpy_logits(clf.coefs_, clf.intercepts_, "relu", X),
                    rtol=1e-10, atol=1e-12)
    assert_allclose(clf.predict_proba(X), expit(z), rtol=1e-12, atol=1e-15)
    assert_allclose(clf.predict_log_proba(X), log_expit(z), rtol=1e-12, atol=1e-15)
    assert_array_equal(clf.predict(X), (z > 0).astype(int))
    assert clf.predict(X).dtype == Y.dtype
    # rows are not distributions
    assert not np.allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_multilabel_float32():
    X, Y = multilabel()
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(
        X.astype(np.float32), Y)
    assert clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert_allclose(clf.predict_proba(X.astype(np.float32)),
                    expit(numpy_logits(clf.coefs_, clf.intercepts_, "relu",
                                       X.astype(np.float32))), rtol=1e-4, atol=1e-6)


def test_multilabel_string_labels_refused():
    X, Y = multilabel(n=40)
    Ys = np.where(Y == 1, "yes", "no")
    with pytest.raises(ValueError):
        Classifier(max_iter=2).fit(X, Ys)


def test_multilabel_class_weight_refused():
    X, Y = multilabel(n=40)
    for cw in ("balanced", {0: 2.0}):
        clf = Classifier(class_weight=cw, max_iter=2)
        with pytest.raises(ValueError, match="class_weight"):
            clf.fit(X, Y)
        assert not hasattr(clf, "coefs_")


def test_multilabel_label_smoothing_refused():
    X, Y = multilabel(n=40)
    clf = Classifier(label_smoothing=0.1, max_iter=2)
    with pytest.raises(ValueError, match="label_smoothing"):
        clf.fit(X, Y)
    assert not hasattr(clf, "coefs_")


def test_multilabel_early_stopping(capture_holdout):
    X, Y = multilabel(n=300)
    clf = Classifier(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
                     learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_validation_loss_ == min(clf.validation_loss_curve_)
    (order, X_val, Y_val, _), = capture_holdout
    assert len(X_val) == 30 and len(order) == 270
    z = numpy_logits(clf.coefs_, clf.intercepts_, "relu", X_val)
    # the restored weights are those of the best validation accuracy (subset accuracy)
    assert_allclose(((z > 0) == Y_val).all(1).mean(), clf.best_validation_score_)
    i = int(np.argmax(clf.validation_scores_))
    assert_allclose(clf.validation_loss_curve_[i], multilabel_bce(z, Y_val), rtol=1e-10)


def test_multilabel_partial_fit():
    X, Y = multilabel()
    clf = Classifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, Y)
    for _ in range(5):
        clf.partial_fit(X, Y, classes=np.arange(Y.shape[1]))
    assert clf.n_iter_ == 5 and clf.out_activation_ == "logistic"
    assert clf.predict(X).shape == Y.shape
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    # MLPClassifier trained by the same calls (same batches: shuffle=False)
    kw = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0,
              shuffle=False, batch_size=len(X))
    ours, ref = Classifier(**kw), MLPClassifier(**kw)
    for _ in range(3):
        ours.partial_fit(X, Y, classes=np.arange(Y.shape[1]))
        ref.partial_fit(X, Y, classes=np.arange(Y.shape[1]))
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_allclose(a, b, rtol=0, atol=1e-12)
    # a single-label y on a multilabel model is refused
    with pytest.raises(ValueError, match="multilabel"):
        clf.partial_fit(X, Y[:, 0])


def test_multilabel_save_load(tmp_path):
    X, Y = multilabel()
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                     early_stopping=True).fit(X, Y)
    clf.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.out_activation_ == "logistic"
    assert_array_equal(back.classes_, clf.classes_)
    assert_array_equal(back.predict(X), clf.predict(X))
    assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.validation_loss_curve_ == clf.validation_loss_curve_


# ---------------------------------------------------------------------------
# 4. validation loss and early_stopping_metric


@pytest.mark.parametrize("weighted", [False, True])
def test_validation_loss_is_heldout_nll(capture_holdout, weighted):
    # fits stopped after K = 1, 2, ..., 6 epochs follow one trajectory; the
    # restored weights of each are those of its lowest validation loss, whose
    # held-out NLL (recomputed here in NumPy) is that entry of the curve.  With
    # the loss decreasing at every epoch, that checks every entry.
    X, y = blobs(n=200)
    sw = np.random.RandomState(3).uniform(0.5, 2.0, len(y)) if weighted else None
    kw = dict(hidden_layer_sizes=(8,), early_stopping=True, early_stopping_metric="loss",
              n_iter_no_change=100, learning_rate_init=0.003, random_state=0,
              label_smoothing=0.1)          # the validation loss never smooths
    full = None
    for K in range(6, 0, -1):
        capture_holdout.clear()
        clf = Classifier(max_iter=K, **kw).fit(X, y, sample_weight=sw)
        full = full or clf.validation_loss_curve_
        assert clf.validation_loss_curve_ == full[:K]
        (order, X_val, y_val, sw_val), = capture_holdout
        z = numpy_logits(clf.coefs_, clf.intercepts_, "relu", X_val)
        i = int(np.argmin(clf.validation_loss_curve_))
        assert i == K - 1                               # decreasing: the last is the best
        assert_allclose(clf.validation_loss_curve_[i], smoothed_ce(z, y_val, 0.0, sw_val),
                        rtol=1e-10)
        assert clf.best_validation_loss_ == min(clf.validation_loss_curve_)
    # the held-out rows are train_test_split's stratified split of the row indices
    assert len(X_val) == 20 and len(order) == 180
    assert_array_equal(np.bincount(y_val), [5, 5, 5, 5])
    assert_array_equal(np.sort(np.r_[order, [np.flatnonzero((X == r).all(1))[0]
                                             for r in X_val]]), np.arange(len(X)))
    if weighted:
        assert_array_equal(sw_val, sw[[np.flatnonzero((X == r).all(1))[0] for r in X_val]])


def test_accuracy_metric_is_mlpclassifiers_early_stopping(monkeypatch):
    # "accuracy" (the default) is MLPClassifier's early stopping: the same
    # scores, stopping epoch and restored weights, given the same held-out rows.
    # MLPClassifier splits a multiclass y unstratified (it stratifies only when
    # its binarized y has one column), where ours is stratified: this test
    # makes ours unstratified, so that the rows are the same.
    real = _inputs.holdout
    monkeypatch.setattr(_inputs, "holdout",
                        lambda *a, **k: real(*a, **{**k, "stratify": False}))
    X, y = blobs(n=200)
    kw = dict(hidden_layer_sizes=(6,), early_stopping=True, batch_size=180, max_iter=60,
              n_iter_no_change=3, learning_rate_init=0.01, random_state=0, shuffle=False)
    ours = Classifier(**kw).fit(X, y)
    ref = MLPClassifier(**kw).fit(X, y)
    assert ours.early_stopping_metric == "accuracy"
    assert ours.n_iter_ == ref.n_iter_ < 60
    assert ours.validation_scores_ == pytest.approx(ref.validation_scores_, abs=1e-12)
    assert ours.best_validation_score_ == pytest.approx(ref.best_validation_score_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_allclose(a, b, rtol=0, atol=1e-10)


def _overfitting_problem():
    # few noisy rows, many features, a wide network, a large learning rate
    X, y = make_classification(n_samples=120, n_features=40, n_informative=3,
                               flip_y=0.3, random_state=0)
    return StandardScaler().fit_transform(X), y


def test_early_stopping_metric_loss_stops_on_loss_plateau(capture_holdout):
    X, y = _overfitting_problem()
    clf = Classifier(hidden_layer_sizes=(64,), early_stopping=True,
                     early_stopping_metric="loss", validation_fraction=0.25,
                     n_iter_no_change=5, max_iter=300, learning_rate_init=0.01,
                     random_state=0).fit(X, y)
    curve = clf.validation_loss_curve_
    assert clf.n_iter_ < 300
    assert len(curve) == clf.n_iter_ == len(clf.validation_scores_)
    assert clf.best_validation_loss_ == min(curve)
    best = int(np.argmin(curve))
    # stopped by the rule: n_iter_no_change + 1 epochs without beating the best by tol
    assert clf.n_iter_ == best + 1 + clf.n_iter_no_change + 1
    assert all(v > curve[best] - clf.tol for v in curve[best + 1:])
    # and the restored weights are the lowest validation loss's
    (_, X_val, y_val, _), = capture_holdout
    z = numpy_logits(clf.coefs_, clf.intercepts_, "relu", X_val)
    assert_allclose(smoothed_ce(z, y_val, 0.0), clf.best_validation_loss_, rtol=1e-10)


def test_early_stopping_metric_accuracy_keeps_best_score(capture_holdout):
    X, y = _overfitting_problem()
    clf = Classifier(hidden_layer_sizes=(64,), early_stopping=True, validation_fraction=0.25,
                     n_iter_no_change=5, max_iter=300, learning_rate_init=0.01,
                     random_state=0).fit(X, y)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_validation_loss_ == min(clf.validation_loss_curve_)
    (_, X_val, y_val, _), = capture_holdout
    z = numpy_logits(clf.coefs_, clf.intercepts_, "relu", X_val)
    # restored: the first epoch of the best accuracy
    i = int(np.argmax(clf.validation_scores_))
    assert_allclose(np.mean(np.argmax(z, 1) == y_val), clf.best_validation_score_)
    assert_allclose(smoothed_ce(z, y_val, 0.0), clf.validation_loss_curve_[i], rtol=1e-10)


def test_no_early_stopping_no_validation_loss():
    X, y = blobs()
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    assert clf.validation_loss_curve_ is None and clf.best_validation_loss_ is None


# ---------------------------------------------------------------------------
# 5. label smoothing


def test_label_smoothing_changes_the_model():
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    assert not same_weights(Classifier(label_smoothing=0.1, **kw).fit(X, y),
                            Classifier(**kw).fit(X, y))


@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothing_loss_is_smoothed_cross_entropy(weighted):
    # one full-batch epoch: loss_ is the loss of the initial weights
    # (MLPClassifier's Glorot draws, rewritten here), before the update
    X, y = blobs(n=100)
    sw = np.random.RandomState(4).uniform(0.5, 2.0, len(y)) if weighted else None
    clf = Classifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-12,
                     alpha=0.0, batch_size=len(X), max_iter=1, label_smoothing=0.1,
                     random_state=0).fit(X, y, sample_weight=sw)
    coefs, intercepts = glorot([X.shape[1], 8, 4], "relu", 0)
    for ours, init in zip(clf.coefs_ + clf.intercepts_, coefs + intercepts):
        assert_allclose(ours, init, rtol=0, atol=1e-9)      # barely moved
    z = numpy_logits(coefs, intercepts, "relu", X)
    assert_allclose(clf.loss_, smoothed_ce(z, y, 0.1, sw), rtol=1e-12)
    assert abs(clf.loss_ - smoothed_ce(z, y, 0.0, sw)) > 1e-3


@needs_torch
def test_label_smoothing_loss_against_torch():
    X, y = blobs(n=100)
    clf = Classifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-12,
                     alpha=0.0, batch_size=len(X), max_iter=1, label_smoothing=0.25,
                     random_state=0).fit(X, y)
    coefs, intercepts = glorot([X.shape[1], 8, 4], "relu", 0)
    z = torch.tensor(numpy_logits(coefs, intercepts, "relu", X))
    ref = F.cross_entropy(z, torch.tensor(y), label_smoothing=0.25).item()
    assert_allclose(clf.loss_, ref, rtol=1e-12)


# ---------------------------------------------------------------------------
# 6. bad input: each refused at fit (the estimator stays unfitted)


def _refused(exc=ValueError, match=None, **params):
    X, y = blobs(n=40)
    clf = Classifier(hidden_layer_sizes=(4, 3), max_iter=3, **params)
    with pytest.raises(exc, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "coefs_")


def test_class_weight_list_refused():
    _refused(match="class_weight", class_weight=[1.0, 2.0, 1.0, 1.0])


def test_class_weight_unknown_key_refused():
    _refused(match="not classes", class_weight={0: 1.0, 7: 2.0})


def test_class_weight_negative_refused():
    _refused(match="class_weight", class_weight={0: -1.0})


def test_class_weight_nan_refused():
    _refused(match="class_weight", class_weight={1: float("nan")})


def test_class_weight_inf_refused():
    _refused(match="class_weight", class_weight={1: float("inf")})


def test_class_weight_string_value_refused():
    _refused(match="class_weight", class_weight={1: "2"})


def test_class_weight_Balanced_refused():
    _refused(match="class_weight", class_weight="Balanced")


def test_dropout_negative_refused():
    _refused(match="dropout", dropout=-0.1)


def test_dropout_one_refused():
    _refused(match="dropout", dropout=1.0)


def test_dropout_string_refused():
    _refused(match="dropout", dropout="x")


def test_dropout_wrong_length_refused():
    _refused(match="dropout", dropout=[0.1])       # two hidden layers


def test_dropout_too_many_rates_refused():
    _refused(match="dropout", dropout=[0.1, 0.1, 0.1])


def test_dropout_nested_refused():
    _refused(match="dropout", dropout=[[0.1]])


def test_dropout_rate_out_of_range_in_list_refused():
    _refused(match="dropout", dropout=[0.1, 1.0])


def test_dropout_negative_rate_in_list_refused():
    _refused(match="dropout", dropout=[-0.1, 0.1])


def test_dropout_string_rate_in_list_refused():
    _refused((TypeError, ValueError), match="dropout", dropout=[0.1, "x"])


def test_label_smoothing_negative_refused():
    _refused(match="label_smoothing", label_smoothing=-0.1)


def test_label_smoothing_one_refused():
    _refused(match="label_smoothing", label_smoothing=1.0)


def test_label_smoothing_string_refused():
    _refused(match="label_smoothing", label_smoothing="a")


def test_warmup_epochs_negative_refused():
    _refused(match="warmup_epochs", warmup_epochs=-1, learning_rate="cosine")


def test_warmup_epochs_equal_max_iter_refused():
    _refused(match="warmup_epochs", warmup_epochs=3, learning_rate="cosine")


def test_warmup_epochs_above_max_iter_refused():
    _refused(match="warmup_epochs", warmup_epochs=10, learning_rate="cosine")


def test_early_stopping_metric_f1_refused():
    _refused(match="early_stopping_metric", early_stopping_metric="f1", early_stopping=True)


def test_learning_rate_cosine_typo_refused():
    _refused(match="learning_rate", learning_rate="cosine ")


def test_activation_swish_refused():
    _refused(match="activation", activation="swish")


def test_dropout_wrong_length_refused_in_partial_fit():
    X, y = blobs(n=40)
    clf = Classifier(hidden_layer_sizes=(4, 3), dropout=[0.1])
    with pytest.raises(ValueError, match="dropout"):
        clf.partial_fit(X, y, classes=np.arange(4))
    assert not hasattr(clf, "coefs_")


# ---------------------------------------------------------------------------
# 7. save / load


NEW_PARAMS = dict(class_weight={0: 2.0, 3: 0.5}, dropout=[0.1, 0.2], label_smoothing=0.1,
                  activation="silu", learning_rate="cosine", warmup_epochs=2,
                  early_stopping=True, early_stopping_metric="loss")


@pytest.mark.parametrize("params", [
    NEW_PARAMS,
    dict(class_weight="balanced", dropout=0.3, activation="gelu"),
    dict(class_weight={"ant": 2.0}, activation="leaky_relu"),
])
def test_save_load_new_parameters(tmp_path, params):
    X, y = blobs()
    if "ant" in params["class_weight"]:
        y = np.array(["ant", "bee", "cat", "dog"])[y]
    clf = Classifier(hidden_layer_sizes=(8, 6), max_iter=5, random_state=0,
                     **params).fit(X, y)
    clf.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.get_params() == clf.get_params()
    assert type(back.class_weight) is type(clf.class_weight)
    assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(back.predict(X), clf.predict(X))
    assert back.out_activation_ == "softmax"
    assert back.validation_loss_curve_ == clf.validation_loss_curve_
    assert back.best_validation_loss_ == clf.best_validation_loss_
    # a loaded model trains on with its parameters
    back.set_params(warm_start=True, max_iter=6).fit(X, y)


def _as_version_01(src, dst, drop_members=("out_activation", "validation_loss_curve",
                                            "best_validation_loss")):
    """Rewrite a model file as cysoftmax 0.1 wrote it: no new parameter in the
    params JSON, none of the new members."""
    new_keys = {"class_weight", "dropout", "label_smoothing", "warmup_epochs",
                "early_stopping_metric"}
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k not in drop_members}
    params = json.loads(str(arrays["params"]))
    assert new_keys <= set(params)
    arrays["params"] = np.array(json.dumps({k: v for k, v in params.items()
                                            if k not in new_keys}))
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_load_file_without_new_keys(tmp_path, early_stopping):
    X, y = blobs()
    clf = Classifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                     early_stopping=early_stopping).fit(X, y)
    clf.save(tmp_path / "new.npz")
    _as_version_01(tmp_path / "new.npz", tmp_path / "old.npz")
    with zipfile.ZipFile(tmp_path / "old.npz") as z:
        assert "out_activation.npy" not in z.namelist()
        assert "validation_loss_curve.npy" not in z.namelist()
    back = load(tmp_path / "old.npz")
    defaults = Classifier().get_params()
    for k in ("class_weight", "dropout", "label_smoothing", "warmup_epochs",
              "early_stopping_metric"):
        assert back.get_params()[k] == defaults[k]
    assert back.out_activation_ == "softmax"
    assert back.validation_loss_curve_ is None and back.best_validation_loss_ is None
    if early_stopping:
        assert back.validation_scores_ == clf.validation_scores_
    assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(back.predict(X), clf.predict(X))
    # and it trains on (warm start, early stopping continues its curves)
    back.set_params(warm_start=True, max_iter=3).fit(X, y)
    assert back.n_iter_ == 8
    if early_stopping:
        assert len(back.validation_scores_) == len(back.validation_loss_curve_) == 8
        assert np.isnan(back.validation_loss_curve_[:5]).all()
        assert np.isfinite(back.validation_loss_curve_[5:]).all()


def test_save_load_class_weight_pairs_in_file(tmp_path):
    X, y = blobs()
    clf = Classifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                     class_weight={1: 2.0, 2: 0.5}).fit(X, y)
    buf = io.BytesIO()
    clf.save(buf)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        params = json.loads(str(f["params"]))
    assert sorted(params["class_weight"]) == [[1, 2.0], [2, 0.5]]
    buf.seek(0)
    assert load(buf).class_weight == {1: 2.0, 2: 0.5}


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_loaded_model_warm_starts_as_in_memory(tmp_path, metric):
    # a loaded early-stopping model goes on training as the one it was saved
    # from (the best weights so far are the saved ones); formerly an
    # AttributeError (_best_coefs) when no epoch beat the saved best score
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, early_stopping=True,
              early_stopping_metric=metric)
    mem = Classifier(**kw).fit(X, y)
    mem.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    for clf in (mem, back):
        clf.set_params(warm_start=True, max_iter=3, random_state=1).fit(X, y)
    assert back.n_iter_ == mem.n_iter_ == 8
    assert back.validation_scores_ == mem.validation_scores_
    assert back.validation_loss_curve_ == mem.validation_loss_curve_
    assert_same_weights(back, mem)


# ---------------------------------------------------------------------------
# found in review


def test_multilabel_targets_must_be_zero_or_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = (rng.random((40, 2)) > 0.5).astype(int)
    for bad in (Y * 2, Y * 2 - 1):          # {0, 2} and {-1, 1}: indicator-typed to sklearn
        with pytest.raises(ValueError, match="indicator matrix of 0 and 1"):
            Classifier((4,), max_iter=2).fit(X, bad)
        with pytest.raises(ValueError, match="indicator matrix of 0 and 1"):
            Classifier((4,), solver="lbfgs", max_iter=2).fit(X, bad)


def test_sparse_multilabel_y_as_dense():
    import scipy.sparse as sp
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    Y = (rng.random((60, 3)) > 0.5).astype(int)
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    dense = Classifier(**kw).fit(X, Y)
    sparse = Classifier(**kw).fit(X, sp.csr_matrix(Y))
    for a, b in zip(dense.coefs_, sparse.coefs_):
        assert_array_equal(a, b)


def test_a_pickle_of_0_1_without_the_new_parameters_still_predicts():
    import pickle
    X, y = blobs()
    clf = Classifier((4,), max_iter=3, random_state=0).fit(X, y)
    state = clf.__getstate__()
    for name in ("max_fun", "class_weight", "dropout", "label_smoothing", "warmup_epochs",
                 "early_stopping_metric"):
        del state[name]
    old = Classifier.__new__(Classifier)
    old.__setstate__(state)
    assert_array_equal(old.predict_proba(X), clf.predict_proba(X))
    assert old.get_params() == clf.get_params()
    assert pickle.loads(pickle.dumps(old)).dropout == 0.0


def test_lbfgs_checks_dropout_and_warns_that_it_ignores_it():
    X, y = blobs()
    with pytest.raises(ValueError, match="dropout has 3 rates"):
        Classifier((4,), solver="lbfgs", dropout=[0.1, 0.2, 0.3], max_iter=3).fit(X, y)
    with pytest.warns(UserWarning, match="dropout does not apply to solver='lbfgs'"):
        got = Classifier((4,), solver="lbfgs", dropout=0.3, max_iter=5, random_state=0).fit(X, y)
    ref = Classifier((4,), solver="lbfgs", max_iter=5, random_state=0).fit(X, y)
    assert_array_equal(got.coefs_[0], ref.coefs_[0])
