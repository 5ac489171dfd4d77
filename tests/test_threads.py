"""OpenMP in the row kernels: present in the build, and invisible in the results.

Large calls are split into one chunk of rows per thread; each row is computed
by the same code whatever the thread count, so results must be identical to
the single-threaded ones (the NLL total adds per-chunk partial sums, so it
may differ in the last bits only).
"""

import os

import numpy as np
import pytest
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
        pytest.skip("built without OpenMP")
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
