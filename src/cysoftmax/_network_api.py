"""Public forward pass and backpropagation of a dense softmax network.

Both functions validate once (shapes chain, one float dtype, labels in
range, weights), make C-contiguous copies only where the layout needs it,
and call one compiled routine of ``_dense``: `forward` runs the network
block by block into the output, `backprop` uses a one-off ``Workspace`` (the
same code that trains the Classifier) in gradient-only mode.
"""

import numbers

import numpy as np

from . import _dense
from ._validation import check_labels, check_sample_weight

__all__ = ["forward", "backprop"]

_ACTIVATIONS = tuple(_dense.ACTIVATIONS)      # the one table: names -> compiled codes


def _float_array(a, name, ndim):
    """`a` as an ndarray of float32/float64 with `ndim` dimensions (no int conversion)."""
    try:
        arr = np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be an array of float32 or float64; could not convert "
                        f"{type(a).__name__}: {exc}") from None
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be float32 or float64 (forward/backprop do not convert "
                        f"dtypes); got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {arr.shape}")
    return arr


def _check_activation(activation):
    if not isinstance(activation, str):
        raise TypeError(f"activation must be one of {_ACTIVATIONS}; got {activation!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}; got {activation!r}")
    return activation


def _check_network(X, coefs, intercepts):
    """Validate and return (X, coefs, intercepts) as C-contiguous arrays of one dtype."""
    for seq, name in ((coefs, "coefs"), (intercepts, "intercepts")):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{name} must be a list or tuple of arrays, one per layer; "
                            f"got {type(seq).__name__}")
    if len(coefs) == 0:
        raise ValueError("coefs must hold at least one layer; got an empty sequence")
    if len(coefs) != len(intercepts):
        raise ValueError(f"coefs has {len(coefs)} layers but intercepts has "
                         f"{len(intercepts)}; they must match")
    X = _float_array(X, "X", 2)
    coefs = [_float_array(W, f"coefs[{l}]", 2) for l, W in enumerate(coefs)]
    intercepts = [_float_array(b, f"intercepts[{l}]", 1) for l, b in enumerate(intercepts)]

    named = [("X", X)] + [(f"coefs[{l}]", W) for l, W in enumerate(coefs)] \
        + [(f"intercepts[{l}]", b) for l, b in enumerate(intercepts)]
    dtypes = {a.dtype for _, a in named}
    if len(dtypes) > 1:
        f32 = [n for n, a in named if a.dtype == np.float32]
        f64 = [n for n, a in named if a.dtype == np.float64]
        raise TypeError("X, coefs and intercepts must all be float32 or all float64; got "
                        f"float32 for {', '.join(f32)} and float64 for {', '.join(f64)}")

    width = X.shape[1]
    if width == 0:
        raise ValueError("X has no columns (features)")
    for l, (W, b) in enumerate(zip(coefs, intercepts)):
        prev = "X's width" if l == 0 else f"coefs[{l - 1}] columns"
        if W.shape[0] != width:
            raise ValueError(f"coefs[{l}] has {W.shape[0]} rows but {prev} is {width}; "
                             "consecutive layer shapes must chain")
        if W.shape[1] == 0:
            raise ValueError(f"coefs[{l}] has no columns: every layer needs at least one unit")
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"intercepts[{l}] has {b.shape[0]} entries but coefs[{l}] has "
                             f"{W.shape[1]} columns; they must match")
        width = W.shape[1]
    if width < 2:
        raise ValueError(f"the output layer (coefs[{len(coefs) - 1}]) has {width} unit; a "
                         "softmax output needs at least 2 classes")
    # C-contiguous and aligned: the C kernels load whole elements (UBSan
    # flags misaligned loads from, e.g., a view at an odd byte offset)
    X = np.require(X, requirements=["C", "A"])
    coefs = [np.require(W, requirements=["C", "A"]) for W in coefs]
    intercepts = [np.require(b, requirements=["C", "A"]) for b in intercepts]
    return X, coefs, intercepts


def forward(X, coefs, intercepts, *, activation="relu"):
    r"""Class probabilities of a dense network with a softmax output.

    .. math::

        A_0 = X, \quad A_{l+1} = f(A_l W_l + b_l) \ (\text{hidden}), \quad
        P = \operatorname{softmax}(A_{L-1} W_{L-1} + b_{L-1})

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Inputs, float32 or float64 (the same dtype as the parameters).
    coefs : list or tuple of array_like
        ``coefs[l]`` of shape ``(fan_in, fan_out)``, as scikit-learn's
        ``MLPClassifier.coefs_``.
    intercepts : list or tuple of array_like
        ``intercepts[l]`` of shape ``(fan_out,)``.
    activation : {"relu", "identity", "logistic", "tanh"}, default="relu"
        Activation of the hidden layers.  The output layer is always softmax.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
        Probabilities; each row sums to one.  Same dtype as the inputs.

    Notes
    -----
    Rows are processed in blocks of a few hundred: the matrix products go to
    BLAS (``scipy.linalg.cython_blas``), the bias and activation are applied
    in one pass after each product, and the softmax is the row kernel of
    `cysoftmax.softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import forward
    >>> X = np.array([[1.0, 2.0]])
    >>> coefs = [np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0]])]
    >>> intercepts = [np.zeros(2), np.zeros(2)]
    >>> forward(X, coefs, intercepts).round(4)       # softmax([1, 2])
    array([[0.2689, 0.7311]])
    """
    activation = _check_activation(activation)
    X, coefs, intercepts = _check_network(X, coefs, intercepts)
    out = np.empty((X.shape[0], coefs[-1].shape[1]), dtype=X.dtype)
    return _dense.forward_into(X, coefs, intercepts, activation, out, "proba")


