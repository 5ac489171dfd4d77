# Type stubs for cysoftmax.datasets (checked against the module by stubtest).
import os
from typing import Literal, TypeAlias, overload

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FASHION_MNIST_CLASSES",
    "load_fashion_mnist",
    "load_fashion_mnist_sample",
]

_Subset: TypeAlias = Literal["train", "test"]
_F32: TypeAlias = Literal["float32"] | type[np.float32] | np.dtype[np.float32]
_F64: TypeAlias = Literal["float64"] | type[np.float64] | type[float] | np.dtype[np.float64]

FASHION_MNIST_CLASSES: tuple[str, ...]
BASE_URL: str
URL_ENV: str
DATA_ENV: str
SYSTEM_DATA_DIR: str

@overload
def load_fashion_mnist(  # type: ignore[overload-overlap]
    subset: _Subset = "train",
    *,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    dtype: _F32 = "float32",
) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...
@overload
def load_fashion_mnist(
    subset: _Subset = "train",
    *,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    dtype: _F64,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]: ...
@overload
def load_fashion_mnist_sample(  # type: ignore[overload-overlap]
    subset: _Subset = "train", *, dtype: _F32 = "float32"
) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...
@overload
def load_fashion_mnist_sample(
    subset: _Subset = "train", *, dtype: _F64
) -> tuple[NDArray[np.float64], NDArray[np.int64]]: ...
