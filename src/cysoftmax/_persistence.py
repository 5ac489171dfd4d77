"""Saving and loading a fitted `Classifier` as ``.npz`` (no pickle): the
security-sensitive reader, kept alone so that it can be reviewed alone.

Owns the file format (``format=1``): `save` writes plain numeric and string
arrays; `load` reads them back with ``allow_pickle=False`` and checks every
member (keys, kinds, shapes, dtypes, finiteness and the layers' chain
through ``_validation.check_network``, the parameters through the
estimator's own constraints) before a model is
built, so a file from an untrusted source can neither run code nor make us
allocate more than its members' declared sizes.  It builds the estimator
class it is given (`classifier.load` passes `Classifier`): it imports
``_inputs`` (the check of ``hidden_layer_sizes``) and ``_validation``, never
the estimator.
"""

import json
import zipfile
import zlib

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._inputs import hidden_sizes
from ._validation import check_network
from ._version import __version__

__all__ = ["write", "read", "SAVE_FORMAT", "MAX_LAYERS"]

SAVE_FORMAT = 1
MAX_LAYERS = 10_000     # a bound on what a file's n_layers makes us read


def write(clf, path):
    """Write a fitted `clf` to `path` (see :meth:`Classifier.save`)."""
    check_is_fitted(clf, "coefs_")
    classes = np.asarray(clf.classes_)
    classes_is_object = classes.dtype.kind == "O"
    if classes_is_object:
        if not all(isinstance(c, str) for c in classes):
            raise TypeError("save supports numeric or string class labels; classes_ holds "
                            "other Python objects (use pickle at your own risk)")
        classes = classes.astype(str)
    if classes.dtype.kind not in "biufU":
        raise TypeError(f"save supports numeric or string class labels; classes_ has "
                        f"dtype {classes.dtype}")
    params = {k: _jsonable(v) for k, v in clf.get_params(deep=False).items()}
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None       # a RandomState instance is not data
    params["hidden_layer_sizes"] = hidden_sizes(clf)
    arrays = {
        "format": np.array(SAVE_FORMAT),
        "cysoftmax_version": np.array(__version__),
        "params": np.array(json.dumps(params)),
        "classes": classes,
        "classes_is_object": np.array(classes_is_object),
        "n_layers": np.array(len(clf.coefs_)),
        "n_iter": np.array(int(clf.n_iter_)),
        "t": np.array(int(clf.t_)),
        "loss": np.array(float(getattr(clf, "loss_", np.nan))),
        "loss_curve": np.asarray(clf.loss_curve_, dtype=np.float64),
    }
    if getattr(clf, "best_loss_", None) is not None:
        arrays["best_loss"] = np.array(float(clf.best_loss_))
    if getattr(clf, "validation_scores_", None) is not None:
        arrays["validation_scores"] = np.asarray(clf.validation_scores_, dtype=np.float64)
        arrays["best_validation_score"] = np.array(float(clf.best_validation_score_))
    if getattr(clf, "feature_names_in_", None) is not None:
        arrays["feature_names_in"] = np.asarray(clf.feature_names_in_).astype(str)
    for i, (c, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        arrays[f"coef_{i}"] = c
        arrays[f"intercept_{i}"] = b
    if hasattr(path, "write"):
        np.savez(path, **arrays)
    else:
        path = _check_path(path)
        with open(path, "wb") as f:       # np.savez would append ".npz" to a str path
            np.savez(f, **arrays)


def _jsonable(v):
    """A parameter value as plain JSON data (numpy scalars and tuples converted)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_jsonable(x) for x in v]
    return v


def read(path, estimator_class):
    """A model written by `write`, built as an `estimator_class`.

    The contract (what is refused, and as which exception) is
    :func:`cysoftmax.load`'s: ``ValueError`` for anything that is not a
    valid model, ``OSError`` as ``open`` raises it.
    """
    name = getattr(path, "name", path)
    if hasattr(path, "read"):
        f, close = path, False
    else:
        f, close = open(_check_path(path), "rb"), True   # OSError (not found, ...) propagates
    try:
        try:
            data = np.load(f, allow_pickle=False)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError,
                RuntimeError, MemoryError) as exc:
            # NotImplementedError / RuntimeError: zipfile's "unsupported zip
            # version / compression / encryption" for a corrupted header
            raise ValueError(f"{name!s} is not a cysoftmax model file (.npz): {exc}") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{name!s} is not a cysoftmax model file: it holds a single "
                             "array, not an .npz archive")
        with data:
            try:
                return _from_npz(_Members(data), estimator_class)
            except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError,
                    OSError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                    MemoryError) as exc:
                # ValueError also covers object arrays, which allow_pickle=False refuses;
                # MemoryError: an array header claiming a gigantic shape
                raise ValueError(f"{name!s} is not a valid cysoftmax model: "
                                 f"{exc.__class__.__name__}: {exc}") from None
    finally:
        if close:
            f.close()


class _Members:
    """An NpzFile whose members are all arrays: NpzFile hands back the raw bytes of a
    member that is not an .npy file, which must not reach the checks as if it were one."""

    def __init__(self, data):
        self._data = data
        self.files = data.files

    def __getitem__(self, key):
        a = self._data[key]
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{key} is not an array (.npy) member")
        return a


def _check_path(path):
    """A file name for open(): refuse ints, which open() would take as file descriptors."""
    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        return path
    raise TypeError(f"path must be a str, bytes, os.PathLike or a binary file object; "
                    f"got {type(path).__name__}")



def _scalar(data, key, kind):
    a = data[key]
    if a.shape != () or a.dtype.kind not in kind:
        raise ValueError(f"{key} must be a scalar of kind {kind!r}; got {a.dtype} {a.shape}")
    return a[()]


def _from_npz(data, estimator_class):
    files = set(data.files)
    need = {"format", "params", "classes", "n_layers"}
    if not need <= files:
        raise ValueError(f"missing keys {sorted(need - files)}")
    fmt = int(_scalar(data, "format", "iu"))
    if fmt != SAVE_FORMAT:
        raise ValueError(f"unknown format {fmt} (this cysoftmax reads format {SAVE_FORMAT})")
    params = json.loads(str(_scalar(data, "params", "U")))
    if not isinstance(params, dict):
        raise ValueError("params is not a mapping")
    clf = estimator_class()
    unknown = set(params) - set(clf.get_params())
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    clf.set_params(**params)
    clf._validate_params()          # InvalidParameterError is a ValueError
    n_layers = int(_scalar(data, "n_layers", "iu"))
    if not 1 <= n_layers <= MAX_LAYERS:
        raise ValueError(f"n_layers must be in [1, {MAX_LAYERS}]; got {n_layers}")
    coefs = [data[f"coef_{i}"] for i in range(n_layers)]
    intercepts = [data[f"intercept_{i}"] for i in range(n_layers)]
    coefs, intercepts = check_network(coefs, intercepts, min_classes=2, finite=True,
                                      names=("coef", "intercept"), item="{}_{}")
    hidden = [c.shape[1] for c in coefs[:-1]]
    if list(hidden_sizes(clf)) != hidden:
        raise ValueError(f"hidden_layer_sizes {clf.hidden_layer_sizes} does not match the "
                         f"layers' sizes {hidden}")
    classes = data["classes"]
    if classes.ndim != 1 or classes.shape[0] != coefs[-1].shape[1] or classes.shape[0] < 2:
        raise ValueError(f"classes must be 1-D with {coefs[-1].shape[1]} (>= 2) entries; "
                         f"got shape {classes.shape}")
    if classes.dtype.kind not in "biufU":
        raise ValueError(f"classes must hold numbers or strings; got dtype {classes.dtype}")
    if not np.all(classes[1:] > classes[:-1]):
        raise ValueError("classes must be sorted and unique")
    if "classes_is_object" in files and bool(_scalar(data, "classes_is_object", "b")):
        classes = classes.astype(object)
    clf.coefs_, clf.intercepts_ = coefs, intercepts
    clf.classes_ = classes
    clf.n_features_in_ = coefs[0].shape[0]
    if "feature_names_in" in files:
        names = data["feature_names_in"]
        if names.dtype.kind != "U" or names.shape != (clf.n_features_in_,):
            raise ValueError(f"feature_names_in must be {clf.n_features_in_} strings")
        clf.feature_names_in_ = names.astype(object)
    clf.n_layers_ = n_layers + 1
    clf.n_outputs_ = coefs[-1].shape[1]
    clf.out_activation_ = "softmax"
    clf.n_iter_ = int(_scalar(data, "n_iter", "iu")) if "n_iter" in files else 0
    clf.t_ = int(_scalar(data, "t", "iu")) if "t" in files else 0
    if "loss" in files and np.isfinite(_scalar(data, "loss", "f")):
        clf.loss_ = float(data["loss"])
    curve = data["loss_curve"] if "loss_curve" in files else np.zeros(0)
    if curve.ndim != 1 or curve.dtype.kind != "f":
        raise ValueError("loss_curve must be a 1-D float array")
    clf.loss_curve_ = [float(v) for v in curve]
    if "best_loss" in files:
        clf.best_loss_ = float(_scalar(data, "best_loss", "f"))
    else:
        clf.best_loss_ = min(clf.loss_curve_) if clf.loss_curve_ else None
    if "validation_scores" in files:
        scores = data["validation_scores"]
        if scores.ndim != 1 or scores.dtype.kind != "f":
            raise ValueError("validation_scores must be a 1-D float array")
        clf.validation_scores_ = [float(v) for v in scores]
        clf.best_validation_score_ = float(_scalar(data, "best_validation_score", "f"))
    else:
        clf.validation_scores_ = None
        clf.best_validation_score_ = None
    clf._no_improvement_count = 0
    return clf
