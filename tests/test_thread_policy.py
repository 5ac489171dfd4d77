"""The thread policy of training: small steps run BLAS on one thread.

``_trainer.thread_plan`` decides from the gemm work of one step
(``6 * batch * sum fan_in * fan_out`` flops) against
``TRAIN_THREADS_MIN_FLOPS``, and never overrides a user's choice (a
``*_NUM_THREADS`` variable, or a threadpoolctl limit below the CPU count).
``Classifier`` applies it for the duration of its epochs.  Logic only:
nothing here is timed (benchmarks/bench_threads.py measures).
"""

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

import cysoftmax
from cysoftmax import Classifier, _trainer

MIN = _trainer.TRAIN_THREADS_MIN_FLOPS
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_step_flops():
    assert _trainer.step_flops([784, 256, 128, 10], 128) == 6 * 128 * (784 * 256 + 256 * 128
                                                                       + 128 * 10)


def _plan(units, batch, env=None, blas=(4,), cpus=4):
    return _trainer.thread_plan(units, batch, environ=env or {}, blas_threads=list(blas),
                                cpus=cpus)


def test_the_threshold_chooses_as_documented():
    # a single layer of k weights at batch 1: 6 k flops
    below = [1, MIN // 6 - 1]
    at = [1, -(-MIN // 6)]
    assert _trainer.step_flops(below, 1) < MIN <= _trainer.step_flops(at, 1)
    assert _plan(below, 1)[0] == 1
    assert _plan(at, 1)[0] is None
    assert _plan([784, 256, 128, 10], 128)[0] is None        # the network: 180 MFLOP
    assert _plan([40, 64, 12], 64)[0] == 1                   # 0.3 MFLOP
    assert "1 BLAS thread" in _plan(below, 1)[1]


@pytest.mark.parametrize("var", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                 "GOTO_NUM_THREADS", "BLIS_NUM_THREADS"])
def test_an_environment_setting_wins(var):
    threads, why = _plan([40, 64, 12], 64, env={var: "4"})
    assert threads is None and var in why
    # an empty variable is no setting
    assert _plan([40, 64, 12], 64, env={var: ""})[0] == 1


def test_a_threadpoolctl_limit_wins():
    # BLAS below the CPU count: a limit the user set
    threads, why = _plan([40, 64, 12], 64, blas=(2,), cpus=4)
    assert threads is None and "user limit" in why
    # BLAS at one thread already: nothing to do
    assert _plan([40, 64, 12], 64, blas=(1,), cpus=4)[0] is None
    # any of several BLAS libraries limited counts
    assert _plan([40, 64, 12], 64, blas=(4, 2), cpus=4)[0] is None


def _blas_threads():
    return [lib.num_threads for lib in
            ThreadpoolController().select(user_api="blas").lib_controllers]


def _threads_inside_fit(monkeypatch, hidden, batch, n_features=40):
    seen = []
    real = _trainer.run_epoch

    def spy(*args, **kw):
        seen.append(_blas_threads())
        return real(*args, **kw)

    monkeypatch.setattr(_trainer, "run_epoch", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, n_features)).astype(np.float32)
    y = rng.integers(0, 5, 300)
    clf = Classifier(hidden_layer_sizes=hidden, max_iter=2, batch_size=batch, random_state=0)
    clf.fit(X, y)
    return seen, clf


def test_a_small_fit_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    monkeypatch.setattr(_trainer, "_default_threads", lambda: 1)   # nothing else limits
    for var in _trainer._THREAD_ENV:
        monkeypatch.delenv(var, raising=False)
    before = _blas_threads()
    with threadpool_limits(limits=3, user_api="blas"):
        monkeypatch.setattr(_trainer, "_default_threads", lambda: 3)
        seen, _ = _threads_inside_fit(monkeypatch, (16,), 32)
        assert seen and all(t == [1] * len(t) for t in seen)
        assert _blas_threads() == [3] * len(before)            # restored
        # a large step keeps BLAS's threads
        monkeypatch.setattr(_trainer, "TRAIN_THREADS_MIN_FLOPS", 1)
        seen, _ = _threads_inside_fit(monkeypatch, (16,), 32)
        assert all(t == [3] * len(t) for t in seen)
    assert _blas_threads() == before


def test_the_users_settings_are_kept_inside_fit(monkeypatch):
    for var in _trainer._THREAD_ENV:
        monkeypatch.delenv(var, raising=False)
    # a threadpoolctl limit below the CPUs this process has
    monkeypatch.setattr(_trainer, "_default_threads", lambda: 4)
    with threadpool_limits(limits=3, user_api="blas"):
        seen, _ = _threads_inside_fit(monkeypatch, (16,), 32)
        assert all(t == [3] * len(t) for t in seen)
    # an environment variable
    monkeypatch.setattr(_trainer, "_default_threads", lambda: 3)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    with threadpool_limits(limits=3, user_api="blas"):
        seen, _ = _threads_inside_fit(monkeypatch, (16,), 32)
        assert all(t == [3] * len(t) for t in seen)


def test_the_policy_fit_is_the_one_thread_fit_bit_for_bit(monkeypatch):
    # what the policy does for a small step is what threadpool_limits(1) does
    _, policy = _threads_inside_fit(monkeypatch, (64,), 64)
    with threadpool_limits(limits=1, user_api="blas"):
        _, one = _threads_inside_fit(monkeypatch, (64,), 64)
    for a, b in zip(policy.coefs_ + policy.intercepts_, one.coefs_ + one.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert policy.loss_curve_ == one.loss_curve_


def test_nested_fits_share_one_limit(monkeypatch):
    monkeypatch.setattr(_trainer, "_default_threads", lambda: 3)
    for var in _trainer._THREAD_ENV:
        monkeypatch.delenv(var, raising=False)
    with threadpool_limits(limits=3, user_api="blas"):
        with _trainer.training_threads([10, 10], 1) as (outer, _):
            assert outer == 1 and set(_blas_threads()) == {1}
            with _trainer.training_threads([10, 10], 1) as (inner, _):
                assert inner == 1
            assert set(_blas_threads()) == {1}                 # the outer one still runs
        assert set(_blas_threads()) == {3}


def test_show_config_states_the_policy():
    import io
    buf = io.StringIO()
    cysoftmax.show_config(file=buf)
    line = [ln for ln in buf.getvalue().splitlines() if ln.startswith("training")]
    assert len(line) == 1
    assert f"below {MIN / 1e6:g} MFLOP" in line[0] and "user limit" in line[0]
