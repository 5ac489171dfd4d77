"""The kernels' exp (cs_exp.h; cs_exp_avx512.h in the avx512 variant) on
every float32 input, and on millions of float64 ones.

* float32, exhaustive (slow: about a minute per variant): every float32 x
  from -104 to 89 -- the whole range where exp(x) is a normal number, the
  subnormal results below it down to where they round to 0, and the
  overflow threshold above -- is evaluated by the C entry cs_exp_array_f
  of each SIMD variant this CPU runs (a subprocess per variant with
  CYSOFTMAX_SIMD set: the variant is chosen once per process), and the
  error must be <= 1.5 ulp of the correctly rounded result (subnormal ulps
  below the normal range), with +inf exactly where the result overflows.
  The normal-range exp (cs_exp_nr_array_f, the one the row kernels run)
  must give the same bits on [-87, 0].  mpmath over 2**31 inputs would take
  days, so the reference of the sweep is float64 ``np.exp`` of the (exact)
  float64 conversion of x: its error, a float64 ulp or less, is 2**-29 of a
  float32 ulp, negligible against the 1.5 ulp bound.  That claim about
  ``np.exp`` is itself checked here against mpmath (50 digits) on a large
  random sample of float32 inputs plus the edges.
* float64, sampled: four million random inputs (uniform over the normal
  range, log-uniform magnitudes down to 1e-300, the ln2/2 grid and the
  edges) against ``np.exp`` in long double (x87 80-bit on x86-64: 2**-11 of
  a float64 ulp), itself checked against mpmath on a smaller sample; the
  active variant (CI runs this file per variant).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cysoftmax import _softmax

mp = pytest.importorskip("mpmath").mp
mp.dps = 50

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_ULP = 1.5


def _f32_sample(n, seed):
    """float32 x in [-104, 89]: uniform, log-uniform magnitudes, edges."""
    rng = np.random.default_rng(seed)
    uni = rng.uniform(-104.0, 89.0, n)
    mags = 10.0 ** rng.uniform(-45, np.log10(89.0), n)
    signed = np.where(rng.random(n) < 0.5, -mags, mags)
    fi = np.finfo(np.float32)
    edges = [0.0, -0.0, float(fi.tiny), -float(fi.tiny), 88.72283, 88.72284, -87.33654,
             -87.33655, -103.27893, -103.97208, 89.0, -104.0, -87.0]
    x = np.concatenate([uni, signed, edges]).astype(np.float32)
    return x[(x >= -104.0) & (x <= 89.0)]


def test_float64_np_exp_is_a_good_enough_reference_for_float32():
    """The sweep's reference: np.exp in float64 within a few float64 ulps (vs mpmath).

    What the sweep needs is that the reference's error is negligible against
    a float32 ulp: 4 float64 ulps are 2^-27 of one.  (NumPy >= 2 is within
    1 ulp here; NumPy 1.25, the oldest we support, within about 1.5.)"""
    x = _f32_sample(20_000, 5)
    ref = np.exp(x.astype(np.float64))
    worst = 0.0
    for xi, ri in zip(x.tolist(), ref.tolist()):
        exact = mp.exp(mp.mpf(xi))
        worst = max(worst, float(abs(mp.mpf(ri) - exact) / mp.mpf(float(np.spacing(ri)))))
    print(f"\nnp.exp float64 on float32 inputs: max error {worst:.3f} float64 ulp")
    assert worst <= 4.0


def _run_sweep(variant):
    env = dict(os.environ, CYSOFTMAX_SIMD=variant)
    r = subprocess.run([sys.executable, os.path.join(HERE, "_exp_sweep.py")], env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _expected_count():
    b = lambda v: int(np.array(v, dtype=np.float32).view(np.uint32))  # noqa: E731
    return (b(89.0) - b(0.0) + 1) + (b(-104.0) - b(-0.0) + 1)


@pytest.mark.slow
@pytest.mark.parametrize("variant", _softmax.simd_supported())
def test_float32_exp_every_input(variant):
    res = _run_sweep(variant)
    print(f"\n{res}")
    assert res["variant"] == variant
    assert res["count"] == _expected_count()
    assert res["bad_inf"] == 0, f"{res['bad_inf']} inputs overflow wrongly"
    assert res["max_ulp"] <= MAX_ULP, (
        f"float32 exp({res['worst_x']!r}) is {res['max_ulp']:.4f} ulp off ({variant})")
    assert res["nr_mismatch"] == 0, (
        f"{res['nr_mismatch']} inputs in [-87, 0] where the normal-range exp differs "
        f"from the general one ({variant})")


LD_OK = np.finfo(np.longdouble).nmant >= 63


def _f64_sample(n, seed):
    rng = np.random.default_rng(seed)
    lo, hi = -708.39, 709.78          # exp(x) a normal float64
    uni = rng.uniform(lo, hi, n)
    mags = 10.0 ** rng.uniform(-300, np.log10(hi), n)
    signed = np.where(rng.random(n) < 0.5, -mags, mags)
    signed = signed[(signed >= lo) & (signed <= hi)]
    k = np.arange(int(lo / np.log(2)), int(hi / np.log(2)))
    grid = np.concatenate([k * np.log(2), (k + 0.5) * np.log(2)])
    grid = np.concatenate([grid, np.nextafter(grid, np.inf), np.nextafter(grid, -np.inf)])
    edges = np.array([0.0, -0.0, 5e-324, -5e-324, 2.0**-53, -(2.0**-53), lo, hi, -708.0])
    x = np.concatenate([uni, signed, grid, edges])
    return x[(x >= lo) & (x <= hi)]


@pytest.mark.skipif(not LD_OK, reason="long double is not extended precision here")
def test_long_double_np_exp_is_a_good_enough_reference_for_float64():
    x = _f64_sample(2_000, 9)
    ref = np.exp(x.astype(np.longdouble))
    worst = 0.0
    for xi, ri in zip(x.tolist(), ref):
        exact = mp.exp(mp.mpf(xi))
        ulp = mp.mpf(float(np.spacing(np.float64(ri))))
        # mpf of a long double: through its exact decimal repr
        worst = max(worst, float(abs(mp.mpf(np.format_float_scientific(ri, unique=True))
                                     - exact) / ulp))
    print(f"\nnp.exp long double: max error {worst:.2e} float64 ulp")
    assert worst <= 2.0**-10


@pytest.mark.skipif(not LD_OK, reason="long double is not extended precision here")
def test_float64_exp_four_million_inputs():
    x = _f64_sample(2_000_000, 13)
    assert x.size > 3_900_000, x.size
    ours = np.empty_like(x)
    _softmax.exp_array(x, ours)
    ref = np.exp(x.astype(np.longdouble))
    err = np.abs(ours.astype(np.longdouble) - ref) / np.spacing(ref.astype(np.float64))
    i = int(np.argmax(err))
    print(f"\nfloat64 exp ({_softmax.simd_active()}): max error {float(err[i]):.4f} ulp "
          f"over {x.size} inputs")
    assert err[i] <= MAX_ULP, f"float64 exp({x[i]!r}) is {float(err[i]):.4f} ulp off"
    # the normal-range exp gives the same bits on [-708, 0]
    neg = np.ascontiguousarray(x[(x >= -708.0) & (x <= 0.0)])
    a, b = np.empty_like(neg), np.empty_like(neg)
    _softmax.exp_array(neg, a)
    _softmax.exp_array(neg, b, normal_range=True)
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
