"""PyTorch's cross-entropy options in `nll_loss`, `nll_loss_and_gradient` and
`local_gradient`: ``class_weight``, ``ignore_index``, ``label_smoothing``,
class-probability targets (a 2-D ``y``), with our ``sample_weight``, in the
one-pass kernel (``_kernels/nll_opts.template.h``).

Checked against

* the documented formulas (``_reference.ref_cross_entropy``: float64 NumPy,
  independent of cysoftmax) over every combination of the options, every
  reduction, both dtypes, random shapes on both kernel paths (fewer than 32
  classes: blocks of rows; more: row by row) and sizes past the threading
  threshold;
* PyTorch's ``torch.nn.functional.cross_entropy``, forward and autograd
  backward, over the same grid where PyTorch has the combination (it has
  no sample weights, and refuses ``ignore_index`` with probabilities):
  1e-12 in float64, 1e-5 relative in float32;
* central finite differences of the loss, for the gradient with every
  option;
* closed forms at the edges: every row ignored, zero denominators, zero
  weights on non-finite rows, ``-inf`` logits, ``ignore_index`` outside
  ``[0, m)`` and inside it, a confident row's tiny loss (mpmath, relative);
* bad input for every new argument, each its own test, none crashing.

Tolerances: a loss is a sum of non-negative terms, so every loss value
(each row's for "none") is compared in relative terms; a gradient row
relative to its largest entry (its entries ``A p_j - a_j`` may cancel,
in PyTorch's computation as in ours).
"""

import itertools
import zlib

import numpy as np
import pytest

import _requires
from _reference import ref_cross_entropy

import cysoftmax
from cysoftmax import _validation, local_gradient, nll_loss, nll_loss_and_gradient

inf, nan = np.inf, np.nan
DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]
TOL = {np.float32: 2e-6, np.float64: 1e-12}      # against the float64 reference
TORCH_TOL = {np.float32: 1e-5, np.float64: 1e-12}
IGNORES = [None, "inside", -100]                  # "inside": a class in [0, m)
SMOOTHINGS = [0.0, 0.3, 1.0]

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = F = None
needs_torch = _requires.skip_unless("torch", torch is not None, "import torch failed")


# ----------------------------------------------------------------- helpers

def seed_of(*key):
    """A seed fixed by the test's parameters (hash() of a str varies per run)."""
    return zlib.crc32(repr(key).encode())


def assert_loss_close(got, ref, tol, atol=0.0):
    """Scalars or per-row losses: relative per value (plus `atol`, per value);
    NaN where NaN, infinities exact."""
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    assert got64.shape == ref64.shape
    assert np.array_equal(np.isnan(got64), np.isnan(ref64)), (got, ref)
    assert np.array_equal(got64[np.isinf(ref64)], ref64[np.isinf(ref64)]), (got, ref)
    fin = np.isfinite(ref64)
    err = np.abs(got64[fin] - ref64[fin])
    allowed = tol * np.abs(ref64[fin]) + np.broadcast_to(atol, ref64.shape)[fin] + 1e-300
    assert np.all(err <= allowed), float(np.max(err / allowed, initial=0))


def assert_grad_close(got, ref, scale, tol):
    """Gradients: each entry within tol of `scale`, the size of its two terms
    g_i (A p_j + a_j) (``ref_cross_entropy(..., return_scale=True)``): the
    entries A p_j - a_j cancel where the two are close, in PyTorch's
    computation as in ours, and elsewhere this is relative to the entry.
    NaN where NaN; where the scale is 0 (skipped rows, A = 0) exactly 0."""
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    assert got64.shape == ref64.shape
    assert np.array_equal(np.isnan(got64), np.isnan(ref64))
    fin = np.isfinite(ref64)
    err = np.where(fin, np.abs(got64 - ref64), 0.0)
    allowed = np.where(fin, tol * scale, 0.0)
    assert np.all(err <= allowed), float(np.max(err / np.maximum(allowed, 1e-300)))


