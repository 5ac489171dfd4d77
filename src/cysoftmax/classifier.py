"""`Classifier`: a scikit-learn estimator trained by the cysoftmax engine.

Owns the estimator: its parameters and their constraints, `fit` /
`partial_fit` / `predict*`, the all-or-nothing snapshot of a call, the
epoch driver (shuffle, one compiled epoch, bookkeeping, Ctrl-C), pickling,
and the public `save` / `load` entry points.  The rest sits beside it, one
concern per module, each importing nothing above it:

* ``_inputs``       validation of X (memmap-aware), targets, label encoding,
                    the early-stopping hold-out;
* ``_schedule``     learning-rate schedules and the plateau rule;
* ``_trainer``      the compiled trainer (``_engine.Trainer``): cache,
                    optimizer-state carry-over, one epoch;
* ``_mmap``         a memory-mapped X read through its file;
* ``_persistence``  the ``.npz`` format and its bounded, checked reader.

The interface is MLPClassifier's (parameters, names, defaults, fitted
attributes, stopping rules).  Each epoch is one call into the trainer,
which gathers the shuffled mini-batches, runs forward, the fused softmax
loss+gradient, backprop and the optimizer step without the GIL and without
Python between batches.  Prediction is one call of ``_engine.forward_into``
(block by block, the softmax row kernels fused at the end).

The output layer is a softmax, also for two classes (two units;
`decision_function` still returns scikit-learn's binary log-odds there), or,
for a multilabel indicator y, one sigmoid per label with the binary
cross-entropy.  Dropout, label smoothing, the cosine schedule's per-batch
rate and the new activations all run inside the compiled epoch.

Design choices
--------------
* X is never copied for training when it is already a C-contiguous array
  of float32 or float64: the trainer gathers each mini-batch by index,
  and the early-stopping split is a split of row *indices* (the training
  rows are passed as the epoch's order; only the validation rows, a
  ``validation_fraction`` of X, are copied).
* An ``np.memmap`` X is read through its file, slice by slice, never
  through the mapping as a whole (``_mmap``): data larger than memory
  trains in a slice's worth of memory, to the same model.
* A call to `fit`/`partial_fit` is all or nothing: every attribute (and
  the optimizer state of a kept trainer) is snapshotted first and put
  back when the call raises, so a diverged or refused call leaves the
  estimator as it was (an unfitted one stays unfitted).
* Ctrl-C is honoured between epochs (an epoch is one compiled call that
  runs to its end): the epochs that finished are kept, with a warning.
"""

import copy
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import _check_sample_weight

from . import _callbacks, _inputs, _lbfgs, _persistence, _trainer
from ._api import nll_loss, sigmoid_binary_cross_entropy
from ._engine import ACTIVATIONS, forward_into
from ._validation import check_dropout
from ._schedule import LearningRateSchedule, plateau_update
from ._version import __version__

__all__ = ["Classifier", "load"]



