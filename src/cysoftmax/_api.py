"""Public kernel functions: softmax, log-softmax, logsumexp, the NLL loss, and
the sigmoid outputs' binary cross-entropy and log-sigmoid.

Each function validates its arguments once (``_validation``), allocates its
output, and makes one call into the compiled row kernels, which run without
the GIL.  float32 stays float32 and float64 stays float64; other real dtypes
are computed in float64.
"""

import numpy as np

from . import _softmax
from ._validation import (
    aligned_target,
    as_float_array,
    check_axis,
    check_binary_targets,
    check_flag,
    check_nll_args,
    check_out,
    check_partner,
    check_reduction,
    check_sample_weight,
    check_scale_factors,
    check_where,
    rescale_weights,
    rows_view,
)

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "local_gradient",
    "nll_loss_and_gradient",
    "softmax_backward",
    "log_softmax_backward",
    "sigmoid_binary_cross_entropy",
    "log_sigmoid",
]


def _rowwise(kernel, z, axis, out, where=None, masked=None):
    """Apply a row kernel over `axis` of `z`, into `out` or a new array
    (with a mask: the masked kernel `masked`, see check_where)."""
    given = z
    z = as_float_array(z, "z")
    axes = check_axis(axis, z.ndim)
    mask = check_where(where, z.shape)
    if out is not None:
        # (the input as given too: an unaligned one was copied by as_float_array;
        # and the mask, which the kernel reads while it writes out)
        check_out(out, z.shape, z.dtype, (z, given, mask))
    if mask is not None:
        mask2 = _row_operand(mask, z.shape, axes).view(np.uint8)
        kernel = lambda a, o: masked(a, mask2, o)  # noqa: E731
    z2, moved_shape, perm = rows_view(z, axes)
    if perm is None:
        # class axes are trailing: write straight into the result
        res = aligned_target(out, z.shape, z.dtype)
        kernel(z2, res.reshape(z2.shape))
        if out is not None and res is not out:
            out[...] = res
            return out
        return res
    o2 = np.empty(z2.shape, dtype=z.dtype)
    kernel(z2, o2)
    back = o2.reshape(moved_shape).transpose(np.argsort(perm))
    if out is None:
        return np.ascontiguousarray(back)
    out[...] = back
    return out


def softmax(z, axis=-1, *, where=None, out=None):
    r"""Softmax over `axis`: probabilities that are positive and sum to one.

    .. math::

        p_j = \frac{\exp(z_j - r)}{\sum_k \exp(z_k - r)}, \qquad r = \max_k z_k

    Subtracting the row maximum `r` keeps every exponent at or below zero, so
    nothing overflows, whatever the scale of the logits.

    Parameters
    ----------
    z : array_like
        Logits.  float32 stays float32, float64 stays float64; integers and
        other real dtypes are computed in float64.
    axis : int, tuple of ints or None, default -1
        The class axis (or axes, taken together).  ``None`` means all axes.
        Unlike ``scipy.special.softmax`` the default is the last axis.
    where : array_like of bool, optional
        Mask broadcastable to `z`'s shape: only the entries where it is True
        take part, and the others get probability exactly 0.  A masked
        entry's value is never used (a NaN or ``inf`` under the mask changes
        nothing).  A slice with no entry left gives zeros, not NaN (see
        Notes).  Anything but a boolean array is a ``TypeError``.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.  It
        may be `z` itself (in place).

    Returns
    -------
    ndarray
        Same shape as `z`.

    Notes
    -----
    Entries equal to ``-inf`` are masked: their probability is exactly 0.
    A slice holding a NaN or a ``+inf``, or only ``-inf`` entries, has no
    meaningful softmax and becomes all NaN (as in PyTorch); other slices are
    not affected.

    With `where`, each slice is the softmax of its kept entries: the same
    result, to rounding, as the softmax of those entries alone (the rules
    above apply to them), with 0 at the masked ones.  A slice with every
    entry masked gives all zeros rather than NaN: a fully padded query in
    attention, or a state with no legal action in reinforcement learning,
    contributes nothing instead of poisoning a sum.  (PyTorch's softmax
    of ``z.masked_fill(~mask, -inf)`` gives NaN there.)  A mask that is not
    of `z`'s shape, or (with `axis` not the trailing axes) not laid out like
    the slices, is copied once as ``n m`` bytes, except a mask shared by
    every slice, which is read as one slice.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import softmax
    >>> softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([0.09  , 0.2447, 0.6652])
    >>> softmax(np.array([[1000.0, 1000.0], [0.0, -np.inf]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    >>> softmax(np.array([1, 2], dtype=np.float32)).dtype
    dtype('float32')
    >>> z = np.array([[1.0, 1.0, np.nan], [2.0, 3.0, 4.0]])
    >>> softmax(z, where=np.array([[True, True, False], [False, False, False]]))
    array([[0.5, 0.5, 0. ],
           [0. , 0. , 0. ]])
    """
    if out is None and axis == -1 and where is None:
        # a plain C-contiguous float batch, class axis last: checked and run
        # in compiled code (None: anything else, which the general path takes)
        res = _softmax.softmax_fast(z)
        if res is not None:
            return res
    return _rowwise(_softmax.softmax_rows, z, axis, out, where, _softmax.softmax_masked_rows)