def make_case(seed, dtype, path, target, cw, ign, ls, sw, n=None, small=False):
    """(logits, y, kwargs) for one combination: random shape on the kernel path
    `path` ("blocks": m < 32, "rows": m >= 32; `small`: at most 40 classes),
    ~30% of labels ignored."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 41)) if n is None else n
    m = int(rng.choice([1, 2, 3, 7, 10, 31]) if path == "blocks"
            else rng.choice([32, 40] if small else [32, 45, 300, 2500]))
    z = (3 * rng.standard_normal((n, m))).astype(dtype)
    if target == "soft":
        y = rng.random((n, m))
        y[rng.random((n, m)) < 0.3] = 0.0
        y[::2] /= np.maximum(y[::2].sum(axis=1, keepdims=True), 1e-300)   # some rows sum to 1
    else:
        y = rng.integers(0, m, n)
    ignore_index = None
    if ign is not None:
        ignore_index = min(1, m - 1) if ign == "inside" else ign
        y[rng.random(n) < 0.3] = ignore_index
    kw = {"class_weight": None, "ignore_index": ignore_index, "label_smoothing": ls}
    if cw:
        c = 2 * rng.random(m)
        c[rng.integers(0, m)] = 0.0 if m > 1 else c[0]        # one class of weight 0
        kw["class_weight"] = c
    if sw:
        w = 3 * rng.random(n)
        w[rng.random(n) < 0.2] = 0.0
        w[0] = 1.0                                            # not all zero (mean)
        kw["sample_weight"] = w
    return z, y, kw


def grid(with_sw):
    """Every combination the functions allow (no ignore_index with probabilities)."""
    out = []
    sws = [False, True] if with_sw else [False]
    for target, cw, ign, ls, sw in itertools.product(["labels", "soft"], [False, True],
                                                     IGNORES, SMOOTHINGS, sws):
        if target == "soft" and ign is not None:
            continue
        key = f"{target}-cw{int(cw)}-ign{ign}-ls{ls}" + (f"-sw{int(sw)}" if with_sw else "")
        out.append(pytest.param(target, cw, ign, ls, sw, id=key))
    return out


def call_all(z, y, kw, reduction):
    """(nll_loss, nll_loss_and_gradient) results, checked to agree with each other."""
    loss1 = nll_loss(z, y, reduction=reduction, **kw)
    loss2, grad = nll_loss_and_gradient(z, y, reduction=reduction, **kw)
    np.testing.assert_array_equal(np.asarray(loss1), np.asarray(loss2))
    if reduction == "none":
        assert loss1.dtype == z.dtype
    else:
        assert type(loss1) is float
    assert grad.dtype == z.dtype and grad.shape == z.shape
    return loss2, grad


# ------------------------------------------- against the documented formulas

@pytest.mark.parametrize("path", ["blocks", "rows"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target, cw, ign, ls, sw", grid(with_sw=True))
def test_matches_the_formulas(target, cw, ign, ls, sw, reduction, dtype, path):
    seed = seed_of(target, cw, ign, ls, sw, reduction, dtype, path)
    z, y, kw = make_case(seed, dtype, path, target, cw, ign, ls, sw)
    loss, grad = call_all(z, y, kw, reduction)
    rl, rg, rs = ref_cross_entropy(z, y, reduction=reduction, return_scale=True, **kw)
    assert_loss_close(loss, rl, TOL[dtype])
    assert_grad_close(grad, rg, rs, TOL[dtype])
    if not sw:
        lkw = {k: v for k, v in kw.items() if k != "sample_weight"}
        _, rg, rs = ref_cross_entropy(z, y, reduction="none", return_scale=True, **lkw)
        assert_grad_close(local_gradient(z, y, **lkw), rg, rs, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, m", [(5000, 10), (800, 50), (70, 1000), (20, 5000)])
@pytest.mark.parametrize("target", ["labels", "soft"])
def test_matches_the_formulas_past_the_threading_threshold(target, n, m, dtype):
    """n m >= 32768: the rows are cut into chunks, one per thread, and the
    chunks' totals added in order."""
    rng = np.random.default_rng(n)
    z = (3 * rng.standard_normal((n, m))).astype(dtype)
    if target == "soft":
        y, kw = rng.random((n, m)), {}
    else:
        y = rng.integers(0, m, n)
        y[::7] = -1
        kw = {"ignore_index": -1}
    kw.update(class_weight=rng.random(m) + 0.5, label_smoothing=0.1,
              sample_weight=rng.random(n))
    for reduction in REDUCTIONS:
        loss, grad = call_all(z, y, kw, reduction)
        rl, rg, rs = ref_cross_entropy(z, y, reduction=reduction, return_scale=True, **kw)
        assert_loss_close(loss, rl, TOL[dtype])
        assert_grad_close(grad, rg, rs, TOL[dtype])


# -------------------------------------------------------------- against torch

def torch_loss_atol(scale, reduction, dtype):
    """PyTorch's own error on a loss: its log-softmax in `dtype` errs by a few
    eps absolute (log s rounded near 1), which is not small in relative terms
    on a confident row's tiny loss (ours is exact there: see
    test_confident_rows_are_exact_in_relative_terms).  Per row a few eps of
    the row's target weight h A (the sum of its gradient terms, 2 h A)."""
    eps = float(np.finfo(dtype).eps)
    per_row = 4 * eps * scale.sum(axis=1)
    return per_row if reduction == "none" else float(per_row.sum())


