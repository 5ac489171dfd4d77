"""Argument checks shared by every public function.

Each check runs once, at the Python boundary, before any compiled kernel
sees the data.  Errors are ``TypeError`` (wrong kind of thing) or
``ValueError`` (right kind, wrong value), and every message names the
argument and says what was expected.
"""

import numbers
import operator

import numpy as np

__all__ = [
    "aligned_target",
    "as_float_array",
    "check_axis",
    "check_binary_targets",
    "check_choice",
    "check_class_weight",
    "check_flag",
    "check_ignore_index",
    "check_label_smoothing",
    "check_partner",
    "check_scale_factors",
    "check_out",
    "check_labels",
    "check_linear",
    "check_nll_args",
    "check_network",
    "check_sample_weight",
    "check_reduction",
    "check_sparse_structure",
    "check_targets",
    "rescale_weights",
    "rows_view",
    "check_where",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INT_MAX = 2**31 - 1
_REDUCTIONS = ("mean", "sum", "none")


def as_float_array(a, name):
    """Return `a` as an ndarray of float32 or float64, without copying when possible.

    float32 and float64 (native byte order) are kept as they are; other real
    numeric dtypes (integers, float16, longdouble, non-native byte order)
    are converted to float64.  bool, complex, object, string, datetime and
    structured data raise ``TypeError``.  The result is always aligned: an
    array at an odd address (possible with NumPy) is copied, as the C
    kernels read whole float/double elements.
    """
    if type(a) is np.ndarray and a.dtype in _FLOATS and a.flags.aligned:  # the usual call
        return a
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real numbers; could not convert "
                        f"{type(a).__name__} to an array: {exc}") from None
    dt = arr.dtype
    if dt.kind == "f":
        if dt.itemsize == 4 and dt.isnative:
            return arr if arr.flags.aligned else arr.copy()
        if dt.itemsize == 4:
            return arr.astype(np.float32)
        return arr.astype(np.float64) if dt != np.float64 or not arr.flags.aligned else arr
    if dt.kind in "iu":
        return arr.astype(np.float64)
    kinds = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes",
             "M": "datetime", "m": "timedelta", "V": "structured"}
    raise TypeError(f"{name} must hold real numbers (float32, float64, or integers, "
                    f"which are computed in float64); got dtype {dt} "
                    f"({kinds.get(dt.kind, dt.kind)})")


def check_axis(axis, ndim, name="axis"):
    """Normalize `axis` (int, tuple of ints, or None) to a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        items = axis
    else:
        items = (axis,)
    out = []
    for ax in items:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (numbers.Integral,)):
            raise TypeError(f"{name} must be an int, a tuple of ints or None; got {axis!r}")
        ax = operator.index(ax)
        if not -ndim <= ax < ndim:
            raise ValueError(f"{name}={axis!r} is out of bounds for an array of dimension {ndim}")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return tuple(sorted(out))


def rows_view(z, axes):
    """Return (z2, moved_shape, perm): z with `axes` moved last, as a 2-D C-contiguous (n, m) array.

    No copy when `axes` are already the trailing axes of a C-contiguous array.
    """
    nd = z.ndim
    k = len(axes)
    trailing = axes == tuple(range(nd - k, nd))
    if trailing:
        perm = None
        moved = z
    else:
        rest = [i for i in range(nd) if i not in axes]
        perm = tuple(rest) + axes
        moved = z.transpose(perm)
    shape = moved.shape
    m = 1
    for s in shape[nd - k:]:
        m *= s
    n = 1
    for s in shape[:nd - k]:
        n *= s
    z2 = np.ascontiguousarray(moved).reshape(n, m)
    return z2, shape, perm


def check_out(out, shape, dtype, inputs, name="out"):
    """Check a caller-provided output buffer.

    It must be a writeable, C-contiguous ndarray of exactly `shape` and
    `dtype`.  It may be one of `inputs` itself (in place), but must not
    partially overlap any of them.  (It may be unaligned: the callers then
    compute into an aligned buffer and copy, see `aligned_target`.)
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{name} has dtype {out.dtype}; expected {np.dtype(dtype)} "
                         "(the result dtype for this input)")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    for a in inputs:
        if a is None or not np.may_share_memory(out, a):
            continue
        same = (out.__array_interface__["data"][0] == a.__array_interface__["data"][0]
                and out.shape == a.shape and out.strides == a.strides)
        if not same and np.shares_memory(out, a):
            raise ValueError(f"{name} partially overlaps an input array; pass the input "
                             "itself for an in-place operation, or a separate buffer")
    return out


