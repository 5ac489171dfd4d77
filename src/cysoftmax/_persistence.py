"""Saving and loading a fitted `Classifier` as ``.npz`` (no pickle): the
security-sensitive reader, kept alone so that it can be reviewed alone.

Owns the file format (``format=1``): `save` writes plain numeric and string
arrays (one ``.npy`` member of a zip archive each, as `np.savez` does);
`load` reads them back with bounded, checked reads.  It never calls
`np.load`: it opens the archive with `zipfile` and reads a member's data
only after

* the member's ``.npy`` header alone (magic, version 1.0 or 2.0, at most
  ``MAX_HEADER`` bytes; no object dtypes, so nothing is unpickled) declares
  a shape and dtype that the model's structure allows: the small metadata
  members (``format``, ``params``, ``n_layers``) are read first, then every
  other member the model needs is checked from its header -- the layers'
  shapes chain and match ``hidden_layer_sizes``, ``classes`` matches the
  output layer, scalars are scalars -- before any weight is read;
* the member's zip entry is stored or deflated (bzip2 and LZMA expand
  without a bound per read) and its declared ``file_size`` is exactly the
  header's length plus the declared data size;
* the declared sizes of all the members read, summed, are within
  ``max_bytes`` (``MAX_BYTES`` = 2 GiB by default; a ``ValueError`` naming
  ``max_bytes`` says how to raise it).

A member's data is then read as exactly its declared number of bytes: a
member that decompresses to more (trailing data) or to less is refused.  So
a decompression bomb -- a few MB on disk claiming or holding gigabytes --
costs at most its declared sizes, which ``max_bytes`` bounds (peak memory
about twice that when arrays must be byte-swapped or made C-contiguous).
Members the loader does not use are never decompressed.  The values are
checked after reading (finiteness and the layers' chain through
``_validation.check_network``, the parameters through the estimator's own
constraints, sorted classes) before a model is built.  It builds the
estimator class it is given (`classifier.load` passes `Classifier`): it
imports ``_inputs`` (the check of ``hidden_layer_sizes``) and
``_validation``, never the estimator.
"""

import copy
import json
import math
import numbers
import zipfile
import zlib
from typing import NamedTuple

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._inputs import hidden_sizes
from ._validation import check_network
from ._version import __version__

__all__ = ["write", "read", "SAVE_FORMAT", "MAX_LAYERS", "MAX_BYTES"]

SAVE_FORMAT = 1
MAX_LAYERS = 10_000     # a bound on what a file's n_layers makes us read
MAX_BYTES = 2 ** 31     # load's default bound on the declared size of what it reads
MAX_HEADER = 10_000     # a .npy header's bound (np.load's max_header_size default)
MAX_PARAMS_BYTES = 4 * 2 ** 20  # params is a short JSON text (even with MAX_LAYERS layers)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # an archive, an empty archive


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
    if isinstance(params.get("class_weight"), dict):
        # JSON keys are strings: a dict of class labels is kept as [label, weight] pairs
        params["class_weight"] = [[_jsonable(k), _jsonable(v)]
                                  for k, v in clf.class_weight.items()]
    arrays = {
        "format": np.array(SAVE_FORMAT),
        "cysoftmax_version": np.array(__version__),
        "params": np.array(json.dumps(params)),
        "classes": classes,
        "classes_is_object": np.array(classes_is_object),
        "out_activation": np.array(getattr(clf, "out_activation_", "softmax")),
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
    if getattr(clf, "validation_loss_curve_", None) is not None:
        arrays["validation_loss_curve"] = np.asarray(clf.validation_loss_curve_,
                                                     dtype=np.float64)
        arrays["best_validation_loss"] = np.array(float(clf.best_validation_loss_))
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


def read(path, estimator_class, max_bytes=MAX_BYTES):
    """A model written by `write`, built as an `estimator_class`.

    The contract (what is refused, and as which exception) is
    :func:`cysoftmax.load`'s: ``ValueError`` for anything that is not a
    valid model or declares more than `max_bytes` bytes of arrays,
    ``OSError`` as ``open`` raises it.
    """
    if isinstance(max_bytes, (bool, np.bool_)) or not isinstance(max_bytes, numbers.Integral):
        raise TypeError(f"max_bytes must be an int (a number of bytes); got "
                        f"{type(max_bytes).__name__}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive number of bytes; got {max_bytes}")
    name = getattr(path, "name", path)
    if hasattr(path, "read"):
        f, close = path, False
    else:
        f, close = open(_check_path(path), "rb"), True   # OSError (not found, ...) propagates
    try:
        try:
            archive = _open_archive(f)
        except _SingleArray:
            raise ValueError(f"{name!s} is not a cysoftmax model file: it holds a single "
                             "array, not an .npz archive") from None
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError,
                RuntimeError, MemoryError) as exc:
            # NotImplementedError / RuntimeError: zipfile's "unsupported zip
            # version / compression / encryption" for a corrupted header
            raise ValueError(f"{name!s} is not a cysoftmax model file (.npz): {exc}") from None
        with archive:
            try:
                return _from_npz(_Members(archive, int(max_bytes)), estimator_class)
            except _TooLarge as exc:
                raise ValueError(f"{name!s} is refused as a cysoftmax model: {exc}") from None
            except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError,
                    OSError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                    MemoryError) as exc:
                # ValueError also covers headers that fail the checks, object dtypes;
                # MemoryError: should a declared size within max_bytes not fit
                raise ValueError(f"{name!s} is not a valid cysoftmax model: "
                                 f"{exc.__class__.__name__}: {exc}") from None
    finally:
        if close:
            f.close()


