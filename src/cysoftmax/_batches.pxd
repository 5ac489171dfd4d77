# cython: cdivision=True, boundscheck=False, wraparound=False
# Batches for the engine: where rows come from and how a mini-batch is gathered.
#
# Owns the Source struct (X as dense C-contiguous rows or as CSR arrays), the
# Status codes the nogil code reports back to Python, and the gathering of a
# mini-batch: its rows of X into a dense buffer (by index, or a run of
# consecutive rows for inference), its labels and weights, and the check of
# an epoch's row order.  Calls nothing of ours.
from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset

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

cdef enum Status:
    STATUS_OK = 0
    STATUS_BAD_INDEX = 1     # a row index of the order outside [0, n_rows)
    STATUS_BAD_CSR = 2       # a CSR row whose indptr or column indices are out of range

cdef struct Source:
    # rows of X: dense C-contiguous (n_rows, n_features), or CSR arrays
    const void *X            # dense values, or CSR data
    const void *indices      # CSR only
    const void *indptr       # CSR only
    Py_ssize_t n_rows, n_features
    Py_ssize_t nnz           # CSR only: length of data and indices
    bint sparse, idx64       # idx64: CSR indices/indptr are int64 (else int32)


ctypedef fused csr_index:     # scipy's CSR index arrays: int32, or int64 when large
    int32_t
    int64_t


cdef inline int _scatter(const csr_index *indptr, const csr_index *ind, const floating *x,
                         Py_ssize_t r, Py_ssize_t nnz, Py_ssize_t nf,
                         floating *row) noexcept nogil:
    cdef Py_ssize_t q, lo = indptr[r], hi = indptr[r + 1]
    if lo < 0 or hi < lo or hi > nnz:
        return STATUS_BAD_CSR
    for q in range(lo, hi):
        if ind[q] < 0 or ind[q] >= nf:
            return STATUS_BAD_CSR
        row[ind[q]] += x[q]
    return STATUS_OK


cdef inline int _scatter_csr_row(const Source *src, const floating *x, Py_ssize_t r,
                                 floating *row) noexcept nogil:
    """Row r of a CSR X into the zeroed dense `row`; duplicate column entries
    add up, as in scipy.  STATUS_BAD_CSR, without writing out of bounds, if
    the row's indptr or column indices are out of range (the loop reads
    every index anyway, and a predictable branch costs next to nothing)."""
    if src.idx64:
        return _scatter(<const int64_t *>src.indptr, <const int64_t *>src.indices, x, r,
                        src.nnz, src.n_features, row)
    return _scatter(<const int32_t *>src.indptr, <const int32_t *>src.indices, x, r,
                    src.nnz, src.n_features, row)


cdef inline int gather_rows(const Source *src, const floating *x, const Py_ssize_t *order,
                            Py_ssize_t nb, floating *out) noexcept nogil:
    """Rows order[0..nb) of X into out (nb, n_features).  x is src.X typed.

    Dense rows sit at random places in X: while one row is copied, the next
    is asked for, so that its cache misses overlap with this copy.
    """
    cdef Py_ssize_t k, c, nf = src.n_features
    cdef Py_ssize_t nbytes = nf * sizeof(floating)
    cdef const char *nxt
    cdef int status
    for k in range(nb):
        if src.sparse:
            memset(out + k * nf, 0, nbytes)
            status = _scatter_csr_row(src, x, order[k], out + k * nf)
            if status != STATUS_OK:
                return status
            continue
        if k + 1 < nb:
            nxt = <const char *>(x + order[k + 1] * nf)
            for c in range(0, nbytes, 64):
                CS_PREFETCH(nxt + c)
        memcpy(out + k * nf, x + order[k] * nf, nbytes)
    return STATUS_OK


cdef inline int densify_run(const Source *src, const floating *x, Py_ssize_t start,
                            Py_ssize_t nb, floating *out) noexcept nogil:
    """Rows start..start+nb of a CSR X, densified into out (nb, n_features)."""
    cdef Py_ssize_t k, nf = src.n_features
    cdef int status
    for k in range(nb):
        memset(out + k * nf, 0, nf * sizeof(floating))
        status = _scatter_csr_row(src, x, start + k, out + k * nf)
        if status != STATUS_OK:
            return status
    return STATUS_OK


cdef inline double gather_targets(const Py_ssize_t *y, const double *w,
                                  const Py_ssize_t *order, Py_ssize_t nb,
                                  Py_ssize_t *yb, double *wb) noexcept nogil:
    """Labels (when y is not NULL) and weights (when w is not NULL) of rows
    order[0..nb) into yb and wb; returns their sum of weights (nb without
    weights)."""
    cdef Py_ssize_t k, r
    cdef double sw = 0.0
    if y != NULL:
        for k in range(nb):
            yb[k] = y[order[k]]
    if w == NULL:
        return <double>nb
    for k in range(nb):
        r = order[k]
        wb[k] = w[r]
        sw += w[r]
    return sw


cdef inline int check_order(const Py_ssize_t *order, Py_ssize_t n_order,
                            Py_ssize_t n_rows) noexcept nogil:
    """STATUS_BAD_INDEX if some order[k] is not a row index, else STATUS_OK."""
    cdef Py_ssize_t k
    for k in range(n_order):
        if order[k] < 0 or order[k] >= n_rows:
            return STATUS_BAD_INDEX
    return STATUS_OK
