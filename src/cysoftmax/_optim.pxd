# cython: cdivision=True, boundscheck=False, wraparound=False
# Optimizers for the engine: their configuration and their update rules.
#
# Owns the Solver codes, the Optimizer struct (hyper-parameters and Adam's
# step counter: the optimizer's own state, apart from the network), the
# per-mini-batch learning rate of the cosine schedule (Schedule,
# cosine_rate: the one formula, which _engine.scheduled_rate exposes), and the
# in-place update rules of scikit-learn's MLP
# (sklearn/neural_network/_stochastic_optimizers.py): plain SGD, SGD with
# (Nesterov) momentum, Adam.  The per-parameter state arrays (velocities,
# moments) are the sW1/sb1/sW2/sb2 slots of each Layer.  `l2` adds the L2
# term l2 * p to the gradient on the fly.  Calls nothing of ours.
#
# Subnormal moments: Adam's moments of a parameter whose gradient stays 0
# (the weights of a dead relu unit) decay geometrically (m by beta_1, v by
# beta_2 per step) into the subnormal range, where arithmetic is slow on
# x86 (measured on Zen 4: a float32 update over subnormal moments took 1.5x
# the time of one over normal moments, float64 1.8x).  So adam_update
# stores a moment as 0 once its magnitude is below the smallest normal
# number (FLT_MIN / DBL_MIN: Optimizer.tiny), with a compare and a blend
# (`flush`) that vectorizes, not a branch.  The step of the update itself
# is computed from the unflushed values, so the parameters move exactly as
# scikit-learn's formula says; only the stored state differs, and only
# below the smallest normal number.  The weights are not flushed: few of
# them become subnormal (266 of 235,146 by epoch 12 of a Fashion-MNIST fit)
# and flushing them would change the model.
#
# The Adam update runs on the calling thread, after each layer's weight-
# gradient gemm.  It is memory-bound (it streams p, g, m, v and writes p, m,
# v: 28 bytes per float32 parameter; perf on 1 thread put 45% of the engine's
# own samples on one load of that loop) and was about 13% of a 1-thread
# Adam epoch of 784-256-128-10 at batch 128 (Adam epoch / SGD epoch 1.13 on
# 1 thread, 1.27 on 2, benchmarks/latest_training.md).  Splitting it over an
# OpenMP team of 2 (tried: pieces of 8192 entries, `prange`) puts a second
# thread pool beside OpenBLAS's.  On this 2-vCPU VM, 12,800 rows at batch
# 128 with 2 BLAS threads, ABAB over processes: libgomp's default (spinning)
# wait made the Adam epoch 14-20x slower than the serial update (about
# 2.05 s against 0.11 s: its spinning thread takes the core OpenBLAS's
# worker needs); with OMP_WAIT_POLICY=passive it was no faster than serial
# (113 against 110 ms: waking the team for each of the 6 updates of a step
# costs what the second core saves).  So the update is not split.
from cython cimport floating
from libc.math cimport sqrt, sqrtf, pow, cos, M_PI

cdef extern from *:
    """
    #include <math.h>
    /* x, or +0 when |x| < tiny (NaN passes): a compare and a blend, no branch */
    static inline float cs_flush_f(float x, float tiny) { return fabsf(x) < tiny ? 0.0f : x; }
    static inline double cs_flush_d(double x, double tiny) { return fabs(x) < tiny ? 0.0 : x; }
    """
    float cs_flush_f(float x, float tiny) noexcept nogil
    double cs_flush_d(double x, double tiny) noexcept nogil


cdef inline floating flush(floating x, floating tiny) noexcept nogil:
    """x, or 0 when |x| < tiny (the moments' flush below the smallest normal)."""
    if floating is float:
        return cs_flush_f(x, tiny)
    else:
        return cs_flush_d(x, tiny)

cdef enum Solver:
    SOLVER_NONE = 0       # gradients only, no optimizer state
    SOLVER_SGD = 1        # plain SGD (momentum == 0): folded into the gemm
    SOLVER_MOMENTUM = 2   # SGD with (Nesterov) momentum
    SOLVER_ADAM = 3

cdef enum ScheduleKind:
    SCHEDULE_EPOCH = 0    # one rate for the whole epoch (given by the caller)
    SCHEDULE_COSINE = 1   # cosine decay, updated every mini-batch

