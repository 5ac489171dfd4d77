"""where= masks for softmax, log_softmax and logsumexp (issue 14, kernels v2).

A kept entry behaves as in the unmasked functions; a masked entry's value is
never used (a NaN or inf under the mask changes nothing) and gets
probability 0 / log-probability -inf; a slice with no kept entry gives
zeros / -inf / -inf, not NaN.  Checked against:

* mpmath at 50 digits on the kept entries alone (the masked ones dropped),
  with test_accuracy.py's bounds: softmax relative error <= (16 + |z_j - r|)
  eps where the true value is normal (gradual underflow below), log_softmax
  and logsumexp absolute error <= 16 eps max(1, |true|), the infinity of the
  right sign beyond the range -- at m = 2, 3, 10, 31 (the small-m block
  path, including partial blocks) and 32, 1000 (the row path);
* the float64 NumPy reference of tests/_reference.py (kept entries dropped
  into an array of their own) for the layouts: broadcast masks, axis=0,
  tuples, None, out=, non-contiguous inputs and masks;
* the same call with the masked entries replaced by 0 (bit for bit);
* PyTorch's softmax of z.masked_fill(~mask, -inf) where a row keeps an entry
  (and its NaN where none is kept, which is what we document).

CI runs this file under every CYSOFTMAX_SIMD variant.
"""

import numpy as np
import pytest
from mpmath import mp
from threadpoolctl import threadpool_limits

import _requires
from _reference import (
    ref_log_softmax_where,
    ref_logsumexp_where,
    ref_softmax_where,
)

import cysoftmax as cs
from cysoftmax import _softmax

mp.dps = 50

DTYPES = [np.float32, np.float64]
SMALL_MS = [2, 3, 10, 31]      # below CS_SMALL_M: blocks of rows
LARGE_MS = [32, 1000]          # one row at a time
MS = SMALL_MS + LARGE_MS
K = 16                         # test_accuracy.py's bound constant (eps)
FUNCS = ["softmax", "log_softmax", "logsumexp"]
PAR_MIN = 32768                # dispatch.c's CS_PAR_MIN
inf, nan = np.inf, np.nan


def _call(name, z, where, **kw):
    return getattr(cs, name)(z, where=where, **kw)


def _ref(name, z, where, axis=-1, **kw):
    f = {"softmax": ref_softmax_where, "log_softmax": ref_log_softmax_where,
         "logsumexp": ref_logsumexp_where}[name]
    return f(z, where, axis, **kw)


