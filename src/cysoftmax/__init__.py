"""cysoftmax: exact and fast softmax classification on the CPU.

Kernels: `softmax`, `log_softmax`, `logsumexp`, `nll_loss`,
`local_gradient`, `nll_loss_and_gradient`, and the backward functions
`softmax_backward`, `log_softmax_backward`; for sigmoid (multilabel) outputs
`sigmoid_binary_cross_entropy` and `log_sigmoid`.
"""

from ._version import __version__
from . import datasets
from ._api import (
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)
from ._api import log_softmax_backward, softmax_backward
from ._api import log_sigmoid, sigmoid_binary_cross_entropy
from ._network_api import backprop, forward, linear_nll_loss, linear_nll_loss_and_gradient
from .classifier import Classifier, load

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


def _training_line():
    """The thread policy of training, and what it does in this process now."""
    from . import _trainer

    big = _trainer.TRAIN_THREADS_MIN_FLOPS
    # a step at the threshold: what the larger steps get now (or the user's limit)
    _, now = _trainer.thread_plan([1, big], 1)
    return (f"training  BLAS's threads for the matrix products; 1 thread when a step's "
            f"products are below {big / 1e6:g} MFLOP (6 x batch x weights); a user limit "
            f"(threadpoolctl, *_NUM_THREADS) wins. Larger steps now: {now.split(':')[0]}")


def show_config(file=None):
    """Print how this cysoftmax was built and what it runs on: version, SIMD variant,
    BLAS, and the thread policy of training."""
    import platform
    import sys

    from . import _softmax

    lines = [
        f"cysoftmax {__version__}",
        f"python    {sys.version.split()[0]} on {platform.machine()}",
        f"simd      {_softmax.simd_active()} (built: {', '.join(_softmax.simd_compiled())}; "
        f"this CPU: {', '.join(_softmax.simd_supported())}; set CYSOFTMAX_SIMD to force one)",
        (f"openmp    yes: large kernel calls use up to {_softmax.max_threads()} threads "
         "(OMP_NUM_THREADS, threadpoolctl)" if _softmax.openmp_enabled() else
         "openmp    no: the kernels run on the calling thread"),
        _training_line(),
    ]
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                lines.append(f"blas      {info.get('internal_api')} {info.get('version')} "
                             f"threads={info.get('num_threads')} ({info.get('filepath')})")
    except ImportError:
        lines.append("blas      (install threadpoolctl to see BLAS details)")
    print("\n".join(lines), file=file)