def log_softmax(z, axis=-1, *, where=None, out=None):
    r"""Logarithm of the softmax over `axis`, computed without taking a log of a probability.

    .. math::

        \log p_j = (z_j - r) - \log \sum_k \exp(z_k - r), \qquad r = \max_k z_k

    The grouping matters: ``z_j - (r + log s)`` would lose every digit when
    ``|r|`` is huge.  Where a probability underflows to 0 its logarithm is
    still finite and exact.

    Parameters
    ----------
    z : array_like
        Logits (see `softmax` for dtypes).
    axis : int, tuple of ints or None, default -1
        The class axis or axes; ``None`` means all axes.
    where : array_like of bool, optional
        Mask broadcastable to `z`'s shape: only the entries where it is True
        take part; the others get ``-inf``.  A masked entry's value is never
        used.  A slice with no entry left gives ``-inf``, not NaN (see
        Notes).  Anything but a boolean array is a ``TypeError``.
    out : ndarray, optional
        C-contiguous output of the result's shape and dtype; may be `z`.

    Returns
    -------
    ndarray
        Same shape as `z`.  ``-inf`` logits give ``-inf``; slices with a NaN,
        a ``+inf`` or only ``-inf`` entries give NaN.

    Notes
    -----
    With `where`, each slice is the log-softmax of its kept entries (to
    rounding, the result for those entries alone; the rules above apply
    to them), ``-inf`` at the masked ones: a masked entry's value, even a
    NaN or ``inf``, changes nothing.  A slice with every entry masked gives
    all ``-inf`` (log of probabilities 0), not NaN as PyTorch's
    ``log_softmax`` of ``z.masked_fill(~mask, -inf)`` does.  Masks are laid
    out as in `softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import log_softmax
    >>> log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    >>> log_softmax(np.array([0.0, -1000.0]))        # exp(-1000) underflows; its log does not
    array([    0., -1000.])
    >>> log_softmax(np.array([[0.0, 0.0, np.inf], [1.0, 2.0, 3.0]]),
    ...             where=np.array([[True, True, False], [False, False, False]]))
    array([[-0.69314718, -0.69314718,        -inf],
           [       -inf,        -inf,        -inf]])
    """
    if out is None and axis == -1 and where is None:
        res = _softmax.log_softmax_fast(z)
        if res is not None:
            return res
    return _rowwise(_softmax.log_softmax_rows, z, axis, out, where,
                    _softmax.log_softmax_masked_rows)


def logsumexp(z, axis=-1, *, b=None, keepdims=False, return_sign=False, where=None):
    r"""Log of the sum of exponentials over `axis`, without overflow; optionally scaled by `b`.

    .. math::

        \operatorname{logsumexp}(z) = \log \sum_k b_k \exp(z_k)
        = r + \log \sum_k b_k \exp(z_k - r), \qquad r = \max_{k:\, b_k \ne 0} z_k

    with :math:`b_k = 1` when `b` is not given.  The interface of
    ``scipy.special.logsumexp`` (but the default axis).

    Parameters
    ----------
    z : array_like
        Input (see `softmax` for dtypes).
    axis : int, tuple of ints or None, default -1
        Axis or axes to reduce; ``None`` reduces all.  Unlike
        ``scipy.special.logsumexp`` the default is the last axis.
    b : array_like, optional
        Scale factors of the exponentials, broadcastable against `z` (the
        result has the broadcast shape, as SciPy's); they may be negative
        (subtraction) or zero.  An entry with ``b == 0`` does not take part at
        all: its `z` is not read, so a NaN or ``inf`` there has no effect.
        Computed in the dtype of `z` (a float64 `b` with a float32 `z` is
        rounded to float32).
    keepdims : bool, default False
        Keep the reduced axes with length one.
    return_sign : bool, default False
        Also return the sign of the sum; then the first result is the log of
        its absolute value.  Without it, a negative sum gives NaN.
    where : array_like of bool, optional
        Mask broadcastable to the input's (broadcast) shape: only the entries
        where it is True are summed, as if their ``b`` were 0 elsewhere.  A
        masked entry's value is never used (a NaN or ``inf`` under the mask
        changes nothing).  A slice with no entry left gives ``-inf`` (sign
        0), the log of an empty sum.  Anything but a boolean array is a
        ``TypeError``.

    Returns
    -------
    res : ndarray or scalar
        A NumPy scalar when every axis is reduced without `keepdims`.
        Follows SciPy for special values: NaN if a slice holds a NaN (in `z`
        or `b`, where ``b != 0``) or infinite terms of both signs, ``+inf``
        for an infinite term, ``-inf`` when the sum is zero: an empty or all
        ``-inf`` slice, all ``b == 0``, or an exact cancellation.  A true value
        beyond the dtype's range is ``+inf``.  With `where` these rules apply
        to the kept entries, and a slice with none kept is ``-inf``.
    sign : ndarray or scalar
        Only with ``return_sign=True``: +1, -1, or 0 where the sum is zero
        (also for an empty slice, where SciPy says -1), NaN where `res` is.
        The dtype and shape of `res`.

    Notes
    -----
    Accuracy with `b`: the sum is taken in double with error-free
    (TwoSum) additions, so its only errors are those of the terms
    :math:`b_k e^{z_k - r}` themselves: none for the maximal entries
    (:math:`e^0 = 1`), else a few units of the dtype's eps of the term
    (the exp, and the rounding of :math:`z_k - r`).  With
    :math:`S = \sum_k b_k e^{z_k - r}` and
    :math:`\kappa = \sum_{k: z_k \ne r} |b_k| e^{z_k - r} (2 + |z_k - r|) / |S|`
    (the cancellation), the computed sum is within :math:`\epsilon \kappa |S|`
    of :math:`S`, and the result's absolute error is at most
    :math:`-\log(1 - \epsilon\kappa) + 2\epsilon (|r| + |\log|S||)`
    (:math:`\approx \epsilon \kappa`; tested against mpmath wherever
    :math:`\epsilon\kappa < 1/2`; beyond that the data do not determine the
    sign).  Only what the cancellation forces: with ``b >= 0`` (no
    cancellation) the tail below eps survives, as in the plain case.

    Where SciPy differs: an entry with ``b == 0`` never contributes (SciPy's
    own rule, which it breaks by returning NaN when the rest of the slice
    sums to zero or infinity); a finite `z` whose exponential overflows is
    not an infinite term; a float32 `z` stays float32 whatever the dtype
    of `b`; an empty slice has sign 0.  Complex input is not supported
    (``TypeError``).

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import logsumexp
    >>> float(logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    >>> logsumexp(np.array([[0.0, -np.inf], [-np.inf, -np.inf]]))
    array([  0., -inf])
    >>> res, sign = logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> float(res), float(sign)                    # log(e^2 - e), negative
    (1.5413248546129181, -1.0)
    >>> float(logsumexp([0.0, -40.0], b=[1.0, 1.0]))   # log1p(e^-40), not 0
    4.248354255291589e-18
    >>> logsumexp(np.array([[0.0, 0.0, np.nan], [1.0, 2.0, 3.0]]),
    ...           where=np.array([[True, True, False], [False, False, False]]))
    array([0.69314718,       -inf])
    """
    return _logsumexp(z, axis, b, check_where(where), keepdims,
                      check_flag(return_sign, "return_sign"), mask_name="where")


