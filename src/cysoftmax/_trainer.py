"""The estimator's link to the compiled trainer (``_dense.Workspace``).

Owns the trainer cache of a `Classifier`: which hyper-parameters make a
trainer (`config`), when a kept one can be reused, and how the optimizer
state (velocities, Adam's moments) carries over into a rebuilt one
(`trainer_for`); and one epoch (`run_epoch`), through the file when X is
memory-mapped (`_mmap`).  It calls the engine and `_mmap`, never the
estimator module.
"""

import numpy as np

from ._dense import Workspace
from ._mmap import _MappedFile

__all__ = ["config", "trainer_for", "run_epoch"]


def config(est):
    # (learning_rate_init is not part of it: every epoch passes its rate)
    return dict(
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
    """The workspace bound to coefs_/intercepts_ for this call.

    `fit` starts a fresh optimizer (as MLPClassifier); `partial_fit` keeps
    the optimizer state, also when the workspace must be rebuilt (a larger
    batch, changed hyper-parameters, or after unpickling).
    """
    cfg = config(est)
    ws = getattr(est, "_workspace", None)
    if (incremental and ws is not None and ws.max_batch >= batch_size
            and getattr(est, "_workspace_key", None) == cfg):
        ws.bind(est.coefs_, est.intercepts_)
        return ws
    carry = None
    if incremental:
        carry = ws.optimizer_state if ws is not None else getattr(est, "_optimizer_state", None)
    new = Workspace(est.coefs_, est.intercepts_, batch_size,
                    learning_rate_init=float(est.learning_rate_init), **cfg)
    if carry and same_form(carry, new.optimizer_state):
        new.set_optimizer_state(carry)
    est._workspace = new
    est._workspace_key = cfg
    est._optimizer_state = None
    return new


def run_epoch(ws, X, y, sample_weight, order, batch_size, lr):
    """One epoch in compiled code; X on a memory-mapped file is read slice by slice."""
    with _MappedFile.open(X) as f:
        if f is not None:
            return f.run_epoch(ws, y, sample_weight, order, batch_size, lr)
    return ws.run_epoch(X, y, sample_weight, order, batch_size, lr)


def same_form(state, target):
    """True when an optimizer state can be copied into a workspace whose state is `target`."""
    if set(state) != set(target):
        return False
    for key, value in target.items():
        if isinstance(value, list):
            if len(state[key]) != len(value) or any(
                    np.shape(a) != np.shape(b) for a, b in zip(state[key], value)):
                return False
    return True
