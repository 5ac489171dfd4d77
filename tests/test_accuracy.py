"""Accuracy of softmax, log_softmax, logsumexp and nll_loss against mpmath.

The reference is computed at 50 significant digits from the exact values of
the (already rounded) float32 / float64 inputs, so it measures the error of
the kernels alone, not of the inputs.  Bounds (eps = np.finfo(dtype).eps of
the output dtype):

* softmax: relative error <= (16 + |z_j - max z|) eps wherever the reference
  probability is a normal number.  The |z_j - max z| term is the rounding of
  the shifted logit z_j - max z, which every shift-by-max algorithm commits
  (d(1 + delta) moves exp(d) by |d| delta relatively).  Below the normal
  range we also require gradual underflow: at most a few subnormal spacings
  on top of the relative bound.
* log_softmax, logsumexp, nll_loss ("none" and "sum"): absolute error
  <= 16 eps max(1, |reference|) when the reference is representable; when
  it is not (its magnitude rounds past the dtype's largest finite value) the
  result must be the infinity of the same sign.

nll_loss(reduction="sum") returns a Python float accumulated in double, so
for float32 logits its range is float64's (a sum can exceed float32's range
and still be exact) while its tolerance uses float32's eps.

`max_error_eps` measures the largest error in units of eps; the report test
prints it (pytest -s) for ours and for scipy.special on the same rows.
SciPy's numbers are reported, never asserted.
"""

import functools

import numpy as np
import pytest
import scipy.special as sps
from mpmath import mp

from cysoftmax import log_softmax, logsumexp, nll_loss, softmax

mp.dps = 50

DTYPES = [np.float32, np.float64]
K = 16  # the bounds' constant (in eps)


def round_to(x, dtype):
    """mpf -> nearest value of `dtype` (ties to even) as a Python float; +-inf on overflow."""
    fi = np.finfo(dtype)
    if x == 0:
        return 0.0
    if mp.isinf(x):
        return float(x)
    p = fi.nmant + 1
    _, e = mp.frexp(x)
    q = max(e - p, fi.minexp - p + 1)
    r = mp.ldexp(mp.nint(mp.ldexp(x, -q)), q)
    if abs(r) > mp.mpf(float(fi.max)):
        return np.inf if r > 0 else -np.inf
    return float(r)


# ---------------------------------------------------------------- test data

