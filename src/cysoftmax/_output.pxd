# cython: cdivision=True, boundscheck=False, wraparound=False
# The fused output layer: Z = A W + b, the cross-entropy and its gradients,
# row chunk by row chunk, without ever holding the (n, m) logits.
#
# Owns `linear_nll`, the one implementation of the dense softmax output layer
# with its loss, used by the public `linear_nll_loss[_and_gradient]`
# (_engine.linear_nll_rows) and by the training step when a batch's logits
# would be large (_engine: Net.out_chunk).  Calls _blas and the row kernels
# (_kernels) only.
#
# Design (measured against the alternative in benchmarks/bench_linear_ce.py):
# rows are taken `chunk` at a time.  For a chunk A_c (c, d): its logits
# Z_c = A_c W + b by one gemm into the workspace (c, m); the fused NLL kernel
# (cs_nll / cs_nll_opts, the kernels of nll_loss_and_gradient) turns them, in
# place, into G_c = dLoss/dZ_c and adds the chunk's loss; then
# dA_c = G_c W^T and dW += A_c^T G_c by two more gemms, and db += the column
# sums of G_c (in double).  That is the unfused path's three gemms, with a
# workspace of c x m instead of n x m.  The other design -- tiles of the
# class axis with an online max / sum of exps per row, then a backward that
# recomputes each tile -- needs a fourth gemm (every logit twice), a third
# more arithmetic where the gemms are nearly all of the time; it would only
# win where even one row of m logits is too much memory.
# dW is accumulated over the chunks by gemm's beta = 1 (in the dtype: the
# same kind of sum as the gemm's own inner products, over n / c chunk
# terms); db in double.  Threads: BLAS owns them inside each gemm; the row
# kernel's OpenMP team (for large chunks) runs between the gemms, never
# inside one: no nested parallel regions.
from cython cimport floating
from libc.string cimport memcpy, memset
from ._blas cimport gemm
from ._kernels cimport cs_nll_f, cs_nll_d, cs_nll_opts_f, cs_nll_opts_d


cdef struct NLLArgs:
    # the cross-entropy's targets and options, as the row kernels take them
    const Py_ssize_t *y      # (n,) labels in [0, m) or == ignore; NULL for soft targets
    const void *q            # (n, m) soft targets (row stride ldq) or NULL
    Py_ssize_t ldq
    const void *cw           # (m,) class weights of the dtype, or NULL
    const double *w          # (n,) sample weights, or NULL
    Py_ssize_t ignore        # the ignored label (-1: none; labels are >= 0)
    double smoothing
    bint plain               # no option at all: the plain kernel cs_nll
    double gmul              # scale of the gradient (1 / denominator for "mean")


cdef inline double _chunk_nll(floating *z, Py_ssize_t i0, Py_ssize_t c, Py_ssize_t m,
                              const NLLArgs *o, floating *loss, bint grad) noexcept nogil:
    """The loss of rows [i0, i0 + c) of logits z (c, m), and with `grad` their
    gradient, in place.  Returns sum_i w_i l_i of the chunk."""
    cdef const double *w = o.w + i0 if o.w != NULL else NULL
    cdef floating *lp = loss + i0 if loss != NULL else NULL
    cdef floating *gp = z if grad else NULL
    if o.plain:
        if floating is float:
            return cs_nll_f(z, m, o.y + i0, w, o.gmul, lp, gp, m, c, m)
        else:
            return cs_nll_d(z, m, o.y + i0, w, o.gmul, lp, gp, m, c, m)
    cdef const Py_ssize_t *y = o.y + i0 if o.y != NULL else NULL
    cdef const floating *q = <const floating *>o.q + i0 * o.ldq if o.q != NULL else NULL
    if floating is float:
        return cs_nll_opts_f(z, m, y, q, o.ldq, <const float *>o.cw, w, o.ignore,
                             o.smoothing, o.gmul, lp, gp, m, c, m)
    else:
        return cs_nll_opts_d(z, m, y, q, o.ldq, <const double *>o.cw, w, o.ignore,
                             o.smoothing, o.gmul, lp, gp, m, c, m)


cdef inline double linear_nll(const floating *A, Py_ssize_t lda, const floating *W,
                              Py_ssize_t ldw, bint w_trans, const floating *b,
                              Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, const NLLArgs *o,
                              Py_ssize_t chunk, floating *work, double *bacc,
                              floating *loss, bint grad, floating *dA, Py_ssize_t ldda,
                              floating *dW, floating *db) noexcept nogil:
    """sum_i w_i l_i of Z = A W + b (n, m), and with `grad` the gradients.

    A (n, d) with row stride lda; W (d, m) with row stride ldw, or, with
    w_trans, stored as its transpose (m, d) with row stride ldw (a
    Fortran-ordered W, PyTorch's Linear weight); b (m,) or NULL.  `work`
    holds chunk x m elements, `bacc` m doubles (when db is given).  With
    `grad`: dA (n, d, row stride ldda) = G W^T when dA is not NULL,
    dW (d, m) = A^T G, db (m,) = column sums of G (when not NULL), with
    G = o.gmul w_i (A_i p_i - a_i) the kernels' gradient.  loss[i] = w_i l_i
    when loss is not NULL.  Sizes fit in int (checked by the caller).
    """
    cdef Py_ssize_t i0, c, i, j
    cdef double total = 0.0
    cdef floating beta
    cdef const floating *Ac
    cdef const floating *row
    if grad and db != NULL:
        memset(bacc, 0, m * sizeof(double))
    i0 = 0
    while i0 < n:
        c = chunk if n - i0 > chunk else n - i0
        Ac = A + i0 * lda
        # Z_c = A_c W + b: the bias rows first, then gemm adds onto them
        beta = 0
        if b != NULL:
            for i in range(c):
                memcpy(work + i * m, b, m * sizeof(floating))
            beta = 1
        gemm(False, w_trans, <int>c, <int>m, <int>d, <floating>1.0, Ac, <int>lda,
             W, <int>ldw, beta, work, <int>m)
        total += _chunk_nll(work, i0, c, m, o, loss, grad)
        if not grad:
            i0 += c
            continue
        # G_c is in work now
        if dA != NULL:
            gemm(False, not w_trans, <int>c, <int>d, <int>m, <floating>1.0, work, <int>m,
                 W, <int>ldw, <floating>0.0, dA + i0 * ldda, <int>ldda)
        gemm(True, False, <int>d, <int>m, <int>c, <floating>1.0, Ac, <int>lda, work, <int>m,
             <floating>(0.0 if i0 == 0 else 1.0), dW, <int>m)
        if db != NULL:
            for i in range(c):
                row = work + i * m
                for j in range(m):
                    bacc[j] += row[j]
        i0 += c
    if grad and db != NULL:
        for j in range(m):
            db[j] = <floating>bacc[j]
    return total