def _row_operand(x, shape, axes):
    """`x` (its shape broadcasts to `shape`) in `rows_view`'s layout for `axes`:
    (1, m) when every row sees the same values (the kernel reads it with a
    row stride of 0: class weights are not copied per row), else (n, m),
    materialized only when `x` is not already C-contiguous of `shape`."""
    nd = len(shape)
    xs = (1,) * (nd - x.ndim) + x.shape
    if all(xs[i] == 1 for i in range(nd) if i not in axes):
        one_row = tuple(shape[i] if i in axes else 1 for i in range(nd))
        return rows_view(np.broadcast_to(x.reshape(xs), one_row), axes)[0]
    return rows_view(np.broadcast_to(x, shape) if x.shape != shape else x, axes)[0]


def _logsumexp(z, axis, b, mask, keepdims, return_sign, mask_name="mask"):
    """`logsumexp`'s implementation, with an optional `mask` (for ``where=``):
    None, or a bool/uint8 array broadcastable to the result's broadcast
    input shape, nonzero where an entry takes part (a masked-out entry is
    never read; it counts as ``b == 0``).  Its shape is checked here, by
    check_where, whose messages name it `mask_name`.  Without `b`, a mask
    takes the masked kernel (the unmasked one's numerics); with `b`, the
    scaled kernel reads it."""
    z = as_float_array(z, "z")
    shape = z.shape
    if b is not None:
        b, shape = check_scale_factors(b, z)
        if shape != z.shape:            # b broadcasts z up, as in SciPy
            z = np.broadcast_to(z, shape)
    axes = check_axis(axis, len(shape))
    z2, moved_shape, _ = rows_view(z, axes)
    n, m = z2.shape
    res = np.empty(n, dtype=z.dtype)
    sign = np.empty(n, dtype=z.dtype) if return_sign else None
    mask2 = None
    if mask is not None:
        if isinstance(mask, np.ndarray) and mask.dtype == np.uint8:
            mask = mask.view(np.bool_)            # (internal callers: nonzero keeps)
        mask = check_where(mask, shape, name=mask_name)
        mask2 = _row_operand(mask, shape, axes).view(np.uint8)
    if b is None:
        if mask2 is None:
            _softmax.logsumexp_rows(z2, res)
        else:
            _softmax.logsumexp_masked_rows(z2, mask2, res)
        if return_sign:
            sign[...] = res > -np.inf
            sign[np.isnan(res)] = np.nan
    else:
        b2 = _row_operand(b, shape, axes)
        _softmax.logsumexp_b_rows(z2, b2, mask2, res, sign)
    if keepdims:
        out_shape = tuple(1 if i in axes else s for i, s in enumerate(shape))
    else:
        out_shape = moved_shape[:len(shape) - len(axes)]
    res = res.reshape(out_shape)
    res = res[()] if res.ndim == 0 else res
    if not return_sign:
        return res
    sign = sign.reshape(out_shape)
    return res, (sign[()] if sign.ndim == 0 else sign)


