"""OpenMP in the row kernels: present in the build, and invisible in the results.

Large calls are split into one chunk of rows per thread; each row is computed
by the same code whatever the thread count, so results must be identical to
the single-threaded ones (the NLL total adds per-chunk partial sums, so it
may differ in the last bits only).
"""

import os

import numpy as np
import pytest

import _requires
from threadpoolctl import threadpool_limits

import cysoftmax as cs
from cysoftmax import _softmax


def test_openmp_is_built():
    # a build that silently lost OpenMP must fail here; builds made without
    # it on purpose (-Dopenmp=disabled) set CYSOFTMAX_EXPECT_NO_OPENMP=1
    if os.environ.get("CYSOFTMAX_EXPECT_NO_OPENMP") == "1":
        assert not _softmax.openmp_enabled()
    else:
        assert _softmax.openmp_enabled(), "cysoftmax was built without OpenMP"


def test_threadpoolctl_limits_apply():
    if not _softmax.openmp_enabled():
        _requires.missing("openmp", "cysoftmax was built without OpenMP")
    with threadpool_limits(limits=1, user_api="openmp"):
        assert _softmax.max_threads() == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(20000, 10), (300, 1000), (7, 40000)])
def test_threaded_equals_serial(dtype, shape):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    y = rng.integers(0, shape[1], shape[0])
    w = rng.random(shape[0])
    with threadpool_limits(limits=1, user_api="openmp"):
        ref = [cs.softmax(z), cs.log_softmax(z), cs.logsumexp(z),
               cs.nll_loss_and_gradient(z, y, sample_weight=w, reduction="none")]
        ref_mean = cs.nll_loss_and_gradient(z, y, sample_weight=w)
    with threadpool_limits(limits=2, user_api="openmp"):
        got = [cs.softmax(z), cs.log_softmax(z), cs.logsumexp(z),
               cs.nll_loss_and_gradient(z, y, sample_weight=w, reduction="none")]
        got_mean = cs.nll_loss_and_gradient(z, y, sample_weight=w)
    for a, b in zip(ref[:3], got[:3]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref[3][0], got[3][0])
    np.testing.assert_array_equal(ref[3][1], got[3][1])
    np.testing.assert_array_equal(ref_mean[1], got_mean[1])
    assert got_mean[0] == pytest.approx(ref_mean[0], rel=1e-12)


# ---------------------------------------------------------------------------
# 1-4 threads, both sides of the 32,768-element threshold, uneven splits

PAR_MIN = 32768          # dispatch.c's CS_PAR_MIN


def _calls(z, y, w):
    return {
        "softmax": lambda: cs.softmax(z),
        "log_softmax": lambda: cs.log_softmax(z),
        "logsumexp": lambda: cs.logsumexp(z),
        "nll_none": lambda: cs.nll_loss_and_gradient(z, y, sample_weight=w, reduction="none"),
        "nll_mean": lambda: cs.nll_loss_and_gradient(z, y, sample_weight=w),
        "nll_sum_unweighted": lambda: cs.nll_loss_and_gradient(z, y, reduction="sum"),
    }


def _flat(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [
    (2, PAR_MIN // 2 - 1),          # one element below the threshold: serial
    (2, PAR_MIN // 2),              # at it: two rows, at most two threads
    (3, PAR_MIN // 3 + 1),          # three rows: 3 threads get one row each
    (1000, 33),                     # uneven: 1000 rows over 3 threads
    (PAR_MIN // 10 - 1, 10),        # small classes below the threshold
    (4099, 10),                     # small classes above it, uneven over 3 and 4
    (1, 40000),                     # one row: never split
])
def test_thread_counts_give_the_serial_results(dtype, shape):
    if not _softmax.openmp_enabled():
        _requires.missing("openmp", "cysoftmax was built without OpenMP")
    n, m = shape
    rng = np.random.default_rng(n * m)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    y = rng.integers(0, m, n)
    w = rng.random(n)
    with threadpool_limits(limits=1, user_api="openmp"):
        ref = {k: _flat(f()) for k, f in _calls(z, y, w).items()}
    for threads in (1, 2, 3, 4):
        want_team = 1 if (n < 2 or n * m < PAR_MIN) else min(threads, n)
        with threadpool_limits(limits=threads, user_api="openmp"):
            assert _softmax.max_threads() == threads
            for name, f in _calls(z, y, w).items():
                got = _flat(f())
                assert _softmax.last_team_size() == want_team, (name, threads)
                for a, b in zip(got, ref[name]):
                    if np.ndim(a) == 0 and name != "nll_none":
                        # the total adds per-thread partial sums: rounding only
                        assert float(a) == pytest.approx(float(b), rel=1e-12), (name, threads)
                    else:
                        np.testing.assert_array_equal(a, b, err_msg=f"{name}, {threads} threads")


def test_training_does_not_depend_on_the_openmp_thread_count():
    # training runs its matrix products on BLAS's threads and has no OpenMP
    # region: with BLAS on one thread, any OpenMP limit gives the same bits
    from cysoftmax import Classifier
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 40)).astype(np.float32)
    y = rng.integers(0, 12, 3000)
    fits = []
    for threads in (1, 2, 3, 4):
        with threadpool_limits(limits=1, user_api="blas"), \
                threadpool_limits(limits=threads, user_api="openmp"):
            clf = Classifier(hidden_layer_sizes=(64,), max_iter=3, batch_size=64,
                             random_state=0)
            with pytest.warns(Warning):
                clf.fit(X, y)
            fits.append((clf.coefs_ + clf.intercepts_, clf.predict_proba(X), clf.loss_curve_))
    for params, proba, curve in fits[1:]:
        for a, b in zip(params, fits[0][0]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(proba, fits[0][1])
        assert curve == fits[0][2]
