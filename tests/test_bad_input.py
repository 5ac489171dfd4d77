"""Hostile arguments for every public function and every Classifier method.

A systematic matrix: each table below crosses the public entry points with
wrong dimensions, zero sizes, shape mismatches, every awkward dtype, special
values, bad labels and weights, mismatched or aliasing ``out=`` buffers,
parameter lists that do not chain, bad hyper-parameters and misuse of an
estimator.  Each case has one documented outcome:

* ``Raises(exc, pattern)``: a ``TypeError``/``ValueError`` (or the subclass
  named) whose message matches `pattern` -- the argument's name wherever the
  message is ours (scikit-learn's own input-validation messages are matched
  as scikit-learn words them);
* ``Equals(reference)``: the input is legitimately convertible, and the
  result equals a float64 NumPy reference (or, for the Classifier, the result
  on the explicitly converted input, bit for bit).

Every case runs in the test process: a crash (segfault, abort) fails the
suite.  The tables are built at import; ``pytest --collect-only -q
tests/test_bad_input.py | tail -1`` gives the case count.
"""

import atexit
import copy
import io
import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import _requires
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

import cysoftmax
from cysoftmax import (
    Classifier,
    backprop,
    forward,
    load,
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)

# float64 references with the documented special-value semantics
from _reference import (
    ref_backprop,
    ref_forward,
    ref_log_softmax,
    ref_logsumexp,
    ref_nll,
    ref_softmax,
    result_dtype,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::sklearn.exceptions.DataConversionWarning",
    "ignore:the matrix subclass:PendingDeprecationWarning",
    "ignore:overflow encountered:RuntimeWarning",
)

inf, nan = np.inf, np.nan
README = Path(__file__).resolve().parents[1] / "README.md"


# ===========================================================================
# outcomes


class Raises:
    def __init__(self, exc, pattern):
        self.exc, self.pattern = exc, pattern

    def check(self, thunk):
        with pytest.raises(self.exc, match=self.pattern or None):
            thunk()


class Equals:
    """The result equals `reference()` (arrays: same dtype and shape; values
    within a few eps of the result's dtype, NaN where NaN, infinities exact).
    Tuples are compared item by item, lists of arrays likewise."""

    def __init__(self, reference, rtol=None, dtype=None):
        self.reference, self.rtol, self.dtype = reference, rtol, dtype

    def check(self, thunk):
        _compare(thunk(), self.reference(), self.rtol, self.dtype)


def _compare(got, ref, rtol, dtype):
    if isinstance(ref, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(ref)
        for g, r in zip(got, ref):
            _compare(g, r, rtol, dtype)
        return
    if isinstance(ref, float) or np.ndim(ref) == 0 and not isinstance(got, np.ndarray):
        dt = np.dtype(dtype or np.float64)
        tol = rtol if rtol is not None else 64 * np.finfo(dt).eps
        np.testing.assert_allclose(float(got), float(ref), rtol=tol, atol=tol, equal_nan=True)
        return
    got = np.asarray(got)
    ref = np.asarray(ref)
    assert type(got) is np.ndarray
    want = np.dtype(dtype) if dtype is not None else ref.dtype
    assert got.dtype == want, (got.dtype, want)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    tol = rtol if rtol is not None else 64 * np.finfo(got.dtype).eps
    ref64 = ref.astype(np.float64)
    # per element: tol relative to the entry itself (or absolute below 1), so
    # that a huge entry elsewhere in the array does not loosen the others
    finite = np.isfinite(ref64)
    err = np.abs(got.astype(np.float64)[finite] - ref64[finite])
    allowed = tol * np.maximum(1.0, np.abs(ref64[finite]))
    bad = ~(err <= allowed)
    assert not bad.any(), (f"{int(bad.sum())} of {bad.size} entries off by more than "
                           f"{tol:.3g} x max(1, |ref|); worst ratio "
                           f"{float(np.max(err / allowed)):.3g}")
    # exact where the contract is exact: NaN pattern, infinities, masked zeros
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)])


def _table(cases):
    """pytest params from a {id: (thunk, outcome)} dict."""
    return [pytest.param(thunk, outcome, id=key) for key, (thunk, outcome) in cases.items()]


def _run(thunk, outcome):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # reference overflow etc.
        outcome.check(thunk)


# ===========================================================================
# array makers


def z34(dtype=np.float64):
    return (np.arange(12, dtype=np.float64).reshape(3, 4) / 7 - 0.8).astype(dtype)