def aligned_target(out, shape, dtype):
    """Where a kernel may write the result for `out`: `out` itself, a new array
    (out None), or an aligned scratch buffer when `out` sits at an odd address
    (copy it into `out` afterwards)."""
    if out is None or not out.flags.aligned:
        return np.empty(shape, dtype=dtype)
    return out


def _asarray(a, name, what):
    """np.asarray(a), with a TypeError naming the argument when that fails (ragged lists)."""
    try:
        return np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be an array of {what}; could not convert "
                        f"{type(a).__name__} to an array: {exc}") from None


def check_labels(y, n, m, name="y", rows_of="the logits", ignore=None):
    """Check class labels: integer dtype, 1-D, length n, every value in [0, m)
    (or equal to `ignore`, a checked ``ignore_index``, which may lie outside).

    Returns them as a C-contiguous ``np.intp`` array, safe for a kernel to
    index with (the kernel skips the labels equal to `ignore`).
    """
    y = _asarray(y, name, f"integer class labels in [0, {m})")
    if y.size == 0 and y.dtype.kind == "f":
        # np.asarray([]) is float64: an empty list holds no non-integer label
        y = y.astype(np.intp)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels in [0, {m}); got dtype "
                        f"{y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one label per row; got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but {rows_of} has {n} rows")
    if n and ignore is None:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= m:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds label {int(bad)}, outside [0, {m}) for {m} classes")
    elif n:
        # (compared in y's own dtype: a uint64 label never wraps onto ignore)
        out = ((y < 0) | (y >= m)) & (y != ignore)
        if out.any():
            bad = int(y[np.flatnonzero(out)[0]])
            raise ValueError(f"{name} holds label {bad}, outside [0, {m}) for {m} classes "
                             f"and not ignore_index={ignore}")
    # (aligned too: an odd address would be a misaligned read in the kernel)
    return np.require(y, dtype=np.intp, requirements=["C", "A"])


def _weight_vector(a, name, length, one_per, length_of, dtype, dtype_note=""):
    """The one rule for a vector of weights: real, 1-D, `length` entries,
    finite (in `dtype`, which it is converted to) and non-negative."""
    w = _asarray(a, name, "real numbers")
    if w.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one weight per {one_per}; got shape {w.shape}")
    if w.shape[0] != length:
        raise ValueError(f"{name} has {w.shape[0]} weights but {length_of}")
    with np.errstate(over="ignore"):
        w = np.require(w, dtype=dtype, requirements=["C", "A"])
    if not np.isfinite(w).all():
        raise ValueError(f"{name} must be finite{dtype_note}; it holds NaN or inf")
    if length and w.min() < 0:
        raise ValueError(f"{name} must be non-negative; it holds {w.min()}")
    return w


def check_sample_weight(sample_weight, n, reduction="sum", name="sample_weight"):
    """Check sample weights: real, 1-D, length n, finite, non-negative.

    For ``reduction="mean"`` they may not all be zero (the mean would be
    undefined).  Returns a C-contiguous float64 array, or None.
    """
    if sample_weight is None:
        return None
    w = _weight_vector(sample_weight, name, n, "row", f"there are {n} rows", np.float64)
    if reduction == "mean" and n and not w.any():
        raise ValueError(f"{name} is all zero: the weighted mean is undefined")
    return w


def check_class_weight(class_weight, m, dtype, name="class_weight"):
    """Check per-class weights (PyTorch's ``weight``): real, 1-D, length m,
    finite and non-negative in `dtype`, the logits' dtype, into which they
    are converted (as PyTorch requires of them).  Returns a C-contiguous
    array of `dtype`, or None."""
    if class_weight is None:
        return None
    return _weight_vector(class_weight, name, m, "class", f"the logits have {m} classes", dtype,
                          f" in {np.dtype(dtype)} (the logits' dtype)")


def check_label_smoothing(label_smoothing, name="label_smoothing"):
    """A real number in [0, 1], as a float.  Strings, bools and other
    non-numbers are a ``TypeError`` (a bool is a flag, not an amount);
    NaN and values outside [0, 1] a ``ValueError``."""
    if (isinstance(label_smoothing, (bool, np.bool_))
            or not isinstance(label_smoothing, numbers.Real)):
        raise TypeError(f"{name} must be a real number in [0, 1]; got {label_smoothing!r}")
    value = float(label_smoothing)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {label_smoothing!r}")
    return value


