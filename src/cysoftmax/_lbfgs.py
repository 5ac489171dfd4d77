"""Full-batch L-BFGS training (``solver="lbfgs"``): scipy's L-BFGS-B over one
flat parameter vector, with the loss and gradient from the compiled engine.

Owns the flat parameter layout (`flat_network`: coefs_ and intercepts_ as
views of one buffer, scikit-learn's order -- every coef, then every
intercept), the objective scipy minimizes (`Objective`: the weighted mean
NLL plus the L2 penalty, and its gradient, from one gradient-only
``_engine.Trainer`` over the whole of X), and one L-BFGS fit of an
estimator (`fit`: as ``MLPClassifier._fit_lbfgs``, with ``maxfun=max_fun``,
``maxiter=max_iter``, ``gtol=tol``).  It calls the engine and
``_validation``, never the estimator module.

Design choices
--------------
* The weights the trainer reads are the live weights: coefs_ and
  intercepts_ are views of one C-contiguous buffer of the model's dtype, so
  putting scipy's point into the network is one ``buf[...] = x``, and
  scipy's final point (``opt_res.x``) is written the same way.  The
  trainer allocates its own gradient buffers (it cannot be given them), so
  the gradient is packed, layer by layer, into one preallocated float64
  vector: the only Python loop (over layers, not samples).
* float32 stays float32: the forward and backward passes run in the
  model's dtype; only the optimizer's vector is float64 (scipy's L-BFGS-B
  works in double), cast on the way in and out.  MLPClassifier converts
  float32 data to float64 for lbfgs; we do not, so float32 trains in half
  the memory at the precision of float32 gradients (a float32 fit may stop
  a little earlier or later than a float64 one: its line search sees
  rounding of order 1e-7 relative).
* Sparse X is densified once (full-batch: every evaluation reads all rows),
  as MLPClassifier's lbfgs touches every row each evaluation too; a memory-
  mapped X is read through its mapping.  Ctrl-C during `fit` is not
  deferred (scipy's loop is Python): the estimator's all-or-nothing call
  puts everything back.
* Sample weights are rescaled by a power of two (``rescale_weights``),
  which changes neither the weighted mean nor ``alpha / sum(w)``.
* ``loss_curve_`` holds one loss per L-BFGS iteration of this fit (from
  scipy's callback), so its length is ``n_iter_``; ``loss_`` is
  ``opt_res.fun``, the loss at the returned point.  ``t_`` is untouched.
"""

import numpy as np
import scipy.optimize
from scipy import sparse as sp
from sklearn.utils.optimize import _check_optimize_result

from ._engine import Trainer
from ._validation import rescale_weights

__all__ = ["flat_network", "Objective", "fit"]


