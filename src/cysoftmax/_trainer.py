"""The estimator's link to the compiled trainer (``_engine.Trainer``).

Owns what the engine is given: the initial weights (`init_weights`,
MLPClassifier's Glorot draws), the mini-batch size (`batch_size_for`), the
trainer cache of a `Classifier`: which hyper-parameters make a trainer
(`config`), when a kept one can be reused, and how the optimizer state
(velocities, Adam's moments) carries over into a rebuilt one
(`trainer_for`); and one epoch (`run_epoch`), through the file when X is
memory-mapped (`_mmap`); and where a Ctrl-C lands during training
(`interrupts_deferred`: between two epochs).  It calls the engine and
`_mmap`, never the estimator module.
"""

import contextlib
import signal
import threading
import warnings

import numpy as np

from ._engine import Trainer
from ._mmap import _MappedFile
from ._validation import check_dropout

__all__ = ["init_weights", "batch_size_for", "config", "trainer_for", "run_epoch"]


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
