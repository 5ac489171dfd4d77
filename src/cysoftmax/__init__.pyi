# Type stubs for the public API (the implementation modules are untyped).
# Kept honest by `python -m mypy.stubtest` in ci/wheel_check.sh, which
# compares these signatures with the installed package.
from typing import Any, Literal, TypeAlias, TypeVar, overload

import numpy as np
from _typeshed import SupportsWrite
from numpy.typing import ArrayLike, NDArray

from . import datasets as datasets
from .classifier import Classifier as Classifier
from .classifier import load as load

__version__: str

__all__ = [
    "Classifier",
    "load",
    "forward",
    "backprop",
    "datasets",
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "local_gradient",
    "nll_loss_and_gradient",
    "linear_nll_loss",
    "linear_nll_loss_and_gradient",
    "softmax_backward",
    "log_softmax_backward",
    "sigmoid_binary_cross_entropy",
    "log_sigmoid",
    "show_config",
]

# float32 stays float32 and float64 stays float64; any other input
# (integers, float16, longdouble, lists) is computed in float64.  The NLL
# functions' y: integer labels (n,) or class probabilities (n, m).
_F = TypeVar("_F", np.float32, np.float64)
_Axis: TypeAlias = int | tuple[int, ...] | None
_Mean: TypeAlias = Literal["sum", "mean"]
_Activation: TypeAlias = Literal["identity", "logistic", "tanh", "relu", "leaky_relu", "gelu",
                                 "silu"]
_Layers: TypeAlias = list[Any] | tuple[Any, ...]

@overload
def softmax(
    z: NDArray[_F],
    axis: _Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[_F] | None = None,
) -> NDArray[_F]: ...
@overload
def softmax(
    z: ArrayLike,
    axis: _Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]: ...
@overload
def log_softmax(
    z: NDArray[_F],
    axis: _Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[_F] | None = None,
) -> NDArray[_F]: ...
@overload
def log_softmax(
    z: ArrayLike,
    axis: _Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]: ...

# An array, or a NumPy scalar when every axis is reduced without keepdims;
# with return_sign=True a pair (log|sum|, sign) of those.  where: a boolean
# mask broadcastable to the input (a TypeError for any other dtype).
def logsumexp(
    z: ArrayLike,
    axis: _Axis = -1,
    *,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    where: ArrayLike | None = None,
) -> Any: ...
@overload
def nll_loss(
    logits: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: _Mean = "mean",
) -> float: ...
@overload
def nll_loss(
    logits: NDArray[_F],
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Literal["none"],
) -> NDArray[_F]: ...
@overload
def nll_loss(
    logits: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Literal["none"],
) -> NDArray[np.float64]: ...
@overload
def local_gradient(
    logits: NDArray[_F],
    y: ArrayLike,
    *,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    out: NDArray[_F] | None = None,
) -> NDArray[_F]: ...
@overload
def local_gradient(
    logits: ArrayLike,
    y: ArrayLike,
    *,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]: ...