def _prepare_nll(logits, y, sample_weight, reduction, class_weight=None, ignore_index=None,
                 label_smoothing=0.0):
    z = as_float_array(logits, "logits")
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (n_samples, n_classes); got shape {z.shape}")
    return check_nll_args(np.ascontiguousarray(z), y, sample_weight, reduction, class_weight,
                          ignore_index, label_smoothing, rows_of="the logits")


def _plain_options(sample_weight, class_weight, ignore_index, label_smoothing, reduction):
    """Whether a call may take the compiled fast path: no weights, no PyTorch
    option, reduction "mean" or "sum" (checked without a validator: anything
    unusual goes to the validated path, which also raises the errors)."""
    return (sample_weight is None and class_weight is None and ignore_index is None
            and type(reduction) is str and (reduction == "mean" or reduction == "sum")
            and (type(label_smoothing) is float or type(label_smoothing) is int)
            and label_smoothing == 0)


def _nll_call(a, gmul, loss, grad):
    """The kernel call: (total, denominator), the denominator of "mean" only.

    The plain call (no PyTorch option) is cs_nll, whose denominator is n or
    sum(w); the others go to cs_nll_opts, which scales the gradient of the
    mean by its own denominator."""
    n = a.z.shape[0]
    mean = a.reduction == "mean"
    if not n:
        return 0.0, 0.0
    if a.plain:
        denom = (float(n) if a.w is None else float(a.w.sum())) if mean else 0.0
        total = _softmax.nll_rows(a.z, a.labels, a.w, gmul / denom if mean else gmul,
                                  loss, grad)
        return total, denom
    # (-1 never equals a label when nothing is ignored: they are all in [0, m))
    ignore = -1 if a.ignore is None else a.ignore
    return _softmax.nll_opts_rows(a.z, a.labels, a.probs, a.cw, a.w, ignore, a.eps, gmul,
                                  mean, loss, grad)


def _reduce(total, denom, reduction):
    """Scalar loss for 'sum' / 'mean' (NaN for a mean over a zero denominator --
    an empty batch, every row ignored -- as NumPy and PyTorch)."""
    if reduction == "sum":
        return float(total)
    return float(total) / denom if denom else float("nan")


def _grad_out(a, out, logits, y):
    """The buffer the kernel writes the gradient into, after checking `out`."""
    if out is not None:
        # the validated labels, targets and weights too: the kernel reads them
        # while it writes out (labels overwritten mid-call would index anywhere)
        check_out(out, a.z.shape, a.z.dtype, a.inputs(logits, y))
        if a.probs is not None and np.shares_memory(out, a.probs):
            raise ValueError("out shares memory with the class probabilities y, which the "
                             "kernel reads while it writes the gradient; pass another buffer")
    return aligned_target(out, a.z.shape, a.z.dtype)


def _copy_back(grad, out):
    if out is not None and grad is not out:
        out[...] = grad
        return out
    return grad