def _datasets(dtype):
    """name -> (z (n, m) of dtype, labels y (n,))."""
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(12345 + np.dtype(dtype).itemsize)
    n, m = 24, 12
    out = {}
    for scale in (1e-3, 1.0, 1e3):
        z = (rng.standard_normal((n, m)) * scale).astype(dtype)
        out[f"scale {scale:g}"] = z
    # gaps of 1e4 between groups of logits in a row
    z = rng.standard_normal((n, m)) + rng.choice([-1e4, 0.0, 1e4], size=(n, m))
    z[0] = [0.0, 1e4] * (m // 2)
    z[1] = [-1e4, 0.0, 1.0] * (m // 3)
    out["gaps 1e4"] = z.astype(dtype)
    # values near the ends of the range
    big = float(np.finfo(dtype).max)
    huge = 1e308 if dtype is np.float64 else 3e38
    rows = [
        [huge, -huge, 0.0, huge],                 # a tie at the top, a -huge entry
        [big, -big, big, 1.0],                    # differences overflow
        [-huge, -huge, -big, -huge],              # all hugely negative
        [huge, np.nextafter(dtype(huge), dtype(0)), 0.5 * huge, -0.5 * huge],
        [big, np.nextafter(dtype(big), dtype(0)), 1.0, -1.0],
        [-big, -big, -big, -big],
    ]
    z = np.array(rows, dtype=np.float64)
    signs = rng.choice([-1.0, 1.0], size=(n - len(rows), 4))
    rand = signs * rng.uniform(0.5, 1.0, size=(n - len(rows), 4)) * big
    z = np.concatenate([z, rand]).astype(dtype)
    out["near +-max"] = z
    # a wide row block: summation over many classes
    out["wide m=1000"] = (rng.standard_normal((4, 1000)) * 3).astype(dtype)
    data = {}
    for name, z in out.items():
        assert np.all(np.isfinite(z))
        y = rng.integers(0, z.shape[1], size=z.shape[0])
        if name == "near +-max":
            # labels on the most negative entry: losses beyond the range
            y[:6] = np.argmin(z[:6], axis=1)
        data[name] = (np.ascontiguousarray(z), y)
    return data


@functools.lru_cache(maxsize=None)
def _reference(dtype_name):
    """name -> dict of mpf references (exact inputs, 50 digits)."""
    dtype = np.dtype(dtype_name).type
    refs = {}
    for name, (z, y) in _datasets(dtype).items():
        sm, lsm, lse, nll = [], [], [], []
        for row, yi in zip(z.tolist(), y.tolist()):
            zs = [mp.mpf(v) for v in row]            # exact values of the inputs
            r = max(zs)
            d = [v - r for v in zs]
            s = mp.fsum(mp.exp(v) for v in d)
            ls = mp.log(s)
            sm.append([mp.exp(v) / s for v in d])
            lsm.append([v - ls for v in d])
            lse.append(r + ls)
            nll.append((r - zs[yi]) + ls)     # no cancellation of huge terms
        refs[name] = dict(softmax=sm, log_softmax=lsm, logsumexp=lse, nll=nll,
                          nll_sum=mp.fsum(nll), z=z, y=y)
    return refs


def _cases():
    for dt in DTYPES:
        for name in _datasets(dt):
            yield pytest.param(dt, name, id=f"{np.dtype(dt).name}-{name}")


CASES = list(_cases())


# ------------------------------------------------------------ error metrics

def softmax_errors(ours, ref, z, dtype):
    """Relative errors / eps for entries whose reference is a normal number.

    Returns (errors in eps, allowed in eps) as flat arrays.  Entries below
    the normal range are checked separately (`check_softmax_subnormal`).
    """
    eps, tiny = float(np.finfo(dtype).eps), float(np.finfo(dtype).tiny)
    errs, allowed = [], []
    for orow, rrow, zrow in zip(np.asarray(ours, dtype=np.float64).tolist(), ref, z.tolist()):
        zmax = max(zrow)
        for o, p, zj in zip(orow, rrow, zrow):
            if p <= tiny:
                continue
            e = abs(mp.mpf(o) - p) / p / eps if np.isfinite(o) else mp.inf
            errs.append(float(e))
            allowed.append(K + abs(float(mp.mpf(zj) - mp.mpf(zmax))))
    return np.array(errs), np.array(allowed)


def abs_errors(ours, ref, dtype, out_range=None):
    """Absolute errors / (eps max(1, |ref|)); inf where an infinity is wrong.

    `out_range` is the dtype whose range decides representability (default:
    `dtype`, the dtype of the result); eps is always `dtype`'s.
    """
    eps = float(np.finfo(dtype).eps)
    fi = np.finfo(out_range or dtype)
    near_max = float(fi.max) * (1 - K * eps)
    errs = []
    for o, r in zip(np.ravel(np.asarray(ours, dtype=np.float64)).tolist(), ref):
        rr = round_to(r, out_range or dtype)
        if np.isinf(rr):
            errs.append(0.0 if o == rr else np.inf)
        elif np.isinf(o) and abs(rr) >= near_max and np.sign(o) == np.sign(rr):
            errs.append(0.0)   # within tolerance of the overflow threshold
        elif not np.isfinite(o):
            errs.append(np.inf)
        else:
            errs.append(float(abs(mp.mpf(o) - r) / max(1, abs(r)) / eps))
    return np.array(errs)


def _flat(ref):
    return [v for row in ref for v in row]


def max_error_eps(func_name, ours, dtype, refs):
    """Largest error of `ours` in units of eps for one of the reference kinds."""
    if func_name == "softmax":
        errs, _ = softmax_errors(ours, refs["softmax"], refs["z"], dtype)
    elif func_name == "log_softmax":
        errs = abs_errors(ours, _flat(refs["log_softmax"]), dtype)
    elif func_name == "logsumexp":
        errs = abs_errors(ours, refs["logsumexp"], dtype)
    elif func_name == "nll":
        errs = abs_errors(ours, refs["nll"], dtype)
    else:
        raise ValueError(func_name)
    return float(errs.max()) if errs.size else 0.0


def _assert_bound(errs, allowed, what, where):
    bad = np.flatnonzero(errs > allowed)
    assert bad.size == 0, (f"{what}: {bad.size} entries over the bound; worst "
                           f"{errs[bad].max():.3g} eps (allowed {allowed[bad][np.argmax(errs[bad])]:.3g}) "
                           f"in {where}")


# ------------------------------------------------------------------- tests

@pytest.mark.parametrize("dtype,name", CASES)
def test_softmax_accuracy(dtype, name):
    refs = _reference(np.dtype(dtype).name)[name]
    z = refs["z"]
    ours = softmax(z)
    assert ours.dtype == dtype
    errs, allowed = softmax_errors(ours, refs["softmax"], z, dtype)
    _assert_bound(errs, allowed, "softmax relative error", name)
    # below the normal range: non-negative, gradual underflow
    fi = np.finfo(dtype)
    sub = float(np.nextafter(dtype(0), dtype(1), dtype=dtype))
    for orow, rrow, zrow in zip(ours.tolist(), refs["softmax"], z.tolist()):
        zmax = max(zrow)
        for o, p, zj in zip(orow, rrow, zrow):
            if p <= fi.tiny:
                d = min(abs(float(mp.mpf(zj) - mp.mpf(zmax))), 1e4)   # |d| may overflow
                slack = (K + d) * float(fi.eps) * p + 2 * sub
                assert 0.0 <= o and abs(mp.mpf(o) - p) <= slack, (name, o, p)


@pytest.mark.parametrize("dtype,name", CASES)
def test_log_softmax_accuracy(dtype, name):
    refs = _reference(np.dtype(dtype).name)[name]
    ours = log_softmax(refs["z"])
    assert ours.dtype == dtype
    errs = abs_errors(ours, _flat(refs["log_softmax"]), dtype)
    _assert_bound(errs, np.full(errs.shape, K), "log_softmax abs error", name)


@pytest.mark.parametrize("dtype,name", CASES)
def test_logsumexp_accuracy(dtype, name):
    refs = _reference(np.dtype(dtype).name)[name]
    ours = logsumexp(refs["z"])
    assert ours.dtype == dtype
    errs = abs_errors(ours, refs["logsumexp"], dtype)
    _assert_bound(errs, np.full(errs.shape, K), "logsumexp abs error", name)


@pytest.mark.parametrize("dtype,name", CASES)
def test_nll_none_accuracy(dtype, name):
    refs = _reference(np.dtype(dtype).name)[name]
    ours = nll_loss(refs["z"], refs["y"], reduction="none")
    assert ours.dtype == dtype
    errs = abs_errors(ours, refs["nll"], dtype)
    _assert_bound(errs, np.full(errs.shape, K), "nll_loss(reduction='none') abs error", name)


@pytest.mark.parametrize("dtype,name", CASES)
def test_nll_sum_accuracy(dtype, name):
    refs = _reference(np.dtype(dtype).name)[name]
    ours = nll_loss(refs["z"], refs["y"], reduction="sum")
    assert isinstance(ours, float)
    errs = abs_errors([ours], [refs["nll_sum"]], dtype, out_range=np.float64)
    _assert_bound(errs, np.full(errs.shape, K), "nll_loss(reduction='sum') abs error", name)


def test_out_of_range_results_are_infinite():
    """Spot checks of the rule 'a true value beyond the range is the matching infinity'."""
    big32 = float(np.finfo(np.float32).max)
    z = np.array([[3e38, -3e38]], dtype=np.float32)
    # log_softmax of -3e38 is -6e38: beyond float32
    assert log_softmax(z)[0, 1] == -np.inf
    assert log_softmax(z)[0, 0] == 0.0
    # nll of label 1: 6e38 -> +inf in float32 ("none"), exact as a Python float ("sum")
    assert nll_loss(z, [1], reduction="none")[0] == np.inf
    assert nll_loss(z, [1], reduction="sum") == pytest.approx(6e38, rel=1e-6)
    # logsumexp([3e38, 3e38]) = 3e38 + log 2, which float32 represents (no overflow)
    assert logsumexp(np.array([3e38, 3e38], dtype=np.float32)) == np.float32(3e38)
    assert logsumexp(np.array([big32, big32], dtype=np.float32)) == np.float32(big32)
    z64 = np.array([[1.7e308, -1.7e308]])
    assert log_softmax(z64)[0, 1] == -np.inf
    assert nll_loss(z64, [1], reduction="none")[0] == np.inf
    assert nll_loss(z64, [1], reduction="sum") == np.inf
    assert nll_loss(z64, [0], reduction="sum") == 0.0


def test_report_max_errors():
    """Print the largest errors (in eps) of ours and of scipy.special, per data set."""
    lines = [f"{'dtype':8} {'data':12} {'function':12} {'ours':>10} {'scipy':>10}"]
    for dtype in DTYPES:
        allrefs = _reference(np.dtype(dtype).name)
        for name, refs in allrefs.items():
            z = refs["z"]
            with np.errstate(all="ignore"):
                pairs = {
                    "softmax": (softmax(z), sps.softmax(z, axis=-1)),
                    "log_softmax": (log_softmax(z), sps.log_softmax(z, axis=-1)),
                    "logsumexp": (logsumexp(z), sps.logsumexp(z, axis=-1)),
                    "nll": (nll_loss(z, refs["y"], reduction="none"),
                            sps.logsumexp(z, axis=-1) - z[np.arange(len(z)), refs["y"]]),
                }
            for fn, (ours, theirs) in pairs.items():
                a = max_error_eps(fn, ours, dtype, refs)
                b = max_error_eps(fn, theirs, dtype, refs)
                lines.append(f"{np.dtype(dtype).name:8} {name:12} {fn:12} {a:10.3g} {b:10.3g}")
                # the documented bounds, over the whole data set: 16 eps, and
                # for softmax 16 + |z_j - max z| eps (its largest value here)
                if fn == "softmax":
                    with np.errstate(all="ignore"):
                        shift = np.abs(z.astype(np.float64) - z.max(axis=-1, keepdims=True))
                    bound = 16 + float(np.max(shift[np.isfinite(shift)], initial=0.0))
                else:
                    bound = 16
                assert a <= bound, f"{np.dtype(dtype).name} {name} {fn}: {a:.3g} eps > {bound:.3g}"
    print("\nlargest errors in eps (softmax: relative, where the reference is normal;"
          " others: absolute / max(1, |ref|)); inf = wrong or missing infinity;"
          " scipy's nll is scipy.special.logsumexp(z) - z_y")
    print("\n".join(lines))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [3, 10, 31])
def test_nll_total_over_many_small_rows(dtype, m):
    """The unweighted small-class NLL total takes sum_i log s_i as the log of
    one running product (its binary exponent kept aside after each block of
    rows).  Over 200,000 rows it must agree with the weighted path given unit
    weights, which takes one log per row (same s_i, so to 1e-12), and with a
    float64 reference summed exactly (math.fsum) within the per-row bound
    K eps max(1, |C_i|) summed plus the rounding of a sum of n doubles; a NaN
    row anywhere must make it NaN."""
    import math
    rng = np.random.default_rng(m)
    n = 200_000
    z = (rng.standard_normal((n, m)) * 3).astype(dtype)
    y = rng.integers(0, m, n)
    got = nll_loss(z, y, reduction="sum")
    per_row_logs = nll_loss(z, y, sample_weight=np.ones(n), reduction="sum")
    assert abs(got - per_row_logs) <= 1e-12 * abs(per_row_logs), (got, per_row_logs)
    z64 = z.astype(np.float64)
    per_row = sps.logsumexp(z64, axis=1) - z64[np.arange(n), y]
    ref = math.fsum(per_row.tolist())
    # against the independent reference, near what was measured (2026-12,
    # every SIMD variant alike): float64 within 4.7 / 18.5 / 2.3 eps64 x
    # sum|C_i| for m = 3 / 10 / 31, bound 64 (3.5x headroom); float32 within
    # 5.2e-4 eps32 x sum|C_i|: the rows' errors (each below K eps32 |C_i|)
    # are independent and add like a random walk, so the bound is
    # K eps32 sum|C_i| / sqrt(n) (= 0.036 eps32 sum|C_i| here, 70x headroom)
    total_abs = math.fsum(np.abs(per_row).tolist())
    if dtype == np.float64:
        bound = 64 * np.finfo(np.float64).eps * total_abs
    else:
        bound = K * float(np.finfo(np.float32).eps) * total_abs / math.sqrt(n)
    assert abs(got - ref) <= bound, (got, ref, abs(got - ref) / bound)
    assert abs(nll_loss(z, y) - ref / n) <= bound / n
    z[n // 2, m // 2] = np.nan
    assert np.isnan(nll_loss(z, y, reduction="sum"))
