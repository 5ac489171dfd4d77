"""The sigmoid outputs: `sigmoid_binary_cross_entropy`, `log_sigmoid` and the
C kernels behind them (cs_bce, cs_sigmoid, cs_log_sigmoid).

Independent references only: mpmath at 50 digits on extreme logits (the
*definition* -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)), not our
rearrangement), NumPy's logaddexp / SciPy's expit on moderate ones,
PyTorch's ``binary_cross_entropy_with_logits`` and its autograd gradient,
and central finite differences.  Run it under each SIMD variant
(``CYSOFTMAX_SIMD=baseline|avx2|avx512``).
"""

import mpmath
import numpy as np
import pytest
from scipy.special import expit

import cysoftmax
from cysoftmax import _softmax, log_sigmoid, sigmoid_binary_cross_entropy as bce

import _requires

TINY64 = np.nextafter(0.0, 1.0)                       # 5e-324
TINY32 = float(np.nextafter(np.float32(0), np.float32(1)))   # 1.4e-45
LOGITS = {
    np.float64: [0.0, 1e-30, -1e-30, TINY64, -TINY64, 2.2e-308, -2.2e-308, 0.5, -0.5, 1.0, -1.0,
                 10.0, -10.0, 36.0, -36.0, 37.5, -37.5, 88.0, -88.0, 700.0, -700.0,
                 709.0, -709.0, 720.0, -720.0, 745.0, -745.0, 1e4, -1e4, 1e308, -1e308,
                 1.7976931348623157e308, -1.7976931348623157e308],
    np.float32: [0.0, 1e-30, -1e-30, TINY32, -TINY32, 1.2e-38, -1.2e-38, 0.5, -0.5, 1.0, -1.0,
                 10.0, -10.0, 16.0, -16.0, 17.5, -17.5, 88.0, -88.0, 103.0, -103.0,
                 110.0, -110.0, 1e4, -1e4, 3e38, -3e38],
}
TARGETS = [0.0, 1.0, 0.3]
ULP = {np.float64: 4.0, np.float32: 1.0}   # the float32 kernel rounds a double result once


def _softplus(x):
    return mpmath.log1p(mpmath.exp(x))


def ref_loss(z, t):
    """-t log s(z) - (1 - t) log s(-z), s the sigmoid, at 50 digits: two terms >= 0."""
    with mpmath.workdps(50):
        z, t = mpmath.mpf(float(z)), mpmath.mpf(float(t))
        return t * _softplus(-z) + (1 - t) * _softplus(z)


def ref_grad(z, t):
    """sigmoid(z) - t = (1 - t) s(z) - t s(-z), at 50 digits."""
    with mpmath.workdps(50):
        z, t = mpmath.mpf(float(z)), mpmath.mpf(float(t))
        return (1 - t) / (1 + mpmath.exp(-z)) - t / (1 + mpmath.exp(z))


def ulps(ours, ref, dtype, scale=None):
    """|ours - ref| in units of the dtype's spacing at |ref| (or at `scale`);
    the spacing of 0 is the smallest subnormal."""
    ours = float(ours)
    if np.isinf(ours) or np.isnan(ours):
        return 0.0 if ours == float(ref) else np.inf
    at = abs(float(ref)) if scale is None else scale
    # (the spacing at the largest finite value, not past it: spacing(max) is inf)
    top = np.nextafter(np.finfo(dtype).max, dtype(0))
    sp = float(np.spacing(dtype(min(at, float(top)))))
    with mpmath.workdps(50):
        return float(abs(mpmath.mpf(ours) - ref) / sp)


def _grid(dtype):
    z = np.array([[v] for v in LOGITS[dtype] for _ in TARGETS], dtype=dtype)
    t = np.array([[tv] for _ in LOGITS[dtype] for tv in TARGETS], dtype=dtype)
    return z, t