def nll_loss(logits, y, *, sample_weight=None, class_weight=None, ignore_index=None,
             label_smoothing=0.0, reduction="mean"):
    r"""Cross-entropy (negative log-likelihood) from logits, with PyTorch's options.

    Row :math:`i`'s loss, as ``torch.nn.functional.cross_entropy`` defines it:

    .. math::

        l_i = \sum_k a_{ik} \, (-\log p_{ik}), \qquad
        -\log p_{ik} = \log \sum_j \exp(z_{ij}) - z_{ik}

    with the target weights :math:`a_{ik}`, from class weights :math:`c_k`
    (1 when not given) and the smoothing :math:`\varepsilon`, for a label
    :math:`y_i`

    .. math::

        a_{ik} = (1 - \varepsilon)\, c_{y_i} [k = y_i] + \frac{\varepsilon}{m} c_k

    (so with no option :math:`l_i = \log \sum_j \exp(z_{ij}) - z_{iy_i}`),
    and for a row :math:`q_i` of class probabilities (a 2-D `y`)

    .. math::

        a_{ik} = c_k \left((1 - \varepsilon)\, q_{ik} + \frac{\varepsilon}{m}\right).

    A row whose label is `ignore_index` has :math:`l_i = 0`.  With sample
    weights :math:`w_i` (1 when not given) and PyTorch's denominator weight
    :math:`d_i` of a row (:math:`c_{y_i}` for a label, 0 for an ignored row,
    1 for class probabilities) the reductions are

    .. math::

        \text{none: } w_i l_i, \qquad \text{sum: } \sum_i w_i l_i, \qquad
        \text{mean: } \frac{\sum_i w_i l_i}{\sum_i w_i d_i}

    (with labels and no class weights, "mean" is :math:`\sum_i w_i l_i /
    \sum_i w_i` over the rows not ignored).  Each :math:`-\log p_{ik}` is
    :math:`(r_i - z_{ik}) + \log s_i` with the row maximum :math:`r_i` and
    :math:`s_i = \sum_j \exp(z_{ij} - r_i)`, so :math:`l_i` is a sum of
    non-negative terms: exact in relative terms, with no cancellation.

    Parameters
    ----------
    logits : array_like, shape (n_samples, n_classes)
    y : array_like, shape (n_samples,) or (n_samples, n_classes)
        Integer class labels in ``[0, n_classes)``, checked before any use;
        or class probabilities: a float array of the logits' shape, finite
        and non-negative (rows need not sum to 1, as in PyTorch), converted
        to the logits' dtype.  A 2-D integer `y` is a ``TypeError``.
    sample_weight : array_like, shape (n_samples,), optional
        Finite, non-negative weights multiplying each row's loss (PyTorch
        has no such argument).  Rows of weight 0 contribute exactly 0, even
        when their logits are not finite.
    class_weight : array_like, shape (n_classes,), optional
        PyTorch's ``weight``: finite, non-negative per-class weights,
        converted to the logits' dtype.
    ignore_index : int, optional
        Rows whose label equals it contribute exactly 0 (whatever their
        logits) and are not counted by "mean".  It may lie outside
        ``[0, n_classes)``; for labels only (PyTorch refuses it with class
        probabilities).  Default: nothing ignored (PyTorch's is -100).
    label_smoothing : float, default 0.0
        The smoothing :math:`\varepsilon` in ``[0, 1]``.
    reduction : {"mean", "sum", "none"}, default "mean"

    Returns
    -------
    float or ndarray
        A Python float for "mean" and "sum" (0.0 and NaN for an empty
        batch), an array of the logits' dtype for "none".  "mean" over a
        zero denominator (every row ignored, or every label of class weight
        0) is NaN, as in PyTorch.  A row whose softmax is NaN has NaN loss;
        a target class (:math:`a_{ik} > 0`) whose logit is ``-inf`` in an
        otherwise finite row makes it ``+inf``.

    Notes
    -----
    A class with :math:`a_{ik} = 0` (probability 0, or class weight 0)
    contributes 0 even where its logit is ``-inf``: such logits are masked,
    as in `softmax`.  PyTorch gives NaN there (``0 * -inf``).

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import nll_loss
    >>> z = np.array([[2.0, 0.0], [0.0, 0.0]])
    >>> round(nll_loss(z, [0, 1]), 6)          # (log(1 + e^-2) + log 2) / 2
    0.410038
    >>> nll_loss(z, [0, 1], reduction="none").round(6)
    array([0.126928, 0.693147])
    >>> nll_loss(z, [0, 1], sample_weight=[0.0, 1.0])
    0.6931471805599453
    >>> round(nll_loss(z, [0, 1], class_weight=[3.0, 1.0]), 6)   # (3 * 0.126928 + 0.693147) / 4
    0.268483
    >>> round(nll_loss(z, [0, -100], ignore_index=-100), 6)     # the second row is ignored
    0.126928
    >>> round(nll_loss(z, [[1.0, 0.0], [0.5, 0.5]]), 6)          # class probabilities
    0.410038
    >>> nll_loss(z, [0, 1], label_smoothing=0.5, reduction="none").round(6)
    array([0.626928, 0.693147])
    """
    if _plain_options(sample_weight, class_weight, ignore_index, label_smoothing, reduction):
        res = _softmax.nll_grad_fast(logits, y, reduction == "mean", False)
        if res is not None:
            return res
    a = _prepare_nll(logits, y, sample_weight, reduction, class_weight, ignore_index,
                     label_smoothing)
    loss = np.empty(a.z.shape[0], dtype=a.z.dtype) if a.reduction == "none" else None
    total, denom = _nll_call(a, 1.0, loss, None)
    return loss if a.reduction == "none" else _reduce(total, denom, a.reduction)


def local_gradient(logits, y, *, class_weight=None, ignore_index=None, label_smoothing=0.0,
                   out=None):
    r"""Local gradient of the softmax layer: each row's :math:`\partial l_i / \partial z_{ij}`.

    With the target weights :math:`a_{ik}` of `nll_loss` and
    :math:`A_i = \sum_k a_{ik}`:

    .. math::

        \frac{\partial l_i}{\partial z_{ij}} = A_i\, p_{ij} - a_{ij}

    which is :math:`p_{ij} - [j = y_i]` with no option.  The derivative of
    each row's own loss (no averaging, no sample weight); every row sums to
    zero, and a row whose label is `ignore_index` is zero.

    Parameters
    ----------
    logits : array_like, shape (n_samples, n_classes)
    y : array_like, shape (n_samples,) or (n_samples, n_classes)
        Class labels in ``[0, n_classes)`` or class probabilities, as in
        `nll_loss`.
    class_weight, ignore_index, label_smoothing
        As in `nll_loss`.
    out : ndarray, optional
        C-contiguous output of shape (n_samples, n_classes) and the logits'
        dtype; may be the logits array itself (not the class probabilities).

    Returns
    -------
    ndarray, shape (n_samples, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import local_gradient
    >>> local_gradient(np.array([[0.0, 0.0]]), [1])
    array([[ 0.5, -0.5]])
    >>> local_gradient(np.array([[0.0, 0.0]]), [1], label_smoothing=0.5)   # a = (0.25, 0.75)
    array([[ 0.25, -0.25]])
    >>> local_gradient(np.array([[0.0, 0.0]]), [[0.2, 0.8]], class_weight=[2.0, 1.0])
    array([[ 0.2, -0.2]])
    """
    a = _prepare_nll(logits, y, None, "none", class_weight, ignore_index, label_smoothing)
    grad = _grad_out(a, out, logits, y)
    _nll_call(a, 1.0, None, grad)
    return _copy_back(grad, out)


