"""The fused linear layer + cross-entropy: `linear_nll_loss_and_gradient` and
`linear_nll_loss` (Z = A @ W + b, the loss of `nll_loss` on Z, and the
gradients dA = G W^T, dW = A^T G, db = G.sum(0) with G the gradient of the
loss w.r.t. Z), computed block by block without an n x m array.

Checked against

* the documented formulas: a float64 NumPy reference (the products in
  float64, then ``_reference.ref_cross_entropy``, independent of cysoftmax),
  over every option of `nll_loss` (sample and class weights, ignore_index,
  label smoothing, class-probability targets), every reduction, both dtypes
  and shapes at the edges of the blocking (fewer rows than a block, a last
  block that is partial, one row per block, a block larger than n, n = 1,
  d = 1, m = 1): 1e-12 in float64, 1e-5 in float32;
* the unfused composition ``nll_loss_and_gradient(A @ W + b, y)`` followed
  by ``G W^T, A^T G, G.sum(0)`` in the arrays' dtype;
* PyTorch's autograd through ``linear`` + ``cross_entropy`` (and
  ``linear_cross_entropy`` where it exists), float64;
* the special-value rules of `nll_loss` on the same logits: rows spanning
  1e4, -inf biases as masks, NaN and +inf in one row of A;
* tracemalloc and ``_engine.last_linear_workspace()``: nothing of n x m
  size is allocated, and the compiled block has the documented size;
* layouts (F-ordered W, a torch weight's transpose, strided W,
  non-contiguous A, read-only arrays) and bad input, each its own test.

Tolerances: every loss value (each row's for "none") relative; every
gradient norm-wise, max|got - ref| / max|ref| per output array.
"""

import itertools
import tracemalloc
import zlib

import numpy as np
import pytest

import _requires
from _reference import ref_cross_entropy

import cysoftmax
from cysoftmax import (
    linear_nll_loss,
    linear_nll_loss_and_gradient,
    nll_loss,
    nll_loss_and_gradient,
)

inf, nan = np.inf, np.nan
DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]
TOL = {np.float32: 1e-5, np.float64: 1e-12}
CHUNK_ELEMENTS = 2 ** 24      # the documented default block: at most 2**24 logits,
MIN_ROWS = 128                # and at least 128 rows
IGNORES = [None, "inside", -100]
SMOOTHINGS = [0.0, 0.3, 1.0]

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = F = None
needs_torch = _requires.skip_unless("torch", torch is not None, "import torch failed")

# (n, d, m, chunk): the edges of the blocking
SHAPES = [
    (37, 5, 7, 8),        # last block partial (37 = 4 * 8 + 5)
    (5, 3, 4, 16),        # fewer rows than a block
    (9, 4, 6, 1),         # one row per block
    (10, 3, 5, 1000),     # block far larger than n
    (1, 4, 3, None),      # n = 1
    (1, 1, 1, 1),         # everything 1
    (23, 1, 6, 4),        # d = 1
    (17, 6, 1, 5),        # m = 1
    (64, 8, 40, 16),      # n a multiple of the block
    (130, 7, 45, 33),     # m past the blocked kernel path of nll_loss
    (12, 3, 2, None),     # two classes
    (20, 70, 3, 6),       # d > m
]


# ----------------------------------------------------------------- helpers

def seed_of(*key):
    return zlib.crc32(repr(key).encode())


def random_shapes(rng, count=2):
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 90))
        d = int(rng.integers(1, 12))
        m = int(rng.integers(1, 70))
        chunk = [None, int(rng.integers(1, n + 3))][int(rng.integers(0, 2))]
        out.append((n, d, m, chunk))
    return out


def make_case(rng, dtype, n, d, m, target="labels", cw=False, ign=None, ls=0.0, sw=False,
              bias=True):
    """(A, W, b, y, kw): logits of size ~3; labels ~30% ignored (never row 0);
    a class of weight 0 (never row 0's); sample weights ~20% zero (row 0 = 1).
    Probabilities and class weights are rounded to `dtype` here, so that the
    float64 reference sees exactly what the function sees."""
    A = rng.standard_normal((n, d)).astype(dtype)
    W = (3.0 / np.sqrt(d) * rng.standard_normal((d, m))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype) if bias else None
    if target == "soft":
        y = rng.random((n, m))
        y[rng.random((n, m)) < 0.3] = 0.0
        y[::2] /= np.maximum(y[::2].sum(axis=1, keepdims=True), 1e-300)
        y = y.astype(dtype)
    else:
        y = rng.integers(0, m, n)
    kw = {"label_smoothing": ls}
    if ign is not None:
        ignore_index = -100 if ign == -100 or m == 1 else min(1, m - 1)
        y[rng.random(n) < 0.3] = ignore_index
        if y[0] == ignore_index:
            y[0] = 0 if ignore_index != 0 else m - 1
        kw["ignore_index"] = ignore_index
    if cw:
        c = 2 * rng.random(m) + 0.1
        if m > 1:
            choices = [k for k in range(m) if target == "soft" or k != y[0]]
            c[choices[int(rng.integers(0, len(choices)))]] = 0.0
        kw["class_weight"] = c.astype(dtype)
    if sw:
        w = 3 * rng.random(n)
        w[rng.random(n) < 0.2] = 0.0
        w[0] = 1.0
        kw["sample_weight"] = w
    return A, W, b, y, kw


def ref_linear(A, W, b, y, reduction, **kw):
    """(loss, dA, dW, db, scales): the float64 reference, from the formulas.
    `scales` holds, per gradient, the size of the summed terms (for the
    checks where the reference itself is exactly 0)."""
    A64, W64 = np.asarray(A, np.float64), np.asarray(W, np.float64)
    Z = A64 @ W64
    if b is not None:
        Z = Z + np.asarray(b, np.float64)
    loss, G, T = ref_cross_entropy(Z, y, reduction=reduction, return_scale=True, **kw)
    dA, dW = G @ W64.T, A64.T @ G
    db = None if b is None else G.sum(axis=0)
    scales = (T @ np.abs(W64).T, np.abs(A64).T @ T, T.sum(axis=0))
    return loss, dA, dW, db, scales


