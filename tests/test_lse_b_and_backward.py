"""logsumexp's ``b=`` / ``return_sign=`` and the backward functions.

* ``logsumexp(z, b=..., return_sign=...)`` against ``scipy.special.logsumexp``
  on a grid (negative, zero and all-zero ``b``; ``b`` broadcast along either
  axis and broadcasting ``z`` up; keepdims; axis None and tuples), and on a
  grid of special values against SciPy applied to the slice *without* its
  ``b == 0`` entries (our documented rule, which SciPy itself breaks in its
  infinite-result fallback: those rows are asserted separately).
* Against mpmath (50 digits) on rows built to cancel, with the documented
  bound: ``|err| <= -log(1 - eps kappa) + 2 eps (|r| + |log|S||)`` wherever
  ``eps kappa < 1/2``, ``kappa = sum_{k: z_k != r} |b_k| e_k (2 + |z_k - r|) / |S|``,
  ``e_k = exp(z_k - r)``, ``S = sum_k b_k e_k``: the exps' and products'
  rounding (none for the maximal entries) amplified by the cancellation,
  the sum itself adding nothing.  A plain (uncompensated) double sum fails
  it (``[1, 1e-17, -1]`` at equal z gives log 0 instead of log 1e-17).
* The mask parameter of the internal helper (the future ``where=``): masked
  entries are never read.
* ``softmax_backward`` / ``log_softmax_backward`` against central finite
  differences of an independent NumPy softmax (float64) and against
  ``torch.autograd.grad`` (1e-12 float64, 1e-5 relative float32), with
  ``out=`` (also in place on either input) and every layout.
* Every SIMD variant (a subprocess per supported variant agrees with this
  process), the threaded path (above CS_PAR_MIN) equal to row-by-row calls.
* Bad input for every new argument, each its own test; none crashes.
"""

import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest
import scipy.special as sps
from threadpoolctl import threadpool_limits

import _requires
import cysoftmax
from cysoftmax import _api, _softmax, log_softmax_backward, logsumexp, softmax_backward

inf, nan = np.inf, np.nan
DTYPES = [np.float64, np.float32]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# The special-value and last-bit comparisons follow the logsumexp SciPy has
# had since its rewrite (log1p of the non-maximal terms, b == 0 entries left
# out); the oldest SciPy we admit (1.11, ci/oldest_deps.sh) predates it.
# Told apart by behaviour, not by version number.
MODERN_SCIPY = float(sps.logsumexp([0.0, -40.0])) != 0.0
needs_modern_scipy = pytest.mark.skipif(
    not MODERN_SCIPY, reason="this SciPy's logsumexp predates its log1p rewrite")


def _scipy(z, b, axis, keepdims=False, return_sign=False):
    # scipy's default axis is None: always pass it
    with np.errstate(all="ignore"):
        return sps.logsumexp(z, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)


def _cond(z, b, axis):
    """sum |b e| / |sum b e| in float64 (the cancellation of a slice), keepdims shape."""
    z = np.asarray(z, np.float64)
    b = np.broadcast_to(np.asarray(b, np.float64), np.broadcast_shapes(z.shape, np.shape(b)))
    z = np.broadcast_to(z, b.shape)
    with np.errstate(all="ignore"):
        r = np.max(np.where(b != 0, z, -inf), axis=axis, keepdims=True)
        e = np.where(b != 0, b * np.exp(z - np.where(np.isfinite(r), r, 0)), 0)
        return np.abs(e).sum(axis=axis, keepdims=True) / np.abs(e.sum(axis=axis, keepdims=True))


# ===========================================================================
# 1. against scipy: shapes, broadcasting, signs, zeros


def _grid_b(rng, kind, shape):
    if kind == "normal":                       # mixed signs
        return rng.standard_normal(shape)
    if kind == "positive":
        return rng.uniform(0.1, 3.0, shape)
    if kind == "zeros-some":
        b = rng.standard_normal(shape)
        b[rng.random(shape) < 0.4] = 0.0
        return b
    if kind == "all-zero-rows":                # a zero row and a zero column
        b = rng.uniform(-2, 2, shape)
        b[0] = 0.0
        b[:, 3] = 0.0
        return b
    if kind == "ints":
        return rng.integers(-3, 4, shape)
    raise ValueError(kind)