# ------------------------------------------------------------------ accuracy (mpmath)

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_against_mpmath(dtype):
    z, t = _grid(dtype)
    loss = bce(z, t, reduction="none")
    assert loss.dtype == dtype
    worst = 0.0
    for i in range(z.shape[0]):
        ref = ref_loss(z[i, 0], t[i, 0])
        e = ulps(loss[i], ref, dtype)
        worst = max(worst, e)
        assert e <= ULP[dtype], (z[i, 0], t[i, 0], float(loss[i]), mpmath.nstr(ref, 20), e)
    print(f"loss max error {worst:.2f} ulp ({np.dtype(dtype).name})")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_against_mpmath(dtype):
    z, t = _grid(dtype)
    _, g = bce(z, t, reduction="sum", return_gradient=True)
    assert g.dtype == dtype
    worst = 0.0
    for i in range(z.shape[0]):
        zi, ti = float(z[i, 0]), float(t[i, 0])
        ref = ref_grad(zi, ti)
        if ti in (0.0, 1.0):
            e = ulps(g[i, 0], ref, dtype)        # no cancellation: relative
        else:
            # a soft target cancels against sigmoid(z) as the problem does:
            # a few ulp of sigmoid(z) + t
            e = ulps(g[i, 0], ref, dtype, scale=float(expit(zi)) + ti)
        worst = max(worst, e)
        assert e <= ULP[dtype], (zi, ti, float(g[i, 0]), mpmath.nstr(ref, 20), e)
    print(f"gradient max error {worst:.2f} ulp ({np.dtype(dtype).name})")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_sigmoid_and_sigmoid_against_mpmath(dtype):
    z = np.array(LOGITS[dtype], dtype=dtype)
    ls = log_sigmoid(z)
    s = np.empty_like(z)
    _softmax.sigmoid_rows(z.reshape(1, -1), s.reshape(1, -1))
    for zi, lsi, si in zip(z, ls, s):
        with mpmath.workdps(50):
            x = mpmath.mpf(float(zi))
            ref_ls, ref_s = -_softplus(-x), 1 / (1 + mpmath.exp(-x))
        assert ulps(lsi, ref_ls, dtype) <= ULP[dtype], (zi, lsi, ref_ls)
        assert ulps(si, ref_s, dtype) <= ULP[dtype], (zi, si, ref_s)


def test_extreme_logits_exactly():
    """The cases the brief names, as exact values."""
    z = np.array([[1e308], [-1e308], [1e308], [-1e308], [40.0]])
    t = np.array([[1.0], [1.0], [0.0], [0.0], [1.0]])
    loss = bce(z, t, reduction="none")
    assert loss[0] == 0.0 and loss[1] == 1e308 and loss[2] == 1e308 and loss[3] == 0.0
    assert loss[4] == pytest.approx(4.248354255291589e-18, rel=1e-15)   # log(1 + e^-40)
    assert log_sigmoid(np.array([-1e308]))[0] == -1e308


# ------------------------------------------------------------------ PyTorch

def _torch():
    """PyTorch, or a skip (a failure where CYSOFTMAX_REQUIRE names torch)."""
    return _requires.import_module("torch", "torch")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, m", [(7, 1), (33, 5), (50, 37), (3, 130)])
def test_against_torch(dtype, n, m):
    torch = _torch()
    F = torch.nn.functional
    rng = np.random.default_rng(n * 1000 + m)
    z = (rng.standard_normal((n, m)) * 6).astype(dtype)
    t = rng.random((n, m)).astype(dtype)
    t[rng.random((n, m)) < 0.5] = 1.0
    t[rng.random((n, m)) < 0.3] = 0.0
    w = rng.random(n) * 3
    zt = torch.from_numpy(z.astype(np.float64)).requires_grad_(True)
    tt = torch.from_numpy(t.astype(np.float64))
    wt = torch.from_numpy(w)[:, None]
    rtol = 1e-12 if dtype == np.float64 else 3e-6
    ref_none = F.binary_cross_entropy_with_logits(zt, tt, weight=wt, reduction="none").sum(1)
    np.testing.assert_allclose(bce(z, t, sample_weight=w, reduction="none"),
                               ref_none.detach().numpy(), rtol=rtol)
    ref_sum = F.binary_cross_entropy_with_logits(zt, tt, weight=wt, reduction="sum")
    ref_sum.backward()
    loss, g = bce(z, t, sample_weight=w, reduction="sum", return_gradient=True)
    assert loss == pytest.approx(ref_sum.item(), rel=rtol)
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=rtol, atol=1e-15 if dtype == np.float64
                               else 1e-7)
    # PyTorch's "mean" is over all n m elements: ours divided by m
    ref_mean = F.binary_cross_entropy_with_logits(zt, tt, reduction="mean").item()
    assert bce(z, t) / m == pytest.approx(ref_mean, rel=rtol)


# ------------------------------------------------------------------ finite differences