def _close(got, ref, dtype):
    """Same non-finite values at the same places; finite ones to 64 eps."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == dtype, (got.shape, ref.shape, got.dtype)
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64),
                               rtol=64 * eps, atol=64 * eps, equal_nan=True)
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(got[~fin], ref[~fin])


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def _random_mask(rng, shape, p=0.7):
    return rng.random(shape) < p


# ------------------------------------------------- accuracy on the kept entries

def _accuracy_case(dtype, m):
    """(z, mask): rows of many scales and near the range, with random masks,
    junk (NaN, +-inf, huge) under the mask, one row with nothing kept, one
    with a single entry kept and one whose largest value is masked."""
    rng = np.random.default_rng(100 * m + np.dtype(dtype).itemsize)
    fi = np.finfo(dtype)
    big = float(fi.max)
    n_each = 5 if m >= 1000 else 9
    rows = []
    for scale in (1e-3, 1.0, 1e3):
        rows += list(rng.standard_normal((n_each, m)) * scale)
    gaps = rng.standard_normal((n_each, m)) + rng.choice([-1e4, 0.0, 1e4], size=(n_each, m))
    rows += list(gaps)
    near = rng.choice([-1.0, 1.0], size=(n_each, m)) * rng.uniform(0.5, 1.0, (n_each, m)) * big
    rows += list(near)
    z = np.array(rows).astype(dtype)
    mask = _random_mask(rng, z.shape)
    mask[np.arange(len(z)), rng.integers(0, m, len(z))] = True   # most rows keep one
    mask[1] = False                                   # nothing kept
    mask[2] = False
    mask[2, m // 2] = True                            # one entry kept
    j = int(np.argmax(z[3]))
    mask[3, j] = False                                # the row max is masked
    z[3, j] = fi.max
    junk = np.array([nan, inf, -inf, fi.max, -fi.max], dtype=dtype)
    z[~mask] = rng.choice(junk, size=int((~mask).sum()))
    return np.ascontiguousarray(z), mask


def _round_to(x, dtype):
    """An mpf rounded to `dtype` (Python float); +-inf beyond its range."""
    fi = np.finfo(dtype)
    if x == 0:
        return 0.0
    p = fi.nmant + 1
    _, e = mp.frexp(x)
    q = max(e - p, fi.minexp - p + 1)
    r = mp.ldexp(mp.nint(mp.ldexp(x, -q)), q)
    if abs(r) > mp.mpf(float(fi.max)):
        return inf if r > 0 else -inf
    return float(r)


def _kept_refs(row, keep):
    """mpf softmax, log_softmax and logsumexp of the kept entries of a row."""
    zs = [mp.mpf(float(v)) for v in row[keep]]
    r = max(zs)
    d = [v - r for v in zs]
    s = mp.fsum(mp.exp(v) for v in d)
    ls = mp.log(s)
    return [mp.exp(v) / s for v in d], [v - ls for v in d], r + ls, d


def _abs_ok(o, ref, dtype):
    """test_accuracy.py's absolute bound, or the right infinity beyond the range."""
    eps = float(np.finfo(dtype).eps)
    rr = _round_to(ref, dtype)
    if np.isinf(rr):
        return o == rr
    near_max = float(np.finfo(dtype).max) * (1 - K * eps)
    if np.isinf(o):
        return abs(rr) >= near_max and np.sign(o) == np.sign(rr)
    return abs(mp.mpf(float(o)) - ref) / max(1, abs(ref)) <= K * eps


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_matches_mpmath_on_the_kept_entries(dtype, m):
    z, mask = _accuracy_case(dtype, m)
    fi = np.finfo(dtype)
    eps, tiny = float(fi.eps), float(fi.tiny)
    sub = float(np.nextafter(dtype(0), dtype(1), dtype=dtype))
    with threadpool_limits(limits=1, user_api="openmp"):
        p, lp, lse = cs.softmax(z, where=mask), cs.log_softmax(z, where=mask), \
            cs.logsumexp(z, where=mask)
    assert p.dtype == lp.dtype == lse.dtype == dtype
    bad = []
    for i, (row, keep) in enumerate(zip(z, mask)):
        # masked entries, and every entry of a row with nothing kept: exactly 0 / -inf
        if not (np.all(p[i][~keep] == 0) and np.all(lp[i][~keep] == -inf)):
            bad.append(f"row {i}: masked entries {p[i][~keep]} {lp[i][~keep]}")
        if not keep.any():
            if lse[i] != -inf:
                bad.append(f"row {i}: nothing kept, logsumexp {lse[i]}")
            continue
        sm, lsm, ref_lse, d = _kept_refs(row, keep)
        for o, ref, dj in zip(p[i][keep].tolist(), sm, d):
            if ref > tiny:
                ok = abs(mp.mpf(o) - ref) / ref <= (K + abs(float(dj))) * eps
            else:             # below the normal range: gradual underflow
                slack = (K + min(abs(float(dj)), 1e4)) * eps * ref + 2 * sub
                ok = o >= 0 and abs(mp.mpf(o) - ref) <= slack
            if not ok:
                bad.append(f"softmax row {i}: got {o!r}, true {mp.nstr(ref, 10)}")
        for o, ref in zip(lp[i][keep].tolist(), lsm):
            if not _abs_ok(o, ref, dtype):
                bad.append(f"log_softmax row {i}: got {o!r}, true {mp.nstr(ref, 10)}")
        if not _abs_ok(float(lse[i]), ref_lse, dtype):
            bad.append(f"logsumexp row {i}: got {lse[i]!r}, true {mp.nstr(ref_lse, 10)}")
    assert not bad, f"{len(bad)} entries over the bound:\n" + "\n".join(bad[:20])


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_an_all_true_mask_is_the_unmasked_function(dtype, m):
    """Same numerics as the unmasked kernels: to the last bit or two."""
    rng = np.random.default_rng(m)
    z = (rng.standard_normal((37, m)) * 5).astype(dtype)
    z[0, 0] = -inf                               # a kept -inf
    keep = np.ones(z.shape, dtype=bool)
    eps = float(np.finfo(dtype).eps)
    for name in FUNCS:
        got, ref = _call(name, z, keep), getattr(cs, name)(z)
        np.testing.assert_allclose(got, ref, rtol=4 * eps, atol=0)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))


# ------------------------------------------------------- masked values unused

