"""Public forward pass and backpropagation of a dense softmax network.

Both functions validate once (shapes chain, one float dtype, labels in
range, weights), make C-contiguous copies only where the layout needs it,
and call one compiled routine of ``_engine``: `forward` runs the network
block by block into the output, `backprop` uses a one-off ``Trainer`` (the
same code that trains the Classifier) in gradient-only mode.  The fused output layer, `linear_nll_loss_and_gradient` and `linear_nll_loss`,
checks its arrays with ``_validation.check_linear`` and its targets and options
with ``check_nll_args`` (the rules of `cysoftmax.nll_loss`), then runs
``_engine.linear_nll_rows``: logits block by block, never all of them.  The
checks themselves are ``_validation``'s (`check_network`, `check_labels`,
`check_sample_weight`, `rescale_weights`, ...): this module owns only the
public signatures and their documentation.
"""

import numbers

import numpy as np

from . import _engine, _softmax
from ._validation import (check_choice, check_labels, check_linear, check_network,
                          check_nll_args, check_sample_weight, rescale_weights)

__all__ = ["forward", "backprop", "linear_nll_loss", "linear_nll_loss_and_gradient"]

_ACTIVATIONS = tuple(_engine.ACTIVATIONS)      # the one table: names -> compiled codes


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
    activation : str, default="relu"
        Activation of the hidden layers: "relu", "identity", "logistic",
        "tanh", "leaky_relu" (slope 0.01), "gelu" (exact) or "silu".  The output layer is always softmax.

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
    activation = check_choice(activation, _ACTIVATIONS, "activation")
    X, coefs, intercepts = check_network(coefs, intercepts, X=X, min_classes=2)
    out = np.empty((X.shape[0], coefs[-1].shape[1]), dtype=X.dtype)
    return _engine.forward_into(X, coefs, intercepts, activation, out, "proba")


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
    activation : str, default="relu"
        Hidden-layer activation: "relu", "identity", "logistic", "tanh",
        "leaky_relu" (slope 0.01), "gelu" (exact) or "silu".
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
    activation = check_choice(activation, _ACTIVATIONS, "activation")
    X, coefs, intercepts = check_network(coefs, intercepts, X=X, min_classes=2)
    n = X.shape[0]
    m = coefs[-1].shape[1]
    if n == 0:
        raise ValueError("X has no rows: the mean loss is undefined")
    y = check_labels(y, n, m, rows_of="X")
    sample_weight = check_sample_weight(sample_weight, n, reduction="mean")
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number; got {alpha!r}")
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be finite and >= 0; got {alpha}")

    if sample_weight is not None:
        sample_weight, alpha = rescale_weights(sample_weight, alpha)

    trainer = _engine.Trainer(coefs, intercepts, n, activation, None, alpha)
    data_loss, sw = trainer.gradient(X, y, sample_weight)
    loss = data_loss / sw
    if alpha:
        loss += 0.5 * alpha * trainer.squared_norm() / sw
    # the trainer is dropped here; its gradient buffers belong to the caller now
    return float(loss), trainer.coef_grads, trainer.intercept_grads


def _check_chunk(chunk, n, m):
    """Rows per block: `chunk` (a positive int), or the default rule."""
    if chunk is None:
        return _engine.output_chunk_rows(n, m)
    if isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, numbers.Integral):
        raise TypeError(f"chunk must be a positive int (rows per block) or None; got {chunk!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 (rows per block); got {chunk}")
    return int(min(chunk, n))


def _linear_nll(A, W, b, y, sample_weight, class_weight, ignore_index, label_smoothing,
                reduction, chunk, gradient):
    A, W, w_trans, b = check_linear(A, W, b)
    n, d = A.shape
    m = W.shape[1]
    a = check_nll_args(None, y, sample_weight, reduction, class_weight, ignore_index,
                       label_smoothing, shape=(n, m), dtype=A.dtype, rows_of="A")
    chunk = _check_chunk(chunk, n, m)
    mean = a.reduction == "mean"
    ignore = -1 if a.ignore is None else a.ignore
    denom = 0.0
    if mean:
        if a.plain:
            denom = float(n) if a.w is None else float(a.w.sum())
        else:
            denom = _softmax.nll_denom(a.labels, a.cw, a.w, ignore, n, A.dtype == np.float32)
    # the gradient of a mean over a zero denominator is NaN, as in PyTorch
    gmul = (1.0 / denom if denom else float("nan")) if mean else 1.0
    loss = np.empty(n, A.dtype) if a.reduction == "none" else None
    dA = np.empty((n, d), A.dtype) if gradient else None
    dW = np.empty((d, m), A.dtype) if gradient else None
    db = np.empty(m, A.dtype) if gradient and b is not None else None
    total = _engine.linear_nll_rows(A, W, w_trans, b, a.labels, a.probs, a.cw, a.w, ignore,
                                    a.eps, a.plain, gmul, chunk, loss, dA, dW, db)
    if a.reduction == "none":
        res = loss
    elif a.reduction == "sum":
        res = float(total)
    else:
        res = float(total) / denom if denom else float("nan")
    return (res, dA, dW, db) if gradient else res