def test_gradient_finite_differences():
    rng = np.random.default_rng(3)
    n, m = 6, 4
    z = rng.standard_normal((n, m)) * 3
    t = rng.random((n, m))
    t[0] = [0, 1, 0, 1]
    w = rng.random(n) + 0.1
    for reduction in ("mean", "sum"):
        _, g = bce(z, t, sample_weight=w, reduction=reduction, return_gradient=True)
        h = 1e-6
        fd = np.empty_like(z)
        for i in range(n):
            for j in range(m):
                zp, zm = z.copy(), z.copy()
                zp[i, j] += h
                zm[i, j] -= h
                fd[i, j] = (bce(zp, t, sample_weight=w, reduction=reduction)
                            - bce(zm, t, sample_weight=w, reduction=reduction)) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    # "none": the gradient of the sum of the returned array
    _, g = bce(z, t, sample_weight=w, reduction="none", return_gradient=True)
    _, gs = bce(z, t, sample_weight=w, reduction="sum", return_gradient=True)
    np.testing.assert_array_equal(g, gs)


# ------------------------------------------------------------------ reductions, weights, layouts

def _np_ref(z, t, w=None):
    """Per-row loss and per-element gradient in float64 (NumPy / SciPy):
    t softplus(-z) + (1 - t) softplus(z), two non-negative terms."""
    z, t = z.astype(np.float64), t.astype(np.float64)
    rows = (t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z)).sum(1)
    g = (1 - t) * expit(z) - t * expit(-z)
    if w is not None:
        rows, g = rows * w, g * w[:, None]
    return rows, g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 37, 64, 65])
