"""PyTorch as an independent reference: the kernels against ``torch.softmax``,
``log_softmax``, ``logsumexp`` and ``cross_entropy`` (with its autograd
gradient), the special-value rules README says follow PyTorch, and the
dense network's forward pass and backpropagation against a ``torch.nn``
network with the same weights.

PyTorch is optional here (``tests/_requires.py``: skipped without it, a
failure when ``CYSOFTMAX_REQUIRE`` names ``torch``, as CI does).  The
tolerances are the kernels' documented bounds, doubled because the
reference is itself a rounded computation (PyTorch's is not exact either):
each side within ``b`` of the truth puts them within ``2 b`` of each other.
"""

import numpy as np
import pytest

import _requires

import cysoftmax

torch = _requires.import_module("torch", "torch", module_level=True)
F = torch.nn.functional

DTYPES = [np.float32, np.float64]


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _logits(dtype, n, m, scale, seed):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, m))).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, m", [(7, 3), (64, 10), (33, 1000), (8, 40000)])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e4])
def test_row_kernels_agree_with_torch(dtype, n, m, scale):
    z = _logits(dtype, n, m, scale, seed=m + int(scale))
    eps = float(np.finfo(dtype).eps)
    zt = _t(z)
    r = z.max(axis=1, keepdims=True).astype(np.float64)
    # softmax: relative, with the conditioning term |z_j - r| of the bound,
    # at every m (the normalizer is summed in blocks, without the 1 of the max)
    p, pt = cysoftmax.softmax(z), torch.softmax(zt, dim=1).numpy()
    assert p.dtype == dtype
    tiny = np.finfo(dtype).tiny
    ok = (pt > tiny * 2**10)        # both far from the subnormal range
    bound = 2 * (16 + np.abs(z - r)) * eps
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(p.astype(np.float64) - pt) / pt
    assert np.all(rel[ok] <= bound[ok]), float((rel / bound)[ok].max())
    # log_softmax and logsumexp: 16 eps max(1, |value|), doubled
    for ours, theirs in ((cysoftmax.log_softmax(z), torch.log_softmax(zt, dim=1).numpy()),
                         (cysoftmax.logsumexp(z, axis=1), torch.logsumexp(zt, dim=1).numpy())):
        assert ours.dtype == dtype
        err = np.abs(ours.astype(np.float64) - theirs)
        assert np.all(err <= 32 * eps * np.maximum(1.0, np.abs(theirs.astype(np.float64)))), \
            float(err.max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_value_rows_follow_torch(dtype):
    # README: softmax / log_softmax follow PyTorch on NaN, +inf and all -inf rows
    inf, nan = np.inf, np.nan
    z = np.array([[1.0, 2.0, -inf],
                  [nan, 0.0, 0.0],
                  [inf, 0.0, 0.0],
                  [-inf, -inf, -inf],
                  [-inf, 3.0, -inf],
                  [1e30, -1e30, 0.0]], dtype=dtype)
    zt = _t(z)
    for ours, theirs in ((cysoftmax.softmax(z), torch.softmax(zt, dim=1).numpy()),
                         (cysoftmax.log_softmax(z), torch.log_softmax(zt, dim=1).numpy())):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=4 * np.finfo(dtype).eps,
                                   atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_and_gradient_agree_with_cross_entropy(dtype, reduction, weighted):
    rng = np.random.default_rng(7)
    n, m = 257, 13
    z = (5 * rng.standard_normal((n, m))).astype(dtype)
    y = rng.integers(0, m, n)
    class_weight = rng.uniform(0.1, 3.0, m).astype(dtype) if weighted else None
    zt = _t(z).requires_grad_(True)
    loss_t = F.cross_entropy(zt, torch.from_numpy(y),
                             weight=None if class_weight is None else _t(class_weight),
                             reduction=reduction)
    loss_t.sum().backward()
    sw = None if class_weight is None else class_weight[y]
    loss, grad = cysoftmax.nll_loss_and_gradient(z, y, sample_weight=sw, reduction=reduction)
    assert grad.dtype == dtype
    eps = float(np.finfo(dtype).eps)
    ref = loss_t.detach().numpy()
    # the loss: per row 16 eps max(1, |C|) each side; a sum over n rows adds
    # n rounding steps in the reference (PyTorch sums in the input's dtype)
    scale = 1 if reduction == "none" else n
    err = np.abs(np.asarray(loss, dtype=np.float64) - ref)
    assert np.all(err <= 32 * scale * eps * np.maximum(1.0, np.abs(ref))), float(err.max())
    # the gradient of the reduced loss: the same for "none" (of the sum) and "sum"
    g_ref = zt.grad.numpy()
    gmax = np.abs(g_ref).max()
    np.testing.assert_allclose(grad, g_ref, rtol=64 * eps, atol=64 * eps * gmax)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, torch_act", [("relu", torch.relu), ("tanh", torch.tanh),
                                                   ("logistic", torch.sigmoid),
                                                   ("identity", lambda a: a)])
def test_network_forward_and_backprop_agree_with_torch(dtype, activation, torch_act):
    rng = np.random.default_rng(3)
    sizes = [20, 16, 8, 5]
    X = rng.standard_normal((64, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], 64)
    coefs = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
             for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [(0.1 * rng.standard_normal(b)).astype(dtype) for b in sizes[1:]]
    alpha = 0.01
    # PyTorch: the same network, MLPClassifier's loss (mean NLL + alpha/(2n) sum ||W||^2)
    Wt = [_t(W).requires_grad_(True) for W in coefs]
    bt = [_t(b).requires_grad_(True) for b in intercepts]
    a = _t(X)
    for i, (W, b) in enumerate(zip(Wt, bt)):
        a = a @ W + b
        if i < len(Wt) - 1:
            a = torch_act(a)
    proba_t = torch.softmax(a, dim=1)
    loss_t = F.cross_entropy(a, torch.from_numpy(y)) \
        + alpha / (2 * len(X)) * sum((W * W).sum() for W in Wt)
    loss_t.backward()
    eps = float(np.finfo(dtype).eps)
    tol = 256 * eps         # a few layers of gemm rounding on each side
    proba = cysoftmax.forward(X, coefs, intercepts, activation=activation)
    assert proba.dtype == dtype
    np.testing.assert_allclose(proba, proba_t.detach().numpy(), rtol=tol, atol=tol)
    loss, dW, db = cysoftmax.backprop(X, y, coefs, intercepts, activation=activation, alpha=alpha)
    assert loss == pytest.approx(loss_t.item(), rel=tol)
    for ours, theirs in zip(dW + db, [W.grad for W in Wt] + [b.grad for b in bt]):
        assert ours.dtype == dtype
        theirs = theirs.numpy()
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * np.abs(theirs).max())