def unaligned(a):
    """A copy of `a` at an odd address (flags.aligned is False)."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    u = np.ndarray(a.shape, dtype=a.dtype, buffer=buf, offset=1)
    u[...] = a
    assert not u.flags.aligned or a.dtype.itemsize == 1
    return u


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# one scratch directory for the whole module (the tables are built at import)
_TMP = Path(tempfile.mkdtemp(prefix="cysoftmax-bad-input-"))
atexit.register(shutil.rmtree, _TMP, True)


def memmapped(a):
    """A read-only np.memmap holding `a`."""
    a = np.asarray(a)
    fd, name = tempfile.mkstemp(suffix=".dat", dir=_TMP)
    os.close(fd)
    mm = np.memmap(name, dtype=a.dtype, mode="w+", shape=a.shape)
    mm[...] = a
    mm.flush()
    del mm
    return np.memmap(name, dtype=a.dtype, mode="r", shape=a.shape)


class ArrayLike:
    """Not an ndarray: only __array__."""

    def __init__(self, a):
        self.a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


class BrokenArrayLike:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("cannot be converted")


# ===========================================================================
# 1. softmax / log_softmax / logsumexp: hostile z

ROW_FUNCS = {
    "softmax": (softmax, ref_softmax),
    "log_softmax": (log_softmax, ref_log_softmax),
    "logsumexp": (logsumexp, ref_logsumexp),
}

_base = z34()
_f32 = z34(np.float32)
Z_CONVERTIBLE = {
    # dtypes computed in float64 (float32 stays float32)
    **{f"dtype-{np.dtype(t).name}": (lambda t=t: np.abs(z34() * 7).round().astype(t)
                                      if np.dtype(t).kind in "iu" else z34().astype(t))
       for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                 np.uint64, np.float16, np.longdouble, np.float32, np.float64)},
    "dtype->f8": lambda: z34().astype(">f8"),
    "dtype->f4": lambda: z34().astype(">f4"),
    "dtype->i4": lambda: np.arange(12, dtype=">i4").reshape(3, 4),
    "dtype->f2": lambda: z34().astype(">f2"),
    "uint64-huge": lambda: np.array([[2**64 - 1, 0, 2**63]], dtype=np.uint64),
    "int64-extremes": lambda: np.array([[np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max]]),
    # array-likes
    "list": lambda: z34().tolist(),
    "tuple": lambda: tuple(map(tuple, z34().tolist())),
    "list-of-ints": lambda: [[1, 2, 3], [4, 5, 6]],
    "list-mixed-int-float": lambda: [[1, 2.5, 3], [4, 5, -inf]],
    "array-like": lambda: ArrayLike(z34()),
    "matrix": lambda: np.asmatrix(z34()),
    "memmap": lambda: memmapped(z34()),
    "python-1d": lambda: [0.0, 1.0, 2.0],
    # layouts
    "fortran": lambda: np.asfortranarray(z34()),
    "fortran-f32": lambda: np.asfortranarray(_f32),
    "step-slice": lambda: np.arange(48.0).reshape(6, 8)[::2, ::2] / 9,
    "negative-strides": lambda: z34()[::-1, ::-1],
    "negative-strides-f32": lambda: _f32[::-1, ::-1],
    "transposed": lambda: z34().T,
    "read-only": lambda: read_only(z34()),
    "read-only-f32": lambda: read_only(_f32),
    "unaligned": lambda: unaligned(z34()),
    "unaligned-f32": lambda: unaligned(_f32),
    "unaligned-wide": lambda: unaligned(np.linspace(-3, 3, 5 * 70).reshape(5, 70)),
    "broadcast-zero-stride": lambda: np.broadcast_to(np.array([0.5, -1.0, 2.0]), (4, 3)),
    "broadcast-row-f32": lambda: np.broadcast_to(np.float32(1.5), (3, 5)),
    # shapes
    "shape-(0,)": lambda: np.empty(0),
    "shape-(0,5)": lambda: np.empty((0, 5)),
    "shape-(5,0)": lambda: np.empty((5, 0)),
    "shape-(0,0)": lambda: np.empty((0, 0)),
    "shape-(1,)": lambda: np.array([3.0]),
    "shape-(1,1)": lambda: np.array([[-2.0]], dtype=np.float32),
    "shape-(2,3,4)": lambda: np.arange(24.0).reshape(2, 3, 4) / 5,
    "shape-(2,1,3,1)": lambda: np.arange(6.0).reshape(2, 1, 3, 1),
    "shape-(1,1000)": lambda: np.linspace(-50, 50, 1000)[None],
    # special values (per row; never raising)
    "nan-row": lambda: np.array([[nan, 0.0, 1.0], [0.0, 1.0, 2.0]]),
    "plus-inf-row": lambda: np.array([[inf, 0.0, 1.0], [0.0, 1.0, 2.0]]),
    "all-minus-inf-row": lambda: np.array([[-inf, -inf, -inf], [0.0, 1.0, 2.0]]),
    "masked-minus-inf": lambda: np.array([[-inf, 0.0, 1.0], [0.0, -inf, 2.0]], np.float32),
    "inf-and-minus-inf": lambda: np.array([[inf, -inf, 0.0]]),
    "nan-and-inf": lambda: np.array([[nan, inf, -inf]]),
    "huge": lambda: np.array([[1e308, -1e308, 1.7e308], [-1.7e308, -1.7e308, 0.0]]),
    "huge-f32": lambda: np.array([[3.4e38, -3.4e38, 3e38]], dtype=np.float32),
    "tiny-subnormal": lambda: np.array([[5e-324, -5e-324, 0.0, -0.0]]),
    "tiny-subnormal-f32": lambda: np.array([[1e-45, -1e-45, 1e-38, 0.0]], np.float32),
    "equal-huge": lambda: np.array([[1e300, 1e300]]),
    "int16-small": lambda: np.array([[1, 2], [3, 4]], dtype=np.int16),
    "wide-range-row": lambda: np.array([[-1000.0, 0.0, 1000.0, 1e-3]]),
}

Z_TYPE_ERRORS = {
    "object-floats": lambda: z34().astype(object),
    "object-mixed": lambda: np.array([[1.0, "a"], [None, 2]], dtype=object),
    "str": lambda: z34().astype(str),
    "bytes": lambda: z34().astype(bytes),
    "complex64": lambda: z34().astype(np.complex64),
    "complex128": lambda: z34().astype(np.complex128),
    "complex-zero-imag": lambda: np.array([[1 + 0j, 2 + 0j]]),
    "bool": lambda: z34() > 0,
    "datetime64": lambda: np.zeros((2, 3), dtype="datetime64[s]"),
    "timedelta64": lambda: np.zeros((2, 3), dtype="timedelta64[s]"),
    "structured": lambda: np.zeros((2, 3), dtype=[("a", "f8")]),
    "void": lambda: np.zeros((2, 3), dtype="V8"),
    "None": lambda: None,
    "dict": lambda: {"a": 1.0},
    "set": lambda: {1.0, 2.0},
    "generator": lambda: (x for x in range(3)),
    "string-scalar": lambda: "1.0",
    "ragged": lambda: [[1.0, 2.0], [3.0]],
    "list-with-None": lambda: [[1.0, None]],
    "list-of-complex": lambda: [[1.0, 1j]],
    "list-of-bools": lambda: [[True, False]],
    "broken-__array__": lambda: BrokenArrayLike(),
    "object-empty": lambda: np.empty((0, 3), dtype=object),
}

Z_VALUE_ERRORS = {  # 0-d: there is no class axis
    "0d-float64": lambda: np.float64(1.0),
    "0d-array": lambda: np.array(2.0),
    "python-float": lambda: 1.5,
    "python-int": lambda: 3,
}

# axes beyond the default, on convertible inputs
Z_AXES = {
    "axis0-fortran": (lambda: np.asfortranarray(z34()), 0),
    "axis0-negstride": (lambda: z34()[::-1], 0),
    "axisNone-int": (lambda: np.arange(6, dtype=np.int32).reshape(2, 3), None),
    "axis(0,2)-3d": (lambda: np.arange(24.0).reshape(2, 3, 4) / 3, (0, 2)),
    "axis(-1,-3)-3d-f32": (lambda: (np.arange(24.0).reshape(2, 3, 4) / 3).astype(np.float32),
                           (-1, -3)),
    "axis1-special": (lambda: np.array([[nan, 0.0], [1.0, -inf], [2.0, -inf]]), 1),
    "axis0-special": (lambda: np.array([[nan, 0.0], [1.0, -inf], [2.0, -inf]]), 0),
    "axis0-empty": (lambda: np.empty((0, 3)), 0),
    "axisNone-empty": (lambda: np.empty((2, 0)), None),
    "np.int64-axis": (lambda: z34(), np.int64(-2)),
}


def _row_cases():
    cases = {}
    for fname, (func, ref) in ROW_FUNCS.items():
        for key, make in Z_CONVERTIBLE.items():
            cases[f"{fname}-{key}"] = (lambda f=func, m=make: f(m()),
                                       Equals(lambda r=ref, m=make: r(m())))
        for key, make in Z_TYPE_ERRORS.items():
            cases[f"{fname}-{key}"] = (lambda f=func, m=make: f(m()), Raises(TypeError, r"\bz\b"))
        for key, make in Z_VALUE_ERRORS.items():
            cases[f"{fname}-{key}"] = (lambda f=func, m=make: f(m()),
                                       Raises(ValueError, r"\baxis\b"))
        for key, (make, axis) in Z_AXES.items():
            cases[f"{fname}-{key}"] = (lambda f=func, m=make, a=axis: f(m(), axis=a),
                                       Equals(lambda r=ref, m=make, a=axis: r(m(), a)))
    for key, make in {**Z_CONVERTIBLE, **{k: v[0] for k, v in Z_AXES.items()}}.items():
        cases[f"logsumexp-keepdims-{key}"] = (
            lambda m=make: logsumexp(m(), keepdims=True),
            Equals(lambda m=make: ref_logsumexp(m(), keepdims=True)))
    return cases


@pytest.mark.parametrize("thunk,outcome", _table(_row_cases()))
def test_row_functions(thunk, outcome):
    _run(thunk, outcome)


# ===========================================================================
# 2. nll_loss / local_gradient / nll_loss_and_gradient: logits, labels,
#    weights, reduction


def _eps64(z):
    """64 eps of the dtype the kernels compute `z` in (for scalar losses)."""
    return 64 * float(np.finfo(result_dtype(z)).eps)


def _nll_call(name, z, y, **kw):
    if name == "nll_loss":
        return nll_loss(z, y, **kw)
    if name == "local_gradient":
        return local_gradient(z, y, **{k: v for k, v in kw.items() if k == "out"})
    return nll_loss_and_gradient(z, y, **kw)


def _nll_ref(name, z, y, **kw):
    kw.pop("out", None)
    if name == "local_gradient":
        return ref_nll(z, y, None, "none")[1]
    loss, grad = ref_nll(z, y, kw.get("sample_weight"), kw.get("reduction", "mean"))
    return loss if name == "nll_loss" else (loss, grad)


NLL_NAMES = ["nll_loss", "local_gradient", "nll_loss_and_gradient"]
Y3 = [0, 3, 1]

LOGITS_CONVERTIBLE = {
    "f64": lambda: z34(),
    "f32": lambda: z34(np.float32),
    "int64": lambda: np.arange(12).reshape(3, 4) - 5,
    "uint8": lambda: np.arange(12, dtype=np.uint8).reshape(3, 4),
    "float16": lambda: z34().astype(np.float16),
    "longdouble": lambda: z34().astype(np.longdouble),
    "big-endian-f8": lambda: z34().astype(">f8"),
    "big-endian-f4": lambda: z34().astype(">f4"),
    "list": lambda: z34().tolist(),
    "fortran": lambda: np.asfortranarray(z34()),
    "negative-strides": lambda: z34()[::-1, ::-1],
    "step-slice": lambda: np.arange(48.0).reshape(6, 8)[::2, ::2] / 9,
    "read-only": lambda: read_only(z34(np.float32)),
    "unaligned": lambda: unaligned(z34()),
    "broadcast": lambda: np.broadcast_to(np.array([0.5, -1.0, 2.0, 0.0]), (3, 4)),
    "matrix": lambda: np.asmatrix(z34()),
    "nan-row": lambda: np.array([[nan, 0, 0, 0], [0, 1, 2, 3], [1, 1, 1, 1.0]]),
    "inf-row": lambda: np.array([[0, 0, inf, 0], [0, 1, 2, 3], [1, 1, 1, 1.0]]),
    "all-minus-inf-row": lambda: np.array([[-inf] * 4, [0, 1, 2, 3], [1, 1, 1, 1.0]]),
    "minus-inf-label": lambda: np.array([[-inf, 0, 0, 0], [0, 1, 2, 3], [1, -inf, 1, 1.0]]),
    "minus-inf-other": lambda: np.array([[0, -inf, 0, 0], [0, 1, 2, -inf], [1, 1, -inf, 1]]),
    "huge": lambda: np.array([[1e308, -1e308, 0, 1.7e308], [0, 1, 2, 3], [1, 1, 1, 1.0]]),
    "wide-class-axis": lambda: np.linspace(-30, 30, 3 * 50).reshape(3, 50),
}

LOGITS_TYPE_ERRORS = {
    "complex": lambda: z34().astype(complex),
    "object": lambda: z34().astype(object),
    "str": lambda: z34().astype(str),
    "bool": lambda: z34() > 0,
    "None": lambda: None,
    "ragged": lambda: [[1.0, 2.0], [3.0]],
}

LOGITS_VALUE_ERRORS = {
    "1-D": lambda: np.zeros(4),
    "3-D": lambda: np.zeros((3, 4, 1)),
    "0-D": lambda: np.float64(0.0),
    "(3,1,4)": lambda: np.zeros((3, 1, 4)),
}

LABELS_OK = {
    "int8": lambda: np.array(Y3, dtype=np.int8),
    "uint8": lambda: np.array(Y3, dtype=np.uint8),
    "int32": lambda: np.array(Y3, dtype=np.int32),
    "uint64": lambda: np.array(Y3, dtype=np.uint64),
    "big-endian-int": lambda: np.array(Y3, dtype=">i8"),
    "list": lambda: list(Y3),
    "tuple": lambda: tuple(Y3),
    "numpy-int-scalars": lambda: [np.int16(v) for v in Y3],
    "negative-strides": lambda: np.array(Y3[::-1])[::-1],
    "step-slice": lambda: np.array([0, 9, 3, 9, 1])[::2],
    "read-only": lambda: read_only(Y3),
    "unaligned": lambda: unaligned(np.array(Y3, dtype=np.int64)),
    "boundary": lambda: [3, 3, 0],
}

LABELS_TYPE_ERRORS = {
    "float-integral": lambda: np.array(Y3, dtype=float),
    "float-nan": lambda: np.array([0.0, nan, 1.0]),
    "float16": lambda: np.array(Y3, dtype=np.float16),
    "bool": lambda: np.array([True, False, True]),
    "object": lambda: np.array(Y3, dtype=object),
    "complex": lambda: np.array(Y3, dtype=complex),
    "str": lambda: np.array(["0", "3", "1"]),
    "None": lambda: None,
    "huge-python-int": lambda: [0, 1, 2**70],
    "list-of-floats": lambda: [0.0, 3.0, 1.0],
    "datetime": lambda: np.zeros(3, dtype="datetime64[s]"),
    "ragged": lambda: [0, [1], 2],
    # a 2-D y holds class probabilities (nll_loss): it must be a float array
    "2-D": lambda: np.array([[0], [3], [1]]),
    "2-D-row": lambda: np.array([Y3]),
}

LABELS_VALUE_ERRORS = {
    "equal-to-n-classes": lambda: [0, 4, 1],
    "far-out-of-range": lambda: [0, 10**9, 1],
    "negative": lambda: [0, -1, 1],
    "most-negative": lambda: np.array([0, np.iinfo(np.int64).min, 1]),
    "uint64-max": lambda: np.array([0, 2**64 - 1, 1], dtype=np.uint64),
    "int8-negative": lambda: np.array([0, -128, 1], dtype=np.int8),
    "too-short": lambda: [0, 1],
    "too-long": lambda: [0, 1, 2, 3],
    "empty": lambda: [],
    "2-D-float-wrong-shape": lambda: np.array([[0.0], [3.0], [1.0]]),
    "scalar": lambda: 1,
}

WEIGHTS_OK = {
    "ints": lambda: [1, 2, 3],
    "float32": lambda: np.array([0.5, 1.0, 2.0], dtype=np.float32),
    "float16": lambda: np.array([0.5, 1.0, 2.0], dtype=np.float16),
    "big-endian": lambda: np.array([0.5, 1.0, 2.0], dtype=">f8"),
    "with-zero": lambda: [0.0, 1.0, 2.0],
    "subnormal": lambda: [5e-324, 1e-310, 0.0],
    "huge": lambda: [1e308, 1.7e308, 1e308],
    "read-only": lambda: read_only([1.0, 2.0, 3.0]),
    "negative-strides": lambda: np.array([3.0, 2.0, 1.0])[::-1],
    "unaligned": lambda: unaligned(np.array([1.0, 2.0, 3.0])),
    "uint8": lambda: np.array([1, 0, 255], dtype=np.uint8),
}

WEIGHTS_TYPE_ERRORS = {
    "complex": lambda: np.array([1, 2, 3], dtype=complex),
    "bool": lambda: np.array([True, True, False]),
    "object": lambda: np.array([1.0, 2.0, 3.0], dtype=object),
    "str": lambda: ["1", "2", "3"],
    "ragged": lambda: [1.0, [2.0], 3.0],
}

WEIGHTS_VALUE_ERRORS = {
    "nan": lambda: [1.0, nan, 1.0],
    "inf": lambda: [1.0, inf, 1.0],
    "minus-inf": lambda: [1.0, -inf, 1.0],
    "negative": lambda: [1.0, -1e-300, 1.0],
    "too-short": lambda: [1.0, 1.0],
    "too-long": lambda: [1.0] * 4,
    "2-D": lambda: np.ones((3, 1)),
    "scalar": lambda: 1.0,
    "empty": lambda: [],
}


def _nll_cases():
    cases = {}
    for name in NLL_NAMES:
        for key, make in LOGITS_CONVERTIBLE.items():
            cases[f"{name}-logits-{key}"] = (
                lambda n=name, m=make: _nll_call(n, m(), Y3),
                Equals(lambda n=name, m=make: _nll_ref(n, m(), Y3), rtol=_eps64(make())))
        for key, make in LOGITS_TYPE_ERRORS.items():
            cases[f"{name}-logits-{key}"] = (lambda n=name, m=make: _nll_call(n, m(), Y3),
                                             Raises(TypeError, r"\blogits\b"))
        for key, make in LOGITS_VALUE_ERRORS.items():
            cases[f"{name}-logits-{key}"] = (lambda n=name, m=make: _nll_call(n, m(), Y3),
                                             Raises(ValueError, r"\blogits\b"))
        for key, make in LABELS_OK.items():
            cases[f"{name}-y-{key}"] = (lambda n=name, m=make: _nll_call(n, z34(), m()),
                                        Equals(lambda n=name, m=make: _nll_ref(n, z34(), m())))
        for key, make in LABELS_TYPE_ERRORS.items():
            cases[f"{name}-y-{key}"] = (lambda n=name, m=make: _nll_call(n, z34(), m()),
                                        Raises(TypeError, r"\by\b"))
        for key, make in LABELS_VALUE_ERRORS.items():
            cases[f"{name}-y-{key}"] = (lambda n=name, m=make: _nll_call(n, z34(), m()),
                                        Raises(ValueError, r"\by\b"))
        # zero sizes
        cases[f"{name}-empty-batch"] = (
            lambda n=name: _nll_call(n, np.empty((0, 4)), [], **(
                {} if n == "local_gradient" else {"reduction": "sum"})),
            Equals(lambda n=name: _nll_ref(n, np.empty((0, 4)), [], **(
                {} if n == "local_gradient" else {"reduction": "sum"}))))
        cases[f"{name}-no-classes"] = (lambda n=name: _nll_call(n, np.empty((3, 0)), Y3),
                                       Raises(ValueError, r"\by\b"))
        cases[f"{name}-one-class"] = (lambda n=name: _nll_call(n, np.zeros((3, 1)), [0, 0, 0]),
                                      Equals(lambda n=name: _nll_ref(n, np.zeros((3, 1)),
                                                                     [0, 0, 0])))
    for name in ("nll_loss", "nll_loss_and_gradient"):
        for reduction in ("mean", "sum", "none"):
            for key, make in WEIGHTS_OK.items():
                cases[f"{name}-{reduction}-w-{key}"] = (
                    lambda n=name, m=make, r=reduction: _nll_call(
                        n, z34(), Y3, sample_weight=m(), reduction=r),
                    Equals(lambda n=name, m=make, r=reduction: _nll_ref(
                        n, z34(), Y3, sample_weight=m(), reduction=r)))
        for key, make in WEIGHTS_TYPE_ERRORS.items():
            cases[f"{name}-w-{key}"] = (
                lambda n=name, m=make: _nll_call(n, z34(), Y3, sample_weight=m()),
                Raises(TypeError, r"\bsample_weight\b"))
        for key, make in WEIGHTS_VALUE_ERRORS.items():
            cases[f"{name}-w-{key}"] = (
                lambda n=name, m=make: _nll_call(n, z34(), Y3, sample_weight=m()),
                Raises(ValueError, r"\bsample_weight\b"))
        cases[f"{name}-w-all-zero-mean"] = (
            lambda n=name: _nll_call(n, z34(), Y3, sample_weight=[0, 0, 0]),
            Raises(ValueError, r"\bsample_weight\b"))
        for bad in ("avg", "MEAN", "", "mean "):
            cases[f"{name}-reduction-{bad!r}"] = (
                lambda n=name, b=bad: _nll_call(n, z34(), Y3, reduction=b),
                Raises(ValueError, r"\breduction\b"))
        for bad in (None, 0, ("mean",), b"sum"):
            cases[f"{name}-reduction-{bad!r}"] = (
                lambda n=name, b=bad: _nll_call(n, z34(), Y3, reduction=b),
                Raises(TypeError, r"\breduction\b"))
    return cases


@pytest.mark.parametrize("thunk,outcome", _table(_nll_cases()))
def test_nll_functions(thunk, outcome):
    _run(thunk, outcome)


# ===========================================================================
# 3. out= buffers: mismatched, non-contiguous, aliasing an input

OUT_NAMES = ["softmax", "log_softmax", "local_gradient", "nll_loss_and_gradient"]


def _out_call(name, z, out, y=None):
    y = Y3 if y is None else y
    if name == "softmax":
        return softmax(z, out=out)
    if name == "log_softmax":
        return log_softmax(z, out=out)
    if name == "local_gradient":
        return local_gradient(z, y, out=out)
    return nll_loss_and_gradient(z, y, out=out)[1]


def _out_ref(name, z, y=None):
    y = Y3 if y is None else y
    if name == "softmax":
        return ref_softmax(z)
    if name == "log_softmax":
        return ref_log_softmax(z)
    if name == "local_gradient":
        return ref_nll(z, y, None, "none")[1]
    return ref_nll(z, y, None, "mean")[1]


def _shared(shape_z, offset_out, dtype=np.float64):
    """z and out as views of one buffer, out starting `offset_out` elements after z."""
    n = int(np.prod(shape_z))
    buf = np.linspace(-2, 2, n + abs(offset_out) + 8).astype(dtype)
    base = max(0, -offset_out)
    z = buf[base:base + n].reshape(shape_z)
    out = buf[base + offset_out:base + offset_out + n].reshape(shape_z)
    return z, out


def _aliased_labels(name):
    """Labels that live inside the out buffer (the kernel reads them while writing)."""
    z = z34()
    out = np.zeros((3, 4))
    y = out.reshape(-1).view(np.int64)[4:7]
    y[...] = Y3
    return z, out, y


def _aliased_weights():
    z = z34()
    out = np.zeros((3, 4))
    w = out.reshape(-1)[4:7]
    w[...] = [1.0, 2.0, 3.0]
    return z, out, w


OUT_BAD = {
    # (make (z, out), exception, pattern)
    "wrong-shape-transposed": (lambda: (z34(), np.empty((4, 3))), ValueError),
    "wrong-shape-flat": (lambda: (z34(), np.empty(12)), ValueError),
    "wrong-shape-extra-dim": (lambda: (z34(), np.empty((3, 4, 1))), ValueError),
    "wrong-shape-missing-row": (lambda: (z34(), np.empty((2, 4))), ValueError),
    "wrong-dtype-f32-for-f64": (lambda: (z34(), np.empty((3, 4), np.float32)), ValueError),
    "wrong-dtype-f64-for-f32": (lambda: (z34(np.float32), np.empty((3, 4))), ValueError),
    "wrong-dtype-int": (lambda: (z34(), np.empty((3, 4), np.int64)), ValueError),
    "wrong-dtype-complex": (lambda: (z34(), np.empty((3, 4), complex)), ValueError),
    "wrong-dtype-float16": (lambda: (z34(), np.empty((3, 4), np.float16)), ValueError),
    "wrong-dtype-big-endian": (lambda: (z34(), np.empty((3, 4), ">f8")), ValueError),
    "wrong-dtype-longdouble": (lambda: (z34(), np.empty((3, 4), np.longdouble)), ValueError),
    "f32-for-int-input": (lambda: (np.arange(12).reshape(3, 4) % 4, np.empty((3, 4),
                                                                            np.float32)),
                          ValueError),
    "fortran": (lambda: (z34(), np.empty((3, 4), order="F")), ValueError),
    "strided": (lambda: (z34(), np.empty((3, 8))[:, ::2]), ValueError),
    "negative-strides": (lambda: (z34(), np.empty((3, 4))[::-1]), ValueError),
    "read-only": (lambda: (z34(), read_only(np.empty((3, 4)))), ValueError),
    "read-only-in-place": (lambda: (lambda z: (z, z))(read_only(z34())), ValueError),
    "broadcast-view": (lambda: (z34(), np.broadcast_to(np.zeros(4), (3, 4))), ValueError),
    "overlap-shift-one-row": (lambda: _shared((3, 4), 4), ValueError),
    "overlap-shift-one-element": (lambda: _shared((3, 4), 1), ValueError),
    "overlap-shift-back": (lambda: _shared((3, 4), -3), ValueError),
    "overlap-f32-shift": (lambda: _shared((3, 4), 2, np.float32), ValueError),
    "overlap-same-start-other-strides": (
        lambda: (lambda b: (b.reshape(3, 8)[:, :4], b[:12].reshape(3, 4)))(
            np.linspace(-1, 1, 24)), ValueError),
    "overlap-reversed-view": (
        lambda: (lambda b: (b[::-1, ::-1], b))(z34().copy()), ValueError),
    "overlap-non-contiguous-input": (
        lambda: (lambda b: (b[:, 1:5], b.reshape(-1)[:12].reshape(3, 4)))(
            np.linspace(-1, 1, 18).reshape(3, 6)), ValueError),
    "list": (lambda: (z34(), np.empty((3, 4)).tolist()), TypeError),
    "tuple": (lambda: (z34(), tuple(np.empty(3))), TypeError),
    "float": (lambda: (z34(), 0.0), TypeError),
    "bytearray": (lambda: (z34(), bytearray(96)), TypeError),
    "memoryview": (lambda: (z34(), memoryview(np.empty((3, 4)))), TypeError),
    "array-like": (lambda: (z34(), ArrayLike(np.empty((3, 4)))), TypeError),
}

OUT_OK = {
    # (make (z, out)); the result must be `out` itself and equal the reference
    "separate": lambda: (z34(), np.full((3, 4), 99.0)),
    "separate-f32": lambda: (z34(np.float32), np.full((3, 4), 99.0, np.float32)),
    "in-place": lambda: (lambda z: (z, z))(z34()),
    "in-place-f32": lambda: (lambda z: (z, z))(z34(np.float32)),
    "in-place-view-of-same-memory": lambda: (lambda z: (z, z.reshape(12).reshape(3, 4)))(z34()),
    "int-input-f64-out": lambda: ((np.arange(12).reshape(3, 4) % 4), np.empty((3, 4))),
    "list-input": lambda: (z34().tolist(), np.empty((3, 4))),
    "fortran-input": lambda: (np.asfortranarray(z34()), np.empty((3, 4))),
    "negative-strides-input": lambda: (z34()[::-1], np.empty((3, 4))),
    "unaligned-out": lambda: (z34(), unaligned(np.zeros((3, 4)))),
    "disjoint-parts-of-one-buffer": lambda: _shared((3, 4), 12),
    "special-values-in-place": lambda: (lambda z: (z, z))(
        np.array([[nan, 0, 0, 0], [0, -inf, 2, 3], [inf, 1, 1, 1.0]])),
}


def _out_cases():
    cases = {}
    for name in OUT_NAMES:
        for key, (make, exc) in OUT_BAD.items():
            cases[f"{name}-{key}"] = (lambda n=name, m=make: _out_call(n, *m()),
                                      Raises(exc, r"\bout\b"))
        for key, make in OUT_OK.items():
            def run(n=name, m=make):
                z, out = m()
                ref = _out_ref(n, np.array(z))          # before an in-place call changes z
                res = _out_call(n, z, out)
                assert res is out
                return res, ref
            cases[f"{name}-{key}"] = (run, _SelfRef())
    for name in ("local_gradient", "nll_loss_and_gradient"):
        cases[f"{name}-labels-inside-out"] = (
            lambda n=name: (lambda z, out, y: _out_call(n, z, out, y))(*_aliased_labels(n)),
            Raises(ValueError, r"\bout\b"))
        cases[f"{name}-in-place-labels-inside-logits"] = (
            lambda n=name: (lambda z, out, y: _out_call(n, out, out, y))(*_aliased_labels(n)),
            Raises(ValueError, r"\bout\b"))
        cases[f"{name}-labels-copied-then-out-ok"] = (
            lambda n=name: (lambda z, out, y: _out_call(n, z, out, y.astype(np.int32)))(
                *_aliased_labels(n)),
            Equals(lambda n=name: _out_ref(n, z34())))
    cases["nll_loss_and_gradient-weights-inside-out"] = (
        lambda: (lambda z, out, w: nll_loss_and_gradient(z, Y3, sample_weight=w, out=out,
                                                          reduction="sum"))(
            *_aliased_weights()),
        Raises(ValueError, r"\bout\b"))
    cases["softmax-out-with-axis0-in-place"] = (
        lambda: (lambda z: (softmax(z, axis=0, out=z), ref_softmax(z34(), 0)))(z34()),
        _SelfRef())
    cases["log_softmax-out-with-axisNone"] = (
        lambda: (log_softmax(z34(), axis=None, out=np.empty((3, 4))),
                 ref_log_softmax(z34(), None)),
        _SelfRef())
    cases["softmax-out-with-axis0-wrong-shape"] = (
        lambda: softmax(z34(), axis=0, out=np.empty((4, 3))), Raises(ValueError, r"\bout\b"))
    return cases


class _SelfRef:
    """The thunk returns (result, reference)."""

    def check(self, thunk):
        got, ref = thunk()
        _compare(got, ref, None, None)


@pytest.mark.parametrize("thunk,outcome", _table(_out_cases()))
def test_out_buffers(thunk, outcome):
    _run(thunk, outcome)


# ===========================================================================
# 4. forward / backprop


def net(dtype=np.float64, sizes=(5, 4, 3), seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, sizes[0])).astype(dtype)
    coefs = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
             for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [rng.standard_normal(b).astype(dtype) * 0.1 for b in sizes[1:]]
    y = np.arange(6) % sizes[-1]
    return X, y, coefs, intercepts


def _net_call(which, X, y, coefs, intercepts, **kw):
    if which == "forward":
        kw.pop("alpha", None)
        kw.pop("sample_weight", None)
        return forward(X, coefs, intercepts, **kw)
    return backprop(X, y, coefs, intercepts, **kw)


def _net_ref(which, X, y, coefs, intercepts, **kw):
    if which == "forward":
        kw.pop("alpha", None)
        kw.pop("sample_weight", None)
        return ref_forward(X, coefs, intercepts, **kw)
    return ref_backprop(X, y, coefs, intercepts, **kw)


def _tol(dtype):
    return 2e-4 if np.dtype(dtype) == np.float32 else 1e-10


def _netmod(change):
    """(X, y, coefs, intercepts) of a float64 net, after `change` rewrites them."""
    def make():
        X, y, coefs, intercepts = net()
        return change(X, y, list(coefs), list(intercepts))
    return make


NET_OK = {
    # change(X, y, coefs, intercepts) -> (X, y, coefs, intercepts)
    "plain": lambda X, y, c, b: (X, y, c, b),
    "float32": lambda X, y, c, b: (X.astype(np.float32), y, [a.astype(np.float32) for a in c],
                                   [a.astype(np.float32) for a in b]),
    "tuples": lambda X, y, c, b: (X, y, tuple(c), tuple(b)),
    "lists-of-lists": lambda X, y, c, b: (X.tolist(), y.tolist(), [a.tolist() for a in c],
                                          [a.tolist() for a in b]),
    "fortran": lambda X, y, c, b: (np.asfortranarray(X), y, [np.asfortranarray(a) for a in c], b),
    "negative-strides": lambda X, y, c, b: (X[::-1].copy()[::-1], y,
                                            [a[::-1, ::-1].copy()[::-1, ::-1] for a in c],
                                            [a[::-1].copy()[::-1] for a in b]),
    "read-only": lambda X, y, c, b: (read_only(X), read_only(y), [read_only(a) for a in c],
                                     [read_only(a) for a in b]),
    "unaligned": lambda X, y, c, b: (unaligned(X), unaligned(y), [unaligned(a) for a in c],
                                     [unaligned(a) for a in b]),
    "big-endian": lambda X, y, c, b: (X.astype(">f8"), y.astype(">i4"),
                                      [a.astype(">f8") for a in c], [a.astype(">f8") for a in b]),
    "no-hidden-layer": lambda X, y, c, b: (X, y % 3, [c[0] @ c[1]], [b[1]]),
    "one-row": lambda X, y, c, b: (X[:1], y[:1], c, b),
    "one-feature": lambda X, y, c, b: (X[:, :1], y, [c[0][:1]] + c[1:], b),
    "one-hidden-unit": lambda X, y, c, b: (X, y, [c[0][:, :1], c[1][:1]], [b[0][:1], b[1]]),
    "deep": lambda X, y, c, b: (X, y, [c[0], np.eye(4), np.eye(4) * 0.5, c[1]],
                                [b[0], np.zeros(4), np.ones(4), b[1]]),
    "int-labels-uint8": lambda X, y, c, b: (X, y.astype(np.uint8), c, b),
    "huge-inputs-saturate": lambda X, y, c, b: (X * 1e150, y, c, b),
}

NET_ERRORS = {
    # change -> (exception, pattern)
    "X-1d": (lambda X, y, c, b: (X[0], y, c, b), ValueError, r"\bX\b"),
    "X-3d": (lambda X, y, c, b: (X[None], y, c, b), ValueError, r"\bX\b"),
    "X-0d": (lambda X, y, c, b: (X[0, 0], y, c, b), ValueError, r"\bX\b"),
    "X-no-columns": (lambda X, y, c, b: (X[:, :0], y, [c[0][:0]] + c[1:], b), ValueError,
                     r"\bX\b"),
    "X-int": (lambda X, y, c, b: (X.astype(int), y, c, b), TypeError, r"\bX\b"),
    "X-float16": (lambda X, y, c, b: (X.astype(np.float16), y, c, b), TypeError, r"\bX\b"),
    "X-longdouble": (lambda X, y, c, b: (X.astype(np.longdouble), y, c, b), TypeError, r"\bX\b"),
    "X-complex": (lambda X, y, c, b: (X.astype(complex), y, c, b), TypeError, r"\bX\b"),
    "X-object": (lambda X, y, c, b: (X.astype(object), y, c, b), TypeError, r"\bX\b"),
    "X-bool": (lambda X, y, c, b: (X > 0, y, c, b), TypeError, r"\bX\b"),
    "X-str": (lambda X, y, c, b: (X.astype(str), y, c, b), TypeError, r"\bX\b"),
    "X-None": (lambda X, y, c, b: (None, y, c, b), TypeError, r"\bX\b"),
    "X-ragged": (lambda X, y, c, b: ([[1.0] * 5, [1.0] * 4], y, c, b), TypeError, r"\bX\b"),
    "X-wrong-width": (lambda X, y, c, b: (X[:, :4], y, c, b), ValueError, r"coefs\[0\]"),
    "mixed-X-f32": (lambda X, y, c, b: (X.astype(np.float32), y, c, b), TypeError,
                    r"X.*coefs"),
    "mixed-one-coef-f32": (lambda X, y, c, b: (X, y, [c[0].astype(np.float32), c[1]], b),
                           TypeError, r"coefs\[0\]"),
    "mixed-intercept-f32": (lambda X, y, c, b: (X, y, c, [b[0], b[1].astype(np.float32)]),
                            TypeError, r"intercepts\[1\]"),
    "coefs-not-chaining": (lambda X, y, c, b: (X, y, [c[0], c[1][:3]], b), ValueError,
                           r"coefs\[1\]"),
    "coefs-transposed": (lambda X, y, c, b: (X, y, [c[0].T, c[1]], b), ValueError,
                         r"coefs\[0\]"),
    "intercept-wrong-length": (lambda X, y, c, b: (X, y, c, [b[0][:3], b[1]]), ValueError,
                               r"intercepts\[0\]"),
    "intercept-2d": (lambda X, y, c, b: (X, y, c, [b[0][None], b[1]]), ValueError,
                     r"intercepts\[0\]"),
    "coef-1d": (lambda X, y, c, b: (X, y, [c[0].ravel(), c[1]], b), ValueError, r"coefs\[0\]"),
    "coef-3d": (lambda X, y, c, b: (X, y, [c[0][None], c[1]], b), ValueError, r"coefs\[0\]"),
    "coef-int": (lambda X, y, c, b: (X, y, [c[0].astype(int), c[1]], b), TypeError,
                 r"coefs\[0\]"),
    "coef-None": (lambda X, y, c, b: (X, y, [None, c[1]], b), TypeError, r"coefs\[0\]"),
    "intercept-None": (lambda X, y, c, b: (X, y, c, [b[0], None]), TypeError,
                       r"intercepts\[1\]"),
    "hidden-size-0": (lambda X, y, c, b: (X, y, [c[0][:, :0], c[1][:0]], [b[0][:0], b[1]]),
                      ValueError, r"coefs\[0\]"),
    "one-output-unit": (lambda X, y, c, b: (X, y * 0, [c[0], c[1][:, :1]], [b[0], b[1][:1]]),
                        ValueError, r"output|coefs\[1\]"),
    "coefs-empty": (lambda X, y, c, b: (X, y, [], []), ValueError, r"\bcoefs\b"),
    "coefs-longer": (lambda X, y, c, b: (X, y, c + [np.eye(3)], b), ValueError,
                     r"\bcoefs\b.*\bintercepts\b"),
    "intercepts-longer": (lambda X, y, c, b: (X, y, c, b + [np.zeros(3)]), ValueError,
                          r"\bcoefs\b.*\bintercepts\b"),
    "coefs-ndarray": (lambda X, y, c, b: (X, y, np.array(c, dtype=object), b), TypeError,
                      r"\bcoefs\b"),
    "coefs-generator": (lambda X, y, c, b: (X, y, (a for a in c), b), TypeError, r"\bcoefs\b"),
    "coefs-single-array": (lambda X, y, c, b: (X, y, c[0], b), TypeError, r"\bcoefs\b"),
    "coefs-None": (lambda X, y, c, b: (X, y, None, b), TypeError, r"\bcoefs\b"),
    "intercepts-dict": (lambda X, y, c, b: (X, y, c, dict(enumerate(b))), TypeError,
                        r"\bintercepts\b"),
}

BACKPROP_ERRORS = {
    "no-rows": (lambda X, y, c, b: (X[:0], y[:0], c, b), ValueError, r"\bX\b"),
    "y-out-of-range": (lambda X, y, c, b: (X, y + 3, c, b), ValueError, r"\by\b"),
    "y-negative": (lambda X, y, c, b: (X, y - 1, c, b), ValueError, r"\by\b"),
    "y-float": (lambda X, y, c, b: (X, y.astype(float), c, b), TypeError, r"\by\b"),
    "y-bool": (lambda X, y, c, b: (X, y > 0, c, b), TypeError, r"\by\b"),
    "y-str": (lambda X, y, c, b: (X, y.astype(str), c, b), TypeError, r"\by\b"),
    "y-None": (lambda X, y, c, b: (X, None, c, b), TypeError, r"\by\b"),
    "y-short": (lambda X, y, c, b: (X, y[:-1], c, b), ValueError, r"\by\b"),
    "y-long": (lambda X, y, c, b: (X, np.r_[y, 0], c, b), ValueError, r"\by\b"),
    "y-2d": (lambda X, y, c, b: (X, y[:, None], c, b), ValueError, r"\by\b"),
    "y-scalar": (lambda X, y, c, b: (X, 0, c, b), ValueError, r"\by\b"),
}

ALPHA_BAD = {
    "negative": (-1.0, ValueError), "nan": (nan, ValueError), "inf": (inf, ValueError),
    "str": ("0.1", TypeError), "None": (None, TypeError), "bool": (True, TypeError),
    "complex": (1j, TypeError), "list": ([0.1], TypeError),
}

ACTIVATION_BAD = {
    "unknown": ("softmax", ValueError), "upper-case": ("RELU", ValueError),
    "empty": ("", ValueError), "None": (None, TypeError), "callable": (np.tanh, TypeError),
    "bytes": (b"relu", TypeError),
}


def _net_cases():
    cases = {}
    for which in ("forward", "backprop"):
        for key, change in NET_OK.items():
            make = _netmod(change)
            dt = np.float32 if key == "float32" else np.float64
            for act in ("relu", "tanh", "logistic", "identity"):
                kw = {"activation": act}
                if which == "backprop":
                    kw.update(alpha=0.01)
                cases[f"{which}-{key}-{act}"] = (
                    lambda w=which, m=make, k=kw: _net_call(w, *m(), **k),
                    Equals(lambda w=which, m=make, k=kw: _net_ref(w, *m(), **k), rtol=_tol(dt),
                           dtype=None))
        for key, (change, exc, pat) in NET_ERRORS.items():
            cases[f"{which}-{key}"] = (lambda w=which, m=_netmod(change): _net_call(w, *m()),
                                       Raises(exc, pat))
        for key, (value, exc) in ACTIVATION_BAD.items():
            cases[f"{which}-activation-{key}"] = (
                lambda w=which, v=value: _net_call(w, *net(), activation=v),
                Raises(exc, r"\bactivation\b"))
    for key, (change, exc, pat) in BACKPROP_ERRORS.items():
        cases[f"backprop-{key}"] = (lambda m=_netmod(change): _net_call("backprop", *m()),
                                    Raises(exc, pat))
    for key, (value, exc) in ALPHA_BAD.items():
        cases[f"backprop-alpha-{key}"] = (lambda v=value: backprop(*net(), alpha=v),
                                          Raises(exc, r"\balpha\b"))
    for key, make in WEIGHTS_TYPE_ERRORS.items():
        cases[f"backprop-w-{key}"] = (
            lambda m=make, k=key: backprop(*net(sizes=(5, 3)), sample_weight=np.resize(m(), 6)
                                           if k != "ragged" else m()),
            Raises(TypeError, r"\bsample_weight\b"))
    for key, make in {**WEIGHTS_VALUE_ERRORS, "all-zero": lambda: [0.0] * 6}.items():
        cases[f"backprop-w-{key}"] = (
            lambda m=make, k=key: backprop(*net(sizes=(5, 3)), sample_weight=(
                np.resize(np.asarray(m(), dtype=float), 6) if k in ("nan", "inf", "minus-inf",
                                                                    "negative") else m())),
            Raises(ValueError, r"\bsample_weight\b"))
    for key, w in {"ints": [1, 2, 3, 1, 2, 3], "zeros-and-ones": [0, 1, 0, 1, 1, 0],
                   "float32": np.linspace(0.5, 2, 6).astype(np.float32),
                   "moderate-scale": np.full(6, 1e200)}.items():
        cases[f"backprop-w-ok-{key}"] = (
            lambda w=w: backprop(*net(), sample_weight=w, alpha=0.1),
            Equals(lambda w=w: ref_backprop(*net(), sample_weight=w, alpha=0.1), rtol=1e-10))
    # NaN / inf in X: no exception; the rows without them are exact, the
    # others are NaN (forward) -- never a crash, never other rows touched
    for key, bad in {"nan": nan, "inf": inf, "minus-inf": -inf}.items():
        def run(bad=bad):
            X, y, c, b = net()
            X[2, 1] = bad
            got = forward(X, c, b)
            keep = [0, 1, 3, 4, 5]
            _compare(got[keep], ref_forward(X[keep], c, b), _tol(np.float64), None)
            assert np.isnan(got[2]).all() or np.allclose(got[2].sum(), 1.0)
            loss, dW, db = backprop(X, y, c, b)
            assert all(g.shape == w.shape for g, w in zip(dW + db, c + b))
            return True, True
        cases[f"forward-backprop-X-{key}"] = (run, _SelfRef())
    return cases


@pytest.mark.parametrize("thunk,outcome", _table(_net_cases()))
def test_forward_backprop(thunk, outcome):
    _run(thunk, outcome)


@pytest.mark.parametrize("scale", [1e308, 5e-324], ids=["huge", "min-subnormal"])
def test_backprop_weights_at_the_ends_of_float64(scale):
    """The weighted mean is scale-free: weights near float64's maximum or its
    smallest subnormal give the unweighted result (no overflow of sum(w), no
    underflow of w_i / sum(w))."""
    X, y, c, b = net()
    loss, dW, db = backprop(X, y, c, b, sample_weight=np.full(6, scale))
    ref = backprop(X, y, c, b)
    _compare((loss, dW, db), ref, 1e-10, None)


def test_backprop_ragged_labels_name_y():
    """(regression: backprop converted y with np.asarray before check_labels)"""
    X, y, c, b = net()
    with pytest.raises((TypeError, ValueError)) as info:
        backprop(X, [0, [1], 2, 0, 1, 2], c, b)
    assert re.search(r"\by\b", str(info.value)), str(info.value)


def test_float32_gradient_with_weights_beyond_float32_range():
    """(regression: the kernel scaled a float32 row by (float)(w / s), which is
    infinite for a weight beyond float32's range, and 0 * inf gave NaN)"""
    z = np.array([[0.0, -1e30]], dtype=np.float32)       # p = [1, 0]
    loss, grad = nll_loss_and_gradient(z, [0], sample_weight=[1e300], reduction="sum")
    assert loss == 0.0
    assert not np.isnan(grad).any()
    np.testing.assert_array_equal(grad, [[0.0, 0.0]])


# ===========================================================================
# 5. Classifier: hostile X, y, sample_weight, classes, hyper-parameters,
#    misuse


def _blobs(n=30, f=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.standard_normal((n, f)) * 0.5 + y[:, None]
    return X, y


_FITTED = {}


def fitted(dtype=np.float64):
    """A small fitted model per dtype (built once; predict does not change it)."""
    key = np.dtype(dtype).name
    if key not in _FITTED:
        X, y = _blobs()
        _FITTED[key] = Classifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(
            X.astype(dtype), y)
    return _FITTED[key]


def tiny(**kw):
    kw = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0, **kw}
    return Classifier(**kw)


PREDICT_METHODS = ["predict", "predict_proba", "predict_log_proba", "decision_function",
                   "score"]


def _predict(method, X, dtype=np.float64):
    clf = fitted(dtype)
    if method == "score":
        y = _blobs()[1]
        return clf.score(X, y[:np.shape(X)[0]] if np.ndim(X) == 2 else y)
    return getattr(clf, method)(X)


X_CONVERTIBLE = {
    # make X -> (hostile X, the explicitly converted X it must act as)
    "int64": lambda X: ((X * 4).round().astype(np.int64), (X * 4).round()),
    "int8": lambda X: ((X * 4).round().astype(np.int8), (X * 4).round()),
    "uint8": lambda X: (np.abs(X * 4).round().astype(np.uint8), np.abs(X * 4).round()),
    "bool": lambda X: (X > 0, (X > 0).astype(np.float64)),
    "float16": lambda X: (X.astype(np.float16), X.astype(np.float16).astype(np.float64)),
    "float32": lambda X: (X.astype(np.float32), X.astype(np.float32).astype(np.float64)),
    "longdouble": lambda X: (X.astype(np.longdouble), X),
    "big-endian-f8": lambda X: (X.astype(">f8"), X),
    "big-endian-f4": lambda X: (X.astype(">f4"), X.astype(np.float32).astype(np.float64)),
    "big-endian-i2": lambda X: ((X * 4).round().astype(">i2"), (X * 4).round()),
    "list": lambda X: (X.tolist(), X),
    "tuple": lambda X: (tuple(map(tuple, X.tolist())), X),
    "numeric-strings": lambda X: (X.round(3).astype(str), X.round(3)),
    "object-floats": lambda X: (X.astype(object), X),
    "fortran": lambda X: (np.asfortranarray(X), X),
    "negative-strides": lambda X: (X[::-1].copy()[::-1], X),
    "step-slice": lambda X: (np.repeat(X, 2, axis=0)[::2], X),
    "read-only": lambda X: (read_only(X), X),
    "unaligned": lambda X: (unaligned(X), X),
    "memmap": lambda X: (memmapped(X), X),
    "array-like": lambda X: (ArrayLike(X), X),
    "csr": lambda X: (sp.csr_matrix(X), X),
    "csc": lambda X: (sp.csc_matrix(X), X),
    "coo": lambda X: (sp.coo_matrix(X), X),
    "lil": lambda X: (sp.lil_matrix(X), X),
    "csr-array": lambda X: (sp.csr_array(X), X),
    "csr-int64-indices": lambda X: (
        (lambda M: (setattr(M, "indices", M.indices.astype(np.int64)),
                    setattr(M, "indptr", M.indptr.astype(np.int64)), M)[-1])(sp.csr_matrix(X)),
        X),
    "csr-unsorted-indices": lambda X: (_unsorted_csr(X), X),
    "csr-explicit-zeros": lambda X: (lambda M: (M, M.toarray()))(_explicit_zero_csr(X)),
    "csr-unaligned-arrays": lambda X: (_unaligned_csr(X), X),
    "one-row": lambda X: (X[:1], X[:1]),
    "huge-values-f64": lambda X: (X * 1e3, X * 1e3),
}


def _unsorted_csr(X):
    M = sp.csr_matrix(X)
    for r in range(M.shape[0]):
        lo, hi = M.indptr[r], M.indptr[r + 1]
        M.indices[lo:hi] = M.indices[lo:hi][::-1].copy()
        M.data[lo:hi] = M.data[lo:hi][::-1].copy()
    M.has_sorted_indices = False
    return M


def _unaligned_csr(X):
    M = sp.csr_matrix(X)
    M.data, M.indices, M.indptr = unaligned(M.data), unaligned(M.indices), unaligned(M.indptr)
    assert not M.data.flags.aligned
    return M


def _explicit_zero_csr(X):
    Xz = X.copy()
    Xz[Xz < 0] = 0
    M = sp.csr_matrix(Xz)
    M.data[::3] = 0.0                 # stored zeros
    return M


def _broken_csr(kind):
    def make(X):
        M = sp.csr_matrix(np.abs(X) + 1)
        if kind == "index-too-large":
            M.indices[3] = 10**6
        elif kind == "index-negative":
            M.indices[3] = -10**6
        elif kind == "indptr-past-end":
            M.indptr[-1] = 10**7
        elif kind == "indptr-decreasing":
            M.indptr[2], M.indptr[3] = M.indptr[3], M.indptr[2]
        elif kind == "indptr-start":
            M.indptr[0] = 1
        elif kind == "csc-index-too-large":
            M = sp.csc_matrix(np.abs(X) + 1)
            M.indices[3] = 10**6
        return M
    return make


X_ERRORS = {
    # make X -> hostile X; (exception, pattern)
    "1-D": (lambda X: X[0], ValueError, r"Expected 2D array"),
    "3-D": (lambda X: X[None], ValueError, r"dim 3"),
    "0-D": (lambda X: X[0, 0], ValueError, r"Expected 2D array"),
    "None": (lambda X: None, ValueError, r"Expected 2D array"),
    "no-rows": (lambda X: X[:0], ValueError, r"0 sample"),
    "no-columns": (lambda X: X[:, :0], ValueError, r"0 feature"),
    "wrong-n-features": (lambda X: X[:, :4], ValueError, r"\bX has 4 features\b"),
    "too-many-features": (lambda X: np.c_[X, X], ValueError, r"\bX has 10 features\b"),
    "nan": (lambda X: np.where(X > 1, nan, X), ValueError, r"\bX contains NaN"),
    "inf": (lambda X: np.where(X > 1, inf, X), ValueError, r"\bX contains infinity"),
    "minus-inf": (lambda X: np.where(X > 1, -inf, X), ValueError, r"\bX contains infinity"),
    "nan-f32": (lambda X: np.where(X > 1, nan, X).astype(np.float32), ValueError,
                r"\bX contains NaN"),
    "float16-inf": (lambda X: np.where(X > 1, inf, X).astype(np.float16), ValueError,
                    r"\bX contains infinity"),
    "object-None": (lambda X: np.where(X > 1, None, X.astype(object)), ValueError,
                    r"\bX contains NaN"),
    "complex": (lambda X: X.astype(complex), ValueError, r"Complex data not supported"),
    "np.matrix": (lambda X: np.asmatrix(X), TypeError, r"np.matrix is not supported"),
    "non-numeric-strings": (lambda X: np.full(X.shape, "abc"), ValueError,
                            r"could not convert string to float"),
    "ragged": (lambda X: [list(X[0]), list(X[1][:-1])], ValueError, r"inhomogeneous|sequence"),
    "dict": (lambda X: {"a": 1}, TypeError, r"dict"),
    "generator": (lambda X: (r for r in X), TypeError, r"generator"),
    "sparse-nan": (lambda X: sp.csr_matrix(np.where(X > 1, nan, X)), ValueError,
                   r"\bX contains NaN"),
    "sparse-wrong-n-features": (lambda X: sp.csr_matrix(X[:, :4]), ValueError,
                                r"\bX has 4 features\b"),
    **{f"sparse-{k}": (_broken_csr(k), ValueError, r"\bX is a malformed sparse matrix")
       for k in ("index-too-large", "index-negative", "indptr-past-end", "indptr-decreasing",
                 "indptr-start", "csc-index-too-large")},
}


def _ref_predict(method, X_conv, dtype):
    return _predict(method, np.ascontiguousarray(X_conv, dtype=np.float64).astype(dtype),
                    dtype)


class Same:
    """Bit-for-bit the same result as `reference()` (arrays or floats)."""

    def __init__(self, reference):
        self.reference = reference

    def check(self, thunk):
        got, ref = thunk(), self.reference()
        if isinstance(ref, float):
            assert got == ref
        else:
            assert type(got) is np.ndarray and got.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)


