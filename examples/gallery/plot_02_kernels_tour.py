"""
A tour of the kernels: extreme logits, masks and special values
===============================================================

The row kernels (:func:`cysoftmax.softmax`, :func:`cysoftmax.log_softmax`,
:func:`cysoftmax.logsumexp`, :func:`cysoftmax.nll_loss_and_gradient`) shift
every row by its maximum, keep log-probabilities as ``(z - r) - log s``
and follow fixed rules for ``-inf``, ``+inf`` and NaN. This example shows
what that buys against the formula as written and against ``scipy.special``.
"""

# %%
# Logits far from zero
# --------------------
# ``exp(1000)`` overflows float64, so the softmax as written returns NaN; the
# shifted one is exact. Its logarithm stays finite long after the
# probability itself has underflowed to 0.
import matplotlib.pyplot as plt
import numpy as np
import scipy.special

import cysoftmax

z = np.array([[1000.0, 0.0, -1000.0]])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
print("as written:      ", naive)
print("cysoftmax:       ", cysoftmax.softmax(z))
print("log_softmax:     ", cysoftmax.log_softmax(z))
with np.errstate(divide="ignore"):
    print("log of softmax:  ", np.log(cysoftmax.softmax(z)))

# %%
# The cost of a confident mistake
# -------------------------------
# The NLL of the row ``[0, -g]`` with label 1 is ``g + log(1 + e^-g)``. The
# figure draws the relative error of three ways to compute it against the
# closed form in ``mpmath``, over the gap ``g``: the log of the softmax
# (infinite once ``e^-g`` underflows), ``scipy.special.log_softmax``, and
# :func:`cysoftmax.nll_loss`.
import mpmath

mpmath.mp.dps = 40
gaps = np.logspace(-1, 3.5, 60)
errors = {"log(softmax)": [], "scipy.special.log_softmax": [],
          "cysoftmax.nll_loss": []}
for g in gaps:
    row = np.array([[0.0, -g]])
    exact = mpmath.mpf(g) + mpmath.log1p(mpmath.exp(-mpmath.mpf(g)))
    with np.errstate(divide="ignore"):
        values = (-np.log(cysoftmax.softmax(row)[0, 1]),
                  -scipy.special.log_softmax(row, axis=1)[0, 1],
                  cysoftmax.nll_loss(row, [1]))
    for name, v in zip(errors, values):
        if np.isfinite(v):
            rel = float(abs((mpmath.mpf(float(v)) - exact) / exact))
        else:
            rel = np.inf
        errors[name].append(min(rel / np.finfo(float).eps, 1e17))

fig, ax = plt.subplots(figsize=(6.5, 3.6))
for (name, err), marker in zip(errors.items(), "o^s"):
    ax.plot(gaps, np.maximum(err, 1e-2), marker=marker, ms=3, lw=1, label=name)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("gap g in the row [0, -g], label 1")
ax.set_ylabel("relative error / eps")
ax.set_title("NLL of a confident mistake\n(infinite drawn at 1e17, exact at 1e-2)",
             fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Masks
# -----
# ``-inf`` entries are masked: their probability is exactly 0 and the other
# entries are computed as if they were absent. A causal (lower-triangular)
# mask, as in attention, needs nothing more than ``-inf`` above the diagonal.
rng = np.random.default_rng(0)
scores = rng.standard_normal((6, 6))
scores[np.triu_indices(6, k=1)] = -np.inf
weights = cysoftmax.softmax(scores)
print(weights.round(3))
print("rows sum to 1:", np.allclose(weights.sum(axis=1), 1.0))
print("masked entries are exactly 0:", bool(np.all(weights[np.isinf(scores)] == 0.0)))

fig, ax = plt.subplots(figsize=(3.6, 3.2))
im = ax.imshow(weights, cmap="viridis")
ax.set_title("causal-masked softmax", fontsize=10)
fig.colorbar(im, ax=ax)
fig.tight_layout()

# %%
# Special values, one row at a time
# ---------------------------------
# A row with a NaN, a ``+inf`` or only ``-inf`` gives NaN probabilities in
# that row only (as PyTorch); logsumexp follows SciPy (``+inf`` if any entry
# is ``+inf``, ``-inf`` for an all-masked row). A row of sample weight 0
# contributes exactly 0 to the NLL, whatever its logits.
z = np.array([[1.0, 2.0, -np.inf],
              [np.nan, 0.0, 0.0],
              [np.inf, 0.0, 0.0],
              [-np.inf, -np.inf, -np.inf]])
print(cysoftmax.softmax(z).round(4))
print(cysoftmax.logsumexp(z), scipy.special.logsumexp(z, axis=1))
print(cysoftmax.nll_loss(z, [1, 0, 0, 0], sample_weight=[1.0, 0.0, 0.0, 0.0]))

# %%
# One pass for the loss and its gradient
# --------------------------------------
# :func:`cysoftmax.nll_loss_and_gradient` returns the mean NLL and its
# gradient ``(p - onehot(y)) / n`` in one pass over the logits. A central
# finite difference checks it; float32 stays float32.
z = rng.standard_normal((5, 4)).astype(np.float32)
y = np.array([0, 3, 1, 1, 2])
loss, grad = cysoftmax.nll_loss_and_gradient(z, y)
z64, h = z.astype(np.float64), 1e-6
fd = np.empty_like(z64)
for idx in np.ndindex(z.shape):
    up, down = z64.copy(), z64.copy()
    up[idx] += h
    down[idx] -= h
    fd[idx] = (cysoftmax.nll_loss(up, y) - cysoftmax.nll_loss(down, y)) / (2 * h)
print(loss.dtype if hasattr(loss, "dtype") else type(loss), grad.dtype,
      "max |grad - finite difference| =", f"{np.abs(grad - fd).max():.1e}")
plt.show()
