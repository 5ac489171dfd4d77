"""scikit-learn's callback API (``sklearn.callback``) for the Classifier.

Owns every line that depends on whether the installed scikit-learn has the
callback API (scikit-learn >= 1.9): the mixin the estimator inherits (the
real ``CallbackSupportMixin``, which gives ``set_callbacks``, or an empty
stand-in on scikit-learn 1.6-1.8), the names of the attributes that API
keeps on an estimator (`STATE`: the all-or-nothing snapshot of a call
leaves them alone), and `FitTasks`, the small adapter through which the
epoch driver reports its tasks.  It imports nothing of cysoftmax.

The task tree is scikit-learn's: one root task per call of `fit` /
`partial_fit` ("fit", at most ``max_iter`` subtasks; 1 for `partial_fit`,
which trains one epoch per call), and each epoch a direct subtask of it
("epoch", a leaf).  So ``Classifier().set_callbacks(ProgressBar())`` shows
one bar advancing per epoch, and ``ScoringMonitor`` scores the model at
the end of every epoch (and once more at the end of the call, as
scikit-learn's own estimators do).  A callback whose ``on_fit_task_end``
returns True for an epoch ends training after that epoch, like the
plateau rule: no ConvergenceWarning, and with ``early_stopping`` the best
epoch's weights are kept.  In `partial_fit` a stop request changes nothing
(the call trains its one epoch anyway).

What the hooks receive: ``X`` as validated (the whole of it, also the rows
held out for early stopping), ``y`` as the original class labels, the
sample weights as ``metadata={"sample_weight": ...}`` when given, and, for
an epoch, a ``fitted_estimator`` that predicts with that epoch's weights
(a shallow copy of the estimator with its own copy of the weights, built
only when a hook asks for it).  The teardown of the callbacks is done by
``sklearn.base._fit_context`` (it wraps `fit` and `partial_fit` in
``callback_management_context`` on scikit-learn >= 1.9), even when the
call raises.
"""

import numpy as np

class _NoCallbackSupport:
    """Stand-in for ``sklearn.callback.CallbackSupportMixin`` (scikit-learn < 1.9).

    Empty on purpose: without the callback API there is no
    ``set_callbacks`` (so ``hasattr(est, "set_callbacks")`` stays true to
    what the estimator supports).
    """


# (one module-level name either way: a class defined twice, or inside a
# function, reads to stubtest as a class that is missing at run time)
try:
    from sklearn.callback import CallbackSupportMixin as _Mixin
    AVAILABLE = True
except ImportError:         # scikit-learn < 1.9: no callback API
    _Mixin = _NoCallbackSupport
    AVAILABLE = False
CallbackSupportMixin = _Mixin

__all__ = ["AVAILABLE", "CallbackSupportMixin", "FitTasks", "STATE"]

#: The attributes the callback API keeps on an estimator: the callbacks set
#: by `set_callbacks`, and during a call its root context, the callbacks to
#: tear down, a meta-estimator's context.  They are the API's, not the
#: fitted state: a failed call neither copies nor restores them (restoring
#: would drop the context the teardown needs, or swap the user's callbacks
#: for copies).
STATE = frozenset({"_skl_callbacks", "_callback_fit_ctx", "_skl_callbacks_to_teardown",
                   "_parent_callback_ctx"})


class FitTasks:
    """The fit task of one call and its epochs, reported to the callbacks.

    Created by the epoch driver before its first epoch (this begins the
    root task); then per epoch `epoch_begin` before it, `epoch_end` after
    its bookkeeping (True when a callback asks to stop), and `end` once
    the call's result is in place.  Without the callback API every method
    does nothing (and `epoch_end` returns False).

    Parameters
    ----------
    estimator : Classifier
    X : validated training data (ndarray, memmap or CSR)
    y : ndarray of int
        Encoded labels: indices into ``estimator.classes_``; or, multilabel,
        the (n, n_labels) float targets.
    sample_weight : ndarray or None
    max_epochs : int
        The most epochs this call can run (the root task's ``max_subtasks``).
    """

    def __init__(self, estimator, X, y, sample_weight, max_epochs):
        self._ctx = None
        if not hasattr(estimator, "_init_callback_context"):
            return
        self._est = estimator
        self._X = X
        self._y_idx = y
        self._labels = None
        self._metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self._epoch = None
        self._ctx = estimator._init_callback_context(task_name="fit",
                                                     max_subtasks=max_epochs)
        self._ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=self._y,
                                         metadata=self._metadata)

    def _y(self):
        """The labels as the user gave them (computed once, when a hook asks)."""
        if self._labels is None:
            y = self._y_idx
            # multilabel: the (n, n_labels) targets, as the 0/1 indicator given
            self._labels = ((y > 0.5).astype(np.int64) if y.ndim == 2
                            else self._est.classes_[y])
        return self._labels

    def _epoch_state(self):
        """What makes a copy of the estimator predict with this epoch's weights."""
        est = self._est
        state = {"coefs_": [c.copy() for c in est.coefs_],
                 "intercepts_": [b.copy() for b in est.intercepts_],
                 "loss_curve_": list(est.loss_curve_)}
        if getattr(est, "validation_scores_", None) is not None:
            state["validation_scores_"] = list(est.validation_scores_)
        return state

    def epoch_begin(self):
        """Open the next epoch's task."""
        if self._ctx is None:
            return
        self._epoch = self._ctx.subcontext(task_name="epoch")
        self._epoch.call_on_fit_task_begin(estimator=self._est, X=self._X, y=self._y,
                                           metadata=self._metadata)

    def epoch_end(self):
        """Close the epoch's task; True when a callback asks to stop training."""
        if self._ctx is None:
            return False
        return bool(self._epoch.call_on_fit_task_end(
            estimator=self._est, X=self._X, y=self._y, metadata=self._metadata,
            reconstruction_attributes=self._epoch_state))

    def end(self):
        """Close the fit task (the estimator is then the call's result)."""
        if self._ctx is None:
            return
        self._ctx.call_on_fit_task_end(estimator=self._est, X=self._X, y=self._y,
                                       metadata=self._metadata, reconstruction_attributes={})
