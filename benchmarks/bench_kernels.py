"""Benchmark the cysoftmax kernels against SciPy, NumPy and PyTorch.

For each shape and dtype, prints nanoseconds per element of

* softmax and log_softmax (over the last axis): cysoftmax, ``scipy.special``,
  a plain NumPy implementation and ``torch.softmax`` / ``torch.log_softmax``
  on ``torch.from_numpy`` of the same array;
* the fused NLL loss + gradient (mean reduction): ``cysoftmax.nll_loss_and_gradient``,
  a NumPy implementation and ``torch.nn.functional.cross_entropy`` forward +
  backward;
* ``np.copyto`` into a preallocated array of the same shape: the
  memory-bandwidth floor.

Ratios are peer time / our time (> 1 means cysoftmax is faster) and our time
/ copy time (how many copies' worth of time we take).  Also reports the
Python call overhead (microseconds per call at shape (128, 10)).

Every side (cysoftmax, NumPy/BLAS, PyTorch) runs with the same number of
threads (``--threads``, default 1).  PyTorch is optional: its columns are
skipped when it is not importable.  Outputs of every peer are checked
against ours before timing.

Usage::

    python benchmarks/bench_kernels.py                      # full run (~2 min on 2 cores)
    python benchmarks/bench_kernels.py --quick --shapes 128x10,60000x10 --dtypes float64
    python benchmarks/bench_kernels.py --markdown > bench.md
"""

import argparse
import contextlib
import io
import os
import shlex
import sys
import time

import numpy as np
import scipy
import scipy.special

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    best_time_ns,
    environment_lines,
    format_table,
    parse_shapes,
    set_threads,
)

DEFAULT_SHAPES = "60000x10,4096x1000,256x32000,128x10"
DEFAULT_DTYPES = "float32,float64"
OVERHEAD_SHAPE = (128, 10)

# normwise relative tolerance for the pre-timing agreement checks
CHECK_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


# ---------------------------------------------------------------- NumPy peers

def np_softmax(z):
    """Plain NumPy softmax over the last axis: max-subtract, exp, sum, divide."""
    e = z - z.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def np_log_softmax(z):
    """Plain NumPy log-softmax over the last axis: (z - max) - log(sum(exp(z - max)))."""
    s = z - z.max(axis=-1, keepdims=True)
    s -= np.log(np.exp(s).sum(axis=-1, keepdims=True))
    return s


def np_nll_loss_and_gradient(z, y):
    """Plain NumPy mean cross-entropy of integer labels and its gradient w.r.t. the logits."""
    n = z.shape[0]
    rows = np.arange(n)
    s = z - z.max(axis=-1, keepdims=True)
    e = np.exp(s)
    tot = e.sum(axis=-1, keepdims=True)
    loss = float(np.mean(np.log(tot[:, 0]) - s[rows, y]))
    e /= tot                     # probabilities
    e[rows, y] -= 1.0            # p - onehot(y)
    e *= 1.0 / n                 # gradient of the mean
    return loss, e


# ------------------------------------------------------------------ utilities

def rel_err(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - ref))) / scale


def fmt_ns(v):
    if v is None:
        return "—"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_ratio(num, den):
    if num is None or den is None:
        return "—"
    return f"{num / den:.2f}x"


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def make_data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape, dtype=np.float64).astype(dtype) * dtype.type(3)
    y = rng.integers(0, shape[1], size=shape[0]).astype(np.intp)
    return np.ascontiguousarray(z), y


# ------------------------------------------------------------------ the bench