def test_vector_tails(dtype, m):
    rng = np.random.default_rng(m)
    n = 11
    z = (rng.standard_normal((n, m)) * 20).astype(dtype)
    t = (rng.random((n, m)) < 0.5).astype(dtype)
    rows, g = _np_ref(z, t)
    loss, grad = bce(z, t, reduction="none", return_gradient=True)
    rtol = 1e-13 if dtype == np.float64 else 4e-7
    np.testing.assert_allclose(loss, rows, rtol=rtol)
    np.testing.assert_allclose(grad, g, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_call_openmp_split(dtype):
    rng = np.random.default_rng(5)
    n, m = 5000, 37                       # 185000 elements: above the threads' threshold
    z = (rng.standard_normal((n, m)) * 8).astype(dtype)
    t = rng.random((n, m)).astype(dtype)
    w = rng.random(n)
    rows, g = _np_ref(z, t, w)
    rtol = 1e-12 if dtype == np.float64 else 4e-6
    loss, grad = bce(z, t, sample_weight=w, reduction="none", return_gradient=True)
    if _softmax.openmp_enabled() and _softmax.max_threads() > 1:
        assert _softmax.last_team_size() > 1      # the rows really were split
    np.testing.assert_allclose(loss, rows, rtol=rtol)
    np.testing.assert_allclose(grad, g, rtol=rtol, atol=1e-14 if dtype == np.float64 else 1e-6)
    total, gs = bce(z, t, sample_weight=w, reduction="sum", return_gradient=True)
    assert total == pytest.approx(rows.sum(), rel=1e-11 if dtype == np.float64 else 1e-6)
    mean, gm = bce(z, t, sample_weight=w, return_gradient=True)
    assert mean == pytest.approx(rows.sum() / w.sum(), rel=1e-11 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(gm, g / w.sum(), rtol=rtol, atol=1e-17 if dtype == np.float64
                               else 1e-9)


def test_reductions_and_weights():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((9, 4)) * 4
    t = rng.random((9, 4))
    w = rng.random(9) * 2
    w[2] = 0.0
    rows, _ = _np_ref(z, t)
    np.testing.assert_allclose(bce(z, t, reduction="none"), rows, rtol=1e-14)
    assert bce(z, t, reduction="sum") == pytest.approx(rows.sum(), rel=1e-14)
    assert bce(z, t) == pytest.approx(rows.mean(), rel=1e-14)            # over rows
    np.testing.assert_allclose(bce(z, t, sample_weight=w, reduction="none"), w * rows, rtol=1e-14)
    assert bce(z, t, sample_weight=w) == pytest.approx((w * rows).sum() / w.sum(), rel=1e-14)
    assert isinstance(bce(z, t), float) and isinstance(bce(z, t, reduction="sum"), float)
    # huge and tiny weights: the mean is scale-free
    for s in (1e300, 1e-300):
        assert bce(z, t, sample_weight=w * s) == pytest.approx(bce(z, t, sample_weight=w),
                                                               rel=1e-14)


def test_zero_weight_row_is_exactly_zero():
    z = np.array([[np.nan, np.inf], [1.0, 2.0]])
    t = np.array([[0.0, 0.0], [1.0, 0.0]])
    loss, g = bce(z, t, sample_weight=[0.0, 1.0], reduction="none", return_gradient=True)
    assert loss[0] == 0.0 and np.all(g[0] == 0.0)
    assert np.isfinite(loss[1]) and np.all(np.isfinite(g[1]))


@pytest.mark.parametrize("layout", ["fortran", "strided", "negative", "readonly"])
def test_layouts(layout):
    rng = np.random.default_rng(2)
    base_z = rng.standard_normal((8, 10)) * 5
    base_t = rng.random((8, 10))
    if layout == "fortran":
        z, t = np.asfortranarray(base_z), np.asfortranarray(base_t)
    elif layout == "strided":
        z, t = np.repeat(base_z, 2, axis=1)[:, ::2], np.repeat(base_t, 2, axis=1)[:, ::2]
    elif layout == "negative":
        z, t = base_z[::-1, ::-1].copy()[::-1, ::-1], base_t[::-1, ::-1].copy()[::-1, ::-1]
    else:
        z, t = base_z.copy(), base_t.copy()
        z.flags.writeable = t.flags.writeable = False
    rows, g = _np_ref(base_z, base_t)
    loss, grad = bce(z, t, reduction="none", return_gradient=True)
    np.testing.assert_allclose(loss, rows, rtol=1e-14)
    np.testing.assert_allclose(grad, g, rtol=1e-14, atol=1e-17)
    assert grad.flags.c_contiguous


def test_in_place_gradient_kernel():
    """The C contract: grad may be the logits buffer itself."""
    rng = np.random.default_rng(4)
    for dtype in (np.float64, np.float32):
        z = (rng.standard_normal((40, 19)) * 10).astype(dtype)
        t = rng.random((40, 19)).astype(dtype)
        rows, g = _np_ref(z, t)
        loss = np.empty(40, dtype=dtype)
        buf = z.copy()
        total = _softmax.bce_rows(buf, t, None, 1.0, loss, buf)
        rtol = 1e-13 if dtype == np.float64 else 4e-7
        np.testing.assert_allclose(buf, g, rtol=rtol, atol=1e-15)
        np.testing.assert_allclose(loss, rows, rtol=rtol)
        assert total == pytest.approx(rows.sum(), rel=rtol)


def test_dtypes():
    z32 = np.array([[0.5, -1.0]], dtype=np.float32)
    loss, g = bce(z32, [[1, 0]], reduction="none", return_gradient=True)
    assert loss.dtype == np.float32 and g.dtype == np.float32
    loss, g = bce(np.array([[1, -2]], dtype=np.int32), [[True, False]], reduction="none",
                  return_gradient=True)
    assert loss.dtype == np.float64 and g.dtype == np.float64
    assert bce(np.array([[1.0]], dtype=np.float16), [[1]]) == pytest.approx(
        float(np.logaddexp(0, -1.0)), rel=1e-15)
    assert log_sigmoid(z32).dtype == np.float32
    assert log_sigmoid([1, 2]).dtype == np.float64


def test_empty():
    z = np.empty((0, 3))
    assert bce(z, z, reduction="sum") == 0.0
    assert np.isnan(bce(z, z))
    assert bce(z, z, reduction="none").shape == (0,)
    loss, g = bce(np.empty((2, 0)), np.empty((2, 0)), reduction="none", return_gradient=True)
    assert np.all(loss == 0) and g.shape == (2, 0)


# ------------------------------------------------------------------ special values

def test_nan_stays_in_its_row():
    z = np.array([[1.0, 2.0], [np.nan, 0.5], [-3.0, 4.0]])
    t = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 1.0]])
    loss, g = bce(z, t, reduction="none", return_gradient=True)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
    assert np.isnan(g[1, 0]) and np.isfinite(g[[0, 2]]).all() and np.isfinite(g[1, 1])
    assert np.isnan(log_sigmoid(np.array([np.nan]))[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_infinite_logits_follow_the_limits(dtype):
    inf = np.inf
    z = np.array([[inf], [inf], [-inf], [-inf], [inf], [-inf]], dtype=dtype)
    t = np.array([[1], [0], [0], [1], [0.25], [0.25]], dtype=dtype)
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    loss, g = bce(z, t, sample_weight=w, reduction="none", return_gradient=True)
    np.testing.assert_array_equal(loss, np.array([0, inf, 0, inf, inf, inf], dtype=dtype))
    np.testing.assert_array_equal(g[:, 0], np.array([0, 2, 0, -3, 0.75, -0.25], dtype=dtype))
    np.testing.assert_array_equal(log_sigmoid(np.array([-inf, inf], dtype=dtype)), [-inf, 0])


# ------------------------------------------------------------------ log_sigmoid

def test_log_sigmoid_out_and_shapes():
    rng = np.random.default_rng(6)
    z = rng.standard_normal((3, 4, 5)) * 30
    ref = -np.logaddexp(0, -z)
    res = log_sigmoid(z)
    assert res.shape == z.shape
    np.testing.assert_allclose(res, ref, rtol=1e-14)
    np.testing.assert_allclose(log_sigmoid(np.asfortranarray(z)), ref, rtol=1e-14)
    out = np.empty_like(z)
    assert log_sigmoid(z, out=out) is out
    np.testing.assert_allclose(out, ref, rtol=1e-14)
    zz = z.copy()
    assert log_sigmoid(zz, out=zz) is zz
    np.testing.assert_allclose(zz, ref, rtol=1e-14)
    with pytest.raises(ValueError, match="out"):
        log_sigmoid(z, out=np.empty((3, 4)))
    with pytest.raises(TypeError):
        log_sigmoid(np.array([1j]))


# ------------------------------------------------------------------ bad input, one test each

Z = np.zeros((2, 3))
T = np.zeros((2, 3))


@pytest.mark.parametrize("logits", [np.zeros((2, 3), complex), np.zeros((2, 3), bool),
                                    np.array([["a", "b", "c"]] * 2), np.zeros((2, 3), object)])
def test_bad_logits_dtype(logits):
    with pytest.raises(TypeError, match="logits"):
        bce(logits, T)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 1), ()])