def unfused(A, W, b, y, reduction, **kw):
    """The composition the spec defines, in the arrays' dtype."""
    Z = A @ W if b is None else A @ W + b
    loss, G = nll_loss_and_gradient(Z, y, reduction=reduction, **kw)
    return loss, G @ W.T, A.T @ G, None if b is None else G.sum(axis=0)


def assert_loss_close(got, ref, tol, atol=0.0):
    """Scalars or per-row losses, relative per value; NaN where NaN,
    infinities exact."""
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    assert got64.shape == ref64.shape, (got64.shape, ref64.shape)
    assert np.array_equal(np.isnan(got64), np.isnan(ref64)), (got, ref)
    assert np.array_equal(got64[np.isinf(ref64)], ref64[np.isinf(ref64)]), (got, ref)
    fin = np.isfinite(ref64)
    err = np.abs(got64[fin] - ref64[fin])
    allowed = tol * np.abs(ref64[fin]) + atol + 1e-300
    assert np.all(err <= allowed), float(np.max(err / allowed, initial=0))


def assert_norm_close(got, ref, tol, scale=None, what=""):
    """Norm-wise: max|got - ref| <= tol max|ref| over the finite entries (NaN
    where NaN, infinities exact), plus, given `scale` (the size of the summed
    terms g_i (A p_j + a_j) propagated through the product), 16 eps of it:
    the rounding of p_j - 1 on a confident row, which no computation in the
    arrays' dtype avoids (a gradient of 7e-4 from terms of size 1 errs by
    ~eps absolute, 1e-4 relative in float32)."""
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    assert got64.shape == ref64.shape, (what, got64.shape, ref64.shape)
    assert np.array_equal(np.isnan(got64), np.isnan(ref64)), what
    assert np.array_equal(got64[np.isinf(ref64)], ref64[np.isinf(ref64)]), what
    fin = np.isfinite(ref64)
    if not fin.any():
        return
    err = float(np.max(np.abs(got64[fin] - ref64[fin])))
    big = float(np.max(np.abs(ref64[fin])))
    floor = 0.0
    if scale is not None:
        eps = float(np.finfo(np.result_type(np.asarray(got).dtype, np.float32)).eps)
        floor = 16 * eps * float(np.max(np.abs(np.asarray(scale)[fin]), initial=0.0))
    assert err <= tol * big + floor, (what, err, big, floor, err / big if big else inf)


def check_outputs(res, A, W, b, reduction):
    """Types, shapes and dtypes of (loss, dA, dW, db)."""
    loss, dA, dW, db = res
    dt = np.asarray(A).dtype.newbyteorder("=")
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.shape == (A.shape[0],)
        assert loss.dtype == dt
    else:
        assert isinstance(loss, float), type(loss)
    assert isinstance(dA, np.ndarray) and dA.shape == A.shape and dA.dtype == dt
    assert isinstance(dW, np.ndarray) and dW.shape == W.shape and dW.dtype == dt
    if b is None:
        assert db is None
    else:
        assert isinstance(db, np.ndarray) and db.shape == b.shape and db.dtype == dt


def call_both(A, W, b, y, reduction, chunk=None, **kw):
    """linear_nll_loss_and_gradient's result, checked: its outputs' types,
    and linear_nll_loss equal to its loss."""
    res = linear_nll_loss_and_gradient(A, W, b, y, reduction=reduction, chunk=chunk, **kw)
    assert isinstance(res, tuple) and len(res) == 4
    check_outputs(res, A, W, b, reduction)
    loss = linear_nll_loss(A, W, b, y, reduction=reduction, chunk=chunk, **kw)
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == res[0].dtype
    else:
        assert isinstance(loss, float)
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(res[0]))
    return res


def compare(res, ref, dtype, scales=None):
    loss, dA, dW, db = res
    rl, rA, rW, rb = ref[:4]
    scales = scales or (None, None, None)
    tol = TOL[dtype]
    if isinstance(loss, np.ndarray):
        # per-row losses are the arrays' dtype: a float32 row loss of 1e-222
        # (a logit 509 below the label's) is 0
        rl = np.asarray(rl).astype(loss.dtype)
    assert_loss_close(loss, rl, tol)
    assert_norm_close(dA, rA, tol, scales[0], "dA")
    assert_norm_close(dW, rW, tol, scales[1], "dW")
    if rb is None:
        assert db is None
    else:
        assert_norm_close(db, rb, tol, scales[2], "db")


def grid():
    out = []
    for target, cw, ign, ls, sw in itertools.product(["labels", "soft"], [False, True],
                                                     IGNORES, SMOOTHINGS, [False, True]):
        if target == "soft" and ign is not None:
            continue
        out.append(pytest.param(target, cw, ign, ls, sw,
                                id=f"{target}-cw{int(cw)}-ign{ign}-ls{ls}-sw{int(sw)}"))
    return out