def linear_nll_loss_and_gradient(A, W, b, y, *, sample_weight=None, class_weight=None,
                                 ignore_index=None, label_smoothing=0.0, reduction="mean",
                                 chunk=None):
    r"""The cross-entropy of a dense output layer and its gradients, without its logits.

    For the logits :math:`Z = A W + b` of a linear layer, the loss is
    `nll_loss` of :math:`Z` (with the same targets, options and reduction),
    and the gradients follow from that of the logits, :math:`G =
    \partial 	ext{loss} / \partial Z` (`nll_loss_and_gradient`'s):

    .. math::

        dA = G W^	op, \qquad dW = A^	op G, \qquad db = 	extstyle\sum_i G_i

    computed block by block of `chunk` rows: a block's logits by one gemm,
    the fused loss and gradient in place, then its share of the three
    gradients by two more gemms.  The (n, m) logits and their gradient are
    never held: the workspace is one block (at most 64 MiB of float32 or
    128 MiB of float64 by default), where the unfused computation holds two
    (n, m) arrays (4096 rows of 128,000 float32 logits are 2 GiB each).

    Parameters
    ----------
    A : array_like of shape (n_samples, n_features)
        The layer's inputs (hidden activations).
    W : array_like of shape (n_features, n_classes)
        The layer's weights.  A C- or Fortran-ordered W (PyTorch's
        ``Linear.weight`` of shape (n_classes, n_features), transposed) is
        used as it is; another layout is copied once.
    b : array_like of shape (n_classes,) or None
        The bias; None for a layer without one.  A ``-inf`` entry masks its
        class (probability 0, zero gradient), as a ``-inf`` logit does.
    y : array_like
        Integer labels (n_samples,), or class probabilities
        (n_samples, n_classes), as `nll_loss` takes them.
    sample_weight, class_weight, ignore_index, label_smoothing, reduction
        As in `nll_loss` (PyTorch ``cross_entropy``'s definitions).
    chunk : int, optional
        Rows per block.  Default: as many as keep a block of logits at most
        2**24 entries (64 MiB float32, 128 MiB float64), rounded down to a
        multiple of 32, at least 128 (fewer
        make the products slow: 64 rows took 1.5x the unfused time), and at
        most ``n_samples``.  Larger blocks make the matrix products more
        efficient (each block is a pass over W and dW); smaller ones save
        memory.

    Returns
    -------
    loss : float or ndarray
        As `nll_loss` returns it (an (n_samples,) array for "none").
    dA : ndarray of shape (n_samples, n_features)
    dW : ndarray of shape (n_features, n_classes)
    db : ndarray of shape (n_classes,), or None when `b` is None
        Gradients of `loss` (for "none": of its sum), in the inputs' dtype.

    Notes
    -----
    A, W and b must all be float32 or all float64 (a ``TypeError`` names
    them otherwise); the computation stays in that dtype, with the losses
    and the bias gradient summed in double.  The results are those of
    ``nll_loss_and_gradient(A @ W + b, y, ...)`` followed by the three
    products, within the kernels' accuracy bounds on the computed logits:
    they differ from the unfused computation only in the rounding of the
    products (a block's logits are the same gemm) and in dW being summed
    block by block.  The matrix products run in BLAS (its threads); the
    loss kernel between them.

    A row that is skipped (sample weight 0, or an ignored label) adds 0 to
    the loss, dA and db.  dW is the product ``A^T G``: a NaN or inf in such
    a row of A still reaches dW through ``0 * NaN``, as it does in PyTorch's
    ``linear`` + ``cross_entropy``.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import linear_nll_loss_and_gradient, nll_loss_and_gradient
    >>> rng = np.random.default_rng(0)
    >>> A, W, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 5)), np.zeros(5)
    >>> y = np.array([0, 1, 2, 3, 4, 0])
    >>> loss, dA, dW, db = linear_nll_loss_and_gradient(A, W, b, y, chunk=4)
    >>> ref, G = nll_loss_and_gradient(A @ W + b, y)
    >>> bool(np.isclose(loss, ref)), bool(np.allclose(dW, A.T @ G)), dA.shape
    (True, True, (6, 4))
    """
    return _linear_nll(A, W, b, y, sample_weight, class_weight, ignore_index,
                       label_smoothing, reduction, chunk, True)


def linear_nll_loss(A, W, b, y, *, sample_weight=None, class_weight=None, ignore_index=None,
                    label_smoothing=0.0, reduction="mean", chunk=None):
    r"""The cross-entropy of a dense output layer, ``nll_loss(A @ W + b, y)``, block by block.

    The forward half of `linear_nll_loss_and_gradient`: one gemm per block
    of rows and the loss kernel, no gradient work, and never more than one
    block of logits in memory.  Parameters and result as there.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax import linear_nll_loss
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> W = np.zeros((2, 3))
    >>> round(linear_nll_loss(A, W, None, [0, 2]), 6)     # uniform over 3: log 3
    1.098612
    """
    return _linear_nll(A, W, b, y, sample_weight, class_weight, ignore_index,
                       label_smoothing, reduction, chunk, False)
