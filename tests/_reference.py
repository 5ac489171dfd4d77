"""Independent float64/NumPy references and small utilities shared by the tests.

The references are written from the documented formulas and special-value
semantics (DESIGN.md, README), in float64 with plain NumPy: they must stay
independent of cysoftmax's code -- never import cysoftmax (its kernels, its
Python wrappers or its helpers) here, or a bug would be checked against itself.

Imported by the test modules as ``from _reference import ...``: pytest's
default ("prepend") import mode puts the directory of a test module without an
``__init__.py`` on sys.path, whether pytest runs from the repository root or
from tests/ (ci/wheel_check.sh and ci/portable_check.sh copy tests/*.py, so
this file travels with the tests).

Unless stated otherwise a reference returns its result in the dtype the
kernels compute the input in (``result_dtype``: float32 stays float32,
everything else is float64), after computing in float64.
"""

import os

import numpy as np

inf, nan = np.inf, np.nan

__all__ = [
    "ACTIVATIONS",
    "ref_activations",
    "ref_backprop",
    "ref_cross_entropy",
    "ref_forward",
    "ref_log_softmax",
    "ref_logsumexp",
    "ref_lse_rows",
    "ref_nll",
    "ref_softmax",
    "ref_softmax_rows",
    "ref_softmax_where",
    "ref_log_softmax_where",
    "ref_logsumexp_where",
    "result_dtype",
    "rss_bytes",
]


# ===========================================================================
# softmax / log_softmax / logsumexp / NLL, with the documented special values


def _rows(z, axis):
    """z (float64) with `axis` moved last and flattened: (z2, kept, axes, restore)."""
    nd = z.ndim
    axes = tuple(range(nd)) if axis is None else tuple(
        sorted(a % nd for a in (axis if isinstance(axis, tuple) else (axis,))))
    rest = [i for i in range(nd) if i not in axes]
    perm = rest + list(axes)
    moved = z.transpose(perm)
    kept = moved.shape[:len(rest)]
    m = int(np.prod(moved.shape[len(rest):], dtype=np.int64))
    z2 = moved.reshape(-1, m) if m else moved.reshape(int(np.prod(kept, dtype=np.int64)), 0)

    def restore(o2):
        return o2.reshape(moved.shape).transpose(np.argsort(perm))

    return z2, kept, axes, restore


def _bad_row(row):
    return row.size and (np.isnan(row).any() or (row == inf).any() or (row == -inf).all())


def ref_softmax_rows(z2, log=False):
    """Row-wise (log-)softmax of a 2-d float64 array; a row with a NaN, a +inf
    or only -inf is all NaN.  float64 in, float64 out."""
    out = np.empty_like(z2)
    for i, row in enumerate(z2):
        if row.size == 0:
            continue
        if _bad_row(row):
            out[i] = nan
            continue
        r = row.max()
        e = np.exp(row - r)
        out[i] = (row - r) - np.log(e.sum()) if log else e / e.sum()
    return out


def ref_lse_rows(z2):
    """Row-wise logsumexp of a 2-d float64 array: -inf for an empty or all
    -inf row, NaN for a row with a NaN, +inf for a row with a +inf."""
    out = np.empty(z2.shape[0])
    for i, row in enumerate(z2):
        if row.size == 0 or (row == -inf).all():
            out[i] = -inf
        elif np.isnan(row).any():
            out[i] = nan
        elif (row == inf).any():
            out[i] = inf
        else:
            r = row.max()
            out[i] = r + np.log(np.exp(row - r).sum())
    return out


def result_dtype(z):
    """The dtype the kernels compute `z` in: float32 stays float32, all else float64."""
    a = np.asarray(z)
    return np.float32 if a.dtype.kind == "f" and a.dtype.itemsize == 4 else np.float64


def ref_softmax(z, axis=-1, log=False):
    z64 = np.asarray(z).astype(np.float64)
    z2, _, _, restore = _rows(z64, axis)
    return restore(ref_softmax_rows(z2, log)).astype(result_dtype(z))


def ref_log_softmax(z, axis=-1):
    return ref_softmax(z, axis, log=True)


def ref_logsumexp(z, axis=-1, keepdims=False):
    z64 = np.asarray(z).astype(np.float64)
    z2, kept, axes, _ = _rows(z64, axis)
    res = ref_lse_rows(z2).astype(result_dtype(z))
    if keepdims:
        return res.reshape([1 if i in axes else s for i, s in enumerate(z64.shape)])
    res = res.reshape(kept)
    return res[()] if res.ndim == 0 else res


