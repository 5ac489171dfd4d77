# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Dense layers, optimizers and the training workspace.

Design
------
* One implementation per algorithm, generic over ``floating`` (float or
  double): float32 networks run in float32 end to end; only the loss is
  summed in double (by the NLL row kernel).
* Matrix products go to BLAS through ``scipy.linalg.cython_blas`` (no BLAS
  to link against, the same library NumPy/SciPy use).  Our arrays are
  row-major and BLAS is column-major, so ``C = op(A) op(B)`` is computed as
  ``C^T = op(B)^T op(A)^T``: a row-major matrix *is* its transpose in
  column-major, so swapping the operands is all it takes (as scikit-learn's
  ``sklearn/utils/_cython_blas.pyx``).
* After each gemm a single pass adds the bias and applies the activation
  while the rows are hot in cache.  The output layer adds its bias, then the
  fused NLL kernel (``cs_nll``) turns the logits, in place, into the delta
  ``w_i/sum_w (p_i - onehot(y_i))`` and returns ``sum_i w_i C_i``.
* Backward, the activation derivative is applied in place to ``D W^T`` and
  computed from the stored activations (relu: 0 where a == 0; logistic:
  a(1-a); tanh: 1-a^2), so pre-activations are never stored.
* Layer counts are known at run time only, so a network is a C array of
  ``Layer`` structs of raw pointers (see _dense.pxd) rather than memoryviews;
  the Python side checks every array once when it is bound.
* A ``Workspace`` owns every buffer a training step needs; ``run_epoch``
  gathers each mini-batch by index into it and runs forward, loss, backward
  and the optimizer update for all batches of an epoch in one ``nogil``
  region: nothing is allocated and no Python runs between batches.

The update rules and parameter names are those of scikit-learn's MLP
(``sklearn/neural_network/_stochastic_optimizers.py``), and the gradient of
a batch is that of ``_backprop``: the weighted mean NLL of the batch plus
``alpha / (2 sum_w) sum_l ||W_l||^2``.
"""
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf, sqrt, sqrtf, pow, isfinite
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from *:
    """
    /* Hint the next gathered row into cache (a no-op where unsupported). */
    #if defined(__GNUC__) || defined(__clang__)
    #define CS_PREFETCH(p) __builtin_prefetch((p), 0, 0)
    #else
    #define CS_PREFETCH(p) ((void)0)
    #endif
    """
    void CS_PREFETCH(const void *p) noexcept nogil

from ._softmax cimport cs_nll_f, cs_nll_d, cs_softmax_f, cs_softmax_d, cs_log_softmax_f, cs_log_softmax_d

import numpy as np

__all__ = ["Workspace", "forward_into", "ACTIVATIONS", "SOLVERS"]

ACTIVATIONS = {"identity": ACT_IDENTITY, "logistic": ACT_LOGISTIC,
               "tanh": ACT_TANH, "relu": ACT_RELU}
SOLVERS = (None, "sgd", "adam")

cdef enum:
    # Rows per block in forward_into: big enough for efficient gemm, small
    # enough that the hidden activations of a block stay in L2.
    FORWARD_CHUNK = 512
    # modes of _batch
    MODE_GRAD = 0      # store gradients (with the L2 term), no update
    MODE_UPDATE = 1    # optimizer update of the parameters


# --------------------------------------------------------------------------
# BLAS
# --------------------------------------------------------------------------

cdef inline void _gemm(bint trans_a, bint trans_b, int m, int n, int k,
                       floating alpha, const floating *a, int lda,
                       const floating *b, int ldb, floating beta,
                       floating *c, int ldc) noexcept nogil:
    """Row-major c (m x n) = alpha op(a) op(b) + beta c.

    Column-major BLAS sees each row-major matrix as its transpose, so we ask
    it for c^T = op(b)^T op(a)^T: the operands swap, the flags stay.
    """
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *>b, &ldb, <float *>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *>b, &ldb, <double *>a, &lda,
              &beta, c, &ldc)


# --------------------------------------------------------------------------
# elementwise passes
# --------------------------------------------------------------------------

cdef void _bias_act(floating *z, Py_ssize_t n, Py_ssize_t m, const floating *b,
                    int act) noexcept nogil:
    """z[i, :] = f(z[i, :] + b) for n rows of m, one pass right after the gemm."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating *row
    for i in range(n):
        row = z + i * m
        if act == ACT_RELU:
            # `v < 0 ? 0 : v` keeps NaN visible (np.maximum does too) and
            # compiles to a vector max/blend
            for j in range(m):
                v = row[j] + b[j]
                row[j] = 0 if v < 0 else v
        elif act == ACT_IDENTITY:
            for j in range(m):
                row[j] = row[j] + b[j]
        elif act == ACT_LOGISTIC:
            for j in range(m):
                v = row[j] + b[j]
                if floating is float:
                    row[j] = 1.0 / (1.0 + expf(-v))
                else:
                    row[j] = 1.0 / (1.0 + exp(-v))
        else:
            for j in range(m):
                v = row[j] + b[j]
                if floating is float:
                    row[j] = tanhf(v)
                else:
                    row[j] = tanh(v)


cdef void _act_derivative(floating *g, const floating *a, Py_ssize_t size,
                          int act) noexcept nogil:
    """g *= f'(z), with f'(z) computed from the activation a = f(z)."""
    cdef Py_ssize_t i
    if act == ACT_RELU:
        # as scikit-learn: zero where the activation is zero (z <= 0)
        for i in range(size):
            g[i] = 0 if a[i] == 0 else g[i]
    elif act == ACT_LOGISTIC:
        for i in range(size):
            g[i] = g[i] * (a[i] * (1 - a[i]))
    elif act == ACT_TANH:
        for i in range(size):
            g[i] = g[i] * (1 - a[i] * a[i])


