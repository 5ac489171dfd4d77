# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Cython entry points over the C row kernels (rows.h).

Every function here takes arrays that ``_validation`` has already checked:
2-D, C-contiguous, float32 or float64, outputs of the same dtype and the
right shape, labels in range.  They pick the float or double kernel through
the fused type ``floating`` (one source, two instantiations), then run it
without the GIL.  Rows of length 0 and empty batches never reach a kernel.
"""
from cython cimport floating
from libc.math cimport NAN
cimport numpy as cnp
from ._kernels cimport *
import numpy as np

cnp.import_array()


# Each takes its memoryviews with the GIL (the conversion from the arrays
# needs it), then releases the GIL for the kernel call: these are the calls
# of the validated path in _api.py, as long as any other.
cdef void _softmax(const floating[:, ::1] z, floating[:, ::1] out) noexcept:
    with nogil:
        if floating is float:
            cs_softmax_f(&z[0, 0], z.shape[1], &out[0, 0], out.shape[1], z.shape[0], z.shape[1])
        else:
            cs_softmax_d(&z[0, 0], z.shape[1], &out[0, 0], out.shape[1], z.shape[0], z.shape[1])


cdef void _log_softmax(const floating[:, ::1] z, floating[:, ::1] out) noexcept:
    with nogil:
        if floating is float:
            cs_log_softmax_f(&z[0, 0], z.shape[1], &out[0, 0], out.shape[1], z.shape[0], z.shape[1])
        else:
            cs_log_softmax_d(&z[0, 0], z.shape[1], &out[0, 0], out.shape[1], z.shape[0], z.shape[1])


cdef void _logsumexp(const floating[:, ::1] z, floating[::1] out) noexcept:
    with nogil:
        if floating is float:
            cs_logsumexp_f(&z[0, 0], z.shape[1], &out[0], z.shape[0], z.shape[1])
        else:
            cs_logsumexp_d(&z[0, 0], z.shape[1], &out[0], z.shape[0], z.shape[1])


cdef double _nll(const floating[:, ::1] z, const Py_ssize_t[::1] y, const double[::1] w,
                 double gmul, floating[::1] loss, floating[:, ::1] grad) noexcept:
    cdef const double *wp = &w[0] if w is not None else NULL
    cdef floating *lp = &loss[0] if loss is not None else NULL
    cdef floating *gp = &grad[0, 0] if grad is not None else NULL
    cdef double total
    with nogil:
        if floating is float:
            total = cs_nll_f(&z[0, 0], z.shape[1], &y[0], wp, gmul, lp, gp, z.shape[1],
                             z.shape[0], z.shape[1])
        else:
            total = cs_nll_d(&z[0, 0], z.shape[1], &y[0], wp, gmul, lp, gp, z.shape[1],
                             z.shape[0], z.shape[1])
    return total


cdef inline bint _is_f32(object a):
    return a.dtype.itemsize == 4


def softmax_rows(z, out):
    """out[i] = softmax(z[i]) for 2-D C-contiguous z, out (out may be z)."""
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    if _is_f32(z):
        _softmax[float](z, out)
    else:
        _softmax[double](z, out)


def log_softmax_rows(z, out):
    """out[i] = log_softmax(z[i]) for 2-D C-contiguous z, out (out may be z)."""
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    if _is_f32(z):
        _log_softmax[float](z, out)
    else:
        _log_softmax[double](z, out)


def logsumexp_rows(z, out):
    """out[i] = logsumexp(z[i]); rows of length 0 give -inf."""
    if z.shape[0] == 0:
        return
    if z.shape[1] == 0:
        out[...] = -np.inf
        return
    if _is_f32(z):
        _logsumexp[float](z, out)
    else:
        _logsumexp[double](z, out)


def nll_rows(z, y, w, double gmul, loss, grad):
    """sum_i w_i C_i; fills loss (w_i C_i) and grad (w_i gmul (p_i - onehot)) when given.

    z (n, m) with n, m >= 1, y (n,) intp labels already in [0, m), w (n,)
    float64 or None, loss (n,) / grad (n, m) of z's dtype or None.
    """
    if _is_f32(z):
        return _nll[float](z, y, w, gmul, loss, grad)
    return _nll[double](z, y, w, gmul, loss, grad)


# ------------------------------------------------- the NLL with PyTorch's options
cdef tuple _nll_opts(const floating[:, ::1] z, const Py_ssize_t[::1] y,
                     const floating[:, ::1] q, const floating[::1] cw, const double[::1] w,
                     Py_ssize_t ignore, double smoothing, double gmul, bint mean,
                     floating[::1] loss, floating[:, ::1] grad):
    cdef const Py_ssize_t *yp = &y[0] if y is not None else NULL
    cdef const floating *qp = &q[0, 0] if q is not None else NULL
    cdef Py_ssize_t ldq = q.shape[1] if q is not None else 0
    cdef const floating *cwp = &cw[0] if cw is not None else NULL
    cdef const double *wp = &w[0] if w is not None else NULL
    cdef floating *lp = &loss[0] if loss is not None else NULL
    cdef floating *gp = &grad[0, 0] if grad is not None else NULL
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef double total, denom = 0.0
    with nogil:
        if mean:
            # the denominator first: the gradient of the mean is scaled by it
            if floating is float:
                denom = cs_nll_denom_f(yp, cwp, wp, ignore, n)
            else:
                denom = cs_nll_denom_d(yp, cwp, wp, ignore, n)
            # a zero denominator (every row ignored or of class weight 0):
            # NaN, as PyTorch, for every row that is not skipped
            gmul = gmul / denom if denom != 0.0 else NAN
        if floating is float:
            total = cs_nll_opts_f(&z[0, 0], m, yp, qp, ldq, cwp, wp, ignore, smoothing, gmul,
                                  lp, gp, m, n, m)
        else:
            total = cs_nll_opts_d(&z[0, 0], m, yp, qp, ldq, cwp, wp, ignore, smoothing, gmul,
                                  lp, gp, m, n, m)
    return total, denom


def nll_opts_rows(z, y, q, cw, w, Py_ssize_t ignore, double smoothing, double gmul, bint mean,
                  loss, grad):
    """(sum_i w_i l_i, denominator) of the cross-entropy with options.

    z (n, m), n, m >= 1; either y (n,) intp labels in [0, m) or equal to
    `ignore`, or q (n, m) soft targets of z's dtype (the other None); cw (m,)
    of z's dtype or None; w (n,) float64 or None; loss (n,) / grad (n, m) of
    z's dtype or None.  With `mean`, the denominator sum_i w_i d_i is
    computed first and the gradient scaled by gmul / denominator (NaN when
    it is 0); else the denominator returned is 0 and the scale gmul.
    """
    if _is_f32(z):
        return _nll_opts[float](z, y, q, cw, w, ignore, smoothing, gmul, mean, loss, grad)
    return _nll_opts[double](z, y, q, cw, w, ignore, smoothing, gmul, mean, loss, grad)


def nll_denom(y, cw, w, Py_ssize_t ignore, Py_ssize_t n, bint f32):
    """The denominator of the "mean" cross-entropy, sum_i w_i d_i (nll_opts_rows's):
    y (n,) intp labels or None (soft targets), cw (m,) of the dtype or None,
    w (n,) float64 or None."""
    cdef const Py_ssize_t *yp = <const Py_ssize_t *><size_t>y.ctypes.data if y is not None else NULL
    cdef const double *wp = <const double *><size_t>w.ctypes.data if w is not None else NULL
    cdef const void *cwp = <const void *><size_t>cw.ctypes.data if cw is not None else NULL
    cdef double d
    with nogil:
        if f32:
            d = cs_nll_denom_f(yp, <const float *>cwp, wp, ignore, n)
        else:
            d = cs_nll_denom_d(yp, <const double *>cwp, wp, ignore, n)
    return d


# ------------------------------------------------------------ the fast path
# The common call -- a plain C-contiguous, aligned, native-endian float32 or
# float64 ndarray of shape (n, m), class axis last, no `out` -- needs no
# validation beyond what is checked here through NumPy's C API (no Python
# attribute lookups, no memoryview objects): at (128, 10) that is most of
# the call.  Anything else returns None and takes the validated path in
# _api.py, which also produces the error messages.

cdef inline int _plain_2d(object z) noexcept:
    """NPY_FLOAT / NPY_DOUBLE for a plain non-empty 2-D float array, else -1."""
    cdef cnp.ndarray a
    cdef int t
    if type(z) is not cnp.ndarray:
        return -1
    a = <cnp.ndarray>z
    if cnp.PyArray_NDIM(a) != 2 or not cnp.PyArray_ISCARRAY_RO(a) or not cnp.PyArray_ISNOTSWAPPED(a):
        return -1
    if cnp.PyArray_DIM(a, 0) == 0 or cnp.PyArray_DIM(a, 1) == 0:
        return -1
    t = cnp.PyArray_TYPE(a)
    return t if t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE else -1


# Below this many entries a fast-path call keeps the GIL: releasing and
# taking it back costs about as much as the kernel on a few hundred entries
# (NumPy's ufuncs draw the same line, at 500), and the call is over in a
# microsecond or two.  Larger calls release it, so threads overlap.
DEF _NOGIL_MIN = 4096


cdef inline void _rows_kernel(int t, bint log, const void *zp, void *op,
                              Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    if t == cnp.NPY_FLOAT:
        if log:
            cs_log_softmax_f(<const float *>zp, m, <float *>op, m, n, m)
        else:
            cs_softmax_f(<const float *>zp, m, <float *>op, m, n, m)
    else:
        if log:
            cs_log_softmax_d(<const double *>zp, m, <double *>op, m, n, m)
        else:
            cs_softmax_d(<const double *>zp, m, <double *>op, m, n, m)


cdef object _rows_fast(object z, bint log):
    cdef int t = _plain_2d(z)
    if t < 0:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>z
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, 0), m = cnp.PyArray_DIM(a, 1)
    cdef cnp.ndarray res = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(a), t, 0)
    cdef void *zp = cnp.PyArray_DATA(a)
    cdef void *op = cnp.PyArray_DATA(res)
    if n * m < _NOGIL_MIN:
        _rows_kernel(t, log, zp, op, n, m)
    else:
        with nogil:
            _rows_kernel(t, log, zp, op, n, m)
    return res


def softmax_fast(z):
    """softmax over the last axis of a plain 2-D float ndarray, else None."""
    return _rows_fast(z, False)


def log_softmax_fast(z):
    """log_softmax over the last axis of a plain 2-D float ndarray, else None."""
    return _rows_fast(z, True)


def nll_grad_fast(z, y, bint mean, bint with_grad=True):
    """(loss, gradient) for plain logits and C-contiguous intp labels, else None.

    Only for sample_weight=None, out=None, no PyTorch option and reduction
    'mean' or 'sum'; with_grad=False returns the loss alone (nll_loss).
    Labels are range-checked here before the kernel indexes with them; an
    out-of-range label returns None, and the validated path raises.
    """
    cdef int t = _plain_2d(z)
    if t < 0 or type(y) is not cnp.ndarray:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>z, ya = <cnp.ndarray>y
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, 0), m = cnp.PyArray_DIM(a, 1)
    if (cnp.PyArray_NDIM(ya) != 1 or cnp.PyArray_DIM(ya, 0) != n
            or cnp.PyArray_TYPE(ya) != cnp.NPY_INTP or not cnp.PyArray_ISCARRAY_RO(ya)
            or not cnp.PyArray_ISNOTSWAPPED(ya)):
        return None
    cdef const Py_ssize_t *yp = <const Py_ssize_t *>cnp.PyArray_DATA(ya)
    if not cs_labels_ok(yp, n, m):   # (vectorized in the kernels)
        return None
    cdef cnp.ndarray grad = None
    cdef void *zp = cnp.PyArray_DATA(a)
    cdef void *gp = NULL
    if with_grad:
        grad = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(a), t, 0)
        gp = cnp.PyArray_DATA(grad)
    cdef double gmul = 1.0 / <double>n if mean else 1.0, total
    with nogil:
        if t == cnp.NPY_FLOAT:
            total = cs_nll_f(<const float *>zp, m, yp, NULL, gmul, NULL, <float *>gp, m, n, m)
        else:
            total = cs_nll_d(<const double *>zp, m, yp, NULL, gmul, NULL, <double *>gp, m, n, m)
    loss = total / <double>n if mean else total
    return (loss, grad) if with_grad else loss


def exp_array(x, out, bint normal_range=False):
    """out = exp(x) with the kernels' own exp, for 1-D contiguous arrays.

    normal_range=True uses the cheaper exp the kernels run on rows where
    every exp(z_j - max) is a normal number: valid for x in
    [-87, 0] (float32) or [-708, 0] (float64) only.
    """
    cdef const float[::1] xf
    cdef float[::1] of
    cdef const double[::1] xd
    cdef double[::1] od
    if x.shape[0] == 0:
        return
    if _is_f32(x):
        xf = x
        of = out
        with nogil:
            if normal_range:
                cs_exp_nr_array_f(&xf[0], &of[0], xf.shape[0])
            else:
                cs_exp_array_f(&xf[0], &of[0], xf.shape[0])
    else:
        xd = x
        od = out
        with nogil:
            if normal_range:
                cs_exp_nr_array_d(&xd[0], &od[0], xd.shape[0])
            else:
                cs_exp_array_d(&xd[0], &od[0], xd.shape[0])


def log1_array(const double[::1] x, double[::1] out):
    """out = log(x) with the kernels' log of a row sum: for x >= 1 (or NaN) only."""
    if x.shape[0] == 0:
        return
    with nogil:
        cs_log1_array(&x[0], &out[0], x.shape[0])


def log1p_array(const double[::1] x, double[::1] out):
    """out = log1p(x) with the kernels' log1p of a row sum's tail: for x >= 0 (or NaN) only."""
    if x.shape[0] == 0:
        return
    with nogil:
        cs_log1p_array(&x[0], &out[0], x.shape[0])


# ---------------------------------------------------------------- SIMD dispatch
VARIANTS = ("baseline", "avx2", "avx512")


def simd_compiled():
    """Names of the SIMD variants built into this binary."""
    return [v for v in VARIANTS if cs_simd_compiled(v.encode())]


def simd_supported():
    """Names of the variants built into this binary that this CPU can run."""
    return [v for v in VARIANTS if cs_simd_supported(v.encode())]


def simd_active():
    """Name of the variant the kernels run now."""
    return cs_simd_active().decode()


def _init_simd():
    # Chosen once, at import: the best variant this CPU runs, unless
    # CYSOFTMAX_SIMD names one (tests use it to run every variant).
    import os
    supported = simd_supported()
    want = os.environ.get("CYSOFTMAX_SIMD", "").strip().lower()
    if want:
        if want not in supported:
            raise ImportError(
                f"CYSOFTMAX_SIMD={want!r} is not available: this CPU and build support "
                f"{', '.join(supported)} (built: {', '.join(simd_compiled())})")
    else:
        want = supported[len(supported) - 1]  # (wraparound is off in this file)
    if cs_simd_select(want.encode()) != 0:
        raise ImportError(f"could not select SIMD variant {want!r}")


_init_simd()


def openmp_enabled():
    """True when the kernels were built with OpenMP (large calls use several threads)."""
    return bool(cs_openmp_enabled())


def max_threads():
    """Threads a large kernel call may use now (OpenMP's current limit; 1 without OpenMP)."""
    return cs_max_threads()


def last_team_size():
    """Threads the calling thread's last row-kernel call ran on (1 when it
    stayed serial).  For the tests: the thread count a call really used."""
    return cs_last_team_size()


# ------------------------------------- scaled logsumexp, backward functions
# (grads.template.h).  b and mask have one row per row of z, or a single row
# that every row shares (passed with a row stride of 0).  The shapes are
# checked here too: a wrong one would make the kernel read out of bounds.

cdef void _logsumexp_b(const floating[:, ::1] z, const floating[:, ::1] b,
                       const unsigned char[:, ::1] mask, floating[::1] out,
                       floating[::1] sign) noexcept:
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef Py_ssize_t ldb = 0 if b.shape[0] == 1 else m
    cdef const unsigned char *mp = &mask[0, 0] if mask is not None else NULL
    cdef Py_ssize_t ldmask = 0 if mask is None or mask.shape[0] == 1 else m
    cdef floating *sp = &sign[0] if sign is not None else NULL
    with nogil:
        if floating is float:
            cs_logsumexp_b_f(&z[0, 0], m, &b[0, 0], ldb, mp, ldmask, &out[0], sp, n, m)
        else:
            cs_logsumexp_b_d(&z[0, 0], m, &b[0, 0], ldb, mp, ldmask, &out[0], sp, n, m)


cdef void _softmax_backward(const floating[:, ::1] g, const floating[:, ::1] p,
                            floating[:, ::1] out) noexcept:
    with nogil:
        if floating is float:
            cs_softmax_backward_f(&g[0, 0], g.shape[1], &p[0, 0], p.shape[1], &out[0, 0],
                                  out.shape[1], g.shape[0], g.shape[1])
        else:
            cs_softmax_backward_d(&g[0, 0], g.shape[1], &p[0, 0], p.shape[1], &out[0, 0],
                                  out.shape[1], g.shape[0], g.shape[1])


cdef void _log_softmax_backward(const floating[:, ::1] g, const floating[:, ::1] lp,
                                floating[:, ::1] out) noexcept:
    with nogil:
        if floating is float:
            cs_log_softmax_backward_f(&g[0, 0], g.shape[1], &lp[0, 0], lp.shape[1],
                                      &out[0, 0], out.shape[1], g.shape[0], g.shape[1])
        else:
            cs_log_softmax_backward_d(&g[0, 0], g.shape[1], &lp[0, 0], lp.shape[1],
                                      &out[0, 0], out.shape[1], g.shape[0], g.shape[1])


def _check_rows(x, n, m, name):
    if x is not None and (x.ndim != 2 or x.shape[1] != m or x.shape[0] not in (1, n)):
        raise ValueError(f"{name} has shape {x.shape}; the kernel needs ({n}, {m}) or (1, {m})")


def logsumexp_b_rows(z, b, mask, out, sign):
    """out[i] = log|sum_j b[i, j] exp(z[i, j])| over the entries with mask != 0
    (all when mask is None), sign[i] its sign (sign None: NaN for a negative
    sum).  z (n, m); b of z's dtype and mask (uint8) (n, m) or (1, m), one
    row for all; out, sign (n,).  Rows of length 0 give -inf, sign 0."""
    n, m = z.shape[0], z.shape[1]
    _check_rows(b, n, m, "b")
    _check_rows(mask, n, m, "mask")
    if out.shape[0] != n or (sign is not None and sign.shape[0] != n):
        raise ValueError(f"out and sign need {n} entries")
    if n == 0:
        return
    if m == 0:
        out[...] = -np.inf
        if sign is not None:
            sign[...] = 0
        return
    if _is_f32(z):
        _logsumexp_b[float](z, b, mask, out, sign)
    else:
        _logsumexp_b[double](z, b, mask, out, sign)


def softmax_backward_rows(g, p, out):
    """out[i] = p[i] * (g[i] - dot(g[i], p[i])) for 2-D C-contiguous arrays of
    one shape and dtype (out may be g or p)."""
    if p.shape != g.shape or out.shape != g.shape:
        raise ValueError(f"shapes differ: {g.shape}, {p.shape}, {out.shape}")
    if g.shape[0] == 0 or g.shape[1] == 0:
        return
    if _is_f32(g):
        _softmax_backward[float](g, p, out)
    else:
        _softmax_backward[double](g, p, out)


def log_softmax_backward_rows(g, lp, out):
    """out[i] = g[i] - exp(lp[i]) * sum(g[i]) for 2-D C-contiguous arrays of
    one shape and dtype (out may be g or lp)."""
    if lp.shape != g.shape or out.shape != g.shape:
        raise ValueError(f"shapes differ: {g.shape}, {lp.shape}, {out.shape}")
    if g.shape[0] == 0 or g.shape[1] == 0:
        return
    if _is_f32(g):
        _log_softmax_backward[float](g, lp, out)
    else:
        _log_softmax_backward[double](g, lp, out)

# ------------------------------------------------------------------ where=
# The masked kernels (_kernels/masked.template.h).  `mask` is a C-contiguous
# uint8 array (a bool array viewed as uint8: no copy) laid out like z's rows
# by _validation.check_where: shape (n, m), or (1, m) when every row has the
# same mask (the kernel then reads that one row: row stride 0).

cdef Py_ssize_t _mask_stride(object z, object mask) except -1:
    """The kernel's row stride of `mask` for rows `z`, after checking its shape."""
    _check_rows(mask, z.shape[0], z.shape[1], "mask")
    return 0 if mask.shape[0] == 1 else mask.shape[1]


cdef void _softmax_masked(const floating[:, ::1] z, const unsigned char[:, ::1] mask,
                          Py_ssize_t ldm, floating[:, ::1] out, bint log) noexcept:
    with nogil:
        if floating is float:
            if log:
                cs_log_softmax_masked_f(&z[0, 0], z.shape[1], &mask[0, 0], ldm, &out[0, 0],
                                        out.shape[1], z.shape[0], z.shape[1])
            else:
                cs_softmax_masked_f(&z[0, 0], z.shape[1], &mask[0, 0], ldm, &out[0, 0],
                                    out.shape[1], z.shape[0], z.shape[1])
        else:
            if log:
                cs_log_softmax_masked_d(&z[0, 0], z.shape[1], &mask[0, 0], ldm, &out[0, 0],
                                        out.shape[1], z.shape[0], z.shape[1])
            else:
                cs_softmax_masked_d(&z[0, 0], z.shape[1], &mask[0, 0], ldm, &out[0, 0],
                                    out.shape[1], z.shape[0], z.shape[1])


cdef void _logsumexp_masked(const floating[:, ::1] z, const unsigned char[:, ::1] mask,
                            Py_ssize_t ldm, floating[::1] out) noexcept:
    with nogil:
        if floating is float:
            cs_logsumexp_masked_f(&z[0, 0], z.shape[1], &mask[0, 0], ldm, &out[0],
                                  z.shape[0], z.shape[1])
        else:
            cs_logsumexp_masked_d(&z[0, 0], z.shape[1], &mask[0, 0], ldm, &out[0],
                                  z.shape[0], z.shape[1])


def softmax_masked_rows(z, mask, out):
    """out[i] = softmax of the kept entries of z[i], 0 elsewhere (out may be z)."""
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    cdef Py_ssize_t ldm = _mask_stride(z, mask)
    if _is_f32(z):
        _softmax_masked[float](z, mask, ldm, out, False)
    else:
        _softmax_masked[double](z, mask, ldm, out, False)


def log_softmax_masked_rows(z, mask, out):
    """out[i] = log_softmax of the kept entries of z[i], -inf elsewhere (out may be z)."""
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    cdef Py_ssize_t ldm = _mask_stride(z, mask)
    if _is_f32(z):
        _softmax_masked[float](z, mask, ldm, out, True)
    else:
        _softmax_masked[double](z, mask, ldm, out, True)


def logsumexp_masked_rows(z, mask, out):
    """out[i] = logsumexp of the kept entries of z[i]; -inf when none is kept."""
    if z.shape[0] == 0:
        return
    if z.shape[1] == 0:
        out[...] = -np.inf
        return
    cdef Py_ssize_t ldm = _mask_stride(z, mask)
    if _is_f32(z):
        _logsumexp_masked[float](z, mask, ldm, out)
    else:
        _logsumexp_masked[double](z, mask, ldm, out)


# ------------------------------------------------------------ sigmoid outputs
# The binary cross-entropy of independent sigmoid outputs (multilabel) and
# the elementwise sigmoid / log-sigmoid (_kernels/bce.template.h).

cdef double _bce(const floating[:, ::1] z, const floating[:, ::1] t, const double[::1] w,
                 double gmul, floating[::1] loss, floating[:, ::1] grad) noexcept:
    cdef const double *wp = &w[0] if w is not None else NULL
    cdef floating *lp = &loss[0] if loss is not None else NULL
    cdef floating *gp = &grad[0, 0] if grad is not None else NULL
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef double total
    with nogil:
        if floating is float:
            total = cs_bce_f(&z[0, 0], m, &t[0, 0], m, wp, gmul, lp, gp, m, n, m)
        else:
            total = cs_bce_d(&z[0, 0], m, &t[0, 0], m, wp, gmul, lp, gp, m, n, m)
    return total


def bce_rows(z, t, w, double gmul, loss, grad):
    """sum_i w_i l_i, l_i = sum_j softplus(z_ij) - t_ij z_ij; fills loss (w_i l_i)
    and grad (gmul w_i (sigmoid(z) - t)) when given.

    z, t (n, m) C-contiguous of one dtype, t in [0, 1]; w (n,) float64 or
    None; loss (n,) / grad (n, m) of z's dtype or None (grad may be z).
    """
    if z.shape != t.shape or (grad is not None and grad.shape != z.shape):
        raise ValueError(f"shapes differ: {z.shape}, {t.shape}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        if loss is not None:
            loss[...] = 0
        return 0.0
    if _is_f32(z):
        return _bce[float](z, t, w, gmul, loss, grad)
    return _bce[double](z, t, w, gmul, loss, grad)


cdef void _sigmoid(const floating[:, ::1] z, floating[:, ::1] out, bint log) noexcept:
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    with nogil:
        if floating is float:
            if log:
                cs_log_sigmoid_f(&z[0, 0], m, &out[0, 0], m, n, m)
            else:
                cs_sigmoid_f(&z[0, 0], m, &out[0, 0], m, n, m)
        else:
            if log:
                cs_log_sigmoid_d(&z[0, 0], m, &out[0, 0], m, n, m)
            else:
                cs_sigmoid_d(&z[0, 0], m, &out[0, 0], m, n, m)


def sigmoid_rows(z, out, bint log=False):
    """out = sigmoid(z) (log: log sigmoid(z)) for 2-D C-contiguous z, out of
    one shape and dtype (out may be z)."""
    if out.shape != z.shape:
        raise ValueError(f"shapes differ: {z.shape}, {out.shape}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    if _is_f32(z):
        _sigmoid[float](z, out, log)
    else:
        _sigmoid[double](z, out, log)