B_KINDS = ["normal", "positive", "zeros-some", "all-zero-rows", "ints"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", B_KINDS)
@pytest.mark.parametrize("axis", [-1, 0, None, (0, 1), 1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_matches_scipy_on_a_grid(dtype, kind, axis, keepdims):
    rng = np.random.default_rng(abs(hash((kind, str(axis), keepdims))) % 2**32)
    z = (rng.standard_normal((5, 7)) * 3).astype(dtype)
    z[1, 2] = -inf
    b = _grid_b(rng, kind, z.shape)
    if dtype == np.float32 and kind != "ints":
        b = b.astype(np.float32)               # so scipy's result is float32 too
    for return_sign in (False, True):
        got = logsumexp(z, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
        ref = _scipy(z, b, axis, keepdims, return_sign)
        _assert_like_scipy(got, ref, z, b, axis, keepdims, return_sign, dtype)


def _assert_like_scipy(got, ref, z, b, axis, keepdims, return_sign, dtype):
    eps = np.finfo(dtype).eps
    nd = len(np.broadcast_shapes(np.shape(z), np.shape(b)))
    cond = _cond(z, b, axis if axis is not None else tuple(range(nd)))
    if not keepdims:
        cond = np.squeeze(cond, axis=axis)
    if return_sign:
        (res, sgn), (rres, rsgn) = got, ref
    else:
        res, rres = got, ref
    # an ndarray, or a NumPy scalar, for both (scipy's dtype may be float64
    # where ours stays float32: integer b with float32 z)
    assert isinstance(res, np.ndarray) == isinstance(rres, np.ndarray)
    assert isinstance(res, np.generic) == isinstance(rres, np.generic)
    res, rres = np.asarray(res), np.asarray(rres)
    assert res.shape == rres.shape
    assert res.dtype == np.dtype(dtype)
    # scipy's own error is about m eps cond: compare within that, both ways
    with np.errstate(all="ignore"):
        tol = 64 * eps * (1 + np.where(np.isfinite(cond), cond, 0)) * (1 + np.abs(rres))
    fin = np.isfinite(rres)
    np.testing.assert_array_equal(np.isnan(res), np.isnan(rres))
    np.testing.assert_array_equal(res[~fin & ~np.isnan(rres)], rres[~fin & ~np.isnan(rres)])
    assert np.all(np.abs(res[fin] - rres[fin]) <= tol[fin]), (res, rres)
    if return_sign:
        sgn, rsgn = np.asarray(sgn), np.asarray(rsgn)
        assert sgn.dtype == res.dtype and sgn.shape == res.shape
        sure = np.broadcast_to(np.asarray(cond) < 1e6, rsgn.shape) | np.isnan(rsgn)
        np.testing.assert_array_equal(sgn[sure], rsgn[sure])


@pytest.mark.parametrize("b_shape", [(7,), (1, 7), (5, 1), (), (5, 7)])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_b_broadcasts_along_either_axis(b_shape, axis):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 7))
    b = rng.uniform(-1, 2, b_shape) if b_shape else 1.5
    for return_sign in (False, True):
        _assert_like_scipy(logsumexp(z, axis=axis, b=b, return_sign=return_sign),
                           _scipy(z, b, axis, return_sign=return_sign),
                           z, b, axis, False, return_sign, np.float64)


@pytest.mark.parametrize("axis", [-1, 0, (0, 2), (1, 2), None])
def test_three_d_and_b_broadcasting_z_up(axis):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3, 4, 5))
    for b in (rng.standard_normal((4, 1)), rng.uniform(0, 1, (3, 1, 5)),
              rng.standard_normal((2, 3, 4, 5))[:, :, :, ::-1]):
        for keepdims in (False, True):
            got = logsumexp(z, axis=axis, b=b, keepdims=keepdims, return_sign=True)
            ref = _scipy(z, b, axis, keepdims, True)
            _assert_like_scipy(got, ref, z, b, axis, keepdims, True, np.float64)
    # b larger than z: the result has the broadcast shape, as scipy's
    got = logsumexp(np.zeros(3), b=np.ones((2, 3)))
    np.testing.assert_allclose(got, [np.log(3)] * 2, rtol=1e-15)


@needs_modern_scipy
def test_scipy_examples_and_documented_values():
    a = np.arange(10)
    bb = np.arange(10, 0, -1)
    np.testing.assert_allclose(logsumexp(a, b=bb), np.log(np.sum(bb * np.exp(a))), rtol=1e-15)
    res, sign = logsumexp([1, 2], b=[1, -1], return_sign=True)
    assert (float(res), float(sign)) == (1.5413248546129181, -1.0)
    assert np.isnan(logsumexp([1, 2], b=[1, -1]))              # negative, no sign: NaN
    # relative exactness kept with b >= 0: log1p(e^-40), scipy gives the same
    assert logsumexp([0.0, -40.0], b=[1, 1]) == 4.248354255291589e-18
    assert logsumexp([0.0, -40.0], b=[1, 1]) == _scipy(np.array([0.0, -40.0]), [1, 1], None)
    # all-zero b and exact cancellation: -inf with sign 0, as scipy
    for b in ([0, 0], [1, -1]):
        res, sign = logsumexp([3.0, 3.0], b=b, return_sign=True)
        assert res == -inf and sign == 0
        assert _scipy(np.array([3.0, 3.0]), b, None, return_sign=True) == (-inf, 0)


def test_return_sign_without_b_and_dtypes():
    z = np.array([[0.0, 1.0], [-inf, -inf], [nan, 0.0], [inf, 0.0]])
    res, sign = logsumexp(z, return_sign=True)
    rres, rsign = _scipy(z, None, -1, return_sign=True)
    np.testing.assert_array_equal(res, rres)
    np.testing.assert_array_equal(sign, rsign)
    assert sign.dtype == np.float64
    r32, s32 = logsumexp(z.astype(np.float32), return_sign=True)
    assert r32.dtype == s32.dtype == np.float32
    # float32 stays float32 whatever b is (scipy would promote to float64)
    for b in ([1, -1], np.array([1.0, 2.0]), np.array([1, 2], np.int8)):
        assert logsumexp(np.zeros(2, np.float32), b=b).dtype == np.float32
    # scalars for a full reduction, like scipy's
    res, sign = logsumexp(np.zeros((2, 2)), axis=None, b=2.0, return_sign=True)
    assert isinstance(res, np.float64) and isinstance(sign, np.float64)
    np.testing.assert_allclose(res, np.log(8.0), rtol=1e-15)


def test_empty_slices():
    res, sign = logsumexp(np.zeros((3, 0)), b=np.zeros((3, 0)), return_sign=True)
    np.testing.assert_array_equal(res, [-inf] * 3)
    np.testing.assert_array_equal(sign, [0.0] * 3)       # (scipy: -1, the sign of -inf)
    res, sign = logsumexp(np.zeros((0, 4)), b=np.ones(4), return_sign=True)
    assert res.shape == sign.shape == (0,)
    res, sign = logsumexp(np.zeros((0, 4)), axis=None, b=np.ones(4), return_sign=True)
    assert res == -inf and sign == 0