def torch_cross_entropy(z, y, kw, reduction, dtype):
    """PyTorch's loss and autograd gradient (of the loss, or of its sum for
    "none"), in `dtype`, with the class weights and probabilities rounded to
    it as ours are."""
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    zt = torch.tensor(np.asarray(z, dtype=dtype), dtype=tdt, requires_grad=True)
    soft = np.ndim(y) == 2
    yt = torch.tensor(np.asarray(y, dtype=dtype if soft else np.int64))
    tkw = {"reduction": reduction, "label_smoothing": kw.get("label_smoothing", 0.0)}
    if kw.get("class_weight") is not None:
        tkw["weight"] = torch.tensor(np.asarray(kw["class_weight"], dtype=dtype))
    if kw.get("ignore_index") is not None:
        tkw["ignore_index"] = kw["ignore_index"]
    loss = F.cross_entropy(zt, yt, **tkw)
    loss.sum().backward()
    return loss.detach().numpy().astype(np.float64), zt.grad.numpy()


@needs_torch
@pytest.mark.parametrize("path", ["blocks", "rows"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target, cw, ign, ls, sw", grid(with_sw=False))
def test_matches_torch(target, cw, ign, ls, sw, reduction, dtype, path):
    seed = seed_of("torch", target, cw, ign, ls, reduction, dtype, path)
    z, y, kw = make_case(seed, dtype, path, target, cw, ign, ls, sw)
    loss, grad = call_all(z, y, kw, reduction)
    tl, tg = torch_cross_entropy(z, y, kw, reduction, dtype)
    if reduction != "none":
        tl = float(tl)
    scale = ref_cross_entropy(z, y, reduction=reduction, return_scale=True, **kw)[2]
    assert_loss_close(loss, tl, TORCH_TOL[dtype], torch_loss_atol(scale, reduction, dtype))
    assert_grad_close(grad, tg, scale, TORCH_TOL[dtype])
    tl, tg = torch_cross_entropy(z, y, kw, "none", dtype)
    scale = ref_cross_entropy(z, y, reduction="none", return_scale=True, **kw)[2]
    assert_grad_close(local_gradient(z, y, **kw), tg, scale, TORCH_TOL[dtype])


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["all-ignored", "all-ignored-smoothed", "zero-class-weights",
                                  "zero-class-weights-smoothed", "ignore-beyond-m"])
def test_edges_match_torch(case, reduction, dtype):
    """Zero denominators follow PyTorch: every row ignored gives a NaN mean
    and a zero gradient; labels all of class weight 0 a NaN mean and a NaN
    gradient (0 / 0); a sum is 0."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 4)).astype(dtype)
    kw = {"label_smoothing": 0.2 if case.endswith("smoothed") else 0.0}
    if case.startswith("all-ignored"):
        y, kw["ignore_index"] = np.full(6, -100), -100
    elif case.startswith("zero-class-weights"):
        y = np.array([0, 1, 0, 1, 1, 0])
        kw["class_weight"] = [0.0, 0.0, 1.0, 2.0]
    else:
        y, kw["ignore_index"] = np.array([0, 9, 3, 9, 1, 2]), 9
    loss, grad = call_all(z, y, kw, reduction)
    tl, tg = torch_cross_entropy(z, y, kw, reduction, dtype)
    scale = ref_cross_entropy(z, y, reduction=reduction, return_scale=True, **kw)[2]
    assert_loss_close(loss, tl if reduction == "none" else float(tl), TORCH_TOL[dtype],
                      torch_loss_atol(np.nan_to_num(scale), reduction, dtype))
    assert_grad_close(grad, tg, scale, TORCH_TOL[dtype])
    if case.startswith("all-ignored"):
        assert (np.isnan(loss) if reduction == "mean" else np.all(loss == 0))
        assert np.all(grad == 0)


# --------------------------------------------------------- finite differences

def _scalar_loss(z, y, kw, reduction):
    loss = nll_loss(z, y, reduction=reduction, **kw)
    return float(np.sum(loss))


@pytest.mark.parametrize("path", ["blocks", "rows"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target, cw, ign, ls, sw", grid(with_sw=True))
def test_gradient_is_the_derivative_of_the_loss(target, cw, ign, ls, sw, reduction, path):
    """Central differences of the returned loss (of its sum for "none") in
    float64, entry by entry, against nll_loss_and_gradient's gradient."""
    seed = seed_of("fd", target, cw, ign, ls, sw, reduction, path)
    z, y, kw = make_case(seed, np.float64, path, target, cw, ign, ls, sw,
                         n=4 if path == "blocks" else 2, small=True)
    total, grad = nll_loss_and_gradient(z, y, reduction=reduction, **kw)
    if np.isnan(np.sum(total)):
        # a zero denominator (every row ignored, or of class weight 0): no
        # derivative; the gradient is 0 on skipped rows, NaN elsewhere
        assert np.all((grad == 0) | np.isnan(grad))
        return
    fd = np.empty_like(z)
    for idx in np.ndindex(*z.shape):
        h = 1e-6 * max(1.0, abs(z[idx]))
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        up, down = _scalar_loss(zp, y, kw, reduction), _scalar_loss(zm, y, kw, reduction)
        fd[idx] = (up - down) / (2 * h)
    scale = max(float(np.max(np.abs(grad))), 1e-3)
    assert np.all(np.abs(fd - grad) <= 1e-6 * scale), float(np.max(np.abs(fd - grad)) / scale)


# ------------------------------------------------------- closed forms, edges

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [4, 40])
def test_ignored_and_zero_weight_rows_are_exactly_zero_whatever_their_logits(m, dtype):
    z = np.zeros((5, m), dtype=dtype)
    z[0, 0], z[1, 1], z[2, :] = nan, inf, -inf
    z[3] = np.linspace(-2, 2, m)
    z[4] = np.linspace(3, -1, m)
    y = np.array([7, 0, 7, 1, 2])          # rows 0 and 2 ignored (label 7 = ignore_index)
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5])  # row 1 of weight 0
    for kw in ({}, {"class_weight": np.arange(1.0, m + 1)}, {"label_smoothing": 0.4}):
        loss, grad = nll_loss_and_gradient(z, y, sample_weight=w, ignore_index=7,
                                           reduction="none", **kw)
        assert np.all(loss[:3] == 0) and np.all(grad[:3] == 0)
        assert np.all(np.isfinite(loss[3:])) and np.all(loss[3:] > 0)
        # the other rows are what they are alone (with no option: the plain
        # kernel, whose roundings may differ in the last bit)
        rest_loss, rest_grad = nll_loss_and_gradient(z[3:], y[3:], sample_weight=w[3:],
                                                     reduction="none", **kw)
        eps = float(np.finfo(dtype).eps)
        np.testing.assert_allclose(loss[3:], rest_loss, rtol=4 * eps, atol=0)
        np.testing.assert_allclose(grad[3:], rest_grad, rtol=0, atol=4 * eps * w.max())
        mean = nll_loss(z, y, sample_weight=w, ignore_index=7, **kw)
        c = kw.get("class_weight", np.ones(m))
        assert_loss_close(mean, float(rest_loss.sum() / (w[3:] * c[y[3:]]).sum()), TOL[dtype])


