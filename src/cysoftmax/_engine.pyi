from typing import Any, Literal, Sequence

import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64
_Activation = Literal["identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu"]

ACTIVATIONS: dict[str, int]
OUT_ACTIVATIONS: dict[str, int]
SOLVERS: tuple[None | str, ...]
CHUNK_ELEMENTS: int

def output_chunk_rows(n: int, m: int) -> int: ...
def scheduled_rate(
    lr0: float, epochs_done: float, batch: int, n_batches: int, warmup: float, total: float
) -> float: ...
def dropout_mask(
    rows: int, cols: int, rate: float, seed: int, batch: int, layer: int
) -> NDArray[np.float64]: ...
def last_linear_workspace() -> tuple[int, int]: ...
def linear_nll_rows(
    A: NDArray[_Float], W: NDArray[_Float], w_trans: bool, b: NDArray[_Float] | None,
    y: NDArray[np.intp] | None, q: NDArray[_Float] | None, cw: NDArray[_Float] | None,
    w: NDArray[np.float64] | None, ignore: int, smoothing: float, plain: bool, gmul: float,
    chunk: int, loss: NDArray[_Float] | None, dA: NDArray[_Float] | None,
    dW: NDArray[_Float] | None, db: NDArray[_Float] | None,
) -> float: ...

def forward_into(
    X: NDArray[_Float] | Any,  # C-contiguous ndarray or scipy.sparse CSR matrix
    coefs: Sequence[NDArray[_Float]],
    intercepts: Sequence[NDArray[_Float]],
    activation: _Activation,
    out: NDArray[_Float],
    output: Literal["logits", "proba", "log_proba"] = "proba",
    out_activation: Literal["softmax", "logistic"] = "softmax",
) -> NDArray[_Float]: ...

class Trainer:
    max_batch: int
    dtype: np.dtype[Any]
    activation: str
    solver: Literal["sgd", "adam"] | None
    learning_rate_init: float
    def __init__(
        self,
        coefs: Sequence[NDArray[_Float]],
        intercepts: Sequence[NDArray[_Float]],
        max_batch: int,
        activation: _Activation = "relu",
        solver: Literal["sgd", "adam"] | None = "sgd",
        alpha: float = 0.0,
        learning_rate_init: float = 0.001,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        output_chunk: int | None = None,
        dropout: float | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        out_activation: Literal["softmax", "logistic"] = "softmax",
    ) -> None: ...
    @property
    def dropout(self) -> tuple[float, ...]: ...
    @property
    def label_smoothing(self) -> float: ...
    @property
    def out_activation(self) -> str: ...
    @property
    def output_chunk(self) -> int: ...
    def bind(
        self, coefs: Sequence[NDArray[_Float]], intercepts: Sequence[NDArray[_Float]]
    ) -> None: ...
    @property
    def coefs(self) -> list[NDArray[_Float]]: ...
    @property
    def intercepts(self) -> list[NDArray[_Float]]: ...
    @property
    def layer_sizes(self) -> list[int]: ...
    @property
    def coef_grads(self) -> list[NDArray[_Float]]: ...
    @property
    def intercept_grads(self) -> list[NDArray[_Float]]: ...
    @property
    def alpha(self) -> float: ...
    @property
    def momentum(self) -> float: ...
    @property
    def nesterovs_momentum(self) -> bool: ...
    @property
    def _flush_below(self) -> float: ...
    @_flush_below.setter
    def _flush_below(self, value: float) -> None: ...
    @property
    def beta_1(self) -> float: ...
    @property
    def beta_2(self) -> float: ...
    @property
    def epsilon(self) -> float: ...
    @property
    def t(self) -> int: ...
    @property
    def optimizer_state(self) -> dict[str, Any]: ...
    def set_optimizer_state(self, state: dict[str, Any]) -> None: ...
    def squared_norm(self) -> float: ...
    def run_epoch(
        self,
        X: NDArray[_Float] | Any,
        y: NDArray[np.integer[Any]],
        sample_weight: NDArray[np.float64] | None,
        order: NDArray[np.intp],
        batch_size: int,
        lr: float | None = None,
        schedule: tuple[float, float, float, float, int] | None = None,
        seed: int = 0,
        first_batch: int = 0,
    ) -> float: ...
    def step(
        self,
        X: NDArray[_Float] | Any,
        y: NDArray[np.integer[Any]],
        sample_weight: NDArray[np.float64] | None,
        idx: NDArray[np.intp],
        lr: float | None = None,
        seed: int = 0,
    ) -> float: ...
    def gradient(
        self,
        X: NDArray[_Float],
        y: NDArray[np.integer[Any]],
        sample_weight: NDArray[np.float64] | None = None,
    ) -> tuple[float, float]: ...
    def apply_gradients(
        self,
        coef_grads: Sequence[NDArray[_Float]],
        intercept_grads: Sequence[NDArray[_Float]],
        lr: float | None = None,
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