cdef void _colsum(const floating *d, Py_ssize_t n, Py_ssize_t m,
                  floating *out) noexcept nogil:
    """out[j] = sum_i d[i, j]: row by row, so the inner loop is contiguous."""
    cdef Py_ssize_t i, j
    cdef const floating *row
    memset(out, 0, m * sizeof(floating))
    for i in range(n):
        row = d + i * m
        for j in range(m):
            out[j] += row[j]


cdef double _sqnorm(const floating *w, Py_ssize_t size) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(size):
        s += <double>w[i] * <double>w[i]
    return s


# --------------------------------------------------------------------------
# optimizers (in place; `l2` adds the L2 term l2 * p to the gradient on the fly)
# --------------------------------------------------------------------------

cdef void _sgd_update(floating *p, const floating *g, Py_ssize_t size,
                      floating lr, floating l2) noexcept nogil:
    """p += -lr * (g + l2 p)."""
    cdef Py_ssize_t i
    if l2 == 0:
        for i in range(size):
            p[i] += -lr * g[i]
    else:
        for i in range(size):
            p[i] += -lr * (g[i] + l2 * p[i])


cdef void _momentum_update(floating *p, const floating *g, floating *vel,
                           Py_ssize_t size, floating lr, floating mu,
                           bint nesterov, floating l2) noexcept nogil:
    """scikit-learn's SGDOptimizer: v = mu v - lr g; p += v, or with
    Nesterov p += mu v - lr g (the look-ahead step)."""
    cdef Py_ssize_t i
    cdef floating gi, v
    for i in range(size):
        gi = g[i] + l2 * p[i]
        v = mu * vel[i] - lr * gi
        vel[i] = v
        if nesterov:
            p[i] += mu * v - lr * gi
        else:
            p[i] += v


