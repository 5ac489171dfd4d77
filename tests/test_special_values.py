"""Special values (inf, NaN), empty and zero-size inputs, and axis handling.

The contract (DESIGN.md, "Special values"): per row, never touching other
rows, never raising.  References are scipy.special on float64 inputs, or
float64 formulas written out here.
"""

import warnings

import numpy as np
import pytest
import scipy.special as sps

from cysoftmax import (
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)

DTYPES = [np.float32, np.float64]
inf, nan = np.inf, np.nan


def close(a, b, dtype):
    """Agreement to a few eps of `dtype` (relative), NaN where NaN."""
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=8 * eps, atol=8 * eps, equal_nan=True)


def good_rows(dtype, n=5, m=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, m)) * 3).astype(dtype)


# ------------------------------------------------------------ -inf masking

@pytest.mark.parametrize("dtype", DTYPES)
def test_minus_inf_entries_are_masked(dtype):
    z = np.array([[0.0, -inf, 1.0, -inf], [-inf, 2.0, -inf, -inf]], dtype=dtype)
    p = softmax(z)
    lp = log_softmax(z)
    mask = np.isneginf(z)
    assert np.all(p[mask] == 0.0)                    # exactly 0
    assert np.all(lp[mask] == -inf)
    # the other entries are the softmax of the finite entries alone
    close(p[0, [0, 2]], sps.softmax(np.array([0.0, 1.0])), dtype)
    close(lp[0, [0, 2]], sps.log_softmax(np.array([0.0, 1.0])), dtype)
    assert p[1, 1] == 1.0 and lp[1, 1] == 0.0
    close(logsumexp(z), [np.logaddexp(0.0, 1.0), 2.0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_minus_inf_label_gives_infinite_loss(dtype):
    z = np.array([[0.0, -inf, 1.0], [0.5, 0.0, 1.0]], dtype=dtype)
    y = np.array([1, 2])
    loss = nll_loss(z, y, reduction="none")
    assert loss[0] == inf
    close(loss[1], sps.logsumexp([0.5, 0.0, 1.0]) - 1.0, dtype)
    assert nll_loss(z, y, reduction="sum") == inf
    assert nll_loss(z, y) == inf
    loss2, grad = nll_loss_and_gradient(z, y, reduction="none")
    assert loss2[0] == inf
    # the gradient p - onehot is still finite and well defined
    p = sps.softmax(np.array([0.0, -inf, 1.0]))
    close(grad[0], p - [0, 1, 0], dtype)


# ------------------------------------------------------------ bad rows

BAD_ROWS = {
    "nan": [0.0, nan, 1.0, 2.0, -1.0, 0.5],
    "+inf": [0.0, inf, 1.0, 2.0, -1.0, 0.5],
    "all -inf": [-inf] * 6,
    "nan and -inf": [-inf, nan, -inf, -inf, -inf, -inf],
    "+inf and -inf": [-inf, inf, -inf, 0.0, 1.0, 2.0],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", list(BAD_ROWS))
@pytest.mark.parametrize("func", [softmax, log_softmax], ids=["softmax", "log_softmax"])
def test_bad_row_becomes_nan_without_touching_others(func, bad, dtype):
    good = good_rows(dtype)
    z = good.copy()
    z[2] = BAD_ROWS[bad]
    res = func(z)
    assert np.all(np.isnan(res[2]))
    others = np.delete(np.arange(len(z)), 2)
    assert not np.any(np.isnan(res[others]))
    close(res[others], func(good[others]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", list(BAD_ROWS))
def test_bad_row_nll_is_nan_without_touching_others(bad, dtype):
    good = good_rows(dtype)
    y = np.arange(len(good)) % good.shape[1]
    z = good.copy()
    z[2] = BAD_ROWS[bad]
    loss = nll_loss(z, y, reduction="none")
    assert np.isnan(loss[2])
    others = np.delete(np.arange(len(z)), 2)
    ref = nll_loss(good[others], y[others], reduction="none")
    close(loss[others], ref, dtype)
    assert np.isnan(nll_loss(z, y)) and np.isnan(nll_loss(z, y, reduction="sum"))
    l2, grad = nll_loss_and_gradient(z, y, reduction="sum")
    assert np.isnan(l2)
    close(grad[others], local_gradient(good[others], y[others]), dtype)
    close(local_gradient(z, y)[others], local_gradient(good[others], y[others]), dtype)


# ------------------------------------------------------------ logsumexp semantics

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row,expected", [
    ([0.0, nan, 1.0], nan),
    ([nan, inf, 1.0], nan),                   # NaN wins over +inf
    ([-inf, nan, -inf], nan),
    ([0.0, inf, 1.0], inf),
    ([-inf, inf, 1.0], inf),                  # +inf wins over -inf (no NaN)
    ([inf, inf], inf),
    ([-inf, -inf, -inf], -inf),
    ([-inf], -inf),
    ([-inf, 3.0, -inf], 3.0),
])
def test_logsumexp_special_values_follow_scipy(row, expected, dtype):
    z = np.array(row, dtype=dtype)
    got = logsumexp(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sps.logsumexp(np.array(row, dtype=np.float64))
    if np.isnan(expected):
        assert np.isnan(got) and np.isnan(ref)
    else:
        assert got == expected == ref
    assert np.ndim(got) == 0 and got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_special_rows_do_not_touch_others(dtype):
    good = good_rows(dtype, n=4, m=3)
    z = np.concatenate([good, np.array([[nan, 0, 0], [inf, 0, 0], [-inf, -inf, -inf]], dtype=dtype)])
    got = logsumexp(z)
    assert np.isnan(got[4]) and got[5] == inf and got[6] == -inf
    close(got[:4], sps.logsumexp(good.astype(np.float64), axis=-1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_empty_is_minus_inf(dtype):
    assert logsumexp(np.array([], dtype=dtype)) == -inf
    np.testing.assert_array_equal(logsumexp(np.empty((3, 0), dtype=dtype)), [-inf] * 3)
    assert logsumexp(np.empty((0, 0), dtype=dtype), axis=None) == -inf


# ------------------------------------------------------------ weights of zero

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [nan, inf, -inf])
def test_zero_weight_rows_contribute_exactly_zero(bad, dtype):
    good = good_rows(dtype, n=4, m=3)
    y = np.array([0, 1, 2, 1])
    z = good.copy()
    z[1] = [bad, 0.0, bad]           # label 1: for -inf this is a finite row
    z[3] = bad
    w = np.array([1.0, 0.0, 2.0, 0.0])
    keep = [0, 2]
    loss = nll_loss(z, y, sample_weight=w, reduction="none")
    assert loss[1] == 0.0 and loss[3] == 0.0
    close(loss[keep], nll_loss(good[keep], y[keep], sample_weight=w[keep], reduction="none"), dtype)
    for reduction in ("sum", "mean"):
        got = nll_loss(z, y, sample_weight=w, reduction=reduction)
        ref = nll_loss(good[keep], y[keep], sample_weight=w[keep], reduction=reduction)
        assert np.isfinite(got)
        close(got, ref, dtype)
        lg, grad = nll_loss_and_gradient(z, y, sample_weight=w, reduction=reduction)
        close(lg, ref, dtype)
        assert np.all(grad[[1, 3]] == 0.0)
        _, gref = nll_loss_and_gradient(good[keep], y[keep], sample_weight=w[keep],
                                        reduction=reduction)
        close(grad[keep], gref, dtype)


@pytest.mark.parametrize("weights", [[1e-310, 3e-310, 0.0], [1e308, 1.5e308, 1e308],
                                     [5e-324, 0.0, 0.0]], ids=["subnormal", "huge", "min"])
def test_weighted_mean_with_extreme_weights(weights):
    """The weighted mean only depends on the weights' ratios, at any scale."""
    z = good_rows(np.float64, n=3, m=4)
    y = np.array([0, 3, 1])
    w = np.array(weights)
    ratio = w / w.max()
    ref = nll_loss(z, y, sample_weight=ratio)
    _, gref = nll_loss_and_gradient(z, y, sample_weight=ratio)
    assert np.isfinite(ref) and np.all(np.isfinite(gref))
    got = nll_loss(z, y, sample_weight=w)
    lg, grad = nll_loss_and_gradient(z, y, sample_weight=w)
    close(got, ref, np.float64)
    close(lg, ref, np.float64)
    close(grad, gref, np.float64)


# ------------------------------------------------------------ empty batches

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_empty_batch(dtype, weighted):
    z = np.empty((0, 4), dtype=dtype)
    y = np.empty(0, dtype=np.int64)
    w = np.empty(0) if weighted else None
    assert nll_loss(z, y, sample_weight=w, reduction="sum") == 0.0
    assert isinstance(nll_loss(z, y, sample_weight=w, reduction="sum"), float)
    assert np.isnan(nll_loss(z, y, sample_weight=w, reduction="mean"))
    none = nll_loss(z, y, sample_weight=w, reduction="none")
    assert none.shape == (0,) and none.dtype == dtype
    for reduction, check in [("sum", lambda v: v == 0.0), ("mean", np.isnan),
                             ("none", lambda v: v.shape == (0,))]:
        loss, grad = nll_loss_and_gradient(z, y, sample_weight=w, reduction=reduction)
        assert check(loss)
        assert grad.shape == (0, 4) and grad.dtype == dtype
    g = local_gradient(z, y)
    assert g.shape == (0, 4) and g.dtype == dtype


# ------------------------------------------------------------ zero-size inputs

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_zero_size_softmax_log_softmax(shape, axis, dtype):
    z = np.empty(shape, dtype=dtype)
    for func in (softmax, log_softmax):
        res = func(z, axis=axis)
        assert res.shape == shape and res.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
@pytest.mark.parametrize("axis", [-1, 0, None, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_zero_size_logsumexp(shape, axis, keepdims, dtype):
    """Reduced slices that are empty give -inf; an empty set of slices gives an empty array."""
    z = np.empty(shape, dtype=dtype)
    res = logsumexp(z, axis=axis, keepdims=keepdims)
    # reference: numpy's own reduction of the shape, and -inf for an empty slice
    ref = np.full_like(np.sum(np.ones(shape), axis=axis, keepdims=keepdims), -inf)
    assert np.shape(res) == ref.shape
    assert res.dtype == dtype
    np.testing.assert_array_equal(res, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size_nll_functions(dtype):
    for m in (0, 5):
        z = np.empty((0, m), dtype=dtype)
        y = np.empty(0, dtype=np.intp)
        assert nll_loss(z, y, reduction="sum") == 0.0
        assert np.isnan(nll_loss(z, y))
        assert local_gradient(z, y).shape == (0, m)
        loss, grad = nll_loss_and_gradient(z, y, reduction="none")
        assert loss.shape == (0,) and grad.shape == (0, m)
    # (5, 0): there is no valid label for zero classes
    z = np.empty((5, 0), dtype=dtype)
    y = np.zeros(5, dtype=np.intp)
    for call in (lambda: nll_loss(z, y), lambda: local_gradient(z, y),
                 lambda: nll_loss_and_gradient(z, y)):
        with pytest.raises(ValueError, match=r"\by\b"):
            call()


# ------------------------------------------------------------ axes
# scipy.special in float64 (results left in float64), on finite inputs only:
# deliberately not tests/_reference.py's hand-written references, so that the
# axis handling is checked against a third-party implementation as well.

def ref_logsumexp(z, axis, keepdims=False):
    return sps.logsumexp(z.astype(np.float64), axis=axis, keepdims=keepdims)


def ref_softmax(z, axis):
    return sps.softmax(z.astype(np.float64), axis=axis)


def ref_log_softmax(z, axis):
    return sps.log_softmax(z.astype(np.float64), axis=axis)


AXES_1D = [0, -1, None, (0,), (-1,)]
AXES_3D = [0, 1, 2, -1, -2, -3, (0, 1), (1, 2), (0, 2), (2, 0), (-1, 0), (0, 1, 2), None]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", AXES_1D, ids=repr)
def test_1d_axes(axis, dtype):
    z = good_rows(dtype, n=1, m=7)[0]
    close(softmax(z, axis=axis), ref_softmax(z, axis), dtype)
    close(log_softmax(z, axis=axis), ref_log_softmax(z, axis), dtype)
    got = logsumexp(z, axis=axis)
    assert np.ndim(got) == 0 and got.dtype == dtype
    close(got, ref_logsumexp(z, axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D, ids=repr)
def test_3d_axes(axis, dtype):
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((3, 4, 5)) * 4).astype(dtype)
    for func, ref in [(softmax, ref_softmax), (log_softmax, ref_log_softmax)]:
        got = func(z, axis=axis)
        assert got.shape == z.shape and got.dtype == dtype and got.flags.c_contiguous
        close(got, ref(z, axis), dtype)
    got = logsumexp(z, axis=axis)
    ref = ref_logsumexp(z, axis)
    assert np.shape(got) == np.shape(ref) and got.dtype == dtype
    close(got, ref, dtype)


def test_default_axis_is_last():
    z = good_rows(np.float64, n=3, m=4)
    close(softmax(z), ref_softmax(z, -1), np.float64)
    close(log_softmax(z), ref_log_softmax(z, -1), np.float64)
    close(logsumexp(z), ref_logsumexp(z, -1), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D, ids=repr)
def test_logsumexp_keepdims(axis, dtype):
    rng = np.random.default_rng(8)
    z = (rng.standard_normal((3, 4, 5)) * 4).astype(dtype)
    got = logsumexp(z, axis=axis, keepdims=True)
    ref = ref_logsumexp(z, axis, keepdims=True)
    assert got.shape == ref.shape and got.ndim == 3 and got.dtype == dtype
    close(got, ref, dtype)
    # keepdims output broadcasts back: log_softmax = z - logsumexp
    close(z.astype(np.float64) - got, log_softmax(z, axis=axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axis_special_values_stay_in_their_slice(dtype):
    """With axis=0 a bad column is NaN and the other columns are untouched."""
    good = good_rows(dtype, n=4, m=5)
    z = good.copy()
    z[1, 2] = nan
    z[:, 4] = -inf
    p = softmax(z, axis=0)
    assert np.all(np.isnan(p[:, 2])) and np.all(np.isnan(p[:, 4]))
    keep = [0, 1, 3]
    close(p[:, keep], ref_softmax(good[:, keep], 0), dtype)
    lse = logsumexp(z, axis=0)
    assert np.isnan(lse[2]) and lse[4] == -inf
    close(lse[keep], ref_logsumexp(good[:, keep], 0), dtype)
