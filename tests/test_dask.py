"""cysoftmax on a Dask cluster: dask-ml's Incremental and ParallelPostFit,
GridSearchCV through joblib's dask backend, models crossing processes,
worker thread limits, and a clean shutdown.

One LocalCluster of two worker processes (one thread each) on the loopback
interface serves the module; it is started once (a few seconds: the workers
import cysoftmax and scikit-learn) and must leave no process and no port
behind.  Skipped when dask[array], distributed or dask-ml is missing
(``pip install "cysoftmax[dask]"``; the ``test`` extra installs them).
"""

import importlib
import os
import pickle
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import _requires
from numpy.testing import assert_allclose, assert_array_equal


def _import_or_skip(name):
    """The module, or skip this file: not installed, or not importable here
    (e.g. dask-ml imports dask.dataframe, whose pyarrow may need a newer numpy)."""
    return _requires.import_module(name, "dask", module_level=True)


da = _import_or_skip("dask.array")
distributed = _import_or_skip("distributed")
wrappers = _import_or_skip("dask_ml.wrappers")
joblib = _import_or_skip("joblib")
psutil = _import_or_skip("psutil")
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from cysoftmax import Classifier  # noqa: E402
from cysoftmax.datasets import load_fashion_mnist_sample  # noqa: E402

CHUNK = 500
PARAMS = dict(hidden_layer_sizes=(32,), batch_size=50, random_state=0)


def _new_cluster(n_workers=2):
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True,
        host="127.0.0.1", dashboard_address=None)


def _addresses(client):
    """Every listening address of the cluster: scheduler, workers, nannies."""
    info = client.scheduler_info()
    workers = info["workers"]
    host = info["address"].split("://", 1)[1].rsplit(":", 1)[0]
    http = [f"tcp://{host}:{port}" for port in info.get("services", {}).values()]
    return ([info["address"]] + http + list(workers)
            + [w["nanny"] for w in workers.values() if w.get("nanny")])


def _is_listening(address):
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect((host, int(port)))
        except OSError:
            return False
        return True