# ---------------------------------------------------------- special values
SPECIAL_Z = [0.0, 1.5, -inf, inf, nan]
SPECIAL_B = [1.0, -1.0, 0.0, 0.5, nan, inf, -inf]


def _special_rows():
    rows_z, rows_b = [], []
    for z0 in SPECIAL_Z:
        for z1 in SPECIAL_Z:
            for b0 in SPECIAL_B:
                for b1 in [1.0, -1.0, 0.0, 2.0]:
                    rows_z.append([z0, z1, -1.0])
                    rows_b.append([b0, b1, 0.25])
                    rows_z.append([z0, z1])
                    rows_b.append([b0, b1])
    return rows_z, rows_b


def _scipy_without_zero_b(z, b):
    """scipy on the slice with its b == 0 entries removed (our documented rule)."""
    keep = b != 0
    if not keep.any():
        return -inf, 0.0
    res, sign = _scipy(z[keep], b[keep], None, return_sign=True)
    return float(res), float(sign)


@needs_modern_scipy
@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_follow_scipy(dtype):
    """NaN, +-inf in z and b: scipy's answers, on each row with the b == 0
    entries removed.  Where scipy's full-row answer differs, it is one of
    the documented deviations (a non-finite z under b == 0, a finite z
    whose exp overflows), listed here."""
    rows_z, rows_b = _special_rows()
    differ = 0
    for zr, br in zip(rows_z, rows_b):
        z, b = np.array(zr, dtype), np.array(br, dtype)
        res, sign = logsumexp(z, b=b, return_sign=True)
        want = _scipy_without_zero_b(z, b)
        assert res.dtype == dtype
        assert float(sign) == want[1] or np.isnan(sign) and np.isnan(want[1]), (zr, br)
        np.testing.assert_allclose(float(res), want[0], rtol=4 * np.finfo(dtype).eps,
                                   err_msg=f"{zr} {br}")   # (inf == inf, nan == nan)
        nosign = logsumexp(z, b=b)
        np.testing.assert_allclose(float(nosign), nan if want[1] < 0 else want[0],
                                   rtol=4 * np.finfo(dtype).eps)
        full = tuple(map(float, _scipy(z, b, None, return_sign=True)))
        if not np.allclose(full, want, rtol=4 * np.finfo(dtype).eps, equal_nan=True):
            differ += 1
            # scipy's fallback multiplies the b == 0 entries back in (0 * inf = NaN)
            assert np.isnan(full[0]) and not np.all(np.isfinite(z[b == 0])), (zr, br)
    assert differ > 0      # (the grid does reach the deviation)


@needs_modern_scipy
def test_documented_deviations_from_scipy():
    # b == 0 never contributes, even when the rest sums to 0 or infinity
    res, sign = logsumexp([inf, -inf], b=[0, 1], return_sign=True)
    assert res == -inf and sign == 0
    assert np.isnan(_scipy(np.array([inf, -inf]), [0, 1], None))
    assert logsumexp([nan, 1.0], b=[0, 0]) == -inf
    # a finite z is a finite term, even if exp(z) overflows: +inf dominates
    res, sign = logsumexp([inf, 1000.0], b=[1, -1], return_sign=True)
    assert res == inf and sign == 1
    # inf * exp(-inf) is NaN (as scipy)
    assert np.isnan(logsumexp([-inf, 0.0], b=[inf, 1]))


def test_extreme_b_do_not_overflow_or_lose_bits():
    mpmath.mp.dps = 50
    for bv in (1e308, 1e300, 1e-300, 1e-320, 5e-324):
        got = logsumexp([0.0, 0.0], b=[bv, bv])
        assert got == float(mpmath.log(2 * mpmath.mpf(bv))), bv
    # huge b with cancellation, and a b / z mix
    got = logsumexp([0.0, -1.0], b=[1e308, -1e308])
    want = mpmath.log(mpmath.mpf(1e308) * (1 - mpmath.exp(-1)))
    assert abs(got - float(want)) <= 4 * np.finfo(float).eps * abs(float(want))
    # float32: b at the ends of its range, computed in double
    got = logsumexp(np.zeros(2, np.float32), b=np.array([3e38, 3e38], np.float32))
    assert got.dtype == np.float32
    assert got == np.float32(mpmath.log(2 * mpmath.mpf(float(np.float32(3e38)))))


# ===========================================================================
# 2. against mpmath: rows built to cancel, with the stated bound


def _mp_lse_b(z, b):
    """(log|S|, sign, r, kappa) in mpmath from the exact float values."""
    zz = [mpmath.mpf(float(v)) for v in z]
    bb = [mpmath.mpf(float(v)) for v in b]
    act = [k for k in range(len(zz)) if bb[k] != 0]
    r = max(zz[k] for k in act)
    s = mpmath.fsum(bb[k] * mpmath.exp(zz[k] - r) for k in act)
    amp = mpmath.fsum(abs(bb[k]) * mpmath.exp(zz[k] - r) * (2 + abs(zz[k] - r))
                      for k in act if zz[k] != r and zz[k] != -mpmath.inf)
    if s == 0:
        return -mpmath.inf, 0, r, mpmath.inf
    return mpmath.log(abs(s)) + r, (1 if s > 0 else -1), r, amp / abs(s)