cdef void _adam_update(floating *p, const floating *g, floating *m, floating *v,
                       Py_ssize_t size, floating lr_t, floating b1, floating c1,
                       floating b2, floating c2, floating eps,
                       floating l2) noexcept nogil:
    """scikit-learn's AdamOptimizer with the bias correction folded into lr_t:
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p += -lr_t m / (sqrt(v) + eps).
    c1 = 1 - b1 and c2 = 1 - b2 are rounded from double, as NumPy does."""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi
    for i in range(size):
        gi = g[i] + l2 * p[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        if floating is float:
            p[i] += -lr_t * mi / (sqrtf(vi) + eps)
        else:
            p[i] += -lr_t * mi / (sqrt(vi) + eps)


cdef inline double _adam_lr(const Net *net, double lr) noexcept nogil:
    """Bias-corrected step size at time step net.t (already incremented)."""
    return (lr * sqrt(1.0 - pow(net.beta_2, <double>net.t))
            / (1.0 - pow(net.beta_1, <double>net.t)))


cdef void _update_param(const Net *net, floating *p, const floating *g,
                        floating *s1, floating *s2, Py_ssize_t size, double lr,
                        double lr_t, double l2) noexcept nogil:
    if net.solver == SOLVER_ADAM:
        _adam_update(p, g, s1, s2, size, <floating>lr_t, <floating>net.beta_1,
                     <floating>(1.0 - net.beta_1), <floating>net.beta_2,
                     <floating>(1.0 - net.beta_2), <floating>net.epsilon, <floating>l2)
    elif net.solver == SOLVER_MOMENTUM:
        _momentum_update(p, g, s1, size, <floating>lr, <floating>net.momentum,
                         net.nesterov, <floating>l2)
    else:
        _sgd_update(p, g, size, <floating>lr, <floating>l2)


# --------------------------------------------------------------------------
# gathering a batch
# --------------------------------------------------------------------------

cdef int _gather_x(const Source *src, const floating *x, const Py_ssize_t *order,
                   Py_ssize_t start, Py_ssize_t nb, floating *out) noexcept nogil:
    """Rows order[k] (or start + k when order is NULL) of X into out (nb, nf).

    x is src.X typed (it picks the float/double version).  CSR rows are
    scattered into zeroed rows; duplicate column entries add up, as in scipy.
    CSR structure is checked on the way (the loop reads every index anyway,
    and a predictable branch costs next to nothing): returns 1 at the first
    row whose indptr or column indices are out of range, without writing
    out of bounds; else 0.
    """
    cdef Py_ssize_t k, r, q, lo, hi
    cdef Py_ssize_t nf = src.n_features
    cdef floating *row
    cdef const int32_t *ind32
    cdef const int32_t *ptr32
    cdef const int64_t *ind64
    cdef const int64_t *ptr64
    cdef Py_ssize_t nbytes = nf * sizeof(floating), c
    cdef const char *nxt
    for k in range(nb):
        r = order[k] if order != NULL else start + k
        row = out + k * nf
        if not src.sparse:
            # rows sit at random places in X: while this row is copied, ask
            # for the next one, so that its misses overlap with this copy
            if k + 1 < nb:
                nxt = <const char *>(x + (order[k + 1] if order != NULL else start + k + 1) * nf)
                for c in range(0, nbytes, 64):
                    CS_PREFETCH(nxt + c)
            memcpy(row, x + r * nf, nbytes)
            continue
        memset(row, 0, nf * sizeof(floating))
        if src.idx64:
            ind64 = <const int64_t *>src.indices
            ptr64 = <const int64_t *>src.indptr
            lo = ptr64[r]
            hi = ptr64[r + 1]
            if lo < 0 or hi < lo or hi > src.nnz:
                return 1
            for q in range(lo, hi):
                if ind64[q] < 0 or ind64[q] >= nf:
                    return 1
                row[ind64[q]] += x[q]
        else:
            ind32 = <const int32_t *>src.indices
            ptr32 = <const int32_t *>src.indptr
            lo = ptr32[r]
            hi = ptr32[r + 1]
            if lo < 0 or hi < lo or hi > src.nnz:
                return 1
            for q in range(lo, hi):
                if ind32[q] < 0 or ind32[q] >= nf:
                    return 1
                row[ind32[q]] += x[q]
    return 0


# --------------------------------------------------------------------------
# forward, loss, backward
# --------------------------------------------------------------------------

cdef void _forward(const Net *net, const floating *x0, Py_ssize_t ldx,
                   Py_ssize_t nb) noexcept nogil:
    """Activations of every layer into layers[l].A; logits into the last."""
    cdef Py_ssize_t l, L = net.n_layers
    cdef const Layer *ly
    cdef const floating *a_prev = x0
    cdef Py_ssize_t lda = ldx
    cdef floating *z
    for l in range(L):
        ly = &net.layers[l]
        z = <floating *>ly.A
        _gemm(False, False, <int>nb, <int>ly.n_out, <int>ly.n_in, <floating>1.0,
              a_prev, <int>lda, <const floating *>ly.W, <int>ly.n_out,
              <floating>0.0, z, <int>ly.n_out)
        _bias_act(z, nb, ly.n_out, <const floating *>ly.b,
                  net.activation if l < L - 1 else ACT_IDENTITY)
        a_prev = z
        lda = ly.n_out


cdef double _batch(Net *net, const floating *x0, Py_ssize_t ldx, Py_ssize_t nb,
                   const Py_ssize_t *y, const double *w, double sw, int mode,
                   double lr) noexcept nogil:
    """Forward, loss and gradient, backward, and (mode UPDATE) the update.

    Returns sum_i w_i C_i over the batch.  The gradient is that of the
    batch's weighted mean NLL + alpha/(2 sw) sum ||W||^2 (sw = sum of the
    batch's weights, or nb).  Each W_l is updated only after D_{l-1} = D_l W_l^T
    has used it, which is the same as computing every gradient first.
    """
    cdef Py_ssize_t l, L = net.n_layers
    cdef Layer *ly
    cdef Layer *out = &net.layers[L - 1]
    cdef floating *d
    cdef floating *g
    cdef floating *W
    cdef floating *gW
    cdef floating *b
    cdef floating *gb
    cdef const floating *a_prev
    cdef Py_ssize_t lda, i
    cdef double total
    cdef double l2 = net.alpha / sw
    cdef double lr_t = 0.0
    cdef floating fl2

    _forward(net, x0, ldx, nb)
    # logits -> delta in place: w_i / sw * (p_i - onehot(y_i))
    if floating is float:
        total = cs_nll_f(<const float *>out.A, out.n_out, y, w, 1.0 / sw, NULL,
                         <float *>out.A, out.n_out, nb, out.n_out)
    else:
        total = cs_nll_d(<const double *>out.A, out.n_out, y, w, 1.0 / sw, NULL,
                         <double *>out.A, out.n_out, nb, out.n_out)

    if mode == MODE_UPDATE and net.solver == SOLVER_ADAM:
        net.t += 1
        lr_t = _adam_lr(net, lr)

    for l in range(L - 1, -1, -1):
        ly = &net.layers[l]
        d = <floating *>ly.D
        W = <floating *>ly.W
        gW = <floating *>ly.gW
        b = <floating *>ly.b
        gb = <floating *>ly.gb
        if l == 0:
            a_prev = x0
            lda = ldx
        else:
            a_prev = <const floating *>net.layers[l - 1].A
            lda = ly.n_in
            # D_{l-1} = (D_l W_l^T) * f'(A_l), with the old W_l
            g = <floating *>net.layers[l - 1].D
            _gemm(False, True, <int>nb, <int>ly.n_in, <int>ly.n_out, <floating>1.0,
                  d, <int>ly.n_out, W, <int>ly.n_out, <floating>0.0, g, <int>ly.n_in)
            _act_derivative(g, a_prev, nb * ly.n_in, net.activation)

        _colsum(d, nb, ly.n_out, gb)
        if mode == MODE_UPDATE and net.solver == SOLVER_SGD:
            # Plain SGD folded into the gemm: W = (1 - lr l2) W - lr A^T D is
            # W - lr (A^T D + l2 W), without writing or re-reading a gradient.
            _gemm(True, False, <int>ly.n_in, <int>ly.n_out, <int>nb, <floating>(-lr),
                  a_prev, <int>lda, d, <int>ly.n_out, <floating>(1.0 - lr * l2),
                  W, <int>ly.n_out)
            _sgd_update(b, gb, ly.n_out, <floating>lr, <floating>0.0)
            continue
        _gemm(True, False, <int>ly.n_in, <int>ly.n_out, <int>nb, <floating>1.0,
              a_prev, <int>lda, d, <int>ly.n_out, <floating>0.0, gW, <int>ly.n_out)
        if mode == MODE_GRAD:
            if l2 != 0:
                fl2 = <floating>l2
                for i in range(ly.n_in * ly.n_out):
                    gW[i] += fl2 * W[i]
        else:
            # intercepts carry no L2 term (as scikit-learn)
            _update_param(net, W, gW, <floating *>ly.sW1, <floating *>ly.sW2,
                          ly.n_in * ly.n_out, lr, lr_t, l2)
            _update_param(net, b, gb, <floating *>ly.sb1, <floating *>ly.sb2,
                          ly.n_out, lr, lr_t, 0.0)
    return total


cdef double _epoch(Net *net, const Source *src, const floating *x,
                   const Py_ssize_t *y, const double *w, const Py_ssize_t *order,
                   Py_ssize_t n_order, Py_ssize_t batch, double lr,
                   floating *xb, Py_ssize_t *yb, double *wb, int *status) noexcept nogil:
    """All mini-batches of `order`, in order: gather, step.  sum w_i C_i.

    A batch whose weights are all zero has no defined mean; it is skipped
    (it adds nothing to the loss and makes no update).  Malformed CSR input
    stops the epoch with *status = 4.
    """
    cdef Py_ssize_t start, nb, k, r
    cdef double total = 0.0, sw
    start = 0
    while start < n_order:
        nb = batch if n_order - start > batch else n_order - start
        start += nb
        if _gather_x(src, x, order + start - nb, 0, nb, xb):
            status[0] = 4
            return total
        if w == NULL:
            sw = <double>nb
            for k in range(nb):
                yb[k] = y[order[start - nb + k]]
        else:
            sw = 0.0
            for k in range(nb):
                r = order[start - nb + k]
                yb[k] = y[r]
                wb[k] = w[r]
                sw += w[r]
            if sw == 0.0:
                continue
        total += _batch(net, xb, src.n_features, nb, yb,
                        wb if w != NULL else NULL, sw, MODE_UPDATE, lr)
    return total


cdef int _check_rows(const Py_ssize_t *order, Py_ssize_t n_order, Py_ssize_t n_rows,
                     const Py_ssize_t *y, Py_ssize_t n_classes, const double *w) noexcept nogil:
    """0 if every order[k] is a row, its label is in [0, m) and its weight is
    finite and >= 0; else 1 (bad index), 2 (bad label), 3 (bad weight)."""
    cdef Py_ssize_t k, r
    for k in range(n_order):
        r = order[k]
        if r < 0 or r >= n_rows:
            return 1
        if y[r] < 0 or y[r] >= n_classes:
            return 2
        if w != NULL and not (isfinite(w[r]) and w[r] >= 0):
            return 3
    return 0


# --------------------------------------------------------------------------
# Python-level helpers
# --------------------------------------------------------------------------

cdef inline void *_ptr(object a):
    """Address of an ndarray's first element (the caller checked it)."""
    return <void *><size_t>a.__array_interface__["data"][0]


def _source(X, dtype, Py_ssize_t n_features, name="X"):
    """Check X (C-contiguous ndarray or CSR matrix of `dtype`); return
    (Source fields, objects to keep alive)."""
    if hasattr(X, "indptr") and getattr(X, "format", None) == "csr":
        data = X.data
        if data.dtype != dtype:
            raise TypeError(f"{name}.data has dtype {data.dtype}; the network is {np.dtype(dtype)}")
        if X.shape[1] != n_features:
            raise ValueError(f"{name} has {X.shape[1]} features; the network expects {n_features}")
        indices, indptr = X.indices, X.indptr
        if indices.dtype != indptr.dtype or indices.dtype not in (np.int32, np.int64):
            indices = indices.astype(np.int64)
            indptr = indptr.astype(np.int64)
        data = np.ascontiguousarray(data)
        indices = np.ascontiguousarray(indices)
        indptr = np.ascontiguousarray(indptr)
        if (indptr.ndim != 1 or indptr.shape[0] != X.shape[0] + 1
                or indices.shape[0] != data.shape[0]):
            raise ValueError(_BAD_CSR)
        return (True, indices.dtype == np.int64, X.shape[0], data, indices, indptr)
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a scipy.sparse CSR matrix; "
                        f"got {type(X).__name__}")
    if X.dtype != dtype:
        raise TypeError(f"{name} has dtype {X.dtype}; the network is {np.dtype(dtype)}")
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n, {n_features}); got {X.shape}")
    if not X.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return (False, False, X.shape[0], X, None, None)