def check_ignore_index(ignore_index, name="ignore_index"):
    """None (nothing ignored) or an int that fits in 64 bits, as an int.
    bools, floats and strings are a ``TypeError``, as in PyTorch."""
    if ignore_index is None:
        return None
    if (isinstance(ignore_index, (bool, np.bool_))
            or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"{name} must be an int or None; got {ignore_index!r}")
    value = operator.index(ignore_index)
    if not -2**63 <= value < 2**63:
        raise ValueError(f"{name} must fit in a 64-bit integer; got {value}")
    return value


def check_targets(y, n, m, dtype, ignore=None, name="y", rows_of="the logits"):
    """Targets of the cross-entropy: integer labels (n,) or class probabilities (n, m).

    Returns ``(labels, None)`` with the labels as `check_labels` returns them
    (those equal to `ignore` exempt from the range check), or
    ``(None, probs)``: a 2-D `y` must be a float array of shape (n, m),
    finite and non-negative (rows need not sum to 1, as in PyTorch); it is
    converted to `dtype`, the logits' dtype (the targets are an input, so
    float32 logits keep float32 throughout).  An integer 2-D `y` is a
    ``TypeError`` (labels are 1-D); `ignore` with probabilities is a
    ``ValueError`` (PyTorch refuses it too).
    """
    arr = _asarray(y, name, "integer class labels or class probabilities")
    if arr.ndim == 1 or (arr.ndim != 2 and arr.dtype.kind not in "iuf"):
        return check_labels(arr, n, m, name, rows_of, ignore=ignore), None   # (its TypeErrors)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D integer labels (n_samples,) or 2-D class "
                         f"probabilities (n_samples, n_classes); got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} is 2-D, so it holds class probabilities and must be a float "
                        f"array (integer labels are 1-D); got dtype {arr.dtype}")
    if arr.shape != (n, m):
        raise ValueError(f"{name} holds class probabilities of shape {arr.shape}; the logits "
                         f"have shape {(n, m)} and they must match")
    if ignore is not None:
        raise ValueError(f"ignore_index={ignore} applies to integer labels only; {name} "
                         "holds class probabilities")
    with np.errstate(over="ignore"):
        q = np.require(arr, dtype=dtype, requirements=["C", "A"])
    # two reductions and no temporary (an isfinite mask of n m bools cost as
    # much again): min >= 0 fails on NaN, -inf and negatives, max < inf on +inf
    if q.size and not (q.min() >= 0 and q.max() < np.inf):
        if not np.isfinite(q).all():
            raise ValueError(f"{name} (class probabilities) must be finite in "
                             f"{np.dtype(dtype)} (the logits' dtype); it holds NaN or inf")
        raise ValueError(f"{name} (class probabilities) must be non-negative; it holds "
                         f"{q.min()}")
    return None, q


def check_dropout(dropout, n_hidden, name="dropout"):
    """One dropout rate in [0, 1) per hidden layer, from None (no dropout), one
    real number for every layer, or a sequence of one per hidden layer."""
    if dropout is None:
        return [0.0] * n_hidden
    if np.ndim(dropout) == 0:
        rates = [dropout] * n_hidden
    else:
        rates = list(np.asarray(dropout, dtype=object).ravel()) if np.ndim(dropout) == 1 else None
        if rates is None:
            raise ValueError(f"{name} must be a number or a 1-D sequence of rates; got "
                             f"{np.ndim(dropout)} dimensions")
        if len(rates) != n_hidden:
            raise ValueError(f"{name} has {len(rates)} rates but the network has {n_hidden} "
                             "hidden layers: give one rate, or one per hidden layer")
    out = []
    for r in rates:
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Real):
            raise TypeError(f"{name} rates must be real numbers; got {r!r}")
        if not 0 <= r < 1:
            raise ValueError(f"{name} rates must be in [0, 1); got {r}")
        out.append(float(r))
    return out