class _SingleArray(Exception):
    """The file is one .npy array, not an archive."""


class _TooLarge(ValueError):
    """The members read would declare more than max_bytes (the file may be a valid model)."""


def _open_archive(f):
    """`f` as a `zipfile.ZipFile`, after a look at its first bytes (as np.load sniffs)."""
    pos = f.tell()
    magic = f.read(len(np.lib.format.MAGIC_PREFIX))
    f.seek(pos)
    if not magic:
        raise EOFError("the file is empty")
    if magic == np.lib.format.MAGIC_PREFIX:
        raise _SingleArray
    if not magic.startswith(_ZIP_MAGIC):
        raise ValueError(f"it is not a zip archive (it starts with {magic!r})")
    return zipfile.ZipFile(f)


class _Header(NamedTuple):
    shape: tuple
    fortran_order: bool
    dtype: np.dtype
    header_len: int     # bytes from the member's start to its data
    nbytes: int         # the data's declared size


class _Bounded:
    """A read-only view of `stream` that refuses to read past `limit` bytes, so that
    no length field in a header can make a read larger than the caller allows."""

    def __init__(self, stream, limit, what):
        self._stream, self._left, self._what, self.n = stream, limit, what, 0

    def read(self, size=-1):
        if size is None or size < 0 or size > self._left:
            raise ValueError(f"{self._what} would read past its declared end")
        b = self._stream.read(size)
        self._left -= len(b)
        self.n += len(b)
        return b