@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_values_under_the_mask_change_nothing(dtype, m, name):
    rng = np.random.default_rng(7 * m)
    n = 37                                       # several blocks, a partial one
    z = (rng.standard_normal((n, m)) * 3).astype(dtype)
    mask = _random_mask(rng, z.shape, 0.6)
    mask[5] = False                              # a row with nothing kept
    zeros = np.where(mask, z, dtype(0))
    big = np.finfo(dtype).max
    for junk in (nan, inf, -inf, big, -big, 1e4):
        z_junk = np.where(mask, z, dtype(junk))
        np.testing.assert_array_equal(_bits(_call(name, z_junk, mask)),
                                      _bits(_call(name, zeros, mask)), err_msg=f"junk {junk}")
    mixed = zeros.copy()
    mixed[~mask] = rng.choice(np.array([nan, inf, -inf, big], dtype=dtype),
                              size=int((~mask).sum()))
    np.testing.assert_array_equal(_bits(_call(name, mixed, mask)),
                                  _bits(_call(name, zeros, mask)))


# ------------------------------------------------------------ special rows

@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_rows_with_nothing_kept(dtype, m):
    """zeros / -inf / -inf, never NaN, whatever the row holds; other rows of
    the same block are what they are alone."""
    rng = np.random.default_rng(m + 1)
    n = 21
    z = (rng.standard_normal((n, m)) * 2).astype(dtype)
    z[3] = nan
    z[4] = inf
    z[5] = -inf
    mask = _random_mask(rng, z.shape, 0.8)
    mask[:, 0] = True
    none_kept = [1, 3, 4, 5, 20]
    mask[none_kept] = False
    p, lp, lse = cs.softmax(z, where=mask), cs.log_softmax(z, where=mask), \
        cs.logsumexp(z, where=mask)
    for i in none_kept:
        assert np.all(p[i] == 0) and not np.signbit(p[i]).any(), p[i]
        assert np.all(lp[i] == -inf), lp[i]
        assert lse[i] == -inf
    for i in set(range(n)) - set(none_kept):
        row, keep = z[i:i + 1], mask[i:i + 1]
        np.testing.assert_array_equal(p[i], cs.softmax(row, where=keep)[0])
        np.testing.assert_array_equal(lp[i], cs.log_softmax(row, where=keep)[0])
        np.testing.assert_array_equal(lse[i], cs.logsumexp(row, where=keep)[0])
    assert np.all(np.isfinite(p)) and not np.isnan(lp).any() and not np.isnan(lse).any()


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_kept_special_values_behave_as_unmasked(dtype, m):
    """Kept NaN / +inf / only -inf: a NaN row as without a mask (logsumexp:
    NaN, +inf, -inf as SciPy); kept -inf next to finite values: 0 / -inf."""
    z = np.zeros((6, m), dtype=dtype)
    z[:, :] = np.arange(m, dtype=dtype) / 4
    mask = np.zeros((6, m), dtype=bool)
    mask[:, 0] = True
    z[0, 0] = nan
    z[1, 0] = inf
    z[2, 0] = -inf                                        # only -inf kept
    z[3, 0] = -inf
    mask[3, m - 1] = True                                 # -inf next to a finite entry
    mask[4] = True
    mask[4, 0] = False                                    # all but the first
    z[5, 0] = 7.5                                         # one finite entry kept
    if m > 2:
        mask[0:2, 1] = True                               # the special one among finite ones
    p, lp, lse = cs.softmax(z, where=mask), cs.log_softmax(z, where=mask), \
        cs.logsumexp(z, where=mask)
    for i in (0, 1, 2):
        assert np.isnan(p[i]).all() and np.isnan(lp[i]).all(), i
    assert np.isnan(lse[0]) and lse[1] == inf and lse[2] == -inf
    assert p[3, 0] == 0 and p[3, m - 1] == 1 and lp[3, 0] == -inf and lp[3, m - 1] == 0
    assert lse[3] == z[3, m - 1]
    ref = cs.softmax(z[4:5, 1:])
    np.testing.assert_allclose(p[4, 1:], ref[0], rtol=4 * np.finfo(dtype).eps)
    assert p[5, 0] == 1 and lp[5, 0] == 0 and lse[5] == dtype(7.5)
    assert np.all(p[5, 1:] == 0) and np.all(lp[5, 1:] == -inf)


