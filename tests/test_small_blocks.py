"""The small-m block path (m < 32 classes: blocks of 16 float32 / 8 float64
rows, moved by in-register transposes in the avx512 variant, small_avx512.h)
on every shape it can meet: every m from 1 to 31 (one and two column tiles,
full and partial), row counts below, at and past a block and not a multiple
of it, special rows inside a block (NaN, +inf, all -inf, -inf entries, a
spread past the cheap exp's range), in place, and non-contiguous inputs.

Checked against the float64 NumPy references of _reference.py with the
bounds of test_accuracy.py (plus the float64 reference's own rounding), in
whichever variant CYSOFTMAX_SIMD selects (.ci/run runs the suite once per
variant); and the variants against each other, to a few eps.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from _reference import ref_lse_rows, ref_nll, ref_softmax_rows

from cysoftmax import _softmax, log_softmax, logsumexp, nll_loss_and_gradient, softmax

DTYPES = [np.float32, np.float64]
MS = list(range(1, 32))
NS = [1, 7, 8, 9, 16, 17, 40]


def _logits(n, m, dtype, seed):
    """Random logits with special rows placed inside the first block."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m)) * 3
    specials = [
        lambda r: r.__setitem__(m // 2, np.nan),            # NaN -> NaN row
        lambda r: r.__setitem__(0, np.inf),                 # +inf -> NaN row
        lambda r: r.__setitem__(slice(None), -np.inf),      # all -inf -> NaN row
        lambda r: r.__setitem__(slice(0, None, 2), -np.inf) if m > 1 else None,  # masked entries
        lambda r: r.__setitem__(m - 1, r[m - 1] + 500.0),   # spread past the cheap exp's range
    ]
    for i, f in zip(range(1, n, 2), specials):
        f(z[i])
    return z.astype(dtype)


def _close(got, ref, tol):
    both_nan = np.isnan(got) & np.isnan(ref)
    same = (got == ref) | both_nan
    err = np.where(same, 0.0, np.abs(got.astype(np.float64) - ref))
    assert np.all(np.isnan(got) == np.isnan(ref))
    assert np.all(err <= tol), (np.max(err / np.maximum(tol, 1e-300)))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", MS)
def test_small_m_every_shape(dtype, m):
    eps = np.finfo(dtype).eps
    for n in NS:
        z = _logits(n, m, dtype, seed=1000 * m + n)
        z64 = z.astype(np.float64)
        # softmax: (16 + |z_j - max|) eps relative (+ the float64 reference's rounding)
        p = softmax(z)
        ref = ref_softmax_rows(z64)
        d = np.abs(z64 - np.nanmax(np.where(np.isfinite(z64), z64, -np.inf), axis=1,
                                   keepdims=True, initial=-np.inf))
        d = np.where(np.isfinite(d), d, 0.0)
        tiny = np.finfo(dtype).tiny
        _close(p, ref, (16 + d) * eps * np.abs(np.nan_to_num(ref)) + 4 * tiny * eps + 1e-15 * (dtype is np.float64) * np.abs(np.nan_to_num(ref)))
        # log_softmax / logsumexp: 16 eps max(1, |ref|) absolute
        lp = log_softmax(z)
        ref = ref_softmax_rows(z64, log=True)
        _close(lp, ref, 16 * eps * np.maximum(1, np.abs(np.nan_to_num(ref, posinf=0, neginf=0))))
        lse = logsumexp(z)
        ref = ref_lse_rows(z64)
        _close(lse, ref, 16 * eps * np.maximum(1, np.abs(np.nan_to_num(ref, posinf=0, neginf=0))))
        # in place, and non-contiguous inputs: the same bits as the plain call
        zz = z.copy()
        assert softmax(zz, out=zz) is zz
        np.testing.assert_array_equal(zz, p)
        zz = z.copy()
        log_softmax(zz, out=zz)
        np.testing.assert_array_equal(zz, lp)
        wide = np.full((n, m + 5), 7.0, dtype=dtype)
        wide[:, 2:2 + m] = z
        np.testing.assert_array_equal(softmax(wide[:, 2:2 + m]), p)
        np.testing.assert_array_equal(log_softmax(wide[:, 2:2 + m]), lp)
        np.testing.assert_array_equal(softmax(np.asfortranarray(z)), p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", MS)
def test_small_m_nll_gradient(dtype, m):
    eps = np.finfo(dtype).eps
    for n in (9, 17, 40):
        rng = np.random.default_rng(m * 7 + n)
        z = (rng.standard_normal((n, m)) * 3).astype(dtype)
        y = rng.integers(0, m, n)
        loss, grad = nll_loss_and_gradient(z, y, reduction="sum")
        rl, rg = ref_nll(z, y, reduction="sum")
        assert abs(loss - rl) <= 16 * eps * max(1.0, abs(rl)) * n
        np.testing.assert_allclose(grad, rg, rtol=32 * eps, atol=4 * eps)


_VARIANT_CODE = r"""
import numpy as np, sys
from cysoftmax import softmax, log_softmax, logsumexp
out = []
for dt in (np.float32, np.float64):
    for m in range(1, 32):
        z = (np.random.default_rng(m).standard_normal((37, m)) * 4).astype(dt)
        out += [softmax(z).astype(np.float64), log_softmax(z).astype(np.float64),
                logsumexp(z).astype(np.float64)]
np.savez(sys.argv[1], *out)
"""


def test_small_m_variants_agree(tmp_path):
    """Every supported variant to within a few eps of the baseline (the
    generic C): the transposes move values, they never change them."""
    res = {}
    for v in _softmax.simd_supported():
        env = dict(os.environ, CYSOFTMAX_SIMD=v)
        path = tmp_path / f"{v}.npz"
        r = subprocess.run([sys.executable, "-c", _VARIANT_CODE, str(path)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        with np.load(path) as f:
            res[v] = [f[k] for k in sorted(f.files, key=lambda s: int(s.split("_")[1]))]
    base = res["baseline"]
    for v, arrs in res.items():
        for k, (a, b) in enumerate(zip(arrs, base)):
            eps = np.finfo(np.float32 if k < 3 * 31 else np.float64).eps
            np.testing.assert_allclose(a, b, rtol=8 * eps, atol=8 * eps, err_msg=f"{v} #{k}")
