# cython: cdivision=True, boundscheck=False, wraparound=False
# Dense layers for the engine: the network description and its passes.
#
# Owns the Activation codes, the Layer / Net structs the nogil code walks,
# and the per-layer passes: the fused bias + activation after each gemm, the
# activation derivative (computed from the stored activations: relu 0 where
# a == 0, logistic a(1-a), tanh 1-a^2, so pre-activations are never stored),
# the column sums of a delta, the forward pass through every layer, and one
# step of backpropagation D_{l-1} = (D_l W_l^T) * f'(A_{l-1}).  Calls _blas
# only.  The layer count is known at run time only, so a network is a C array
# of Layer structs of raw pointers (typed memoryviews cannot live in a C
# array); the fused float/double helpers cast them to `floating *`.  The
# Python side checks every array once, when it is bound.
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf
from libc.string cimport memset
from ._blas cimport gemm

cdef enum Activation:
    ACT_IDENTITY = 0
    ACT_LOGISTIC = 1
    ACT_TANH = 2
    ACT_RELU = 3

cdef struct Layer:
    Py_ssize_t n_in, n_out
    void *W          # (n_in, n_out) C-contiguous: the caller's coefs[l]
    void *b          # (n_out,): the caller's intercepts[l]
    void *A          # (rows, n_out): f(Z); for the output layer the logits,
                     # which the NLL kernel overwrites with the delta
    void *D          # (rows, n_out): delta dLoss/dZ (== A for the output layer)
    void *gW         # (n_in, n_out) gradient
    void *gb         # (n_out,) gradient
    void *sW1        # optimizer state of W and b (see _optim.pxd): velocity
    void *sb1        # (momentum) or first moment (Adam)
    void *sW2        # second moment (Adam)
    void *sb2

cdef struct Net:
    Py_ssize_t n_layers
    Layer *layers
    int activation   # Activation of the hidden layers; the output is softmax
    Py_ssize_t out_chunk  # 0: the output layer holds a whole batch's logits;
                          # > 0: it runs fused (_output.linear_nll), its A
                          # holding out_chunk rows
    double *bacc     # fused: m doubles for the output bias gradient's sums


cdef inline void bias_act(floating *z, Py_ssize_t n, Py_ssize_t m, const floating *b,
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


cdef inline void act_derivative(floating *g, const floating *a, Py_ssize_t size,
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


cdef inline void colsum(const floating *d, Py_ssize_t n, Py_ssize_t m,
                        floating *out) noexcept nogil:
    """out[j] = sum_i d[i, j]: row by row, so the inner loop is contiguous."""
    cdef Py_ssize_t i, j
    cdef const floating *row
    memset(out, 0, m * sizeof(floating))
    for i in range(n):
        row = d + i * m
        for j in range(m):
            out[j] += row[j]


cdef inline double sqnorm(const floating *w, Py_ssize_t size) noexcept nogil:
    """sum w_i^2, accumulated in double."""
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(size):
        s += <double>w[i] * <double>w[i]
    return s


cdef inline void forward(const Net *net, const floating *x0, Py_ssize_t ldx,
                         Py_ssize_t nb, Py_ssize_t L) noexcept nogil:
    """Activations of the first L layers into layers[l].A (the logits into the
    output layer's when L is all of them)."""
    cdef Py_ssize_t l
    cdef const Layer *ly
    cdef const floating *a_prev = x0
    cdef Py_ssize_t lda = ldx
    cdef floating *z
    for l in range(L):
        ly = &net.layers[l]
        z = <floating *>ly.A
        gemm(False, False, <int>nb, <int>ly.n_out, <int>ly.n_in, <floating>1.0,
             a_prev, <int>lda, <const floating *>ly.W, <int>ly.n_out,
             <floating>0.0, z, <int>ly.n_out)
        bias_act(z, nb, ly.n_out, <const floating *>ly.b,
                 net.activation if l < net.n_layers - 1 else ACT_IDENTITY)
        a_prev = z
        lda = ly.n_out


cdef inline const floating *layer_input(const Net *net, Py_ssize_t l, const floating *x0,
                                        Py_ssize_t ldx, Py_ssize_t *ld) noexcept nogil:
    """The input of layer l (x0 for the first, the activations below otherwise)
    and its leading dimension, in *ld."""
    if l == 0:
        ld[0] = ldx
        return x0
    ld[0] = net.layers[l].n_in
    return <const floating *>net.layers[l - 1].A


cdef inline void delta_below(const Net *net, Py_ssize_t l, Py_ssize_t nb,
                             floating *d_below) noexcept nogil:
    """d_below = D_{l-1} = (D_l W_l^T) * f'(A_{l-1}) for l >= 1 (d_below is
    layers[l-1].D, typed), with W_l as it is now: the caller updates W_l only
    after this."""
    cdef const Layer *ly = &net.layers[l]
    gemm(False, True, <int>nb, <int>ly.n_in, <int>ly.n_out, <floating>1.0,
         <const floating *>ly.D, <int>ly.n_out, <const floating *>ly.W, <int>ly.n_out,
         <floating>0.0, d_below, <int>ly.n_in)
    act_derivative(d_below, <const floating *>net.layers[l - 1].A, nb * ly.n_in,
                   net.activation)
