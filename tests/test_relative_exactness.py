"""Relative exactness of every row kernel, against mpmath at 50 digits.

The bounds (README "Accuracy", docs/user_guide/numerics.rst), per row with
r = max z and c = max |z_k - r| over the entries whose exp(z_k - r) is above
the dtype's smallest normal (the data's own conditioning: the rounding of
z_k - r scales with it), eps the dtype's:

* log_softmax and the per-row NLL: relative error <= (8 + c) eps for every
  entry whose true value is representable (a normal number, or exactly 0),
  including values like -1e-30: log s is taken as log1p of the sum of every
  exp but one arg-max entry's, so no tail below eps is lost;
* logsumexp: error <= (8 + c) eps (|r| + log s);
* softmax: relative error <= (16 + |z_j - r|) eps at every m, for entries
  whose true value is a normal number (long rows are summed without a 1 in
  the sum, in blocks);
* every gradient entry p_j - [j == y] (local_gradient, nll_loss_and_gradient):
  relative error <= (16 + c) eps, the label entry included (it is computed as
  -(sum of the other probabilities), never as p_y - 1).

The rows are built to hit the bounds: one dominant entry with tails at gaps
20, 40, 80, 700 (float64) and 10, 20, 90 (float32), with and without a shift
that makes z_k - r inexact; ties at the max; random rows of scale 1e-3..1e3;
rows near the dtype's range; m = 2, 3, 10 (the small-m kernels) and 1000,
32000 (the row kernels).  Each is checked single-threaded and tiled into a
batch large enough for the threaded path.  CI runs this file under every
SIMD variant.
"""

import functools

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import _requires

import cysoftmax as cs
from cysoftmax import _softmax

mp = pytest.importorskip("mpmath").mp
mp.dps = 50

DTYPES = [np.float32, np.float64]
MS = [2, 3, 10, 1000, 32000]
GAPS = {np.float32: [10.0, 20.0, 90.0], np.float64: [20.0, 40.0, 80.0, 700.0]}


def _rows(dtype, m):
    """A (k, m) array of rows built to hit the bounds, and labels (k,)."""
    rng = np.random.default_rng(1000 * m + np.dtype(dtype).itemsize)
    fi = np.finfo(dtype)
    rows, labels = [], []

    def add(row, ys):
        for y in ys:
            rows.append(np.asarray(row, dtype=np.float64))
            labels.append(int(y))

    for gap in GAPS[dtype]:
        for shift in (0.0, 3.7):     # 3.7: z_k - r is rounded (c counts it)
            row = np.full(m, shift - gap)
            j = int(rng.integers(0, m))
            row[j] = shift
            if m > 2:
                row[(j + 1) % m] = shift - gap / 2   # a second, nearer tail
            add(row, [j, (j + 1) % m])               # label on the max, on a tail
    # ties at the max (2 and 3 of them) above tails
    for nt in (2, 3):
        if nt > m:
            continue
        row = np.full(m, -GAPS[dtype][0])
        row[:nt] = 0.5
        add(row, [0, m - 1])
    # random rows of scale 1e-3 .. 1e3
    for scale in (1e-3, 1.0, 1e3):
        add(rng.standard_normal(m) * scale, [int(rng.integers(0, m))])
    # near the range: a huge max (logsumexp relative to |r|), huge spreads
    big = float(fi.max)
    row = rng.uniform(-1.0, 1.0, m) + 0.5 * big
    row[int(rng.integers(0, m))] = 0.75 * big
    add(row, [0])
    row = np.full(m, -0.25 * big)
    row[0] = 0.25 * big
    add(row, [0, m - 1])
    z = np.array(rows).astype(dtype)
    return np.ascontiguousarray(z), np.array(labels, dtype=np.intp)


def _row_ref(row, y, tiny):
    """mpf references of one row (the inputs' exact values), grouping equal values."""
    vals, inverse, counts = np.unique(np.asarray(row, dtype=np.float64),
                                      return_inverse=True, return_counts=True)
    zs = [mp.mpf(float(v)) for v in vals]
    r = max(zs)
    d = [v - r for v in zs]
    ex = [mp.exp(v) for v in d]
    cnt = counts.tolist()
    iy = int(inverse[y])
    imax = len(zs) - 1                       # (np.unique sorts: the max is last)

    def sum_without_one(g):
        """sum of the exps with one entry of group g left out (no 1 + tiny rounding)."""
        return mp.fsum((c - (k == g)) * e for k, (c, e) in enumerate(zip(cnt, ex)))

    t = sum_without_one(imax)                # s - 1: every exp but one arg-max entry's
    s = 1 + t
    ls = mp.log1p(t)
    c = max((abs(v) for v, e in zip(d, ex) if e > tiny), default=mp.mpf(0))
    p = [e / s for e in ex]
    return dict(
        r=r, ls=ls, c=float(c), inverse=inverse,
        softmax=p, shift=[float(v) for v in d],
        log_softmax=[v - ls for v in d],
        logsumexp=r + ls,
        nll=(r - zs[iy]) + ls,
        # p_y - 1 = -(sum of the other probabilities)
        grad_y=-sum_without_one(iy) / s,
    )


