"""Accuracy of the kernels' own exp (cs_exp.h) against mpmath.

The claim in cs_exp.h: at most 1.5 ulp from the true exp(x) wherever the
result is a normal number; gradual underflow below that (a single rounding
into the subnormal range); +inf past the overflow threshold; NaN stays NaN.

"ulp" is the spacing (np.spacing) of the correctly rounded reference in the
output dtype.  The reference is mpmath's exp at 50 significant digits of the
exact input value, rounded to the dtype by `round_to` (round half to even,
with the dtype's subnormal range and overflow), which does not rely on any
float conversion of mpmath's.
"""

import numpy as np
import pytest
from mpmath import mp

from cysoftmax import _softmax

mp.dps = 50

DTYPES = [np.float32, np.float64]
MAX_ULP = 1.5


def round_to(x, dtype):
    """mpf -> nearest value of `dtype` (ties to even), as a numpy scalar; +-inf on overflow."""
    fi = np.finfo(dtype)
    if x == 0:
        return dtype(0.0)
    p = fi.nmant + 1                      # significand bits
    _, e = mp.frexp(x)                    # |x| = f 2^e, 1/2 <= f < 1
    q = max(e - p, fi.minexp - p + 1)     # exponent of the ulp (subnormals: fixed)
    r = mp.nint(mp.ldexp(x, -q))          # nint rounds ties to even
    r = mp.ldexp(r, q)
    big = mp.mpf(float(fi.max))
    if abs(r) > big:
        return dtype(np.inf) if r > 0 else dtype(-np.inf)
    return dtype(float(r))               # exact: r is a value of the dtype


