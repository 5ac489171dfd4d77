"""Mathematical properties of the kernel functions, on hypothesis-generated inputs.

Tolerances are in eps = np.finfo(dtype).eps of the computing dtype; each
test says where its constant comes from.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cysoftmax import (
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)

SETTINGS = settings(max_examples=100, deadline=None, database=None)
FD_SETTINGS = settings(max_examples=40, deadline=None, database=None)

dtypes = st.sampled_from([np.float32, np.float64])
reductions = st.sampled_from(["mean", "sum", "none"])


@st.composite
def logits(draw, dtype=None, max_n=6, max_m=24, bound=1e4):
    """Finite (n, m) logits of a float dtype, n, m >= 1, |z| <= bound (None: any finite)."""
    dtype = dtype or draw(dtypes)
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_m))
    width = 32 if dtype is np.float32 else 64
    lo, hi = (None, None) if bound is None else (-bound, bound)
    elements = st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False)
    return draw(arrays(dtype, (n, m), elements=elements))


@st.composite
def logits_and_labels(draw, dtype=None, **kw):
    z = draw(logits(dtype, **kw))
    n, m = z.shape
    y = np.array(draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)), dtype=np.int64)
    return z, y


def eps_of(a):
    return float(np.finfo(a.dtype).eps)


# ------------------------------------------------------------ shift invariance

@st.composite
def exactly_shiftable(draw):
    """(z, c) on a dyadic grid such that z + c[:, None] is exact in z's dtype.

    z = k 2^s and c = j 2^s with integers |k|, |j| < 2^B, B = 20 (float32) or
    40 (float64): every sum is an integer below 2^(B+1) times 2^s, which the
    significand (24 / 53 bits) holds exactly.  The shifted row is then the
    same row, mathematically, and the constant is never large enough to
    swamp it.
    """
    dtype = draw(dtypes)
    bits = 20 if dtype is np.float32 else 40
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 20))
    s = draw(st.integers(-30, 10))
    k = draw(arrays(np.int64, (n, m), elements=st.integers(-(2**bits) + 1, 2**bits - 1)))
    j = draw(arrays(np.int64, (n,), elements=st.integers(-(2**bits) + 1, 2**bits - 1)))
    z = np.ldexp(k.astype(np.float64), s).astype(dtype)
    c = np.ldexp(j.astype(np.float64), s).astype(dtype)
    return z, c


@SETTINGS
@given(exactly_shiftable())
def test_shift_invariance(zc):
    """softmax(z + c) == softmax(z) and log_softmax(z + c) == log_softmax(z), c per row.

    With an exact shift every shifted logit z_j - max z is the same float,
    so a kernel that shifts by the row max sees identical exponents.  We
    allow 4 eps (relative for softmax, times max(1, |value|) for log_softmax)
    for kernels that order their sums differently, and 4 * tiny absolute for
    probabilities in the subnormal range.
    """
    z, c = zc
    shifted = z + c[:, None]
    # the shift really is exact
    assert np.array_equal(shifted.astype(np.float64) - c.astype(np.float64)[:, None],
                          z.astype(np.float64))
    eps, tiny = eps_of(z), float(np.finfo(z.dtype).tiny)
    p0, p1 = softmax(z), softmax(shifted)
    np.testing.assert_allclose(p1, p0, rtol=4 * eps, atol=4 * tiny)
    l0, l1 = log_softmax(z), log_softmax(shifted)
    assert np.all(np.abs(l1.astype(np.float64) - l0) <= 4 * eps * np.maximum(1, np.abs(l0)))
    # logsumexp moves by exactly c (up to rounding of the result)
    s0, s1 = logsumexp(z).astype(np.float64), logsumexp(shifted).astype(np.float64)
    expect = s0 + c
    assert np.all(np.abs(s1 - expect)
                  <= 4 * eps * np.maximum(1, np.abs(s0) + np.abs(c.astype(np.float64))))


# ------------------------------------------------------------ normalisation

@SETTINGS
@given(logits(bound=None))
def test_rows_sum_to_one(z):
    """|sum_j p_j - 1| <= (m + 4) eps.

    Each p_j is off by at most ~(3 + |z_j - max z| / 2) eps relative (exp 1.5
    ulp, two roundings for the scaling, the rounding of the shifted logit),
    and the row sum s by (m - 1) eps / 2 when accumulated in float64;
    sum_j p_j |z_j - max z| <= 1/e.  That is about (m/2 + 4) eps; we allow
    twice the m term.  The check sums the outputs exactly (math.fsum).
    """
    p = softmax(z)
    assert p.dtype == z.dtype
    assert np.all(p >= 0) and np.all(p <= 1)
    m = z.shape[1]
    tol = (m + 4) * eps_of(z)
    for row in p.astype(np.float64):
        assert abs(math.fsum(row) - 1.0) <= tol, (row, math.fsum(row) - 1)


@SETTINGS
@given(logits(bound=None))
def test_exp_of_log_softmax_is_softmax(z):
    """exp(log_softmax(z)) == softmax(z) within (16 + 2 |log p|) eps relative, 4 tiny absolute.

    log_softmax is accurate to a few eps * max(1, |log p|) absolutely, which
    exp turns into the same relative error; softmax adds (3 + |z_j - max
    z|) eps with |z_j - max z| <= |log p_j|.  The absolute 4 * tiny covers
    probabilities in the subnormal range.
    """
    p = softmax(z).astype(np.float64)
    lp = log_softmax(z).astype(np.float64)
    assert np.all(lp <= 0)
    eps, tiny = eps_of(z), float(np.finfo(z.dtype).tiny)
    # a log-probability of -inf (its true value is beyond the range) means p == 0
    assert np.all(p[np.isneginf(lp)] == 0)
    fin = np.isfinite(lp)
    lp, p = lp[fin], p[fin]
    e = np.exp(lp)
    tol = 16 * eps * p + 2 * eps * np.abs(lp) * p + 4 * tiny
    assert np.all(np.abs(e - p) <= tol), np.max(np.abs(e - p) - tol)


@SETTINGS
@given(logits_and_labels(bound=None))
def test_local_gradient_rows_sum_to_zero(zy):
    """sum_j (p_j - [j == y]) = sum_j p_j - 1: the same (m + 4) eps as the sum of softmax."""
    z, y = zy
    g = local_gradient(z, y)
    assert g.dtype == z.dtype and g.shape == z.shape
    m = z.shape[1]
    tol = (m + 4) * eps_of(z)
    for row, yi in zip(g.astype(np.float64), y):
        assert abs(math.fsum(row)) <= tol
        assert row[yi] <= 0
        assert np.all(np.delete(row, yi) >= 0)


# ------------------------------------------------------------ loss and gradient

@st.composite
def fd_case(draw):
    """float64 logits on a 2^-30 grid in [-8, 8] (so z +- 2h is exact), labels, weights."""
    n = draw(st.integers(1, 4))
    m = draw(st.integers(1, 5))
    z = draw(arrays(np.float64, (n, m), elements=st.floats(-8, 8)))
    z = np.ldexp(np.round(np.ldexp(z, 30)), -30)
    y = np.array(draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)), dtype=np.int64)
    w = draw(arrays(np.float64, (n,), elements=st.floats(0, 4)))
    return z, y, w


def central_difference(f, z, h=2.0**-10):
    """Five-point central difference (error O(h^4)) of a scalar function of z."""
    g = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        vals = []
        for k in (-2, -1, 1, 2):
            zp = z.copy()
            zp[idx] += k * h          # exact on the 2^-30 grid
            vals.append(f(zp))
        g[idx] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return g


def _check_gradient(zyw, reduction, weighted):
    z, y, w = zyw
    if not weighted:
        w = None
    elif reduction == "mean" and not w.any():
        w = w.copy()
        w[0] = 1.0

    if reduction == "none":
        # the gradient of sum_i loss_i: row i's is d(w_i C_i) / dz_i
        def f(zp):
            return math.fsum(nll_loss(zp, y, sample_weight=w, reduction="none"))
    else:
        def f(zp):
            return nll_loss(zp, y, sample_weight=w, reduction=reduction)

    loss, grad = nll_loss_and_gradient(z, y, sample_weight=w, reduction=reduction)
    assert grad.shape == z.shape and grad.dtype == np.float64
    fd = central_difference(f, z)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


@FD_SETTINGS
@given(fd_case())
def test_gradient_matches_finite_differences_mean(zyw):
    _check_gradient(zyw, "mean", weighted=False)


@FD_SETTINGS
@given(fd_case())
def test_gradient_matches_finite_differences_mean_weighted(zyw):
    _check_gradient(zyw, "mean", weighted=True)


@FD_SETTINGS
@given(fd_case())
def test_gradient_matches_finite_differences_sum(zyw):
    _check_gradient(zyw, "sum", weighted=False)


@FD_SETTINGS
@given(fd_case())
def test_gradient_matches_finite_differences_sum_weighted(zyw):
    _check_gradient(zyw, "sum", weighted=True)


@FD_SETTINGS
@given(fd_case())
def test_gradient_matches_finite_differences_none(zyw):
    _check_gradient(zyw, "none", weighted=False)


@FD_SETTINGS
@given(fd_case())
def test_gradient_matches_finite_differences_none_weighted(zyw):
    _check_gradient(zyw, "none", weighted=True)


@SETTINGS
@given(logits_and_labels(bound=1e3), reductions, st.booleans(), st.data())
def test_loss_and_gradient_loss_equals_nll_loss(zy, reduction, weighted, data):
    """The loss from the fused call is nll_loss's, to 4 eps * max(1, |loss|)."""
    z, y = zy
    w = None
    if weighted:
        w = data.draw(arrays(np.float64, (z.shape[0],), elements=st.floats(0, 10)))
        if reduction == "mean" and not w.any():
            w[0] = 1.0
    loss, grad = nll_loss_and_gradient(z, y, sample_weight=w, reduction=reduction)
    ref = nll_loss(z, y, sample_weight=w, reduction=reduction)
    eps = eps_of(z)
    if reduction == "none":
        assert loss.dtype == z.dtype and loss.shape == (z.shape[0],)
        np.testing.assert_allclose(loss, ref, rtol=4 * eps, atol=4 * eps)
    else:
        assert isinstance(loss, float)
        assert abs(loss - ref) <= 4 * eps * max(1.0, abs(ref))
    assert np.all(np.isfinite(grad))