def nll_loss_and_gradient(logits, y, *, sample_weight=None, class_weight=None,
                          ignore_index=None, label_smoothing=0.0, reduction="mean", out=None):
    r"""The NLL loss and its gradient with respect to the logits, in one pass.

    The gradient is that of the returned quantity (for "none": of its
    sum): row :math:`i` is :math:`g_i (A_i p_i - a_i)`, with the target
    weights :math:`a_i` of `nll_loss`, :math:`A_i = \sum_k a_{ik}`, and
    :math:`g_i = w_i` for "none" and "sum", :math:`g_i = w_i / \sum_k w_k d_k`
    for "mean".  With no option that is :math:`g_i (p_i -
    \mathrm{onehot}(y_i))`.  Ignored rows and rows of weight 0 have a zero
    gradient; when the mean's denominator is 0 every other row's gradient
    is NaN, as in PyTorch.

    Parameters
    ----------
    logits, y, sample_weight, class_weight, ignore_index, label_smoothing, reduction
        As in `nll_loss`.
    out : ndarray, optional
        Buffer for the gradient (shape and dtype of the logits, C-contiguous);
        may be the logits array itself (not the class probabilities).

    Returns
    -------
    loss : float or ndarray
        As `nll_loss` returns it.
    grad : ndarray, shape (n_samples, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import nll_loss_and_gradient
    >>> loss, grad = nll_loss_and_gradient(np.array([[0.0, 0.0], [0.0, 0.0]]), [0, 1])
    >>> round(loss, 6)
    0.693147
    >>> grad
    array([[-0.25,  0.25],
           [ 0.25, -0.25]])
    >>> loss, grad = nll_loss_and_gradient(np.array([[0.0, 0.0], [0.0, 0.0]]), [0, 1],
    ...                                    class_weight=[3.0, 1.0], reduction="sum")
    >>> grad
    array([[-1.5,  1.5],
           [ 0.5, -0.5]])
    """
    if out is None and _plain_options(sample_weight, class_weight, ignore_index,
                                      label_smoothing, reduction):
        # plain logits and intp labels (range-checked there): compiled path
        res = _softmax.nll_grad_fast(logits, y, reduction == "mean")
        if res is not None:
            return res
    a = _prepare_nll(logits, y, sample_weight, reduction, class_weight, ignore_index,
                     label_smoothing)
    grad = _grad_out(a, out, logits, y)
    loss = np.empty(a.z.shape[0], dtype=a.z.dtype) if a.reduction == "none" else None
    total, denom = _nll_call(a, 1.0, loss, grad)
    grad = _copy_back(grad, out)
    return (loss if a.reduction == "none" else _reduce(total, denom, a.reduction)), grad


def _rowwise_pair(kernel, g, y, y_name, axis, out):
    """`kernel(g2, y2, out2)` over `axis` of two arrays of one shape: the
    layout rules of `_rowwise` (any axis or axes, `out` may be either input)."""
    given_g, given_y = g, y
    g = as_float_array(g, "grad_output")
    y = check_partner(y, g, y_name, "grad_output")
    axes = check_axis(axis, g.ndim)
    if out is not None:
        check_out(out, g.shape, g.dtype, (g, given_g, y, given_y))
    g2, moved_shape, perm = rows_view(g, axes)
    y2 = rows_view(y, axes)[0]
    if perm is None:
        res = aligned_target(out, g.shape, g.dtype)
        kernel(g2, y2, res.reshape(g2.shape))
        if out is not None and res is not out:
            out[...] = res
            return out
        return res
    o2 = np.empty(g2.shape, dtype=g.dtype)
    kernel(g2, y2, o2)
    back = o2.reshape(moved_shape).transpose(np.argsort(perm))
    if out is None:
        return np.ascontiguousarray(back)
    out[...] = back
    return out


