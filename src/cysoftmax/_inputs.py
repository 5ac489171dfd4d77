"""The estimator's inputs: memmap-aware validation of X, targets, label encoding.

Owns what `Classifier` checks before training or predicting: the target
type (binary, multiclass, or a multilabel indicator matrix), the class
weights (``class_weight`` into per-sample weights), X through scikit-learn's ``validate_data``
(float32 kept, anything else as float64; a memory-mapped X checked for
NaN/inf through its file, see `_mmap`), ``hidden_layer_sizes``, the
encoding of labels into ``0..m-1``, and the early-stopping hold-out (a
split of row indices, never a copy of the training rows).  Every function
takes the estimator (or plain values) and returns checked arrays; none
trains.  It may call `_validation` and `_mmap`, never the estimator module.
"""

import inspect
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _assert_all_finite, check_is_fitted, validate_data

from ._mmap import _MappedFile
from ._validation import check_sparse_structure

__all__ = ["hidden_sizes", "check_target", "validate_X_y", "validate_X_predict",
           "float_dtypes", "encode_labels", "weigh_classes", "holdout"]


def hidden_sizes(est):
    sizes = est.hidden_layer_sizes
    if not hasattr(sizes, "__iter__"):
        sizes = [sizes]
    sizes = list(sizes)
    for s in sizes:
        if not isinstance(s, (Integral, np.integer)) or isinstance(s, bool) or s <= 0:
            raise ValueError(
                f"hidden_layer_sizes must hold positive integers, got {est.hidden_layer_sizes!r}")
    return [int(s) for s in sizes]


def check_target(y):
    """Refuse targets that are neither class labels of one output nor a multilabel
    indicator matrix, before anything else; True for a multilabel y."""
    # raise_unknown: object arrays of mixed/odd values get sklearn's
    # "Unknown label type" message; NaN/inf in a float y is reported too
    with np.errstate(invalid="ignore"):     # its float->int probe of a NaN y
        target = type_of_target(y, input_name="y", raise_unknown=True)
    if target in ("binary", "multiclass"):
        return False
    if target == "multilabel-indicator":
        return True
    if target.startswith("multiclass-multioutput") or target.startswith("multilabel"):
        raise ValueError(
            f"Classifier supports binary, multiclass and multilabel-indicator targets; y is "
            f"{target!r} (several outputs of arbitrary labels). For multilabel data, pass "
            "y as an indicator matrix of 0/1 (sklearn.preprocessing.MultiLabelBinarizer "
            "makes one from label sets); for other multi-output targets, train one "
            "Classifier per output, e.g. with sklearn.multioutput.MultiOutputClassifier.")
    raise ValueError(
        f"Unknown label type: {target!r}. Classifier needs class labels (binary or "
        "multiclass) in y; continuous targets are for a regressor.")


def validate_X_y(est, X, y, reset, multilabel=False):
    # an np.memmap is checked for NaN/inf below, through its file: a check
    # through the mapping would make the whole file resident
    mapped = _MappedFile.applies(X)
    X, y = validate_data(
        est, X, y, reset=reset,
        accept_sparse=["csr", "csc"],
        dtype=float_dtypes(X),
        order="C",
        ensure_min_samples=1,
        ensure_all_finite=not mapped,
        multi_output=multilabel,
    )
    if mapped:
        with _MappedFile.open(X) as f:
            if f is None:       # converted (dtype, order) into memory by validate_data
                _assert_all_finite(X, input_name="X", estimator_name=type(est).__name__)
            else:
                f.check_finite(type(est).__name__)
    if sp.issparse(X):
        X = check_sparse_structure(X, "X")
    return X, y


def validate_X_predict(est, X):
    check_is_fitted(est, "coefs_")
    dtype = est.coefs_[0].dtype
    other = np.float64 if dtype == np.float32 else np.float32
    X = validate_data(est, X, reset=False, accept_sparse=["csr", "csc"],
                      dtype=[dtype, other], order="C")
    if sp.issparse(X):
        X = check_sparse_structure(X, "X")
    if X.dtype != dtype:
        # values beyond float32's range become inf here; _forward then
        # refuses the non-finite output with a clear message
        with np.errstate(over="ignore"):
            X = X.astype(dtype)
    return X


