"""The estimator's link to the compiled trainer (``_engine.Trainer``).

Owns what the engine is given: the initial weights (`init_weights`,
MLPClassifier's Glorot draws), the mini-batch size (`batch_size_for`), the
trainer cache of a `Classifier`: which hyper-parameters make a trainer
(`config`), when a kept one can be reused, and how the optimizer state
(velocities, Adam's moments) carries over into a rebuilt one
(`trainer_for`); and one epoch (`run_epoch`), through the file when X is
memory-mapped (`_mmap`); where a Ctrl-C lands during training
(`interrupts_deferred`: between two epochs); and how many BLAS threads the
epochs run on (`thread_plan`, `training_threads`: the thread policy).  It
calls the engine and `_mmap`, never the estimator module.
"""

import contextlib
import os
import signal
import threading
import warnings

import numpy as np

from ._engine import Trainer
from ._mmap import _MappedFile
from ._validation import check_dropout

__all__ = ["init_weights", "batch_size_for", "config", "trainer_for", "run_epoch",
           "step_flops", "thread_plan", "training_threads", "TRAIN_THREADS_MIN_FLOPS"]


def init_weights(units, activation, dtype, rng):
    """Glorot-uniform ``(coefs, intercepts)`` for the layer sizes `units`:
    MLPClassifier's initialization, the same draws from `rng` in the same order."""
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        intercepts.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
    return coefs, intercepts


def batch_size_for(batch_size, n):
    """MLPClassifier's mini-batch size for `n` training rows: ``min(200, n)`` for
    "auto", else `batch_size` clipped to ``[1, n]`` (with its warning)."""
    if batch_size == "auto":
        return min(200, n)
    if batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                      "It is going to be clipped")
    return int(np.clip(batch_size, 1, n))


def config(est, out_activation="softmax"):
    """The hyper-parameters a trainer is built with (its cache key)."""
    # (learning_rate_init is not part of it: every epoch passes its rate)
    return dict(
        out_activation=out_activation,
        dropout=check_dropout(est.dropout, len(est.coefs_) - 1),
        label_smoothing=float(est.label_smoothing),
        activation=est.activation,
        solver=est.solver,
        alpha=float(est.alpha),
        momentum=float(est.momentum),
        nesterovs_momentum=bool(est.nesterovs_momentum),
        beta_1=float(est.beta_1),
        beta_2=float(est.beta_2),
        epsilon=float(est.epsilon),
    )


def trainer_for(est, batch_size, incremental):
    """The trainer bound to coefs_/intercepts_ for this call.

    `fit` starts a fresh optimizer (as MLPClassifier); `partial_fit` keeps
    the optimizer state, also when the trainer must be rebuilt (a larger
    batch, changed hyper-parameters, or after unpickling).
    """
    cfg = config(est, est.out_activation_)
    trainer = getattr(est, "_trainer_cache", None)
    if (incremental and trainer is not None and trainer.max_batch >= batch_size
            and getattr(est, "_trainer_key", None) == cfg):
        trainer.bind(est.coefs_, est.intercepts_)
        return trainer
    carry = None
    if incremental:
        carry = (trainer.optimizer_state if trainer is not None
                 else getattr(est, "_optimizer_state", None))
    new = Trainer(est.coefs_, est.intercepts_, batch_size,
                    learning_rate_init=float(est.learning_rate_init), **cfg)
    if carry and same_form(carry, new.optimizer_state):
        new.set_optimizer_state(carry)
    est._trainer_cache = new
    est._trainer_key = cfg
    est._optimizer_state = None
    return new


def run_epoch(trainer, X, y, sample_weight, order, batch_size, lr, schedule=None, seed=0):
    """One epoch in compiled code; X on a memory-mapped file is read slice by slice.

    schedule: None (every batch at `lr`) or the cosine schedule's
    ``(lr0, epochs_done, warmup, total, n_batches)``; seed: the key of the
    epoch's dropout masks."""
    with _MappedFile.open(X) as f:
        if f is not None:
            return f.run_epoch(trainer, y, sample_weight, order, batch_size, lr, schedule,
                               seed)
    return trainer.run_epoch(X, y, sample_weight, order, batch_size, lr, schedule, seed)


def same_form(state, target):
    """True when an optimizer state can be copied into a trainer whose state is `target`."""
    if set(state) != set(target):
        return False
    for key, value in target.items():
        if isinstance(value, list):
            if len(state[key]) != len(value) or any(
                    np.shape(a) != np.shape(b) for a, b in zip(state[key], value)):
                return False
    return True


@contextlib.contextmanager
def interrupts_deferred():
    """Within: Ctrl-C sets a flag instead of raising ``KeyboardInterrupt``.

    Yields a list that is non-empty once a SIGINT arrived.  The training
    driver checks it after each epoch's bookkeeping, so an interrupt always
    lands between two epochs: the compiled epoch runs without the GIL to its
    end, and Python would otherwise raise the interrupt the moment that call
    returns, before the epoch is counted (weights of N + 1 epochs, n_iter_
    of N).  Only where Python's own handler is in place, in the main thread
    (a handler of the user's own, or a worker thread, is left as it is).
    """
    flag = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield flag
        return

    def note(signum, frame):
        flag.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------
