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
    "check_out",
    "check_labels",
    "check_sample_weight",
    "check_reduction",
    "check_sparse_structure",
    "rows_view",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
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


def check_labels(y, n, m, name="y"):
    """Check class labels: integer dtype, 1-D, length n, every value in [0, m).

    Returns them as a C-contiguous ``np.intp`` array, safe for a kernel to
    index with.
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
        raise ValueError(f"{name} has {y.shape[0]} labels but the logits have {n} rows")
    if n:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= m:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds label {int(bad)}, outside [0, {m}) for {m} classes")
    # (aligned too: an odd address would be a misaligned read in the kernel)
    return np.require(y, dtype=np.intp, requirements=["C", "A"])


def check_sample_weight(sample_weight, n, reduction="sum", name="sample_weight"):
    """Check sample weights: real, 1-D, length n, finite, non-negative.

    For ``reduction="mean"`` they may not all be zero (the mean would be
    undefined).  Returns a C-contiguous float64 array, or None.
    """
    if sample_weight is None:
        return None
    w = _asarray(sample_weight, name, "real numbers")
    if w.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one weight per row; got shape {w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} weights but there are {n} rows")
    w = np.require(w, dtype=np.float64, requirements=["C", "A"])
    if not np.isfinite(w).all():
        raise ValueError(f"{name} must be finite; it holds NaN or inf")
    if n and w.min() < 0:
        raise ValueError(f"{name} must be non-negative; it holds {w.min()}")
    if reduction == "mean" and n and not w.any():
        raise ValueError(f"{name} is all zero: the weighted mean is undefined")
    return w


def check_reduction(reduction, name="reduction"):
    if not isinstance(reduction, str):
        raise TypeError(f"{name} must be one of {_REDUCTIONS}; got {reduction!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name} must be one of {_REDUCTIONS}; got {reduction!r}")
    return reduction


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