def bench_config(cs, torch, F, shape, dtype, timer, warnings):
    """Time every kernel and peer at one (shape, dtype); returns {name: ns per call}."""
    z, y = make_data(shape, dtype)
    tol = CHECK_TOL[dtype]
    tag = f"{shape[0]}x{shape[1]} {dtype.name}"

    fns = {}
    # memory-bandwidth floor
    dst = np.empty_like(z)
    fns["copy"] = lambda: np.copyto(dst, z)

    # softmax / log_softmax
    fns["softmax.ours"] = lambda: cs.softmax(z)
    fns["softmax.scipy"] = lambda: scipy.special.softmax(z, axis=-1)
    fns["softmax.numpy"] = lambda: np_softmax(z)
    fns["log_softmax.ours"] = lambda: cs.log_softmax(z)
    fns["log_softmax.scipy"] = lambda: scipy.special.log_softmax(z, axis=-1)
    fns["log_softmax.numpy"] = lambda: np_log_softmax(z)
    # fused loss + gradient
    fns["loss.ours"] = lambda: cs.nll_loss_and_gradient(z, y)
    fns["loss.numpy"] = lambda: np_nll_loss_and_gradient(z, y)

    if torch is not None:
        zt = torch.from_numpy(z)                          # shares memory with z
        zg = torch.from_numpy(z).requires_grad_(True)     # a separate leaf on the same data
        yt = torch.from_numpy(y.astype(np.int64))

        def torch_ce():
            zg.grad = None                  # fresh gradient each rep (no accumulation)
            loss = F.cross_entropy(zg, yt)  # mean reduction
            loss.backward()
            return loss, zg.grad

        fns["softmax.torch"] = lambda: torch.softmax(zt, dim=-1)
        fns["log_softmax.torch"] = lambda: torch.log_softmax(zt, dim=-1)
        fns["loss.torch"] = torch_ce

    # --- agreement checks (also a warm-up of every code path)
    ref = {"softmax": fns["softmax.ours"](), "log_softmax": fns["log_softmax.ours"]()}
    for kern in ("softmax", "log_softmax"):
        for peer in ("scipy", "numpy", "torch"):
            key = f"{kern}.{peer}"
            if key not in fns:
                continue
            res = fns[key]()
            res = res.detach().numpy() if peer == "torch" else res
            if res.dtype != dtype:
                warnings.append(f"{tag}: {key} returned {res.dtype}, not {dtype}")
            err = rel_err(res, ref[kern])
            if not err <= tol:
                warnings.append(f"{tag}: {key} differs from ours (normwise rel. err {err:.2e})")
    loss0, grad0 = fns["loss.ours"]()
    for peer in ("numpy", "torch"):
        key = f"loss.{peer}"
        if key not in fns:
            continue
        loss1, grad1 = fns[key]()
        if peer == "torch":
            loss1, grad1 = float(loss1.detach()), grad1.numpy()
        e_loss = abs(loss1 - loss0) / max(abs(loss0), 1e-300)
        e_grad = rel_err(grad1, grad0)
        if not (e_loss <= tol and e_grad <= tol):
            warnings.append(f"{tag}: {key} differs from ours "
                            f"(loss rel. err {e_loss:.2e}, grad {e_grad:.2e})")
    del ref, loss0, grad0

    times = {}
    for name, fn in fns.items():
        times[name] = timer(fn)
    return times