# the thread policy of training (README, "Threads")
# --------------------------------------------------------------------------

# A training step whose matrix products are below this many flops runs BLAS
# on one thread: its gemm calls are too small for a second thread to pay
# for the hand-offs, and an OpenBLAS worker keeps spinning after each call,
# so on a machine whose other cores are busy the second thread makes a step
# several times slower.  Measured with benchmarks/bench_threads.py (2-vCPU
# Zen 4 VM, float32, Adam, 1 vs 2 threads interleaved, medians of 3
# processes): see README "Threads".
TRAIN_THREADS_MIN_FLOPS = 20_000_000

# environment variables that set a BLAS's thread count: the user's choice
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
               "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

_controller: list = []        # the ThreadpoolController, made at first use
_policy_lock = threading.Lock()
_policy_users = [0, None]     # fits inside the policy's limit, and its limiter


def step_flops(units, batch_size):
    """Flops of the matrix products of one training step of the layer sizes
    `units` at `batch_size` rows: forward, deltas and weight gradients,
    ``6 * batch * sum_l fan_in * fan_out``."""
    return 6 * int(batch_size) * sum(int(a) * int(b) for a, b in zip(units[:-1], units[1:]))


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries, or None without threadpoolctl."""
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:          # pragma: no cover - scikit-learn requires it
            _controller.append(None)
        else:
            _controller.append(ThreadpoolController())
    return _controller[0]


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:           # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def thread_plan(units, batch_size, environ=None, blas_threads=None, cpus=None):
    """``(threads, why)``: the BLAS thread count training takes for steps of
    the layer sizes `units` at `batch_size`, and the reason.

    threads is 1 when the policy limits BLAS to one thread for the fit, None
    when training leaves BLAS's thread count as it is.  A user's choice
    always wins: a ``*_NUM_THREADS`` variable in the environment, or a BLAS
    thread count below the CPUs this process may run on (a
    ``threadpoolctl.threadpool_limits`` in force).  `environ`,
    `blas_threads` (the BLAS libraries' thread counts) and `cpus` default
    to the process's own; the tests pass them.
    """
    environ = os.environ if environ is None else environ
    set_by = [k for k in _THREAD_ENV if environ.get(k, "").strip()]
    if blas_threads is None:
        ctl = _blas_controller()
        if ctl is None:
            return None, "BLAS's own thread count (threadpoolctl is not installed)"
        blas_threads = [lib.num_threads for lib in ctl.select(user_api="blas").lib_controllers]
    if not blas_threads:
        return None, "BLAS's own thread count (threadpoolctl sees no BLAS)"
    cpus = _default_threads() if cpus is None else cpus
    current = min(blas_threads)
    flops = step_flops(units, batch_size)
    with _policy_lock:
        ours = _policy_users[0] > 0       # another fit's policy limit is in force
    if not ours:
        if current <= 1:
            return None, ("BLAS's 1 thread (" + (f"set by {', '.join(set_by)}" if set_by else
                                                 "a user limit, or one CPU") + ")")
        if set_by:
            return None, f"BLAS's {current} threads (set by {', '.join(set_by)})"
        if current < cpus:
            return None, f"BLAS's {current} threads (a user limit: threadpoolctl)"
    if flops < TRAIN_THREADS_MIN_FLOPS:
        return 1, (f"1 BLAS thread: a step's matrix products are {flops / 1e6:.1f} MFLOP, "
                   f"below {TRAIN_THREADS_MIN_FLOPS / 1e6:g}")
    return None, (f"BLAS's {current} thread{'s' if current > 1 else ''}: a step's matrix "
                  f"products are {flops / 1e6:.1f} MFLOP, at least "
                  f"{TRAIN_THREADS_MIN_FLOPS / 1e6:g}")


@contextlib.contextmanager
def training_threads(units, batch_size):
    """Within: BLAS runs on the threads `thread_plan` gives (yields it).

    The limit is process-wide (BLAS has one thread count): fits in several
    Python threads at once share it; it is set by the first fit that asks
    for one thread and lifted when the last of them ends."""
    threads, why = thread_plan(units, batch_size)
    if threads is None:
        yield threads, why
        return
    with _policy_lock:
        if _policy_users[0] == 0:
            _policy_users[1] = _blas_controller().limit(limits=threads, user_api="blas")
        _policy_users[0] += 1
    try:
        yield threads, why
    finally:
        with _policy_lock:
            _policy_users[0] -= 1
            if _policy_users[0] == 0:
                _policy_users[1].restore_original_limits()
                _policy_users[1] = None
