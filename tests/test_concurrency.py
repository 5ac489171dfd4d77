"""Calls from many Python threads at once.

The kernels run without the GIL, so calls from several threads overlap in
compiled code.  Each test starts 8 threads behind a barrier (so that they
really run at the same time), has them call the public functions on shared,
read-only inputs (``flags.writeable = False``), and compares every result
with the serial one: exactly equal, NaN where NaN.  Two Classifiers trained
at the same time give the same models as trained one after the other.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cysoftmax import (
    Classifier,
    backprop,
    forward,
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

N_THREADS = 8
ROUNDS = 6


def frozen(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _data(dtype, n=3000, m=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m)) * 4
    z[5, 3] = np.nan                          # special rows ride along
    z[7] = -np.inf
    z[9, 1] = np.inf
    z[11, ::2] = -np.inf
    y = rng.integers(0, m, n)
    w = rng.uniform(0, 2, n)
    return frozen(z.astype(dtype)), frozen(y), frozen(w)


def _net(dtype, n=800, sizes=(20, 32, 16, 10), seed=1):
    rng = np.random.default_rng(seed)
    X = frozen(rng.standard_normal((n, sizes[0])).astype(dtype))
    y = frozen(rng.integers(0, sizes[-1], n))
    coefs = [frozen((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype))
             for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [frozen(rng.standard_normal(b).astype(dtype) * 0.1) for b in sizes[1:]]
    return X, y, coefs, intercepts


def run_together(jobs):
    """Run the callables `jobs` (one per thread) at the same time, each ROUNDS times;
    return every result, per job."""
    barrier = threading.Barrier(len(jobs))

    def worker(job):
        barrier.wait()
        return [job() for _ in range(ROUNDS)]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(worker, job) for job in jobs]
        return [f.result(timeout=300) for f in futures]


def assert_same(got, ref):
    """Exactly equal (NaN where NaN), recursively through tuples and lists."""
    if isinstance(ref, (tuple, list)):
        assert type(got) is type(ref) and len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_same(g, r)
    elif isinstance(ref, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
    else:
        assert got == ref or (np.isnan(got) and np.isnan(ref)), (got, ref)


def kernel_jobs(dtype):
    z, y, w = _data(dtype)
    X, yn, coefs, intercepts = _net(dtype)
    return {
        "softmax": lambda: softmax(z),
        "log_softmax-axis0": lambda: log_softmax(z, axis=0),
        "logsumexp": lambda: logsumexp(z),
        "nll_loss-weighted": lambda: nll_loss(z, y, sample_weight=w),
        "local_gradient": lambda: local_gradient(z, y),
        "nll_loss_and_gradient": lambda: nll_loss_and_gradient(z, y, sample_weight=w,
                                                               reduction="sum"),
        "forward": lambda: forward(X, coefs, intercepts, activation="tanh"),
        "backprop": lambda: backprop(X, yn, coefs, intercepts, alpha=1e-3),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(kernel_jobs(np.float64)))
def test_one_function_from_8_threads(name, dtype):
    job = kernel_jobs(dtype)[name]
    ref = job()
    for results in run_together([job] * N_THREADS):
        for got in results:
            assert_same(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_functions_at_once(dtype):
    """8 threads, each on another function, all overlapping."""
    jobs = kernel_jobs(dtype)
    refs = {k: job() for k, job in jobs.items()}
    names = list(jobs)
    assert len(names) == N_THREADS
    for name, results in zip(names, run_together([jobs[k] for k in names])):
        for got in results:
            assert_same(got, refs[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_private_out_buffers_from_8_threads(dtype):
    """Each thread writes into its own out= buffer (and one in place) while the
    others read the shared input."""
    z, y, _ = _data(dtype)
    ref_p, ref_g = softmax(z), local_gradient(z, y)

    def job():
        out = np.empty_like(z)
        softmax(z, out=out)
        inplace = np.array(z)
        log_softmax(inplace, out=inplace)
        g = np.empty_like(z)
        local_gradient(z, y, out=g)
        return out, g, inplace

    ref_log = log_softmax(z)
    for results in run_together([job] * N_THREADS):
        for out, g, inplace in results:
            assert_same(out, ref_p)
            assert_same(g, ref_g)
            assert_same(inplace, ref_log)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(2)
    y = np.arange(600) % 4
    X = rng.standard_normal((600, 12)) + y[:, None] * 0.7
    models = {}
    for dtype in (np.float32, np.float64):
        Xd = frozen(X.astype(dtype))
        models[np.dtype(dtype).name] = (
            Classifier(hidden_layer_sizes=(32, 16), max_iter=5, random_state=0).fit(Xd, y), Xd)
    return models


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["predict_proba", "predict_log_proba", "predict"])
def test_classifier_predictions_from_8_threads(fitted, method, dtype):
    clf, X = fitted[dtype]
    ref = getattr(clf, method)(X)
    job = lambda: getattr(clf, method)(X)        # noqa: E731
    for results in run_together([job] * N_THREADS):
        for got in results:
            assert_same(got, ref)


def _training_data(seed):
    rng = np.random.default_rng(seed)
    y = np.arange(400) % 3
    X = frozen(rng.standard_normal((400, 10)) + y[:, None])
    return X, frozen(y)


def _model(clf):
    return [clf.classes_] + clf.coefs_ + clf.intercepts_ + [np.array(clf.loss_curve_)]


@pytest.mark.parametrize("kw", [
    dict(solver="adam"),
    dict(solver="sgd", momentum=0.9, learning_rate_init=0.05),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2),
], ids=["adam", "sgd-momentum", "adam-early-stopping"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_classifiers_fitted_at_once_equal_fitted_in_turn(kw, dtype):
    data = [_training_data(0), _training_data(1)]
    data = [(X.astype(dtype), y) for X, y in data]

    def make(i):
        return Classifier(hidden_layer_sizes=(24,), max_iter=8, random_state=i, **kw)

    serial = [make(i).fit(*data[i]) for i in range(2)]
    together = [make(i) for i in range(2)]
    barrier = threading.Barrier(2)

    def fit(i):
        barrier.wait()
        return together[i].fit(*data[i])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fit, range(2)))
    for a, b in zip(serial, together):
        assert_same(_model(b), _model(a))


def test_training_while_other_threads_predict(fitted):
    """partial_fit of one model in one thread while 7 others predict with another."""
    clf, X = fitted["float64"]
    ref = clf.predict_proba(X)
    Xt, yt = _training_data(3)
    trained = Classifier(hidden_layer_sizes=(16,), random_state=0)
    reference = Classifier(hidden_layer_sizes=(16,), random_state=0)
    for _ in range(ROUNDS):
        reference.partial_fit(Xt, yt, classes=[0, 1, 2])

    def train():
        for _ in range(ROUNDS):
            trained.partial_fit(Xt, yt, classes=[0, 1, 2])
        return trained

    def predict():
        return clf.predict_proba(X)

    jobs = [train] + [predict] * (N_THREADS - 1)
    barrier = threading.Barrier(len(jobs))

    def worker(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(worker, jobs))
    for got in results[1:]:
        assert_same(got, ref)
    assert_same(_model(trained), _model(reference))
