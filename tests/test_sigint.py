"""A real Ctrl-C (SIGINT) during training, in a subprocess.

The documented behaviour (Classifier's Notes; the module docstring of
classifier.py): Ctrl-C during training stops after the epoch in flight
(the compiled epoch runs to its end, without the GIL); the finished epochs
are kept, a UserWarning ("Training interrupted by the user") says so, and
`fit`/`partial_fit` returns.  The tests in test_classifier.py and
test_memmap.py simulate this by raising KeyboardInterrupt from Python
wrappers; here the operating system delivers the signal while the compiled
epoch runs.

Each test starts a fit (max_iter=50, no early stop on a plateau, so that an
ignored signal would run all 50 epochs), sends SIGINT a little into the
second epoch (or part-way into a long partial_fit call) and checks what the
child prints: it returned normally (exit code 0, nothing caught by the
script), with the warning, a small n_iter_ matching the weights (the same
weights as an uninterrupted run of n_iter_ epochs), within a few epochs'
time of the signal, and a usable model.
"""

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="SIGINT cannot be sent to a child process on Windows")

MAX_ITER = 50
N_ROWS = 12000         # 37 MB of float32: a memmap epoch is two slices (_mmap)
STARTUP_TIMEOUT = 180   # import (maybe a rebuild of the extension), data, first epoch
HARD_TIMEOUT = 240      # the whole child, whatever happens

SCRIPT = r"""
import json, sys, time, warnings
import numpy as np
import cysoftmax._trainer
from cysoftmax import Classifier

# a marker line just before each compiled epoch starts (the parent times the
# signal from it, so that it lands inside the epoch, not in the setup)
_run_epoch = cysoftmax._trainer.run_epoch
def _marked(*args, **kw):
    print("EPOCH START", flush=True)
    return _run_epoch(*args, **kw)
cysoftmax._trainer.run_epoch = _marked

mode, path = sys.argv[1], sys.argv[2]
n, max_iter = int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
X = rng.standard_normal((n, 784), dtype=np.float32)
y = np.argmax(X @ rng.standard_normal((784, 10), dtype=np.float32), axis=1)  # learnable
if mode == "memmap":
    np.save(path, X)
    X = np.load(path, mmap_mode="r")
    assert isinstance(X, np.memmap)
# partial_fit's interrupted call is one epoch: a wider layer makes it long
# enough (about 0.1 s) for the signal to land inside it (with 64 units the
# epoch took 0.02 s, and the signal sometimes came after it)
kw = dict(hidden_layer_sizes=(256,) if mode == "partial_fit" else (64,), max_iter=max_iter,
          n_iter_no_change=10**6, tol=0.0, random_state=0)
clf = Classifier(verbose=True, **kw)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if mode == "partial_fit":
        clf.partial_fit(X[:n // 10], y[:n // 10], classes=np.arange(10))   # a short warm-up
        print("CALL", flush=True)
        clf.partial_fit(X, y)                                              # interrupted
    else:
        print("CALL", flush=True)
        clf.fit(X, y)
print("RETURNED", flush=True)

# the reference: the same epochs, uninterrupted
ref = Classifier(**dict(kw, max_iter=max(clf.n_iter_, 1)))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")          # ConvergenceWarning: max_iter reached
    if mode == "partial_fit":
        ref.partial_fit(X[:n // 10], y[:n // 10], classes=np.arange(10))
        ref.partial_fit(X, y)
    else:
        ref.fit(X, y)
params = clf.coefs_ + clf.intercepts_
pred = clf.predict(X[:2000])
print("RESULT " + json.dumps(dict(
    warnings=[f"{w.category.__name__}: {w.message}" for w in caught],
    n_iter=clf.n_iter_, t=clf.t_, n_loss=len(clf.loss_curve_),
    finite=bool(all(np.isfinite(p).all() for p in params)),
    same_as_ref=bool(all(np.array_equal(p, q)
                         for p, q in zip(params, ref.coefs_ + ref.intercepts_))),
    pred_shape=list(pred.shape), acc=float(np.mean(pred == y[:2000])),
    proba_finite=bool(np.isfinite(clf.predict_proba(X[:2000])).all()),
)), flush=True)
"""