def _children():
    """Live child processes of this one (psutil comes with distributed), but
    multiprocessing's resource tracker: started with the first spawned
    process, it lives as long as Python does."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and not any(
                    "resource_tracker" in part for part in p.cmdline()):
                out.add((p.pid, p.create_time()))
        except psutil.Error:          # gone meanwhile
            pass
    return out


@pytest.fixture(scope="module")
def client():
    before = _children()
    with _new_cluster() as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        addresses = _addresses(c)
        yield c
    # the module's cluster, too, must go away without leftovers
    assert not [a for a in addresses if _is_listening(a)]
    assert _children() <= before       # (loky workers of other modules may exit)


@pytest.fixture(scope="module")
def data():
    X, y = load_fashion_mnist_sample("train")
    Xt, yt = load_fashion_mnist_sample("test")
    return X, y, Xt, yt


def _local_partial_fits(X, y, passes):
    """What Incremental does, in this process: partial_fit block after block."""
    clf = Classifier(**PARAMS)
    classes = np.unique(y)
    for _ in range(passes):
        for start in range(0, len(X), CHUNK):
            clf.partial_fit(X[start:start + CHUNK], y[start:start + CHUNK], classes=classes)
    return clf


def test_incremental_matches_local_partial_fit(client, data):
    X, y, Xt, yt = data
    dX = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    dy = da.from_array(y, chunks=CHUNK)
    inc = wrappers.Incremental(Classifier(**PARAMS), shuffle_blocks=False)
    inc.fit(dX, dy, classes=np.unique(y))              # pass 1
    inc.partial_fit(dX, dy, classes=np.unique(y))      # pass 2: continues from pass 1
    remote = inc.estimator_
    assert remote.n_iter_ == 2 * len(X) // CHUNK and remote.t_ == 2 * len(X)
    # the workers run one BLAS/OpenMP thread each; with the same limit here
    # the local model is the same, bit for bit (other thread counts change
    # the order of gemm's sums, so the last bits)
    with threadpool_limits(limits=1):
        local = _local_partial_fits(X, y, passes=2)
    for a, b in zip(remote.coefs_ + remote.intercepts_, local.coefs_ + local.intercepts_):
        assert_array_equal(a, b)
    acc_remote, acc_local = remote.score(Xt, yt), local.score(Xt, yt)
    assert abs(acc_remote - acc_local) <= 0.01
    assert acc_local > 0.7


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_parallel_post_fit_equals_local_predict_proba(client, data):
    X, y, Xt, _ = data
    clf = Classifier(**PARAMS, max_iter=3).fit(X, y)
    dXt = da.from_array(Xt, chunks=(300, Xt.shape[1]))     # uneven last block
    ppf = wrappers.ParallelPostFit(estimator=clf)
    proba = ppf.predict_proba(dXt)
    assert isinstance(proba, da.Array)
    got = proba.compute()
    pred = ppf.predict(dXt).compute()
    # each worker predicts one block of 300 rows, with one thread: so does
    # this process, block by block (gemm's rounding of a row may depend on
    # where the row falls in its block: OpenBLAS 0.3.30 gives rows in its
    # kernel's edge tile other last bits, so the whole Xt in one call is
    # compared to rounding only, below)
    with threadpool_limits(limits=1):
        want = np.concatenate([clf.predict_proba(Xt[i:i + 300]) for i in range(0, len(Xt), 300)])
        want_pred = np.concatenate([clf.predict(Xt[i:i + 300]) for i in range(0, len(Xt), 300)])
    assert got.dtype == want.dtype == np.float32
    assert_array_equal(got, want)                      # row for row, bit for bit
    assert_array_equal(pred, want_pred)
    # with this process's own thread count: the same up to rounding
    assert_allclose(got, clf.predict_proba(Xt), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_over_the_cluster_matches_local(client, data):
    from sklearn.model_selection import GridSearchCV
    X, y, _, _ = data
    X, y = X[:1500], y[:1500]
    grid = {"hidden_layer_sizes": [(4,), (32,)], "learning_rate_init": [1e-4, 3e-3]}

    def search(n_jobs):
        return GridSearchCV(Classifier(max_iter=4, batch_size=50, random_state=0), grid,
                            cv=3, n_jobs=n_jobs).fit(X, y)

    # the refit runs here, in this process: on one BLAS thread, as the workers
    with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as tasks, \
            threadpool_limits(limits=1):
        remote = search(n_jobs=-1)
    # the 4 candidates x 3 folds ran on the workers (joblib sends them in batches)
    keys = [t["key"] for t in tasks.data if "_fit_and_score" in str(t["key"])]
    calls = [re.search(r"_(\d+)_calls", str(k)) for k in keys]
    assert sum(int(m.group(1)) if m else 1 for m in calls) == 12
    with threadpool_limits(limits=1):
        local = search(n_jobs=1)         # no loky processes left behind
    assert remote.best_params_ == local.best_params_
    # one BLAS thread on both sides, the same seeds and folds: the same bits
    assert_array_equal(remote.cv_results_["mean_test_score"],
                       local.cv_results_["mean_test_score"])
    assert_array_equal(remote.cv_results_["std_test_score"],
                       local.cv_results_["std_test_score"])
    for a, b in zip(remote.best_estimator_.coefs_ + remote.best_estimator_.intercepts_,
                    local.best_estimator_.coefs_ + local.best_estimator_.intercepts_):
        assert_array_equal(a, b)
    assert remote.best_estimator_.score(X, y) == local.best_estimator_.score(X, y)


def _continue_training(clf, X, y):
    return clf.partial_fit(X, y)


def _train_trainer(ws, X, y, order):
    """Run one epoch with a trainer that came through pickle; return it and the loss."""
    loss = ws.run_epoch(X, y, None, order, 50)
    return ws, loss


def test_model_and_trainer_cross_processes(client, data):
    X, y, _, _ = data
    with threadpool_limits(limits=1):
        clf = Classifier(**PARAMS).partial_fit(X[:1000], y[:1000], classes=np.unique(y))
    # the fitted model, with its optimizer state (Adam's moments), goes to a
    # worker, trains on, and comes back: the same as training on here
    fut = client.submit(_continue_training, clf, X[1000:2000], y[1000:2000], pure=False)
    remote = fut.result()
    with threadpool_limits(limits=1):
        local = pickle.loads(pickle.dumps(clf)).partial_fit(X[1000:2000], y[1000:2000])
    assert remote.t_ == local.t_ == 2000
    for a, b in zip(remote.coefs_ + remote.intercepts_, local.coefs_ + local.intercepts_):
        assert_array_equal(a, b)
    assert remote.loss_ == local.loss_
    assert_array_equal(remote.predict_proba(X[:50]), local.predict_proba(X[:50]))

    # the compiled trainer alone: pickled with its weights and optimizer state
    from cysoftmax._engine import Trainer
    coefs = [c.copy() for c in clf.coefs_]
    intercepts = [b.copy() for b in clf.intercepts_]
    ws = Trainer(coefs, intercepts, 50, solver="adam")
    order = np.arange(500, dtype=np.intp)
    yy = y[:500].astype(np.intp)
    ws_remote, loss_remote = client.submit(_train_trainer, ws, X[:500], yy, order,
                                           pure=False).result()
    with threadpool_limits(limits=1):
        loss_local = ws.run_epoch(X[:500], yy, None, order, 50)
    assert loss_remote == loss_local
    assert ws_remote.optimizer_state["t"] == ws.optimizer_state["t"] == 10
    for a, b in zip(ws_remote.coefs + ws_remote.intercepts, ws.coefs + ws.intercepts):
        assert_array_equal(a, b)
    for a, b in zip(ws_remote.optimizer_state["ms"], ws.optimizer_state["ms"]):
        assert_array_equal(a, b)


def _thread_settings():
    from cysoftmax import _softmax
    pools = threadpool_info()
    return {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cysoftmax_openmp": _softmax.max_threads() if _softmax.openmp_enabled() else None,
        "pools": [(p["user_api"], p["prefix"], p["num_threads"]) for p in pools],
    }


def test_workers_run_one_thread_each(client):
    # Dask's nanny sets OMP_NUM_THREADS=1 (and the BLAS variables) in each
    # worker process (config distributed.nanny.pre-spawn-environ): two
    # workers on two cores do not oversubscribe them.  cysoftmax's OpenMP
    # kernels and the BLAS of its gemm (scipy's OpenBLAS) follow.
    settings = client.run(_thread_settings)
    assert len(settings) == 2
    for s in settings.values():
        assert s["OMP_NUM_THREADS"] == "1"
        assert s["cysoftmax_openmp"] in (None, 1)
        assert {api for api, _, _ in s["pools"]} >= {"blas"}
        assert all(n == 1 for _, _, n in s["pools"]), s["pools"]


# the module's cluster still holds the scheduler's default HTTP port (8787,
# on 127.0.0.1: no dashboard, health routes only); this one takes another
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_cluster_shuts_down_cleanly(data):
    X, y, _, _ = data
    before = _children()
    with _new_cluster(n_workers=1) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(1)
        addresses = _addresses(c)
        worker_pids = list(c.run(os.getpid).values())
        assert all(_is_listening(a) for a in addresses)
        assert set(worker_pids) <= {pid for pid, _ in _children()}    # ours, to check
        dX = da.from_array(X[:1000], chunks=(CHUNK, X.shape[1]))
        dy = da.from_array(y[:1000], chunks=CHUNK)
        inc = wrappers.Incremental(Classifier(hidden_layer_sizes=(8,), random_state=0))
        inc.fit(dX, dy, classes=np.unique(y))
        assert inc.estimator_.n_iter_ == 2
    assert not [a for a in addresses if _is_listening(a)]
    assert _children() <= before
    for pid in worker_pids:
        try:
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            pass


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dask_fashion_mnist.py"


def test_example_runs_and_exits(tmp_path):
    # its own process (and cluster): it must finish, and exit, by itself
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--sample", "--passes", "2", "--workers", "1",
         "--hidden", "16"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "embedded sample" in lines[0]
    passes = [line for line in lines if line.startswith("pass ")]
    assert len(passes) == 2
    acc = float(passes[-1].rsplit(" ", 1)[1])
    assert acc > 0.6
    assert lines[-1] == "cluster closed"
    assert list(tmp_path.iterdir()) == []     # its .npy blocks (in $TMPDIR) are gone