def ref_nll(z, y, sample_weight=None, reduction="mean"):
    """(loss, grad) of the documented NLL, in float64 then cast."""
    dt = result_dtype(z)
    z2 = np.asarray(z).astype(np.float64)
    y = np.asarray(y).astype(np.int64)
    n, m = z2.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if reduction == "mean" and n:
        w = w / w.max()            # the mean is scale-free; avoids overflow as the kernel does
    p = ref_softmax_rows(z2)
    c = np.empty(n)
    for i in range(n):
        if np.isnan(p[i]).any():
            c[i] = nan
        else:
            c[i] = ref_lse_rows(z2[i:i + 1])[0] - z2[i, y[i]]
    wc = np.where(w == 0, 0.0, w * np.where(w == 0, 0.0, c))
    scale = w / w.sum() if reduction == "mean" and n else w
    grad = p.copy()
    grad[np.arange(n), y] -= 1.0
    grad = np.where((w == 0)[:, None], 0.0, grad * scale[:, None])
    if reduction == "none":
        loss = wc.astype(dt)
    elif reduction == "sum":
        loss = float(wc.sum())
    else:
        loss = float(wc.sum() / w.sum()) if n else nan
    return loss, grad.astype(dt)


def ref_cross_entropy(z, y, *, sample_weight=None, class_weight=None, ignore_index=None,
                      label_smoothing=0.0, reduction="mean", return_scale=False):
    """(loss, grad) of PyTorch's cross_entropy with its options, plus sample
    weights, from the documented formulas (``nll_loss``'s docstring), in
    float64 (loss and grad both float64, never cast: compare a float32 result
    with them at float32's tolerance).

    Row i: target weights a_k = (1 - eps) c_y [k == y] + eps/m c_k for a
    label, c_k ((1 - eps) q_k + eps/m) for a row q of probabilities (a 2-D
    y); l_i = sum_k a_k (-log p_k), each -log p_k = (r - z_k) + log1p(the
    exps but one arg-max's), terms with a_k = 0 omitted (masked classes);
    gradient A p - a.  Ignored rows and rows of sample weight 0 are 0; a row
    with a NaN, a +inf or only -inf is NaN.  "mean" divides by sum_i w_i d_i
    (d_i = c_y, 0 if ignored, 1 for probabilities): NaN loss when that is 0,
    and then a NaN gradient for every row not skipped.  The class weights
    and probabilities are first rounded to the logits' dtype, as the
    function documents.  `grad` is the gradient of the returned quantity
    (of the sum of the rows for "none").  With `return_scale`, also the size
    of the two terms of each gradient entry, g_i (A p_j + a_j) with g_i the
    row's factor (w_i, or w_i / denominator): the scale of its rounding
    errors, in any computation of A p_j - a_j.
    """
    dt = result_dtype(z)
    z = np.asarray(z).astype(np.float64)
    n, m = z.shape
    y = np.asarray(y)
    soft = y.ndim == 2
    q = y.astype(dt).astype(np.float64) if soft else None
    c = np.ones(m) if class_weight is None else \
        np.asarray(class_weight).astype(dt).astype(np.float64)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if reduction == "mean" and n and w.max() > 0:
        w = w / w.max()            # scale-free; keeps huge weights in range
    eps = float(label_smoothing)
    loss, d = np.zeros(n), np.zeros(n)
    grad = np.zeros((n, m))
    terms = np.zeros((n, m))
    skip = np.zeros(n, dtype=bool)
    for i in range(n):
        if soft:
            a, d[i] = c * ((1 - eps) * q[i] + eps / m), 1.0
        elif ignore_index is not None and y[i] == ignore_index:
            skip[i] = True
            continue
        else:
            a = eps / m * c
            a[y[i]] += (1 - eps) * c[y[i]]
            d[i] = c[y[i]]
        if w[i] == 0:
            skip[i] = True
            continue
        row = z[i]
        if _bad_row(row):
            loss[i], grad[i] = nan, nan
            continue
        top = int(np.argmax(row))
        e = np.exp(row - row[top])
        lse = np.log1p(np.delete(e, top).sum())   # log s, e[top] = 1 left out of the sum
        with np.errstate(invalid="ignore"):
            loss[i] = np.where(a == 0, 0.0, a * ((row[top] - row) + lse)).sum()
        grad[i] = a.sum() * (e / e.sum()) - a
        terms[i] = a.sum() * (e / e.sum()) + a
    with np.errstate(over="ignore"):
        wl = np.where(skip, 0.0, w * loss)
    if reduction == "none":
        out = wl, w[:, None] * grad, w[:, None] * terms
    elif reduction == "sum":
        out = float(wl.sum()), w[:, None] * grad, w[:, None] * terms
    elif not (w * d).sum():
        nans = np.where(skip[:, None], 0.0, np.full((n, m), nan))
        out = nan, nans, nans
    else:
        denom = float((w * d).sum())
        out = float(wl.sum() / denom), (w / denom)[:, None] * grad, (w / denom)[:, None] * terms
    return out if return_scale else out[:2]

# ---------------------------------------------------------------------------
# where= masks: the kept entries of each slice, dropped into an array of their
# own and given the references above; masked entries get 0 (-inf for the log)