_BAD_CSR = ("X is a malformed CSR matrix: its indptr or column indices are out of "
            "range (X.check_format() says more)")


cdef void _fill_source(Source *s, tuple info, Py_ssize_t n_features):
    s.sparse = info[0]
    s.idx64 = info[1]
    s.n_rows = info[2]
    s.n_features = n_features
    s.X = _ptr(info[3]) if info[3].size else NULL
    s.indices = _ptr(info[4]) if s.sparse and info[4].size else NULL
    s.indptr = _ptr(info[5]) if s.sparse else NULL
    s.nnz = info[3].shape[0] if s.sparse else 0


def _check_network(coefs, intercepts, dtype, bint writeable):
    """Shapes, dtype and layout of the parameter arrays (already ndarrays)."""
    coefs = list(coefs)
    intercepts = list(intercepts)
    if len(coefs) == 0 or len(coefs) != len(intercepts):
        raise ValueError("coefs and intercepts must be non-empty lists of equal length")
    for l, (W, b) in enumerate(zip(coefs, intercepts)):
        for a, name, nd in ((W, f"coefs[{l}]", 2), (b, f"intercepts[{l}]", 1)):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{name} must be a numpy array")
            if a.dtype != dtype:
                raise TypeError(f"{name} has dtype {a.dtype}; expected {np.dtype(dtype)}")
            if a.ndim != nd or 0 in a.shape:
                raise ValueError(f"{name} must be {nd}-D and non-empty; got shape {a.shape}")
            if not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous")
            if writeable and not a.flags.writeable:
                raise ValueError(f"{name} is read-only; the workspace updates it in place")
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"intercepts[{l}] has {b.shape[0]} entries; coefs[{l}] has "
                             f"{W.shape[1]} columns")
        if l and W.shape[0] != coefs[l - 1].shape[1]:
            raise ValueError(f"coefs[{l}] has {W.shape[0]} rows; coefs[{l - 1}] has "
                             f"{coefs[l - 1].shape[1]} columns")
    return coefs, intercepts


# --------------------------------------------------------------------------
# the workspace
# --------------------------------------------------------------------------