class Classifier(_callbacks.CallbackSupportMixin, ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with a softmax output, trained by cysoftmax.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` (same
    parameters, defaults and fitted attributes, multilabel targets
    included), trained by mini-batch SGD (plain, momentum, Nesterov) or
    Adam in compiled code, or by full-batch L-BFGS (scipy's, over the
    compiled loss and gradient), with what MLPClassifier's users ask for and it
    does not offer: class weights, dropout, label smoothing, three more
    activations, a cosine schedule with warm-up for every solver, the
    validation loss and stopping on it, scikit-learn's callbacks.  float32
    input trains and predicts in float32; float64 in float64; other dtypes
    are converted to float64.  Sparse X (CSR or CSC) is densified one
    mini-batch at a time.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu"}, \
default="relu"
        Hidden-layer activation: ``leaky_relu`` has slope 0.01 below 0 (and
        at 0, as PyTorch), ``gelu`` is the exact ``z Phi(z)`` (computed
        through ``erfc``: exact also far in the negative tail), ``silu`` is
        ``z sigmoid(z)``.
    solver : {"sgd", "adam", "lbfgs"}, default="adam"
        "lbfgs": scipy's L-BFGS-B on the full-batch loss (``_lbfgs``);
        batch_size, shuffle, early_stopping and the learning-rate
        parameters do not apply, and `partial_fit` is not available (as
        MLPClassifier); nor do dropout (ignored, with a warning) and
        callbacks (an lbfgs fit reports no epochs).  float32 data trains in
        float32 (MLPClassifier converts it to float64 for lbfgs).  Every
        evaluation reads all of X: a sparse X is densified once, a memmap
        read whole, and the activations of all rows are held.
    alpha : float, default=0.0001
        L2 penalty: the loss adds ``alpha / (2 * sum(w)) * sum ||W||^2``.
    batch_size : int or "auto", default="auto"
        ``min(200, n_samples)`` for "auto"; clipped to ``[1, n_samples]``.
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, default="constant"
        ``"invscaling"`` and ``"adaptive"`` apply to ``solver="sgd"`` only,
        as in MLPClassifier.  ``"cosine"`` applies to sgd *and* adam (a
        deliberate difference: MLPClassifier schedules sgd only): the rate
        of each mini-batch is ``learning_rate_init * (1 + cos(pi u)) / 2``
        with ``u`` the fraction of the ``max_iter`` epochs after the warm-up
        that has passed, reaching 0 at the end of epoch ``max_iter``;
        computed in the compiled epoch for every mini-batch.  `fit` starts
        the schedule anew (also with ``warm_start``); `partial_fit` calls
        count as epochs of one schedule, continuing from call to call, and
        warn once it has ended (the rate is then 0).  The position in the
        schedule is kept by pickling, not by `save` (as the optimizer state:
        `partial_fit` on a loaded model starts a new schedule).
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs; for "lbfgs", L-BFGS iterations.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Weight initialization, shuffling and the early-stopping split.
    tol : float, default=1e-4
    verbose : bool, default=False
        One line per epoch: epoch, loss, validation score (with early
        stopping), seconds.
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out a ``validation_fraction`` of the data (stratified, except
        for multilabel targets) and stop when its accuracy (or, with
        ``early_stopping_metric="loss"``, its loss) stops improving; the best
        weights are restored.  `partial_fit` does not hold out data (as
        MLPClassifier).  The held-out rows keep their sample weights (times
        their class weights) in the score and the loss.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, defaults 0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Only for "lbfgs": the most loss function calls (a call is one
        full-batch loss and gradient).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into `sample_weight`: a dict
        ``{label: weight}`` (labels it leaves out weigh 1; a key that is not
        a class is an error), or ``"balanced"``: ``n_samples / (n_classes *
        count(label))``, computed by scikit-learn's ``compute_class_weight``
        as ``LogisticRegression`` calls it (with the sample weights, where the
        installed scikit-learn accepts them).  In `partial_fit`,
        ``"balanced"`` is computed from the first call's data (which must
        hold every class of ``classes``) and kept for the calls after it
        (after a `fit`, from the fit's data); to weigh by the whole target's
        frequencies, pass them as a dict.  Not for multilabel targets.
    dropout : float or array-like of float, default=0.0
        Inverted dropout on the hidden activations during training (one
        rate for every hidden layer, or one per hidden layer), in [0, 1):
        an activation is zeroed with that probability and the others are
        scaled by ``1 / (1 - rate)``; prediction never drops.  The masks are
        drawn in the compiled epoch from a counter-based generator keyed by
        one number per epoch from `random_state`, so a fit is bit-for-bit
        reproducible for a seed (whatever the thread count) and the backward
        pass recomputes a mask instead of storing it.  Rates are rounded to
        multiples of 2**-16 (the draws' resolution).  ``0`` trains exactly
        as without the parameter.
    label_smoothing : float, default=0.0
        In [0, 1): the softmax cross-entropy's targets are
        ``(1 - label_smoothing) onehot(y) + label_smoothing / n_classes``,
        PyTorch ``cross_entropy``'s definition (computed by the same kernel
        as :func:`cysoftmax.nll_loss`).  ``loss_`` and ``loss_curve_`` are
        the smoothed loss; ``validation_loss_curve_`` is not smoothed.  Not
        for multilabel targets.
    warmup_epochs : float, default=0
        With ``learning_rate="cosine"``: a linear warm-up over this many
        epochs (less than ``max_iter``) before the decay, from
        ``learning_rate_init / (warmup_epochs * n_batches)`` at the first
        mini-batch up to ``learning_rate_init`` (never above it).
    early_stopping_metric : {"accuracy", "loss"}, default="accuracy"
        With ``early_stopping``: stop when the held-out accuracy
        (MLPClassifier's rule) or the held-out loss (mean NLL, without
        label smoothing) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the weights of the best epoch by that
        metric are restored.  Both are recorded, in ``validation_scores_``
        and ``validation_loss_curve_``.

    Attributes
    ----------
    classes_, coefs_, intercepts_, n_features_in_, feature_names_in_,
    n_iter_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, t_, n_layers_, n_outputs_, out_activation_
        As in MLPClassifier; ``out_activation_`` is ``"softmax"`` (also for
        two classes: two units) or, for a multilabel y, ``"logistic"``
        (one sigmoid per label, the binary cross-entropy summed over
        labels; ``classes_`` is then ``arange(n_labels)``).
    validation_loss_curve_ : list of float or None
        With ``early_stopping``: the held-out mean NLL after each epoch.
    best_validation_loss_ : float or None
        Its minimum.

    Notes
    -----
    A call to `fit` or `partial_fit` that raises leaves the estimator as it
    was.  Training that diverges (a non-finite loss or weights) raises
    ``ValueError`` naming the likely cause.  Ctrl-C (``KeyboardInterrupt``)
    during training stops after the epoch in flight; the finished epochs
    are kept (with early stopping, the best of them), a warning says so and
    `fit` returns.

    X may be an ``np.memmap`` (e.g. ``np.load(path, mmap_mode="r")``) larger
    than memory: `fit` and `partial_fit` read it from its file one slice of
    mini-batches at a time, and give the model the in-memory array gives.

    Unpickling data from an untrusted source can run arbitrary code; to
    exchange models, use :meth:`save` and :func:`cysoftmax.load`, which read
    plain arrays only.

    Examples
    --------
    >>> from cysoftmax import Classifier
    >>> from cysoftmax.datasets import load_fashion_mnist_sample
    >>> X, y = load_fashion_mnist_sample("train")
    >>> clf = Classifier(hidden_layer_sizes=(64,), max_iter=5, random_state=0).fit(X, y)
    >>> Xt, yt = load_fashion_mnist_sample("test")
    >>> clf.score(Xt, yt) > 0.7
    True
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"sgd", "adam", "lbfgs"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "cosine"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "warmup_epochs": [Interval(Real, 0, None, closed="left")],
        "early_stopping_metric": [StrOptions({"accuracy", "loss"})],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        class_weight=None,
        dropout=0.0,
        label_smoothing=0.0,
        warmup_epochs=0,
        early_stopping_metric="accuracy",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.class_weight = class_weight
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.warmup_epochs = warmup_epochs
        self.early_stopping_metric = early_stopping_metric

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # class_weight and label_smoothing are for single-label targets (a
        # multilabel y is refused with them)
        tags.classifier_tags.multi_label = (self.class_weight is None
                                            and not self.label_smoothing)
        return tags

    # ------------------------------------------------------------- validation
    # ------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train on X, y (epochs of mini-batch gradient descent).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (any sortable hashable values: numbers, strings), or
            a multilabel indicator matrix of 0/1.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For invalid input, and when training diverges (non-finite loss
            or weights); the estimator is then left as it was before.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y; `classes` is required on the first call.

        The optimizer state (velocities, Adam's moments) carries over from
        call to call, and from a previous `fit`.  ``early_stopping`` does
        not apply (no data is held out), as in MLPClassifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array-like of shape (n_classes,), default=None
            All the classes that may appear; needed on the first call only
            (later, it must equal `classes_` if given).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def decision_function(self, X):
        """Logits: (n_samples, n_classes); for two classes the log-odds z_1 - z_0, (n_samples,).

        Multilabel: the (n_samples, n_labels) logits of the labels' sigmoids."""
        z = self._forward(_inputs.validate_X_predict(self, X), "logits")
        if z.shape[1] == 2 and not self._is_multilabel():
            return z[:, 1] - z[:, 0]
        return z

    def predict(self, X):
        """Most probable class of each sample; multilabel: the (n_samples, n_labels)
        indicator matrix of the labels whose probability is above 1/2."""
        z = self._forward(_inputs.validate_X_predict(self, X), "logits")
        if self._is_multilabel():
            return (z > 0).astype(np.int64)
        return self.classes_[np.argmax(z, axis=1)]

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), of the model's dtype; rows sum to 1.

        Multilabel: each label's probability (n_samples, n_labels), from its sigmoid."""
        return self._forward(_inputs.validate_X_predict(self, X), "proba")

    def predict_log_proba(self, X):
        """Log-probabilities from log-softmax (multilabel: log-sigmoid): finite where
        probabilities underflow to 0."""
        return self._forward(_inputs.validate_X_predict(self, X), "log_proba")

    def _is_multilabel(self):
        return getattr(self, "out_activation_", "softmax") == "logistic"

    # --------------------------------------------------------------- helpers
    def _forward(self, X, output, check=True):
        """Network output for validated X (C-contiguous ndarray or CSR of the model's dtype)."""
        out = np.empty((X.shape[0], self.coefs_[-1].shape[1]), dtype=self.coefs_[0].dtype)
        forward_into(X, self.coefs_, self.intercepts_, self.activation, out, output,
                     getattr(self, "out_activation_", "softmax"))
        if check and not np.isfinite(out).all():
            # finite weights and finite X can still overflow: never hand out
            # NaN (or infinite logits) silently
            raise ValueError(
                "The network's output is not finite for some rows of X: an overflow, most "
                "likely because X holds values far outside the range of the training data "
                "(scale X the same way as in training).")
        return out

    def _init_params(self, n_features, n_classes, dtype, rng, multilabel=False):
        """Glorot-uniform weights (MLPClassifier's, same draws) and fresh bookkeeping."""
        units = [n_features] + _inputs.hidden_sizes(self) + [n_classes]
        self.coefs_, self.intercepts_ = _trainer.init_weights(units, self.activation, dtype, rng)
        self.n_layers_ = len(units)
        self.n_outputs_ = n_classes
        self.out_activation_ = "logistic" if multilabel else "softmax"
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self._start_validation()
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.validation_loss_curve_ = None
            self.best_validation_loss_ = None
        self._best_coefs = self._best_intercepts = None
        self._schedule_epochs = 0
        self._trainer_cache = None
        self._trainer_key = None
        self._optimizer_state = None
        self._lr = float(self.learning_rate_init)

    def _start_validation(self):
        self.validation_scores_ = []
        self.best_validation_score_ = -np.inf
        self.validation_loss_curve_ = []
        self.best_validation_loss_ = np.inf

    def _run_epoch(self, trainer, X, y, sample_weight, order, batch_size, lr, schedule=None,
                   seed=0):
        """One epoch in compiled code (a seam: tests patch it to simulate Ctrl-C)."""
        return _trainer.run_epoch(trainer, X, y, sample_weight, order, batch_size, lr,
                                  schedule, seed)

    # ------------------------------------------------------- all-or-nothing
    def _snapshot(self):
        """Every attribute but the parameters, and the optimizer state of the trainer."""
        params = set(self.get_params(deep=False)) | _callbacks.STATE
        state = {k: v for k, v in self.__dict__.items() if k not in params}
        trainer = state.pop("_trainer_cache", None)
        state = copy.deepcopy(state)
        opt = copy.deepcopy(trainer.optimizer_state) if trainer is not None else None
        return state, trainer, opt

    def _restore(self, snapshot):
        state, trainer, opt = snapshot
        params = set(self.get_params(deep=False)) | _callbacks.STATE
        for k in [k for k in self.__dict__ if k not in params]:
            del self.__dict__[k]
        self.__dict__.update(state)
        if trainer is not None:
            self._trainer_cache = trainer
            try:
                trainer.bind(self.coefs_, self.intercepts_)
                trainer.set_optimizer_state(opt)
            except Exception:  # pragma: no cover - the trainer is only a cache
                self._trainer_cache = None

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        snapshot = self._snapshot()
        try:
            self._fit_unsafe(X, y, sample_weight, incremental, classes)
        except FloatingPointError as exc:
            self._restore(snapshot)
            raise ValueError(
                f"Training diverged: {exc}. The learning rate (learning_rate_init="
                f"{self.learning_rate_init}, solver={self.solver!r}) is probably too large, or "
                "the inputs are not scaled (standardize X, e.g. with StandardScaler, or divide "
                "pixel values by 255). The estimator was left as it was before this call."
            ) from None
        except BaseException:
            self._restore(snapshot)
            raise
        return self

    def _fit_unsafe(self, X, y, sample_weight, incremental, classes):
        hidden = _inputs.hidden_sizes(self)
        fitted = hasattr(self, "coefs_")
        if fitted and [c.shape[1] for c in self.coefs_[:-1]] != hidden:
            if incremental:
                raise ValueError(
                    f"hidden_layer_sizes is {hidden} but the fitted network has "
                    f"{[c.shape[1] for c in self.coefs_[:-1]]}; call fit to train a new network")
            fitted_arch = False
        else:
            fitted_arch = fitted
        multilabel = _inputs.check_target(y)
        if fitted and multilabel != self._is_multilabel():
            if incremental:
                raise ValueError(
                    f"y is {'multilabel' if multilabel else 'single-label'} but the fitted "
                    f"model is {'multilabel' if self._is_multilabel() else 'single-label'}; "
                    "call fit to train a new network")
            fitted_arch = False
        if incremental:
            if not fitted and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            reset = not fitted
        else:
            reset = not (self.warm_start and fitted_arch)
        if multilabel and self.label_smoothing:
            raise ValueError("label_smoothing applies to single-label targets (a softmax "
                             "output); y is multilabel (independent sigmoid outputs): set "
                             "label_smoothing=0")
        X, y = _inputs.validate_X_y(self, X, y, reset=reset, multilabel=multilabel)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
            sample_weight = np.require(sample_weight, requirements=["C", "A"])
        if multilabel:
            self._fit_multilabel(X, y, sample_weight, incremental, reset)
            return

        # labels -> 0..m-1 through classes_ (sorted, so searchsorted finds them)
        if incremental and fitted and classes is not None:
            given = unique_labels(classes)
            if not np.array_equal(given, self.classes_):
                raise ValueError(f"`classes={given!r}` is not the same as on the first call to "
                                 f"partial_fit, which was {self.classes_!r}")
        if reset:
            classes = unique_labels(classes) if incremental else unique_labels(y)
        else:
            classes = self.classes_
        if len(classes) < 2:
            raise ValueError(
                f"Classifier needs at least 2 classes to train; got {len(classes)} class: "
                f"{classes!r}")
        y_idx = _inputs.encode_labels(y, classes)
        if self.class_weight is not None:
            # "balanced" in partial_fit: the weights of the first call's data
            # (or of the fit before), kept for the calls after it
            kept = (getattr(self, "_balanced_weights", None)
                    if incremental and not reset else None)
            sample_weight, cw = _inputs.weigh_classes(self.class_weight, classes, y, y_idx,
                                                      sample_weight, kept)
            self._balanced_weights = cw if self.class_weight == "balanced" else None
        X = self._prepare(X, len(classes), reset, classes)
        self._train(X, y_idx, sample_weight, incremental, self._random_state)

    def _fit_multilabel(self, X, y, sample_weight, incremental, reset):
        """Multilabel y (an indicator matrix): one sigmoid output per label."""
        if self.class_weight is not None:
            raise ValueError("class_weight applies to single-label targets; y is multilabel "
                             "(weigh the samples with sample_weight instead)")
        if sp.issparse(y):
            y = y.toarray()
        y = np.asarray(y)
        # type_of_target calls any 2-D y of two integer values an indicator
        # ({0, 2}, {-1, 1}, ...): the binary cross-entropy needs 0 and 1
        if not np.isin(y, (0, 1)).all():
            raise ValueError(
                f"A multilabel y must be an indicator matrix of 0 and 1; it holds "
                f"{np.unique(y)[:5].tolist()}. Convert it (e.g. (y > 0).astype(int), or "
                "sklearn.preprocessing.MultiLabelBinarizer for label sets).")
        n_labels = y.shape[1]
        if not reset and n_labels != self.n_outputs_:
            raise ValueError(f"y has {n_labels} labels; the fitted model has {self.n_outputs_}")
        X = self._prepare(X, n_labels, reset, np.arange(n_labels), multilabel=True)
        targets = np.ascontiguousarray(y, dtype=X.dtype)
        self._train(X, targets, sample_weight, incremental, self._random_state)

    def _prepare(self, X, n_outputs, reset, classes, multilabel=False):
        """X in the model's dtype; a new network when `reset`, else the kept one
        made trainable in place; the random state of this call."""
        dtype = X.dtype
        if not reset and self.coefs_[0].dtype != dtype:
            X = X.astype(self.coefs_[0].dtype)      # the model's dtype wins
            dtype = X.dtype
        rng = check_random_state(self.random_state)
        if reset:
            self.classes_ = classes
            self._init_params(X.shape[1], n_outputs, dtype, rng, multilabel)
        else:
            # e.g. after unpickling from a read-only memmap, or into a Dask
            # frame at an odd address: the trainer updates the weights in
            # place and reads whole elements
            self.coefs_ = [_trainable(c) for c in self.coefs_]
            self.intercepts_ = [_trainable(b) for b in self.intercepts_]
        self._random_state = rng
        return X

    # -------------------------------------------------------------- training
    def _check_finite(self, loss=0.0):
        if not np.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss}")
        for c, b in zip(self.coefs_, self.intercepts_):
            if not (np.isfinite(c).all() and np.isfinite(b).all()):
                raise FloatingPointError("the weights became non-finite")

    def _check_solver(self):
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "lbfgs is not stochastic.")
        return True

    def _train_lbfgs(self, X, y, sample_weight):
        """Full-batch L-BFGS over all of X (see ``_lbfgs``); early stopping,
        batches and learning rates do not apply (as MLPClassifier), nor does
        dropout (checked, then ignored with a warning)."""
        if any(check_dropout(self.dropout, len(self.coefs_) - 1)):
            warnings.warn("dropout does not apply to solver='lbfgs' (a full-batch, "
                          "deterministic optimizer): it is ignored", UserWarning)
        _lbfgs.fit(self, X, y, sample_weight)
        self._check_finite(self.loss_)

    def _train(self, X, y, sample_weight, incremental, rng):
        if self.solver == "lbfgs":
            return self._train_lbfgs(X, y, sample_weight)
        early = self.early_stopping and not incremental
        n_all = X.shape[0]
        X_val = y_val = sw_val = None
        if early:
            if self.validation_scores_ is None:          # warm start after a fit without
                self._start_validation()
            elif getattr(self, "validation_loss_curve_", None) is None:   # pickled by 0.1
                self.validation_loss_curve_ = [np.nan] * len(self.validation_scores_)
                self.best_validation_loss_ = np.inf
            order, X_val, y_val, sw_val = _inputs.holdout(X, y, sample_weight,
                                                          self.validation_fraction, rng,
                                                          stratify=y.ndim == 1)
        else:
            order = np.arange(n_all, dtype=np.intp)
        n = order.shape[0]
        batch_size = _trainer.batch_size_for(self.batch_size, n)
        total_w = float(n) if sample_weight is None else float(sample_weight[order].sum())
        if not total_w > 0:
            raise ValueError("The sample weights of the training rows are all zero: "
                             "there is nothing to fit (sample weights must contain at least "
                             "one non-zero number).")
        trainer = _trainer.trainer_for(self, batch_size, incremental)
        if not incremental or not hasattr(self, "_lr"):
            self._lr = float(self.learning_rate_init)   # a new optimizer per fit
        # the scheduled rate (sgd's invscaling/adaptive) lives on in _lr
        schedule = LearningRateSchedule(self.solver, self.learning_rate,
                                        self.learning_rate_init, self.power_t, rate=self._lr)
        n_batches = -(-n // batch_size)
        cosine = self.learning_rate == "cosine"
        if cosine:
            if self.warmup_epochs >= self.max_iter:
                raise ValueError(f"warmup_epochs={self.warmup_epochs} must be less than "
                                 f"max_iter={self.max_iter}: the cosine schedule decays over "
                                 "the epochs after the warm-up")
            if not incremental or not hasattr(self, "_schedule_epochs"):
                self._schedule_epochs = 0          # a new fit restarts the schedule
            elif self._schedule_epochs >= self.max_iter:
                warnings.warn(
                    f"The cosine schedule ended after max_iter={self.max_iter} epochs: its "
                    "learning rate is 0, so this partial_fit call does not change the "
                    "weights. Raise max_iter, or call fit to start a new schedule.",
                    UserWarning)
        drop = any(check_dropout(self.dropout, len(self.coefs_) - 1))

        tasks = _callbacks.FitTasks(self, X, y, sample_weight, 1 if incremental else self.max_iter)
        pending = None   # the result of an epoch whose bookkeeping is not done yet
        # a Ctrl-C sets `interrupted`; it is acted on between two epochs, after
        # the bookkeeping of the one in flight (see _trainer.interrupts_deferred)
        try:
            # the thread policy: small steps run BLAS on 1 thread (README "Threads")
            with _trainer.training_threads(trainer.layer_sizes, batch_size), \
                    _trainer.interrupts_deferred() as interrupted:
                for _ in range(self.max_iter):
                    t0 = time.perf_counter()
                    if self.shuffle:
                        rng.shuffle(order)
                    tasks.epoch_begin()
                    pending = None
                    # one key per epoch for its dropout masks, drawn only with
                    # dropout (without it, the draws are those of 0.1); the
                    # epoch count is mixed in, since partial_fit re-seeds rng
                    # from random_state on every call (as MLPClassifier)
                    seed = ((int(rng.randint(np.iinfo(np.int64).max))
                             ^ (self.n_iter_ * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
                            if drop else 0)
                    plan = ((float(self.learning_rate_init), float(self._schedule_epochs),
                             float(self.warmup_epochs), float(self.max_iter), n_batches)
                            if cosine else None)
                    pending = self._run_epoch(trainer, X, y, sample_weight, order, batch_size,
                                              schedule.epoch_rate, plan, seed)
                    stop = self._end_epoch(pending, trainer, schedule, n, n_batches, total_w,
                                           t0, early, X_val, y_val, sw_val)
                    pending = None
                    stop = tasks.epoch_end() or stop     # a callback may stop training
                    if interrupted:
                        raise KeyboardInterrupt
                    if stop or incremental:
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                            "reached and the optimization hasn't converged yet.",
                            ConvergenceWarning)
        except KeyboardInterrupt:
            # the epoch in flight ran to its end inside one compiled call; if
            # its bookkeeping was cut short, finish it, so n_iter_ and the
            # weights tell the same story
            if pending is not None:
                self._end_epoch(pending, trainer, schedule, n, n_batches, total_w, None,
                                early, X_val, y_val, sw_val)
            self._check_finite()
            warnings.warn(
                f"Training interrupted by the user (KeyboardInterrupt) after {self.n_iter_} "
                "finished epochs; keeping the weights of "
                + ("the best of them (early stopping)." if early and self._best_coefs
                   is not None else "the last one."),
                UserWarning)
        if early and self._best_coefs is not None:
            # restore in place: the arrays stay the trainer's live weights
            for c, best in zip(self.coefs_, self._best_coefs):
                c[...] = best
            for b, best in zip(self.intercepts_, self._best_intercepts):
                b[...] = best
        tasks.end()

    def _end_epoch(self, data_loss, trainer, schedule, n, n_batches, total_w, t0, early,
                   X_val, y_val, sw_val):
        """Bookkeeping of a finished epoch; True when training should stop.

        Everything that can fail or take time (loss, finiteness, validation
        score) is computed before any attribute changes.
        """
        # the weighted mean loss plus the L2 penalty MLPClassifier adds per
        # batch, alpha/2 ||W||^2 / (batch weight) times the batch weight,
        # summed over the epoch's batches (with the end-of-epoch weights)
        loss = (data_loss + 0.5 * self.alpha * trainer.squared_norm() * n_batches) / total_w
        self._check_finite(loss)
        score = val_loss = None
        if early:
            score, val_loss = self._validate(X_val, y_val, sw_val)
        self.n_iter_ += 1
        self.t_ += n
        if self.learning_rate == "cosine":
            self._schedule_epochs = getattr(self, "_schedule_epochs", 0) + 1
        self.loss_ = float(loss)
        self.loss_curve_.append(self.loss_)
        self._update_no_improvement(score, val_loss)
        if self.verbose:
            msg = f"Epoch {self.n_iter_}, loss = {self.loss_:.8f}"
            if early:
                msg += f", validation score = {score:.6f}, validation loss = {val_loss:.6f}"
            if t0 is not None:
                msg += f", {time.perf_counter() - t0:.2f} s"
            print(msg)
        schedule.iteration_ends(self.t_)
        stop = False
        if self._no_improvement_count > self.n_iter_no_change:
            what = ("Training loss" if not early else "Validation loss"
                    if self.early_stopping_metric == "loss" else "Validation score")
            stop = schedule.trigger_stopping(
                f"{what} did not improve more than tol={self.tol:f} for "
                f"{self.n_iter_no_change} consecutive epochs.", self.verbose)
            if not stop:
                self._no_improvement_count = 0
        self._lr = schedule.rate
        return stop

    def _validate(self, X_val, y_val, sw_val):
        """(accuracy, mean NLL) of the held-out rows; the NLL without label
        smoothing (the held-out data's own likelihood), from the logits
        through the exact kernels."""
        z = self._forward(X_val, "logits", check=False)
        if not np.isfinite(z).all():
            raise FloatingPointError("the logits of the validation set overflowed")
        if self._is_multilabel():
            score = accuracy_score(y_val > 0.5, z > 0, sample_weight=sw_val)
            val_loss = sigmoid_binary_cross_entropy(z, y_val, sample_weight=sw_val)
        else:
            score = accuracy_score(y_val, np.argmax(z, axis=1), sample_weight=sw_val)
            val_loss = nll_loss(z, y_val, sample_weight=sw_val)
        return float(score), float(val_loss)

    def _update_no_improvement(self, score, val_loss=None):
        """The plateau counter and the best loss / score (and weights) after an epoch."""
        if score is not None:
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(val_loss)
            by_loss = self.early_stopping_metric == "loss"
            self._no_improvement_count, best = plateau_update(
                self._no_improvement_count,
                self.best_validation_loss_ if by_loss else self.best_validation_score_,
                val_loss if by_loss else score, self.tol, maximize=not by_loss)
            self.best_validation_score_ = max(self.best_validation_score_, score)
            self.best_validation_loss_ = min(self.best_validation_loss_, val_loss)
            if best:
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            loss = self.loss_curve_[-1]
            self._no_improvement_count, best = plateau_update(
                self._no_improvement_count,
                np.inf if self.best_loss_ is None else self.best_loss_, loss, self.tol,
                maximize=False)
            if best:
                self.best_loss_ = loss

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        # a copy: on Python >= 3.11 the base class hands out the live
        # __dict__, and the edits below must not touch the estimator itself
        state = dict(super().__getstate__())
        # the compiled trainer is a cache of buffers: keep only its
        # optimizer state (so partial_fit resumes where it was)
        trainer = state.pop("_trainer_cache", None)
        if trainer is not None:
            state["_optimizer_state"] = trainer.optimizer_state
        state.pop("_trainer_key", None)
        state["_cysoftmax_version"] = __version__
        return state

    def __setstate__(self, state):
        version = state.pop("_cysoftmax_version", None)
        if version is not None and version != __version__:
            warnings.warn(
                f"This Classifier was pickled with cysoftmax {version} and is loaded with "
                f"{__version__}; this might lead to breaking code or invalid results. "
                "Prefer Classifier.save / cysoftmax.load, which are stable across versions.",
                UserWarning)
        # a pickle of 0.1 has none of the later parameters: their defaults
        # (MLPClassifier's behaviour) are what it was trained with
        for name, default in _V2_DEFAULTS.items():
            state.setdefault(name, default)
        super().__setstate__(state)

    # ---------------------------------------------------------- save / load
    def save(self, path):
        """Write the parameters, classes and weights to an ``.npz`` file.

        Plain numeric and string arrays only (no pickle): read it back with
        :func:`cysoftmax.load`, which is safe for files from untrusted
        sources and keeps reading this format (``format=1``) in later
        versions.  The optimizer state is not saved (a loaded model predicts;
        `partial_fit` on it starts a fresh optimizer).  The format and its
        checks live in ``_persistence.py``.

        Parameters
        ----------
        path : str, path-like or writable binary file
        """
        _persistence.write(self, path)


# the parameters added after 0.1, at the defaults that train as 0.1 did
_V2_DEFAULTS = dict(max_fun=15000, class_weight=None, dropout=0.0, label_smoothing=0.0,
                    warmup_epochs=0, early_stopping_metric="accuracy")


def _trainable(a):
    """`a` itself when the trainer can update it in place, else a copy that it can."""
    ok = a.flags.writeable and a.flags.aligned and a.flags.c_contiguous
    return a if ok else np.array(a, order="C")


def load(path, *, max_bytes=_persistence.MAX_BYTES):
    """Read a Classifier written by :meth:`Classifier.save`.

    Only plain numeric and string arrays are read (never pickle), so a file
    from an untrusted source cannot run code; a file that is not a valid
    model (not an ``.npz``, missing keys, wrong shapes or dtypes, non-finite
    weights, invalid parameters) raises ``ValueError``.  Reads are bounded:
    each array's shape and dtype are checked from its header against the
    model's structure before any data is read, each is read as exactly its
    declared size (a member that decompresses to more or less is refused),
    and a file whose arrays declare more than `max_bytes` bytes in all is
    refused with a ``ValueError`` that names ``max_bytes`` -- so a small
    "decompression bomb" cannot make it allocate without bound.  A missing
    or unreadable file raises ``OSError`` as ``open`` does.  The format and
    its checks live in ``_persistence.py``.

    Parameters
    ----------
    path : str, path-like or readable binary file
    max_bytes : int, default 2**31 (2 GiB)
        The most bytes of array data (the sum of the declared sizes of the
        arrays read) to accept.  Peak memory is at most about twice this.
        Raise it to load a trusted model larger than 2 GiB.

    Returns
    -------
    Classifier
    """
    return _persistence.read(path, Classifier, max_bytes)
