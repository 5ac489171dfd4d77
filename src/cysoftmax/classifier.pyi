# Type stubs for cysoftmax.classifier (checked against the module by stubtest).
# scikit-learn ships no type information: its base classes are Any to a
# type checker, so only what is declared here is checked.
import os
from typing import IO, Any, Literal, Self, Sequence, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin  # type: ignore[import-untyped]

__all__ = ["Classifier", "load"]

_Path: TypeAlias = str | os.PathLike[str]
_Float: TypeAlias = np.float32 | np.float64
_Activation: TypeAlias = Literal["identity", "logistic", "tanh", "relu", "leaky_relu", "gelu",
                                 "silu"]
_Schedule: TypeAlias = Literal["constant", "invscaling", "adaptive", "cosine"]

class Classifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    hidden_layer_sizes: int | Sequence[int]
    activation: _Activation
    solver: Literal["sgd", "adam", "lbfgs"]
    alpha: float
    batch_size: int | Literal["auto"]
    learning_rate: _Schedule
    learning_rate_init: float
    power_t: float
    max_iter: int
    shuffle: bool
    random_state: int | np.random.RandomState | None
    tol: float
    verbose: bool | int
    warm_start: bool
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: int | float
    max_fun: int
    class_weight: dict[Any, float] | Literal["balanced"] | None
    dropout: float | Sequence[float]
    label_smoothing: float
    warmup_epochs: float
    early_stopping_metric: Literal["accuracy", "loss"]

    # fitted attributes, as MLPClassifier's
    classes_: NDArray[Any]
    coefs_: list[NDArray[_Float]]
    intercepts_: list[NDArray[_Float]]
    n_features_in_: int
    feature_names_in_: NDArray[np.object_]
    n_iter_: int
    loss_: float
    loss_curve_: list[float]
    best_loss_: float | None
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    validation_loss_curve_: list[float] | None
    best_validation_loss_: float | None
    t_: int
    n_layers_: int
    n_outputs_: int
    out_activation_: str

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: _Activation = "relu",
        *,
        solver: Literal["sgd", "adam", "lbfgs"] = "adam",
        alpha: float = 0.0001,
        batch_size: int | Literal["auto"] = "auto",
        learning_rate: _Schedule = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        class_weight: dict[Any, float] | Literal["balanced"] | None = None,
        dropout: float | Sequence[float] = 0.0,
        label_smoothing: float = 0.0,
        warmup_epochs: float = 0,
        early_stopping_metric: Literal["accuracy", "loss"] = "accuracy",
    ) -> None: ...
    # X: an array-like or a scipy.sparse matrix (CSR/CSC)
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self: ...
    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        classes: ArrayLike | None = None,
    ) -> Self: ...
    def decision_function(self, X: ArrayLike) -> NDArray[_Float]: ...
    def predict(self, X: ArrayLike) -> NDArray[Any]: ...
    def predict_proba(self, X: ArrayLike) -> NDArray[_Float]: ...
    def predict_log_proba(self, X: ArrayLike) -> NDArray[_Float]: ...
    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float: ...
    def save(self, path: _Path | IO[bytes]) -> None: ...

def load(path: _Path | IO[bytes], *, max_bytes: int = ...) -> Classifier: ...