def check_binary_targets(targets, shape, dtype, name="targets"):
    """Targets of the binary cross-entropy (one per logit): real values in
    [0, 1] (soft targets allowed), or a bool / integer 0-1 indicator array,
    of exactly `shape` (no broadcasting).  The range is checked in the
    given dtype (a float64 1 + 1e-12 is refused even though it would round
    to 1 in float32), then the targets are converted to `dtype`, the logits'
    dtype.  Returns a C-contiguous, aligned array; NaN or a value outside
    [0, 1] is a ``ValueError``, a complex, object or string array a
    ``TypeError``."""
    arr = _asarray(targets, name, "target values in [0, 1]")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real values in [0, 1] (or bool); got dtype "
                        f"{arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}; the logits have shape "
                         f"{tuple(shape)} and they must match (one target per logit)")
    # min >= 0 fails on NaN too (two reductions, no temporary mask)
    if arr.size and arr.dtype.kind != "b" and not (arr.min() >= 0 and arr.max() <= 1):
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError(f"{name} must be in [0, 1]; it holds NaN")
        bad = arr.min() if not arr.min() >= 0 else arr.max()
        raise ValueError(f"{name} must be in [0, 1] (probabilities of the positive "
                         f"class); it holds {bad}")
    return np.require(arr, dtype=dtype, requirements=["C", "A"])


def check_choice(value, choices, name):
    """`value` if it is one of `choices` (strings, and possibly None).

    ``TypeError`` for a value of the wrong kind (not a string), ``ValueError``
    for a string that is not a choice; both list the choices.
    """
    if (value is None or isinstance(value, str)) and value in choices:
        return value
    exc = ValueError if isinstance(value, str) else TypeError
    raise exc(f"{name} must be one of {tuple(choices)}; got {value!r}")


def check_reduction(reduction, name="reduction"):
    return check_choice(reduction, _REDUCTIONS, name)


def check_flag(value, name):
    """`value` as a bool: ``True``/``False`` (or a NumPy bool); anything else
    (0, 1, strings, None) is a ``TypeError``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {value!r}")


def check_partner(x, ref, name, ref_name):
    """`x`, an array that goes with the checked float array `ref` entry by
    entry (the probabilities of a gradient): as `as_float_array` takes it,
    and then of `ref`'s dtype (``TypeError``, nothing is converted) and shape
    (``ValueError``)."""
    x = as_float_array(x, name)
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but {ref_name} has {ref.dtype}; they "
                        "must have one dtype, float32 or float64 (convert one of them)")
    if x.shape != ref.shape:
        raise ValueError(f"{name} has shape {x.shape} but {ref_name} has shape {ref.shape}; "
                         "they must match")
    return x


def check_scale_factors(b, a, name="b"):
    """Scale factors `b` for the entries of the checked float array `a`
    (logsumexp's ``b``): real numbers (``TypeError`` otherwise, as
    `as_float_array`) whose shape broadcasts against ``a.shape``
    (``ValueError``).  Any values: negative, zero, inf and NaN have their
    documented meaning.  Returns ``(b, shape)``: `b` in `a`'s dtype (float32
    stays float32: a float64 `b` is rounded to it), not broadcast and not
    copied when it already has that dtype; `shape` the broadcast shape.
    """
    b = as_float_array(b, name)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name} has shape {b.shape}, which does not broadcast against "
                         f"the input's shape {a.shape}") from None
    if b.dtype != a.dtype:
        b = b.astype(a.dtype)
    return b, shape


def check_sparse_structure(X, name="X"):
    """A CSR/CSC matrix `X` as an aligned CSR matrix, after checking its index arrays.

    The compiled gather scatters ``data[q]`` into column ``indices[q]`` of
    rows ``indptr[r]:indptr[r+1]`` without bounds checks, and scipy checks
    only the lengths of these arrays when a matrix is built from them (and
    nothing when they are edited afterwards): out-of-range or negative
    indices, or an indptr that decreases or runs past the data, would read
    or write outside the buffers.  Checked before ``tocsr`` too (scipy's
    conversion trusts them as well), and once: the engine trusts a matrix
    that passed here.  `X` itself is never changed; its arrays are copied
    when one sits at an odd address (NumPy allows it; the gather reads whole
    elements).
    """
    major, minor = X.shape if X.format == "csr" else X.shape[::-1]
    data, indices, indptr = X.data, X.indices, X.indptr
    problem = None
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1:
        problem = "data, indices and indptr must be 1-D"
    elif indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        problem = f"indices ({indices.dtype}) and indptr ({indptr.dtype}) must be integers"
    elif indptr.shape[0] != major + 1:
        problem = f"indptr has {indptr.shape[0]} entries; expected {major + 1}"
    elif indptr[0] != 0:
        problem = "indptr must start with 0"
    elif indices.shape[0] != data.shape[0]:
        problem = "indices and data must have the same length"
    elif indptr[-1] > indices.shape[0]:
        problem = "indptr runs past the end of indices and data"
    elif major and (np.diff(indptr) < 0).any():
        problem = "indptr must be non-decreasing"
    else:
        used = indices[:int(indptr[-1])]
        if used.size and (used.min() < 0 or used.max() >= minor):
            problem = f"indices must be in [0, {minor})"
    if problem is not None:
        raise ValueError(f"{name} is a malformed sparse matrix: {problem}")
    if X.format != "csr":
        X = X.tocsr()
    if not all(a.flags.aligned for a in (X.data, X.indices, X.indptr)):
        X = X.copy()
    return X


def rescale_weights(w, alpha=0.0):
    """`w` and `alpha` scaled by one power of two that brings ``max(w)`` into [0.5, 1).

    The scaling is exact and changes neither a weighted mean nor
    ``alpha / sum(w)``, but keeps ``sum(w)``, ``1 / sum(w)`` and ``w_i C_i``
    from overflowing (huge weights) or underflowing (subnormal ones).  When
    `alpha` would leave the finite positive range, nothing is scaled.  `w`
    is a checked, non-empty weight array (`check_sample_weight`).
    """
    e = int(np.frexp(w.max())[1])
    scaled = float(np.ldexp(alpha, -e))
    if not (np.isfinite(scaled) and (scaled > 0 or alpha == 0)):
        return w, alpha
    return np.ldexp(w, -e), scaled


def _float_array(a, name, ndim):
    """`a` as an ndarray of float32/float64 with `ndim` dimensions (no int conversion)."""
    try:
        arr = np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be an array of float32 or float64; could not convert "
                        f"{type(a).__name__}: {exc}") from None
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be float32 or float64 (network arrays are not "
                        f"converted between dtypes); got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {arr.shape}")
    return arr


def _engine_array(a, name, ndim, dtype, writeable):
    """`a` as the compiled engine takes it, unconverted: an aligned C-contiguous
    ndarray of `dtype` (float32/float64 when None) with `ndim` dimensions."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array; got {type(a).__name__}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}; expected {np.dtype(dtype)}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64; got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {a.shape}")
    if not (a.flags.c_contiguous and a.flags.aligned):
        raise ValueError(f"{name} must be C-contiguous (and aligned)")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only; the trainer updates it in place")
    return a