cdef struct Schedule:
    int kind              # ScheduleKind
    double lr0            # learning_rate_init
    double epochs_done    # epochs finished before this one
    double n_batches      # mini-batches in this epoch
    double warmup         # warm-up epochs
    double total          # epochs of the schedule (max_iter)


cdef inline double cosine_rate(const Schedule *s, Py_ssize_t k) noexcept nogil:
    """The rate of mini-batch k (0-based) of the epoch: at progress
    p = epochs_done + k / n_batches (in epochs), linear warm-up
    lr0 min(1, (p + 1/n_batches) / warmup) while p < warmup (capped: when
    warmup * n_batches is not a whole number, the last warm-up batch would
    pass lr0), then lr0 (1 + cos(pi min(1, (p - warmup) / (total - warmup)))) / 2,
    down to 0 at p = total and 0 after it."""
    cdef double p = s.epochs_done + k / s.n_batches
    cdef double u
    if p < s.warmup:
        return s.lr0 * min(1.0, (p + 1.0 / s.n_batches) / s.warmup)
    u = (p - s.warmup) / (s.total - s.warmup)
    if u >= 1.0:
        return 0.0
    return s.lr0 * 0.5 * (1.0 + cos(M_PI * u))


cdef struct Optimizer:
    int solver            # Solver
    bint nesterov
    double momentum, beta_1, beta_2, epsilon
    long long t           # Adam's time step (number of updates so far)
    double tiny           # Adam: moments below this magnitude are stored as 0
                          # (the smallest normal of the dtype; 0: never)


cdef inline void sgd_update(floating *p, const floating *g, Py_ssize_t size,
                            floating lr, floating l2) noexcept nogil:
    """p += -lr * (g + l2 p)."""
    cdef Py_ssize_t i
    if l2 == 0:
        for i in range(size):
            p[i] += -lr * g[i]
    else:
        for i in range(size):
            p[i] += -lr * (g[i] + l2 * p[i])


cdef inline void momentum_update(floating *p, const floating *g, floating *vel,
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


cdef inline void adam_update(floating *p, const floating *g, floating *m, floating *v,
                             Py_ssize_t size, floating lr_t, floating b1, floating c1,
                             floating b2, floating c2, floating eps,
                             floating l2, floating tiny) noexcept nogil:
    """scikit-learn's AdamOptimizer with the bias correction folded into lr_t:
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p += -lr_t m / (sqrt(v) + eps).
    c1 = 1 - b1 and c2 = 1 - b2 are rounded from double, as NumPy does.
    m and v are stored flushed to 0 where their magnitude is below `tiny`
    (the smallest normal number: no subnormal state, see the header); the
    step uses them unflushed, so p gets scikit-learn's update bit for bit."""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi
    for i in range(size):
        gi = g[i] + l2 * p[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * (gi * gi)
        m[i] = flush(mi, tiny)
        v[i] = flush(vi, tiny)
        if floating is float:
            p[i] += -lr_t * mi / (sqrtf(vi) + eps)
        else:
            p[i] += -lr_t * mi / (sqrt(vi) + eps)


cdef inline double begin_step(Optimizer *opt, double lr) noexcept nogil:
    """Start one update of every parameter: Adam's time step advances and its
    bias-corrected step size is returned; 0 for the other solvers."""
    if opt.solver != SOLVER_ADAM:
        return 0.0
    opt.t += 1
    return (lr * sqrt(1.0 - pow(opt.beta_2, <double>opt.t))
            / (1.0 - pow(opt.beta_1, <double>opt.t)))


cdef inline void update_param(const Optimizer *opt, floating *p, const floating *g,
                              floating *s1, floating *s2, Py_ssize_t size, double lr,
                              double lr_t, double l2) noexcept nogil:
    """One parameter array's update by the configured rule (lr_t from begin_step)."""
    if opt.solver == SOLVER_ADAM:
        adam_update(p, g, s1, s2, size, <floating>lr_t, <floating>opt.beta_1,
                    <floating>(1.0 - opt.beta_1), <floating>opt.beta_2,
                    <floating>(1.0 - opt.beta_2), <floating>opt.epsilon, <floating>l2,
                    <floating>opt.tiny)
    elif opt.solver == SOLVER_MOMENTUM:
        momentum_update(p, g, s1, size, <floating>lr, <floating>opt.momentum,
                        opt.nesterov, <floating>l2)
    else:
        sgd_update(p, g, size, <floating>lr, <floating>l2)
