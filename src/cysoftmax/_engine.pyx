# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The training engine: the epoch loop, chunked inference, and the Trainer.

Owns what runs a whole network: one mini-batch step (forward, the fused
loss and output delta, backward, the optimizer update), an epoch of steps in
one ``nogil`` region, the block-by-block forward pass of `forward_into`, and
the `Trainer` class that owns every buffer a step needs.  It cimports the
engine parts (``_blas``, ``_layers``, ``_optim``, ``_batches``) and the row
kernels (``_kernels``), and imports ``_validation`` for its argument checks;
nothing above it.

Design
------
* One implementation per algorithm, generic over ``floating`` (float or
  double): float32 networks run in float32 end to end; only the loss is
  summed in double (by the NLL row kernel).  Every compiled call is
  described by a `Job` and run by `_execute`, the one place where float32
  and float64 part ways.
* After each gemm a single pass adds the bias and applies the activation
  while the rows are hot in cache (then, in training steps, dropout with
  masks that the backward pass recomputes: ``_layers``).  The output layer
  adds its bias, then the fused NLL kernel (``cs_nll``, or ``cs_nll_opts``
  with label smoothing) turns the logits, in place, into the delta
  ``w_i/sum_w (p_i - onehot(y_i))`` and returns ``sum_i w_i C_i``; a
  logistic (multilabel) output does the same with the binary cross-entropy
  kernel (``cs_bce``) and the batch's target rows.
* The learning rate of each mini-batch is the epoch's, or the cosine
  schedule's (``_optim.cosine_rate``), computed inside the epoch.
* A `Trainer` owns every buffer a training step needs; `Trainer.run_epoch`
  gathers each mini-batch by index into it and runs forward, loss, backward
  and the optimizer update for all batches of an epoch in one ``nogil``
  region: nothing is allocated and no Python runs between batches.

