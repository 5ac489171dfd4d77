# cimport-able declarations of _dense.pyx: the network description that the
# nogil training code walks, and the Workspace that owns its buffers.
#
# The layer count is only known at run time, so a network is a C array of
# `Layer` structs holding raw pointers (typed memoryviews cannot live in a C
# array); the fused float/double routines cast them to `floating *`.

cdef enum Activation:
    ACT_IDENTITY = 0
    ACT_LOGISTIC = 1
    ACT_TANH = 2
    ACT_RELU = 3

cdef enum Solver:
    SOLVER_NONE = 0       # gradients only, no optimizer state
    SOLVER_SGD = 1        # plain SGD (momentum == 0): folded into the gemm
    SOLVER_MOMENTUM = 2   # SGD with (Nesterov) momentum
    SOLVER_ADAM = 3

cdef struct Layer:
    Py_ssize_t n_in, n_out
    void *W          # (n_in, n_out) C-contiguous: the caller's coefs[l]
    void *b          # (n_out,): the caller's intercepts[l]
    void *A          # (max_batch, n_out): f(Z); for the output layer the logits,
                     # which the NLL kernel overwrites with the delta
    void *D          # (max_batch, n_out): delta dLoss/dZ (== A for the output layer)
    void *gW         # (n_in, n_out) gradient
    void *gb         # (n_out,) gradient
    void *sW1        # optimizer state: velocity (momentum) or first moment (Adam)
    void *sb1
    void *sW2        # second moment (Adam)
    void *sb2

cdef struct Net:
    Py_ssize_t n_layers
    Layer *layers
    int activation
    int solver
    bint nesterov
    double alpha, momentum, beta_1, beta_2, epsilon
    long long t      # Adam time step (number of updates so far)

cdef struct Source:
    # rows of X: dense C-contiguous (n_rows, n_features), or CSR arrays
    const void *X            # dense values, or CSR data
    const void *indices      # CSR only
    const void *indptr       # CSR only
    Py_ssize_t n_rows, n_features
    Py_ssize_t nnz           # CSR only: length of data and indices
    bint sparse, idx64       # idx64: CSR indices/indptr are int64 (else int32)


cdef class Workspace:
    cdef Net net
    cdef readonly Py_ssize_t max_batch
    cdef readonly object dtype
    cdef readonly str activation
    cdef readonly object solver
    cdef readonly double learning_rate_init
    cdef bint _f32
    cdef list _coefs, _intercepts        # the caller's live parameter arrays
    cdef list _A, _D, _gW, _gb           # owned buffers (numpy, so tracemalloc sees them)
    cdef list _s1, _s2                   # optimizer state, coefs then intercepts
    cdef object _xbuf, _ybuf, _wbuf      # the gathered batch

    cdef _set_pointers(self)
    cdef _labels(self, y, Py_ssize_t n)
    cdef _weights(self, sample_weight, Py_ssize_t n)
    cdef double _lr(self, lr) except? -1
    cdef _run(self, X, y, sample_weight, order, Py_ssize_t batch_size, lr)
