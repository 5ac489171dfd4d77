# cython: cdivision=True, boundscheck=False, wraparound=False
# Dense layers for the engine: the network description and its passes.
#
# Owns the Activation codes, the Layer / Net structs the nogil code walks,
# and the per-layer passes: the fused bias + activation after each gemm, the
# activation derivative, inverted dropout (its mask drawn from a
# counter-based generator, so that backward recomputes it instead of
# storing it), the column sums of a delta, the forward pass through every
# layer, and one step of backpropagation
# D_{l-1} = (D_l W_l^T) * f'(Z_{l-1}) (* the dropout mask).  Calls _blas only.
#
# Derivatives: identity, relu, leaky_relu, logistic and tanh take theirs
# from the stored activation a = f(z) (relu 0 where a == 0, leaky_relu
# 0.01 where a <= 0, logistic a(1-a), tanh 1-a^2), so their pre-activations
# are never stored; gelu and silu need z itself, kept in the layer's `Z`
# buffer (allocated once per trainer).  With dropout, A holds the dropped,
# rescaled activation that the next layer reads; logistic and tanh then keep
# the undropped f(z) in `Z` for their derivative (relu and leaky_relu read
# only the sign of A, which the rescaling keeps).
#
# The layer count is known at run time only, so a network is a C array
# of Layer structs of raw pointers (typed memoryviews cannot live in a C
# array); the fused float/double helpers cast them to `floating *`.  The
# Python side checks every array once, when it is bound.
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf, erfc, erfcf
from libc.stdint cimport uint64_t, uint32_t
from libc.string cimport memset
from ._blas cimport gemm

cdef enum Activation:
    ACT_IDENTITY = 0
    ACT_LOGISTIC = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LEAKY_RELU = 4    # slope LEAKY_SLOPE below 0
    ACT_GELU = 5          # exact: z Phi(z), with erf
    ACT_SILU = 6          # z sigmoid(z)

cdef enum OutActivation:
    OUT_SOFTMAX = 0       # one label per row: softmax + cross-entropy
    OUT_LOGISTIC = 1      # multilabel: independent sigmoids + binary cross-entropy

cdef extern from *:
    """
    /* leaky_relu's slope for z < 0 (PyTorch's default) */
    #define CS_LEAKY_SLOPE 0.01
    /* 1/sqrt(2) and 1/sqrt(2 pi), for gelu */
    #define CS_SQRT1_2 0.70710678118654752440
    #define CS_INV_SQRT_2PI 0.39894228040143267794
    """
    double CS_LEAKY_SLOPE
    double CS_SQRT1_2
    double CS_INV_SQRT_2PI

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
    void *Z          # (rows, n_out) or NULL: gelu/silu's pre-activation z, or,
                     # with dropout, logistic/tanh's undropped f(z)
    uint32_t drop16  # dropout: an entry is dropped when its 16-bit draw is
                     # < drop16 (rate drop16 / 2^16); 0: no dropout
    double drop_scale  # 1 / (1 - drop16 / 2^16), the inverted-dropout scale

cdef struct Net:
    Py_ssize_t n_layers
    Layer *layers
    int activation   # Activation of the hidden layers
    int out_act      # OutActivation of the output layer
    double smoothing # label smoothing of the softmax cross-entropy (0: none)
    bint train       # forward applies dropout (training steps only)
    uint64_t drop_key  # dropout: the seed of this epoch's masks ...
    uint64_t drop_batch  # ... and the batch's number in it
    Py_ssize_t out_chunk  # 0: the output layer holds a whole batch's logits;
                          # > 0: it runs fused (_output.linear_nll), its A
                          # holding out_chunk rows
    double *bacc     # fused: m doubles for the output bias gradient's sums


cdef inline floating _sigmoid(floating v) noexcept nogil:
    if floating is float:
        return 1.0 / (1.0 + expf(-v))
    else:
        return 1.0 / (1.0 + exp(-v))


cdef inline floating _phi_cdf(floating v) noexcept nogil:
    """Phi(v) = erfc(-v / sqrt 2) / 2: no cancellation for v << 0 (1 + erf would)."""
    if floating is float:
        return 0.5 * erfcf(-v * <float>CS_SQRT1_2)
    else:
        return 0.5 * erfc(-v * CS_SQRT1_2)