The update rules and parameter names are those of scikit-learn's MLP
(``sklearn/neural_network/_stochastic_optimizers.py``), and the gradient of
a batch is that of ``_backprop``: the weighted mean NLL of the batch plus
``alpha / (2 sum_w) sum_l ||W_l||^2``.
"""
from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport uint64_t, uint32_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy

from ._kernels cimport (cs_nll_f, cs_nll_d, cs_nll_opts_f, cs_nll_opts_d, cs_softmax_f,
                       cs_softmax_d, cs_log_softmax_f, cs_log_softmax_d, cs_bce_f, cs_bce_d,
                       cs_sigmoid_f, cs_sigmoid_d, cs_log_sigmoid_f, cs_log_sigmoid_d)
from ._blas cimport gemm
from ._layers cimport (Layer, Net, ACT_IDENTITY, ACT_LOGISTIC, ACT_TANH, ACT_RELU,
                       ACT_LEAKY_RELU, ACT_GELU, ACT_SILU, OUT_SOFTMAX, OUT_LOGISTIC,
                       colsum, sqnorm, forward, layer_input, delta_below, below_derivative,
                       dropout, drop_stream)
from ._optim cimport (Optimizer, SOLVER_NONE, SOLVER_SGD, SOLVER_MOMENTUM, SOLVER_ADAM,
                      Schedule, SCHEDULE_EPOCH, SCHEDULE_COSINE, cosine_rate,
                      sgd_update, begin_step, update_param)
from ._batches cimport (Source, STATUS_OK, STATUS_BAD_INDEX, STATUS_BAD_CSR,
                        gather_rows, densify_run, gather_targets, check_order)
from ._output cimport NLLArgs, linear_nll

import numpy as np

from ._validation import (check_choice, check_dropout, check_labels, check_network,
                          check_sample_weight)

__all__ = ["Trainer", "forward_into", "linear_nll_rows", "last_linear_workspace",
           "output_chunk_rows", "scheduled_rate", "dropout_mask", "ACTIVATIONS",
           "OUT_ACTIVATIONS", "SOLVERS", "OUTPUTS", "CHUNK_ELEMENTS"]

# The one activation table: every name the package accepts, and its code.
ACTIVATIONS = {"identity": ACT_IDENTITY, "logistic": ACT_LOGISTIC,
               "tanh": ACT_TANH, "relu": ACT_RELU, "leaky_relu": ACT_LEAKY_RELU,
               "gelu": ACT_GELU, "silu": ACT_SILU}
# activations whose derivative needs the pre-activation z (kept per layer)
_NEEDS_Z = frozenset({"gelu", "silu"})
# the output layer: softmax + cross-entropy, or independent sigmoids +
# binary cross-entropy (multilabel), named as MLPClassifier's out_activation_
OUT_ACTIVATIONS = {"softmax": OUT_SOFTMAX, "logistic": OUT_LOGISTIC}
SOLVERS = (None, "sgd", "adam")

cdef enum Output:
    OUTPUT_LOGITS = 0
    OUTPUT_PROBA = 1         # through the softmax row kernel
    OUTPUT_LOG_PROBA = 2     # through the log-softmax row kernel

OUTPUTS = {"logits": OUTPUT_LOGITS, "proba": OUTPUT_PROBA, "log_proba": OUTPUT_LOG_PROBA}

# The fused output layer's default block: as many rows as keep the block of
# logits at most CHUNK_ELEMENTS entries (64 MiB float32, 128 MiB float64),
# a multiple of 32, and at least MIN_CHUNK_ROWS rows.  Every block is one pass of BLAS over W
# (twice) and dW, so the products lose efficiency as blocks shrink: against
# the unfused path at 4096 x 512 x 32,000 float32, 2 threads, blocks of 64 /
# 128 / 256 / 512 rows took 1.53 / 1.21 / 1.06 / 1.05x its time (1 thread:
# 1.19 / 1.05 / 1.00 / 0.98x); at 128,000 classes 131 / 256 rows took 1.16 /
# 1.02x.  The floor keeps any class count within about 1.2x.
CHUNK_ELEMENTS = 1 << 24
MIN_CHUNK_ROWS = 128


def output_chunk_rows(Py_ssize_t n, Py_ssize_t m):
    """Rows per block of the fused output layer for n rows of m logits: the
    budget's rows rounded down to a multiple of 32 (BLAS works in tiles of
    rows), at least MIN_CHUNK_ROWS, at most n."""
    return max(1, min(n, max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // max(m, 1) // 32 * 32)))


cdef enum:
    # Rows per block in forward_into: big enough for efficient gemm, small
    # enough that the hidden activations of a block stay in L2.
    FORWARD_CHUNK = 512

_BAD_CSR = ("X is a malformed CSR matrix: its indptr or column indices are out of "
            "range (X.check_format() says more)")


# --------------------------------------------------------------------------
# one step
# --------------------------------------------------------------------------

cdef double _forward_loss(const Net *net, const floating *x0, Py_ssize_t ldx, Py_ssize_t nb,
                          const Py_ssize_t *y, const floating *t, const double *w,
                          double sw) noexcept nogil:
    """Forward pass, then the logits turned, in place, into the output delta
    w_i / sw (p_i - a_i), with a_i onehot(y_i) (label-smoothed with
    net.smoothing), or the targets t_i (nb x m) of a logistic output.
    Returns sum_i w_i C_i.

    With net.out_chunk (the fused output layer), the output layer runs block
    by block instead, and its whole backward step with it: its gradients
    gW, gb, and the delta below it (with the activation's derivative) are
    done on return; its delta is never held for the whole batch."""
    cdef Py_ssize_t L = net.n_layers, lda
    cdef const Layer *out = &net.layers[L - 1]
    cdef const floating *a_prev
    cdef floating *d_below
    cdef NLLArgs o
    cdef double total
    cdef Py_ssize_t m = out.n_out
    cdef floating *z = <floating *>out.A
    if net.out_chunk == 0:
        forward(net, x0, ldx, nb, L)
        if net.out_act == OUT_LOGISTIC:
            if floating is float:
                return cs_bce_f(z, m, t, m, w, 1.0 / sw, NULL, z, m, nb, m)
            else:
                return cs_bce_d(z, m, t, m, w, 1.0 / sw, NULL, z, m, nb, m)
        if net.smoothing != 0:
            if floating is float:
                return cs_nll_opts_f(z, m, y, NULL, 0, NULL, w, -1, net.smoothing, 1.0 / sw,
                                     NULL, z, m, nb, m)
            else:
                return cs_nll_opts_d(z, m, y, NULL, 0, NULL, w, -1, net.smoothing, 1.0 / sw,
                                     NULL, z, m, nb, m)
        if floating is float:
            return cs_nll_f(z, m, y, w, 1.0 / sw, NULL, z, m, nb, m)
        else:
            return cs_nll_d(z, m, y, w, 1.0 / sw, NULL, z, m, nb, m)
    forward(net, x0, ldx, nb, L - 1)
    a_prev = layer_input(net, L - 1, x0, ldx, &lda)
    d_below = <floating *>net.layers[L - 2].D if L > 1 else NULL
    o.y = y
    o.q = NULL
    o.ldq = 0
    o.cw = NULL
    o.w = w
    o.ignore = -1
    o.smoothing = net.smoothing
    o.plain = net.smoothing == 0
    o.gmul = 1.0 / sw
    total = linear_nll(a_prev, lda, <const floating *>out.W, out.n_out, False,
                       <const floating *>out.b, nb, out.n_in, out.n_out, &o, net.out_chunk,
                       <floating *>out.A, net.bacc, <floating *>NULL, True, d_below, out.n_in,
                       <floating *>out.gW, <floating *>out.gb)
    if L > 1:
        below_derivative(net, L - 2, nb, d_below)
    return total


cdef double _batch_gradient(const Net *net, const floating *x0, Py_ssize_t ldx,
                            Py_ssize_t nb, const Py_ssize_t *y, const floating *t,
                            const double *w, double sw, double alpha) noexcept nogil:
    """Loss and gradients of one batch into layers[l].gW / .gb, no update.

    Returns sum_i w_i C_i.  The gradient is that of the batch's weighted mean
    NLL + alpha/(2 sw) sum ||W||^2 (sw = sum of the batch's weights, or nb).
    """
    cdef double total = _forward_loss(net, x0, ldx, nb, y, t, w, sw)
    cdef double l2 = alpha / sw
    cdef floating fl2 = <floating>l2
    cdef Py_ssize_t l, i, lda
    cdef const Layer *ly
    cdef const floating *a_prev
    cdef const floating *W
    cdef floating *gW
    for l in range(net.n_layers - 1, -1, -1):
        ly = &net.layers[l]
        W = <const floating *>ly.W
        gW = <floating *>ly.gW
        if not (net.out_chunk and l == net.n_layers - 1):   # (fused: done)
            a_prev = layer_input(net, l, x0, ldx, &lda)
            if l:
                delta_below(net, l, nb, <floating *>net.layers[l - 1].D)
            colsum(<const floating *>ly.D, nb, ly.n_out, <floating *>ly.gb)
            gemm(True, False, <int>ly.n_in, <int>ly.n_out, <int>nb, <floating>1.0,
                 a_prev, <int>lda, <const floating *>ly.D, <int>ly.n_out, <floating>0.0,
                 gW, <int>ly.n_out)
        if l2 != 0:
            for i in range(ly.n_in * ly.n_out):
                gW[i] += fl2 * W[i]
    return total


cdef double _batch_update(const Net *net, Optimizer *opt, const floating *x0,
                          Py_ssize_t ldx, Py_ssize_t nb, const Py_ssize_t *y,
                          const floating *t, const double *w, double sw, double alpha,
                          double lr) noexcept nogil:
    """Loss, gradients and the optimizer update of one batch.

    The gradient is `_batch_gradient`'s.  Each W_l is updated only after
    D_{l-1} = D_l W_l^T has used it, which is the same as computing every
    gradient first.  Returns sum_i w_i C_i (before the update).
    """
    cdef double total = _forward_loss(net, x0, ldx, nb, y, t, w, sw)
    cdef double l2 = alpha / sw
    cdef double lr_t = begin_step(opt, lr)
    cdef Py_ssize_t l, lda
    cdef const Layer *ly
    cdef const floating *a_prev
    for l in range(net.n_layers - 1, -1, -1):
        ly = &net.layers[l]
        if net.out_chunk and l == net.n_layers - 1:
            # fused: gW, gb and the delta below are done; the update alone
            # (plain SGD too: W += -lr (gW + l2 W), as with any solver)
            update_param(opt, <floating *>ly.W, <const floating *>ly.gW, <floating *>ly.sW1,
                         <floating *>ly.sW2, ly.n_in * ly.n_out, lr, lr_t, l2)
            update_param(opt, <floating *>ly.b, <const floating *>ly.gb, <floating *>ly.sb1,
                         <floating *>ly.sb2, ly.n_out, lr, lr_t, 0.0)
            continue
        a_prev = layer_input(net, l, x0, ldx, &lda)
        if l:
            delta_below(net, l, nb, <floating *>net.layers[l - 1].D)
        colsum(<const floating *>ly.D, nb, ly.n_out, <floating *>ly.gb)
        if opt.solver == SOLVER_SGD:
            # Plain SGD folded into the gemm: W = (1 - lr l2) W - lr A^T D is
            # W - lr (A^T D + l2 W), without writing or re-reading a gradient.
            gemm(True, False, <int>ly.n_in, <int>ly.n_out, <int>nb, <floating>(-lr),
                 a_prev, <int>lda, <const floating *>ly.D, <int>ly.n_out,
                 <floating>(1.0 - lr * l2), <floating *>ly.W, <int>ly.n_out)
            sgd_update(<floating *>ly.b, <const floating *>ly.gb, ly.n_out,
                       <floating>lr, <floating>0.0)
            continue
        gemm(True, False, <int>ly.n_in, <int>ly.n_out, <int>nb, <floating>1.0,
             a_prev, <int>lda, <const floating *>ly.D, <int>ly.n_out, <floating>0.0,
             <floating *>ly.gW, <int>ly.n_out)
        # intercepts carry no L2 term (as scikit-learn)
        update_param(opt, <floating *>ly.W, <const floating *>ly.gW, <floating *>ly.sW1,
                     <floating *>ly.sW2, ly.n_in * ly.n_out, lr, lr_t, l2)
        update_param(opt, <floating *>ly.b, <const floating *>ly.gb, <floating *>ly.sb1,
                     <floating *>ly.sb2, ly.n_out, lr, lr_t, 0.0)
    return total


# --------------------------------------------------------------------------
# jobs: what one compiled call does, and the one float32/float64 switch
# --------------------------------------------------------------------------

cdef enum Op:
    OP_EPOCH = 0       # the mini-batches of an order, each with an update
    OP_GRADIENT = 1    # loss and gradients of the rows of a dense X, no update
    OP_APPLY = 2       # one update with given gradients
    OP_SQNORM = 3      # sum_l ||W_l||^2
    OP_FORWARD = 4     # every row through the network, block by block

cdef struct Job:
    Op op
    Net *net
    Optimizer *opt
    const Source *src            # the rows of X (epoch, gradient, forward)
    const Py_ssize_t *y          # labels of X's rows (epoch, gradient), or NULL ...
    const void *t                # ... the (n, m) targets of a logistic output
    void *tb                     # epoch: the batch's targets (logistic output)
    Schedule sched               # epoch: the learning rate of each batch
    Py_ssize_t first_batch       # epoch: the number of its first batch in the epoch
    uint64_t drop_key            # epoch: the seed of its dropout masks
    const double *w              # their weights, or NULL
    const Py_ssize_t *order      # epoch: row indices, batch after batch
    Py_ssize_t n_order, batch
    double alpha, lr, sw         # L2 strength; learning rate; gradient: sum of weights
    void *xb                     # epoch: the gathered batch; forward: a densified CSR block
    Py_ssize_t *yb               # epoch: the batch's labels
    double *wb                   # epoch: the batch's weights
    const void **grads           # apply: coef gradients, then intercept gradients
    void *out                    # forward: (n, m) output
    void *buf0                   # forward: hidden activations, ping ...
    void *buf1                   # ... pong
    int output                   # forward: Output
    double result                # epoch, gradient: sum w_i C_i; sqnorm: the norm
    int status                   # Status (_batches.pxd)


cdef double _epoch(Job *job, floating *xb) noexcept nogil:
    """All mini-batches of job.order, in order: gather, step.  sum w_i C_i.

    A batch whose weights are all zero has no defined mean; it is skipped
    (it adds nothing to the loss and makes no update).  Malformed CSR input
    stops the epoch with job.status = STATUS_BAD_CSR.
    """
    cdef const Source *src = job.src
    cdef Py_ssize_t start = 0, nb, k = job.first_batch, i
    cdef Py_ssize_t m = job.net.layers[job.net.n_layers - 1].n_out
    cdef const Py_ssize_t *rows
    cdef const floating *t = <const floating *>job.t
    cdef floating *tb = <floating *>job.tb
    cdef double total = 0.0, sw, lr
    job.net.drop_key = job.drop_key
    while start < job.n_order:
        nb = job.batch if job.n_order - start > job.batch else job.n_order - start
        rows = job.order + start
        start += nb
        # every batch counts in the schedule and the dropout streams, also
        # one that is skipped
        lr = job.lr if job.sched.kind == SCHEDULE_EPOCH else cosine_rate(&job.sched, k)
        job.net.drop_batch = <uint64_t>k
        k += 1
        job.status = gather_rows(src, <const floating *>src.X, rows, nb, xb)
        if job.status != STATUS_OK:
            return total
        sw = gather_targets(job.y, job.w, rows, nb, job.yb, job.wb)
        if sw == 0.0:
            continue
        if t != NULL:
            for i in range(nb):
                memcpy(tb + i * m, t + rows[i] * m, m * sizeof(floating))
        total += _batch_update(job.net, job.opt, xb, src.n_features, nb,
                               job.yb if job.y != NULL else NULL, tb if t != NULL else NULL,
                               job.wb if job.w != NULL else NULL, sw, job.alpha, lr)
    return total


cdef void _apply(Job *job, floating *tag) noexcept nogil:
    """One update of every parameter with the gradients job.grads (complete:
    no L2 term is added)."""
    cdef double lr_t = begin_step(job.opt, job.lr)
    cdef Py_ssize_t l, L = job.net.n_layers
    cdef const Layer *ly
    for l in range(L):
        ly = &job.net.layers[l]
        update_param(job.opt, <floating *>ly.W, <const floating *>job.grads[l],
                     <floating *>ly.sW1, <floating *>ly.sW2, ly.n_in * ly.n_out,
                     job.lr, lr_t, 0.0)
        update_param(job.opt, <floating *>ly.b, <const floating *>job.grads[L + l],
                     <floating *>ly.sb1, <floating *>ly.sb2, ly.n_out, job.lr, lr_t, 0.0)


cdef double _squared_norm(const Net *net, floating *tag) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t l
    for l in range(net.n_layers):
        s += sqnorm(<const floating *>net.layers[l].W,
                    net.layers[l].n_in * net.layers[l].n_out)
    return s


cdef int _forward_chunks(Job *job, floating *tag) noexcept nogil:
    """All rows of X through the network into job.out (n, m), FORWARD_CHUNK
    rows at a time, hidden activations ping-ponging between buf0 and buf1.
    Returns STATUS_BAD_CSR for malformed CSR input (out is then incomplete)."""
    cdef Net *net = job.net
    cdef const Source *src = job.src
    cdef const floating *x = <const floating *>src.X
    cdef floating *out = <floating *>job.out
    cdef Py_ssize_t start, nb, l, L = net.n_layers, n = src.n_rows
    cdef Py_ssize_t m = net.layers[L - 1].n_out
    cdef const floating *x0
    cdef floating *block
    cdef int status
    start = 0
    while start < n:
        nb = FORWARD_CHUNK if n - start > FORWARD_CHUNK else n - start
        for l in range(L - 1):
            net.layers[l].A = job.buf0 if l % 2 == 0 else job.buf1
        block = out + start * m
        net.layers[L - 1].A = block
        if src.sparse:
            status = densify_run(src, x, start, nb, <floating *>job.xb)
            if status != STATUS_OK:
                return status
            x0 = <const floating *>job.xb
        else:
            x0 = x + start * src.n_features
        forward(net, x0, src.n_features, nb, L)
        if net.out_act == OUT_LOGISTIC:
            if job.output == OUTPUT_PROBA:
                if floating is float:
                    cs_sigmoid_f(block, m, block, m, nb, m)
                else:
                    cs_sigmoid_d(block, m, block, m, nb, m)
            elif job.output == OUTPUT_LOG_PROBA:
                if floating is float:
                    cs_log_sigmoid_f(block, m, block, m, nb, m)
                else:
                    cs_log_sigmoid_d(block, m, block, m, nb, m)
        elif job.output == OUTPUT_PROBA:
            if floating is float:
                cs_softmax_f(block, m, block, m, nb, m)
            else:
                cs_softmax_d(block, m, block, m, nb, m)
        elif job.output == OUTPUT_LOG_PROBA:
            if floating is float:
                cs_log_softmax_f(block, m, block, m, nb, m)
            else:
                cs_log_softmax_d(block, m, block, m, nb, m)
        start += nb
    return STATUS_OK


cdef void _execute_typed(Job *job, floating *tag) noexcept nogil:
    # dropout is part of training steps only: never of a gradient() or forward
    job.net.train = job.op == OP_EPOCH
    if job.op == OP_EPOCH:
        job.result = _epoch(job, <floating *>job.xb)
    elif job.op == OP_GRADIENT:
        job.result = _batch_gradient(job.net, <const floating *>job.src.X, job.src.n_features,
                                     job.src.n_rows, job.y, <const floating *>job.t, job.w,
                                     job.sw, job.alpha)
    elif job.op == OP_APPLY:
        _apply(job, tag)
    elif job.op == OP_SQNORM:
        job.result = _squared_norm(job.net, tag)
    else:
        job.status = _forward_chunks(job, tag)


cdef inline void _execute(Job *job, bint f32) noexcept nogil:
    """Run a job: the one place where float32 and float64 part ways."""
    if f32:
        _execute_typed(job, <float *>NULL)
    else:
        _execute_typed(job, <double *>NULL)


# --------------------------------------------------------------------------
# Python-level helpers: rows of X, binding a network
# --------------------------------------------------------------------------

cdef inline void *_ptr(object a):
    """Address of an ndarray's first element (the caller checked it)."""
    return <void *><size_t>a.__array_interface__["data"][0]


cdef class _Rows:
    """X's rows as the engine reads them: a `Source` over a dense
    C-contiguous ndarray or the arrays of a CSR matrix, and those arrays
    (kept alive while the Source points into them)."""
    cdef Source src
    cdef object _data, _indices, _indptr


cdef _Rows _rows_of(X, dtype, Py_ssize_t n_features, str name="X"):
    """Check X (C-contiguous ndarray or CSR matrix of `dtype`, `n_features`
    columns) and describe its rows.  A CSR matrix's structure is checked at
    the boundary (``_validation.check_sparse_structure``) and, for memory
    safety, by the gather as it reads each index."""
    cdef _Rows rows = _Rows()
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
        rows._data, rows._indices, rows._indptr = data, indices, indptr
        rows.src.sparse = True
        rows.src.idx64 = indices.dtype == np.int64
        rows.src.n_rows = X.shape[0]
        rows.src.X = _ptr(data) if data.size else NULL
        rows.src.indices = _ptr(indices) if indices.size else NULL
        rows.src.indptr = _ptr(indptr)
        rows.src.nnz = data.shape[0]
    else:
        if not isinstance(X, np.ndarray):
            raise TypeError(f"{name} must be a numpy array or a scipy.sparse CSR matrix; "
                            f"got {type(X).__name__}")
        if X.dtype != dtype:
            raise TypeError(f"{name} has dtype {X.dtype}; the network is {np.dtype(dtype)}")
        if X.ndim != 2 or X.shape[1] != n_features:
            raise ValueError(f"{name} must have shape (n, {n_features}); got {X.shape}")
        if not X.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        rows._data = X
        rows.src.sparse = False
        rows.src.idx64 = False
        rows.src.n_rows = X.shape[0]
        rows.src.X = _ptr(X) if X.size else NULL
        rows.src.indices = NULL
        rows.src.indptr = NULL
        rows.src.nnz = 0
    rows.src.n_features = n_features
    return rows


cdef int _bind_params(Net *net, list coefs, list intercepts) except -1:
    """Point the layers of `net` at checked parameter arrays."""
    cdef Py_ssize_t l
    for l in range(net.n_layers):
        net.layers[l].n_in, net.layers[l].n_out = coefs[l].shape
        net.layers[l].W = _ptr(coefs[l])
        net.layers[l].b = _ptr(intercepts[l])
    return 0


cdef int _net_init(Net *net, list coefs, list intercepts, int activation,
                   int out_act=OUT_SOFTMAX) except -1:
    """A network over checked parameter arrays (free net.layers when done);
    no dropout, no label smoothing, no fused output layer until set."""
    net.layers = <Layer *>calloc(len(coefs), sizeof(Layer))
    if net.layers == NULL:
        raise MemoryError()
    net.n_layers = len(coefs)
    net.activation = activation
    net.out_act = out_act
    net.smoothing = 0.0
    net.train = False
    net.drop_key = 0
    net.drop_batch = 0
    net.out_chunk = 0
    net.bacc = NULL
    return _bind_params(net, coefs, intercepts)


# --------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------

cdef class Trainer:
    """Every buffer of a training step, and the optimizer, for one network.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        The network's parameters, ``coefs[l]`` of shape ``(fan_in, fan_out)``
        and ``intercepts[l]`` of shape ``(fan_out,)``, all float32 or all
        float64, C-contiguous (and writeable unless `solver` is None).  They
        stay owned by the caller: the trainer keeps references and updates
        them in place, so they are the live weights.
    max_batch : int
        Largest number of rows in one step.
    activation : str
        Hidden-layer activation, a key of `ACTIVATIONS` ("relu", "identity",
        "logistic", "tanh", "leaky_relu", "gelu", "silu").
    solver : {"sgd", "adam", None}
        ``None``: gradients only (no optimizer state).  ``"sgd"`` with
        ``momentum == 0`` is plain SGD, folded into the weight-gradient gemm.
    alpha : float
        L2 strength; a batch's gradient carries ``alpha / sum_w_batch * W``.
    learning_rate_init, momentum, nesterovs_momentum, beta_1, beta_2, epsilon
        As scikit-learn's MLP.  ``learning_rate_init`` is the learning rate
        used when a method's ``lr`` is None.
    output_chunk : int or None
        Rows per block of the fused output layer (`_output.linear_nll`:
        the output layer's logits, loss and gradients block by block, as
        `cysoftmax.linear_nll_loss_and_gradient`).  None: fused when a whole
        batch's logits would pass ``CHUNK_ELEMENTS`` entries and outnumber
        the output layer's gradient and optimizer state (``max_batch >
        (1 + states) * fan_in``), with the blocks `output_chunk_rows` gives;
        0: never; k >= max_batch: never.  Softmax output only.
    dropout : None, float or sequence of float
        Inverted dropout of the hidden activations in training steps
        (`run_epoch`, `step`), one rate or one per hidden layer, in [0, 1),
        rounded to multiples of 2^-16; never in `gradient`.  The masks are
        those of `dropout_mask` for the epoch's `seed`.
    label_smoothing : float
        Of the softmax cross-entropy (PyTorch's definition), in [0, 1).
    out_activation : {"softmax", "logistic"}
        The output layer: softmax + cross-entropy of labels, or independent
        sigmoids + binary cross-entropy of (n, m) targets (multilabel).

    Notes
    -----
    Buffers: the gathered X batch (allocated at the first gathered step),
    labels (or targets) and weights of the batch, activations and deltas per
    layer, the pre-activations of gelu/silu layers (or, under dropout, the
    undropped logistic/tanh activations),
    gradients, and the optimizer state (velocities, or Adam's ``ms``/``vs``
    and ``t``).  Pickling keeps the hyper-parameters, the optimizer state
    and references to the parameter arrays (pickled together with an
    estimator, they stay the very same arrays after loading).

    A trainer is not thread-safe: its methods release the GIL while they
    compute, so one trainer must not be used from two threads at once.
    """

    def __cinit__(self):
        self.net.layers = NULL
        self.net.n_layers = 0
        self.net.out_chunk = 0
        self.net.bacc = NULL

    def __dealloc__(self):
        free(self.net.layers)

    def __init__(self, coefs, intercepts, Py_ssize_t max_batch, activation="relu",
                 solver="sgd", double alpha=0.0, double learning_rate_init=0.001,
                 double momentum=0.9, bint nesterovs_momentum=True, double beta_1=0.9,
                 double beta_2=0.999, double epsilon=1e-8, output_chunk=None,
                 dropout=None, double label_smoothing=0.0, out_activation="softmax"):
        if self.net.layers != NULL:
            raise RuntimeError("Trainer is already initialized")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        cdef int act = ACTIVATIONS[check_choice(activation, ACTIVATIONS, "activation")]
        check_choice(solver, SOLVERS, "solver")
        if not (alpha >= 0 and isfinite(alpha)):
            raise ValueError(f"alpha must be finite and >= 0; got {alpha}")
        cdef int out_act = OUT_ACTIVATIONS[check_choice(out_activation, OUT_ACTIVATIONS,
                                                        "out_activation")]
        if not (0 <= label_smoothing < 1):
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        if label_smoothing and out_act != OUT_SOFTMAX:
            raise ValueError("label_smoothing applies to a softmax output only")
        coefs, intercepts = check_network(list(coefs), list(intercepts), convert=False,
                                          writeable=solver is not None)
        rates = check_dropout(dropout, len(coefs) - 1)
        dtype = coefs[0].dtype
        self.max_batch = max_batch
        self.dtype = np.dtype(dtype)
        self._f32 = self.dtype == np.float32
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self._coefs = coefs
        self._intercepts = intercepts
        _net_init(&self.net, coefs, intercepts, act, out_act)
        self.out_activation = out_activation
        self.label_smoothing = label_smoothing
        self.net.smoothing = label_smoothing
        cdef Py_ssize_t l
        cdef uint32_t d16
        for l in range(len(rates)):
            # the rate, rounded to a multiple of 2^-16 (the draws' resolution);
            # the scale is that of the rounded rate, so E[mask] is exactly 1
            d16 = <uint32_t>min(65535, int(round(rates[l] * 65536.0)))
            self.net.layers[l].drop16 = d16
            self.net.layers[l].drop_scale = 65536.0 / (65536.0 - d16)
        self.dropout = tuple(self.net.layers[l].drop16 / 65536.0 for l in range(len(rates)))

        if solver is None:
            self.opt.solver = SOLVER_NONE
        elif solver == "adam":
            self.opt.solver = SOLVER_ADAM
        elif momentum == 0:
            self.opt.solver = SOLVER_SGD
        else:
            self.opt.solver = SOLVER_MOMENTUM
        self.opt.nesterov = nesterovs_momentum
        self.opt.momentum = momentum
        self.opt.beta_1 = beta_1
        self.opt.beta_2 = beta_2
        self.opt.epsilon = epsilon
        self.opt.t = 0
        # Adam's moments are stored as 0 below the smallest normal number
        # (_optim.adam_update): FLT_MIN / DBL_MIN
        self.opt.tiny = float(np.finfo(dtype).tiny)

        cdef Py_ssize_t L = len(coefs)
        cdef Py_ssize_t m = coefs[L - 1].shape[1]
        # the fused output layer (or as asked): its logits then take
        # `output_chunk` rows.  Automatic: when a batch's logits would pass
        # the block budget *and* be the trainer's largest buffer, larger than
        # the output layer's gradient and optimizer state (n_in x m each).
        # Below that the fused step costs time for little memory: at batch
        # 200, 784-128-m, Adam, float32, it took 1.08-1.09x the unfused
        # step's time and saved 7-12% of the trainer's buffers
        # (benchmarks/bench_fused_training.py, m = 100,000 and 200,000).
        if out_act != OUT_SOFTMAX:
            output_chunk = 0      # the fused output layer is softmax's
        elif output_chunk is None:
            n_states = 2 if self.opt.solver == SOLVER_ADAM else (
                1 if self.opt.solver == SOLVER_MOMENTUM else 0)
            output_chunk = output_chunk_rows(max_batch, m)
            if max_batch <= (1 + n_states) * coefs[L - 1].shape[0]:
                output_chunk = 0
        elif isinstance(output_chunk, bool) or not isinstance(output_chunk, int) \
                or output_chunk < 0:
            raise ValueError(f"output_chunk must be None or an int >= 0; got {output_chunk!r}")
        self.output_chunk = output_chunk if 0 < output_chunk < max_batch else 0
        self.net.out_chunk = self.output_chunk
        self._bacc = np.zeros(m, np.float64) if self.output_chunk else None
        self._A, self._D, self._gW, self._gb, self._s1, self._s2 = [], [], [], [], [], []
        # the derivative's extra input: z for gelu/silu, the undropped f(z)
        # for logistic/tanh under dropout (see _layers.pxd)
        self._Z = [np.empty((max_batch, coefs[l].shape[1]), dtype)
                   if activation in _NEEDS_Z or (self.net.layers[l].drop16 and activation in
                                                 ("logistic", "tanh"))
                   else None for l in range(L - 1)]
        for l in range(L):
            n_in, n_out = coefs[l].shape
            rows = self.output_chunk if l == L - 1 and self.output_chunk else max_batch
            self._A.append(np.empty((rows, n_out), dtype))
            # the output layer's delta overwrites its logits
            self._D.append(self._A[l] if l == L - 1 else np.empty((max_batch, n_out), dtype))
            self._gW.append(np.zeros((n_in, n_out), dtype))
            self._gb.append(np.zeros(n_out, dtype))
        # optimizer state in scikit-learn's order: coefs then intercepts
        params = coefs + intercepts
        if self.opt.solver in (SOLVER_MOMENTUM, SOLVER_ADAM):
            self._s1 = [np.zeros_like(p) for p in params]
        if self.opt.solver == SOLVER_ADAM:
            self._s2 = [np.zeros_like(p) for p in params]
        self._ybuf = np.zeros(max_batch, np.intp)
        self._wbuf = np.zeros(max_batch, np.float64)
        self._tbuf = np.empty((max_batch, m), dtype) if out_act == OUT_LOGISTIC else None
        self._xbuf = None
        self._set_pointers()

    cdef _set_pointers(self):
        cdef Py_ssize_t l, L = self.net.n_layers
        cdef Layer *ly
        _bind_params(&self.net, self._coefs, self._intercepts)
        for l in range(L):
            ly = &self.net.layers[l]
            ly.A = _ptr(self._A[l])
            ly.D = _ptr(self._D[l])
            ly.gW = _ptr(self._gW[l])
            ly.gb = _ptr(self._gb[l])
            ly.sW1 = _ptr(self._s1[l]) if self._s1 else NULL
            ly.sb1 = _ptr(self._s1[L + l]) if self._s1 else NULL
            ly.sW2 = _ptr(self._s2[l]) if self._s2 else NULL
            ly.sb2 = _ptr(self._s2[L + l]) if self._s2 else NULL
            ly.Z = _ptr(self._Z[l]) if l < L - 1 and self._Z[l] is not None else NULL
        self.net.out_chunk = self.output_chunk
        self.net.bacc = <double *>_ptr(self._bacc) if self._bacc is not None else NULL

    # ---- parameters and state --------------------------------------------

    def bind(self, coefs, intercepts):
        """Make `coefs`/`intercepts` (same shapes and dtype) the live weights."""
        coefs, intercepts = check_network(list(coefs), list(intercepts), dtype=self.dtype,
                                          convert=False, writeable=self.solver is not None)
        if [c.shape for c in coefs] != [c.shape for c in self._coefs]:
            raise ValueError("coefs have shapes "
                             f"{[c.shape for c in coefs]}; the trainer was built for "
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
    def momentum(self):
        return self.opt.momentum

    @property
    def nesterovs_momentum(self):
        return bool(self.opt.nesterov)

    @property
    def beta_1(self):
        return self.opt.beta_1

    @property
    def beta_2(self):
        return self.opt.beta_2

    @property
    def epsilon(self):
        return self.opt.epsilon

    @property
    def t(self):
        """Adam's time step: updates made so far (0 for the other solvers)."""
        return self.opt.t

    @property
    def _flush_below(self):
        """Adam's moments of magnitude below this are stored as 0: the
        smallest normal number of the dtype.  0 turns the flush off (for the
        benchmark and the tests of the flush only; not pickled)."""
        return self.opt.tiny

    @_flush_below.setter
    def _flush_below(self, double value):
        if not (value >= 0 and isfinite(value)):
            raise ValueError(f"_flush_below must be finite and >= 0; got {value}")
        self.opt.tiny = value

    @property
    def optimizer_state(self):
        """The optimizer state, as scikit-learn names it (arrays are live).

        ``{"velocities": [...]}`` for SGD with momentum, ``{"t": int, "ms":
        [...], "vs": [...]}`` for Adam, ``{}`` otherwise; lists hold the coefs'
        entries then the intercepts'.
        """
        if self.opt.solver == SOLVER_MOMENTUM:
            return {"velocities": list(self._s1)}
        if self.opt.solver == SOLVER_ADAM:
            return {"t": int(self.opt.t), "ms": list(self._s1), "vs": list(self._s2)}
        return {}

    def set_optimizer_state(self, state):
        """Copy a state of `optimizer_state`'s form into the trainer."""
        if self.opt.solver == SOLVER_MOMENTUM:
            pairs = [(self._s1, state["velocities"])]
        elif self.opt.solver == SOLVER_ADAM:
            pairs = [(self._s1, state["ms"]), (self._s2, state["vs"])]
        else:
            pairs = []
        for dst, src in pairs:
            if len(src) != len(dst):
                raise ValueError(f"optimizer state has {len(src)} arrays; expected {len(dst)}")
            for d, s in zip(dst, src):
                d[...] = s
        if self.opt.solver == SOLVER_ADAM:
            self.opt.t = int(state["t"])

    def __reduce__(self):
        args = (list(self._coefs), list(self._intercepts), self.max_batch, self.activation,
                self.solver, self.alpha, self.learning_rate_init, self.opt.momentum,
                bool(self.opt.nesterov), self.opt.beta_1, self.opt.beta_2, self.opt.epsilon,
                self.output_chunk, list(self.dropout), self.label_smoothing,
                self.out_activation)
        return (_unpickle_trainer, (args, self.optimizer_state))

    def squared_norm(self):
        """sum_l ||coefs[l]||^2, accumulated in double (for the L2 penalty)."""
        cdef Job job
        job.op = OP_SQNORM
        job.net = &self.net
        with nogil:
            _execute(&job, self._f32)
        return job.result

    # ---- computing ---------------------------------------------------------

    cdef double _checked_rate(self, lr) except? -1:
        cdef double r = self.learning_rate_init if lr is None else lr
        if not (r >= 0 and isfinite(r)):
            raise ValueError(f"lr must be finite and >= 0; got {r}")
        return r

    def run_epoch(self, X, y, sample_weight, order, Py_ssize_t batch_size, lr=None,
                  schedule=None, seed=0, Py_ssize_t first_batch=0):
        """Train on the mini-batches ``order[0:b], order[b:2b], ...``: one epoch.

        Each batch is gathered by index into the trainer, then forward,
        loss and gradient, backward and the optimizer update run, all batches
        in one ``nogil`` region.  The parameters are updated in place.

        Parameters
        ----------
        X : ndarray (n, n_features), C-contiguous, of the network's dtype, or
            scipy.sparse CSR matrix with data of that dtype (valid indices).
        y : ndarray (n,) of integer labels in [0, n_classes) (np.intp avoids a copy);
            for a logistic output, the (n, n_outputs) C-contiguous targets in
            [0, 1] of the network's dtype.
        sample_weight : ndarray (n,) float64 or None
        order : ndarray of np.intp
            Row indices, already shuffled by the caller; may be a subset of
            the rows (a training split) and shorter than n.
        batch_size : int, 1 <= batch_size <= max_batch
        lr : float, optional
            The learning rate (scikit-learn's ``optimizer.learning_rate`` for
            SGD; the base rate ``learning_rate_init`` for Adam).  Default:
            ``learning_rate_init``.
        schedule : tuple or None
            ``(lr0, epochs_done, warmup, total, n_batches)``: the cosine
            schedule (see `scheduled_rate`; n_batches: the batches of the
            whole epoch), the rate of every batch computed in the epoch
            (``lr`` is then unused); None: every batch at ``lr``.
        seed : int
            The key of this epoch's dropout masks (an unsigned 64-bit int).
        first_batch : int
            The number, in the epoch, of the first batch of `order` (when an
            epoch is run in slices of whole batches): it places the batches in
            the schedule and picks their dropout streams.

        Returns
        -------
        float
            ``sum_i w_i C_i`` over the epoch: the data loss before each batch's
            update, without the L2 penalty.  Batches whose weights are all
            zero are skipped.
        """
        if first_batch < 0:
            raise ValueError(f"first_batch must be >= 0; got {first_batch}")
        return self._train(X, y, sample_weight, order, batch_size, lr, schedule, seed,
                           first_batch)

    def step(self, X, y, sample_weight, idx, lr=None, seed=0):
        """One training step on the rows ``idx`` (one batch).  Returns sum w_i C_i."""
        idx = np.asarray(idx)
        return self._train(X, y, sample_weight, idx,
                           max(1, idx.shape[0]) if idx.ndim == 1 else 1, lr, None, seed, 0)

    cdef _targets(self, y, Py_ssize_t n):
        """(labels, targets): y checked as the output layer takes it."""
        cdef Py_ssize_t m = self._coefs[len(self._coefs) - 1].shape[1]
        if self.net.out_act == OUT_SOFTMAX:
            return check_labels(y, n, m, rows_of="X"), None
        if (not isinstance(y, np.ndarray) or y.dtype != self.dtype or y.shape != (n, m)
                or not y.flags.c_contiguous):
            raise ValueError(f"y must be the C-contiguous ({n}, {m}) targets of dtype "
                             f"{self.dtype} (a logistic output)")
        return None, y

    cdef _train(self, X, y, sample_weight, order, Py_ssize_t batch_size, lr, schedule, seed,
                Py_ssize_t first_batch):
        if self.opt.solver == SOLVER_NONE:
            raise ValueError("this trainer has no optimizer (solver=None); use gradient()")
        if batch_size < 1 or batch_size > self.max_batch:
            raise ValueError(f"batch_size must be in [1, max_batch={self.max_batch}]; got {batch_size}")
        cdef Py_ssize_t nf = self._coefs[0].shape[0]
        cdef Py_ssize_t m = self._coefs[len(self._coefs) - 1].shape[1]
        cdef _Rows rows = _rows_of(X, self.dtype, nf)
        cdef Py_ssize_t n = rows.src.n_rows
        y, t = self._targets(y, n)
        w = check_sample_weight(sample_weight, n)
        order = np.asarray(order)
        if order.dtype != np.intp or order.ndim != 1:
            if order.ndim != 1 or order.dtype.kind not in "iu":
                raise TypeError(f"order must be a 1-D integer array; got {order.dtype} {order.shape}")
            order = order.astype(np.intp)
        order = np.ascontiguousarray(order)
        cdef double rate = self._checked_rate(lr)
        cdef Schedule sched
        sched.kind = SCHEDULE_EPOCH
        if schedule is not None:
            if len(schedule) != 5 or not schedule[4] >= 1:
                raise ValueError("schedule must be (lr0, epochs_done, warmup, total, n_batches)"
                                 f" with n_batches >= 1; got {schedule!r}")
            sched.lr0, sched.epochs_done, sched.warmup, sched.total = _checked_schedule(
                schedule[:4])
            sched.kind = SCHEDULE_COSINE
            sched.n_batches = float(schedule[4])
        if self._xbuf is None:
            # allocated once, at the first gathered step (gradient() never needs it)
            self._xbuf = np.empty((self.max_batch, nf), self.dtype)
        if order.shape[0] == 0:
            return 0.0
        cdef Job job
        job.op = OP_EPOCH
        job.net = &self.net
        job.opt = &self.opt
        job.src = &rows.src
        job.y = <const Py_ssize_t *>_ptr(y) if n and y is not None else NULL
        job.t = <const void *>_ptr(t) if n and t is not None else NULL
        job.tb = _ptr(self._tbuf) if self._tbuf is not None else NULL
        job.sched = sched
        job.first_batch = first_batch
        job.drop_key = <uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF)
        job.w = <const double *>_ptr(w) if w is not None and n else NULL
        job.order = <const Py_ssize_t *>_ptr(order)
        job.n_order = order.shape[0]
        job.batch = batch_size
        job.alpha = self.alpha
        job.lr = rate
        job.xb = _ptr(self._xbuf)
        job.yb = <Py_ssize_t *>_ptr(self._ybuf)
        job.wb = <double *>_ptr(self._wbuf)
        job.result = 0.0
        with nogil:
            job.status = check_order(job.order, job.n_order, n)
            if job.status == STATUS_OK:
                _execute(&job, self._f32)
        if job.status == STATUS_BAD_INDEX:
            raise ValueError(f"order holds a row index outside [0, {n})")
        if job.status == STATUS_BAD_CSR:
            raise ValueError(_BAD_CSR)
        return job.result

    def gradient(self, X, y, sample_weight=None):
        """Loss terms and gradients of the whole of X (at most max_batch rows), no update.

        X is used in place (C-contiguous ndarray of the network's dtype); the
        gradients of ``weighted mean NLL + alpha/(2 sum_w) sum ||W||^2`` go
        to `coef_grads` / `intercept_grads`.  Returns ``(sum_i w_i C_i,
        sum_w)``; the caller adds the penalty (see `squared_norm`).
        """
        cdef Py_ssize_t nf = self._coefs[0].shape[0]
        cdef Py_ssize_t m = self._coefs[len(self._coefs) - 1].shape[1]
        cdef _Rows rows = _rows_of(X, self.dtype, nf)
        if rows.src.sparse:
            raise TypeError("gradient() takes a dense X")
        cdef Py_ssize_t n = rows.src.n_rows
        if n < 1 or n > self.max_batch:
            raise ValueError(f"X must have between 1 and max_batch={self.max_batch} rows; got {n}")
        y, t = self._targets(y, n)
        w = check_sample_weight(sample_weight, n, reduction="mean")
        cdef Job job
        job.op = OP_GRADIENT
        job.net = &self.net
        job.src = &rows.src
        job.y = <const Py_ssize_t *>_ptr(y) if y is not None else NULL
        job.t = <const void *>_ptr(t) if t is not None else NULL
        job.w = <const double *>_ptr(w) if w is not None else NULL
        job.sw = float(w.sum()) if w is not None else <double>n
        job.alpha = self.alpha
        with nogil:
            _execute(&job, self._f32)
        return job.result, job.sw

    def apply_gradients(self, coef_grads, intercept_grads, lr=None):
        """One optimizer update of the live parameters with the given gradients.

        The gradients are taken as complete (no L2 term is added).  Adam's
        time step advances by one.  For testing the update rules, and for
        callers that compute their own gradients.
        """
        if self.opt.solver == SOLVER_NONE:
            raise ValueError("this trainer has no optimizer (solver=None)")
        gc, gi = check_network(list(coef_grads), list(intercept_grads), dtype=self.dtype,
                               convert=False, names=("coef_grads", "intercept_grads"))
        if [g.shape for g in gc] != [c.shape for c in self._coefs]:
            raise ValueError("coef_grads do not match the shapes of coefs")
        cdef double rate = self._checked_rate(lr)
        cdef Py_ssize_t l, L = self.net.n_layers
        cdef Job job
        job.op = OP_APPLY
        job.net = &self.net
        job.opt = &self.opt
        job.lr = rate
        job.grads = <const void **>malloc(2 * L * sizeof(void *))
        if job.grads == NULL:
            raise MemoryError()
        try:
            for l in range(L):
                job.grads[l] = _ptr(gc[l])
                job.grads[L + l] = _ptr(gi[l])
            with nogil:
                _execute(&job, self._f32)
        finally:
            free(job.grads)


def _checked_schedule(schedule):
    lr0, done, warmup, total = (float(v) for v in schedule)
    if not (lr0 >= 0 and isfinite(lr0) and done >= 0 and warmup >= 0 and total > warmup):
        raise ValueError(f"schedule must be (lr0 >= 0, epochs_done >= 0, warmup >= 0, "
                         f"total > warmup); got {schedule!r}")
    return lr0, done, warmup, total


def scheduled_rate(double lr0, double epochs_done, Py_ssize_t batch, Py_ssize_t n_batches,
                   double warmup, double total):
    """The cosine schedule's rate of mini-batch `batch` (0-based) of an epoch of
    `n_batches`, after `epochs_done` epochs: the very function the training
    epoch calls for each batch (``_optim.cosine_rate``)."""
    cdef Schedule sch
    sch.kind = SCHEDULE_COSINE
    sch.lr0, sch.epochs_done, sch.warmup, sch.total = _checked_schedule(
        (lr0, epochs_done, warmup, total))
    if n_batches < 1 or batch < 0:
        raise ValueError("n_batches must be >= 1 and batch >= 0")
    sch.n_batches = n_batches
    return cosine_rate(&sch, batch)


def dropout_mask(Py_ssize_t rows, Py_ssize_t cols, double rate, seed, Py_ssize_t batch,
                 Py_ssize_t layer):
    """The (rows, cols) float64 multiplier that dropout applies to hidden layer
    `layer` of mini-batch `batch` (0 or 1 / (1 - rate), rate rounded to a
    multiple of 2^-16) with epoch key `seed`: the training step's own code
    (``_layers.dropout``) applied to ones."""
    cdef Net net
    rates = check_dropout(rate, 1)
    cdef uint32_t d16 = <uint32_t>min(65535, int(round(rates[0] * 65536.0)))
    out = np.ones((rows, cols), np.float64)
    cdef double *p = <double *>_ptr(out)
    net.drop_key = <uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF)
    net.drop_batch = <uint64_t>batch
    if d16:
        with nogil:
            dropout(p, rows * cols, net.drop_key, drop_stream(&net, layer), d16,
                    65536.0 / (65536.0 - d16))
    return out


def _unpickle_trainer(args, state):
    """A pickled Trainer, rebuilt.  Its parameter arrays stay the unpickled
    objects (shared with whatever was pickled with them), unless the
    unpickler put one at an odd address (a Dask frame can): that one is
    copied, as the engine reads whole elements."""
    coefs, intercepts = ([np.require(a, requirements=["C", "A"]) for a in seq]
                         for seq in args[:2])
    trainer = Trainer(coefs, intercepts, *args[2:])
    trainer.set_optimizer_state(state)
    return trainer


# --------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------

def forward_into(X, coefs, intercepts, activation, out, output="proba",
                 out_activation="softmax"):
    """Forward pass of every row of X into `out` (n, m), block by block.

    X: C-contiguous ndarray or CSR matrix of the network's dtype; coefs and
    intercepts lists of C-contiguous arrays (checked here); out: C-contiguous
    (n, m) of the same dtype.  output: "logits", "proba" or "log_proba"
    (the last two through the softmax row kernels, or, with out_activation
    "logistic", the sigmoid and log-sigmoid kernels).  Memory beyond `out` is
    two blocks of hidden activations (and a densified block for CSR X).
    """
    check_choice(output, OUTPUTS, "output")
    cdef int act = ACTIVATIONS[check_choice(activation, ACTIVATIONS, "activation")]
    cdef int out_act = OUT_ACTIVATIONS[check_choice(out_activation, OUT_ACTIVATIONS,
                                                    "out_activation")]
    dtype = out.dtype
    coefs, intercepts = check_network(list(coefs), list(intercepts), dtype=dtype,
                                      convert=False)
    cdef Py_ssize_t nf = coefs[0].shape[0]
    cdef _Rows rows = _rows_of(X, dtype, nf)
    cdef Py_ssize_t n = rows.src.n_rows, L = len(coefs)
    cdef Py_ssize_t m = coefs[L - 1].shape[1]
    if out.shape != (n, m) or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writeable C-contiguous array of shape {(n, m)}")
    if n == 0:
        return out
    cdef Py_ssize_t width = max([1] + [c.shape[1] for c in coefs[:L - 1]])
    cdef Py_ssize_t chunk = min(n, FORWARD_CHUNK)
    buf0 = np.empty(chunk * width, dtype)
    buf1 = np.empty(chunk * width, dtype)
    xb = np.empty((chunk, nf), dtype) if rows.src.sparse else buf0
    cdef Net net
    cdef Job job
    job.op = OP_FORWARD
    job.net = &net
    job.src = &rows.src
    job.out = _ptr(out)
    job.buf0 = _ptr(buf0)
    job.buf1 = _ptr(buf1)
    job.xb = _ptr(xb)
    job.output = OUTPUTS[output]
    cdef bint f32 = dtype == np.float32
    _net_init(&net, coefs, intercepts, act, out_act)
    try:
        with nogil:
            _execute(&job, f32)
    finally:
        free(net.layers)
    if job.status != STATUS_OK:
        raise ValueError(_BAD_CSR)
    return out


# --------------------------------------------------------------------------
# the fused output layer (linear + cross-entropy), public through
# _network_api.linear_nll_loss[_and_gradient]
# --------------------------------------------------------------------------

_last_workspace = (0, 0)


def last_linear_workspace():
    """(rows per block, bytes) of the C workspace of the last `linear_nll_rows`
    call in this process: the block of logits (rows x m of the dtype) and,
    with a bias gradient, m doubles for its column sums."""
    return _last_workspace


cdef inline Py_ssize_t _ld(object a, int axis):
    return a.strides[axis] // a.dtype.itemsize


def linear_nll_rows(A, W, bint w_trans, b, y, q, cw, w, Py_ssize_t ignore, double smoothing,
                    bint plain, double gmul, Py_ssize_t chunk, loss, dA, dW, db):
    """sum_i w_i l_i of Z = A W + b; with dW given, the gradients too.

    Arrays already checked by _validation.check_linear and _api's NLL
    checks: A (n, d) with unit column stride, W (d, m) with unit column
    stride (or, with w_trans, unit row stride: its transpose is row-major),
    b (m,) or None, all one dtype and aligned; y (n,) intp labels or None, q
    (n, m) C-contiguous soft targets or None, cw (m,) or None, w (n,)
    float64 or None; `plain`: no option (the cs_nll kernel); gmul the
    gradient's scale; chunk >= 1 rows per block; loss (n,) or None; dA
    (n, d) C-contiguous or None, dW (d, m) C-contiguous or None (then no
    gradient at all), db (m,) or None.  n, d, m >= 1 and every size fits
    in a C int (checked by the caller).
    """
    global _last_workspace
    cdef Py_ssize_t n = A.shape[0], d = A.shape[1], m = W.shape[1]
    cdef Py_ssize_t c = min(chunk, n)
    cdef bint grad = dW is not None
    cdef Py_ssize_t item = A.dtype.itemsize
    cdef size_t wbytes = <size_t>c * <size_t>m * <size_t>item
    cdef size_t bbytes = <size_t>m * sizeof(double) if grad and db is not None else 0
    cdef NLLArgs o
    o.y = <const Py_ssize_t *>_ptr(y) if y is not None else NULL
    o.q = <const void *>_ptr(q) if q is not None else NULL
    o.ldq = q.shape[1] if q is not None else 0
    o.cw = <const void *>_ptr(cw) if cw is not None else NULL
    o.w = <const double *>_ptr(w) if w is not None else NULL
    o.ignore = ignore
    o.smoothing = smoothing
    o.plain = plain
    o.gmul = gmul
    # two allocations: the sums of doubles must not follow an odd number of
    # floats (a misaligned double, which UBSan caught)
    cdef void *work = malloc(wbytes)
    cdef double *bacc = <double *>malloc(bbytes) if bbytes else NULL
    if work == NULL or (bbytes and bacc == NULL):
        free(work)
        free(bacc)
        raise MemoryError(f"the fused output layer's workspace ({c} rows of {m} logits, "
                          f"{(wbytes + bbytes) / 2**20:.1f} MiB); pass a smaller chunk")
    _last_workspace = (c, wbytes + bbytes)
    cdef void *pA = _ptr(A)
    cdef void *pW = _ptr(W)
    cdef void *pb = _ptr(b) if b is not None else NULL
    cdef void *pl = _ptr(loss) if loss is not None else NULL
    cdef void *pdA = _ptr(dA) if dA is not None else NULL
    cdef void *pdW = _ptr(dW) if grad else NULL
    cdef void *pdb = _ptr(db) if grad and db is not None else NULL
    cdef Py_ssize_t lda = _ld(A, 0), ldw = _ld(W, 1 if w_trans else 0)
    cdef Py_ssize_t ldda = d
    cdef double total
    try:
        with nogil:
            if item == 4:
                total = linear_nll(<const float *>pA, lda, <const float *>pW, ldw, w_trans,
                                   <const float *>pb, n, d, m, &o, c, <float *>work, bacc,
                                   <float *>pl, grad, <float *>pdA, ldda, <float *>pdW,
                                   <float *>pdb)
            else:
                total = linear_nll(<const double *>pA, lda, <const double *>pW, ldw, w_trans,
                                   <const double *>pb, n, d, m, &o, c, <double *>work, bacc,
                                   <double *>pl, grad, <double *>pdA, ldda, <double *>pdW,
                                   <double *>pdb)
    finally:
        free(work)
        free(bacc)
    return total
