# The engine's Trainer as Cython sees it: its C-level state (the network of
# raw pointers, the optimizer, the owned buffers and the caller's live
# parameter arrays) and its cdef methods.  The methods themselves, and the
# rest of the engine, are in _engine.pyx.
from ._layers cimport Net
from ._optim cimport Optimizer

cdef class Trainer:
    cdef Net net                         # the network: layers of raw pointers
    cdef Optimizer opt                   # the update rule, its hyper-parameters and step
    cdef readonly double alpha           # L2 strength of the loss
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
    cdef object _bacc                    # fused output layer: bias-gradient sums
    cdef readonly Py_ssize_t output_chunk  # 0, or rows per block of the fused output layer
    cdef readonly tuple dropout          # per hidden layer, as rounded (multiples of 2^-16)
    cdef readonly double label_smoothing
    cdef readonly str out_activation     # "softmax" or "logistic"
    cdef list _Z                         # per hidden layer: z (gelu/silu) or undropped f(z), or None
    cdef object _tbuf                    # logistic output: the gathered batch's targets

    cdef _set_pointers(self)
    cdef double _checked_rate(self, lr) except? -1
    cdef _train(self, X, y, sample_weight, order, Py_ssize_t batch_size, lr, schedule,
                seed, Py_ssize_t first_batch)
    cdef _targets(self, y, Py_ssize_t n)
