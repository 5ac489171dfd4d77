"""cysoftmax: exact and fast softmax classification on the CPU.

Kernels: `softmax`, `log_softmax`, `logsumexp`, `nll_loss`,
`local_gradient`, `nll_loss_and_gradient`.
"""

from ._version import __version__
from ._api import (
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)

__all__ = [
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "local_gradient",
    "nll_loss_and_gradient",
    "show_config",
]


def show_config(file=None):
    """Print how this cysoftmax was built and what it runs on: version, SIMD variant, BLAS."""
    import platform
    import sys

    lines = [
        f"cysoftmax {__version__}",
        f"python    {sys.version.split()[0]} on {platform.machine()}",
        "simd      portable (baseline; dispatched variants not built yet)",
        "openmp    no (kernels are single-threaded)",
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