def _classifier_predict_cases():
    cases = {}
    X0, _ = _blobs()
    for dtype in (np.float64, np.float32):
        dname = np.dtype(dtype).name
        for method in PREDICT_METHODS:
            for key, make in X_CONVERTIBLE.items():
                cases[f"{dname}-{method}-{key}"] = (
                    lambda me=method, mk=make, d=dtype: _predict(me, mk(X0)[0], d),
                    Same(lambda me=method, mk=make, d=dtype: _ref_predict(me, mk(X0)[1], d)))
            for key, (make, exc, pat) in X_ERRORS.items():
                cases[f"{dname}-{method}-{key}"] = (
                    lambda me=method, mk=make, d=dtype: _predict(me, mk(X0), d),
                    Raises(exc, pat))
            cases[f"{dname}-{method}-before-fit"] = (
                lambda me=method: (getattr(tiny(), me)(X0, _blobs()[1]) if me == "score"
                                   else getattr(tiny(), me)(X0)),
                Raises(NotFittedError, r"not fitted"))
    cases["save-before-fit"] = (lambda: tiny().save(io.BytesIO()),
                                Raises(NotFittedError, r"not fitted"))
    for key, y in {"wrong-length": np.arange(29) % 3, "2-D": np.c_[np.arange(30) % 3] * [1, 1],
                   "nan": np.where(np.arange(30) % 3 == 0, nan, 1.0)}.items():
        cases[f"score-y-{key}"] = (lambda y=y: fitted().score(X0, y),
                                   Raises(ValueError, r"\by\b|samples|multiclass|Input"))
    return cases