class _Members:
    """The archive's members by name (``.npy`` stripped, as in np.load's NpzFile),
    each read only after its header is checked and its size reserved against
    `max_bytes`; members that are not ``.npy`` files are refused as such."""

    def __init__(self, zf, max_bytes):
        self._zf = zf
        self._max_bytes = max_bytes
        self._info = {}
        for info in zf.infolist():        # the last of repeated names wins, as in zipfile
            n = info.filename
            self._info[n[:-4] if n.endswith(".npy") else n] = info
        self.files = list(self._info)
        self._headers = {}
        self._reserved = {}

    def header(self, key):
        """`key`'s declared shape, dtype and sizes, read from its .npy header alone."""
        if key in self._headers:
            return self._headers[key]
        info = self._info.get(key)
        if info is None:
            raise KeyError(f"{key} is not a member of the archive")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"{key} is compressed with method {info.compress_type}; "
                             "a model file's members are stored or deflated")
        fmt = np.lib.format
        with self._zf.open(info) as stream:
            s = _Bounded(stream, fmt.MAGIC_LEN + 4 + MAX_HEADER, f"{key}'s .npy header")
            try:
                version = fmt.read_magic(s)
            except ValueError:
                raise ValueError(f"{key} is not an array (.npy) member") from None
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(s, max_header_size=MAX_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(s, max_header_size=MAX_HEADER)
            else:
                raise ValueError(f"{key}: .npy format version {version} is not supported")
        if dtype.hasobject:
            raise ValueError(f"{key} holds Python objects (dtype {dtype}), which load never "
                             "unpickles (allow_pickle=False)")
        if dtype.kind not in "biufU":
            raise ValueError(f"{key} has dtype {dtype}; a model holds numbers and strings only")
        if any(d < 0 for d in shape):
            raise ValueError(f"{key} declares a negative shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != s.n + nbytes:
            raise ValueError(f"{key}'s zip entry holds {info.file_size} bytes but its .npy "
                             f"header ({s.n} bytes) declares {shape} {dtype}, {nbytes} bytes "
                             f"of data; the sizes must agree")
        h = self._headers[key] = _Header(tuple(shape), fortran, dtype, s.n, nbytes)
        return h

    def reserve(self, keys):
        """Count `keys`' declared sizes into what the load reads; refuse beyond max_bytes."""
        new = {k: self.header(k).nbytes for k in keys if k not in self._reserved}
        total = sum(self._reserved.values()) + sum(new.values())
        if total > self._max_bytes:
            sizes = {**self._reserved, **new}
            big = max(sizes, key=sizes.get)
            h = self.header(big)
            raise _TooLarge(
                f"its arrays declare {total} bytes ({total / 2**30:.3g} GiB) in all, more "
                f"than max_bytes={self._max_bytes}; the largest is {big} (shape {h.shape}, "
                f"{h.dtype}, {h.nbytes} bytes).  If you trust the file, raise the limit: "
                f"load(path, max_bytes={total}) or more")
        self._reserved.update(new)

    def __getitem__(self, key):
        h = self.header(key)
        self.reserve([key])
        # open the entry as one byte longer than declared: zipfile cuts what a member
        # decompresses to at its file_size silently; so, trailing data shows up
        info = copy.copy(self._info[key])
        info.file_size += 1
        with self._zf.open(info) as stream:
            s = _Bounded(stream, h.header_len + h.nbytes, f"{key}'s data")
            try:
                a = np.lib.format.read_array(s, allow_pickle=False, max_header_size=MAX_HEADER)
                extra = stream.read(1)
            except zipfile.BadZipFile as exc:   # the CRC, over one byte too many, or others
                raise ValueError(f"{key} decompresses to other data than its zip entry "
                                 f"declares (more, fewer or other bytes): {exc}") from None
            if extra:
                raise ValueError(f"{key} decompresses to more data than its header declares "
                                 f"({h.nbytes} bytes)")
        if a.shape != h.shape or a.dtype != h.dtype:      # the same bytes, read again
            raise ValueError(f"{key} changed between its header check and its read")
        return a


def _check_path(path):
    """A file name for open(): refuse ints, which open() would take as file descriptors."""
    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        return path
    raise TypeError(f"path must be a str, bytes, os.PathLike or a binary file object; "
                    f"got {type(path).__name__}")



def _scalar_header(data, key, kind):
    h = data.header(key)
    if h.shape != () or h.dtype.kind not in kind:
        raise ValueError(f"{key} must be a scalar of kind {kind!r}; got {h.dtype} {h.shape}")
    return h


def _scalar(data, key, kind):
    _scalar_header(data, key, kind)
    return data[key][()]


def _listed(keys, at_most=6):
    shown = ", ".join(repr(k) for k in keys[:at_most])
    return f"[{shown}{', ...' if len(keys) > at_most else ''}]"


def _check_headers(data, clf, n_layers):
    """Check every member that `_from_npz` reads after the metadata, from its header
    alone, against the model's structure, and reserve their declared sizes: all this
    before any of their data is read.  The messages are those of the checks that
    the data would fail (``check_network``'s for the layers)."""
    files = set(data.files)
    w = [f"coef_{i}" for i in range(n_layers)]
    b = [f"intercept_{i}" for i in range(n_layers)]
    missing = [k for k in w + b if k not in files]
    if missing:
        raise ValueError(f"missing keys {_listed(missing)}")
    hw, hb = [data.header(k) for k in w], [data.header(k) for k in b]
    for names, heads, ndim in ((w, hw, 2), (b, hb, 1)):
        for k, h in zip(names, heads):
            if h.dtype.kind != "f" or h.dtype.itemsize not in (4, 8):
                raise TypeError(f"{k} must be float32 or float64 (network arrays are not "
                                f"converted between dtypes); got dtype {h.dtype}")
            if len(h.shape) != ndim:
                raise ValueError(f"{k} must be {ndim}-D; got shape {h.shape}")
    named = list(zip(w + b, hw + hb))
    if len({h.dtype.itemsize for _, h in named}) > 1:
        f32 = [k for k, h in named if h.dtype.itemsize == 4]
        f64 = [k for k, h in named if h.dtype.itemsize == 8]
        raise TypeError(f"coef and intercept must all have one dtype, float32 or float64; "
                        f"got float32 for {', '.join(f32)} and float64 for {', '.join(f64)}")
    width, prev = hw[0].shape[0], None
    if width == 0:
        raise ValueError("coef_0 has no rows: the network needs at least one input feature")
    for l in range(n_layers):
        rows, cols = hw[l].shape
        if prev is not None and rows != width:
            raise ValueError(f"{w[l]} has {rows} rows but {prev} is {width}; "
                             "consecutive layer shapes must chain")
        if cols == 0:
            raise ValueError(f"{w[l]} has no columns: every layer needs at least one unit")
        if hb[l].shape[0] != cols:
            raise ValueError(f"{b[l]} has {hb[l].shape[0]} entries but {w[l]} has "
                             f"{cols} columns; they must match")
        width, prev = cols, f"{w[l]} columns"
    if width < 2:
        raise ValueError(f"the output layer ({w[-1]}) has {width} unit; a softmax "
                         f"output needs at least 2 classes")
    hidden = [h.shape[1] for h in hw[:-1]]
    if list(hidden_sizes(clf)) != hidden:
        raise ValueError(f"hidden_layer_sizes {clf.hidden_layer_sizes} does not match the "
                         f"layers' sizes {hidden}")
    n_features, n_classes = hw[0].shape[0], width
    classes = data.header("classes")
    if len(classes.shape) != 1 or classes.shape[0] != n_classes:
        raise ValueError(f"classes must be 1-D with {n_classes} (>= 2) entries; "
                         f"got shape {classes.shape}")
    if classes.dtype.kind not in "biufU":
        raise ValueError(f"classes must hold numbers or strings; got dtype {classes.dtype}")
    read = w + b + ["classes"]
    for key, kind in (("classes_is_object", "b"), ("n_iter", "iu"), ("t", "iu"),
                      ("loss", "f"), ("best_loss", "f")):
        if key in files:
            _scalar_header(data, key, kind)
            read.append(key)
    if "feature_names_in" in files:
        h = data.header("feature_names_in")
        if h.dtype.kind != "U" or h.shape != (n_features,):
            raise ValueError(f"feature_names_in must be {n_features} strings")
        read.append("feature_names_in")
    if "out_activation" in files:
        _scalar_header(data, "out_activation", "U")
        read.append("out_activation")
    for key in ("loss_curve", "validation_scores", "validation_loss_curve"):
        if key in files:
            h = data.header(key)
            if len(h.shape) != 1 or h.dtype.kind != "f":
                raise ValueError(f"{key} must be a 1-D float array")
            read.append(key)
    if "validation_loss_curve" in files:
        _scalar_header(data, "best_validation_loss", "f")
        read.append("best_validation_loss")
    if "validation_scores" in files:
        _scalar_header(data, "best_validation_score", "f")
        read.append("best_validation_score")
    data.reserve(read)


def _from_npz(data, estimator_class):
    files = set(data.files)
    need = {"format", "params", "classes", "n_layers"}
    if not need <= files:
        raise ValueError(f"missing keys {sorted(need - files)}")
    fmt = int(_scalar(data, "format", "iu"))
    if fmt != SAVE_FORMAT:
        raise ValueError(f"unknown format {fmt} (this cysoftmax reads format {SAVE_FORMAT})")
    h = _scalar_header(data, "params", "U")
    if h.nbytes > MAX_PARAMS_BYTES:
        raise ValueError(f"params declares {h.nbytes} bytes; a model's parameters take at "
                         f"most {MAX_PARAMS_BYTES}")
    params = json.loads(str(_scalar(data, "params", "U")))
    if not isinstance(params, dict):
        raise ValueError("params is not a mapping")
    # a parameter the file does not name (e.g. max_fun, in files of 0.1) keeps
    # the default of the estimator built here
    clf = estimator_class()
    unknown = set(params) - set(clf.get_params())
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    cw = params.get("class_weight")
    if isinstance(cw, list):            # [label, weight] pairs (see write)
        if not all(isinstance(p, list) and len(p) == 2 for p in cw):
            raise ValueError("class_weight must be a list of [label, weight] pairs")
        params["class_weight"] = {(tuple(k) if isinstance(k, list) else k): v for k, v in cw}
    clf.set_params(**params)
    clf._validate_params()          # InvalidParameterError is a ValueError
    n_layers = int(_scalar(data, "n_layers", "iu"))
    if not 1 <= n_layers <= MAX_LAYERS:
        raise ValueError(f"n_layers must be in [1, {MAX_LAYERS}]; got {n_layers}")
    # the shapes, dtypes and total size of all that follows, before any of it is read
    _check_headers(data, clf, n_layers)
    coefs = [data[f"coef_{i}"] for i in range(n_layers)]
    intercepts = [data[f"intercept_{i}"] for i in range(n_layers)]
    coefs, intercepts = check_network(coefs, intercepts, min_classes=2, finite=True,
                                      names=("coef", "intercept"), item="{}_{}")
    # (each array read has its header's shape and dtype: checked in _check_headers)
    classes = data["classes"]
    if not np.all(classes[1:] > classes[:-1]):
        raise ValueError("classes must be sorted and unique")
    if "classes_is_object" in files and bool(_scalar(data, "classes_is_object", "b")):
        classes = classes.astype(object)
    clf.coefs_, clf.intercepts_ = coefs, intercepts
    clf.classes_ = classes
    clf.n_features_in_ = coefs[0].shape[0]
    if "feature_names_in" in files:
        clf.feature_names_in_ = data["feature_names_in"].astype(object)
    clf.n_layers_ = n_layers + 1
    clf.n_outputs_ = coefs[-1].shape[1]
    out_act = str(_scalar(data, "out_activation", "U")) if "out_activation" in files else "softmax"
    if out_act not in ("softmax", "logistic"):
        raise ValueError(f"out_activation must be 'softmax' or 'logistic'; got {out_act!r}")
    if out_act == "logistic" and not np.array_equal(classes, np.arange(len(classes))):
        raise ValueError("a multilabel model's classes must be 0, 1, ..., n_labels - 1")
    clf.out_activation_ = out_act
    clf.n_iter_ = int(_scalar(data, "n_iter", "iu")) if "n_iter" in files else 0
    clf.t_ = int(_scalar(data, "t", "iu")) if "t" in files else 0
    if "loss" in files:
        loss = _scalar(data, "loss", "f")
        if np.isfinite(loss):
            clf.loss_ = float(loss)
    curve = data["loss_curve"] if "loss_curve" in files else np.zeros(0)
    clf.loss_curve_ = [float(v) for v in curve]
    if "best_loss" in files:
        clf.best_loss_ = float(_scalar(data, "best_loss", "f"))
    else:
        clf.best_loss_ = min(clf.loss_curve_) if clf.loss_curve_ else None
    if "validation_scores" in files:
        clf.validation_scores_ = [float(v) for v in data["validation_scores"]]
        clf.best_validation_score_ = float(_scalar(data, "best_validation_score", "f"))
    else:
        clf.validation_scores_ = None
        clf.best_validation_score_ = None
    if "validation_loss_curve" in files:
        clf.validation_loss_curve_ = [float(v) for v in data["validation_loss_curve"]]
        clf.best_validation_loss_ = float(_scalar(data, "best_validation_loss", "f"))
    else:
        clf.validation_loss_curve_ = clf.best_validation_loss_ = None
    clf._no_improvement_count = 0
    # a warm-started fit with early stopping keeps the best weights so far:
    # after an early-stopping fit those are the saved (restored) weights
    if clf.validation_scores_ is not None:
        clf._best_coefs = [c.copy() for c in coefs]
        clf._best_intercepts = [b.copy() for b in intercepts]
    else:
        clf._best_coefs = clf._best_intercepts = None
    return clf
