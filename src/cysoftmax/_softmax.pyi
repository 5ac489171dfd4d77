import numpy as np
from numpy.typing import NDArray

def softmax_rows(z: NDArray[np.floating], out: NDArray[np.floating]) -> None: ...
def log_softmax_rows(z: NDArray[np.floating], out: NDArray[np.floating]) -> None: ...
def logsumexp_rows(z: NDArray[np.floating], out: NDArray[np.floating]) -> None: ...
def nll_rows(
    z: NDArray[np.floating],
    y: NDArray[np.intp],
    w: NDArray[np.float64] | None,
    gmul: float,
    loss: NDArray[np.floating] | None,
    grad: NDArray[np.floating] | None,
) -> float: ...
def exp_array(x: NDArray[np.floating], out: NDArray[np.floating], normal_range: bool = ...) -> None: ...
def log1_array(x: NDArray[np.float64], out: NDArray[np.float64]) -> None: ...
def log1p_array(x: NDArray[np.float64], out: NDArray[np.float64]) -> None: ...
def softmax_fast(z: object) -> NDArray[np.floating] | None: ...
def log_softmax_fast(z: object) -> NDArray[np.floating] | None: ...
def nll_grad_fast(z: object, y: object, mean: bool, with_grad: bool = ...) -> tuple[float, NDArray[np.floating]] | float | None: ...
def logsumexp_b_rows(
    z: NDArray[np.floating],
    b: NDArray[np.floating],
    mask: NDArray[np.uint8] | None,
    out: NDArray[np.floating],
    sign: NDArray[np.floating] | None,
) -> None: ...
def softmax_backward_rows(
    g: NDArray[np.floating], p: NDArray[np.floating], out: NDArray[np.floating]
) -> None: ...
def log_softmax_backward_rows(
    g: NDArray[np.floating], lp: NDArray[np.floating], out: NDArray[np.floating]
) -> None: ...
def nll_opts_rows(
    z: NDArray[np.floating],
    y: NDArray[np.intp] | None,
    q: NDArray[np.floating] | None,
    cw: NDArray[np.floating] | None,
    w: NDArray[np.float64] | None,
    ignore: int,
    smoothing: float,
    gmul: float,
    mean: bool,
    loss: NDArray[np.floating] | None,
    grad: NDArray[np.floating] | None,
) -> tuple[float, float]: ...
def softmax_masked_rows(
    z: NDArray[np.floating], mask: NDArray[np.uint8], out: NDArray[np.floating]
) -> None: ...
def log_softmax_masked_rows(
    z: NDArray[np.floating], mask: NDArray[np.uint8], out: NDArray[np.floating]
) -> None: ...
def logsumexp_masked_rows(
    z: NDArray[np.floating], mask: NDArray[np.uint8], out: NDArray[np.floating]
) -> None: ...
def bce_rows(
    z: NDArray[np.floating],
    t: NDArray[np.floating],
    w: NDArray[np.float64] | None,
    gmul: float,
    loss: NDArray[np.floating] | None,
    grad: NDArray[np.floating] | None,
) -> float: ...
def sigmoid_rows(z: NDArray[np.floating], out: NDArray[np.floating], log: bool = ...) -> None: ...