def _cancel_rows(dtype, rng):
    f = np.dtype(dtype).type
    rows = []
    for d in (1e-1, 1e-3, 1e-6, 2.0**-20, 2.0**-40):
        rows.append(([0.0, d], [1.0, -1.0]))                 # e^d - 1, sign -1
        rows.append(([5.0, 5.0 - d], [1.0, -1.0]))
        rows.append(([-3.0, -3.0 + d, -50.0], [-1.0, 1.0, 1e10]))
    rows.append(([0.0, 0.0], [1.0, -1.0 + 1e-9]))            # b nearly cancelling
    rows.append(([0.0, 0.0], [1.0, -(1.0 - 2.0**-20)]))
    rows.append(([0.0, 0.0, 0.0], [1.0, 1e-17, -1.0]))       # exact exps: only the sum's error
    rows.append(([0.0, 0.0, 0.0, 0.0], [1.0, 1e-30, -1.0, 3e-31]))
    rows.append(([1.0, 1.0, 1.0], [2.0**60, 1.0, -(2.0**60)]))
    rows.append(([0.0, -40.0], [1.0, 1.0]))                  # b >= 0: the tail below eps
    rows.append(([0.0, -30.0, -35.0, -inf], [2.0, 3.0, 1.0, 5.0]))
    rows.append(([100.0, 60.0], [1.0, 1.0]))
    # long rows: 1,000 terms of both signs, then one that cancels most of them
    for m in (40, 1000):
        z = rng.uniform(-5, 0, m)
        b = rng.standard_normal(m)
        z[0] = 0.0
        rows.append((list(z), list(b)))
        zt, bt = z.astype(dtype), b.astype(dtype)
        rest = mpmath.fsum(mpmath.mpf(float(bt[k])) * mpmath.exp(mpmath.mpf(float(zt[k])))
                           for k in range(1, m))
        b2 = list(bt)
        b2[0] = f(-float(rest) * (1 + 1e-4))                  # |S| ~ 1e-4 |rest|
        rows.append((list(zt), b2))
    return [(np.array(z, dtype), np.array(b, dtype)) for z, b in rows]


@pytest.mark.parametrize("dtype", DTYPES)
def test_cancelling_rows_within_the_stated_bound(dtype):
    mpmath.mp.dps = 50
    eps = np.finfo(dtype).eps
    rng = np.random.default_rng(7)
    checked = checked_out = 0
    for z, b in _cancel_rows(dtype, rng):
        res, sign = logsumexp(z, b=b, return_sign=True)
        exact, esign, r, kappa = _mp_lse_b(z, b)
        assert res.dtype == dtype
        rel = eps * float(kappa)           # bound on |S_computed - S| / |S|
        if rel >= 0.5:
            # beyond what the data lets any double-precision exp resolve (the
            # computed sum may even be 0): no claim but a sane answer
            assert sign in (-1, 0, 1) and not np.isnan(res)
            checked_out += 1
            continue
        tol = -np.log1p(-rel) + 2 * eps * (abs(float(r)) + abs(float(exact - r)))
        err = abs(mpmath.mpf(float(res)) - exact)
        assert err <= tol, (z[:4], b[:4], res, exact, tol)
        assert sign == esign
        checked += 1
    assert checked >= 20 and checked_out <= 3


def test_compensated_sum_is_needed():
    """The bound is tight where the exps are exact: nothing but log(1e-17)
    passes for [1, 1e-17, -1] at equal z (a plain double sum gives log 0)."""
    got = logsumexp([0.0, 0.0, 0.0], b=[1.0, 1e-17, -1.0])
    assert got == np.log(1e-17)
    got = logsumexp([2.0, 2.0, 2.0, 2.0], b=[1.0, 1e-30, -1.0, 3e-31])
    np.testing.assert_allclose(got, 2.0 + np.log(1.3e-30), rtol=2e-16)


# ===========================================================================
# 3. the mask parameter (``where=`` once the lead wires it)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", ["full", "row", "column"])
@pytest.mark.parametrize("with_b", [True, False])
def test_mask_is_never_read(dtype, mask_shape, with_b):
    rng = np.random.default_rng(11)
    n, m = 6, 9
    z = rng.standard_normal((n, m)).astype(dtype)
    b = rng.uniform(-1, 2, (n, m)).astype(dtype)
    shape = {"full": (n, m), "row": (m,), "column": (n, 1)}[mask_shape]
    mask = rng.random(shape) < 0.6
    if mask_shape == "full":
        mask[2] = False                           # an all-masked row
    full = np.broadcast_to(mask, (n, m))
    # garbage where masked out: never read
    zg = np.where(full, z, nan).astype(dtype)
    zg[~full & (rng.random((n, m)) < 0.5)] = inf
    bg = np.where(full, b, nan).astype(dtype)
    bb = bg if with_b else None
    for mk in (mask, mask.astype(np.uint8)):
        res, sign = _api._logsumexp(zg, -1, bb, mk, False, True)
        ref_b = np.where(full, b if with_b else 1.0, 0.0)
        rres, rsign = _scipy(np.where(full, z, 0.0), ref_b, -1, return_sign=True)
        assert res.dtype == sign.dtype == dtype
        np.testing.assert_allclose(res, rres.astype(dtype), rtol=64 * np.finfo(dtype).eps,
                                   atol=64 * np.finfo(dtype).eps)
        np.testing.assert_array_equal(sign, rsign)
    if mask_shape == "full":
        assert res[2] == -inf and sign[2] == 0
    # with axis=0 too (the mask goes through the same layout as b)
    res = _api._logsumexp(zg, 0, bb, mask, True, False)
    ref_b = np.where(full, b if with_b else 1.0, 0.0)
    with np.errstate(all="ignore"):
        rres = _scipy(np.where(full, z, 0.0), ref_b, 0, keepdims=True)
    np.testing.assert_allclose(res, rres, rtol=64 * np.finfo(dtype).eps,
                               atol=64 * np.finfo(dtype).eps)


