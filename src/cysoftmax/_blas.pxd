# cython: cdivision=True, boundscheck=False, wraparound=False
# BLAS for the engine: one row-major gemm over scipy.linalg.cython_blas.
#
# Owns the only call into BLAS (sgemm/dgemm resolved at import from SciPy's
# capsule, so there is no BLAS to link against: the library NumPy and SciPy
# use).  Our arrays are row-major and BLAS is column-major, so
# C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: a row-major matrix *is*
# its transpose in column-major, so swapping the operands is all it takes (as
# scikit-learn's sklearn/utils/_cython_blas.pyx).  Calls nothing of ours.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating *a, int lda,
                      const floating *b, int ldb, floating beta,
                      floating *c, int ldc) noexcept nogil:
    """Row-major c (m x n) = alpha op(a) op(b) + beta c."""
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *>b, &ldb, <float *>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *>b, &ldb, <double *>a, &lda,
              &beta, c, &ldc)