def test_against_torch_masked_fill():
    torch = _requires.import_module("torch", "torch")
    rng = np.random.default_rng(3)
    for m in (3, 10, 1000):
        z = rng.standard_normal((40, m)) * 3
        mask = _random_mask(rng, z.shape, 0.5)
        mask[:, 0] |= rng.random(40) < 0.9
        mask[7] = False
        t = torch.from_numpy(z).masked_fill(~torch.from_numpy(mask), float("-inf"))
        tp = torch.softmax(t, dim=-1).numpy()
        tl = torch.log_softmax(t, dim=-1).numpy()
        tlse = torch.logsumexp(t, dim=-1).numpy()
        rows = mask.any(axis=1)
        np.testing.assert_allclose(cs.softmax(z, where=mask)[rows], tp[rows], rtol=1e-13,
                                   atol=1e-300)
        # (absolute near 0: ours is exact in relative terms there, torch's is not)
        np.testing.assert_allclose(cs.log_softmax(z, where=mask)[rows], tl[rows], rtol=1e-13,
                                   atol=1e-15)
        np.testing.assert_allclose(cs.logsumexp(z, where=mask), tlse, rtol=1e-13)
        # what the docstrings say: PyTorch's softmax is NaN on a row with nothing kept
        assert np.isnan(tp[7]).all() and np.isnan(tl[7]).all()
        assert (cs.softmax(z, where=mask)[7] == 0).all()
        assert (cs.log_softmax(z, where=mask)[7] == -inf).all()


# ------------------------------------------------------ broadcasting, layouts

def _data(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype), rng


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("m", [3, 40])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_masks_broadcast_along_either_axis(dtype, m, name):
    n = 50
    z, rng = _data(dtype, (n, m))
    masks = {
        "(1, m)": _random_mask(rng, (1, m)),
        "(m,)": _random_mask(rng, (m,)),
        "(n, 1)": _random_mask(rng, (n, 1)),
        "scalar True": np.bool_(True),
        "scalar False": np.array(False),
    }
    for what, w in masks.items():
        got = _call(name, z, w)
        _close(got, _ref(name, z, w), dtype)
        # the same as the mask written out in full
        full = np.ascontiguousarray(np.broadcast_to(w, z.shape))
        np.testing.assert_array_equal(_bits(got), _bits(_call(name, z, full)), err_msg=what)


@pytest.mark.parametrize("name", FUNCS)
def test_a_mask_shared_by_every_row_is_read_as_one_row(name, monkeypatch):
    """(1, m), (m,) and masks broadcast along the non-class axes reach the
    kernel as one row (row stride 0); an (n, 1) mask is written out; a mask
    of the input's shape and layout is not copied (bool viewed as uint8)."""
    seen = {}
    kname = f"{name}_masked_rows"
    real = getattr(_softmax, kname)

    def spy(z2, mask2, out):
        seen["mask2"] = mask2
        real(z2, mask2, out)

    monkeypatch.setattr(_softmax, kname, spy)
    rng = np.random.default_rng(0)

    def layout(shape, mshape, axis=-1):
        w = _random_mask(rng, mshape)
        _call(name, np.zeros(shape), w, axis=axis)
        m2 = seen["mask2"]
        assert m2.dtype == np.uint8 and m2.flags.c_contiguous
        return m2, w

    assert layout((50, 7), (1, 7))[0].shape == (1, 7)
    assert layout((50, 7), (7,))[0].shape == (1, 7)
    assert layout((4, 5, 7), (4, 1, 7), (0, 2))[0].shape == (1, 28)
    assert layout((50, 7), (50, 1))[0].shape == (50, 7)
    assert layout((4, 5, 7), (4, 5, 1), (0, 2))[0].shape == (5, 28)
    m2, w = layout((50, 7), (50, 7))
    assert np.shares_memory(m2, w)
    m2, w = layout((6, 7), (6, 7), 0)          # class axis not trailing: moved (a copy)
    np.testing.assert_array_equal(m2, w.T)