@pytest.mark.parametrize("m", [4, 40])
def test_a_nan_row_is_nan_and_touches_no_other_row(m):
    z = np.zeros((3, m))
    z[1, 2] = nan
    for kw in ({"class_weight": np.ones(m)}, {"label_smoothing": 0.1},
               {"ignore_index": -5}):
        loss, grad = nll_loss_and_gradient(z, [0, 1, 2], reduction="none", **kw)
        assert np.isnan(loss[1]) and np.isnan(grad[1]).all()
        assert np.isfinite(loss[[0, 2]]).all() and np.isfinite(grad[[0, 2]]).all()
    loss, grad = nll_loss_and_gradient(z, np.full((3, m), 1.0 / m), reduction="none")
    assert np.isnan(loss[1]) and np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [4, 40])
def test_minus_inf_logits(m, dtype):
    """-inf logits are masked: a class with target weight 0 there adds 0 (PyTorch:
    0 * -inf = NaN); one with a positive target weight makes the loss +inf."""
    z = np.tile(np.linspace(-1, 1, m), (2, 1)).astype(dtype)
    z[:, 1] = -inf
    q = np.full((2, m), 1.0 / (m - 1))
    q[:, 1] = 0.0
    # a zero probability at a -inf logit: the loss of the same rows without that class
    keep = np.arange(m) != 1
    got = nll_loss(z, q, reduction="none")
    want = nll_loss(np.ascontiguousarray(z[:, keep]), np.ascontiguousarray(q[:, keep]),
                    reduction="none")
    assert_loss_close(got, want, TOL[dtype])
    g = local_gradient(z, q)
    assert np.all(g[:, 1] == 0) and np.all(np.isfinite(g))
    # a class weight of 0 there, with smoothing: masked too
    cw = np.ones(m)
    cw[1] = 0.0
    assert np.all(np.isfinite(nll_loss(z, [0, 2], class_weight=cw, label_smoothing=0.3,
                                       reduction="none")))
    # a positive target weight on it: +inf (smoothing, probability, label)
    assert np.all(nll_loss(z, [0, 2], label_smoothing=0.3, reduction="none") == inf)
    assert np.all(nll_loss(z, np.full((2, m), 1.0), reduction="none") == inf)
    assert nll_loss(z, [1, 1], reduction="sum") == inf
    g = local_gradient(z, [1, 1], class_weight=np.arange(1.0, m + 1))
    assert np.all(np.isfinite(g))
    # the label's probability is 0: its entry is -a_y = -c_y, the others c_y p_j
    c = np.arange(1.0, m + 1)
    p = np.exp(z - z.max(axis=1, keepdims=True).astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    want = c[1] * p
    want[:, 1] = -c[1]
    np.testing.assert_allclose(g, want, rtol=TOL[dtype], atol=0)


@pytest.mark.parametrize("m", [5, 40])
def test_ignore_index_outside_and_inside_the_classes(m):
    rng = np.random.default_rng(m)
    z = rng.standard_normal((6, m))
    keep = np.array([True, False, True, False, True, True])
    for ign in (-100, m, m + 5, 2**62, -2**63):
        y = np.where(keep, [0, 0, 1, 0, m - 1, 2], ign)
        # rows with that label are left out, even far outside [0, m) (never an index)
        for kw in ({}, {"class_weight": rng.random(m)}, {"label_smoothing": 0.2}):
            for red in REDUCTIONS:
                got = nll_loss(z, y, ignore_index=ign, reduction=red, **kw)
                want = nll_loss(z[keep], y[keep], reduction=red, **kw)
                if red == "none":
                    np.testing.assert_array_equal(got[~keep], 0.0)
                    got = got[keep]
                assert_loss_close(got, want, 1e-14)
        # other labels are still checked
        with pytest.raises(ValueError, match=r"\by\b.*ignore_index"):
            nll_loss(z, np.where(keep, m if ign != m else m + 1, ign), ignore_index=ign)
        with pytest.raises(ValueError, match=r"\by\b"):
            nll_loss(z, np.where(keep, -1, ign), ignore_index=ign)
    # inside [0, m): every row of that class is ignored, the others are not
    y = np.array([0, 1, 1, 2, 0, 1])
    got = nll_loss(z, y, ignore_index=1, reduction="none")
    np.testing.assert_array_equal(got[y == 1], 0.0)
    np.testing.assert_allclose(got[y != 1], nll_loss(z[y != 1], y[y != 1], reduction="none"),
                               rtol=1e-15, atol=0)
    g = local_gradient(z, y, ignore_index=1)
    assert np.all(g[y == 1] == 0)
    np.testing.assert_allclose(g[y != 1], local_gradient(z[y != 1], y[y != 1]),
                               rtol=0, atol=1e-15)


def test_ignore_index_none_keeps_every_label_in_range():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"\by\b"):
        nll_loss(z, [0, -100])                          # PyTorch's default ignored it
    assert nll_loss(z, [0, 2], ignore_index=None) == nll_loss(z, [0, 2])