def backprop(X, y, coefs, intercepts, *, activation="relu", alpha=0.0, sample_weight=None):
    r"""Loss of a dense softmax network and its gradients, by backpropagation.

    The loss is that of scikit-learn's ``MLPClassifier`` (with a softmax
    output also for two classes):

    .. math::

        \text{loss} = \frac{\sum_i w_i C_i}{\sum_i w_i}
            + \frac{\alpha}{2 \sum_i w_i} \sum_l \lVert W_l \rVert^2,
        \qquad C_i = \operatorname{logsumexp}(z_i) - z_{i, y_i}

    with ``w_i = 1`` without `sample_weight`.  Backward, with
    ``D = w_i / sum_w (p_i - onehot(y_i))`` at the output,
    ``dW_l = A_l^T D_l + alpha / sum_w W_l``, ``db_l = sum_rows D_l`` and
    ``D_{l-1} = (D_l W_l^T) * f'(Z_{l-1})``.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Inputs, float32 or float64 (the same dtype as the parameters).
    y : array_like of int, shape (n_samples,)
        Class labels in ``[0, n_classes)``.
    coefs, intercepts : list or tuple of array_like
        As in `forward`.
    activation : {"relu", "identity", "logistic", "tanh"}, default="relu"
        Hidden-layer activation.
    alpha : float, default=0.0
        L2 penalty strength (scikit-learn's ``alpha``).
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative weights, not all zero.

    Returns
    -------
    loss : float
    coef_grads : list of ndarray
        Gradients of the loss with respect to ``coefs`` (same shapes, dtype).
    intercept_grads : list of ndarray
        Gradients with respect to ``intercepts``.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import backprop
    >>> X = np.array([[0.5, -1.0], [2.0, 1.0]])
    >>> coefs = [np.zeros((2, 3)), np.zeros((3, 2))]
    >>> intercepts = [np.zeros(3), np.zeros(2)]
    >>> loss, dW, db = backprop(X, [0, 1], coefs, intercepts)
    >>> round(loss, 6)                                # log(2): uniform prediction
    0.693147
    >>> db[1]                                          # mean of p - onehot(y)
    array([0., 0.])
    """
    activation = _check_activation(activation)
    X, coefs, intercepts = _check_network(X, coefs, intercepts)
    n = X.shape[0]
    m = coefs[-1].shape[1]
    if n == 0:
        raise ValueError("X has no rows: the mean loss is undefined")
    try:
        y_arr = np.asarray(y)
    except Exception:   # ragged: check_labels raises a TypeError that names y
        y_arr = y
    if isinstance(y_arr, np.ndarray) and y_arr.ndim == 1 and y_arr.shape[0] != n:
        raise ValueError(f"y has {y_arr.shape[0]} labels but X has {n} rows")
    y = check_labels(y_arr, n, m)
    sample_weight = check_sample_weight(sample_weight, n, reduction="mean")
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number; got {alpha!r}")
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be finite and >= 0; got {alpha}")

    if sample_weight is not None:
        # Scaling every weight by 2**-e is exact and changes neither the
        # weighted mean nor alpha / sum_w when alpha is scaled alike: bring
        # the largest weight into [0.5, 1) so that sum_w and 1/sum_w neither
        # overflow (huge weights) nor underflow (subnormal ones).
        e = int(np.frexp(sample_weight.max())[1])
        alpha_scaled = float(np.ldexp(alpha, -e))
        if np.isfinite(alpha_scaled) and (alpha_scaled > 0 or alpha == 0):
            sample_weight = np.ldexp(sample_weight, -e)
            alpha = alpha_scaled

    ws = _dense.Workspace(coefs, intercepts, n, activation, None, alpha)
    data_loss, sw = ws.gradient(X, y, sample_weight)
    loss = data_loss / sw
    if alpha:
        loss += 0.5 * alpha * ws.squared_norm() / sw
    # the workspace is dropped here; its gradient buffers belong to the caller now
    return float(loss), ws.coef_grads, ws.intercept_grads