@overload
def nll_loss_and_gradient(
    logits: NDArray[_F],
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: _Mean = "mean",
    out: NDArray[_F] | None = None,
) -> tuple[float, NDArray[_F]]: ...
@overload
def nll_loss_and_gradient(
    logits: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: _Mean = "mean",
    out: NDArray[np.float64] | None = None,
) -> tuple[float, NDArray[np.float64]]: ...
@overload
def nll_loss_and_gradient(
    logits: NDArray[_F],
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Literal["none"],
    out: NDArray[_F] | None = None,
) -> tuple[NDArray[_F], NDArray[_F]]: ...
@overload
def nll_loss_and_gradient(
    logits: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Literal["none"],
    out: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...

# forward/backprop take float32 or float64 only, one dtype for X and the
# parameters (coefs/intercepts: a list or tuple of arrays, one per layer).
@overload
def forward(
    X: NDArray[_F], coefs: _Layers, intercepts: _Layers, *, activation: _Activation = "relu"
) -> NDArray[_F]: ...
@overload
def forward(
    X: ArrayLike, coefs: _Layers, intercepts: _Layers, *, activation: _Activation = "relu"
) -> NDArray[Any]: ...
@overload
def backprop(
    X: NDArray[_F],
    y: ArrayLike,
    coefs: _Layers,
    intercepts: _Layers,
    *,
    activation: _Activation = "relu",
    alpha: float = 0.0,
    sample_weight: ArrayLike | None = None,
) -> tuple[float, list[NDArray[_F]], list[NDArray[_F]]]: ...
@overload
def backprop(
    X: ArrayLike,
    y: ArrayLike,
    coefs: _Layers,
    intercepts: _Layers,
    *,
    activation: _Activation = "relu",
    alpha: float = 0.0,
    sample_weight: ArrayLike | None = None,
) -> tuple[float, list[NDArray[Any]], list[NDArray[Any]]]: ...
def show_config(file: SupportsWrite[str] | None = None) -> None: ...

# the fused output layer: A, W, b one dtype, float32 or float64
@overload
def linear_nll_loss_and_gradient(
    A: NDArray[_F],
    W: NDArray[_F],
    b: NDArray[_F] | None,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: _Mean = "mean",
    chunk: int | None = None,
) -> tuple[float, NDArray[_F], NDArray[_F], NDArray[_F] | None]: ...
@overload
def linear_nll_loss_and_gradient(
    A: NDArray[_F],
    W: NDArray[_F],
    b: NDArray[_F] | None,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Literal["none"],
    chunk: int | None = None,
) -> tuple[NDArray[_F], NDArray[_F], NDArray[_F], NDArray[_F] | None]: ...
@overload
def linear_nll_loss(
    A: NDArray[_F],
    W: NDArray[_F],
    b: NDArray[_F] | None,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: _Mean = "mean",
    chunk: int | None = None,
) -> float: ...
@overload
def linear_nll_loss(
    A: NDArray[_F],
    W: NDArray[_F],
    b: NDArray[_F] | None,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Literal["none"],
    chunk: int | None = None,
) -> NDArray[_F]: ...

# the backward functions (grads of softmax / log_softmax for a given grad_output)
@overload
def softmax_backward(
    grad_output: NDArray[_F], probs: NDArray[_F], axis: _Axis = -1, *,
    out: NDArray[_F] | None = None,
) -> NDArray[_F]: ...
@overload
def softmax_backward(
    grad_output: ArrayLike, probs: ArrayLike, axis: _Axis = -1, *,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]: ...
@overload
def log_softmax_backward(
    grad_output: NDArray[_F], log_probs: NDArray[_F], axis: _Axis = -1, *,
    out: NDArray[_F] | None = None,
) -> NDArray[_F]: ...
@overload
def log_softmax_backward(
    grad_output: ArrayLike, log_probs: ArrayLike, axis: _Axis = -1, *,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]: ...

# sigmoid (multilabel) outputs: the binary cross-entropy, summed over labels
# per row ("mean": over rows, as MLPClassifier), and log-sigmoid
@overload
def sigmoid_binary_cross_entropy(
    logits: NDArray[_F],
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: _Mean = "mean",
    return_gradient: Literal[False] = False,
) -> float: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: NDArray[_F],
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: _Mean = "mean",
    return_gradient: Literal[True],
) -> tuple[float, NDArray[_F]]: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: NDArray[_F],
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Literal["none"],
    return_gradient: Literal[False] = False,
) -> NDArray[_F]: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: NDArray[_F],
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Literal["none"],
    return_gradient: Literal[True],
) -> tuple[NDArray[_F], NDArray[_F]]: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: _Mean = "mean",
    return_gradient: Literal[False] = False,
) -> float: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: _Mean = "mean",
    return_gradient: Literal[True],
) -> tuple[float, NDArray[np.float64]]: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Literal["none"],
    return_gradient: Literal[False] = False,
) -> NDArray[np.float64]: ...
@overload
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Literal["none"],
    return_gradient: Literal[True],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def log_sigmoid(z: NDArray[_F], *, out: NDArray[_F] | None = None) -> NDArray[_F]: ...
@overload
def log_sigmoid(z: ArrayLike, *, out: NDArray[np.float64] | None = None) -> NDArray[np.float64]: ...