@pytest.mark.parametrize("thunk,outcome", _table(_classifier_predict_cases()))
def test_classifier_predict(thunk, outcome):
    _run(thunk, outcome)


# ------------------------------------------------------------ fit / partial_fit

FIT_X_CONVERTIBLE = {k: X_CONVERTIBLE[k] for k in (
    "int64", "uint8", "bool", "float16", "big-endian-f8", "list", "numeric-strings",
    "object-floats", "fortran", "negative-strides", "read-only", "unaligned", "csr", "csc",
    "coo", "csr-unsorted-indices", "csr-unaligned-arrays", "memmap")}

FIT_X_ERRORS = {k: X_ERRORS[k] for k in X_ERRORS
                if k not in ("wrong-n-features", "too-many-features",
                             "sparse-wrong-n-features")}

Y_OK = {
    # make y -> (hostile y, equivalent labels); the model must be the same
    "float-integral": lambda y: (y.astype(float), y),
    "int8": lambda y: (y.astype(np.int8), y),
    "uint64": lambda y: (y.astype(np.uint64), y),
    "big-endian": lambda y: (y.astype(">i4"), y),
    "negative": lambda y: (y - 10, y - 10),
    "huge-ints": lambda y: (y * 10**15, y * 10**15),
    "list": lambda y: (y.tolist(), y),
    "column-vector": lambda y: (y[:, None], y),
    "read-only": lambda y: (read_only(y), y),
    "strings": lambda y: (np.array(["a", "b", "c"])[y], np.array(["a", "b", "c"])[y]),
    "object-strings": lambda y: (np.array(["a", "b", "c"], dtype=object)[y],
                                 np.array(["a", "b", "c"], dtype=object)[y]),
}