cdef class Workspace:
    """Every buffer of a training step, and the optimizer, for one network.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        The network's parameters, ``coefs[l]`` of shape ``(fan_in, fan_out)``
        and ``intercepts[l]`` of shape ``(fan_out,)``, all float32 or all
        float64, C-contiguous (and writeable unless `solver` is None).  They
        stay owned by the caller: the workspace keeps references and updates
        them in place, so they are the live weights.
    max_batch : int
        Largest number of rows in one step.
    activation : {"relu", "identity", "logistic", "tanh"}
        Hidden-layer activation; the output layer is always softmax + NLL.
    solver : {"sgd", "adam", None}
        ``None``: gradients only (no optimizer state).  ``"sgd"`` with
        ``momentum == 0`` is plain SGD, folded into the weight-gradient gemm.
    alpha : float
        L2 strength; a batch's gradient carries ``alpha / sum_w_batch * W``.
    learning_rate_init, momentum, nesterovs_momentum, beta_1, beta_2, epsilon
        As scikit-learn's MLP.  ``learning_rate_init`` is the learning rate
        used when a method's ``lr`` is None.

    Notes
    -----
    Buffers: the gathered X batch (allocated at the first gathered step),
    labels and weights of the batch, activations and deltas per layer,
    gradients, and the optimizer state (velocities, or Adam's ``ms``/``vs``
    and ``t``).  Pickling keeps the hyper-parameters, the optimizer state
    and references to the parameter arrays (pickled together with an
    estimator, they stay the very same arrays after loading).

    A workspace is not thread-safe: its methods release the GIL while they
    compute, so one workspace must not be used from two threads at once.
    """

    def __cinit__(self):
        self.net.layers = NULL
        self.net.n_layers = 0

    def __dealloc__(self):
        free(self.net.layers)

    def __init__(self, coefs, intercepts, Py_ssize_t max_batch, activation="relu",
                 solver="sgd", double alpha=0.0, double learning_rate_init=0.001,
                 double momentum=0.9, bint nesterovs_momentum=True, double beta_1=0.9,
                 double beta_2=0.999, double epsilon=1e-8):
        if self.net.layers != NULL:
            raise RuntimeError("Workspace is already initialized")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}; got {solver!r}")
        if not (alpha >= 0 and isfinite(alpha)):
            raise ValueError(f"alpha must be finite and >= 0; got {alpha}")
        coefs = list(coefs)
        if not coefs or not isinstance(coefs[0], np.ndarray):
            raise TypeError("coefs must be a non-empty list of numpy arrays")
        dtype = coefs[0].dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"coefs[0] has dtype {dtype}; expected float32 or float64")
        coefs, intercepts = _check_network(coefs, intercepts, dtype, solver is not None)

        self.max_batch = max_batch
        self.dtype = np.dtype(dtype)
        self._f32 = self.dtype == np.float32
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self._coefs = coefs
        self._intercepts = intercepts

        cdef Py_ssize_t L = len(coefs), l
        self.net.layers = <Layer *>malloc(L * sizeof(Layer))
        if self.net.layers == NULL:
            raise MemoryError()
        memset(self.net.layers, 0, L * sizeof(Layer))
        self.net.n_layers = L
        self.net.activation = ACTIVATIONS[activation]
        if solver is None:
            self.net.solver = SOLVER_NONE
        elif solver == "adam":
            self.net.solver = SOLVER_ADAM
        elif momentum == 0:
            self.net.solver = SOLVER_SGD
        else:
            self.net.solver = SOLVER_MOMENTUM
        self.net.nesterov = nesterovs_momentum
        self.net.alpha = alpha
        self.net.momentum = momentum
        self.net.beta_1 = beta_1
        self.net.beta_2 = beta_2
        self.net.epsilon = epsilon
        self.net.t = 0

        self._A, self._D, self._gW, self._gb, self._s1, self._s2 = [], [], [], [], [], []
        for l in range(L):
            n_in, n_out = coefs[l].shape
            self._A.append(np.empty((max_batch, n_out), dtype))
            # the output layer's delta overwrites its logits
            self._D.append(self._A[l] if l == L - 1 else np.empty((max_batch, n_out), dtype))
            self._gW.append(np.zeros((n_in, n_out), dtype))
            self._gb.append(np.zeros(n_out, dtype))
        # optimizer state in scikit-learn's order: coefs then intercepts
        params = coefs + intercepts
        if self.net.solver in (SOLVER_MOMENTUM, SOLVER_ADAM):
            self._s1 = [np.zeros_like(p) for p in params]
        if self.net.solver == SOLVER_ADAM:
            self._s2 = [np.zeros_like(p) for p in params]
        self._ybuf = np.zeros(max_batch, np.intp)
        self._wbuf = np.zeros(max_batch, np.float64)
        self._xbuf = None
        self._set_pointers()

    cdef _set_pointers(self):
        cdef Py_ssize_t l, L = self.net.n_layers
        cdef Layer *ly
        for l in range(L):
            ly = &self.net.layers[l]
            ly.n_in, ly.n_out = self._coefs[l].shape
            ly.W = _ptr(self._coefs[l])
            ly.b = _ptr(self._intercepts[l])
            ly.A = _ptr(self._A[l])
            ly.D = _ptr(self._D[l])
            ly.gW = _ptr(self._gW[l])
            ly.gb = _ptr(self._gb[l])
            ly.sW1 = _ptr(self._s1[l]) if self._s1 else NULL
            ly.sb1 = _ptr(self._s1[L + l]) if self._s1 else NULL
            ly.sW2 = _ptr(self._s2[l]) if self._s2 else NULL
            ly.sb2 = _ptr(self._s2[L + l]) if self._s2 else NULL

    # ---- parameters and state --------------------------------------------

    def bind(self, coefs, intercepts):
        """Make `coefs`/`intercepts` (same shapes and dtype) the live weights."""
        coefs, intercepts = _check_network(coefs, intercepts, self.dtype, self.solver is not None)
        if [c.shape for c in coefs] != [c.shape for c in self._coefs]:
            raise ValueError("coefs have shapes "
                             f"{[c.shape for c in coefs]}; the workspace was built for "
                             f"{[c.shape for c in self._coefs]}")
        self._coefs = coefs
        self._intercepts = intercepts
        self._set_pointers()

    @property
    def coefs(self):
        """The bound (live) coefficient arrays."""
        return list(self._coefs)

    @property
    def intercepts(self):
        """The bound (live) intercept arrays."""
        return list(self._intercepts)

    @property
    def layer_sizes(self):
        """[n_features, hidden..., n_classes]."""
        return [self._coefs[0].shape[0]] + [c.shape[1] for c in self._coefs]

    @property
    def coef_grads(self):
        """Gradient buffers of the coefs (set by `gradient`; overwritten by each step)."""
        return list(self._gW)

    @property
    def intercept_grads(self):
        """Gradient buffers of the intercepts."""
        return list(self._gb)

    @property
    def alpha(self):
        return self.net.alpha

    @property
    def momentum(self):
        return self.net.momentum

    @property
    def nesterovs_momentum(self):
        return bool(self.net.nesterov)

    @property
    def beta_1(self):
        return self.net.beta_1

    @property
    def beta_2(self):
        return self.net.beta_2

    @property
    def epsilon(self):
        return self.net.epsilon

    @property
    def t(self):
        """Adam's time step: updates made so far (0 for the other solvers)."""
        return self.net.t

    @property
    def optimizer_state(self):
        """The optimizer state, as scikit-learn names it (arrays are live).

        ``{"velocities": [...]}`` for SGD with momentum, ``{"t": int, "ms":
        [...], "vs": [...]}`` for Adam, ``{}`` otherwise; lists hold the coefs'
        entries then the intercepts'.
        """
        if self.net.solver == SOLVER_MOMENTUM:
            return {"velocities": list(self._s1)}
        if self.net.solver == SOLVER_ADAM:
            return {"t": int(self.net.t), "ms": list(self._s1), "vs": list(self._s2)}
        return {}

    def set_optimizer_state(self, state):
        """Copy a state of `optimizer_state`'s form into the workspace."""
        if self.net.solver == SOLVER_MOMENTUM:
            pairs = [(self._s1, state["velocities"])]
        elif self.net.solver == SOLVER_ADAM:
            pairs = [(self._s1, state["ms"]), (self._s2, state["vs"])]
        else:
            pairs = []
        for dst, src in pairs:
            if len(src) != len(dst):
                raise ValueError(f"optimizer state has {len(src)} arrays; expected {len(dst)}")
            for d, s in zip(dst, src):
                d[...] = s
        if self.net.solver == SOLVER_ADAM:
            self.net.t = int(state["t"])

    def __reduce__(self):
        args = (list(self._coefs), list(self._intercepts), self.max_batch, self.activation,
                self.solver, self.net.alpha, self.learning_rate_init, self.net.momentum,
                bool(self.net.nesterov), self.net.beta_1, self.net.beta_2, self.net.epsilon)
        return (Workspace, args, self.optimizer_state)

    def __setstate__(self, state):
        self.set_optimizer_state(state)

    def squared_norm(self):
        """sum_l ||coefs[l]||^2, accumulated in double (for the L2 penalty)."""
        cdef double s = 0.0
        cdef Py_ssize_t l
        cdef Layer *ly
        with nogil:
            for l in range(self.net.n_layers):
                ly = &self.net.layers[l]
                if self._f32:
                    s += _sqnorm(<const float *>ly.W, ly.n_in * ly.n_out)
                else:
                    s += _sqnorm(<const double *>ly.W, ly.n_in * ly.n_out)
        return s

    # ---- computing ---------------------------------------------------------

    cdef _labels(self, y, Py_ssize_t n):
        y = np.asarray(y)
        if y.dtype.kind not in "iu":
            raise TypeError(f"y must hold integer class labels; got dtype {y.dtype}")
        y = np.ascontiguousarray(y, dtype=np.intp)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must be 1-D with one label per row of X ({n}); got shape {y.shape}")
        return y

    cdef _weights(self, sample_weight, Py_ssize_t n):
        if sample_weight is None:
            return None
        w = np.ascontiguousarray(sample_weight, dtype=np.float64)
        if w.ndim != 1 or w.shape[0] != n:
            raise ValueError(f"sample_weight must be 1-D with one weight per row of X ({n}); "
                             f"got shape {w.shape}")
        return w

    cdef double _lr(self, lr) except? -1:
        cdef double r = self.learning_rate_init if lr is None else lr
        if not (r >= 0 and isfinite(r)):
            raise ValueError(f"lr must be finite and >= 0; got {r}")
        return r

    def run_epoch(self, X, y, sample_weight, order, Py_ssize_t batch_size, lr=None):
        """Train on the mini-batches ``order[0:b], order[b:2b], ...``: one epoch.

        Each batch is gathered by index into the workspace, then forward,
        loss and gradient, backward and the optimizer update run, all batches
        in one ``nogil`` region.  The parameters are updated in place.

        Parameters
        ----------
        X : ndarray (n, n_features), C-contiguous, of the network's dtype, or
            scipy.sparse CSR matrix with data of that dtype (valid indices).
        y : ndarray (n,) of integer labels (np.intp avoids a copy).
        sample_weight : ndarray (n,) float64 or None
        order : ndarray of np.intp
            Row indices, already shuffled by the caller; may be a subset of
            the rows (a training split) and shorter than n.
        batch_size : int, 1 <= batch_size <= max_batch
        lr : float, optional
            The learning rate (scikit-learn's ``optimizer.learning_rate`` for
            SGD; the base rate ``learning_rate_init`` for Adam).  Default:
            ``learning_rate_init``.

        Returns
        -------
        float
            ``sum_i w_i C_i`` over the epoch: the data loss before each batch's
            update, without the L2 penalty.  Batches whose weights are all
            zero are skipped.
        """
        return self._run(X, y, sample_weight, order, batch_size, lr)

    def step(self, X, y, sample_weight, idx, lr=None):
        """One training step on the rows ``idx`` (one batch).  Returns sum w_i C_i."""
        idx = np.asarray(idx)
        return self._run(X, y, sample_weight, idx, max(1, idx.shape[0]) if idx.ndim == 1 else 1, lr)

    cdef _run(self, X, y, sample_weight, order, Py_ssize_t batch_size, lr):
        if self.net.solver == SOLVER_NONE:
            raise ValueError("this workspace has no optimizer (solver=None); use gradient()")
        if batch_size < 1 or batch_size > self.max_batch:
            raise ValueError(f"batch_size must be in [1, max_batch={self.max_batch}]; got {batch_size}")
        cdef Py_ssize_t nf = self._coefs[0].shape[0]
        cdef Py_ssize_t m = self._coefs[len(self._coefs) - 1].shape[1]
        info = _source(X, self.dtype, nf)
        cdef Py_ssize_t n = info[2]
        y = self._labels(y, n)
        w = self._weights(sample_weight, n)
        order = np.asarray(order)
        if order.dtype != np.intp or order.ndim != 1:
            if order.ndim != 1 or order.dtype.kind not in "iu":
                raise TypeError(f"order must be a 1-D integer array; got {order.dtype} {order.shape}")
            order = order.astype(np.intp)
        order = np.ascontiguousarray(order)
        cdef double rate = self._lr(lr)
        if self._xbuf is None:
            # allocated once, at the first gathered step (gradient() never needs it)
            self._xbuf = np.empty((self.max_batch, nf), self.dtype)

        cdef Source src
        _fill_source(&src, info, nf)
        cdef Py_ssize_t n_order = order.shape[0]
        if n_order == 0:
            return 0.0
        cdef const Py_ssize_t *op = <const Py_ssize_t *>_ptr(order)
        cdef const Py_ssize_t *yp = <const Py_ssize_t *>_ptr(y) if n else NULL
        cdef const double *wp = <const double *>_ptr(w) if w is not None and n else NULL
        cdef Py_ssize_t *yb = <Py_ssize_t *>_ptr(self._ybuf)
        cdef double *wb = <double *>_ptr(self._wbuf)
        cdef void *xb = _ptr(self._xbuf)
        cdef int bad
        cdef double total
        with nogil:
            bad = _check_rows(op, n_order, n, yp, m, wp)
            if bad == 0:
                if self._f32:
                    total = _epoch(&self.net, &src, <const float *>src.X, yp, wp, op, n_order,
                                   batch_size, rate, <float *>xb, yb, wb, &bad)
                else:
                    total = _epoch(&self.net, &src, <const double *>src.X, yp, wp, op, n_order,
                                   batch_size, rate, <double *>xb, yb, wb, &bad)
        if bad == 1:
            raise ValueError(f"order holds a row index outside [0, {n})")
        if bad == 2:
            raise ValueError(f"y holds a label outside [0, {m}) for {m} classes")
        if bad == 3:
            raise ValueError("sample_weight must be finite and non-negative")
        if bad == 4:
            raise ValueError(_BAD_CSR)
        return total

    def gradient(self, X, y, sample_weight=None):
        """Loss terms and gradients of the whole of X (at most max_batch rows), no update.

        X is used in place (C-contiguous ndarray of the network's dtype); the
        gradients of ``weighted mean NLL + alpha/(2 sum_w) sum ||W||^2`` go
        to `coef_grads` / `intercept_grads`.  Returns ``(sum_i w_i C_i,
        sum_w)``; the caller adds the penalty (see `squared_norm`).
        """
        cdef Py_ssize_t nf = self._coefs[0].shape[0]
        cdef Py_ssize_t m = self._coefs[len(self._coefs) - 1].shape[1]
        info = _source(X, self.dtype, nf)
        if info[0]:
            raise TypeError("gradient() takes a dense X")
        cdef Py_ssize_t n = info[2]
        if n < 1 or n > self.max_batch:
            raise ValueError(f"X must have between 1 and max_batch={self.max_batch} rows; got {n}")
        y = self._labels(y, n)
        w = self._weights(sample_weight, n)
        cdef const Py_ssize_t *yp = <const Py_ssize_t *>_ptr(y)
        cdef const double *wp = <const double *>_ptr(w) if w is not None else NULL
        cdef const void *xp = _ptr(X)
        cdef double sw = float(w.sum()) if w is not None else <double>n
        cdef int bad = 0
        cdef Py_ssize_t k
        cdef double total = 0.0
        if not sw > 0:
            raise ValueError("sample_weight is all zero: the weighted mean is undefined")
        with nogil:
            for k in range(n):          # labels and weights, without an order
                if yp[k] < 0 or yp[k] >= m:
                    bad = 2
                    break
                if wp != NULL and not (isfinite(wp[k]) and wp[k] >= 0):
                    bad = 3
                    break
            if bad == 0:
                if self._f32:
                    total = _batch(&self.net, <const float *>xp, nf, n, yp, wp, sw, MODE_GRAD, 0.0)
                else:
                    total = _batch(&self.net, <const double *>xp, nf, n, yp, wp, sw, MODE_GRAD, 0.0)
        if bad == 2:
            raise ValueError(f"y holds a label outside [0, {m}) for {m} classes")
        if bad == 3:
            raise ValueError("sample_weight must be finite and non-negative")
        return total, sw

    def apply_gradients(self, coef_grads, intercept_grads, lr=None):
        """One optimizer update of the live parameters with the given gradients.

        The gradients are taken as complete (no L2 term is added).  Adam's
        time step advances by one.  For testing the update rules, and for
        callers that compute their own gradients.
        """
        if self.net.solver == SOLVER_NONE:
            raise ValueError("this workspace has no optimizer (solver=None)")
        gc, gi = _check_network(coef_grads, intercept_grads, self.dtype, False)
        if [g.shape for g in gc] != [c.shape for c in self._coefs]:
            raise ValueError("coef_grads do not match the shapes of coefs")
        cdef double rate = self._lr(lr)
        cdef double lr_t = 0.0
        cdef Py_ssize_t l, L = self.net.n_layers
        cdef Layer *ly
        cdef void *gWp
        cdef void *gbp
        if self.net.solver == SOLVER_ADAM:
            self.net.t += 1
            lr_t = _adam_lr(&self.net, rate)
        for l in range(L):
            ly = &self.net.layers[l]
            gWp = _ptr(gc[l])
            gbp = _ptr(gi[l])
            if self._f32:
                _update_param(&self.net, <float *>ly.W, <const float *>gWp,
                              <float *>ly.sW1, <float *>ly.sW2, ly.n_in * ly.n_out, rate, lr_t, 0.0)
                _update_param(&self.net, <float *>ly.b, <const float *>gbp,
                              <float *>ly.sb1, <float *>ly.sb2, ly.n_out, rate, lr_t, 0.0)
            else:
                _update_param(&self.net, <double *>ly.W, <const double *>gWp,
                              <double *>ly.sW1, <double *>ly.sW2, ly.n_in * ly.n_out, rate, lr_t, 0.0)
                _update_param(&self.net, <double *>ly.b, <const double *>gbp,
                              <double *>ly.sb1, <double *>ly.sb2, ly.n_out, rate, lr_t, 0.0)