def overhead_rows(cs, torch, dtypes, timer):
    """Microseconds per call at a small shape: mostly Python and dispatch overhead."""
    rows = []
    for dtype in dtypes:
        z, y = make_data(OVERHEAD_SHAPE, dtype)
        cands = [
            ("cysoftmax.softmax", lambda: cs.softmax(z)),
            ("cysoftmax.log_softmax", lambda: cs.log_softmax(z)),
            ("cysoftmax.nll_loss_and_gradient", lambda: cs.nll_loss_and_gradient(z, y)),
            ("scipy.special.softmax", lambda: scipy.special.softmax(z, axis=-1)),
            ("numpy softmax (above)", lambda: np_softmax(z)),
        ]
        if torch is not None:
            zt = torch.from_numpy(z)
            cands.append(("torch.softmax", lambda: torch.softmax(zt, dim=-1)))
        base = None
        for name, fn in cands:
            us = timer(fn) / 1e3
            if base is None:
                base = us
            rows.append([name, dtype.name, f"{us:.2f}", f"{us / base:.2f}x"])
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=DEFAULT_SHAPES,
                   help=f"comma-separated ROWSxCOLS list (default {DEFAULT_SHAPES})")
    p.add_argument("--dtypes", default=DEFAULT_DTYPES,
                   help=f"comma-separated dtypes (default {DEFAULT_DTYPES})")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for every library (BLAS/OpenMP pools and torch); default 1")
    p.add_argument("--quick", action="store_true",
                   help="fewer, shorter repeats (3 x ~30 ms instead of 5 x ~75 ms)")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    args = p.parse_args(argv)

    try:
        shapes = parse_shapes(args.shapes)
    except ValueError as exc:
        p.error(str(exc))
    dtypes = []
    for name in args.dtypes.split(","):
        dt = np.dtype(name.strip())
        if dt not in CHECK_TOL:
            p.error(f"unsupported dtype {name!r}; use float32 and/or float64")
        dtypes.append(dt)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    repeats, target_ms = (3, 30.0) if args.quick else (5, 75.0)

    def timer(fn):
        return best_time_ns(fn, target_ms=target_ms, repeats=repeats)

    torch = F = None
    if not args.no_torch:
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            torch = F = None

    t_import = time.perf_counter()
    import cysoftmax as cs  # editable install: may rebuild here
    t_import = time.perf_counter() - t_import

    limiter, thread_note = set_threads(args.threads, torch)
    md = args.markdown
    t_start = time.perf_counter()

    # ---- header
    buf = io.StringIO()
    cs.show_config(file=buf)
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    torch_info = "skipped (--no-torch)" if args.no_torch else torch
    head = [f"command   {cmd}",
            *environment_lines([("numpy", np), ("scipy", scipy), ("torch", torch_info)])]
    head.append(f"threads   {args.threads} ({thread_note})")
    head.append(f"timing    best of {repeats} repeats, each ~{target_ms:.0f} ms of loops, "
                f"after warm-up; perf_counter_ns, gc off")
    if t_import > 1.0:
        head.append(f"note      importing cysoftmax took {t_import:.1f} s (editable rebuild)")
    if md:
        print(f"### cysoftmax kernel benchmark (threads={args.threads})\n")
        print("```")
        print(buf.getvalue().rstrip())
        print("\n".join(head))
        print("```\n")
    else:
        print("=" * 78)
        print(f"cysoftmax kernel benchmark (threads={args.threads})")
        print("=" * 78)
        print(buf.getvalue().rstrip())
        print("\n".join(head))
        print()

    # ---- measurements
    results = []
    warnings = []
    configs = [(s, d) for s in shapes for d in dtypes]
    for i, (shape, dtype) in enumerate(configs, 1):
        progress(f"[{i}/{len(configs)}] {shape[0]}x{shape[1]} {dtype.name} "
                 f"({time.perf_counter() - t_start:.0f} s elapsed)")
        times = bench_config(cs, torch, F, shape, dtype, timer, warnings)
        results.append((shape, dtype, times))
    progress("call overhead")
    ovh = overhead_rows(cs, torch, dtypes, timer)

    # ---- tables
    thr = f"threads={args.threads}"
    for kern, label in (("softmax", "softmax(axis=-1)"), ("log_softmax", "log_softmax(axis=-1)")):
        rows = []
        for shape, dtype, t in results:
            nel = shape[0] * shape[1]
            g = {k: (t.get(f"{kern}.{k}") / nel if f"{kern}.{k}" in t else None)
                 for k in ("ours", "scipy", "numpy", "torch")}
            cp = t["copy"] / nel
            rows.append([f"{shape[0]}x{shape[1]}", dtype.name,
                         fmt_ns(g["ours"]), fmt_ns(g["scipy"]), fmt_ns(g["numpy"]),
                         fmt_ns(g["torch"]), fmt_ns(cp),
                         fmt_ratio(g["scipy"], g["ours"]), fmt_ratio(g["numpy"], g["ours"]),
                         fmt_ratio(g["torch"], g["ours"]), fmt_ratio(g["ours"], cp)])
        header = ["shape", "dtype", "ours ns/el", "scipy ns/el", "numpy ns/el", "torch ns/el",
                  "copy ns/el", "scipy/ours", "numpy/ours", "torch/ours", "ours/copy"]
        if torch is None:
            rows = [r[:5] + r[6:9] + r[10:] for r in rows]
            header = header[:5] + header[6:9] + header[10:]
        print(format_table(header, rows, markdown=md, title=f"{label}  [{thr}]"))
        print()

    rows = []
    for shape, dtype, t in results:
        nel = shape[0] * shape[1]
        g = {k: (t[f"loss.{k}"] / nel if f"loss.{k}" in t else None)
             for k in ("ours", "numpy", "torch")}
        cp = t["copy"] / nel
        rows.append([f"{shape[0]}x{shape[1]}", dtype.name,
                     fmt_ns(g["ours"]), fmt_ns(g["numpy"]), fmt_ns(g["torch"]), fmt_ns(cp),
                     fmt_ratio(g["numpy"], g["ours"]), fmt_ratio(g["torch"], g["ours"]),
                     fmt_ratio(g["ours"], cp)])
    header = ["shape", "dtype", "ours ns/el", "numpy ns/el", "torch ns/el", "copy ns/el",
              "numpy/ours", "torch/ours", "ours/copy"]
    if torch is None:
        rows = [r[:4] + r[5:7] + r[8:] for r in rows]
        header = header[:4] + header[5:7] + header[8:]
    title = ("NLL loss + gradient, mean reduction  (ours: nll_loss_and_gradient"
             + ("; torch: cross_entropy forward+backward" if torch is not None else "")
             + f")  [{thr}]")
    print(format_table(header, rows, markdown=md, title=title))
    print()

    print(format_table(["function", "dtype", "us/call", "vs cysoftmax.softmax"], ovh,
                       markdown=md, align="llrr",
                       title=f"Python call overhead at shape {OVERHEAD_SHAPE[0]}x"
                             f"{OVERHEAD_SHAPE[1]}  [{thr}]"))
    print()

    notes = [
        "ns/el = best time per call / (rows*cols). Ratios peer/ours > 1 mean cysoftmax is "
        "faster; ours/copy = our time in units of the np.copyto bandwidth floor "
        "(copy writes into a preallocated array; every other column allocates its output).",
        "numpy = plain NumPy (max-subtract, exp, sum, divide; log version subtracts "
        "log(sum(exp))); torch = torch.softmax/log_softmax(torch.from_numpy(z), dim=-1) and "
        "F.cross_entropy forward+backward with int64 labels, grad reset to None each rep.",
    ]
    if warnings:
        notes.append("AGREEMENT WARNINGS:")
        notes.extend("  " + w for w in warnings)
    else:
        notes.append("agreement: every peer matched cysoftmax before timing "
                     f"(normwise rel. err <= {CHECK_TOL[np.dtype(np.float32)]:g} float32, "
                     f"{CHECK_TOL[np.dtype(np.float64)]:g} float64).")
    load = ""
    with contextlib.suppress(AttributeError, OSError):
        load = "; load avg at end " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    notes.append(f"total benchmark time {time.perf_counter() - t_start:.0f} s{load}")
    if md:
        print("\n".join(f"- {n}" if not n.startswith("  ") else f"  - {n.strip()}"
                        for n in notes))
    else:
        print("\n".join(notes))

    with contextlib.suppress(Exception):
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