Y_ERRORS = {
    "too-short": (lambda y: y[:-1], ValueError, r"inconsistent numbers of samples"),
    "too-long": (lambda y: np.r_[y, 0], ValueError, r"inconsistent numbers of samples"),
    "continuous": (lambda y: y + 0.5, ValueError, r"Unknown label type"),
    "nan": (lambda y: np.where(y == 0, nan, y), ValueError, r"\by contains NaN"),
    "inf": (lambda y: np.where(y == 0, inf, y), ValueError, r"\by contains infinity"),
    "one-class": (lambda y: np.zeros_like(y), ValueError, r"at least 2 classes"),
    "multi-output": (lambda y: np.c_[y, y], ValueError, r"multiclass-multioutput"),
    # a multilabel indicator is a valid target; several outputs of labels are not
    "multioutput": (lambda y: np.stack([y, y], axis=1) + 1, ValueError,
                    r"multiclass-multioutput"),
    "complex": (lambda y: y.astype(complex), ValueError, r"Complex"),
    "mixed-object": (lambda y: np.array([1, "a", 2.5] * 10, dtype=object), ValueError,
                     r"Unknown label type"),
    "None": (lambda y: None, ValueError, r"got None"),
    "3-D": (lambda y: y[:, None, None], ValueError, r"\by\b|label|shape"),
}