@functools.lru_cache(maxsize=None)
def _case(dtype, m):
    z, y = _rows(dtype, m)
    tiny = mp.mpf(float(np.finfo(dtype).tiny))
    refs = [_row_ref(row, yi, tiny) for row, yi in zip(z, y)]
    return z, y, refs


def _split(x):
    """mpf -> (hi, lo) float64 with hi + lo = x to ~106 bits (x within float64's range)."""
    hi = float(x)
    return hi, float(x - mp.mpf(hi)) if np.isfinite(hi) else 0.0


@functools.lru_cache(maxsize=None)
def _row_arrays(dtype, m, i):
    """Per-entry float64 (hi, lo) references of row i of _case(dtype, m), as arrays."""
    z, y, refs = _case(dtype, m)
    ref = refs[i]
    inv = ref["inverse"]

    def per_entry(vals):
        hl = np.array([_split(v) for v in vals])
        return hl[inv, 0], hl[inv, 1]

    return dict(softmax=per_entry(ref["softmax"]), log_softmax=per_entry(ref["log_softmax"]),
                shift=np.array(ref["shift"])[inv])


def _rel_err(ours, hi, lo):
    """|ours - (hi + lo)| / |hi + lo| in float64 (ours - hi is exact when it matters)."""
    ours = np.asarray(ours, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.abs((ours - hi) - lo) / np.abs(hi)
    return np.where(np.isfinite(ours), e, np.inf)


def _check_rows(dtype, m, run, tile=1):
    """run(z, y) -> dict of results; checked against the bounds row by row."""
    z, y, refs = _case(dtype, m)
    k = z.shape[0]
    zt, yt = np.tile(z, (tile, 1)), np.tile(y, tile)
    got = run(zt, yt)
    fi = np.finfo(dtype)
    eps, tiny, big = float(fi.eps), float(fi.tiny), float(fi.max)
    bad = []
    for i in range(zt.shape[0]):
        ref, arr = refs[i % k], _row_arrays(dtype, m, i % k)
        c = ref["c"]
        yi = int(yt[i])
        where = f"row {i % k} (m={m}, label {yi}, c={c:.3g})"

        def report(what, errs, allowed, truth, ours):
            over = np.flatnonzero(~(errs <= allowed))
            for j in over[:3]:
                bad.append(f"{what} {where} entry {j}: {errs[j] / eps:.3g} eps "
                           f"(allowed {np.broadcast_to(allowed, errs.shape)[j] / eps:.3g}; "
                           f"true {truth[j]!r}, got {ours[j]!r})")

        if "softmax" in got:
            hi, lo = arr["softmax"]
            keep = hi >= tiny
            errs = np.where(keep, _rel_err(got["softmax"][i], hi, lo), 0.0)
            report("softmax", errs, (16 + np.abs(arr["shift"])) * eps, hi, got["softmax"][i])
        if "log_softmax" in got:
            hi, lo = arr["log_softmax"]
            o = got["log_softmax"][i]
            keep = (np.abs(hi) >= tiny) & (np.abs(hi) <= big)
            errs = np.where(keep, _rel_err(o, hi, lo), 0.0)
            errs = np.where(hi == 0, np.where(o == 0, 0.0, np.inf), errs)
            report("log_softmax", errs, (8 + c) * eps, hi, o)
        if "logsumexp" in got:
            ref_l = ref["logsumexp"]
            if abs(ref_l) <= mp.mpf(big) * (1 - 32 * eps):
                o = got["logsumexp"][i]
                err = abs(mp.mpf(float(o)) - ref_l) if np.isfinite(o) else mp.inf
                cond = abs(ref["r"]) + ref["ls"]
                if err > (8 + c) * eps * cond:
                    bad.append(f"logsumexp {where}: {float(err / (eps * cond)):.3g} eps x cond")
        if "nll" in got:
            ref_c = ref["nll"]
            if ref_c == 0 or tiny <= abs(ref_c) <= big:
                o = got["nll"][i]
                if ref_c == 0:
                    ok = o == 0
                else:
                    ok = np.isfinite(o) and abs(mp.mpf(float(o)) - ref_c) / ref_c <= (8 + c) * eps
                if not ok:
                    bad.append(f"nll {where}: got {o!r}, true {mp.nstr(ref_c, 8)}")
        if "grad" in got:
            scale = got.get("grad_scale", 1.0)
            g = np.asarray(got["grad"][i], dtype=np.float64) * scale
            hi, lo = (a.copy() for a in arr["softmax"])
            hi[yi], lo[yi] = _split(ref["grad_y"])
            keep = np.abs(hi) >= tiny * scale           # (scaled below normal: skipped)
            errs = np.where(keep, _rel_err(g, hi, lo), 0.0)
            report("gradient", errs, (16 + c) * eps, hi, g)
        if len(bad) > 20:
            break
    assert not bad, f"{len(bad)} entries over the bound:\n" + "\n".join(bad[:20])


def _all_kernels(z, y):
    n = z.shape[0]
    loss, grad = cs.nll_loss_and_gradient(z, y, reduction="sum")
    _, grad_mean = cs.nll_loss_and_gradient(z, y)            # the fast path, 1/n
    return {
        "softmax": cs.softmax(z),
        "log_softmax": cs.log_softmax(z),
        "logsumexp": cs.logsumexp(z),
        "nll": cs.nll_loss(z, y, reduction="none"),
        "grad": cs.local_gradient(z, y),
        "grad_sum": grad, "grad_mean": grad_mean, "n": n,
    }


def _gradients_of_reductions(res):
    """The gradients of 'sum' (unscaled) and 'mean' (times n) as 'grad' entries."""
    out = [{"grad": res["grad_sum"]}]
    out.append({"grad": res["grad_mean"], "grad_scale": res["n"]})
    return out


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_every_kernel_within_the_relative_bounds(dtype, m):
    with threadpool_limits(limits=1, user_api="openmp"):
        holder = {}

        def run(z, y):
            holder.update(_all_kernels(z, y))
            return holder

        _check_rows(dtype, m, run)
    # 'mean' multiplies by 1/n, rounded once more: the same bound holds on
    # grad * n to within that rounding (the bound's slack covers it)
    for extra in _gradients_of_reductions(holder):
        _check_rows(dtype, m, lambda z, y, extra=extra: extra)


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_relative_bounds_hold_on_the_threaded_path(dtype, m):
    if not _softmax.openmp_enabled():
        _requires.missing("openmp", "cysoftmax was built without OpenMP")
    z, _, _ = _case(dtype, m)
    tile = max(2, -(-40000 // z.size))      # n * m above the parallel threshold
    with threadpool_limits(limits=2, user_api="openmp"):
        def run(zt, yt):
            res = _all_kernels(zt, yt)
            assert _softmax.last_team_size() == 2, "the call did not use two threads"
            return res
        _check_rows(dtype, m, run, tile=tile)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_issue_examples(dtype):
    """The holes the issue reported, exactly."""
    assert float(cs.logsumexp(np.array([0.0, -40.0], dtype=np.float64))) == pytest.approx(
        float(mp.log1p(mp.exp(-40))), rel=1e-15)
    lp = cs.log_softmax(np.array([0.0, -40.0]))
    assert lp[0] == pytest.approx(-float(mp.log1p(mp.exp(-40))), rel=1e-15)
    z = np.array([[30.0, 0.0, 0.0]], dtype=dtype)
    g = cs.local_gradient(z, [0])[0, 0]
    true = -2 * mp.exp(-30) / (1 + 2 * mp.exp(-30))
    eps = float(np.finfo(dtype).eps)
    assert abs(mp.mpf(float(g)) - true) / abs(true) <= 4 * eps
    # NLL of a confidently correct row: log1p(2 e^-30), not 0
    c = cs.nll_loss(z, [0], reduction="none")[0]
    assert abs(mp.mpf(float(c)) - mp.log1p(2 * mp.exp(-30))) / mp.log1p(2 * mp.exp(-30)) <= 4 * eps
    # the mean over many such rows keeps it too (the total is a sum of C_i >= 0)
    zz = np.tile(z, (40, 1))
    mean = cs.nll_loss(zz, np.zeros(40, dtype=int))
    assert abs(mp.mpf(mean) - mp.log1p(2 * mp.exp(-30))) / mp.log1p(2 * mp.exp(-30)) <= 8 * eps


def test_long_float64_row_keeps_the_dominant_probability():
    """m = 32,000 with tails at gap 37: the dominant entry was 409 eps off before."""
    m = 32000
    z = np.full((1, m), -37.0)
    z[0, 0] = 0.0
    p0 = cs.softmax(z)[0, 0]
    t = (m - 1) * mp.exp(-37)
    true = 1 / (1 + t)
    eps = np.finfo(np.float64).eps
    assert abs(mp.mpf(float(p0)) - true) / true <= 16 * eps