@SETTINGS
@given(logits_and_labels(bound=1e3))
def test_local_gradient_is_softmax_minus_onehot(zy):
    """local_gradient == softmax - onehot, and == the 'none'/unweighted gradient."""
    z, y = zy
    g = local_gradient(z, y)
    p = softmax(z).astype(np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1
    eps = eps_of(z)
    np.testing.assert_allclose(g, p - onehot, rtol=8 * eps, atol=8 * eps)
    _, g2 = nll_loss_and_gradient(z, y, reduction="none")
    np.testing.assert_allclose(g2, g, rtol=4 * eps, atol=4 * eps)
    _, g3 = nll_loss_and_gradient(z, y, reduction="mean")
    np.testing.assert_allclose(g3, g / len(y), rtol=4 * eps, atol=4 * eps)


@SETTINGS
@given(logits_and_labels(bound=1e3), st.sampled_from(["mean", "sum", "none"]))
def test_unit_weights_give_the_same_gradient_bits(zy, reduction):
    """sample_weight = 1 everywhere is no weighting: the gradient is bit-identical.

    (The Classifier relies on it: fit(X, y, sample_weight=ones) must train
    the same model as fit(X, y).)  The loss may differ in the last bits: the
    unweighted small-class path sums the logs of a block at once.
    """
    z, y = zy
    _, g = nll_loss_and_gradient(z, y, reduction=reduction)
    _, gw = nll_loss_and_gradient(z, y, sample_weight=np.ones(len(y)), reduction=reduction)
    np.testing.assert_array_equal(g, gw)


@pytest.mark.parametrize("m", [10, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_weights_keep_the_gradient_finite(m, dtype):
    """w_i gmul > 1: the scale is kept in double (no float overflow, no 0 * inf)."""
    rng = np.random.default_rng(m)
    z = rng.standard_normal((40, m)).astype(dtype)
    y = rng.integers(0, m, 40)
    w = np.full(40, 1e300)
    _, g = nll_loss_and_gradient(z, y, sample_weight=w, reduction="sum")
    p = softmax(z.astype(np.float64))
    p[np.arange(40), y] -= 1
    ref = 1e300 * p
    big = np.abs(ref) <= np.finfo(dtype).max
    assert np.all(np.isinf(g[~big])) and np.all(np.sign(g[~big]) == np.sign(ref[~big]))
    np.testing.assert_allclose(g[big], ref[big], rtol=8 * np.finfo(dtype).eps)