# --------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------

cdef int _forward_chunks(Net *net, const Source *src, const floating *x,
                         floating *out, floating *buf0, floating *buf1,
                         floating *xb, int output) noexcept nogil:
    """All rows of X through the network into out (n, m), FORWARD_CHUNK rows
    at a time, hidden activations ping-ponging between buf0 and buf1.
    Returns 1 for malformed CSR input (out is then incomplete), else 0."""
    cdef Py_ssize_t start, nb, l, L = net.n_layers, n = src.n_rows
    cdef Py_ssize_t m = net.layers[L - 1].n_out
    cdef const floating *x0
    start = 0
    while start < n:
        nb = FORWARD_CHUNK if n - start > FORWARD_CHUNK else n - start
        for l in range(L - 1):
            net.layers[l].A = buf0 if l % 2 == 0 else buf1
        net.layers[L - 1].A = out + start * m
        if src.sparse:
            if _gather_x(src, x, NULL, start, nb, xb):
                return 1
            x0 = xb
        else:
            x0 = x + start * src.n_features
        _forward(net, x0, src.n_features, nb)
        if output == 1:
            if floating is float:
                cs_softmax_f(out + start * m, m, out + start * m, m, nb, m)
            else:
                cs_softmax_d(out + start * m, m, out + start * m, m, nb, m)
        elif output == 2:
            if floating is float:
                cs_log_softmax_f(out + start * m, m, out + start * m, m, nb, m)
            else:
                cs_log_softmax_d(out + start * m, m, out + start * m, m, nb, m)
        start += nb
    return 0