def test_operand_layout_no_copies():
    """A C-contiguous b of z's shape reaches the kernel as is; class
    weights of shape (m,) as one row (row stride 0), not n copies."""
    seen = {}
    real = _softmax.logsumexp_b_rows

    def spy(z2, b2, mask2, out, sign):
        seen["b2"] = b2
        real(z2, b2, mask2, out, sign)

    z = np.random.default_rng(0).standard_normal((50, 8))
    b = np.ones((50, 8))
    try:
        _softmax.logsumexp_b_rows = spy
        logsumexp(z, b=b)
        assert np.shares_memory(seen["b2"], b)
        logsumexp(z, b=np.arange(8.0))
        assert seen["b2"].shape == (1, 8)
        logsumexp(z, axis=0, b=np.arange(50.0)[:, None])
        assert seen["b2"].shape == (1, 50)
        logsumexp(z, axis=0, b=np.arange(8.0))
        assert seen["b2"].shape == (8, 50)
    finally:
        _softmax.logsumexp_b_rows = real


# ===========================================================================
# 4. backward functions


def _np_softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(z, axis):
    s = z - z.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _central_fd(f, z, g, h=1e-6):
    """d/dz of sum(g * f(z)), entry by entry."""
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        out[idx] = (np.sum(g * f(zp)) - np.sum(g * f(zm))) / (2 * h)
    return out


@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None])
def test_backward_matches_finite_differences(axis):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 4, 5))
    g = rng.standard_normal(z.shape)
    ax = tuple(range(3)) if axis is None else axis
    p = _np_softmax(z, ax)
    lp = _np_log_softmax(z, ax)
    fd = _central_fd(lambda x: _np_softmax(x, ax), z, g)
    np.testing.assert_allclose(softmax_backward(g, p, axis), fd, atol=1e-8, rtol=1e-7)
    fd = _central_fd(lambda x: _np_log_softmax(x, ax), z, g)
    np.testing.assert_allclose(log_softmax_backward(g, lp, axis), fd, atol=1e-8, rtol=1e-7)


def _torch_vjp(torch, fn, z, g, axis):
    """torch.autograd.grad of fn(z) over `axis` (moved last and flattened)."""
    nd = z.ndim
    axes = tuple(range(nd)) if axis is None else tuple(
        sorted(a % nd for a in (axis if isinstance(axis, tuple) else (axis,))))
    rest = [i for i in range(nd) if i not in axes]
    perm = rest + list(axes)
    moved = z.transpose(perm)
    shape = moved.shape
    flat = np.ascontiguousarray(moved).reshape(int(np.prod(shape[:len(rest)])), -1)
    gflat = np.ascontiguousarray(g.transpose(perm)).reshape(flat.shape)
    zt = torch.from_numpy(flat).requires_grad_(True)
    y = fn(zt, dim=-1)
    (dz,) = torch.autograd.grad(y, zt, grad_outputs=torch.from_numpy(gflat))
    back = np.argsort(perm)
    return (y.detach().numpy().reshape(shape).transpose(back),
            dz.numpy().reshape(shape).transpose(back))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((64, 10), -1), ((8, 300), -1), ((7, 33), 0),
                                        ((3, 4, 5), (0, 2)), ((4, 6), None), ((5, 1), -1)])
def test_backward_matches_torch_autograd(dtype, shape, axis):
    torch = _requires.import_module("torch", "torch")
    rng = np.random.default_rng(hash(shape) % 2**32)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    scale = np.abs(g).max() + 1
    for ours, fn in ((softmax_backward, torch.softmax),
                     (log_softmax_backward, torch.log_softmax)):
        y, want = _torch_vjp(torch, fn, z, g, axis)
        got = ours(g, y, axis)
        assert got.dtype == dtype and got.shape == shape
        if dtype == np.float64:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