_NO_X = object()      # check_network called without an input (None is a wrong X)


def check_network(coefs, intercepts, *, X=_NO_X, dtype=None, convert=True, writeable=False,
                  min_classes=1, finite=False, names=("coefs", "intercepts"),
                  item="{}[{}]", x_name="X", contiguous=True):
    """The one check of a dense network's parameters (and its input X).

    ``coefs[l]`` has shape ``(fan_in, fan_out)`` and ``intercepts[l]`` shape
    ``(fan_out,)``; the shapes chain from X's width (or from ``coefs[0]``),
    every layer has at least one unit, the output layer at least
    `min_classes`, and every array has one dtype, float32 or float64
    (`dtype` when given).  Two modes:

    * ``convert=True`` (public functions, the loader): array-likes are taken
      with `np.asarray`, byte order made native, and returned C-contiguous
      and aligned (copied only when not already);
    * ``convert=False`` (the compiled engine's own boundary): each must
      already be an aligned C-contiguous ndarray, and writeable when
      `writeable` (the trainer updates them in place).

    `finite` refuses NaN and inf.  `names` are the names of the two
    sequences and `item` the format of an entry's name in messages (the
    loader says ``coef_0``), `x_name` the input's.  ``contiguous=False``
    (with `convert`) keeps each array's layout, only aligned: for callers
    that handle strides themselves (`check_linear`).  Returns ``(X, coefs, intercepts)`` when X is
    given, else ``(coefs, intercepts)``, as lists.
    """
    has_x = X is not _NO_X
    for seq, seq_name in zip((coefs, intercepts), names):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{seq_name} must be a list or tuple of arrays, one per layer; "
                            f"got {type(seq).__name__}")
    if len(coefs) == 0:
        raise ValueError(f"{names[0]} must hold at least one layer; got an empty sequence")
    if len(coefs) != len(intercepts):
        raise ValueError(f"{names[0]} has {len(coefs)} layers but {names[1]} has "
                         f"{len(intercepts)}; they must match")
    w_names = [item.format(names[0], l) for l in range(len(coefs))]
    b_names = [item.format(names[1], l) for l in range(len(coefs))]
    if convert:
        X = _float_array(X, x_name, 2) if has_x else None
        coefs = [_float_array(W, n, 2) for W, n in zip(coefs, w_names)]
        intercepts = [_float_array(b, n, 1) for b, n in zip(intercepts, b_names)]
    else:
        coefs = [_engine_array(W, n, 2, dtype, writeable) for W, n in zip(coefs, w_names)]
        intercepts = [_engine_array(b, n, 1, dtype, writeable)
                      for b, n in zip(intercepts, b_names)]

    named = ([(x_name, X)] if has_x else []) + list(zip(w_names, coefs)) \
        + list(zip(b_names, intercepts))
    dtypes = {a.dtype for _, a in named}
    if len(dtypes) > 1:
        f32 = [n for n, a in named if a.dtype == np.float32]
        f64 = [n for n, a in named if a.dtype == np.float64]
        what = (f"{x_name}, " if has_x else "") + f"{names[0]} and {names[1]}"
        raise TypeError(f"{what} must all have one dtype, float32 or float64; got "
                        f"float32 for {', '.join(f32)} and float64 for {', '.join(f64)}")
    if dtype is not None and convert and coefs[0].dtype != dtype:
        raise TypeError(f"{w_names[0]} has dtype {coefs[0].dtype}; expected {np.dtype(dtype)}")

    if has_x:
        width, prev = X.shape[1], f"{x_name}'s width"
        if width == 0:
            raise ValueError(f"{x_name} has no columns (features)")
    else:
        width, prev = coefs[0].shape[0], None
        if width == 0:
            raise ValueError(f"{w_names[0]} has no rows: the network needs at least one "
                             "input feature")
    for l, (W, b) in enumerate(zip(coefs, intercepts)):
        if prev is not None and W.shape[0] != width:
            raise ValueError(f"{w_names[l]} has {W.shape[0]} rows but {prev} is {width}; "
                             "consecutive layer shapes must chain")
        if W.shape[1] == 0:
            raise ValueError(f"{w_names[l]} has no columns: every layer needs at least one unit")
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"{b_names[l]} has {b.shape[0]} entries but {w_names[l]} has "
                             f"{W.shape[1]} columns; they must match")
        width, prev = W.shape[1], f"{w_names[l]} columns"
    if width < min_classes:
        raise ValueError(f"the output layer ({w_names[-1]}) has {width} unit; a softmax "
                         f"output needs at least {min_classes} classes")
    if finite:
        for n, a in named:
            if not np.isfinite(a).all():
                raise ValueError(f"{n} holds non-finite values (NaN or inf)")
    if convert:
        # C-contiguous and aligned: the C kernels load whole elements (UBSan
        # flags misaligned loads from, e.g., a view at an odd byte offset)
        req = ["C", "A"] if contiguous else ["A"]
        X = np.require(X, requirements=req) if has_x else None
        coefs = [np.require(W, requirements=req) for W in coefs]
        intercepts = [np.require(b, requirements=req) for b in intercepts]
    return (X, coefs, intercepts) if has_x else (coefs, intercepts)


