"""`Classifier`: a scikit-learn estimator trained by the cysoftmax engine.

The estimator is MLPClassifier's interface (parameters, names, defaults,
fitted attributes, stopping rules) over cysoftmax's compiled training loop:
each epoch is one call into the workspace (``_dense.Workspace.run_epoch``),
which gathers the shuffled mini-batches, runs forward, the fused softmax
loss+gradient, backprop and the optimizer step without the GIL and without
Python between batches.  Prediction is one call of ``_dense.forward_into``
(block by block, the softmax row kernels fused at the end).  This module
does what is per epoch or per call: validation, label encoding, the
learning-rate schedule, early stopping, divergence checks and bookkeeping.

The output layer is always a softmax, also for two classes (two units);
`decision_function` still returns scikit-learn's binary log-odds there.

Design choices
--------------
* X is never copied for training when it is already a C-contiguous array
  of float32 or float64: the workspace gathers each mini-batch by index,
  and the early-stopping split is a split of row *indices* (the training
  rows are passed as the epoch's order; only the validation rows, a
  ``validation_fraction`` of X, are copied).
* An ``np.memmap`` X is read through its file, slice by slice, never
  through the mapping as a whole (see `_MappedFile`): data larger than
  memory trains in a slice's worth of memory, to the same model.
* A call to `fit`/`partial_fit` is all or nothing: every attribute (and
  the optimizer state of a kept workspace) is snapshotted first and put
  back when the call raises, so a diverged or refused call leaves the
  estimator as it was (an unfitted one stays unfitted).
* Ctrl-C is honoured between epochs (an epoch is one compiled call that
  runs to its end): the epochs that finished are kept, with a warning.
"""

import contextlib
import copy
import json
import mmap
import os
import time
import warnings
import zipfile
import zlib
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import (
    _assert_all_finite, _check_sample_weight, check_is_fitted, validate_data)

from ._version import __version__

__all__ = ["Classifier", "load"]

_SAVE_FORMAT = 1
_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


class Classifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with a softmax output, trained by cysoftmax.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` (same
    parameters, defaults and fitted attributes; the ``lbfgs`` solver and
    ``max_fun`` are not offered), trained by mini-batch SGD (plain, momentum,
    Nesterov) or Adam in compiled code.  float32 input trains and predicts in
    float32; float64 in float64; other dtypes are converted to float64.
    Sparse X (CSR or CSC) is densified one mini-batch at a time.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden-layer activation.
    solver : {"sgd", "adam"}, default="adam"
    alpha : float, default=0.0001
        L2 penalty: the loss adds ``alpha / (2 * sum(w)) * sum ||W||^2``.
    batch_size : int or "auto", default="auto"
        ``min(200, n_samples)`` for "auto"; clipped to ``[1, n_samples]``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule for ``solver="sgd"`` (as MLPClassifier).
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs.
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
        Hold out a stratified ``validation_fraction`` of the data and stop
        when its accuracy stops improving; the best weights are restored.
        `partial_fit` does not hold out data (as MLPClassifier).
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, defaults 0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10

    Attributes
    ----------
    classes_, coefs_, intercepts_, n_features_in_, feature_names_in_,
    n_iter_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, t_, n_layers_, n_outputs_, out_activation_
        As in MLPClassifier; ``out_activation_`` is always ``"softmax"``.

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
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
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

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = False
        return tags

    # ------------------------------------------------------------- validation
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if not isinstance(s, (Integral, np.integer)) or isinstance(s, bool) or s <= 0:
                raise ValueError(
                    f"hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    @staticmethod
    def _check_target(y):
        """Refuse targets that are not class labels of one output, before anything else."""
        # raise_unknown: object arrays of mixed/odd values get sklearn's
        # "Unknown label type" message; NaN/inf in a float y is reported too
        with np.errstate(invalid="ignore"):     # its float->int probe of a NaN y
            target = type_of_target(y, input_name="y", raise_unknown=True)
        if target in ("binary", "multiclass"):
            return
        if target.startswith("multilabel") or target.startswith("multiclass-multioutput"):
            raise ValueError(
                f"Classifier supports binary and multiclass targets only; y is {target!r} "
                "(one row of labels per sample). Multilabel / multi-output targets are not "
                "supported: train one Classifier per output, e.g. with "
                "sklearn.multioutput.MultiOutputClassifier.")
        raise ValueError(
            f"Unknown label type: {target!r}. Classifier needs class labels (binary or "
            "multiclass) in y; continuous targets are for a regressor.")

    def _validate_X_y(self, X, y, reset):
        self._check_target(y)
        # an np.memmap is checked for NaN/inf below, through its file: a check
        # through the mapping would make the whole file resident
        mapped = _MappedFile.applies(X)
        X, y = validate_data(
            self, X, y, reset=reset,
            accept_sparse=["csr", "csc"],
            dtype=_float_dtypes(X),
            order="C",
            ensure_min_samples=1,
            ensure_all_finite=not mapped,
        )
        if mapped:
            with _MappedFile.open(X) as f:
                if f is None:       # converted (dtype, order) into memory by validate_data
                    _assert_all_finite(X, input_name="X", estimator_name=type(self).__name__)
                else:
                    f.check_finite(type(self).__name__)
        if sp.issparse(X):
            X = _check_sparse_structure(X)
        return _aligned(X), y

    def _validate_X_predict(self, X):
        check_is_fitted(self, "coefs_")
        dtype = self.coefs_[0].dtype
        other = np.float64 if dtype == np.float32 else np.float32
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"],
                          dtype=[dtype, other], order="C")
        if sp.issparse(X):
            X = _check_sparse_structure(X)
        X = _aligned(X)
        if X.dtype != dtype:
            # values beyond float32's range become inf here; _forward then
            # refuses the non-finite output with a clear message
            with np.errstate(over="ignore"):
                X = X.astype(dtype)
        return X

    # ------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train on X, y (epochs of mini-batch gradient descent).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any sortable hashable values: numbers, strings).
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
        """Logits: (n_samples, n_classes); for two classes the log-odds z_1 - z_0, (n_samples,)."""
        z = self._forward(self._validate_X_predict(X), "logits")
        if z.shape[1] == 2:
            return z[:, 1] - z[:, 0]
        return z

    def predict(self, X):
        """Most probable class of each sample."""
        z = self._forward(self._validate_X_predict(X), "logits")
        return self.classes_[np.argmax(z, axis=1)]

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), of the model's dtype; rows sum to 1."""
        return self._forward(self._validate_X_predict(X), "proba")

    def predict_log_proba(self, X):
        """Log-probabilities from log-softmax: finite where probabilities underflow to 0."""
        return self._forward(self._validate_X_predict(X), "log_proba")

    # --------------------------------------------------------------- helpers
    def _forward(self, X, output, check=True):
        """Network output for validated X (C-contiguous ndarray or CSR of the model's dtype)."""
        from ._dense import forward_into
        out = np.empty((X.shape[0], self.coefs_[-1].shape[1]), dtype=self.coefs_[0].dtype)
        forward_into(X, self.coefs_, self.intercepts_, self.activation, out, output)
        if check and not np.isfinite(out).all():
            # finite weights and finite X can still overflow: never hand out
            # NaN (or infinite logits) silently
            raise ValueError(
                "The network's output is not finite for some rows of X: an overflow, most "
                "likely because X holds values far outside the range of the training data "
                "(scale X the same way as in training).")
        return out

    def _init_params(self, n_features, n_classes, dtype, rng):
        """Glorot-uniform weights (MLPClassifier's, same draws) and fresh bookkeeping."""
        units = [n_features] + self._hidden_sizes() + [n_classes]
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
        self.n_layers_ = len(units)
        self.n_outputs_ = n_classes
        self.out_activation_ = "softmax"
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._best_coefs = self._best_intercepts = None
        self._workspace = None
        self._workspace_key = None
        self._optimizer_state = None
        self._lr = float(self.learning_rate_init)

    def _workspace_config(self):
        # (learning_rate_init is not part of it: every epoch passes its rate)
        return dict(
            activation=self.activation,
            solver=self.solver,
            alpha=float(self.alpha),
            momentum=float(self.momentum),
            nesterovs_momentum=bool(self.nesterovs_momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
        )

    def _get_workspace(self, batch_size, incremental):
        """The workspace bound to coefs_/intercepts_ for this call.

        `fit` starts a fresh optimizer (as MLPClassifier); `partial_fit` keeps
        the optimizer state, also when the workspace must be rebuilt (a larger
        batch, changed hyper-parameters, or after unpickling).
        """
        from ._dense import Workspace
        config = self._workspace_config()
        ws = getattr(self, "_workspace", None)
        if (incremental and ws is not None and ws.max_batch >= batch_size
                and getattr(self, "_workspace_key", None) == config):
            ws.bind(self.coefs_, self.intercepts_)
            return ws
        carry = None
        if incremental:
            carry = ws.optimizer_state if ws is not None else getattr(self, "_optimizer_state", None)
        new = Workspace(self.coefs_, self.intercepts_, batch_size,
                        learning_rate_init=float(self.learning_rate_init), **config)
        if carry and _same_form(carry, new.optimizer_state):
            new.set_optimizer_state(carry)
        self._workspace = new
        self._workspace_key = config
        self._optimizer_state = None
        return new

    def _run_epoch(self, ws, X, y, sample_weight, order, batch_size, lr):
        """One epoch in compiled code (a seam: tests patch it to simulate Ctrl-C)."""
        with _MappedFile.open(X) as f:      # X on a memory-mapped file: read slice by slice
            if f is not None:
                return f.run_epoch(ws, y, sample_weight, order, batch_size, lr)
        return ws.run_epoch(X, y, sample_weight, order, batch_size, lr)

    # ------------------------------------------------------- all-or-nothing
    def _snapshot(self):
        """Every attribute but the parameters, and the optimizer state of the workspace."""
        params = set(self.get_params(deep=False))
        state = {k: v for k, v in self.__dict__.items() if k not in params}
        ws = state.pop("_workspace", None)
        state = copy.deepcopy(state)
        opt = copy.deepcopy(ws.optimizer_state) if ws is not None else None
        return state, ws, opt

    def _restore(self, snapshot):
        state, ws, opt = snapshot
        params = set(self.get_params(deep=False))
        for k in [k for k in self.__dict__ if k not in params]:
            del self.__dict__[k]
        self.__dict__.update(state)
        if ws is not None:
            self._workspace = ws
            try:
                ws.bind(self.coefs_, self.intercepts_)
                ws.set_optimizer_state(opt)
            except Exception:  # pragma: no cover - the workspace is only a cache
                self._workspace = None

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
        hidden = self._hidden_sizes()
        fitted = hasattr(self, "coefs_")
        if fitted and [c.shape[1] for c in self.coefs_[:-1]] != hidden:
            if incremental:
                raise ValueError(
                    f"hidden_layer_sizes is {hidden} but the fitted network has "
                    f"{[c.shape[1] for c in self.coefs_[:-1]]}; call fit to train a new network")
            fitted_arch = False
        else:
            fitted_arch = fitted
        if incremental:
            if not fitted and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            reset = not fitted
        else:
            reset = not (self.warm_start and fitted_arch)
        X, y = self._validate_X_y(X, y, reset=reset)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
            sample_weight = np.require(sample_weight, requirements=["C", "A"])

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
        y_idx = _encode(y, classes)

        dtype = X.dtype
        if not reset and self.coefs_[0].dtype != dtype:
            X = X.astype(self.coefs_[0].dtype)      # the model's dtype wins
            dtype = X.dtype
        rng = check_random_state(self.random_state)
        if reset:
            self.classes_ = classes
            self._init_params(X.shape[1], len(classes), dtype, rng)
        else:
            # e.g. after unpickling from a read-only memmap: the workspace
            # updates the weights in place
            self.coefs_ = [c if c.flags.writeable else c.copy() for c in self.coefs_]
            self.intercepts_ = [b if b.flags.writeable else b.copy() for b in self.intercepts_]
        self._random_state = rng
        self._train(X, y_idx, sample_weight, incremental, rng)

    # -------------------------------------------------------------- training
    def _check_finite(self, loss=0.0):
        if not np.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss}")
        for c, b in zip(self.coefs_, self.intercepts_):
            if not (np.isfinite(c).all() and np.isfinite(b).all()):
                raise FloatingPointError("the weights became non-finite")

    def _train(self, X, y, sample_weight, incremental, rng):
        early = self.early_stopping and not incremental
        n_all = X.shape[0]
        X_val = y_val = sw_val = None
        if early:
            # split row indices, not X: the same rows as splitting X (the split
            # depends on n and y only), without copying the training part
            if self.validation_scores_ is None:          # warm start after a fit without
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            try:
                train_idx, val_idx = train_test_split(
                    np.arange(n_all, dtype=np.intp), random_state=rng,
                    test_size=self.validation_fraction, stratify=y)
            except ValueError as exc:
                raise ValueError(
                    "early_stopping could not hold out a stratified validation set "
                    f"(validation_fraction={self.validation_fraction}, {n_all} samples): {exc}. "
                    "Increase 'validation_fraction' or the size of your dataset, or set "
                    "early_stopping=False.") from None
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            with _MappedFile.open(X) as f:
                X_val = X[val_idx] if f is None else f.take(val_idx)
            y_val = y[val_idx]
            sw_val = None if sample_weight is None else sample_weight[val_idx]
            order = np.ascontiguousarray(train_idx, dtype=np.intp)
        else:
            order = np.arange(n_all, dtype=np.intp)
        n = order.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        total_w = float(n) if sample_weight is None else float(sample_weight[order].sum())
        if not total_w > 0:
            raise ValueError("The sample weights of the training rows are all zero: "
                             "there is nothing to fit (sample weights must contain at least "
                             "one non-zero number).")
        ws = self._get_workspace(batch_size, incremental)
        if not incremental or not hasattr(self, "_lr"):
            self._lr = float(self.learning_rate_init)   # a new optimizer per fit
        n_batches = -(-n // batch_size)

        pending = None   # the result of an epoch whose bookkeeping is not done yet
        try:
            for _ in range(self.max_iter):
                t0 = time.perf_counter()
                if self.shuffle:
                    rng.shuffle(order)
                # the schedules (sgd's invscaling/adaptive) keep their rate in _lr;
                # otherwise the current learning_rate_init (also after set_params
                # between partial_fit calls)
                lr = (self._lr if self.solver == "sgd" and self.learning_rate != "constant"
                      else float(self.learning_rate_init))
                pending = None
                pending = self._run_epoch(ws, X, y, sample_weight, order, batch_size, lr)
                stop = self._end_epoch(pending, ws, n, n_batches, total_w, t0,
                                       early, X_val, y_val, sw_val)
                pending = None
                if stop or incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:
            # the epoch in flight ran to its end inside one compiled call; if
            # its bookkeeping was cut short, finish it, so n_iter_ and the
            # weights tell the same story
            if pending is not None:
                self._end_epoch(pending, ws, n, n_batches, total_w, None,
                                early, X_val, y_val, sw_val)
            self._check_finite()
            warnings.warn(
                f"Training interrupted by the user (KeyboardInterrupt) after {self.n_iter_} "
                "finished epochs; keeping the weights of "
                + ("the best of them (early stopping)." if early and self._best_coefs
                   is not None else "the last one."),
                UserWarning)
        if early and self._best_coefs is not None:
            # restore in place: the arrays stay the workspace's live weights
            for c, best in zip(self.coefs_, self._best_coefs):
                c[...] = best
            for b, best in zip(self.intercepts_, self._best_intercepts):
                b[...] = best

    def _end_epoch(self, data_loss, ws, n, n_batches, total_w, t0, early, X_val, y_val, sw_val):
        """Bookkeeping of a finished epoch; True when training should stop.

        Everything that can fail or take time (loss, finiteness, validation
        score) is computed before any attribute changes.
        """
        # the weighted mean loss plus the L2 penalty MLPClassifier adds per
        # batch, alpha/2 ||W||^2 / (batch weight) times the batch weight,
        # summed over the epoch's batches (with the end-of-epoch weights)
        loss = (data_loss + 0.5 * self.alpha * ws.squared_norm() * n_batches) / total_w
        self._check_finite(loss)
        score = None
        if early:
            z = self._forward(X_val, "logits", check=False)
            if not np.isfinite(z).all():
                raise FloatingPointError("the logits of the validation set overflowed")
            pred = np.argmax(z, axis=1)
            score = float(accuracy_score(y_val, pred, sample_weight=sw_val))
        self.n_iter_ += 1
        self.t_ += n
        self.loss_ = float(loss)
        self.loss_curve_.append(self.loss_)
        self._update_no_improvement(score)
        if self.verbose:
            msg = f"Epoch {self.n_iter_}, loss = {self.loss_:.8f}"
            if early:
                msg += f", validation score = {score:.6f}"
            if t0 is not None:
                msg += f", {time.perf_counter() - t0:.2f} s"
            print(msg)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score" if early else "Training loss"
            stop_msg = (f"{what} did not improve more than tol={self.tol:f} for "
                        f"{self.n_iter_no_change} consecutive epochs.")
            if self.solver == "sgd" and self.learning_rate == "adaptive" and self._lr > 1e-6:
                self._lr /= 5.0
                if self.verbose:
                    print(stop_msg + f" Setting learning rate to {self._lr:f}")
                self._no_improvement_count = 0
            else:
                if self.verbose:
                    print(stop_msg + " Stopping.")
                return True
        return False

    def _update_no_improvement(self, score):
        if score is not None:
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            best = np.inf if self.best_loss_ is None else self.best_loss_
            if self.loss_curve_[-1] > best - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < best:
                self.best_loss_ = self.loss_curve_[-1]

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        # a copy: on Python >= 3.11 the base class hands out the live
        # __dict__, and the edits below must not touch the estimator itself
        state = dict(super().__getstate__())
        # the compiled workspace is a cache of buffers: keep only its
        # optimizer state (so partial_fit resumes where it was)
        ws = state.pop("_workspace", None)
        if ws is not None:
            state["_optimizer_state"] = ws.optimizer_state
        state.pop("_workspace_key", None)
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
        super().__setstate__(state)

    # ---------------------------------------------------------- save / load
    def save(self, path):
        """Write the parameters, classes and weights to an ``.npz`` file.

        Plain numeric and string arrays only (no pickle): read it back with
        :func:`cysoftmax.load`, which is safe for files from untrusted
        sources and keeps reading this format (``format=1``) in later
        versions.  The optimizer state is not saved (a loaded model predicts;
        `partial_fit` on it starts a fresh optimizer).

        Parameters
        ----------
        path : str, path-like or writable binary file
        """
        check_is_fitted(self, "coefs_")
        classes = np.asarray(self.classes_)
        classes_is_object = classes.dtype.kind == "O"
        if classes_is_object:
            if not all(isinstance(c, str) for c in classes):
                raise TypeError("save supports numeric or string class labels; classes_ holds "
                                "other Python objects (use pickle at your own risk)")
            classes = classes.astype(str)
        if classes.dtype.kind not in "biufU":
            raise TypeError(f"save supports numeric or string class labels; classes_ has "
                            f"dtype {classes.dtype}")
        params = {k: _jsonable(v) for k, v in self.get_params(deep=False).items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None       # a RandomState instance is not data
        params["hidden_layer_sizes"] = self._hidden_sizes()
        arrays = {
            "format": np.array(_SAVE_FORMAT),
            "cysoftmax_version": np.array(__version__),
            "params": np.array(json.dumps(params)),
            "classes": classes,
            "classes_is_object": np.array(classes_is_object),
            "n_layers": np.array(len(self.coefs_)),
            "n_iter": np.array(int(self.n_iter_)),
            "t": np.array(int(self.t_)),
            "loss": np.array(float(getattr(self, "loss_", np.nan))),
            "loss_curve": np.asarray(self.loss_curve_, dtype=np.float64),
        }
        if getattr(self, "best_loss_", None) is not None:
            arrays["best_loss"] = np.array(float(self.best_loss_))
        if getattr(self, "validation_scores_", None) is not None:
            arrays["validation_scores"] = np.asarray(self.validation_scores_, dtype=np.float64)
            arrays["best_validation_score"] = np.array(float(self.best_validation_score_))
        if getattr(self, "feature_names_in_", None) is not None:
            arrays["feature_names_in"] = np.asarray(self.feature_names_in_).astype(str)
        for i, (c, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            arrays[f"coef_{i}"] = c
            arrays[f"intercept_{i}"] = b
        if hasattr(path, "write"):
            np.savez(path, **arrays)
        else:
            path = _check_path(path)
            with open(path, "wb") as f:       # np.savez would append ".npz" to a str path
                np.savez(f, **arrays)


def _jsonable(v):
    """A parameter value as plain JSON data (numpy scalars and tuples converted)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_jsonable(x) for x in v]
    return v


def load(path):
    """Read a Classifier written by :meth:`Classifier.save`.

    Only plain numeric and string arrays are read (``allow_pickle=False``), so
    a file from an untrusted source cannot run code; a file that is not a
    valid model (not an ``.npz``, missing keys, wrong shapes or dtypes,
    non-finite weights, invalid parameters) raises ``ValueError``.  A missing
    or unreadable file raises ``OSError`` as ``open`` does.

    Parameters
    ----------
    path : str, path-like or readable binary file

    Returns
    -------
    Classifier
    """
    name = getattr(path, "name", path)
    if hasattr(path, "read"):
        f, close = path, False
    else:
        f, close = open(_check_path(path), "rb"), True   # OSError (not found, ...) propagates
    try:
        try:
            data = np.load(f, allow_pickle=False)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError,
                RuntimeError, MemoryError) as exc:
            # NotImplementedError / RuntimeError: zipfile's "unsupported zip
            # version / compression / encryption" for a corrupted header
            raise ValueError(f"{name!s} is not a cysoftmax model file (.npz): {exc}") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{name!s} is not a cysoftmax model file: it holds a single "
                             "array, not an .npz archive")
        with data:
            try:
                return _from_npz(_Members(data))
            except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError,
                    OSError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                    MemoryError) as exc:
                # ValueError also covers object arrays, which allow_pickle=False refuses;
                # MemoryError: an array header claiming a gigantic shape
                raise ValueError(f"{name!s} is not a valid cysoftmax model: "
                                 f"{exc.__class__.__name__}: {exc}") from None
    finally:
        if close:
            f.close()


class _Members:
    """An NpzFile whose members are all arrays: NpzFile hands back the raw bytes of a
    member that is not an .npy file, which must not reach the checks as if it were one."""

    def __init__(self, data):
        self._data = data
        self.files = data.files

    def __getitem__(self, key):
        a = self._data[key]
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{key} is not an array (.npy) member")
        return a


def _check_path(path):
    """A file name for open(): refuse ints, which open() would take as file descriptors."""
    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        return path
    raise TypeError(f"path must be a str, bytes, os.PathLike or a binary file object; "
                    f"got {type(path).__name__}")


def _aligned(X):
    """X, with a sparse matrix's arrays copied when one sits at an odd address.

    NumPy arrays can be unaligned, and the compiled gather of CSR rows reads
    data/indices/indptr element by element.  A dense X is left as it is: the
    engine reads it only with memcpy and BLAS, which take any address (and a
    memory-mapped X must not be copied: it is trained on through its file).
    """
    if sp.issparse(X) and not all(a.flags.aligned for a in (X.data, X.indices, X.indptr)):
        X = X.copy()
    return X


def _check_sparse_structure(X):
    """CSR/CSC X as CSR, after checking its index arrays (without changing X).

    The compiled gather scatters ``data[q]`` into column ``indices[q]`` of
    rows ``indptr[r]:indptr[r+1]`` without bounds checks, and scipy checks
    only the lengths of these arrays when a matrix is built from them (and
    nothing when they are edited afterwards): out-of-range or negative
    indices, or an indptr that decreases or runs past the data, would read
    or write outside the buffers.  Checked before ``tocsr`` too (scipy's
    conversion trusts them as well).
    """
    major, minor = X.shape if X.format == "csr" else X.shape[::-1]
    data, indices, indptr = X.data, X.indices, X.indptr
    problem = None
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1:
        problem = "data, indices and indptr must be 1-D"
    elif indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        problem = f"indices ({indices.dtype}) and indptr ({indptr.dtype}) must be integers"
    elif indptr.shape[0] != major + 1:
        problem = f"indptr has {indptr.shape[0]} entries; expected {major + 1}"
    elif indptr[0] != 0:
        problem = "indptr must start with 0"
    elif indices.shape[0] != data.shape[0]:
        problem = "indices and data must have the same length"
    elif indptr[-1] > indices.shape[0]:
        problem = "indptr runs past the end of indices and data"
    elif major and (np.diff(indptr) < 0).any():
        problem = "indptr must be non-decreasing"
    else:
        used = indices[:int(indptr[-1])]
        if used.size and (used.min() < 0 or used.max() >= minor):
            problem = f"indices must be in [0, {minor})"
    if problem is not None:
        raise ValueError(f"X is a malformed sparse matrix: {problem}")
    return X if X.format == "csr" else X.tocsr()


def _scalar(data, key, kind):
    a = data[key]
    if a.shape != () or a.dtype.kind not in kind:
        raise ValueError(f"{key} must be a scalar of kind {kind!r}; got {a.dtype} {a.shape}")
    return a[()]


def _from_npz(data):
    files = set(data.files)
    need = {"format", "params", "classes", "n_layers"}
    if not need <= files:
        raise ValueError(f"missing keys {sorted(need - files)}")
    fmt = int(_scalar(data, "format", "iu"))
    if fmt != _SAVE_FORMAT:
        raise ValueError(f"unknown format {fmt} (this cysoftmax reads format {_SAVE_FORMAT})")
    params = json.loads(str(_scalar(data, "params", "U")))
    if not isinstance(params, dict):
        raise ValueError("params is not a mapping")
    clf = Classifier()
    unknown = set(params) - set(clf.get_params())
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    clf.set_params(**params)
    clf._validate_params()          # InvalidParameterError is a ValueError
    n_layers = int(_scalar(data, "n_layers", "iu"))
    if n_layers < 1 or n_layers > 10_000:
        raise ValueError(f"n_layers must be >= 1; got {n_layers}")
    coefs, intercepts = [], []
    for i in range(n_layers):
        c, b = data[f"coef_{i}"], data[f"intercept_{i}"]
        if c.dtype not in (np.float32, np.float64) or c.ndim != 2 or 0 in c.shape:
            raise ValueError(f"coef_{i} must be a non-empty 2-D float32/float64 array; "
                             f"got {c.dtype} {c.shape}")
        if b.dtype != c.dtype or b.shape != (c.shape[1],):
            raise ValueError(f"intercept_{i} must be 1-D, length {c.shape[1]}, {c.dtype}; "
                             f"got {b.dtype} {b.shape}")
        if coefs and coefs[-1].shape[1] != c.shape[0]:
            raise ValueError(f"coef_{i} has {c.shape[0]} rows; the layer below has "
                             f"{coefs[-1].shape[1]} units")
        if coefs and c.dtype != coefs[0].dtype:
            raise ValueError("the layers do not share one dtype")
        if not (np.isfinite(c).all() and np.isfinite(b).all()):
            raise ValueError(f"coef_{i} / intercept_{i} hold non-finite values")
        coefs.append(np.array(c, order="C"))
        intercepts.append(np.array(b, order="C"))
    hidden = [c.shape[1] for c in coefs[:-1]]
    if list(clf._hidden_sizes()) != hidden:
        raise ValueError(f"hidden_layer_sizes {clf.hidden_layer_sizes} does not match the "
                         f"layers' sizes {hidden}")
    classes = data["classes"]
    if classes.ndim != 1 or classes.shape[0] != coefs[-1].shape[1] or classes.shape[0] < 2:
        raise ValueError(f"classes must be 1-D with {coefs[-1].shape[1]} (>= 2) entries; "
                         f"got shape {classes.shape}")
    if classes.dtype.kind not in "biufU":
        raise ValueError(f"classes must hold numbers or strings; got dtype {classes.dtype}")
    if not np.all(classes[1:] > classes[:-1]):
        raise ValueError("classes must be sorted and unique")
    if "classes_is_object" in files and bool(_scalar(data, "classes_is_object", "b")):
        classes = classes.astype(object)
    clf.coefs_, clf.intercepts_ = coefs, intercepts
    clf.classes_ = classes
    clf.n_features_in_ = coefs[0].shape[0]
    if "feature_names_in" in files:
        names = data["feature_names_in"]
        if names.dtype.kind != "U" or names.shape != (clf.n_features_in_,):
            raise ValueError(f"feature_names_in must be {clf.n_features_in_} strings")
        clf.feature_names_in_ = names.astype(object)
    clf.n_layers_ = n_layers + 1
    clf.n_outputs_ = coefs[-1].shape[1]
    clf.out_activation_ = "softmax"
    clf.n_iter_ = int(_scalar(data, "n_iter", "iu")) if "n_iter" in files else 0
    clf.t_ = int(_scalar(data, "t", "iu")) if "t" in files else 0
    if "loss" in files and np.isfinite(_scalar(data, "loss", "f")):
        clf.loss_ = float(data["loss"])
    curve = data["loss_curve"] if "loss_curve" in files else np.zeros(0)
    if curve.ndim != 1 or curve.dtype.kind != "f":
        raise ValueError("loss_curve must be a 1-D float array")
    clf.loss_curve_ = [float(v) for v in curve]
    if "best_loss" in files:
        clf.best_loss_ = float(_scalar(data, "best_loss", "f"))
    else:
        clf.best_loss_ = min(clf.loss_curve_) if clf.loss_curve_ else None
    if "validation_scores" in files:
        scores = data["validation_scores"]
        if scores.ndim != 1 or scores.dtype.kind != "f":
            raise ValueError("validation_scores must be a 1-D float array")
        clf.validation_scores_ = [float(v) for v in scores]
        clf.best_validation_score_ = float(_scalar(data, "best_validation_score", "f"))
    else:
        clf.validation_scores_ = None
        clf.best_validation_score_ = None
    clf._no_improvement_count = 0
    return clf


def _float_dtypes(X):
    """check_array's dtype list: keep float32/float64; float32 also when not in native
    byte order (converted to native float32, not up-cast); anything else -> float64."""
    dt = getattr(X, "dtype", None)
    if isinstance(dt, np.dtype) and dt.kind == "f" and dt.itemsize == 4:
        return [np.float32, np.float64]
    return [np.float64, np.float32]


def _encode(y, classes):
    """Indices of y's labels in the sorted `classes`; ValueError for a label not in it."""
    idx = np.searchsorted(classes, y)
    np.minimum(idx, len(classes) - 1, out=idx)
    bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(f"y holds labels {np.unique(np.asarray(y)[bad])!r} that are not in "
                         f"classes {classes!r}")
    return idx.astype(np.intp, copy=False)


def _same_form(state, target):
    """True when an optimizer state can be copied into a workspace whose state is `target`."""
    if set(state) != set(target):
        return False
    for key, value in target.items():
        if isinstance(value, list):
            if len(state[key]) != len(value) or any(
                    np.shape(a) != np.shape(b) for a, b in zip(state[key], value)):
                return False
    return True


# ------------------------------------------------------------ memory-mapped X
# A float32/float64 np.memmap (or np.load(..., mmap_mode="r")) is trained on
# without ever being read as a whole into memory.  Reading it *through the
# mapping* is not enough: the pages of a file mapping that were touched stay
# mapped, and count in the process's resident size, until the kernel needs
# the memory; and recent kernels map the page cache in large folios (up to
# 2 MB at a time), so a few hundred rows gathered at random from a mapping
# make the whole file resident (measured: 1,000 random rows of a 500 MB file
# mapped 474 MB; madvise MADV_RANDOM / MADV_NOHUGEPAGE did not help).  So the
# rows are read through the file instead (pread into a buffer of
# _MAPPED_SLICE_BYTES): the NaN/inf check in contiguous slices, an epoch in
# slices of whole mini-batches (the same batches in the same order as one
# compiled call over the array: the same model, bit for bit), and the
# early-stopping validation rows.  The kernel's page cache holds the file,
# the process holds one slice.

_MAPPED_SLICE_BYTES = 32 << 20


class _MappedFile:
    """The file under a memory-mapped X, read with pread (not through the mapping).

    `open(X)` gives None (a null context) when X is not a C-contiguous
    float32/float64 2-D view of a file mapped by np.memmap, when the mapping
    is copy-on-write (mode "c": its pages may hold edits the file has not),
    or when the file cannot be read back as the mapping shows it (deleted,
    replaced): the caller then uses X as it is.
    """

    def __init__(self, f, offset, X):
        self._f, self._offset, self.X = f, offset, X
        self.row_bytes = X.shape[1] * X.itemsize       # C-contiguous rows

    @staticmethod
    def applies(X):
        """True when X is a view of an np.memmap that `open` may read through its file."""
        return _MappedFile._locate(X) is not None

    @staticmethod
    def _locate(X):
        if not isinstance(X, np.ndarray):
            return None
        memmap, root, base = None, X, X
        while isinstance(base, np.ndarray):
            if isinstance(base, np.memmap):
                memmap = base
            root, base = base, base.base
        if (memmap is None or not isinstance(base, mmap.mmap) or memmap.mode == "c"
                or getattr(memmap, "filename", None) is None):
            return None
        return memmap, root

    @classmethod
    def open(cls, X):
        found = cls._locate(X)
        if (found is None or X.ndim != 2 or 0 in X.shape or not X.flags.c_contiguous
                or X.dtype not in (np.float32, np.float64) or not X.dtype.isnative):
            return contextlib.nullcontext()
        memmap, root = found
        # the root's data is at file position `memmap.offset` (np.memmap copies
        # the offset of the array it was made from to its views)
        offset = memmap.offset + (X.__array_interface__["data"][0]
                                  - root.__array_interface__["data"][0])
        try:
            f = open(memmap.filename, "rb", buffering=0)
        except OSError:
            return contextlib.nullcontext()
        self = cls(f, offset, X)
        try:
            ok = os.fstat(f.fileno()).st_size >= offset + X.shape[0] * self.row_bytes
            for r in ({0, X.shape[0] - 1} if ok else ()):
                row = np.empty(X.shape[1], X.dtype)
                self.read_rows(np.array([r]), row[None])
                ok = ok and row.tobytes() == X[r].tobytes()
        except OSError:
            ok = False
        if not ok:
            f.close()
            return contextlib.nullcontext()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def _read(self, view, pos):
        fd = self._f.fileno()
        while len(view):
            if hasattr(os, "preadv"):
                got = os.preadv(fd, [view], pos)
            else:                                   # pragma: no cover (Windows)
                self._f.seek(pos)
                got = self._f.readinto(view)
            if not got:
                raise OSError(f"{self._f.name}: unexpected end of file")
            view, pos = view[got:], pos + got

    def read_rows(self, rows, out):
        """out[i] = X[rows[i]], read in file order, runs of consecutive rows at once."""
        if not rows.shape[0]:
            return
        srt = np.argsort(rows, kind="stable")
        r, p = rows[srt], srt
        # a run: consecutive rows of the file going to consecutive rows of out
        brk = np.flatnonzero((np.diff(r) != 1) | (np.diff(p) != 1)) + 1
        starts = np.concatenate(([0], brk)).tolist()
        ends = np.concatenate((brk, [len(r)])).tolist()
        rb = self.row_bytes
        with memoryview(out).cast("B") as flat:
            for a, b, ra, pa in zip(starts, ends, r[starts].tolist(), p[starts].tolist()):
                self._read(flat[pa * rb:(pa + b - a) * rb], self._offset + ra * rb)

    def take(self, rows):
        out = np.empty((rows.shape[0], self.X.shape[1]), self.X.dtype)
        if rows.shape[0]:
            self.read_rows(rows, out)
        return out

    def check_finite(self, estimator_name):
        """scikit-learn's NaN/inf check (and message), slice by slice."""
        if get_config()["assume_finite"]:
            return
        n = self.X.shape[0]
        step = max(1, _MAPPED_SLICE_BYTES // self.row_bytes)
        buf = np.empty((min(step, n), self.X.shape[1]), self.X.dtype)
        for start in range(0, n, step):
            part = buf[:min(step, n - start)]
            self._read(memoryview(part).cast("B"), self._offset + start * self.row_bytes)
            _assert_all_finite(part, input_name="X", estimator_name=estimator_name)

    def run_epoch(self, ws, y, sample_weight, order, batch_size, lr):
        """`ws.run_epoch` over X's rows in `order`, slice by slice (whole batches)."""
        step = batch_size * max(1, _MAPPED_SLICE_BYTES // (batch_size * self.row_bytes))
        buf = np.empty((min(step, order.shape[0]), self.X.shape[1]), self.X.dtype)
        total, interrupt = 0.0, None
        for start in range(0, order.shape[0], step):
            idx = order[start:start + step]
            while True:     # an interrupt while reading: read again (nothing trained yet)
                try:
                    srt = np.argsort(idx, kind="stable")
                    rows = idx[srt]                 # the buffer holds the rows in file order
                    local = np.empty_like(srt)
                    local[srt] = np.arange(srt.shape[0], dtype=srt.dtype)
                    self.read_rows(rows, buf[:rows.shape[0]])
                    sw = None if sample_weight is None else sample_weight[rows]
                    break
                except KeyboardInterrupt as exc:
                    interrupt = exc
            try:
                total += ws.run_epoch(buf[:rows.shape[0]], y[rows], sw, local, batch_size, lr)
            except KeyboardInterrupt as exc:
                # delivered when the compiled call returned: that slice ran.  As
                # with one compiled call, the epoch runs to its end
                interrupt = exc
        if interrupt is not None:
            raise interrupt
        return total