@pytest.mark.parametrize("m", [3, 40])
def test_closed_forms(m):
    rng = np.random.default_rng(m)
    z = 2 * rng.standard_normal((7, m))
    y = rng.integers(0, m, 7)
    c = rng.random(m) + 0.1
    onehot = np.eye(m)[y]
    lse = np.log(np.exp(z).sum(axis=1))
    # one-hot probabilities are the labels (sum; "mean" divides by n, not sum c_y)
    for kw in ({}, {"class_weight": c}, {"label_smoothing": 0.25}):
        assert_loss_close(nll_loss(z, onehot, reduction="none", **kw),
                          nll_loss(z, y, reduction="none", **kw), 1e-14)
        np.testing.assert_allclose(local_gradient(z, onehot, **kw), local_gradient(z, y, **kw),
                                   rtol=0, atol=1e-15)
    assert_loss_close(nll_loss(z, onehot, class_weight=c),
                      float((c[y] * (lse - z[np.arange(7), y])).sum() / 7), 1e-14)
    assert_loss_close(nll_loss(z, y, class_weight=c),
                      float((c[y] * (lse - z[np.arange(7), y])).sum() / c[y].sum()), 1e-14)
    # smoothing 1: the class-weighted mean of -log p over the classes, whatever y
    want = (c * (lse[:, None] - z)).sum(axis=1) / m
    assert_loss_close(nll_loss(z, y, class_weight=c, label_smoothing=1.0, reduction="none"),
                      want, 1e-14)
    assert_loss_close(nll_loss(z, (y + 1) % m, class_weight=c, label_smoothing=1.0,
                               reduction="none"), want, 1e-14)
    # every local gradient row sums to zero: sum_j (A p_j - a_j) = A - A
    for yy, kw in ((y, {"class_weight": c, "label_smoothing": 0.3}),
                   (rng.random((7, m)), {"class_weight": c, "label_smoothing": 0.3})):
        g = local_gradient(z, yy, **kw)
        assert np.all(np.abs(g.sum(axis=1)) <= 1e-14 * np.abs(g).sum(axis=1))
    # class weights all equal to k: k times the unweighted loss and gradient ("sum")
    for yy in (y, rng.random((7, m))):
        l1, g1 = nll_loss_and_gradient(z, yy, label_smoothing=0.1, reduction="sum")
        l4, g4 = nll_loss_and_gradient(z, yy, label_smoothing=0.1, reduction="sum",
                                       class_weight=np.full(m, 4.0))
        assert_loss_close(l4, 4 * l1, 1e-14)
        np.testing.assert_allclose(g4, 4 * g1, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("m", [10, 100])
@pytest.mark.parametrize("dtype", DTYPES)
def test_confident_rows_are_exact_in_relative_terms(dtype, m):
    """A confident row's loss is tiny, log1p((m - 1) e^-d): through the options'
    kernel (class weights, ignore_index, a one-hot probability row) it keeps
    every digit, as the plain NLL does (mpmath, 50 digits)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    d = 30.0 if dtype == np.float64 else 12.0
    z = np.zeros((3, m), dtype=dtype)
    z[:, 0] = d
    want = float(mpmath.log1p((m - 1) * mpmath.exp(-d)))
    eps = float(np.finfo(dtype).eps)
    for y, kw in (([0, 0, 0], {"class_weight": np.full(m, 2.0)}),
                  ([0, 5, 0], {"ignore_index": 5}),
                  (np.eye(m)[[0, 0, 0]], {})):
        loss = nll_loss(z, y, reduction="none", **kw)
        scale = 2.0 if "class_weight" in kw else 1.0
        for i in range(3):
            if kw.get("ignore_index") == 5 and i == 1:
                assert loss[i] == 0
                continue
            assert abs(float(loss[i]) - scale * want) <= 8 * eps * scale * want, (loss[i], want)
    # and the gradient, entry by entry: the label's -c (1 - p_y), not 1 - p_y
    # after a cancellation (labels; the probabilities' A p_y - a_y has no such form)
    s = 1 + (m - 1) * mpmath.exp(-d)
    for kw, c in (({"class_weight": np.full(m, 2.0)}, 2.0), ({"ignore_index": -1}, 1.0)):
        g = local_gradient(z, [0, 0, 0], **kw)
        want_y = float(-c * (m - 1) * mpmath.exp(-d) / s)
        want_o = float(c * mpmath.exp(-d) / s)
        assert np.all(np.abs(g[:, 0] - want_y) <= 8 * eps * abs(want_y)), (g[:, 0], want_y)
        assert np.all(np.abs(g[:, 1:] - want_o) <= 8 * eps * want_o)


def test_float32_stays_float32_and_targets_are_converted():
    z = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    q64 = np.random.default_rng(1).random((5, 4))
    loss, grad = nll_loss_and_gradient(z, q64, class_weight=np.ones(4), reduction="none")
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    # converted, as documented: the same as float32 probabilities given
    l32, g32 = nll_loss_and_gradient(z, q64.astype(np.float32), class_weight=np.ones(4),
                                     reduction="none")
    np.testing.assert_array_equal(loss, l32)
    np.testing.assert_array_equal(grad, g32)
    assert local_gradient(z, [0, 1, 2, 3, 0], label_smoothing=0.1).dtype == np.float32


def test_contiguous_targets_and_weights_of_the_logits_dtype_are_not_copied():
    q = np.full((3, 4), 0.25, dtype=np.float32)
    cw = np.ones(4, dtype=np.float32)
    assert _validation.check_targets(q, 3, 4, np.float32)[1] is q
    assert _validation.check_class_weight(cw, 4, np.float32) is cw


@pytest.mark.parametrize("m", [4, 40])
def test_out_buffers(m):
    rng = np.random.default_rng(m)
    z = rng.standard_normal((3, m))
    q = rng.random((3, m))
    kw = {"class_weight": rng.random(m), "label_smoothing": 0.2}
    want = nll_loss_and_gradient(z, q, **kw)[1]
    # in place on the logits
    zz = z.copy()
    assert nll_loss_and_gradient(zz, q, out=zz, **kw)[1] is zz
    np.testing.assert_array_equal(zz, want)
    zz = z.copy()
    assert local_gradient(zz, [0, 1, 2], ignore_index=1, out=zz) is zz
    np.testing.assert_array_equal(zz, local_gradient(z, [0, 1, 2], ignore_index=1))
    # never into the probabilities (the kernel reads them while it writes)
    qq = q.copy()
    with pytest.raises(ValueError, match=r"\bout\b.*probabilities"):
        nll_loss_and_gradient(z, qq, out=qq, **kw)
    with pytest.raises(ValueError, match=r"\bout\b.*probabilities"):
        local_gradient(z, qq, out=qq)
    np.testing.assert_array_equal(qq, q)
    # nor over the class weights
    buf = np.empty((3, m))
    with pytest.raises(ValueError, match=r"\bout\b.*overlaps"):
        local_gradient(z, [0, 1, 2], class_weight=buf[1], out=buf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_and_tiny_weights_scale_the_gradient_in_double(dtype):
    """Weights that put the gradient's coefficients outside T's comfortable
    range take the double path: finite where the true values are, no NaN."""
    z = np.array([[0.0, -1e30, 1.0, 0.5]], dtype=dtype)
    for w in (1e300, 1e-300):
        for kw in ({"class_weight": [1.0, 2.0, 3.0, 4.0]}, {"label_smoothing": 0.1}, {}):
            for y in ([2], np.array([[0.5, 0.0, 0.5, 0.0]])):
                loss, grad = nll_loss_and_gradient(z, y, sample_weight=[w], reduction="sum", **kw)
                rl, rg, rs = ref_cross_entropy(z, y, sample_weight=[w], reduction="sum",
                                               return_scale=True, **kw)
                assert not np.isnan(grad).any()
                # infinite where the true value is beyond T's range, else close
                big = np.abs(rg) > np.finfo(dtype).max
                np.testing.assert_array_equal(np.isinf(grad), big)
                np.testing.assert_array_equal(np.sign(grad[big]), np.sign(rg[big]))
                assert np.all(np.abs(grad[~big] - rg[~big])
                              <= TOL[dtype] * rs[~big] + np.finfo(dtype).smallest_subnormal)
                assert_loss_close(loss, rl, TOL[dtype])


# ----------------------------------------------------------------- bad input

FUNCS = {
    "nll_loss": lambda z, y, **kw: nll_loss(z, y, **kw),
    "nll_loss_and_gradient": lambda z, y, **kw: nll_loss_and_gradient(z, y, **kw),
    "local_gradient": lambda z, y, **kw: local_gradient(z, y, **kw),
}
Z = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 3.0, -2.0, 1.0]])
Y = [0, 3, 1]


def _bad(arg, cases):
    return [pytest.param(f, arg, value, exc, id=f"{f}-{arg}-{key}")
            for f in FUNCS for key, (value, exc) in cases.items()]


CLASS_WEIGHT_BAD = {
    "complex": (np.ones(4, dtype=complex), TypeError),
    "bool": (np.ones(4, dtype=bool), TypeError),
    "object": (np.ones(4, dtype=object), TypeError),
    "str": (["1", "1", "1", "1"], TypeError),
    "ragged": ([1.0, [1.0], 1.0, 1.0], TypeError),
    "nan": ([1.0, nan, 1.0, 1.0], ValueError),
    "inf": ([1.0, inf, 1.0, 1.0], ValueError),
    "minus-inf": ([1.0, -inf, 1.0, 1.0], ValueError),
    "negative": ([1.0, -1e-300, 1.0, 1.0], ValueError),
    "too-short": ([1.0, 1.0, 1.0], ValueError),
    "too-long": ([1.0] * 5, ValueError),
    "2-D": (np.ones((4, 1)), ValueError),
    "scalar": (1.0, ValueError),
}
LABEL_SMOOTHING_BAD = {
    "str": ("0.1", TypeError),
    "bytes": (b"0", TypeError),
    "True": (True, TypeError),
    "False": (False, TypeError),
    "np-bool": (np.True_, TypeError),
    "None": (None, TypeError),
    "complex": (0.1j, TypeError),
    "list": ([0.1], TypeError),
    "array": (np.array(0.1), TypeError),
    "nan": (nan, ValueError),
    "negative": (-0.1, ValueError),
    "minus-zero-ok-but-below": (-1e-300, ValueError),
    "above-one": (1.0000001, ValueError),
    "inf": (inf, ValueError),
    "two": (2, ValueError),
}
IGNORE_INDEX_BAD = {
    "True": (True, TypeError),
    "np-bool": (np.False_, TypeError),
    "float": (1.0, TypeError),
    "np-float": (np.float64(1.0), TypeError),
    "str": ("1", TypeError),
    "list": ([1], TypeError),
    "complex": (1j, TypeError),
    "beyond-int64": (2**63, ValueError),
    "below-int64": (-2**63 - 1, ValueError),
}
PROBS_BAD = {
    "int-2-D": (np.ones((3, 4), dtype=np.int64), TypeError),
    "bool-2-D": (np.ones((3, 4), dtype=bool), TypeError),
    "complex-2-D": (np.ones((3, 4), dtype=complex), TypeError),
    "object-2-D": (np.ones((3, 4), dtype=object), TypeError),
    "nan": (np.where(np.eye(3, 4) > 0, nan, 0.25), ValueError),
    "inf": (np.where(np.eye(3, 4) > 0, inf, 0.25), ValueError),
    "negative": (np.where(np.eye(3, 4) > 0, -0.25, 0.25), ValueError),
    "more-classes": (np.full((3, 5), 0.2), ValueError),
    "fewer-rows": (np.full((2, 4), 0.25), ValueError),
    "one-column": (np.full((3, 1), 1.0), ValueError),
    "3-D": (np.full((3, 4, 1), 0.25), ValueError),
}


def _call(f, **kw):
    return FUNCS[f](Z, kw.pop("y", Y), **kw)


@pytest.mark.parametrize("f, arg, value, exc", _bad("class_weight", CLASS_WEIGHT_BAD))
def test_bad_class_weight(f, arg, value, exc):
    with pytest.raises(exc, match=r"\bclass_weight\b"):
        _call(f, class_weight=value)


@pytest.mark.parametrize("f, arg, value, exc", _bad("label_smoothing", LABEL_SMOOTHING_BAD))
def test_bad_label_smoothing(f, arg, value, exc):
    with pytest.raises(exc, match=r"\blabel_smoothing\b"):
        _call(f, label_smoothing=value)


@pytest.mark.parametrize("f, arg, value, exc", _bad("ignore_index", IGNORE_INDEX_BAD))
def test_bad_ignore_index(f, arg, value, exc):
    with pytest.raises(exc, match=r"\bignore_index\b"):
        _call(f, ignore_index=value)


@pytest.mark.parametrize("f, arg, value, exc", _bad("y", PROBS_BAD))
def test_bad_class_probabilities(f, arg, value, exc):
    with pytest.raises(exc, match=r"\by\b"):
        _call(f, y=value)


@pytest.mark.parametrize("f", FUNCS)
def test_ignore_index_with_class_probabilities_is_refused(f):
    # (PyTorch: "ignore_index is not supported for floating point target")
    with pytest.raises(ValueError, match=r"\bignore_index\b.*probabilities"):
        _call(f, y=np.full((3, 4), 0.25), ignore_index=-100)


@pytest.mark.parametrize("f", FUNCS)
def test_float32_overflow_of_class_weights_and_probabilities_is_refused(f):
    # converted to the logits' dtype, they must stay finite there
    z32 = Z.astype(np.float32)
    with pytest.raises(ValueError, match=r"\bclass_weight\b.*float32"):
        FUNCS[f](z32, Y, class_weight=[1.0, 1e39, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"\by\b.*float32"):
        FUNCS[f](z32, np.full((3, 4), 1e39))


@pytest.mark.parametrize("f", FUNCS)
def test_no_classes_with_class_probabilities_or_all_ignored(f):
    with pytest.raises(ValueError, match=r"\blogits\b.*no classes"):
        FUNCS[f](np.empty((3, 0)), np.empty((3, 0)))
    with pytest.raises(ValueError, match=r"\blogits\b.*no classes"):
        FUNCS[f](np.empty((3, 0)), [-1, -1, -1], ignore_index=-1)


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("value", [0, 1, 0.5, np.float32(0.25), np.float64(1.0)],
                         ids=["int-0", "int-1", "half", "np-float32", "np-float64"])
def test_label_smoothing_accepts_real_numbers(f, value):
    res = _call(f, label_smoothing=value)
    want = _call(f, label_smoothing=float(value))
    for a, b in zip(res if isinstance(res, tuple) else (res,),
                    want if isinstance(want, tuple) else (want,)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("value", [np.int8(-1), np.uint64(3), np.int64(-100)],
                         ids=["int8", "uint64", "int64"])
def test_ignore_index_accepts_numpy_integers(f, value):
    y = [int(value), 3, 1] if int(value) != 3 else [0, 3, 1]
    res = _call(f, y=y, ignore_index=value)
    want = _call(f, y=y, ignore_index=int(value))
    for a, b in zip(res if isinstance(res, tuple) else (res,),
                    want if isinstance(want, tuple) else (want,)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("f", FUNCS)
def test_empty_batch_with_options(f):
    z = np.empty((0, 4))
    kw = {"class_weight": np.ones(4), "label_smoothing": 0.1}
    if f == "local_gradient":
        assert local_gradient(z, np.empty((0, 4)), **kw).shape == (0, 4)
        return
    assert np.isnan(FUNCS["nll_loss"](z, [], ignore_index=3, **kw))
    assert FUNCS["nll_loss"](z, np.empty((0, 4)), reduction="sum", **kw) == 0.0
    loss, grad = nll_loss_and_gradient(z, np.empty((0, 4)), reduction="none", **kw)
    assert loss.shape == (0,) and grad.shape == (0, 4)