def test_logits_not_2d(shape):
    with pytest.raises(ValueError, match="logits must be 2-D"):
        bce(np.zeros(shape), np.zeros(shape))


@pytest.mark.parametrize("targets", [np.zeros((2, 2)), np.zeros((3, 3)), np.zeros(3),
                                     np.zeros((1, 3))])
def test_targets_shape_mismatch(targets):
    with pytest.raises(ValueError, match="targets has shape"):
        bce(Z, targets)


@pytest.mark.parametrize("bad", [1.5, -0.1, 2, -1, np.inf, -np.inf])
def test_targets_out_of_range(bad):
    t = T.copy()
    t[1, 2] = bad
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        bce(Z, t)


def test_targets_out_of_range_before_float32_rounding():
    with pytest.raises(ValueError, match="targets"):
        bce(Z.astype(np.float32), np.full((2, 3), 1 + 1e-12))


def test_nan_targets():
    t = T.copy()
    t[0, 1] = np.nan
    with pytest.raises(ValueError, match="targets must be in .* NaN"):
        bce(Z, t)


@pytest.mark.parametrize("targets", [np.zeros((2, 3), complex), np.array([["a"] * 3] * 2),
                                     np.zeros((2, 3), object)])
def test_bad_targets_dtype(targets):
    with pytest.raises(TypeError, match="targets"):
        bce(Z, targets)


@pytest.mark.parametrize("reduction, exc", [("avg", ValueError), ("MEAN", ValueError),
                                            (None, TypeError), (1, TypeError)])
def test_bad_reduction(reduction, exc):
    with pytest.raises(exc, match="reduction"):
        bce(Z, T, reduction=reduction)


@pytest.mark.parametrize("sw, exc", [([1.0, 2.0, 3.0], ValueError), ([1.0, -1.0], ValueError),
                                     ([1.0, np.nan], ValueError), ([[1.0, 1.0]], ValueError),
                                     (["a", "b"], TypeError), ([0.0, 0.0], ValueError)])
def test_bad_sample_weight(sw, exc):
    with pytest.raises(exc, match="sample_weight"):
        bce(Z, T, sample_weight=sw)


def test_bad_return_gradient():
    with pytest.raises(TypeError, match="return_gradient"):
        bce(Z, T, return_gradient=1)


def test_exported():
    assert "sigmoid_binary_cross_entropy" in cysoftmax.__all__
    assert "log_sigmoid" in cysoftmax.__all__