def _rows_where(z, where, axis):
    z64 = np.asarray(z).astype(np.float64)
    keep = np.broadcast_to(np.asarray(where, dtype=bool), z64.shape)
    z2, kept, axes, restore = _rows(z64, axis)
    k2, _, _, _ = _rows(keep, axis)
    return z2, k2, kept, axes, restore, z64.shape


def ref_softmax_where(z, where, axis=-1, log=False):
    """softmax (log_softmax) of the kept entries of every slice; 0 (-inf)
    at the masked ones, and for a slice with no entry kept."""
    z2, k2, _, _, restore, _ = _rows_where(z, where, axis)
    out = np.full(z2.shape, -inf if log else 0.0)
    for i in range(z2.shape[0]):
        if k2[i].any():
            out[i, k2[i]] = ref_softmax_rows(z2[i, k2[i]][None, :], log)[0]
    return restore(out).astype(result_dtype(z))


def ref_log_softmax_where(z, where, axis=-1):
    return ref_softmax_where(z, where, axis, log=True)


def ref_logsumexp_where(z, where, axis=-1, keepdims=False):
    """logsumexp of the kept entries of every slice (-inf when none is kept)."""
    z2, k2, kept, axes, _, shape = _rows_where(z, where, axis)
    res = np.array([ref_lse_rows(z2[i, k2[i]][None, :])[0] for i in range(z2.shape[0])],
                   dtype=np.float64).astype(result_dtype(z))
    if keepdims:
        return res.reshape([1 if i in axes else s for i, s in enumerate(shape)])
    res = res.reshape(kept)
    return res[()] if res.ndim == 0 else res


# ===========================================================================
# dense network: forward and backprop (scikit-learn's MLP, softmax output)

# name -> (activation f(z), its derivative expressed in a = f(z))
ACTIVATIONS = {
    "identity": (lambda a: a, lambda a: np.ones_like(a)),
    "relu": (lambda a: np.maximum(a, 0), lambda a: (a > 0).astype(a.dtype)),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "logistic": (lambda a: 1 / (1 + np.exp(-a)), lambda a: a * (1 - a)),
}


def ref_activations(X, coefs, intercepts, activation="relu"):
    """Activations [X, A_1, ..., logits], all float64 (no output softmax)."""
    f = ACTIVATIONS[activation][0]
    acts = [np.asarray(X, dtype=np.float64)]
    L = len(coefs)
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        z = acts[-1] @ np.asarray(W, dtype=np.float64) + np.asarray(b, dtype=np.float64)
        acts.append(f(z) if i < L - 1 else z)
    return acts


def ref_forward(X, coefs, intercepts, activation="relu"):
    """Class probabilities (softmax of the logits, NaN rows as ref_softmax_rows),
    cast to X's dtype in native byte order."""
    dt = np.asarray(X).dtype.newbyteorder("=")
    logits = ref_activations(X, coefs, intercepts, activation)[-1]
    return ref_softmax_rows(logits).astype(dt)


def ref_backprop(X, y, coefs, intercepts, activation="relu", alpha=0.0, sample_weight=None,
                 *, cast=True):
    """(loss, dW, db): the weighted mean NLL plus alpha / (2 sum w) * sum ||W||^2,
    and its gradients.  loss is a Python float; dW and db are cast to X's dtype
    (native byte order) as the kernels return them, or left in float64 with
    cast=False (to compare float32 results with the float64 reference)."""
    dt = np.asarray(X).dtype.newbyteorder("=") if cast else np.dtype(np.float64)
    df = ACTIVATIONS[activation][1]
    Ws = [np.asarray(W, dtype=np.float64) for W in coefs]
    acts = ref_activations(X, Ws, intercepts, activation)
    n = acts[0].shape[0]
    # raw weights: the L2 term's alpha / (2 sum w) depends on their scale
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sw = w.sum()
    y = np.asarray(y).astype(np.int64)
    loss_rows, D = ref_nll(acts[-1], y, w, "none")
    D = D / sw
    loss = loss_rows.sum() / sw + 0.5 * alpha * sum((W * W).sum() for W in Ws) / sw
    dWs, dbs = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        dWs[l] = (acts[l].T @ D + alpha / sw * Ws[l]).astype(dt)
        dbs[l] = D.sum(axis=0).astype(dt)
        if l:
            D = (D @ Ws[l].T) * df(acts[l])
    return float(loss), dWs, dbs


# ===========================================================================
# utilities


def rss_bytes():
    """The process's resident set size in bytes (/proc/self/statm), or None
    where there is no /proc (not Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def under_address_sanitizer():
    """True when AddressSanitizer is preloaded (ci/sanitize.sh).  Its
    allocator keeps freed blocks in a quarantine, and the sanitizer run also
    routes Python's allocations through it (PYTHONMALLOC=malloc), so the
    resident set grows without any leak: RSS checks mean nothing there."""
    return "libasan" in os.environ.get("LD_PRELOAD", "") or "ASAN_OPTIONS" in os.environ