cdef inline void bias_act(floating *z, Py_ssize_t n, Py_ssize_t m, const floating *b,
                          int act, floating *aux) noexcept nogil:
    """z[i, :] = f(z[i, :] + b) for n rows of m, one pass right after the gemm.

    aux (n x m, or NULL): receives what the derivative needs beyond f(z):
    z itself for gelu and silu, f(z) for the others (kept undropped when
    dropout rescales z afterwards)."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating *row
    cdef floating *arow
    cdef floating slope = <floating>CS_LEAKY_SLOPE
    for i in range(n):
        row = z + i * m
        arow = aux + i * m if aux != NULL else NULL
        if act == ACT_RELU:
            # `v < 0 ? 0 : v` keeps NaN visible (np.maximum does too) and
            # compiles to a vector max/blend
            for j in range(m):
                v = row[j] + b[j]
                row[j] = 0 if v < 0 else v
        elif act == ACT_IDENTITY:
            for j in range(m):
                row[j] = row[j] + b[j]
        elif act == ACT_LEAKY_RELU:
            for j in range(m):
                v = row[j] + b[j]
                row[j] = v if v > 0 else slope * v
        elif act == ACT_LOGISTIC:
            for j in range(m):
                row[j] = _sigmoid(row[j] + b[j])
        elif act == ACT_TANH:
            for j in range(m):
                v = row[j] + b[j]
                if floating is float:
                    row[j] = tanhf(v)
                else:
                    row[j] = tanh(v)
        else:   # gelu z Phi(z), silu z sigmoid(z): their derivatives need z
            for j in range(m):
                v = row[j] + b[j]
                if arow != NULL:
                    arow[j] = v
                row[j] = v * (_phi_cdf(v) if act == ACT_GELU else _sigmoid(v))
            continue
        if arow != NULL:
            for j in range(m):
                arow[j] = row[j]


cdef inline void act_derivative(floating *g, const floating *a, const floating *aux,
                                Py_ssize_t size, int act) noexcept nogil:
    """g *= f'(z): from the activation a = f(z) (or its undropped copy in aux,
    when given) for the first five; from z, in aux, for gelu and silu."""
    cdef Py_ssize_t i
    cdef floating v, s
    cdef floating slope = <floating>CS_LEAKY_SLOPE
    cdef const floating *fa = aux if aux != NULL else a
    if act == ACT_RELU:
        # as scikit-learn: zero where the activation is zero (z <= 0)
        for i in range(size):
            g[i] = 0 if a[i] == 0 else g[i]
    elif act == ACT_LEAKY_RELU:
        # a > 0 exactly where z > 0 (PyTorch's rule: the slope at z == 0)
        for i in range(size):
            g[i] = g[i] if a[i] > 0 else slope * g[i]
    elif act == ACT_LOGISTIC:
        for i in range(size):
            g[i] = g[i] * (fa[i] * (1 - fa[i]))
    elif act == ACT_TANH:
        for i in range(size):
            g[i] = g[i] * (1 - fa[i] * fa[i])
    elif act == ACT_GELU:
        # d/dz z Phi(z) = Phi(z) + z phi(z)
        for i in range(size):
            v = aux[i]
            if floating is float:
                g[i] = g[i] * (_phi_cdf(v) + v * <float>CS_INV_SQRT_2PI * expf(-0.5 * v * v))
            else:
                g[i] = g[i] * (_phi_cdf(v) + v * CS_INV_SQRT_2PI * exp(-0.5 * v * v))
    elif act == ACT_SILU:
        # d/dz z s(z) = s (1 + z (1 - s))
        for i in range(size):
            v = aux[i]
            s = _sigmoid(v)
            g[i] = g[i] * (s * (1 + v * (1 - s)))


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    """splitmix64's finalizer: a bijection of 64-bit words whose outputs for
    consecutive inputs pass BigCrush (Steele, Lea & Flood, OOPSLA 2014)."""
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL
    return z ^ (z >> 31)


cdef inline void dropout(floating *x, Py_ssize_t size, uint64_t key, uint64_t stream,
                         uint32_t drop16, floating scale) noexcept nogil:
    """Inverted dropout of x (size entries) in place: entry i is zeroed when
    its 16-bit draw is < drop16, else multiplied by scale.

    The draws are a counter-based generator: entry i of (key, stream) takes
    bits 16 (i % 4) .. 16 (i % 4) + 15 of mix64(base + (i // 4) * golden),
    base = mix64(key ^ mix64(stream)).  A pure function of (key, stream, i):
    the same mask for the same seed whatever the thread count or batch
    order, and the backward pass recomputes it instead of storing it
    (the same call on the delta zeroes and scales the same entries)."""
    cdef uint64_t base = mix64(key ^ mix64(stream)), h
    cdef Py_ssize_t q, k, i, nq = size >> 2
    for q in range(nq):
        h = mix64(base + <uint64_t>q * 0x9e3779b97f4a7c15ULL)
        for k in range(4):
            i = 4 * q + k
            x[i] = 0 if ((h >> (16 * k)) & 0xffff) < drop16 else x[i] * scale
    if nq * 4 < size:
        h = mix64(base + <uint64_t>nq * 0x9e3779b97f4a7c15ULL)
        for i in range(nq * 4, size):
            k = i - nq * 4
            x[i] = 0 if ((h >> (16 * k)) & 0xffff) < drop16 else x[i] * scale


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


cdef inline uint64_t drop_stream(const Net *net, Py_ssize_t l) noexcept nogil:
    """The dropout stream of hidden layer l in the current batch."""
    return (net.drop_batch << 16) | <uint64_t>l


cdef inline void forward(const Net *net, const floating *x0, Py_ssize_t ldx,
                         Py_ssize_t nb, Py_ssize_t L) noexcept nogil:
    """Activations of the first L layers into layers[l].A (the logits into the
    output layer's when L is all of them).  In a training step (net.train),
    hidden layers with a dropout rate are dropped out after their activation."""
    cdef Py_ssize_t l
    cdef const Layer *ly
    cdef const floating *a_prev = x0
    cdef Py_ssize_t lda = ldx
    cdef floating *z
    cdef bint hidden
    for l in range(L):
        ly = &net.layers[l]
        z = <floating *>ly.A
        hidden = l < net.n_layers - 1
        gemm(False, False, <int>nb, <int>ly.n_out, <int>ly.n_in, <floating>1.0,
             a_prev, <int>lda, <const floating *>ly.W, <int>ly.n_out,
             <floating>0.0, z, <int>ly.n_out)
        bias_act(z, nb, ly.n_out, <const floating *>ly.b,
                 net.activation if hidden else ACT_IDENTITY,
                 <floating *>ly.Z if hidden else <floating *>NULL)
        if hidden and net.train and ly.drop16:
            dropout(z, nb * ly.n_out, net.drop_key, drop_stream(net, l), ly.drop16,
                    <floating>ly.drop_scale)
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
    """d_below = D_{l-1} = (D_l W_l^T) * f'(Z_{l-1}) (* mask) for l >= 1 (d_below is
    layers[l-1].D, typed), with W_l as it is now: the caller updates W_l only
    after this."""
    cdef const Layer *ly = &net.layers[l]
    gemm(False, True, <int>nb, <int>ly.n_in, <int>ly.n_out, <floating>1.0,
         <const floating *>ly.D, <int>ly.n_out, <const floating *>ly.W, <int>ly.n_out,
         <floating>0.0, d_below, <int>ly.n_in)
    below_derivative(net, l - 1, nb, d_below)


cdef inline void below_derivative(const Net *net, Py_ssize_t l, Py_ssize_t nb,
                                  floating *d) noexcept nogil:
    """d (nb x n_out of hidden layer l, holding D_{l+1} W_{l+1}^T) times the
    layer's dropout mask and f'(Z_l): its delta D_l."""
    cdef const Layer *ly = &net.layers[l]
    if net.train and ly.drop16:
        dropout(d, nb * ly.n_out, net.drop_key, drop_stream(net, l), ly.drop16,
                <floating>ly.drop_scale)
    act_derivative(d, <const floating *>ly.A, <const floating *>ly.Z, nb * ly.n_out,
                   net.activation)