AXES_CASES = [
    ((4, 5, 6), -1, (5, 6)),        # mask missing the leading axis
    ((4, 5, 6), 0, (4, 5, 6)),
    ((4, 5, 6), 0, (4, 1, 1)),      # one mask value per class
    ((4, 5, 6), 1, (4, 5, 1)),
    ((4, 5, 6), (0, 2), (4, 5, 6)),
    ((4, 5, 6), (0, 2), (4, 1, 6)),  # shared by every slice
    ((4, 5, 6), (1, 2), (1, 5, 6)),
    ((4, 5, 6), None, (4, 5, 6)),
    ((4, 5, 6), None, (6,)),
    ((40, 33), 0, (40, 33)),
    ((40, 33), 0, (40, 1)),
]


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("shape,axis,mshape", AXES_CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_any_axis(dtype, shape, axis, mshape, name):
    z, rng = _data(dtype, shape, seed=len(mshape))
    w = _random_mask(rng, mshape, 0.6)
    z = np.where(np.broadcast_to(w, shape), z, dtype(nan))   # NaN under the mask
    _close(_call(name, z, w, axis=axis), _ref(name, z, w, axis), dtype)
    if name == "logsumexp":
        _close(_call(name, z, w, axis=axis, keepdims=True),
               _ref(name, z, w, axis, keepdims=True), dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("m", [3, 40])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_out_and_in_place(dtype, m, axis, name):
    z, rng = _data(dtype, (30, m))
    w = _random_mask(rng, z.shape)
    w[4] = False
    z[~w] = nan
    ref = _ref(name, z, w, axis)
    out = np.empty_like(z)
    assert _call(name, z, w, axis=axis, out=out) is out
    _close(out, ref, dtype)
    zz = z.copy()
    assert _call(name, zz, w, axis=axis, out=zz) is zz     # in place
    np.testing.assert_array_equal(_bits(zz), _bits(out))
    # a (1, m) mask, in place
    w1 = w[:1]
    zz = z.copy()
    _call(name, zz, w1, axis=axis, out=zz)
    np.testing.assert_array_equal(_bits(zz), _bits(_call(name, z, w1, axis=axis)))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_out_overlapping_the_mask_is_refused(name):
    buf = np.zeros(64, dtype=np.uint8)
    out = buf.view(np.float64).reshape(2, 4)
    w = buf[:8].view(bool).reshape(2, 4)
    z = np.zeros((2, 4))
    with pytest.raises(ValueError, match="out partially overlaps"):
        _call(name, z, w, out=out)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("m", [3, 40])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_non_contiguous_inputs_and_masks(dtype, m, name):
    big, rng = _data(dtype, (60, 2 * m))
    wbig = _random_mask(rng, big.shape)
    cases = {
        "strided": (big[::2, ::2], wbig[::2, ::2]),
        "fortran": (np.asfortranarray(big), np.asfortranarray(wbig)),
        "negative": (big[::-1, ::-3], wbig[::-1, ::-3]),
        "transposed mask": (big[:, :m], np.ascontiguousarray(wbig[:, :m].T).T),
        "read-only": (np.broadcast_to(big[0], big.shape), np.broadcast_to(wbig[:1], big.shape)),
    }
    for what, (z, w) in cases.items():
        got = _call(name, z, w)
        _close(got, _ref(name, z, w), dtype)
        np.testing.assert_array_equal(
            _bits(got), _bits(_call(name, np.ascontiguousarray(z), np.ascontiguousarray(w))),
            err_msg=what)


def test_array_like_masks_and_dtypes():
    z = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
    w = [[True, False, True], [False, False, False]]
    # (NumPy's exp, in the reference, differs in the last bit between versions)
    np.testing.assert_allclose(cs.softmax(z, where=w), ref_softmax_where(z, w), rtol=4e-16, atol=0)
    assert cs.softmax(np.array(z, np.float32), where=w).dtype == np.float32
    zi = np.array([[1, 2, 3]], dtype=np.int64)
    got = cs.log_softmax(zi, where=np.array([True, True, False]))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref_log_softmax_where(zi, [True, True, False]), rtol=1e-15)


@pytest.mark.parametrize("name", FUNCS)
def test_empty_inputs(name):
    for shape in [(0, 5), (5, 0), (0, 0)]:
        z = np.zeros(shape)
        w = np.ones(shape, dtype=bool)
        got = _call(name, z, w)
        np.testing.assert_array_equal(got, _ref(name, z, w))


def test_mask_bytes_other_than_0_and_1_keep():
    """A bool array holding another byte (a uint8 view) is not a crash: nonzero keeps."""
    z = np.array([[1.0, 2.0, 3.0, 4.0]] * 20)
    raw = np.array([[2, 0, 255, 1]] * 20, dtype=np.uint8)
    w = raw.view(bool)
    good = raw != 0
    for name in FUNCS:
        np.testing.assert_array_equal(_call(name, z, w), _call(name, z, good))


# ------------------------------------------------------------- bad masks

BAD_Z = np.zeros((3, 4))


@pytest.mark.parametrize("name", FUNCS)
def test_integer_mask_is_refused(name):
    with pytest.raises(TypeError, match="where must be a boolean array.*int"):
        _call(name, BAD_Z, np.ones((3, 4), dtype=np.int64))


@pytest.mark.parametrize("name", FUNCS)
def test_uint8_mask_is_refused(name):
    with pytest.raises(TypeError, match="where must be a boolean array.*uint8"):
        _call(name, BAD_Z, np.ones((3, 4), dtype=np.uint8))


@pytest.mark.parametrize("name", FUNCS)
def test_float_mask_is_refused(name):
    with pytest.raises(TypeError, match="where must be a boolean array.*float64"):
        _call(name, BAD_Z, np.ones((3, 4)))


@pytest.mark.parametrize("name", FUNCS)
def test_object_mask_is_refused(name):
    w = np.empty((3, 4), dtype=object)
    w[...] = True
    with pytest.raises(TypeError, match="where must be a boolean array.*object"):
        _call(name, BAD_Z, w)


@pytest.mark.parametrize("name", FUNCS)
def test_string_mask_is_refused(name):
    with pytest.raises(TypeError, match="where must be a boolean array"):
        _call(name, BAD_Z, "True")


@pytest.mark.parametrize("name", FUNCS)
def test_ragged_mask_is_refused(name):
    with pytest.raises(TypeError, match="where must be an array of booleans"):
        _call(name, BAD_Z, [[True, False], [True]])


@pytest.mark.parametrize("name", FUNCS)
def test_mask_of_the_wrong_shape_is_refused(name):
    with pytest.raises(ValueError, match=r"where has shape \(3, 5\).*input's shape \(3, 4\)"):
        _call(name, BAD_Z, np.ones((3, 5), dtype=bool))


@pytest.mark.parametrize("name", FUNCS)
def test_mask_with_more_dimensions_is_refused(name):
    with pytest.raises(ValueError, match=r"where has shape \(2, 3, 4\).*\(3, 4\)"):
        _call(name, BAD_Z, np.ones((2, 3, 4), dtype=bool))


@pytest.mark.parametrize("name", FUNCS)
def test_mask_broadcasting_the_input_up_is_refused(name):
    # (3, 4) and (1, 4) broadcast together, but the mask must broadcast *to* z
    with pytest.raises(ValueError, match=r"where has shape \(3, 4\).*\(1, 4\)"):
        _call(name, np.zeros((1, 4)), np.ones((3, 4), dtype=bool))


def test_internal_mask_of_the_wrong_rows_is_refused():
    """The compiled entry points check the mask's shape too (no out-of-bounds read)."""
    z = np.zeros((5, 4))
    out = np.empty_like(z)
    for bad in (np.ones((2, 4), np.uint8), np.ones((5, 3), np.uint8), np.ones((6, 4), np.uint8)):
        with pytest.raises(ValueError, match="mask has shape"):
            _softmax.softmax_masked_rows(z, bad, out)
        with pytest.raises(ValueError, match="mask has shape"):
            _softmax.logsumexp_masked_rows(z, bad, np.empty(5))


# ------------------------------------------------------------------ threads

@pytest.mark.parametrize("shared", [False, True], ids=["full mask", "(1, m) mask"])
@pytest.mark.parametrize("shape", [(5000, 10), (3001, 31), (300, 1000)])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_threaded_calls_give_the_serial_results(dtype, shape, shared):
    if not _softmax.openmp_enabled():
        _requires.missing("openmp", "cysoftmax was built without OpenMP")
    n, m = shape
    assert n * m >= PAR_MIN
    z, rng = _data(dtype, shape, seed=n)
    w = _random_mask(rng, (1, m) if shared else shape)
    w[:, 0] = True
    if not shared:
        w[n // 2] = False
    z = np.where(np.broadcast_to(w, shape), z, dtype(nan))
    with threadpool_limits(limits=1, user_api="openmp"):
        ref = {name: _call(name, z, w) for name in FUNCS}
        assert _softmax.last_team_size() == 1
    for threads in (2, 3):
        with threadpool_limits(limits=threads, user_api="openmp"):
            for name in FUNCS:
                got = _call(name, z, w)
                assert _softmax.last_team_size() == threads, (name, threads)
                np.testing.assert_array_equal(_bits(got), _bits(ref[name]),
                                              err_msg=f"{name}, {threads} threads")
    _close(ref["softmax"], ref_softmax_where(z, w), dtype)