def softmax_backward(grad_output, probs, axis=-1, *, out=None):
    r"""Gradient through a softmax: the vector-Jacobian product for `probs` = softmax(z).

    .. math::

        \frac{\partial L}{\partial z_j} = p_j \Bigl(g_j - \sum_k g_k p_k\Bigr),
        \qquad g = \frac{\partial L}{\partial p}

    What ``torch.autograd.grad(softmax(z), z, grad_output)`` computes, from the
    probabilities alone (the logits are not needed).

    Parameters
    ----------
    grad_output : array_like
        The gradient `g` of the loss with respect to the probabilities.
        float32 stays float32, float64 stays float64; other real dtypes are
        computed in float64.
    probs : array_like
        The softmax output `p` over `axis`; the shape and (after that
        conversion) dtype of `grad_output` (``ValueError`` / ``TypeError``
        otherwise: nothing is converted between float32 and float64).
    axis : int, tuple of ints or None, default -1
        The class axis (or axes) the softmax was taken over.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into; it
        may be `grad_output` or `probs` itself (in place).

    Returns
    -------
    ndarray
        Same shape as `grad_output`.

    Notes
    -----
    The dot product :math:`\sum_k g_k p_k` is accumulated in double and
    :math:`g_j - \sum_k g_k p_k` taken in double, so float32 results are
    rounded once.  NaN or infinite inputs give NaN where the arithmetic
    does.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import softmax_backward
    >>> softmax_backward(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    array([ 0.25, -0.25])
    >>> softmax_backward(np.ones(3), np.array([0.2, 0.3, 0.5]))   # a constant g: no gradient
    array([0., 0., 0.])
    """
    return _rowwise_pair(_softmax.softmax_backward_rows, grad_output, probs, "probs", axis, out)


def log_softmax_backward(grad_output, log_probs, axis=-1, *, out=None):
    r"""Gradient through a log-softmax: the vector-Jacobian product for `log_probs` = log_softmax(z).

    .. math::

        \frac{\partial L}{\partial z_j} = g_j - e^{\ell_j} \sum_k g_k,
        \qquad g = \frac{\partial L}{\partial \ell}

    What ``torch.autograd.grad(log_softmax(z), z, grad_output)`` computes,
    from the log-probabilities :math:`\ell` alone.

    Parameters
    ----------
    grad_output : array_like
        The gradient `g` of the loss with respect to the log-probabilities
        (dtypes as in `softmax_backward`).
    log_probs : array_like
        The log_softmax output over `axis`; the shape and dtype of
        `grad_output`.
    axis : int, tuple of ints or None, default -1
        The class axis (or axes) the log-softmax was taken over.
    out : ndarray, optional
        C-contiguous output of the result's shape and dtype; it may be
        `grad_output` or `log_probs` itself.

    Returns
    -------
    ndarray
        Same shape as `grad_output`.

    Notes
    -----
    :math:`\sum_k g_k` is accumulated in double, and :math:`e^{\ell_j}` is the
    kernels' exp.  A masked class (:math:`\ell_j = -\infty`) gets exactly
    :math:`g_j`, even when the sum is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import log_softmax_backward
    >>> log_softmax_backward(np.array([-1.0, 0.0]), np.log([0.25, 0.75]))   # NLL of class 0
    array([-0.75,  0.75])
    >>> log_softmax_backward(np.array([1.0, 2.0]), np.array([0.0, -np.inf]))
    array([-2.,  2.])
    """
    return _rowwise_pair(_softmax.log_softmax_backward_rows, grad_output, log_probs,
                         "log_probs", axis, out)