SW_OK = {
    "ints": lambda n: (np.ones(n, dtype=int), np.ones(n)),
    "float32": lambda n: (np.ones(n, dtype=np.float32), np.ones(n)),
    "scalar": lambda n: (1.0, np.ones(n)),
    "list": lambda n: ([1.0] * n, np.ones(n)),
    "big-endian": lambda n: (np.ones(n, dtype=">f8"), np.ones(n)),
    "read-only": lambda n: (read_only(np.ones(n)), np.ones(n)),
}

SW_ERRORS = {
    "negative": (lambda n: -np.ones(n), ValueError, r"Negative values.*sample_weight"),
    "nan": (lambda n: np.full(n, nan), ValueError, r"sample_weight contains NaN"),
    "inf": (lambda n: np.full(n, inf), ValueError, r"sample_weight contains infinity"),
    "wrong-length": (lambda n: np.ones(n - 1), ValueError, r"sample_weight"),
    "2-D": (lambda n: np.ones((n, 1)), ValueError, r"[Ss]ample weights"),
    "all-zero": (lambda n: np.zeros(n), ValueError, r"[Ss]ample weights"),
    "complex": (lambda n: np.ones(n, dtype=complex), ValueError, r"Complex"),
    "strings": (lambda n: np.full(n, "a"), ValueError, r"could not convert"),
}


