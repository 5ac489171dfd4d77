"""README's claims that no other test checks directly.

* The kernels and the training epoch release the GIL: a second Python thread
  makes progress while one long kernel call or one long epoch runs.
* A C-contiguous input of the kernel functions is never copied (tracemalloc
  sees every NumPy allocation; a copy of the input would show up as a peak
  the size of the input, as it does for a Fortran-ordered one).
* `show_config` says what is true: version, SIMD variant, OpenMP limit, BLAS.
"""

import io
import threading
import time
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import cysoftmax as cs
from cysoftmax import Classifier, _softmax

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class Ticker(threading.Thread):
    """A pure-Python loop (it needs the GIL for every step) that notes every
    pause of more than 2 ms between two of its steps."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pauses = []
        self.stop = False

    def run(self):
        clock, last = time.perf_counter, time.perf_counter()
        while not self.stop:
            t = clock()
            if t - last > 0.002:
                self.pauses.append((last, t))
            last = t


def _longest_pause_during(call):
    """(longest pause of a Python thread while `call()` ran, the call's duration).
    A call that holds the GIL pauses the other thread for its whole length;
    one that releases it leaves only the scheduler's pauses (a few ms, tens
    of ms on a loaded VM)."""
    ticker = Ticker()
    ticker.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    time.sleep(0.01)
    ticker.stop = True
    ticker.join()
    overlap = [min(b, t1) - max(a, t0) for a, b in ticker.pauses]
    return max([0.0] + overlap), t1 - t0


def _check_the_measure():
    # a C call that holds the GIL (sorting a list) pauses the other thread
    # for (nearly) its whole length
    import random
    big = [random.random() for _ in range(1_500_000)]
    held, seconds = _longest_pause_during(lambda: sorted(big))
    assert seconds > 0.1 and held > 0.8 * seconds, (held, seconds)


KERNEL_CALLS = {
    "softmax(out=)": lambda z, y, out: cs.softmax(z, out=out),
    "log_softmax(out=)": lambda z, y, out: cs.log_softmax(z, out=out),
    "logsumexp": lambda z, y, out: cs.logsumexp(z),
    "nll_loss": lambda z, y, out: cs.nll_loss(z, y),
    "nll_loss_and_gradient": lambda z, y, out: cs.nll_loss_and_gradient(z, y),
}


def test_long_kernel_calls_release_the_gil():
    _check_the_measure()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3000, 50_000)).astype(np.float32)     # 600 MB
    y = rng.integers(0, z.shape[1], z.shape[0])
    out = np.empty_like(z)
    with threadpool_limits(limits=1, user_api="openmp"):           # on this thread
        for name, call in KERNEL_CALLS.items():
            # one call at a time: a call that holds the GIL pauses the other
            # thread for all of it (between two calls it would get a turn)
            pause, seconds = _longest_pause_during(lambda: call(z, y, out))
            assert seconds > 0.04, f"{name}: {seconds:.3f} s is too short to tell"
            assert pause < 0.5 * seconds, (name, pause, seconds)


def test_a_long_epoch_releases_the_gil():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30_000, 400)).astype(np.float32)
    y = rng.integers(0, 10, len(X))

    def fit():
        Classifier(hidden_layer_sizes=(256,), max_iter=1, batch_size=128,
                   random_state=0).fit(X, y)

    _check_the_measure()
    with threadpool_limits(limits=1, user_api="blas"):
        pause, seconds = _longest_pause_during(fit)
    assert seconds > 0.15, f"{seconds:.3f} s is too short to tell"
    assert pause < 0.5 * seconds, (pause, seconds)


def _peak_during(call):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_contiguous_kernel_inputs_are_not_copied(dtype):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4000, 1000)).astype(dtype)           # 16 / 32 MB
    y = rng.integers(0, 1000, 4000)
    out = np.empty_like(z)
    grad = np.empty_like(z)
    calls = {
        "softmax(out=)": lambda: cs.softmax(z, out=out),
        "log_softmax(out=)": lambda: cs.log_softmax(z, out=out),
        "logsumexp": lambda: cs.logsumexp(z),
        "nll_loss": lambda: cs.nll_loss(z, y),
        "nll_loss none": lambda: cs.nll_loss(z, y, reduction="none"),
        "local_gradient(out=)": lambda: cs.local_gradient(z, y, out=out),
        "nll_loss_and_gradient(out=)": lambda: cs.nll_loss_and_gradient(z, y, out=grad),
    }
    for name, call in calls.items():
        call()                                                     # warm
        peak = _peak_during(call)
        assert peak < z.nbytes / 20, f"{name}: {peak} bytes allocated for a {z.nbytes}-byte input"
    # the measurement sees a copy when there is one: a Fortran-ordered input
    zf = np.asfortranarray(z)
    assert _peak_during(lambda: cs.logsumexp(zf)) >= z.nbytes


def test_show_config_says_what_is_true():
    buf = io.StringIO()
    with threadpool_limits(limits=3, user_api="openmp"):
        cs.show_config(file=buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == f"cysoftmax {cs.__version__}"
    by_key = {}
    for line in lines[1:]:
        key, _, rest = line.partition(" ")
        by_key.setdefault(key, []).append(rest.strip())
    import platform
    import sys
    assert by_key["python"] == [f"{sys.version.split()[0]} on {platform.machine()}"]
    simd = by_key["simd"][0]
    assert simd.split()[0] == _softmax.simd_active()
    assert f"built: {', '.join(_softmax.simd_compiled())}" in simd
    assert f"this CPU: {', '.join(_softmax.simd_supported())}" in simd
    if _softmax.openmp_enabled():
        assert by_key["openmp"] == ["yes: large kernel calls use up to 3 threads "
                                    "(OMP_NUM_THREADS, threadpoolctl)"]
    else:
        assert by_key["openmp"][0].startswith("no:")
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    assert len(by_key["blas"]) == len(blas) >= 1
    for line, info in zip(by_key["blas"], blas):
        assert f"threads={info['num_threads']}" in line
        assert info["filepath"] in line