def forward_into(X, coefs, intercepts, activation, out, output="proba"):
    """Forward pass of every row of X into `out` (n, m), block by block.

    X: C-contiguous ndarray or CSR matrix of the network's dtype; coefs and
    intercepts checked lists of C-contiguous arrays; out: C-contiguous
    (n, m) of the same dtype.  output: "logits", "proba" or "log_proba"
    (the last two through the softmax row kernels).  Memory beyond `out` is
    two blocks of hidden activations (and a densified block for CSR X).
    """
    modes = {"logits": 0, "proba": 1, "log_proba": 2}
    if output not in modes:
        raise ValueError(f"output must be one of {sorted(modes)}; got {output!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    cdef int mode = modes[output]
    dtype = out.dtype
    coefs, intercepts = _check_network(coefs, intercepts, dtype, False)
    cdef Py_ssize_t nf = coefs[0].shape[0]
    info = _source(X, dtype, nf)
    cdef Py_ssize_t n = info[2], L = len(coefs), l
    cdef Py_ssize_t m = coefs[L - 1].shape[1]
    if out.shape != (n, m) or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writeable C-contiguous array of shape {(n, m)}")
    if n == 0:
        return out
    cdef Py_ssize_t width = max([1] + [c.shape[1] for c in coefs[:L - 1]])
    cdef Py_ssize_t chunk = min(n, FORWARD_CHUNK)
    buf0 = np.empty(chunk * width, dtype)
    buf1 = np.empty(chunk * width, dtype)
    xb = np.empty((chunk, nf), dtype) if info[0] else buf0
    cdef Net net
    memset(&net, 0, sizeof(Net))
    net.n_layers = L
    net.activation = ACTIVATIONS[activation]
    net.layers = <Layer *>malloc(L * sizeof(Layer))
    if net.layers == NULL:
        raise MemoryError()
    for l in range(L):
        net.layers[l].n_in, net.layers[l].n_out = coefs[l].shape
        net.layers[l].W = _ptr(coefs[l])
        net.layers[l].b = _ptr(intercepts[l])
    cdef Source src
    _fill_source(&src, info, nf)
    cdef void *op = _ptr(out)
    cdef void *p0 = _ptr(buf0)
    cdef void *p1 = _ptr(buf1)
    cdef void *px = _ptr(xb)
    cdef int bad
    try:
        if dtype == np.float32:
            with nogil:
                bad = _forward_chunks(&net, &src, <const float *>src.X, <float *>op,
                                      <float *>p0, <float *>p1, <float *>px, mode)
        else:
            with nogil:
                bad = _forward_chunks(&net, &src, <const double *>src.X, <double *>op,
                                      <double *>p0, <double *>p1, <double *>px, mode)
    finally:
        free(net.layers)
    if bad:
        raise ValueError(_BAD_CSR)
    return out