def _fit(method, X, y, sample_weight=None, classes=(0, 1, 2), **kw):
    clf = tiny(**kw)
    if method == "partial_fit":
        return clf.partial_fit(X, y, sample_weight=sample_weight, classes=list(classes))
    return clf.fit(X, y, sample_weight=sample_weight)


def _model(clf):
    return [clf.classes_] + clf.coefs_ + clf.intercepts_


class SameModel:
    """The fitted model equals the one fitted on `reference()`'s arguments, bit for bit."""

    def __init__(self, reference):
        self.reference = reference

    def check(self, thunk):
        got, ref = _model(thunk()), _model(self.reference())
        assert len(got) == len(ref)
        for g, r in zip(got, ref):       # classes_ compare by value (int vs float labels)
            np.testing.assert_array_equal(g, r)


HYPER_BAD = {
    # parameter -> bad values (InvalidParameterError: a ValueError naming it)
    "hidden_layer_sizes": [0, -1, "abc", None, 2.5, (0,), (3, 0), (-1,), (3.5,), (True,),
                           ("a",), [[3]], np.array([3.0])],
    "activation": ["softmax", "RELU", "", None, 1, np.tanh],
    "solver": ["LBFGS", "SGD", None, 0],
    "alpha": [-1.0, -1e-300, nan, inf, "0.1", None, 1j],
    "batch_size": [0, -5, 2.5, "all", None],
    "learning_rate": ["fast", None, 0.1],
    "learning_rate_init": [0, 0.0, -1.0, nan, inf, "0.1", None],
    "power_t": [-0.5, nan, inf, "0.5"],
    "max_iter": [0, -1, 2.5, None, inf],
    "shuffle": ["yes", 2, None],
    "random_state": ["seed", -1, 2**32, 1.5],
    "tol": [-1.0, nan, inf, "small"],
    "momentum": [-0.1, 1.5, nan, "0.9"],
    "nesterovs_momentum": ["yes", 2],
    "early_stopping": ["yes", 2, None],
    "validation_fraction": [-0.1, 1.0, 1.5, nan],
    "beta_1": [-0.1, 1.0, nan],
    "beta_2": [-0.1, 1.0, nan],
    "epsilon": [0.0, -1e-8, nan, inf],
    "n_iter_no_change": [0, -1, 2.5, nan, None],
    "max_fun": [0, -1, 1.5, "x", None, inf],
    "warm_start": ["yes", 2],
    "verbose": ["loud", None],
}


def _fit_cases():
    cases = {}
    X0, y0 = _blobs()
    for method in ("fit", "partial_fit"):
        for key, make in FIT_X_CONVERTIBLE.items():
            cases[f"{method}-X-{key}"] = (
                lambda me=method, mk=make: _fit(me, mk(X0)[0], y0),
                SameModel(lambda me=method, mk=make: _fit(
                    me, np.ascontiguousarray(mk(X0)[1], dtype=np.float64), y0)))
        for key, (make, exc, pat) in FIT_X_ERRORS.items():
            cases[f"{method}-X-{key}"] = (lambda me=method, mk=make: _fit(me, mk(X0), y0),
                                          Raises(exc, pat))
        for key, make in Y_OK.items():
            cases[f"{method}-y-{key}"] = (
                lambda me=method, mk=make: _fit(me, X0, mk(y0)[0],
                                                classes=np.unique(mk(y0)[1])),
                SameModel(lambda me=method, mk=make: _fit(me, X0, mk(y0)[1],
                                                          classes=np.unique(mk(y0)[1]))))
        for key, (make, exc, pat) in Y_ERRORS.items():
            if method == "partial_fit" and key == "one-class":
                continue                  # legitimate with classes=[0, 1, 2]
            cases[f"{method}-y-{key}"] = (lambda me=method, mk=make: _fit(me, X0, mk(y0)),
                                          Raises(exc, pat))
        for key, make in SW_OK.items():
            cases[f"{method}-sample_weight-{key}"] = (
                lambda me=method, mk=make: _fit(me, X0, y0, mk(30)[0]),
                SameModel(lambda me=method, mk=make: _fit(me, X0, y0, mk(30)[1])))
        for key, (make, exc, pat) in SW_ERRORS.items():
            cases[f"{method}-sample_weight-{key}"] = (
                lambda me=method, mk=make: _fit(me, X0, y0, mk(30)), Raises(exc, pat))
        for param, values in HYPER_BAD.items():
            for v in values:
                cases[f"{method}-{param}={v!r}"] = (
                    lambda me=method, p=param, v=v: _fit(me, X0, y0, **{p: v}),
                    Raises(ValueError, rf"\b{param}\b"))
    # partial_fit's classes
    for key, (classes, exc, pat) in {
        "missing": (None, ValueError, r"\bclasses\b"),
        "label-not-in-classes": ([0, 1], ValueError, r"not in classes"),
        "one-class": ([0], ValueError, r"at least 2 classes"),
        "nan": ([0, 1, nan], ValueError, r"NaN"),
        "2-D": ([[0, 1, 2]], ValueError, r"label type"),
    }.items():
        cases[f"partial_fit-classes-{key}"] = (
            lambda c=classes: tiny().partial_fit(X0, y0, classes=c), Raises(exc, pat))
    cases["partial_fit-classes-changed"] = (
        lambda: tiny().partial_fit(X0, y0, classes=[0, 1, 2]).partial_fit(
            X0, y0, classes=[0, 1, 2, 3]), Raises(ValueError, r"\bclasses\b"))
    cases["partial_fit-classes-duplicates-ok"] = (
        lambda: tiny().partial_fit(X0, y0, classes=[0, 1, 2, 2, 0]),
        SameModel(lambda: tiny().partial_fit(X0, y0, classes=[0, 1, 2])))
    cases["partial_fit-unseen-label-later"] = (
        lambda: tiny().partial_fit(X0, y0, classes=[0, 1, 2]).partial_fit(X0, y0 + 1),
        Raises(ValueError, r"not in classes"))
    cases["partial_fit-wrong-n-features-later"] = (
        lambda: tiny().partial_fit(X0, y0, classes=[0, 1, 2]).partial_fit(X0[:, :4], y0),
        Raises(ValueError, r"\bX has 4 features\b"))
    cases["fit-warm-start-wrong-n-features"] = (
        lambda: tiny(warm_start=True).fit(X0, y0).fit(X0[:, :4], y0),
        Raises(ValueError, r"\bX has 4 features\b"))
    cases["partial_fit-after-hidden-change"] = (
        lambda: tiny().fit(X0, y0).set_params(hidden_layer_sizes=(5,)).partial_fit(X0, y0),
        Raises(ValueError, r"\bhidden_layer_sizes\b"))
    cases["fit-one-sample-one-class"] = (lambda: tiny().fit(X0[:1], y0[:1]),
                                         Raises(ValueError, r"at least 2 classes"))
    cases["partial_fit-one-sample-ok"] = (
        lambda: tiny().partial_fit(X0[:1], y0[:1], classes=[0, 1, 2]),
        SameModel(lambda: tiny().partial_fit(X0[:1].tolist(), [0], classes=[0, 1, 2])))
    cases["fit-early-stopping-too-few"] = (
        lambda: tiny(early_stopping=True, validation_fraction=0.01).fit(X0[:6], y0[:6]),
        Raises(ValueError, r"validation"))
    cases["fit-no-hidden-layer-ok"] = (
        lambda: tiny(hidden_layer_sizes=()).fit(X0, y0),
        SameModel(lambda: tiny(hidden_layer_sizes=[]).fit(X0, y0)))
    cases["fit-batch-larger-than-n-ok"] = (
        lambda: tiny(batch_size=1000).fit(X0, y0),
        SameModel(lambda: tiny(batch_size=30).fit(X0, y0)))
    return cases


@pytest.mark.parametrize("thunk,outcome", _table(_fit_cases()))
def test_classifier_fit(thunk, outcome):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # batch_size clipping
        _run(thunk, outcome)


# ------------------------------------------------------------ save / load


def _saved():
    buf = io.BytesIO()
    fitted().save(buf)
    return buf.getvalue()