# ------------------------------------ against the formulas and the composition

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target, cw, ign, ls, sw", grid())
def test_matches_the_formulas_and_the_unfused_composition(target, cw, ign, ls, sw, reduction,
                                                          dtype):
    rng = np.random.default_rng(seed_of(target, cw, ign, ls, sw, reduction, dtype))
    for k, (n, d, m, chunk) in enumerate(SHAPES + random_shapes(rng)):
        A, W, b, y, kw = make_case(rng, dtype, n, d, m, target, cw, ign, ls, sw,
                                   bias=k % 3 != 2)
        res = call_both(A, W, b, y, reduction, chunk=chunk, **kw)
        ref = ref_linear(A, W, b, y, reduction, **kw)
        compare(res, ref, dtype, ref[4])
        compare(res, unfused(A, W, b, y, reduction, **kw), dtype, ref[4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_the_chunk_does_not_change_the_result_beyond_rounding(reduction, dtype):
    """Every block size on one problem, against the float64 reference."""
    rng = np.random.default_rng(seed_of("chunks", reduction, dtype))
    A, W, b, y, kw = make_case(rng, dtype, 29, 4, 11, cw=True, ign=-100, ls=0.1, sw=True)
    ref = ref_linear(A, W, b, y, reduction, **kw)
    for chunk in [None, 1, 2, 3, 7, 16, 28, 29, 30, 10 ** 6]:
        compare(call_both(A, W, b, y, reduction, chunk=chunk, **kw), ref, dtype, ref[4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_default_blocks_smaller_than_n_match_the_formulas(reduction, dtype):
    """m so large that the default block (2**24 // m = 64 rows, at least 128)
    holds fewer rows than n: two blocks 128 + 12.  A row-by-row float64
    reference (never n x m)."""
    n, d, m = 140, 3, 2 ** 18
    rng = np.random.default_rng(seed_of("big-m", reduction, dtype))
    A = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    y = rng.integers(0, m, n)
    w = rng.random(n) + 0.5
    loss, dA, dW, db = call_both(A, W, b, y, reduction, sample_weight=w)
    rows, nbytes = cysoftmax._engine.last_linear_workspace()
    assert rows == MIN_ROWS == 128

    A64, W64, b64 = A.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    factor = w / w.sum() if reduction == "mean" else w
    losses, rA = np.empty(n), np.empty((n, d))
    rW, rb = np.zeros((d, m)), np.zeros(m)
    for i in range(n):
        z = A64[i] @ W64 + b64
        r = z.max()
        e = np.exp(z - r)
        losses[i] = r + np.log(e.sum()) - z[y[i]]
        g = e / e.sum()
        g[y[i]] -= 1.0
        g *= factor[i]
        rA[i] = W64 @ g
        rW += np.outer(A64[i], g)
        rb += g
    ref_loss = w * losses if reduction == "none" else \
        float((w * losses).sum() / (w.sum() if reduction == "mean" else 1.0))
    tol = TOL[dtype]
    assert_loss_close(loss, ref_loss, tol)
    assert_norm_close(dA, rA, tol, what="dA")
    assert_norm_close(dW, rW, tol, what="dW")
    assert_norm_close(db, rb, tol, what="db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", ["labels", "soft"])
@pytest.mark.parametrize("chunk", [None, 150])
def test_every_option_on_blocks_past_the_threading_size(chunk, target, dtype):
    """Blocks of 150 x 120 and 400 x 120 logits (past the size where the
    NLL kernel splits rows among threads), with every option at once."""
    rng = np.random.default_rng(seed_of("big", chunk, target, dtype))
    A, W, b, y, kw = make_case(rng, dtype, 400, 5, 120, target, cw=True,
                               ign=None if target == "soft" else "inside", ls=0.2, sw=True)
    for reduction in REDUCTIONS:
        res = call_both(A, W, b, y, reduction, chunk=chunk, **kw)
        ref = ref_linear(A, W, b, y, reduction, **kw)
        compare(res, ref, dtype, ref[4])


def test_bias_none_is_a_zero_bias_and_gives_no_db():
    rng = np.random.default_rng(5)
    A, W, b, y, kw = make_case(rng, np.float64, 20, 3, 6, ls=0.2)
    got = linear_nll_loss_and_gradient(A, W, None, y, **kw)
    assert got[3] is None
    zero = linear_nll_loss_and_gradient(A, W, np.zeros(6), y, **kw)
    compare(got, zero[:3] + (None,), np.float64)
    assert linear_nll_loss(A, W, None, y, **kw) == got[0]


def test_doc_example_by_hand():
    """One row, d = 1, by hand: z = (2, 0) -> loss log(1 + e^-2), G = p - e_0."""
    A = np.array([[2.0]])
    W = np.array([[1.0, 0.0]])
    b = np.array([0.0, 0.0])
    loss, dA, dW, db = linear_nll_loss_and_gradient(A, W, b, [0])
    p1 = 1 / (1 + np.exp(2.0))
    g = np.array([-p1, p1])
    assert abs(loss - np.log1p(np.exp(-2.0))) <= 1e-15
    np.testing.assert_allclose(dA, [[g @ W[0]]], rtol=1e-14)
    np.testing.assert_allclose(dW, 2.0 * g[None, :], rtol=1e-14)
    np.testing.assert_allclose(db, g, rtol=1e-14)


# -------------------------------------------------------------- against torch

def torch_linear(A, W, b, y, reduction, kw, fused=False):
    """PyTorch's loss and autograd gradients (dA, dW, db) in float64."""
    At = torch.tensor(A, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor(np.ascontiguousarray(W.T), dtype=torch.float64, requires_grad=True)
    bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    soft = np.ndim(y) == 2
    yt = torch.tensor(np.asarray(y, dtype=np.float64 if soft else np.int64))
    tkw = {"reduction": reduction, "label_smoothing": kw.get("label_smoothing", 0.0)}
    if kw.get("class_weight") is not None:
        tkw["weight"] = torch.tensor(np.asarray(kw["class_weight"], dtype=np.float64))
    if kw.get("ignore_index") is not None:
        tkw["ignore_index"] = kw["ignore_index"]
    if fused:
        loss = F.linear_cross_entropy(At, weight, yt, linear_bias=bt, **tkw)
    else:
        loss = F.cross_entropy(F.linear(At, weight, bt), yt, **tkw)
    loss.sum().backward()
    tl = loss.detach().numpy()
    tl = tl if reduction == "none" else float(tl)
    return (tl, At.grad.numpy(), weight.grad.numpy().T,
            None if b is None else bt.grad.numpy())


@pytest.fixture
def torch_one_thread():
    """PyTorch on one thread for these tiny problems (its thread pool next to
    our OpenMP one costs ~5 ms a call on two cores), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torch_grid():
    return [p for p in grid() if not p.values[4]]      # no sample weights in PyTorch


@needs_torch
@pytest.mark.parametrize("fused", [False, True], ids=["linear+cross_entropy",
                                                      "linear_cross_entropy"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target, cw, ign, ls, sw", torch_grid())
def test_matches_torch_autograd(target, cw, ign, ls, sw, reduction, fused, torch_one_thread):
    if fused and not hasattr(F, "linear_cross_entropy"):
        pytest.skip("this PyTorch has no linear_cross_entropy")
    rng = np.random.default_rng(seed_of("torch", target, cw, ign, ls, reduction))
    for k, (n, d, m, chunk) in enumerate(SHAPES + random_shapes(rng)):
        A, W, b, y, kw = make_case(rng, np.float64, n, d, m, target, cw, ign, ls, False,
                                   bias=k % 3 != 2)
        res = call_both(A, W, b, y, reduction, chunk=chunk, **kw)
        tl, tA, tW, tb = torch_linear(A, W, b, y, reduction, kw, fused)
        scales = ref_linear(A, W, b, y, reduction, **kw)[4]
        # PyTorch's log-softmax errs by a few eps absolute on a confident row
        assert_loss_close(res[0], tl, 1e-12, atol=1e-14 * n)
        assert_norm_close(res[1], tA, 1e-12, scales[0], "dA")
        assert_norm_close(res[2], tW, 1e-12, scales[1], "dW")
        if b is None:
            assert res[3] is None
        else:
            assert_norm_close(res[3], tb, 1e-12, scales[2], "db")


# ------------------------------------------------------------ special values

def same_as_nll_on_the_logits(A, W, b, y, reduction, Z=None, chunk=None, **kw):
    """Our result, against nll_loss_and_gradient on the same logits (exact
    here: the inputs are small integers times powers of two, so A @ W + b is
    exact in either dtype) and the products G W^T, A^T G, G.sum(0) in float64
    (the products of finite numbers; NaN and infinities where IEEE puts them)."""
    dt = A.dtype
    res = call_both(A, W, b, y, reduction, chunk=chunk, **kw)
    if Z is None:
        Z = (A.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)).astype(dt)
    loss, G = nll_loss_and_gradient(Z, y, reduction=reduction, **kw)
    G64 = G.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = (loss, G64 @ W.astype(np.float64).T, A.astype(np.float64).T @ G64,
               G64.sum(axis=0))
    compare(res, ref, dt.type)
    return res, loss, G


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_rows_spanning_1e4(reduction, dtype):
    """Logits up to +-1e4 within a row (from large A entries, and from large
    W entries): exact in relative terms as nll_loss is."""
    rng = np.random.default_rng(seed_of("span", reduction, dtype))
    n, d, m = 40, 3, 9
    A = (rng.integers(-8, 9, (n, d)) * 128.0).astype(dtype)      # up to 1024
    W = rng.integers(-3, 4, (d, m)).astype(dtype)                  # |z| up to ~9000
    b = rng.integers(-4, 5, m).astype(dtype)
    A[0] = [1024.0, 1024.0, 1024.0]
    W[:, 0], W[:, 1] = 3.0, -3.0                                   # row 0: +-9216 (span 18432)
    y = rng.integers(0, m, n)
    y[0] = 1                                                       # the least likely class
    res, _, _ = same_as_nll_on_the_logits(A, W, b, y, reduction, chunk=7)
    assert np.all(np.isfinite(res[1])) and np.all(np.isfinite(res[2]))
    ref = ref_linear(A, W, b, y, reduction)
    compare(res, ref, dtype, ref[4])
    if reduction == "none":
        assert res[0][0] > 1.8e4
    # large W entries instead, A small
    A2 = rng.integers(-2, 3, (n, d)).astype(dtype)
    W2 = (rng.integers(-8, 9, (d, m)) * 512.0).astype(dtype)
    ref = ref_linear(A2, W2, b, y, reduction)
    res2, _, _ = same_as_nll_on_the_logits(A2, W2, b, y, reduction, chunk=7)
    compare(res2, ref, dtype, ref[4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("chunk", [None, 3])
def test_minus_inf_biases_mask_classes(chunk, reduction, dtype):
    """-inf biases: masked classes get probability 0, so exactly zero dW
    columns and db entries, and the loss is finite when no label is masked."""
    rng = np.random.default_rng(seed_of("mask", reduction, dtype, chunk))
    n, d, m = 11, 4, 7
    A = rng.integers(-4, 5, (n, d)).astype(dtype)
    W = rng.integers(-4, 5, (d, m)).astype(dtype)
    b = rng.integers(-2, 3, m).astype(dtype)
    masked = [1, 4]
    b[masked] = -inf
    y = rng.choice([0, 2, 3, 5, 6], n)
    res, _, G = same_as_nll_on_the_logits(A, W, b, y, reduction, chunk=chunk)
    loss, dA, dW, db = res
    assert np.all(np.isfinite(loss))
    assert np.all(np.isfinite(dA)) and np.all(np.isfinite(dW)) and np.all(np.isfinite(db))
    assert np.all(G[:, masked] == 0)
    assert np.all(dW[:, masked] == 0) and np.all(db[masked] == 0)
    # the unmasked classes are the problem without the masked ones
    keep = [k for k in range(m) if k not in masked]
    relabel = np.searchsorted(keep, y)
    sub = linear_nll_loss_and_gradient(A, W[:, keep], b[keep], relabel, reduction=reduction)
    compare(res[:2] + (dW[:, keep], db[keep]), sub, dtype)
    # soft targets with probability 0 on the masked classes: finite too
    q = rng.random((n, m)).astype(dtype)
    q[:, masked] = 0
    res, _, _ = same_as_nll_on_the_logits(A, W, b, q, reduction, chunk=chunk)
    assert np.all(np.isfinite(res[0])) and np.all(res[2][:, masked] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_a_masked_label_gives_an_infinite_loss(reduction, dtype):
    """A label on a class of -inf bias: +inf loss for that row (+inf for mean
    and sum), the others finite; the gradients are those of nll_loss's rule
    on the same logits."""
    rng = np.random.default_rng(seed_of("masked-label", reduction, dtype))
    n, d, m = 9, 3, 5
    A = rng.integers(-4, 5, (n, d)).astype(dtype)
    W = rng.integers(-4, 5, (d, m)).astype(dtype)
    b = np.zeros(m, dtype=dtype)
    b[2] = -inf
    y = rng.choice([0, 1, 3, 4], n)
    y[4] = 2
    res, _, _ = same_as_nll_on_the_logits(A, W, b, y, reduction, chunk=4)
    loss = np.asarray(res[0])
    if reduction == "none":
        assert loss[4] == inf and np.all(np.isfinite(np.delete(loss, 4)))
    else:
        assert loss == inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("bad", [nan, inf, -inf])
def test_a_non_finite_row_of_A_is_nan_for_that_row_only(bad, reduction, dtype):
    """A NaN (or +-inf, whose products with W entries of both signs give
    +-inf and NaN logits) in one row of A: that row's loss is NaN (reduction
    none), every other row's finite; dA's other rows finite."""
    rng = np.random.default_rng(seed_of("nan", bad, reduction, dtype))
    n, d, m = 13, 3, 6
    A = rng.integers(-4, 5, (n, d)).astype(dtype)
    W = rng.integers(1, 5, (d, m)).astype(dtype)
    W[0, ::2] *= -1                   # W[0] of both signs: a row of +-inf logits and NaN
    b = rng.integers(-2, 3, m).astype(dtype)
    A[6, 0] = bad
    y = rng.integers(0, m, n)
    with np.errstate(invalid="ignore"):
        Z = (A.astype(np.float64) @ W.astype(np.float64) + b).astype(dtype)
    res, _, _ = same_as_nll_on_the_logits(A, W, b, y, reduction, Z=Z, chunk=4)
    loss, dA, dW, db = res
    if reduction == "none":
        assert np.isnan(loss[6]) and np.all(np.isfinite(np.delete(loss, 6)))
    else:
        assert np.isnan(loss)
    assert np.all(np.isnan(dA[6]))
    assert np.all(np.isfinite(np.delete(dA, 6, axis=0)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("skip", ["sample_weight", "ignore_index"])
def test_a_nan_row_of_A_that_is_skipped_contributes_nothing_to_dA_and_db(skip, reduction,
                                                                        dtype):
    """A NaN row of A whose sample weight is 0 (or whose label is ignored):
    its loss and its dA row are exactly 0, db and every other row of dA are
    those of the problem without the row, and so is every row of dW where
    the row of A is finite.  dW's entries at its NaN column are A^T G's
    NaN * 0 = NaN in IEEE arithmetic (as PyTorch's autograd has them); the
    spec's dW = A^T G allows that or the value without the row, either."""
    rng = np.random.default_rng(seed_of("skipped-nan", skip, reduction, dtype))
    A, W, b, y, _ = make_case(rng, dtype, 12, 4, 6)
    A[5, 1] = nan
    kw = {}
    if skip == "sample_weight":
        kw["sample_weight"] = np.where(np.arange(12) == 5, 0.0, 1.0)
    else:
        y[5], kw["ignore_index"] = -7, -7
    loss, dA, dW, db = call_both(A, W, b, y, reduction, chunk=5, **kw)
    keep = np.arange(12) != 5
    rest = linear_nll_loss_and_gradient(A[keep], W, b, y[keep], reduction=reduction)
    if reduction == "none":
        assert loss[5] == 0
        assert_loss_close(loss[keep], rest[0], TOL[dtype])
    else:
        assert_loss_close(loss, rest[0], TOL[dtype])
    assert np.all(dA[5] == 0)
    assert_norm_close(dA[keep], rest[1], TOL[dtype], what="dA")
    assert_norm_close(db, rest[3], TOL[dtype], what="db")
    finite = [0, 2, 3]
    assert_norm_close(dW[finite], rest[2][finite], TOL[dtype], what="dW")
    if not np.all(np.isnan(dW[1])):
        assert_norm_close(dW[1], rest[2][1], TOL[dtype], what="dW[1]")


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_minus_inf_biases_make_every_row_nan(dtype):
    A = np.ones((3, 2), dtype=dtype)
    W = np.ones((2, 4), dtype=dtype)
    b = np.full(4, -inf, dtype=dtype)
    loss, dA, dW, db = linear_nll_loss_and_gradient(A, W, b, [0, 1, 2], reduction="none")
    assert np.all(np.isnan(loss))
    Z = np.full((3, 4), -inf, dtype=dtype)
    assert np.all(np.isnan(nll_loss(Z, [0, 1, 2], reduction="none")))
    assert np.all(np.isnan(dA))


# -------------------------------------------------------------------- memory

def traced_peak(fn):
    """(result, peak bytes above the start) of fn() under tracemalloc."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        res = fn()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return res, peak


def test_large_m_allocates_the_outputs_and_a_bounded_block():
    """n = 512, m = 200_000 float32: n x m would be 400 MB.  The traced
    (Python-visible) peak is about the outputs; the compiled block is
    max(128, 2**24 // m = 83) = 128 rows of logits plus m doubles.  Rows of the result at the
    block boundaries against a row-wise float64 reference."""
    n, d, m = 512, 8, 200_000
    rng = np.random.default_rng(7)
    A = rng.standard_normal((n, d), dtype=np.float32)
    W = (0.3 * rng.standard_normal((d, m), dtype=np.float32))
    b = rng.standard_normal(m, dtype=np.float32)
    y = rng.integers(0, m, n)
    res, peak = traced_peak(
        lambda: linear_nll_loss_and_gradient(A, W, b, y, reduction="none"))
    loss, dA, dW, db = res
    outputs = loss.nbytes + dA.nbytes + dW.nbytes + db.nbytes
    assert peak <= 1.1 * outputs + (1 << 20), (peak, outputs)
    assert peak < n * m * 4 // 50
    rows, nbytes = cysoftmax._engine.last_linear_workspace()
    assert rows == MIN_ROWS and rows < n
    assert nbytes == rows * m * 4 + 8 * m
    # rows around the block boundaries (127 | 128, 255 | 256) and the last
    A64, W64, b64 = A.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    for i in [0, 127, 128, 255, 256, n - 1]:
        z = A64[i] @ W64 + b64
        r = z.max()
        e = np.exp(z - r)
        assert_loss_close(loss[i], r + np.log(e.sum()) - z[y[i]], 1e-5)
        g = e / e.sum()
        g[y[i]] -= 1
        assert_norm_close(dA[i], W64 @ g, 1e-5, what=f"dA[{i}]")

    _, peak = traced_peak(lambda: linear_nll_loss(A, W, b, y))
    assert peak <= (1 << 20), peak


@pytest.mark.parametrize("dtype", DTYPES)
def test_workspace_follows_the_chunk(dtype):
    rng = np.random.default_rng(8)
    n, d, m = 150, 2, 200_000
    A = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, m)).astype(dtype)
    b = np.zeros(m, dtype=dtype)
    y = rng.integers(0, m, n)
    item = np.dtype(dtype).itemsize
    linear_nll_loss_and_gradient(A, W, b, y)
    assert cysoftmax._engine.last_linear_workspace() == (MIN_ROWS, MIN_ROWS * m * item + 8 * m)
    linear_nll_loss_and_gradient(A, W, b, y, chunk=5)
    assert cysoftmax._engine.last_linear_workspace() == (5, 5 * m * item + 8 * m)


def test_explicit_chunks_and_what_the_block_holds():
    """chunk rows per block (a chunk past n: one block of n rows); the m
    doubles only with a bias gradient (_engine.last_linear_workspace's
    docstring): none for b=None or for linear_nll_loss."""
    rng = np.random.default_rng(14)
    A, W, b, y, _ = make_case(rng, np.float32, 30, 3, 50)
    for chunk, rows in [(1, 1), (7, 7), (30, 30), (31, 30), (10 ** 9, 30), (2 ** 62, 30)]:
        linear_nll_loss_and_gradient(A, W, b, y, chunk=chunk)
        assert cysoftmax._engine.last_linear_workspace() == (rows, rows * 50 * 4 + 8 * 50)
    for call in (lambda: linear_nll_loss_and_gradient(A, W, None, y, chunk=7),
                 lambda: linear_nll_loss(A, W, b, y, chunk=7)):
        call()
        rows, nbytes = cysoftmax._engine.last_linear_workspace()
        assert (rows, nbytes) == (7, 7 * 50 * 4)       # no db: no column sums


def test_default_block_is_at_least_16_rows():
    """m = 2**18: 2**24 // m = 64 rows would fit, but the block holds at least 128."""
    rng = np.random.default_rng(9)
    n, d, m = 130, 1, 2 ** 18
    A = rng.standard_normal((n, d), dtype=np.float32)
    W = rng.standard_normal((d, m), dtype=np.float32)
    b = np.zeros(m, dtype=np.float32)
    y = rng.integers(0, m, n)
    linear_nll_loss_and_gradient(A, W, b, y)
    assert cysoftmax._engine.last_linear_workspace() == (128, 128 * m * 4 + 8 * m)


def test_small_problem_default_block_is_within_the_rule():
    """n m well under 2**24: one block, of at most n rows... or 2**24 // m;
    never more than the rule allows."""
    rng = np.random.default_rng(10)
    A, W, b, y, _ = make_case(rng, np.float64, 50, 3, 10)
    linear_nll_loss_and_gradient(A, W, b, y)
    rows, nbytes = cysoftmax._engine.last_linear_workspace()
    assert min(50, MIN_ROWS) <= rows <= CHUNK_ELEMENTS // 10
    assert nbytes == rows * 10 * 8 + 8 * 10


# ------------------------------------------------------------------- layouts

LAYOUT_TOL = {np.float32: 1e-6, np.float64: 1e-14}


def layout_case(dtype, seed=11):
    rng = np.random.default_rng(seed)
    A, W, b, y, kw = make_case(rng, dtype, 45, 6, 13, cw=True, ls=0.1, sw=True)
    return A, W, b, y, kw


def assert_same(got, ref, dtype):
    assert_loss_close(got[0], ref[0], LAYOUT_TOL[dtype])
    for g, r, what in zip(got[1:], ref[1:], ["dA", "dW", "db"]):
        assert_norm_close(g, r, LAYOUT_TOL[dtype], what=what)
        assert g.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_f_ordered_W(reduction, dtype):
    A, W, b, y, kw = layout_case(dtype)
    ref = linear_nll_loss_and_gradient(A, W, b, y, reduction=reduction, chunk=10, **kw)
    Wf = np.asfortranarray(W)
    got = call_both(A, Wf, b, y, reduction, chunk=10, **kw)
    assert_same(got, ref, dtype)
    assert got[2].shape == W.shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_style_weight_transpose(reduction, dtype):
    A, W, b, y, kw = layout_case(dtype)
    weight = np.ascontiguousarray(W.T)          # (m, d), as torch.nn.Linear holds it
    ref = linear_nll_loss_and_gradient(A, W, b, y, reduction=reduction, **kw)
    got = call_both(A, weight.T, b, y, reduction, **kw)
    assert_same(got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_W_and_non_contiguous_A(dtype):
    rng = np.random.default_rng(12)
    A, W, b, y, kw = layout_case(dtype)
    big_W = rng.standard_normal((W.shape[0], 2 * W.shape[1])).astype(dtype)
    big_W[:, ::2] = W
    big_A = rng.standard_normal((2 * A.shape[0], A.shape[1] + 3)).astype(dtype)
    big_A[::2, 1:A.shape[1] + 1] = A
    A_view, W_view = big_A[::2, 1:A.shape[1] + 1], big_W[:, ::2]
    assert not A_view.flags.c_contiguous and not W_view.flags.c_contiguous
    assert not W_view.flags.f_contiguous
    b_view = np.repeat(b, 2)[::2]
    for reduction in REDUCTIONS:
        ref = linear_nll_loss_and_gradient(A, W, b, y, reduction=reduction, chunk=8, **kw)
        for args in [(A_view, W, b), (A, W_view, b), (A_view, W_view, b_view),
                     (np.asfortranarray(A), W, b)]:
            assert_same(call_both(*args, y, reduction, chunk=8, **kw), ref, dtype)
    np.testing.assert_array_equal(big_W[:, ::2], W)            # inputs untouched
    np.testing.assert_array_equal(big_A[::2, 1:A.shape[1] + 1], A)


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_inputs(dtype):
    A, W, b, y, kw = layout_case(dtype)
    ref = linear_nll_loss_and_gradient(A, W, b, y, **kw)
    ro = [x.copy() for x in (A, W, b, y)]
    for x in ro:
        x.setflags(write=False)
    assert_same(call_both(*ro, "mean", **kw), ref, dtype)
    Wf = np.asfortranarray(W)
    Wf.setflags(write=False)
    assert_same(call_both(ro[0], Wf, ro[2], ro[3], "mean", **kw), ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_native_byte_order(dtype):
    """Byte-swapped A, W, b (the same float dtype): the same results, in
    native byte order."""
    A, W, b, y, kw = layout_case(dtype)
    ref = linear_nll_loss_and_gradient(A, W, b, y, reduction="none", **kw)
    swapped = [x.astype(x.dtype.newbyteorder()) for x in (A, W, b)]
    got = call_both(*swapped, y, "none", **kw)
    assert_same(got, ref, dtype)
    for x in got:
        assert x.dtype == np.dtype(dtype) and x.dtype.isnative


@pytest.mark.parametrize("ydtype", [np.int8, np.uint8, np.int32, np.uint32, np.int64, ">i8"])
def test_label_dtypes(ydtype):
    A, W, b, y, kw = layout_case(np.float64)
    ref = linear_nll_loss_and_gradient(A, W, b, y, **kw)
    assert_same(call_both(A, W, b, y.astype(ydtype), "mean", **kw), ref, np.float64)


def test_non_contiguous_labels_and_soft_targets():
    rng = np.random.default_rng(15)
    A, W, b, y, kw = make_case(rng, np.float64, 30, 4, 9, ls=0.1)
    ref = linear_nll_loss_and_gradient(A, W, b, y, chunk=4, **kw)
    y_view = np.repeat(y, 3)[::3]
    assert_same(call_both(A, W, b, y_view, "mean", chunk=4, **kw), ref, np.float64)
    _, _, _, q, _ = make_case(rng, np.float64, 30, 4, 9, "soft")
    ref = linear_nll_loss_and_gradient(A, W, b, q, chunk=4, **kw)
    for q_view in [np.asfortranarray(q), np.repeat(q, 2, axis=1)[:, ::2]]:
        assert_same(call_both(A, W, b, q_view, "mean", chunk=4, **kw), ref, np.float64)


def test_list_inputs_are_converted():
    A, W, b, y, kw = layout_case(np.float64)
    ref = linear_nll_loss_and_gradient(A, W, b, y)
    got = linear_nll_loss_and_gradient(A.tolist(), W.tolist(), b.tolist(), y.tolist())
    assert_same(got, ref, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_f_ordered_W_is_not_copied(dtype):
    """An F-ordered W (torch's weight.T) is used in place, as a C-ordered one:
    the traced peak is the outputs, not another d x m array; a strided W is
    copied once (not twice)."""
    rng = np.random.default_rng(13)
    n, d, m = 64, 128, 4096
    A = rng.standard_normal((n, d)).astype(dtype)
    W = np.asfortranarray(rng.standard_normal((d, m)).astype(dtype))
    b = rng.standard_normal(m).astype(dtype)
    y = rng.integers(0, m, n)
    outputs = (n * d + d * m + m) * W.itemsize
    _, peak = traced_peak(lambda: linear_nll_loss_and_gradient(A, W, b, y))
    assert peak < outputs + W.nbytes // 2, (peak, outputs)
    Wc = np.ascontiguousarray(W)
    _, peak = traced_peak(lambda: linear_nll_loss_and_gradient(A, Wc, b, y))
    assert peak < outputs + W.nbytes // 2, (peak, outputs)
    Ws = np.repeat(Wc, 2, axis=1)[:, ::2]
    _, peak = traced_peak(lambda: linear_nll_loss_and_gradient(A, Ws, b, y))
    assert peak < outputs + 1.5 * W.nbytes, (peak, outputs)


# ----------------------------------------------------------------- bad input

FUNCS = [pytest.param(linear_nll_loss_and_gradient, id="and_gradient"),
         pytest.param(linear_nll_loss, id="loss")]


def good(dtype=np.float64, n=4, d=3, m=5):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((d, m)).astype(dtype),
            rng.standard_normal(m).astype(dtype), np.arange(n) % m)


@pytest.mark.parametrize("fn", FUNCS)
def test_shape_mismatch_A_W(fn):
    A, W, b, y = good()
    with pytest.raises(ValueError, match=r"\b(A|W)\b"):
        fn(A, W[:2], b, y)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("bad", ["short", "long", "2-d"])
def test_b_wrong_shape(fn, bad):
    A, W, b, y = good()
    b = {"short": b[:-1], "long": np.append(b, 1.0), "2-d": b[None, :]}[bad]
    with pytest.raises(ValueError, match=r"\bb\b"):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("bad", ["short", "long"])
def test_y_wrong_length(fn, bad):
    A, W, b, y = good()
    y = y[:-1] if bad == "short" else np.append(y, 0)
    with pytest.raises(ValueError, match=r"\by\b"):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
def test_soft_targets_wrong_shape(fn):
    A, W, b, _ = good()
    with pytest.raises(ValueError, match=r"\by\b"):
        fn(A, W, b, np.full((4, 4), 0.25))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("which", ["A", "W", "b"])
def test_mixed_dtypes_are_a_type_error(fn, which):
    A, W, b, y = good(np.float32)
    args = {"A": A, "W": W, "b": b}
    args[which] = args[which].astype(np.float64)
    with pytest.raises(TypeError, match=r"\b(A|W|b)\b"):
        fn(args["A"], args["W"], args["b"], y)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("which", ["A", "W", "b"])
@pytest.mark.parametrize("dt", [np.int64, np.int32, np.bool_, np.complex128])
def test_non_float_arrays_are_a_type_error(fn, which, dt):
    A, W, b, y = good()
    args = {"A": A, "W": W, "b": b}
    args[which] = args[which].astype(dt)
    with pytest.raises(TypeError, match=rf"\b{which}\b"):
        fn(args["A"], args["W"], args["b"], y)


@pytest.mark.parametrize("fn", FUNCS)
def test_float16_is_a_type_error(fn):
    A, W, b, y = good(np.float16)
    with pytest.raises(TypeError):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("label", [5, 99, -1, -100])
def test_labels_out_of_range(fn, label):
    A, W, b, y = good()
    y = y.copy()
    y[2] = label
    with pytest.raises(ValueError, match=r"\by\b"):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
def test_non_integer_labels(fn):
    A, W, b, _ = good()
    with pytest.raises(TypeError, match=r"\by\b"):
        fn(A, W, b, np.array([0.5, 1.0, 2.0, 3.0]))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("chunk", [0, -1, -(2 ** 40)])
def test_chunk_not_positive(fn, chunk):
    A, W, b, y = good()
    with pytest.raises(ValueError, match=r"\bchunk\b"):
        fn(A, W, b, y, chunk=chunk)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("chunk", [True, False, 1.5, 2.0, "4", [4]])
def test_chunk_not_an_int(fn, chunk):
    A, W, b, y = good()
    with pytest.raises((TypeError, ValueError), match=r"\bchunk\b"):
        fn(A, W, b, y, chunk=chunk)


@pytest.mark.parametrize("fn", FUNCS)
def test_chunk_numpy_integer_is_accepted(fn):
    A, W, b, y = good()
    ref = fn(A, W, b, y, chunk=2)
    got = fn(A, W, b, y, chunk=np.int64(2))
    np.testing.assert_array_equal(np.asarray(got[0] if isinstance(got, tuple) else got),
                                  np.asarray(ref[0] if isinstance(ref, tuple) else ref))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("shape", [(0, 3), (4, 0)])
def test_empty_A(fn, shape):
    A, W, b, y = good()
    A = np.zeros(shape)
    W = W if shape[1] else np.zeros((0, 5))
    y = y if shape[0] else np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
def test_no_classes(fn):
    A, _, _, _ = good()
    with pytest.raises(ValueError):
        fn(A, np.zeros((3, 0)), np.zeros(0), np.zeros(4, dtype=np.int64))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("ndim", [0, 1, 3])
def test_A_not_2d(fn, ndim):
    A, W, b, y = good()
    A = {0: np.float64(1.0), 1: A[0], 3: A[None]}[ndim]
    with pytest.raises(ValueError, match=r"\bA\b"):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("ndim", [1, 3])
def test_W_not_2d(fn, ndim):
    A, W, b, y = good()
    W = W[:, 0] if ndim == 1 else W[None]
    with pytest.raises(ValueError, match=r"\bW\b"):
        fn(A, W, b, y)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("bad", ["avg", "MEAN", "", "mean "])
def test_unknown_reduction(fn, bad):
    A, W, b, y = good()
    with pytest.raises(ValueError, match=r"\breduction\b"):
        fn(A, W, b, y, reduction=bad)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("bad", [None, 0, ("mean",)])
def test_reduction_not_a_string(fn, bad):
    A, W, b, y = good()
    with pytest.raises((TypeError, ValueError), match=r"\breduction\b"):
        fn(A, W, b, y, reduction=bad)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("kw", [{"sample_weight": [1.0, -1.0, 1.0, 1.0]},
                                {"sample_weight": [1.0, 1.0]},
                                {"class_weight": [1.0, 1.0]},
                                {"class_weight": [1.0, nan, 1.0, 1.0, 1.0]},
                                {"label_smoothing": 1.5},
                                {"label_smoothing": -0.1}],
                         ids=["sw-negative", "sw-short", "cw-short", "cw-nan", "ls-big",
                              "ls-negative"])
def test_bad_options_as_nll_loss(fn, kw):
    """The options are checked as nll_loss checks them: the same exception."""
    A, W, b, y = good()
    with pytest.raises((TypeError, ValueError)) as ours:
        fn(A, W, b, y, **kw)
    with pytest.raises((TypeError, ValueError)) as theirs:
        nll_loss(A @ W + b, y, **kw)
    assert type(ours.value) is type(theirs.value)
    name = next(iter(kw))
    assert name in str(ours.value)


@pytest.mark.parametrize("fn", FUNCS)
def test_non_finite_W_or_b_is_not_a_crash(fn):
    """Non-finite parameters are values (the rules above), not errors."""
    A, W, b, y = good()
    W = W.copy()
    W[0, 0] = nan
    res = fn(A, W, b, y, reduction="none")
    loss = res[0] if isinstance(res, tuple) else res
    assert np.isnan(loss).any()