def sigmoid_binary_cross_entropy(logits, targets, *, sample_weight=None, reduction="mean",
                                 return_gradient=False):
    r"""Binary cross-entropy of independent sigmoid outputs, from logits (multilabel).

    Each of the :math:`m` outputs of a row is its own yes/no question with
    probability :math:`\sigma(z) = 1 / (1 + e^{-z})`.  Row :math:`i`'s loss is
    the sum over its labels

    .. math::

        l_i = \sum_j -t_{ij} \log \sigma(z_{ij}) - (1 - t_{ij}) \log(1 - \sigma(z_{ij}))
            = \sum_j \operatorname{softplus}(z_{ij}) - t_{ij} z_{ij}

    and, with sample weights :math:`w_i` (1 when not given), the reductions are

    .. math::

        \text{none: } w_i l_i, \qquad \text{sum: } \sum_i w_i l_i, \qquad
        \text{mean: } \frac{\sum_i w_i l_i}{\sum_i w_i}

    "mean" is over rows of the per-row sums: scikit-learn's
    ``MLPClassifier`` loss for multilabel targets.  PyTorch's
    ``binary_cross_entropy_with_logits(..., reduction="mean")`` averages over
    all :math:`n m` elements instead: it equals this "mean" divided by
    :math:`m`.  The gradient with respect to the logits is

    .. math::

        \frac{\partial l_i}{\partial z_{ij}} = \sigma(z_{ij}) - t_{ij}

    times :math:`w_i` ("none" -- the gradient of the sum of the returned
    array -- and "sum") or :math:`w_i / \sum_k w_k` ("mean").

    Parameters
    ----------
    logits : array_like, shape (n_samples, n_labels)
        float32 stays float32, float64 stays float64; integers and other
        real dtypes are computed in float64.
    targets : array_like, shape (n_samples, n_labels)
        Values in ``[0, 1]`` (soft targets allowed), or a bool / integer 0-1
        indicator array; converted to the logits' dtype.  NaN or a value
        outside ``[0, 1]`` is a ``ValueError``.
    sample_weight : array_like, shape (n_samples,), optional
        Finite, non-negative weights multiplying each row's loss.  Rows of
        weight 0 contribute exactly 0 (and a zero gradient), even when their
        logits are not finite.
    reduction : {"mean", "sum", "none"}, default "mean"
    return_gradient : bool, default False
        Also return the gradient of the returned loss with respect to
        `logits` (computed in the same pass).

    Returns
    -------
    loss : float or ndarray
        A Python float for "mean" and "sum" ("mean" of an empty batch is
        NaN), an array (n_samples,) of the logits' dtype for "none".
    grad : ndarray, shape (n_samples, n_labels)
        Only with ``return_gradient=True``; the logits' dtype.

    Notes
    -----
    Each term is computed as :math:`c z + \log(1 + e^{-|z|})` with
    :math:`c = 1 - t` for :math:`z \ge 0` and :math:`c = -t` for
    :math:`z < 0`: two non-negative terms, so the sum is accurate to a few
    ulp *relative*, for any logit.  For :math:`t = 1` that is
    :math:`\operatorname{softplus}(-z)`, which for :math:`z = 40` is
    :math:`4.2 \cdot 10^{-18}` to full precision (the naive
    :math:`-\log \sigma(z)` gives 0) and for :math:`z = 10^{308}` exactly 0;
    nothing overflows.  The gradient is formed as :math:`(1 - t) - p` or
    :math:`p - t` with :math:`p = e^{-|z|} / (1 + e^{-|z|})`, so it never
    cancels 1 against :math:`\sigma(z)` for 0/1 targets.  The float32
    kernels compute in float64 and round once.

    A NaN logit makes its row's loss and that entry's gradient NaN, and
    touches no other row.  Infinite logits follow the limits: :math:`z =
    +\infty` has loss 0 and gradient 0 for :math:`t = 1`, loss :math:`+\infty`
    and gradient :math:`w` (times the reduction's factor) for :math:`t = 0`.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import sigmoid_binary_cross_entropy
    >>> z = np.array([[0.0, 2.0], [-1.0, 40.0]])
    >>> t = np.array([[1, 0], [0, 1]])
    >>> sigmoid_binary_cross_entropy(z, t, reduction="none").round(6)
    array([2.820075, 0.313262])
    >>> round(sigmoid_binary_cross_entropy(z, t), 6)      # mean over rows
    1.566668
    >>> float(sigmoid_binary_cross_entropy([[40.0]], [[1.0]], reduction="sum"))
    4.248354255291589e-18
    >>> loss, grad = sigmoid_binary_cross_entropy(z, t, reduction="sum", return_gradient=True)
    >>> grad.round(6)
    array([[-0.5     ,  0.880797],
           [ 0.268941, -0.      ]])
    """
    z = as_float_array(logits, "logits")
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (n_samples, n_labels); got shape {z.shape}")
    z = np.ascontiguousarray(z)
    t = check_binary_targets(targets, z.shape, z.dtype)
    reduction = check_reduction(reduction)
    with_grad = check_flag(return_gradient, "return_gradient")
    n = z.shape[0]
    w = check_sample_weight(sample_weight, n, reduction)
    denom = 1.0
    if reduction == "mean":
        if w is not None and n:
            w, _ = rescale_weights(w)   # exact; keeps sum(w) and 1 / sum(w) in range
        denom = float(n) if w is None else float(w.sum())
    loss = np.empty(n, dtype=z.dtype) if reduction == "none" else None
    grad = np.empty(z.shape, dtype=z.dtype) if with_grad else None
    gmul = 1.0 / denom if denom else 1.0
    total = _softmax.bce_rows(z, t, w, gmul, loss, grad)
    if reduction == "none":
        res = loss
    elif reduction == "sum":
        res = float(total)
    else:
        res = float(total) / denom if denom else float("nan")
    return (res, grad) if with_grad else res


def log_sigmoid(z, *, out=None):
    r"""Elementwise log of the logistic sigmoid: :math:`\log \sigma(z) = -\operatorname{softplus}(-z)`.

    Computed as :math:`\min(z, 0) - \log(1 + e^{-|z|})`, two terms of one
    sign, so it is accurate to a few ulp *relative* for every `z`: it equals
    `z` for very negative `z` (no ``log(0)``) and :math:`-e^{-z}` for large
    `z` (where ``log(expit(z))`` gives 0).

    Parameters
    ----------
    z : array_like
        Any shape.  float32 stays float32, float64 stays float64; integers and
        other real dtypes are computed in float64.
    out : ndarray, optional
        C-contiguous array of `z`'s shape and result dtype to write into; it
        may be `z` itself (in place).

    Returns
    -------
    ndarray
        Same shape as `z`; ``log_sigmoid(-inf) = -inf``, ``log_sigmoid(inf) =
        0``, NaN stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import log_sigmoid
    >>> log_sigmoid(np.array([-1000.0, 0.0, 40.0]))
    array([-1.00000000e+03, -6.93147181e-01, -4.24835426e-18])
    >>> log_sigmoid(np.array([1.0], dtype=np.float32)).dtype
    dtype('float32')
    """
    given = z
    z = as_float_array(z, "z")
    if out is not None:
        check_out(out, z.shape, z.dtype, (z, given))
    src = np.ascontiguousarray(z).reshape(1, -1)
    dst = aligned_target(out, z.shape, z.dtype)
    _softmax.sigmoid_rows(src, dst.reshape(1, -1), True)
    return _copy_back(dst, out)