def test_backward_special_values():
    # a masked class (log-prob -inf) gets exactly g, even when sum(g) is inf
    g = np.array([[1.0, inf, 3.0], [-0.0, 2.0, 1.0]])
    lp = np.array([[-inf, 0.0, -inf], [-inf, np.log(0.5), np.log(0.5)]])
    out = log_softmax_backward(g, lp)
    assert out[0, 0] == 1.0 and out[0, 2] == 3.0 and np.isnan(out[0, 1])
    assert out[1, 0] == 0.0 and np.signbit(out[1, 0])      # -0.0 kept
    np.testing.assert_allclose(out[1, 1:], [0.5, -0.5], rtol=1e-15)
    # probability 0 gets exactly 0; a NaN in g makes its row NaN
    p = np.array([[0.0, 1.0], [0.25, 0.75]])
    out = softmax_backward(np.array([[5.0, 1.0], [nan, 0.0]]), p)
    assert out[0, 0] == 0.0 and out[0, 1] == 0.0
    assert np.isnan(out[1]).all()
    # a constant g has no gradient through either (sum p = 1)
    np.testing.assert_allclose(softmax_backward(np.full((2, 3), 7.0), _np_softmax(
        np.arange(6.0).reshape(2, 3), -1)), 0.0, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_out_and_aliasing(dtype):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((6, 40)).astype(dtype)
    g = rng.standard_normal(z.shape).astype(dtype)
    p = _np_softmax(z.astype(np.float64), -1).astype(dtype)
    lp = _np_log_softmax(z.astype(np.float64), -1).astype(dtype)
    for fn, y in ((softmax_backward, p), (log_softmax_backward, lp)):
        want = fn(g, y)
        out = np.empty_like(g)
        assert fn(g, y, out=out) is out
        np.testing.assert_array_equal(out, want)
        g2 = g.copy()
        assert fn(g2, y, out=g2) is g2                     # in place on grad_output
        np.testing.assert_array_equal(g2, want)
        y2 = y.copy()
        assert fn(g, y2, out=y2) is y2                     # in place on probs / log_probs
        np.testing.assert_array_equal(y2, want)
        # another axis (the transposing path) into out, and in place
        want0 = fn(g, y, axis=0)
        np.testing.assert_array_equal(want0.T, fn(g.T.copy(), y.T.copy()))
        out = np.empty_like(g)
        assert fn(g, y, axis=0, out=out) is out
        np.testing.assert_array_equal(out, want0)
        g2 = g.copy()
        fn(g2, y, axis=0, out=g2)
        np.testing.assert_array_equal(g2, want0)
        # inputs in any layout, integer inputs computed in float64
        np.testing.assert_array_equal(fn(np.asfortranarray(g), y[:, ::-1][:, ::-1]), want)
        assert fn(np.ones((2, 3), int), np.zeros((2, 3))).dtype == np.float64


def test_backward_unaligned_out():
    g = np.random.default_rng(1).standard_normal((4, 5))
    p = _np_softmax(g, -1)
    buf = np.zeros(4 * 5 * 8 + 1, np.uint8)
    out = buf[1:].view(np.float64).reshape(4, 5)
    assert not out.flags.aligned
    softmax_backward(g, p, out=out)
    np.testing.assert_array_equal(out, softmax_backward(g, p))


# ===========================================================================
# 5. SIMD variants and threads

_VARIANT_CODE = textwrap.dedent("""
    import numpy as np, cysoftmax as cs
    from cysoftmax import _softmax
    rng = np.random.default_rng(2)
    res = []
    for m in (3, 17, 100):
        z = rng.standard_normal((9, m)) * 5
        z[0, 0] = -np.inf
        b = rng.standard_normal((9, m))
        b[1] = 0
        res += list(cs.logsumexp(z, b=b, return_sign=True))
        mask = rng.random((9, m)) < 0.7
        res.append(cs._api._logsumexp(z, -1, b, mask, False, False))
        g = rng.standard_normal((9, m))
        res.append(cs.softmax_backward(g, cs.softmax(z)))
        res.append(cs.log_softmax_backward(g, cs.log_softmax(z)))
        z32 = z.astype(np.float32)
        res.append(cs.logsumexp(z32, b=b.astype(np.float32)))
        res.append(cs.log_softmax_backward(g.astype(np.float32), cs.log_softmax(z32)))
    np.save(__import__("sys").argv[1], np.concatenate([np.ravel(r).astype(np.float64) for r in res]))
    print(_softmax.simd_active())
""")


@pytest.mark.parametrize("variant", _softmax.simd_supported())
def test_every_simd_variant_agrees(variant, tmp_path):
    env = dict(os.environ, CYSOFTMAX_SIMD=variant)
    outs = []
    for v in ("baseline", variant):
        f = tmp_path / f"{v}.npy"
        r = subprocess.run([sys.executable, "-c", _VARIANT_CODE, str(f)], capture_output=True,
                           text=True, timeout=300, env=dict(env, CYSOFTMAX_SIMD=v))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == v
        outs.append(np.load(f))
    # FMA contraction differs between variants in the last bits only
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(outs[1]), np.isnan(outs[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_threaded_calls_equal_row_by_row(dtype):
    """Above CS_PAR_MIN elements the rows are cut into one chunk per thread
    (b with its row stride, or shared with stride 0; mask; sign)."""
    rng = np.random.default_rng(9)
    n, m = 1200, 40                                   # 48,000 > CS_PAR_MIN
    z = rng.standard_normal((n, m)).astype(dtype)
    b = rng.standard_normal((n, m)).astype(dtype)
    w = rng.standard_normal(m).astype(dtype)
    mask = rng.random((n, m)) < 0.8
    g = rng.standard_normal((n, m)).astype(dtype)
    y = rng.uniform(0, 1, (n, m)).astype(dtype)
    calls = [
        lambda s: logsumexp(z[s], b=b[s], return_sign=True),
        lambda s: logsumexp(z[s], b=w, return_sign=True),
        lambda s: _api._logsumexp(z[s], -1, b[s], mask[s], False, True),
        lambda s: (softmax_backward(g[s], y[s]),),
        lambda s: (log_softmax_backward(g[s], np.log(y[s])),),
    ]
    for call in calls:
        for threads in (2, 3):
            if not _softmax.openmp_enabled():
                _requires.missing("openmp", "cysoftmax was built without OpenMP")
            with threadpool_limits(limits=threads, user_api="openmp"):
                whole = call(slice(None))
                assert _softmax.last_team_size() == threads
            for k in range(len(whole)):
                parts = np.concatenate([call(slice(i, i + 100))[k] for i in range(0, n, 100)])
                assert _softmax.last_team_size() == 1
                np.testing.assert_array_equal(whole[k], parts)


def test_contiguous_inputs_are_not_copied_and_the_gil_is_released():
    """README's claims (tests/test_claims.py's measures) for the new calls:
    no copy of a C-contiguous z, b, grad_output, probs; the GIL released
    while the kernel runs."""
    from test_claims import _check_the_measure, _longest_pause_during, _peak_during
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2000, 1000))                          # 16 MB
    b = rng.standard_normal(z.shape)
    out = np.empty_like(z)
    calls = {
        "logsumexp(b=full)": lambda: logsumexp(z, b=b, return_sign=True),
        "logsumexp(b=row)": lambda: logsumexp(z, b=b[0]),
        "softmax_backward(out=)": lambda: softmax_backward(z, b, out=out),
        "log_softmax_backward(out=)": lambda: log_softmax_backward(z, b, out=out),
    }
    for name, call in calls.items():
        call()
        peak = _peak_during(call)
        assert peak < z.nbytes / 20, f"{name}: {peak} bytes allocated for a {z.nbytes}-byte input"
    assert _peak_during(lambda: logsumexp(z, b=np.asfortranarray(b))) >= z.nbytes  # (it sees copies)

    _check_the_measure()
    zb = rng.standard_normal((3000, 25_000)).astype(np.float32)    # 300 MB
    outb = np.empty_like(zb)
    w = zb[0].copy()
    # three calls each, so that the measure is long enough to tell on a
    # quiet machine too (one softmax_backward call measured 0.038 s there)
    long_calls = {
        "logsumexp(b=)": lambda: [logsumexp(zb, b=w) for _ in range(3)],
        "softmax_backward": lambda: [softmax_backward(zb, zb, out=outb) for _ in range(3)],
        "log_softmax_backward": lambda: [log_softmax_backward(zb, zb, out=outb)
                                         for _ in range(3)],
    }
    with threadpool_limits(limits=1, user_api="openmp"):
        for name, call in long_calls.items():
            pause, seconds = _longest_pause_during(call)
            assert seconds > 0.04, f"{name}: {seconds:.3f} s is too short to tell"
            assert pause < 0.5 * seconds, (name, pause, seconds)


# ===========================================================================
# 6. bad input: every new argument, each its own test

class _Broken:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("cannot be converted")


Z = np.zeros((3, 4))

BAD_LSE = {
    "b-complex": (dict(b=np.ones((3, 4), complex)), TypeError, r"\bb\b"),
    "b-string": (dict(b=np.array([["x"] * 4] * 3)), TypeError, r"\bb\b"),
    "b-object": (dict(b=np.array([[None] * 4] * 3, dtype=object)), TypeError, r"\bb\b"),
    "b-bool": (dict(b=np.ones((3, 4), bool)), TypeError, r"\bb\b"),
    "b-ragged": (dict(b=[[1.0, 2.0], [1.0]]), TypeError, r"\bb\b"),
    "b-broken-array-like": (dict(b=_Broken()), TypeError, r"\bb\b"),
    "b-datetime": (dict(b=np.zeros((3, 4), "M8[s]")), TypeError, r"\bb\b"),
    "b-shape": (dict(b=np.ones(3)), ValueError, r"\bb\b.*broadcast"),
    "b-shape-2d": (dict(b=np.ones((2, 4))), ValueError, r"\bb\b"),
    "b-shape-too-big": (dict(b=np.ones((2, 2, 4))), ValueError, r"\bb\b"),
    "return_sign-int": (dict(return_sign=1), TypeError, r"\breturn_sign\b"),
    "return_sign-str": (dict(return_sign="yes"), TypeError, r"\breturn_sign\b"),
    "return_sign-none": (dict(return_sign=None), TypeError, r"\breturn_sign\b"),
    "return_sign-array": (dict(return_sign=np.array([True])), TypeError, r"\breturn_sign\b"),
    "z-complex-with-b": (dict(z=np.ones((3, 4), complex), b=np.ones(4)), TypeError, r"\bz\b"),
    "axis-out-of-bounds-with-b": (dict(axis=2, b=np.ones(4)), ValueError, r"\baxis\b"),
    "axis-beyond-z-but-within-broadcast": None,   # (valid: see the test below)
}


@pytest.mark.parametrize("case", [k for k, v in BAD_LSE.items() if v is not None])
def test_logsumexp_bad_input(case):
    kwargs, exc, pattern = BAD_LSE[case]
    kwargs = dict(kwargs)
    z = kwargs.pop("z", Z)
    with pytest.raises(exc, match=pattern):
        logsumexp(z, **kwargs)


def test_logsumexp_axis_counts_the_broadcast_dims():
    # b broadcasts z up to 3-D: axis 2 exists (as in scipy)
    got = logsumexp(Z, axis=2, b=np.ones((2, 3, 4)))
    np.testing.assert_allclose(got, np.full((2, 3), np.log(4)), rtol=1e-15)


@pytest.mark.parametrize("case", ["nan", "inf", "-inf", "huge", "subnormal", "negative-zero"])
def test_logsumexp_hostile_b_values_do_not_crash(case):
    v = {"nan": nan, "inf": inf, "-inf": -inf, "huge": 1.7e308, "subnormal": 5e-324,
         "negative-zero": -0.0}[case]
    b = np.ones((3, 4))
    b[1, 2] = v
    res, sign = logsumexp(np.arange(12.0).reshape(3, 4), b=b, return_sign=True)
    assert res.shape == sign.shape == (3,)
    np.testing.assert_allclose(res[[0, 2]], sps.logsumexp(np.arange(12.0).reshape(3, 4),
                                                          axis=-1)[[0, 2]], rtol=1e-15)


BAD_MASK = {
    "mask-float": (np.ones((3, 4)), TypeError, r"\bmask\b"),
    "mask-int64": (np.ones((3, 4), np.int64), TypeError, r"\bmask\b"),
    "mask-shape": (np.ones((2, 4), bool), ValueError, r"\bmask\b"),
    "mask-shape-bigger": (np.ones((2, 3, 4), bool), ValueError, r"\bmask\b"),
}


@pytest.mark.parametrize("case", list(BAD_MASK))
def test_mask_bad_input(case):
    mask, exc, pattern = BAD_MASK[case]
    with pytest.raises(exc, match=pattern):
        _api._logsumexp(Z, -1, np.ones(4), mask, False, False)


@pytest.mark.parametrize("case", ["b-rows", "b-cols", "mask-rows", "out-len", "sign-len"])
def test_kernel_entry_refuses_wrong_shapes(case):
    """The compiled entry checks the operand shapes itself: a wrong one would
    be an out-of-bounds read, not a wrong answer."""
    z = np.zeros((4, 5))
    args = dict(b=np.ones((4, 5)), mask=None, out=np.empty(4), sign=np.empty(4))
    args.update({"b-rows": dict(b=np.ones((3, 5))), "b-cols": dict(b=np.ones((4, 4))),
                 "mask-rows": dict(mask=np.ones((2, 5), np.uint8)),
                 "out-len": dict(out=np.empty(3)), "sign-len": dict(sign=np.empty(2))}[case])
    with pytest.raises(ValueError):
        _softmax.logsumexp_b_rows(z, args["b"], args["mask"], args["out"], args["sign"])


BACKWARD = {"softmax_backward": (softmax_backward, "probs"),
            "log_softmax_backward": (log_softmax_backward, "log_probs")}
G = np.zeros((3, 4))


def _read_only(shape):
    a = np.zeros(shape)
    a.setflags(write=False)
    return a


def _overlapping():
    buf = np.zeros(20)
    return dict(g=buf[:12].reshape(3, 4), out=buf[4:16].reshape(3, 4))


def _bad_backward_cases(y_name):
    """case: (kwargs factory, exception, message pattern); g / y default to zeros (3, 4)"""
    yb = rf"\b{y_name}\b"
    return {
        "grad_output-complex": (lambda: dict(g=np.ones((3, 4), complex)), TypeError,
                                r"\bgrad_output\b"),
        "grad_output-string": (lambda: dict(g=np.array([["a"] * 4] * 3)), TypeError,
                               r"\bgrad_output\b"),
        "grad_output-bool": (lambda: dict(g=np.ones((3, 4), bool)), TypeError,
                             r"\bgrad_output\b"),
        "grad_output-ragged": (lambda: dict(g=[[1.0], [1.0, 2.0]]), TypeError,
                               r"\bgrad_output\b"),
        "grad_output-broken": (lambda: dict(g=_Broken()), TypeError, r"\bgrad_output\b"),
        "y-complex": (lambda: dict(y=np.ones((3, 4), complex)), TypeError, yb),
        "y-object": (lambda: dict(y=np.array([[None] * 4] * 3)), TypeError, yb),
        "y-dtype-mismatch": (lambda: dict(y=np.zeros((3, 4), np.float32)), TypeError,
                             yb + r".*float32.*grad_output"),
        "y-dtype-mismatch-f32-g": (lambda: dict(g=np.zeros((3, 4), np.float32)), TypeError, yb),
        "y-shape": (lambda: dict(y=np.zeros((4, 3))), ValueError, yb + r".*shape"),
        "y-broadcastable-shape": (lambda: dict(y=np.zeros(4)), ValueError, yb),
        "axis-out-of-bounds": (lambda: dict(axis=2), ValueError, r"\baxis\b"),
        "axis-float": (lambda: dict(axis=1.0), TypeError, r"\baxis\b"),
        "axis-repeated": (lambda: dict(axis=(1, -1)), ValueError, r"\baxis\b"),
        "out-shape": (lambda: dict(out=np.empty((4, 3))), ValueError, r"\bout\b"),
        "out-dtype": (lambda: dict(out=np.empty((3, 4), np.float32)), ValueError, r"\bout\b"),
        "out-list": (lambda: dict(out=[[0.0] * 4] * 3), TypeError, r"\bout\b"),
        "out-fortran": (lambda: dict(out=np.empty((3, 4), order="F")), ValueError, r"\bout\b"),
        "out-read-only": (lambda: dict(out=_read_only((3, 4))), ValueError,
                          r"\bout\b.*read-only"),
        "out-overlap": (_overlapping, ValueError, r"\bout\b.*overlap"),
    }


@pytest.mark.parametrize("func", list(BACKWARD))
@pytest.mark.parametrize("case", list(_bad_backward_cases("y")))
def test_backward_bad_input(func, case):
    fn, y_name = BACKWARD[func]
    make, exc, pattern = _bad_backward_cases(y_name)[case]
    kwargs = make()
    g, y = kwargs.pop("g", G), kwargs.pop("y", np.zeros((3, 4)))
    with pytest.raises(exc, match=pattern):
        fn(g, y, **kwargs)


@pytest.mark.parametrize("func", list(BACKWARD))
def test_backward_empty_and_zero_d(func):
    fn, _ = BACKWARD[func]
    assert fn(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 4)
    assert fn(np.zeros((3, 0)), np.zeros((3, 0))).shape == (3, 0)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        fn(np.float64(1.0), np.float64(1.0))


def test_public_names():
    for name in ("softmax_backward", "log_softmax_backward"):
        assert name in cysoftmax.__all__ and getattr(cysoftmax, name).__doc__
