"""`Classifier`: a scikit-learn estimator trained by the cysoftmax engine.

The estimator is MLPClassifier's interface (parameters, names, defaults,
fitted attributes, stopping rules) over cysoftmax's compiled training loop:
each epoch is one call into the workspace (``_dense.Workspace.run_epoch``),
which gathers the shuffled mini-batches, runs forward, the fused softmax
loss+gradient, backprop and the optimizer step without the GIL and without
Python between batches.  This module does what is per epoch or per call:
validation, label encoding, the learning-rate schedule, early stopping,
divergence checks and bookkeeping.

The output layer is always a softmax, also for two classes (two units);
`decision_function` still returns scikit-learn's binary log-odds there.
"""

import copy
import json
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._api import log_softmax, softmax
from ._version import __version__

__all__ = ["Classifier", "load"]

_SAVE_FORMAT = 1
_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


def _activate(a, activation):
    """Hidden-layer activation in place (prediction path)."""
    if activation == "relu":
        np.maximum(a, 0, out=a)
    elif activation == "tanh":
        np.tanh(a, out=a)
    elif activation == "logistic":
        # 1 / (1 + exp(-a)), without overflow warnings for large |a|
        np.negative(a, out=a)
        np.exp(a, out=a)
        a += 1
        np.reciprocal(a, out=a)
    return a


class Classifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with a softmax output, trained by cysoftmax.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` (same
    parameters, defaults and fitted attributes; the ``lbfgs`` solver and
    ``max_fun`` are not offered), trained by mini-batch SGD (plain, momentum,
    Nesterov) or Adam in compiled code.  float32 input trains and predicts in
    float32; float64 in float64; other dtypes are converted to float64.

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
        One line per epoch: epoch, loss, validation score, seconds.
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the data and stop
        when its accuracy stops improving; the best weights are restored.
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

    def _validate_X_y(self, X, y, reset):
        X, y = validate_data(
            self, X, y, reset=reset,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            order="C",
            ensure_min_samples=1,
        )
        if sp.issparse(X):
            X = X.tocsr()
            X.sort_indices()
        target = type_of_target(y, input_name="y")
        if target not in ("binary", "multiclass"):
            raise ValueError(
                f"Classifier supports binary and multiclass targets only; y is {target!r}. "
                "Multilabel and continuous targets are not supported.")
        return X, y

    # ------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train on X, y (epochs of mini-batch gradient descent).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any hashable values).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y; `classes` is required on the first call.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array-like of shape (n_classes,), default=None
            All the classes that may appear; needed on the first call only.

        Returns
        -------
        self
        """
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = _check_partial_fit_first_call(self, classes)
        if not first and not hasattr(self, "coefs_"):
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, sample_weight, incremental=True, first_partial=first)

    def decision_function(self, X):
        """Logits: (n_samples, n_classes); for two classes the log-odds z_1 - z_0, (n_samples,)."""
        z = self._logits(X)
        if z.shape[1] == 2:
            return z[:, 1] - z[:, 0]
        return z

    def predict(self, X):
        """Most probable class of each sample."""
        z = self._logits(X)
        return self.classes_[np.argmax(z, axis=1)]

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes); rows sum to 1."""
        return softmax(self._logits(X))

    def predict_log_proba(self, X):
        """Log-probabilities from log-softmax: finite where probabilities underflow to 0."""
        return log_softmax(self._logits(X))

    # --------------------------------------------------------------- helpers
    def _logits(self, X):
        check_is_fitted(self, "coefs_")
        dtype = self.coefs_[0].dtype
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"],
                          dtype=[dtype, np.float64 if dtype == np.float32 else np.float32])
        if X.dtype != dtype:
            X = X.astype(dtype)
        a = X
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            z = a @ W
            z = np.asarray(z)
            z += b
            a = z if i == last else _activate(z, self.activation)
        return np.ascontiguousarray(a)

    def _init_params(self, n_features, n_classes, dtype, rng):
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
        self._workspace = None
        self._lr = float(self.learning_rate_init)

    def _make_workspace(self, batch_size):
        from ._dense import Workspace
        return Workspace(
            self.coefs_, self.intercepts_, batch_size,
            activation=self.activation,
            solver=self.solver,
            alpha=self.alpha,
            learning_rate_init=self.learning_rate_init,
            momentum=self.momentum,
            nesterovs_momentum=self.nesterovs_momentum,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
        )

    def _snapshot(self):
        """Everything fit may change, to restore on divergence."""
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k.endswith("_")
                              and not k.startswith("__")})

    def _restore(self, state):
        for k in [k for k in self.__dict__ if k.endswith("_") and not k.startswith("__")]:
            del self.__dict__[k]
        self.__dict__.update(state)

    def _fit(self, X, y, sample_weight, incremental, first_partial=False):
        hidden = self._hidden_sizes()
        fitted = hasattr(self, "coefs_")
        reset = not (incremental and not first_partial) and not (self.warm_start and fitted)
        X, y = self._validate_X_y(X, y, reset=reset or not fitted)
        dtype = X.dtype
        n = X.shape[0]
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            sample_weight = np.ascontiguousarray(sample_weight)

        # labels -> 0..m-1 through classes_
        if incremental and not first_partial:
            classes = self.classes_
            unseen = np.setdiff1d(np.unique(y), classes)
            if unseen.size:
                raise ValueError(f"y holds labels {unseen!r} not in classes_ {classes!r}")
        elif incremental:
            classes = self.classes_  # set by _check_partial_fit_first_call
        elif self.warm_start and fitted:
            classes = self.classes_
            if not set(np.unique(y)).issubset(set(classes)):
                raise ValueError("warm_start with labels not seen in the first fit: "
                                 f"y holds {np.setdiff1d(np.unique(y), classes)!r}")
        else:
            classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"Classifier needs at least 2 classes in y to train; got {len(classes)} class: "
                f"{classes!r}")
        y_idx = np.searchsorted(classes, y).astype(np.intp)

        need_init = not fitted or reset
        if fitted and not need_init:
            if self.coefs_[0].dtype != dtype:
                X = X.astype(self.coefs_[0].dtype)
                dtype = X.dtype
            if [c.shape[1] for c in self.coefs_[:-1]] != hidden:
                need_init = True
        before = self._snapshot() if fitted else None
        rng = check_random_state(self.random_state)
        if need_init:
            self.classes_ = classes
            self._init_params(X.shape[1], len(classes), dtype, rng)
        self._random_state = rng

        try:
            self._train(X, y_idx, sample_weight, incremental, rng)
        except FloatingPointError as exc:
            if before is None:
                for k in [k for k in self.__dict__ if k.endswith("_") and not k.startswith("__")]:
                    del self.__dict__[k]
            else:
                self._restore(before)
            raise ValueError(
                f"Training diverged: {exc}. The learning rate (learning_rate_init="
                f"{self.learning_rate_init}) is probably too large, or the inputs are not "
                "scaled (standardize X, e.g. with StandardScaler, or divide pixel values by 255)."
            ) from None
        return self

    def _check_finite(self, loss):
        if not np.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss}")
        for c, b in zip(self.coefs_, self.intercepts_):
            if not (np.isfinite(c).all() and np.isfinite(b).all()):
                raise FloatingPointError("the weights became non-finite")

    def _train(self, X, y, sample_weight, incremental, rng):
        early = self.early_stopping and not incremental
        X_val = y_val = sw_val = None
        if early:
            parts = train_test_split(
                X, y, *([] if sample_weight is None else [sample_weight]),
                random_state=rng, test_size=self.validation_fraction, stratify=y)
            if sample_weight is None:
                X, X_val, y, y_val = parts
            else:
                X, X_val, y, y_val, sample_weight, sw_val = parts
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if sp.issparse(X):
                X = X.tocsr()
            else:
                X = np.ascontiguousarray(X)
            y = np.ascontiguousarray(y)
            if sample_weight is not None:
                sample_weight = np.ascontiguousarray(sample_weight)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        # fit starts a fresh optimizer (as MLPClassifier); partial_fit keeps
        # its state (velocities, Adam moments) across calls
        ws = getattr(self, "_workspace", None)
        if (not incremental or ws is None or ws.max_batch < batch_size
                or ws.dtype != X.dtype or ws.solver != self.solver):
            ws = self._make_workspace(batch_size)
            self._workspace = ws
        else:
            ws.bind(self.coefs_, self.intercepts_)
        if not hasattr(self, "_lr"):
            self._lr = float(self.learning_rate_init)
        order = np.arange(n, dtype=np.intp)
        total_w = float(n) if sample_weight is None else float(sample_weight.sum())
        try:
            for _ in range(self.max_iter):
                t0 = time.perf_counter()
                if self.shuffle:
                    rng.shuffle(order)
                lr = self._lr if self.solver == "sgd" else float(self.learning_rate_init)
                data_loss = ws.run_epoch(X, y, sample_weight, order, batch_size, lr)
                # the weighted mean loss plus the L2 penalty MLPClassifier adds
                # per batch, alpha/2 ||W||^2 / (batch weight), summed over the
                # epoch's batches (with the end-of-epoch weights)
                n_batches = -(-n // batch_size)
                loss = (data_loss + 0.5 * self.alpha * ws.squared_norm() * n_batches) / total_w
                self._check_finite(loss)
                self.n_iter_ += 1
                self.t_ += n
                self.loss_ = float(loss)
                self.loss_curve_.append(self.loss_)
                msg = f"Epoch {self.n_iter_}, loss = {self.loss_:.8f}"
                self._update_no_improvement(early, X_val, y_val, sw_val)
                if early:
                    msg += f", validation score = {self.validation_scores_[-1]:.6f}"
                if self.verbose:
                    print(f"{msg}, {time.perf_counter() - t0:.2f} s")
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
                        break
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:
            # the epoch in flight ran to its end inside one compiled call,
            # so the weights are those of the last finished epoch
            warnings.warn("Training interrupted by user.")
        if early and getattr(self, "_best_coefs", None) is not None:
            for c, best in zip(self.coefs_, self._best_coefs):
                c[...] = best
            for b, best in zip(self.intercepts_, self._best_intercepts):
                b[...] = best

    def _update_no_improvement(self, early, X_val, y_val, sw_val):
        if early:
            score = self.score(X_val, self.classes_[y_val], sample_weight=sw_val)
            self.validation_scores_.append(float(score))
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = float(score)
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
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
        """Write parameters and weights to an ``.npz`` file (no pickle; see `cysoftmax.load`)."""
        check_is_fitted(self, "coefs_")
        classes = np.asarray(self.classes_)
        if classes.dtype.kind == "O":
            if not all(isinstance(c, str) for c in classes):
                raise TypeError("save supports numeric or string class labels; classes_ holds "
                                "other Python objects (use pickle at your own risk)")
            classes = classes.astype(str)
        params = self.get_params()
        params["random_state"] = params["random_state"] if isinstance(
            params["random_state"], (int, type(None))) else None
        params["hidden_layer_sizes"] = self._hidden_sizes()
        arrays = {
            "format": np.array(_SAVE_FORMAT),
            "cysoftmax_version": np.array(__version__),
            "params": np.array(json.dumps(params)),
            "classes": classes,
            "classes_is_object": np.array(np.asarray(self.classes_).dtype.kind == "O"),
            "n_layers": np.array(len(self.coefs_)),
            "n_iter": np.array(self.n_iter_),
            "t": np.array(self.t_),
            "loss": np.array(getattr(self, "loss_", np.nan)),
            "loss_curve": np.asarray(self.loss_curve_, dtype=np.float64),
        }
        if getattr(self, "feature_names_in_", None) is not None:
            arrays["feature_names_in"] = np.asarray(self.feature_names_in_).astype(str)
        for i, (c, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            arrays[f"coef_{i}"] = c
            arrays[f"intercept_{i}"] = b
        with open(path, "wb") as f:
            np.savez(f, **arrays)


def load(path):
    """Read a Classifier written by :meth:`Classifier.save`.

    Only plain numeric and string arrays are read (``allow_pickle=False``), so
    a file from an untrusted source cannot run code; a file that is not a
    valid model (missing keys, wrong shapes or dtypes) raises ``ValueError``.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path!s} is not a cysoftmax model file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"could not read {path!s} as a cysoftmax model file: {exc}") from None
    with data:
        try:
            files = set(data.files)
            need = {"format", "params", "classes", "n_layers"}
            if not need <= files:
                raise ValueError(f"missing keys {sorted(need - files)}")
            if int(data["format"]) != _SAVE_FORMAT:
                raise ValueError(f"unknown format {int(data['format'])}")
            params = json.loads(str(data["params"]))
            if not isinstance(params, dict):
                raise ValueError("params is not a mapping")
            clf = Classifier()
            unknown = set(params) - set(clf.get_params())
            if unknown:
                raise ValueError(f"unknown parameters {sorted(unknown)}")
            clf.set_params(**params)
            n_layers = int(data["n_layers"])
            if n_layers < 1:
                raise ValueError("n_layers < 1")
            coefs, intercepts = [], []
            for i in range(n_layers):
                c, b = data[f"coef_{i}"], data[f"intercept_{i}"]
                if c.dtype not in (np.float32, np.float64) or c.ndim != 2:
                    raise ValueError(f"coef_{i} must be a 2-D float32/float64 array")
                if b.dtype != c.dtype or b.shape != (c.shape[1],):
                    raise ValueError(f"intercept_{i} must be 1-D, length {c.shape[1]}, {c.dtype}")
                if coefs and coefs[-1].shape[1] != c.shape[0]:
                    raise ValueError(f"coef_{i} has {c.shape[0]} rows; the layer below has "
                                     f"{coefs[-1].shape[1]} units")
                if coefs and c.dtype != coefs[0].dtype:
                    raise ValueError("the layers do not share one dtype")
                coefs.append(np.ascontiguousarray(c))
                intercepts.append(np.ascontiguousarray(b))
            classes = data["classes"]
            if classes.ndim != 1 or classes.shape[0] != coefs[-1].shape[1]:
                raise ValueError(f"classes must be 1-D with {coefs[-1].shape[1]} entries")
            if bool(data["classes_is_object"]) if "classes_is_object" in files else False:
                classes = classes.astype(object)
            clf.coefs_, clf.intercepts_ = coefs, intercepts
            clf.classes_ = classes
            clf.n_features_in_ = coefs[0].shape[0]
            if "feature_names_in" in files:
                names = data["feature_names_in"].astype(object)
                if names.shape != (clf.n_features_in_,):
                    raise ValueError("feature_names_in has the wrong length")
                clf.feature_names_in_ = names
            clf.n_layers_ = n_layers + 1
            clf.n_outputs_ = coefs[-1].shape[1]
            clf.out_activation_ = "softmax"
            clf.n_iter_ = int(data["n_iter"]) if "n_iter" in files else 0
            clf.t_ = int(data["t"]) if "t" in files else 0
            clf.loss_ = float(data["loss"]) if "loss" in files else np.nan
            clf.loss_curve_ = [float(v) for v in data["loss_curve"]] if "loss_curve" in files else []
            clf.best_loss_ = min(clf.loss_curve_) if clf.loss_curve_ else None
            clf.validation_scores_ = None
            clf.best_validation_score_ = None
        except KeyError as exc:
            raise ValueError(f"{path!s} is not a valid cysoftmax model: missing {exc}") from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path!s} is not a valid cysoftmax model: {exc}") from None
    return clf