def float_dtypes(X):
    """check_array's dtype list: keep float32/float64; float32 also when not in native
    byte order (converted to native float32, not up-cast); anything else -> float64."""
    dt = getattr(X, "dtype", None)
    if isinstance(dt, np.dtype) and dt.kind == "f" and dt.itemsize == 4:
        return [np.float32, np.float64]
    return [np.float64, np.float32]


def encode_labels(y, classes):
    """Indices of y's labels in the sorted `classes`; ValueError for a label not in it."""
    idx = np.searchsorted(classes, y)
    np.minimum(idx, len(classes) - 1, out=idx)
    bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(f"y holds labels {np.unique(np.asarray(y)[bad])!r} that are not in "
                         f"classes {classes!r}")
    return idx.astype(np.intp, copy=False)


def weigh_classes(class_weight, classes, y, y_idx, sample_weight, kept=None):
    """``(sample weights, class weights)``: `sample_weight` times the weights
    of the samples' classes, and those per-class weights (in `classes`'
    order).

    scikit-learn's `compute_class_weight` as LogisticRegression calls it
    (with the sample weights, where the installed scikit-learn accepts
    them).  A dict's keys must be classes; classes it leaves out weigh 1.
    "balanced" uses `kept` when given (the weights of an earlier call: in
    `partial_fit`, those of the first call's data, which must then hold
    every class)."""
    if isinstance(class_weight, str) and kept is not None:
        w = kept[y_idx].astype(np.float64)
        return (w if sample_weight is None else sample_weight * w), kept
    if isinstance(class_weight, str):
        missing = np.setdiff1d(classes, y)
        if missing.size:
            raise ValueError(
                f"class_weight='balanced' is computed from the data of this call (in "
                f"partial_fit: the first call), which has no sample of the classes "
                f"{missing.tolist()!r}. Pass a first batch with every class, or a dict: "
                "e.g. dict(zip(classes, sklearn.utils.class_weight.compute_class_weight("
                "'balanced', classes=classes, y=y_all))).")
    if isinstance(class_weight, dict):
        known = set(classes.tolist())
        unknown = [k for k in class_weight if _plain(k) not in known]
        if unknown:
            raise ValueError(f"class_weight has keys {unknown!r} that are not classes; the "
                             f"classes are {classes.tolist()!r}")
        for k, v in class_weight.items():
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real) or not (
                    np.isfinite(v) and v >= 0):
                raise ValueError(f"class_weight[{k!r}] must be a finite number >= 0; got {v!r}")
    kwargs = {}
    if sample_weight is not None and "sample_weight" in inspect.signature(
            compute_class_weight).parameters:
        kwargs["sample_weight"] = sample_weight
    with np.errstate(divide="ignore", invalid="ignore"):
        cw = compute_class_weight(class_weight, classes=classes, y=y, **kwargs)
    # "balanced" with sample weights: a class whose rows all weigh 0 gets an
    # infinite (or NaN) weight from compute_class_weight; its rows weigh 0
    # whatever it is (0 * inf would make them NaN)
    cw = np.where(np.isfinite(cw), cw, 0.0)
    w = cw[y_idx].astype(np.float64)
    return (w if sample_weight is None else sample_weight * w), cw


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def holdout(X, y, sample_weight, validation_fraction, rng, stratify=True):
    """A stratified early-stopping split: ``(order, X_val, y_val, sw_val)``.

    The training rows are returned as row indices (the epochs' order), not
    copied: the same rows as splitting X (the split depends on n and y
    only).  Only the validation rows are copied out, through the file when
    X is memory-mapped.
    """
    try:
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0], dtype=np.intp), random_state=rng,
            test_size=validation_fraction, stratify=y if stratify else None)
    except ValueError as exc:
        raise ValueError(
            "early_stopping could not hold out a stratified validation set "
            f"(validation_fraction={validation_fraction}, {X.shape[0]} samples): {exc}. "
            "Increase 'validation_fraction' or the size of your dataset, or set "
            "early_stopping=False.") from None
    if val_idx.shape[0] < 2:
        raise ValueError("The validation set is too small. Increase "
                         "'validation_fraction' or the size of your dataset.")
    with _MappedFile.open(X) as f:
        X_val = X[val_idx] if f is None else f.take(val_idx)
    sw_val = None if sample_weight is None else sample_weight[val_idx]
    return np.ascontiguousarray(train_idx, dtype=np.intp), X_val, y[val_idx], sw_val
