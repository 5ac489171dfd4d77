"""Error of log_softmax and logsumexp against a 50-digit reference, by logit scale.

For each scale s in 1e-2 .. 1e4 (log-spaced) and each dtype, draws logits
``s * N(0, 1)`` (fixed seed), rounds them to the dtype, and computes the
exact result of those rounded inputs with mpmath at 50 digits.  The error
of each library is measured as the tests measure ours:
``max |computed - ref| / (eps * max(1, |ref|))`` (eps of the dtype), the
largest over all entries of the batch.  The dashed line is the tests'
bound, 16.  PyTorch is drawn only when it can be imported (the legend says
whether it was).

Run it alone with ``python docs/scripts/accuracy_vs_scale.py`` (a few
seconds); the documentation build runs it through matplotlib's plot
directive.
"""

import matplotlib.pyplot as plt
import mpmath
import numpy as np
import scipy.special

import cysoftmax

try:
    import torch
except ImportError:
    torch = None

ROWS, CLASSES = 24, 16
SCALES = np.logspace(-2, 4, 13)
DTYPES = (np.float32, np.float64)
mpmath.mp.dps = 50


def reference(z):
    """(log_softmax, logsumexp) of the float array z, exactly to 50 digits."""
    lsm = np.empty(z.shape, dtype=object)
    lse = np.empty(z.shape[0], dtype=object)
    for i, row in enumerate(z):
        mrow = [mpmath.mpf(float(v)) for v in row]
        top = max(mrow)
        lse_i = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in mrow))
        lse[i] = lse_i
        lsm[i] = [v - lse_i for v in mrow]
    return lsm, lse


def error(computed, ref, dtype):
    """max |computed - ref| / (eps * max(1, |ref|)), in float64 from mpmath."""
    eps = float(np.finfo(dtype).eps)
    c = np.asarray(computed, dtype=np.float64).ravel()
    r = ref.ravel()
    worst = 0.0
    for ci, ri in zip(c, r):
        err = abs(mpmath.mpf(float(ci)) - ri) / (eps * max(1, abs(ri)))
        worst = max(worst, float(err))
    return worst


def peers(dtype):
    """name -> (log_softmax, logsumexp) functions taking an array of dtype."""
    out = {
        "cysoftmax": (lambda z: cysoftmax.log_softmax(z),
                      lambda z: cysoftmax.logsumexp(z)),
        "scipy.special": (lambda z: scipy.special.log_softmax(z, axis=-1),
                          lambda z: scipy.special.logsumexp(z, axis=-1)),
    }
    if torch is not None:
        out["torch"] = (
            lambda z: torch.log_softmax(torch.from_numpy(z), dim=-1).numpy(),
            lambda z: torch.logsumexp(torch.from_numpy(z), dim=-1).numpy(),
        )
    return out


def measure():
    rng = np.random.default_rng(20261203)
    base = rng.standard_normal((ROWS, CLASSES))
    results = {}   # (dtype name, function, peer) -> list of errors by scale
    for dtype in DTYPES:
        for scale in SCALES:
            z = (scale * base).astype(dtype)
            ref_lsm, ref_lse = reference(z)
            for name, (f_lsm, f_lse) in peers(dtype).items():
                key = np.dtype(dtype).name
                results.setdefault((key, "log_softmax", name), []).append(
                    error(f_lsm(z), ref_lsm, dtype))
                results.setdefault((key, "logsumexp", name), []).append(
                    error(f_lse(z), ref_lse, dtype))
    return results


def plot(results):
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
    styles = {"cysoftmax": ("C0", "o"), "scipy.special": ("C1", "s"),
              "torch": ("C2", "^")}
    for col, dtype in enumerate(DTYPES):
        key = np.dtype(dtype).name
        for row, func in enumerate(("log_softmax", "logsumexp")):
            ax = axes[row, col]
            for name, (color, marker) in styles.items():
                errs = results.get((key, func, name))
                if errs is None:
                    continue
                # an exact result (error 0) is drawn at 1e-3, the bottom of the axis
                ax.plot(SCALES, np.maximum(errs, 1e-3), marker=marker, color=color,
                        label=name, lw=1.2, ms=4)
            ax.axhline(16, color="k", ls="--", lw=0.8, label="tests' bound (16)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(5e-4, 1e2)
            ax.set_title(f"{func}, {key}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            if row == 1:
                ax.set_xlabel("logit scale s  (z = s * N(0, 1))")
            if col == 0:
                ax.set_ylabel("max error / (eps * max(1, |ref|))")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if torch is None:
        handles.append(plt.Line2D([], [], ls="none"))
        labels.append("torch: not importable, not drawn")
    axes[0, 0].legend(handles, labels, loc="lower left", fontsize=7.5, ncol=2)
    fig.suptitle(f"Error against mpmath (50 digits), {ROWS} x {CLASSES} logits "
                 "per point; an exact result is drawn at 1e-3", fontsize=10)
    return fig


results = measure()
plot(results)

if __name__ == "__main__":
    plt.show()