def flat_network(coefs, intercepts, dtype):
    """``(buf, coefs, intercepts)``: a copy of the network in one flat buffer
    of `dtype`, coefs then intercepts, and the layers as views of it."""
    sizes = [c.size for c in coefs] + [b.size for b in intercepts]
    buf = np.empty(sum(sizes), dtype=dtype)
    bounds = np.cumsum([0] + sizes)
    views = [buf[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    L = len(coefs)
    new_coefs = [v.reshape(c.shape) for v, c in zip(views[:L], coefs)]
    new_intercepts = [v.reshape(b.shape) for v, b in zip(views[L:], intercepts)]
    for dst, src in zip(new_coefs + new_intercepts, list(coefs) + list(intercepts)):
        dst[...] = src
    return buf, new_coefs, new_intercepts


class Objective:
    """The function scipy minimizes: ``x -> (loss, gradient)`` of the network.

    ``loss = sum_i w_i C_i / sum_w + alpha / (2 sum_w) * sum_l ||W_l||^2``
    (the mean NLL for unit weights), the gradient of it with respect to the
    flat vector ``[coef_0.ravel(), ..., intercept_0, ...]``.

    Parameters
    ----------
    buf : ndarray
        The flat parameter buffer (`flat_network`); `coefs` and `intercepts`
        are views of it.  Each call writes its point into it.
    coefs, intercepts : list of ndarray
        The layers, views of `buf`, of its dtype.
    activation : str
    alpha : float
    X : ndarray, C-contiguous, of `buf`'s dtype
    y : ndarray of int
        Labels 0..m-1, or, for a logistic output, the (n, m) targets of
        `buf`'s dtype.
    sample_weight : ndarray of float64 or None
        Checked (non-negative, finite, not all zero).
    label_smoothing : float
        Of the softmax cross-entropy (dropout never applies to a full-batch
        gradient).
    out_activation : {"softmax", "logistic"}
    """

    def __init__(self, buf, coefs, intercepts, activation, alpha, X, y, sample_weight=None,
                 label_smoothing=0.0, out_activation="softmax"):
        if sample_weight is not None:
            sample_weight, alpha = rescale_weights(sample_weight, alpha)
        self.buf = buf
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.alpha = float(alpha)
        self.trainer = Trainer(coefs, intercepts, X.shape[0], activation, None, self.alpha,
                               label_smoothing=label_smoothing, out_activation=out_activation)
        self.grad = np.empty(buf.shape[0], dtype=np.float64)
        # the trainer's gradient arrays (fixed for its life) and their slots in `grad`
        grads = self.trainer.coef_grads + self.trainer.intercept_grads
        bounds = np.cumsum([0] + [g.size for g in grads])
        self._slots = [(self.grad[a:b], g.reshape(-1))
                       for g, a, b in zip(grads, bounds[:-1], bounds[1:])]
        self.n_calls = 0

    def __call__(self, x):
        self.buf[...] = x                    # the network's weights are views of buf
        data_loss, sw = self.trainer.gradient(self.X, self.y, self.sample_weight)
        loss = data_loss / sw
        if self.alpha:
            loss += 0.5 * self.alpha * self.trainer.squared_norm() / sw
        for dst, g in self._slots:
            dst[...] = g
        self.n_calls += 1
        return float(loss), self.grad


def fit(est, X, y, sample_weight):
    """Train `est` (a Classifier, weights initialized) by L-BFGS on all of X.

    Sets coefs_/intercepts_ (views of one buffer, scipy's final point),
    n_iter_, loss_, loss_curve_ and best_loss_; warns ``ConvergenceWarning``
    when max_iter or max_fun stops it (scikit-learn's
    ``_check_optimize_result``).  A non-finite result is left for the
    caller to refuse.
    """
    if sample_weight is not None and not sample_weight.any():
        raise ValueError("The sample weights of the training rows are all zero: "
                         "there is nothing to fit (sample weights must contain at least "
                         "one non-zero number).")
    dtype = est.coefs_[0].dtype
    if sp.issparse(X):
        X = np.ascontiguousarray(X.toarray(), dtype=dtype)
    buf, coefs, intercepts = flat_network(est.coefs_, est.intercepts_, dtype)
    objective = Objective(buf, coefs, intercepts, est.activation, est.alpha, X, y,
                          sample_weight, float(est.label_smoothing), est.out_activation_)
    # from here the estimator's weights are the views the trainer reads; a
    # stochastic trainer kept from an earlier fit would point elsewhere
    est.coefs_, est.intercepts_ = coefs, intercepts
    est._trainer_cache = est._trainer_key = est._optimizer_state = None
    curve = []

    def callback(intermediate_result):
        curve.append(float(intermediate_result.fun))
        if est.verbose:
            print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}")

    opt_res = scipy.optimize.minimize(
        objective, buf.astype(np.float64), method="L-BFGS-B", jac=True,
        callback=callback,
        options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol})
    buf[...] = opt_res.x
    est.n_iter_ = _check_optimize_result("lbfgs", opt_res, est.max_iter)
    est.loss_ = float(opt_res.fun)
    est.loss_curve_ = curve
    est.best_loss_ = min(curve) if curve else est.loss_
    if est.verbose:
        print(f"L-BFGS: {opt_res.message} ({est.n_iter_} iterations, "
              f"{objective.n_calls} evaluations), loss = {est.loss_:.8f}")
    return opt_res