def _unit_stride_view(a, axis):
    """Whether `a` (2-D, aligned) can go to BLAS as it is, with `axis` the
    contiguous one: unit stride along `axis` and a positive leading stride
    of whole elements, at least the other dimension (BLAS's lda rule)."""
    item = a.dtype.itemsize
    other = 1 - axis
    if a.shape[axis] > 1 and a.strides[axis] != item:
        return False
    ld = a.strides[other]
    if a.shape[other] == 1:
        return True
    return ld > 0 and ld % item == 0 and ld // item >= a.shape[axis]


def check_linear(A, W, b):
    """The fused output layer's A (n, d), W (d, m) and b (m,) or None.

    One dtype, float32 or float64 (else ``TypeError`` naming them), shapes
    that chain, n, d, m >= 1 and sizes BLAS's C ints can index.  Returns
    ``(A, W, w_trans, b)``: A with unit column stride (copied only if it has
    not), W as it is when its rows or its columns are contiguous (`w_trans`
    True for the second: a Fortran-ordered W, or PyTorch's Linear weight
    transposed), else one C-contiguous copy.
    """
    W = _float_array(W, "W", 2)
    given_b = b is not None
    if not given_b:
        b = np.zeros(W.shape[1], W.dtype)       # stands in for the checks only
    A, (W,), (b,) = check_network([W], [b], X=A, names=("W", "b"), item="{}", x_name="A",
                                  contiguous=False)
    n, d = A.shape
    m = W.shape[1]
    if n == 0:
        raise ValueError("A has no rows: the loss is undefined")
    if max(n, d, m) > _INT_MAX:
        raise ValueError(f"A {A.shape} and W {W.shape}: each dimension must be below 2**31 "
                         "(BLAS indexes with C ints)")
    if not _unit_stride_view(A, 1):
        A = np.ascontiguousarray(A)
    if _unit_stride_view(W, 1):
        w_trans = False
    elif _unit_stride_view(W, 0):
        w_trans = True
    else:
        W, w_trans = np.ascontiguousarray(W), False
    if A.strides[0] // A.dtype.itemsize > _INT_MAX or \
            W.strides[1 if w_trans else 0] // W.dtype.itemsize > _INT_MAX:
        A, W, w_trans = np.ascontiguousarray(A), np.ascontiguousarray(W), False
    return A, W, w_trans, (np.ascontiguousarray(b) if given_b else None)