def kernel_exp(x, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    out = np.empty_like(x)
    _softmax.exp_array(x, out)
    return out


def ulp_errors(x, dtype):
    """(x, ours, errors in ulp of the correctly rounded reference) for 1-D x."""
    x = np.ascontiguousarray(x, dtype=dtype)
    ours = kernel_exp(x, dtype)
    errs = np.empty(x.shape[0])
    for i, (xi, oi) in enumerate(zip(x.tolist(), ours.tolist())):
        ref = mp.exp(mp.mpf(xi))
        r = round_to(ref, dtype)
        if not np.isfinite(r) or not np.isfinite(oi):
            errs[i] = 0.0 if oi == r else np.inf
            continue
        ulp = mp.mpf(float(np.spacing(np.abs(r))))
        errs[i] = float(abs(mp.mpf(oi) - ref) / ulp)
    return x, ours, errs


def normal_range(dtype):
    """[lo, hi]: every x in it has exp(x) a finite normal number of `dtype`."""
    fi = np.finfo(dtype)
    lo = float(mp.log(mp.mpf(float(fi.tiny))))
    hi = float(mp.log(mp.mpf(float(fi.max))))
    lo = np.nextafter(dtype(lo), dtype(0), dtype=dtype)   # move inside
    lo = np.nextafter(lo, dtype(0), dtype=dtype)
    hi = np.nextafter(dtype(hi), dtype(0), dtype=dtype)
    hi = np.nextafter(hi, dtype(0), dtype=dtype)
    return float(lo), float(hi)


def assert_within_ulp(x, errs, dtype, what):
    worst = int(np.argmax(errs))
    assert errs[worst] <= MAX_ULP, (
        f"{np.dtype(dtype).name} exp({x[worst]!r}) is {errs[worst]:.3f} ulp off ({what})")


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_random_normal_range(dtype):
    rng = np.random.default_rng(20240601 + np.dtype(dtype).itemsize)
    lo, hi = normal_range(dtype)
    uniform = rng.uniform(lo, hi, 10_000)
    # small magnitudes too, where r = x and the polynomial alone decides
    mags = 10.0 ** rng.uniform(np.log10(float(np.finfo(dtype).tiny)), np.log10(hi), 10_000)
    signed = np.where(rng.random(10_000) < 0.5, -mags, mags)
    x = np.clip(np.concatenate([uniform, signed]), lo, hi)
    x, ours, errs = ulp_errors(x, dtype)
    assert np.all(np.isfinite(ours))
    assert np.all(ours >= np.finfo(dtype).tiny)
    print(f"\nexp {np.dtype(dtype).name}: max error {errs.max():.3f} ulp over {x.size} random inputs")
    assert_within_ulp(x, errs, dtype, "random input in the normal range")


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_zero_and_tiny_arguments(dtype):
    fi = np.finfo(dtype)
    sub = float(np.nextafter(dtype(0), dtype(1), dtype=dtype))
    pts = [0.0, -0.0, float(fi.tiny), -float(fi.tiny), sub, -sub,
           float(fi.eps), -float(fi.eps), float(fi.epsneg), -float(fi.epsneg)]
    x, ours, errs = ulp_errors(pts, dtype)
    assert ours[0] == 1.0 and ours[1] == 1.0      # exp(+-0) is exactly 1
    assert_within_ulp(x, errs, dtype, "tiny argument")


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_ln2_multiples_and_halfway_points(dtype):
    """Where n = round(x / ln2) changes: k ln2 and (k + 1/2) ln2, and their neighbours."""
    lo, hi = normal_range(dtype)
    ln2 = mp.log(2)
    kmin, kmax = int(lo / float(ln2)) + 1, int(hi / float(ln2)) - 1
    centres = []
    for k in range(kmin, kmax + 1):
        centres.append(float(round_to(k * ln2, dtype)))
        centres.append(float(round_to((k + mp.mpf(0.5)) * ln2, dtype)))
    c = np.array(centres, dtype=dtype)
    pts = [c]
    up, down = c.copy(), c.copy()
    for _ in range(3):
        up = np.nextafter(up, dtype(np.inf), dtype=dtype)
        down = np.nextafter(down, dtype(-np.inf), dtype=dtype)
        pts += [up, down]
    x = np.concatenate(pts)
    x = x[(x >= lo) & (x <= hi)]
    x, ours, errs = ulp_errors(x, dtype)
    assert_within_ulp(x, errs, dtype, "near a multiple of ln2 / 2")


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_overflow_threshold(dtype):
    fi = np.finfo(dtype)
    t = dtype(float(mp.log(mp.mpf(float(fi.max)))))
    pts = [t]
    up, down = t, t
    for _ in range(4):
        up = np.nextafter(up, dtype(np.inf), dtype=dtype)
        down = np.nextafter(down, dtype(-np.inf), dtype=dtype)
        pts += [up, down]
    x, ours, errs = ulp_errors(np.array(pts, dtype=dtype), dtype)
    refs = [round_to(mp.exp(mp.mpf(float(v))), dtype) for v in x]
    # both sides of the threshold are present
    assert any(np.isinf(r) for r in refs) and any(np.isfinite(r) for r in refs)
    for v, o, r, e in zip(x, ours, refs, errs):
        if np.isinf(r):
            assert o == np.inf, f"exp({v!r}) should overflow to +inf, got {o!r}"
        else:
            assert e <= MAX_ULP, f"exp({v!r}) = {o!r} is {e} ulp off (just below overflow)"
    big = np.array([float(t) + 1, 710.0 if dtype is np.float64 else 89.0, 1000.0,
                    float(fi.max)], dtype=dtype)
    assert np.all(kernel_exp(big, dtype) == np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_underflow_region(dtype):
    """Below the normal range: gradual underflow to subnormals, then exactly 0."""
    fi = np.finfo(dtype)
    sub = mp.mpf(float(np.nextafter(dtype(0), dtype(1), dtype=dtype)))
    lo_normal = float(mp.log(mp.mpf(float(fi.tiny))))
    zero_below = float(mp.log(sub / 2))       # exp(x) < sub/2 rounds to 0
    x = np.linspace(zero_below - 0.5, lo_normal, 2001)[:-1].astype(dtype)
    ours = kernel_exp(x, dtype)
    assert np.all(ours >= 0) and np.all(ours <= fi.tiny)
    for v, o in zip(x.tolist(), ours.tolist()):
        ref = mp.exp(mp.mpf(v))
        r = float(round_to(ref, dtype))
        # one rounding into the subnormal grid: within 1.5 subnormal ulps
        err = float(abs(mp.mpf(o) - ref) / sub)
        assert err <= MAX_ULP, f"exp({v!r}) = {o!r}, reference {r!r}: {err} subnormal ulp off"
        if r == 0.0 and ref < sub / 4:
            assert o == 0.0, f"exp({v!r}) should underflow to 0, got {o!r}"
    # a subnormal result does occur (no flush-to-zero)
    assert np.any((ours > 0) & (ours < fi.tiny))
    far = np.array([zero_below - 1, -1000.0, -1e30, -float(fi.max)], dtype=dtype)
    assert np.all(kernel_exp(far, dtype) == 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, -np.nan], dtype=dtype)
    ours = kernel_exp(x, dtype)
    assert np.isnan(ours[0]) and np.isnan(ours[3])
    assert ours[1] == np.inf
    assert ours[2] == 0.0
    assert ours.dtype == dtype


# The row kernels switch to a cheaper exp (cs_exp_nr_*: no clamps, one
# scaling factor) on rows where every exp(z_j - max) is a normal number,
# i.e. where (row min - row max) >= NR_LO.  It must be that same function
# there: checked bit for bit against the general one (tested above), and
# against mpmath directly.
NR_LO = {np.float32: -87.0, np.float64: -708.0}


def kernel_exp_nr(x, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    out = np.empty_like(x)
    _softmax.exp_array(x, out, normal_range=True)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_normal_range_variant_is_the_same_function(dtype):
    rng = np.random.default_rng(7 + np.dtype(dtype).itemsize)
    lo = NR_LO[dtype]
    # whole domain, small magnitudes, both ends and the ln2 grid on it
    uniform = rng.uniform(lo, 0.0, 200_000)
    small = -(10.0 ** rng.uniform(-40 if dtype is np.float32 else -300, 0, 50_000))
    grid = -np.arange(0, int(-lo / np.log(2)) + 1) * np.log(2)
    grid = np.concatenate([grid, grid - np.log(2) / 2])
    ends = [lo, np.nextafter(dtype(lo), dtype(0), dtype=dtype), 0.0, -0.0]
    x = np.concatenate([uniform, small, grid, ends]).astype(dtype)
    x = x[(x >= lo) & (x <= 0)]
    general, fast = kernel_exp(x, dtype), kernel_exp_nr(x, dtype)
    # compare the bits (== would also pass -0.0 against 0.0)
    itype = np.uint32 if dtype is np.float32 else np.uint64
    diff = np.flatnonzero(general.view(itype) != fast.view(itype))
    assert diff.size == 0, (f"normal-range exp differs from the general one at x = "
                            f"{x[diff[:5]]!r}: {fast[diff[:5]]!r} vs {general[diff[:5]]!r}")
    assert np.all(fast >= np.finfo(dtype).tiny), "a result left the normal range"


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_normal_range_variant_against_mpmath(dtype):
    rng = np.random.default_rng(11 + np.dtype(dtype).itemsize)
    x = np.concatenate([rng.uniform(NR_LO[dtype], 0.0, 4000), [NR_LO[dtype], -0.0]])
    x = np.ascontiguousarray(x, dtype=dtype)
    ours = kernel_exp_nr(x, dtype)
    errs = np.array([float(abs(mp.mpf(o) - mp.exp(mp.mpf(v)))
                           / mp.mpf(float(np.spacing(dtype(o)))))
                     for v, o in zip(x.tolist(), ours.tolist())])
    assert_within_ulp(x, errs, dtype, "normal-range variant")
    nan = kernel_exp_nr(np.array([np.nan, -np.nan], dtype=dtype), dtype)
    assert np.all(np.isnan(nan)), "NaN must pass through the normal-range exp"


# The small-m kernels take the log of each row sum s >= 1 with their own
# vectorizable log (cs_log1_d in cs_exp.h), not libm's.
@pytest.mark.parametrize("spread", [1e-12, 1e-6, 1.0, 31.0, 1e6])
def test_row_sum_log_against_mpmath(spread):
    rng = np.random.default_rng(int(spread * 1000) % 2**32)
    x = 1.0 + rng.random(4000) * spread
    x = np.concatenate([x, [1.0, np.nextafter(1.0, 2.0), np.sqrt(2.0), 2.0, 32.0, 1e300]])
    out = np.empty_like(x)
    _softmax.log1_array(x, out)
    errs = []
    for xi, oi in zip(x.tolist(), out.tolist()):
        ref = mp.log(mp.mpf(xi))
        r = float(round_to(ref, np.float64))
        if r == 0.0:
            errs.append(0.0 if oi == 0.0 else np.inf)   # log(1) is exactly 0
            continue
        errs.append(float(abs(mp.mpf(oi) - ref) / mp.mpf(float(np.spacing(abs(r))))))
    errs = np.array(errs)
    assert_within_ulp(x, errs, np.float64, "log of a row sum")
    nan = np.array([np.nan])
    _softmax.log1_array(nan, out[:1])
    assert np.isnan(out[0]), "a NaN row sum must give NaN"


# ... and the log1p of a row sum's tail t = s - 1 >= 0 (cs_log1p_d), which the
# kernels take instead of log(s) so that a tail below eps is not lost:
# relative error <= 1.5 ulp from 0 (denormal tails) up to t >= 2^53.
@pytest.mark.parametrize("scale", [1e-300, 1e-30, 1e-17, 1e-9, 1e-3, 1.0, 31.0, 1e20])
def test_row_tail_log1p_against_mpmath(scale):
    rng = np.random.default_rng(int(abs(np.log10(scale)) * 7 + 3))
    x = rng.random(3000) * scale
    x = np.concatenate([x, [0.0, 5e-324, 2.0**-53, 2.0**-52, np.sqrt(2.0) - 1.0, 2.0**53, 1e300]])
    out = np.empty_like(x)
    _softmax.log1p_array(x, out)
    errs = []
    for xi, oi in zip(x.tolist(), out.tolist()):
        ref = mp.log1p(mp.mpf(xi))
        r = float(round_to(ref, np.float64))
        if r == 0.0:
            errs.append(0.0 if oi == 0.0 else np.inf)
            continue
        errs.append(float(abs(mp.mpf(oi) - ref) / mp.mpf(float(np.spacing(abs(r))))))
    assert_within_ulp(x, np.array(errs), np.float64, "log1p of a row sum's tail")
    _softmax.log1p_array(np.array([np.nan]), out[:1])
    assert np.isnan(out[0]), "a NaN tail must give NaN"