def _rezip(raw, member, transform):
    """The .npz `raw` with `member`'s bytes replaced by transform(bytes)."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, transform(data) if name == member else data)
    return out.getvalue()


def _npy_with_shape(data, shape):
    """An .npy member whose header claims `shape` (the data stays short)."""
    header = ("{'descr': '<f8', 'fortran_order': False, 'shape': %r, }" % (shape,)).encode()
    header = header.ljust(117) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data[128:]


def _zip_version_corrupted(raw):
    """Bump 'version needed to extract' of the central directory: zipfile refuses it
    with NotImplementedError."""
    b = bytearray(raw)
    at = b.find(b"PK\x01\x02")
    b[at + 6:at + 8] = (253).to_bytes(2, "little")
    return bytes(b)


def _one_bit_flipped_everywhere(raw, step=37):
    return [raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:] for i in range(0, len(raw), step)]


def _truncated(raw, cut):
    """raw cut to `cut` bytes (int >= 0), a fraction of its length (float), or minus some."""
    if isinstance(cut, float):
        return raw[:int(len(raw) * cut)]
    return raw[:cut]


def _load_bytes(raw):
    return load(io.BytesIO(raw))


def _save_load_cases(tmp_dir):
    cases = {}
    for key, path in {"int-fd": 1, "int-0": 0, "bool": True, "None": None, "float": 1.5,
                      "list": ["m.npz"]}.items():
        cases[f"save-path-{key}"] = (lambda p=path: fitted().save(p),
                                     Raises(TypeError, r"\bpath\b"))
        cases[f"load-path-{key}"] = (lambda p=path: load(p), Raises(TypeError, r"\bpath\b"))
    cases["save-into-missing-dir"] = (
        lambda: fitted().save(tmp_dir / "missing" / "m.npz"), Raises(FileNotFoundError, None))
    cases["save-onto-directory"] = (lambda: fitted().save(tmp_dir), Raises(OSError, None))
    cases["save-read-only-file-object"] = (
        lambda: fitted().save(io.BufferedReader(io.BytesIO(b""))), Raises(OSError, None))
    cases["load-missing-file"] = (lambda: load(tmp_dir / "nope.npz"),
                                  Raises(FileNotFoundError, None))
    cases["load-directory"] = (lambda: load(tmp_dir), Raises(OSError, None))
    cases["load-empty-bytes"] = (lambda: _load_bytes(b""), Raises(ValueError, r"cysoftmax model"))
    for cut in (1, 4, 30, 100, 0.5, 0.9, -1):
        cases[f"load-truncated-{cut}"] = (
            lambda c=cut: _load_bytes(_truncated(_saved(), c)),
            Raises(ValueError, r"cysoftmax model"))
    cases["load-zip-version-corrupted"] = (lambda: _load_bytes(_zip_version_corrupted(_saved())),
                                           Raises(ValueError, r"cysoftmax model"))
    cases["load-header-claims-huge-shape"] = (
        lambda: _load_bytes(_rezip(_saved(), "coef_0.npy",
                                   lambda d: _npy_with_shape(d, (2**40, 4)))),
        Raises(ValueError, r"cysoftmax model"))
    cases["load-header-claims-large-shape"] = (
        lambda: _load_bytes(_rezip(_saved(), "coef_0.npy",
                                   lambda d: _npy_with_shape(d, (2**24, 4)))),
        Raises(ValueError, r"cysoftmax model"))
    cases["load-member-garbage"] = (
        lambda: _load_bytes(_rezip(_saved(), "coef_0.npy", lambda d: os.urandom(len(d)))),
        Raises(ValueError, r"cysoftmax model"))
    cases["load-pickle-bytes"] = (lambda: _load_bytes(pickle.dumps(fitted())),
                                  Raises(ValueError, r"cysoftmax model"))
    cases["load-round-trip-ok"] = (
        lambda: _load_bytes(_saved()).predict_proba(_blobs()[0]),
        Same(lambda: fitted().predict_proba(_blobs()[0])))
    return cases


@pytest.mark.parametrize("thunk,outcome", _table(_save_load_cases(_TMP)))
def test_save_load(thunk, outcome):
    _run(thunk, outcome)


def test_load_survives_every_single_byte_flip():
    """Flip each 37th byte of a saved model in turn: load either refuses the file
    with ValueError, or -- the flip was in a part of the zip that carries no
    data (a timestamp, an unused field), since every member's data is
    covered by its CRC-32 and its header by the structure checks -- returns
    the very model that was saved."""
    X, _ = _blobs()
    raw = _saved()
    want = _load_bytes(raw).predict_proba(X)
    outcomes = {"refused": 0, "loaded": 0}
    for bad in _one_bit_flipped_everywhere(raw):
        try:
            clf = _load_bytes(bad)
        except ValueError:
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        np.testing.assert_array_equal(clf.predict_proba(X), want)
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes


# ===========================================================================
# 6. training faults: divergence, pickles (versions, corruption), docs


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_divergence_raises_and_returns_no_nan_model(solver, dtype, method):
    X, y = _blobs(n=60)
    X = (X * 1e3).astype(dtype)
    # a step that overflows the dtype: Adam's step is ~ the learning rate itself
    lr = 1e36 if dtype == np.float32 else 1e300
    clf = Classifier(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=lr,
                     max_iter=20, random_state=0)
    call = (lambda: clf.fit(X, y)) if method == "fit" else (
        lambda: clf.partial_fit(X, y, classes=[0, 1, 2]))
    with pytest.raises(ValueError, match=r"diverged.*learning rate"):
        for _ in range(20 if method == "partial_fit" else 1):
            call()
    if hasattr(clf, "coefs_"):        # earlier partial_fit calls may have succeeded
        assert all(np.isfinite(a).all() for a in clf.coefs_ + clf.intercepts_)
        try:                           # huge but finite weights: an overflow is reported
            proba = clf.predict_proba(X / 1e3)
        except ValueError as exc:
            assert "not finite" in str(exc)
        else:
            assert np.isfinite(proba).all()
    else:
        assert set(vars(clf)) == set(clf.get_params())


def test_extreme_sample_weights_never_give_a_nan_model():
    """Weights near float64's maximum: either a finite model or the documented
    ValueError (the estimator is then left unfitted) -- never NaN weights."""
    X, y = _blobs()
    clf = tiny()
    try:
        clf.fit(X, y, sample_weight=np.full(30, 1e308))
    except ValueError as exc:
        assert "diverged" in str(exc)
        assert not hasattr(clf, "coefs_")
        return
    assert all(np.isfinite(a).all() for a in clf.coefs_ + clf.intercepts_)


def test_pickle_records_the_version():
    clf = fitted()
    assert clf.__getstate__()["_cysoftmax_version"] == cysoftmax.__version__
    blob = pickle.dumps(clf)
    assert b"_cysoftmax_version" in blob and cysoftmax.__version__.encode() in blob
    assert "_cysoftmax_version" not in vars(pickle.loads(blob))


def test_pickling_does_not_change_the_estimator():
    """__getstate__ must work on a copy: the live estimator keeps its trainer
    and gains no bookkeeping attribute (regression: Python >= 3.11 hands the
    live __dict__ to __getstate__)."""
    X, y = _blobs()
    clf = tiny().fit(X, y)
    before = dict(vars(clf))
    pickle.dumps(clf)
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[k] is before[k] for k in before)


def _with_version(clf, version):
    state = copy.deepcopy(dict(clf.__getstate__()))
    state["_cysoftmax_version"] = version
    return state


@pytest.mark.parametrize("version", ["0.0.1", "99.0", "0.1.0.dev0+other"])
def test_unpickling_another_version_warns(version):
    clf = fitted()
    state = _with_version(clf, version)
    twin = Classifier.__new__(Classifier)
    with pytest.warns(UserWarning, match=re.escape(version) + r".*save.*load"):
        twin.__setstate__(state)
    X, _ = _blobs()
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))


def test_unpickling_the_same_version_is_silent():
    blob = pickle.dumps(fitted())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(blob)


def test_unpickling_a_pickle_without_version_is_silent():
    state = copy.deepcopy(dict(fitted().__getstate__()))
    del state["_cysoftmax_version"]
    twin = Classifier.__new__(Classifier)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin.__setstate__(state)


_PICKLE = None


def _pickled():
    global _PICKLE
    if _PICKLE is None:
        _PICKLE = pickle.dumps(fitted())
    return _PICKLE


@pytest.mark.parametrize("cut", [0, 1, 10, 0.25, 0.5, 0.99, -1])
def test_truncated_pickle_fails_cleanly(cut):
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        pickle.loads(_truncated(_pickled(), cut))


def test_corrupted_pickle_fails_cleanly_or_loads():
    """Byte flips in a pickle: unpickling raises an ordinary exception (never a
    crash).  Pickles are trusted input by definition; this only checks that a
    damaged one is reported, not survived silently into a crash later on: a
    pickle that does load predicts or raises an ordinary error."""
    clf = copy.deepcopy(fitted())
    # (without the RandomState: numpy can spend many seconds on a corrupted MT19937 state)
    del clf._random_state
    blob = pickle.dumps(clf)
    X, _ = _blobs()
    outcomes = {"refused": 0, "loaded": 0, "predicted": 0}
    for i in range(0, len(blob), max(1, len(blob) // 150)):
        bad = blob[:i] + bytes([blob[i] ^ 0x5A]) + blob[i + 1:]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = pickle.loads(bad)
        except Exception:
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        try:
            proba = clf.predict_proba(X)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            assert str(exc), "an error without a message"
            continue
        # what predicts is a model: finite probabilities of the right shape
        assert proba.ndim == 2 and proba.shape[0] == len(X)
        assert np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        outcomes["predicted"] += 1
    # both happen: many flips are refused, some (inside a float) still load
    assert outcomes["refused"] > 0 and outcomes["predicted"] > 0, outcomes


def test_docs_say_unpickling_untrusted_data_is_unsafe():
    doc = " ".join(Classifier.__doc__.split())
    assert re.search(r"[Uu]npickling data from an untrusted source can run arbitrary code", doc)
    assert "save" in doc and "load" in doc
    if not README.exists():
        _requires.missing("checkout", f"{README} is not next to the tests")
    text = " ".join(README.read_text().split())
    assert "Unpickling data from an untrusted source can run arbitrary code" in text
    assert "save" in text and "load" in text


def test_equals_checks_every_entry_on_its_own_scale():
    # a huge entry must not loosen the tolerance of the ordinary ones
    ref = np.array([1e300, 1.0, -2.0])
    _compare(ref.copy(), ref, None, None)
    with pytest.raises(AssertionError, match="1 of 3 entries"):
        _compare(np.array([1e300, 1.5, -2.0]), ref, None, None)
    with pytest.raises(AssertionError):
        _compare(np.array([1e300, 1.0, np.nan]), ref, None, None)
    big = np.array([1e300 * (1 + 1e-14), 1.0, -2.0])      # within 64 eps relative
    _compare(big, ref, None, None)