class NLLArgs:
    """The checked arguments of a cross-entropy call (`check_nll_args`)."""

    __slots__ = ("z", "n", "m", "labels", "probs", "cw", "w", "ignore", "eps", "reduction",
                 "plain")

    def __init__(self, z, n, m, labels, probs, cw, w, ignore, eps, reduction):
        self.z, self.n, self.m = z, n, m
        self.labels, self.probs, self.cw, self.w = labels, probs, cw, w
        self.ignore, self.eps, self.reduction = ignore, eps, reduction
        # no PyTorch option: the plain kernel (cs_nll); else the general one (cs_nll_opts)
        self.plain = probs is None and cw is None and ignore is None and eps == 0.0

    def inputs(self, *given):
        """The arrays a gradient buffer must not partially overlap."""
        return (self.z, self.labels, self.probs, self.cw, self.w, *given)


def check_nll_args(z, y, sample_weight, reduction, class_weight=None, ignore_index=None,
                   label_smoothing=0.0, *, shape=None, dtype=None, rows_of="the logits"):
    """The targets and options of the cross-entropy of logits `z` (2-D,
    checked by the caller), or of logits of `shape` and `dtype` that are
    never materialized (the fused output layer: z None).  One rule for
    nll_loss and its relatives and for linear_nll_loss: `reduction`,
    `label_smoothing`, `ignore_index`, labels or soft targets `y`, class
    and sample weights (the latter rescaled for "mean", exactly)."""
    n, m = z.shape if z is not None else shape
    dtype = z.dtype if z is not None else dtype
    reduction = check_reduction(reduction)
    eps = check_label_smoothing(label_smoothing)
    ignore = check_ignore_index(ignore_index)
    labels, probs = check_targets(y, n, m, dtype, ignore, rows_of=rows_of)
    if n and m == 0:
        raise ValueError("logits has no classes (shape (n, 0)): the loss is undefined")
    cw = check_class_weight(class_weight, m, dtype)
    w = check_sample_weight(sample_weight, n, reduction)
    if w is not None and reduction == "mean" and n:
        w, _ = rescale_weights(w)      # exact; keeps sum(w) and 1/sum(w) in range
    return NLLArgs(z, n, m, labels, probs, cw, w, ignore, eps, reduction)


def check_where(where, shape=None, name="where"):
    """Check a mask (``where=``): None, or a bool ndarray that broadcasts to `shape`.

    `where` must be an array_like whose ``np.asarray`` has dtype bool
    (``TypeError`` otherwise: 0/1 integers are refused, not guessed at) and,
    when `shape` is given, must broadcast to it (``ValueError`` naming both
    shapes).  The callers lay it out like the input's rows (``_api``'s
    ``_row_operand``: one row, read with a row stride of 0, when it is the
    same for every row; no copy when it has the input's shape and layout).
    """
    if where is None:
        return None
    w = _asarray(where, name, "booleans (True keeps an entry)")
    if w.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array (True keeps an entry, False "
                        f"leaves it out); got dtype {w.dtype}")
    if shape is not None:
        shape = tuple(shape)
        try:
            np.broadcast_to(w, shape)
        except ValueError:
            raise ValueError(f"{name} has shape {w.shape}, which does not broadcast to the "
                             f"input's shape {shape}") from None
    return w
