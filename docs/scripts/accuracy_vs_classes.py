"""Relative error of softmax by class count, against an extended-precision reference.

For each class count m in 10 .. 10**6 (log-spaced) and each dtype, draws
4 rows of logits ``N(0, 1)`` (fixed seed), rounds them to the dtype, and
computes the softmax of those rounded inputs in ``np.longdouble`` (x87
80-bit on x86-64: 11 more bits than float64, so the reference's own error
is below 0.001 eps of float64 at every m drawn).  The error of each library
is the largest over all entries of ``|p - p_ref| / (eps * p_ref)``, in
units of the dtype's eps: the relative error of every probability, small
ones included.  With logits of unit scale the conditioning term
``|z_j - max z|`` of the bound is at most about 10, so what grows with m is
the summation error of the normalizer.  PyTorch is drawn only when it can
be imported.

Run it alone with ``python docs/scripts/accuracy_vs_classes.py`` (a few
seconds); the documentation build runs it through matplotlib's plot
directive.
"""

import matplotlib.pyplot as plt
import numpy as np
import scipy.special

import cysoftmax

try:
    import torch
except ImportError:
    torch = None

ROWS = 4
CLASSES = np.unique(np.logspace(1, 6, 11).round().astype(int))
DTYPES = (np.float32, np.float64)

if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
    raise RuntimeError("needs an extended-precision np.longdouble (x86-64 Linux)")


def reference(z):
    zl = z.astype(np.longdouble)
    e = np.exp(zl - zl.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def error(p, ref, dtype):
    eps = np.longdouble(np.finfo(dtype).eps)
    return float(np.max(np.abs(p.astype(np.longdouble) - ref) / (eps * ref)))


def peers():
    out = {"cysoftmax": cysoftmax.softmax,
           "scipy.special": lambda z: scipy.special.softmax(z, axis=1)}
    if torch is not None:
        out["torch"] = lambda z: torch.softmax(torch.from_numpy(z), dim=1).numpy()
    return out


def measure():
    rng = np.random.default_rng(20261203)
    base = rng.standard_normal((ROWS, CLASSES[-1]))
    results = {}
    for dtype in DTYPES:
        for m in CLASSES:
            z = np.ascontiguousarray(base[:, :m]).astype(dtype)
            ref = reference(z)
            for name, f in peers().items():
                p = f(z)
                assert p.dtype == dtype, (name, p.dtype)
                results.setdefault((np.dtype(dtype).name, name), []).append(
                    error(p, ref, dtype))
    return results


def plot(results):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    styles = {"cysoftmax": ("C0", "o"), "scipy.special": ("C1", "s"),
              "torch": ("C2", "^")}
    for ax, dtype in zip(axes, DTYPES):
        key = np.dtype(dtype).name
        for name, (color, marker) in styles.items():
            errs = results.get((key, name))
            if errs is not None:
                ax.plot(CLASSES, errs, marker=marker, color=color, label=name,
                        lw=1.2, ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"softmax, {key}", fontsize=10)
        ax.set_xlabel("classes per row m")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("max |p - p_ref| / (eps * p_ref)")
    handles, labels = axes[0].get_legend_handles_labels()
    if torch is None:
        handles.append(plt.Line2D([], [], ls="none"))
        labels.append("torch: not importable, not drawn")
    axes[0].legend(handles, labels, loc="upper left", fontsize=8)
    fig.suptitle(f"Relative error of every probability, {ROWS} rows of N(0, 1) "
                 "logits per point, against np.longdouble", fontsize=10)
    return fig


results = measure()
plot(results)

if __name__ == "__main__":
    for k, v in sorted(results.items()):
        print(k, " ".join(f"{e:.3g}" for e in v))
    plt.show()