class Child:
    """The child process, its stdout read line by line (with arrival times) by a thread."""

    def __init__(self, mode, path):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", SCRIPT, mode, str(path), str(N_ROWS), str(MAX_ITER)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        self.stderr = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    @staticmethod
    def _read(stream, out):
        for line in stream:
            out.put((time.perf_counter(), line.rstrip("\n")))
        out.put((time.perf_counter(), None))

    def wait_for(self, prefix, timeout):
        """(arrival time, line) of the next line starting with prefix (failing after timeout)."""
        deadline = time.perf_counter() + timeout
        while True:
            try:
                t, line = self.lines.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                self.fail(f"no line {prefix!r} within {timeout:.0f} s")
            if line is None:
                self.proc.wait(timeout=30)
                self.fail(f"the child ended (exit code {self.proc.returncode}) "
                          f"before printing {prefix!r}")
            self.seen.append(line)
            if line.startswith(prefix):
                return t, line

    def fail(self, why):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.2)          # let the reader threads drain the pipes
        while not self.lines.empty():
            line = self.lines.get()[1]
            if line is not None:
                self.seen.append(line)
        pytest.fail(f"{why}\n--- stdout:\n" + "\n".join(self.seen)
                    + "\n--- stderr:\n" + "".join(self.stderr)[-4000:])

    def result(self):
        """The child's RESULT, once it exited with code 0."""
        _, line = self.wait_for("RESULT ", HARD_TIMEOUT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("the child did not exit after printing its result")
        if self.proc.returncode != 0:
            self.fail(f"exit code {self.proc.returncode}")
        return json.loads(line[len("RESULT "):])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _epoch_lines(child):
    return [line for line in child.seen if line.startswith("Epoch ")]


def _check_model(child, result, n_train_rows):
    why = "\n" + "\n".join(child.seen) + "\n" + "".join(child.stderr)[-4000:]
    # the documented warning, once, naming the finished epochs
    interrupted = [w for w in result["warnings"] if "interrupted by the user" in w]
    assert len(interrupted) == 1, why
    assert interrupted[0].startswith("UserWarning: ")
    assert f"after {result['n_iter']} finished epochs" in interrupted[0], why
    assert "keeping the weights of the last one" in interrupted[0], why
    assert not any(w.startswith("ConvergenceWarning") for w in result["warnings"]), why
    # the bookkeeping tells the same story as the weights: n_iter_ epochs, all kept
    assert result["n_loss"] == result["n_iter"] == len(_epoch_lines(child)), why
    assert result["t"] == n_train_rows, why
    assert result["same_as_ref"], "the weights are not those of n_iter_ uninterrupted epochs"
    # a usable model
    assert result["finite"] and result["proba_finite"], why
    assert result["pred_shape"] == [2000], why
    assert result["acc"] > 0.3, why          # chance is 0.1; one epoch gives ~0.5


@pytest.mark.parametrize("mode", ["array", "memmap"])
def test_sigint_during_fit_stops_after_the_epoch_in_flight(tmp_path, mode):
    with Child(mode, tmp_path / "X.npy") as child:
        t_call, _ = child.wait_for("CALL", STARTUP_TIMEOUT)
        t_first, line = child.wait_for("Epoch 1,", STARTUP_TIMEOUT)
        child.wait_for("EPOCH START", STARTUP_TIMEOUT)          # epoch 2 begins
        # a little into epoch 2, so that the signal comes during the compiled
        # epoch, not in the Python code between epochs
        time.sleep(min(0.25 * float(line.rsplit(", ", 1)[1].split()[0]), 0.1))
        child.proc.send_signal(signal.SIGINT)
        t_sig = time.perf_counter()
        # one epoch, as the parent saw it (validation, the trainer and epoch 1)
        epoch = t_first - t_call
        t_back, _ = child.wait_for("RETURNED", HARD_TIMEOUT)
        result = child.result()
    # the epoch in flight when the signal came ran to its end (or none had
    # started yet); an ignored signal would have run all MAX_ITER epochs
    assert 1 <= result["n_iter"] <= 3, child.seen
    assert t_back - t_sig < 3 * epoch + 2.0, (t_back - t_sig, epoch, child.seen)
    _check_model(child, result, result["n_iter"] * N_ROWS)


def test_sigint_during_partial_fit_finishes_its_epoch(tmp_path):
    """partial_fit is one epoch: Ctrl-C part-way through lets it run to its
    end, and the call returns with the warning, the epoch counted."""
    with Child("partial_fit", tmp_path / "X.npy") as child:
        _, line = child.wait_for("Epoch 1,", STARTUP_TIMEOUT)
        child.wait_for("CALL", STARTUP_TIMEOUT)
        child.wait_for("EPOCH START", STARTUP_TIMEOUT)      # the long call's epoch begins
        # the warm-up call had a tenth of the rows: its time is about a tenth
        # of the long call's (less, as it included setting the trainer up).
        # A quarter of it into the long epoch (as the fit test): the whole
        # epoch can take as little as 0.02 s, and a signal after the marker
        # is inside the deferral either way (it failed once sleeping 0.02 s:
        # the epoch had ended)
        warm_s = float(line.rsplit(", ", 1)[1].split()[0])
        time.sleep(min(0.25 * warm_s, 0.1))
        child.proc.send_signal(signal.SIGINT)
        t_sig = time.perf_counter()
        t_back, _ = child.wait_for("RETURNED", HARD_TIMEOUT)
        result = child.result()
    assert result["n_iter"] == 2, child.seen
    assert t_back - t_sig < 3 * 10 * max(warm_s, 0.05) + 2.0, (t_back - t_sig, warm_s)
    _check_model(child, result, N_ROWS // 10 + N_ROWS)
