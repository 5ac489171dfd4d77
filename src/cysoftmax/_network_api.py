"""Public forward pass and backpropagation of a dense softmax network.

Both functions validate once (shapes chain, one float dtype, labels in
range, weights), make C-contiguous copies only where the layout needs it,
and call one compiled routine of ``_engine``: `forward` runs the network
block by block into the output, `backprop` uses a one-off ``Trainer`` (the
same code that trains the Classifier) in gradient-only mode.  The checks
themselves are ``_validation``'s (`check_network`, `check_labels`,
`check_sample_weight`, `rescale_weights`): this module owns only the two
public signatures and their documentation.
"""

import numbers

import numpy as np

from . import _engine
from ._validation import (check_choice, check_labels, check_network, check_sample_weight,
                          rescale_weights)

__all__ = ["forward", "backprop"]

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
