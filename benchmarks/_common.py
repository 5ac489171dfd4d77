"""Shared helpers for the cysoftmax benchmark scripts.

Timing follows `timeit`: warm up, pick a loop count so that one repeat takes
roughly `target_ms`, run several repeats with the garbage collector off and
keep the best (minimum) time per call.  Also: the environment header (CPU,
library versions, BLAS environment variables, thread settings) and a small
table formatter that prints either aligned text or Markdown.
"""

import gc
import os
import platform
import sys
import time

__all__ = [
    "best_time_ns",
    "cpu_model",
    "environment_lines",
    "format_table",
    "parse_shapes",
    "set_threads",
]

# Environment variables that change how cysoftmax / NumPy / OpenBLAS / OpenMP
# behave.  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in particular can slow NumPy
# down; CYSOFTMAX_SIMD forces one SIMD variant of the kernels (read at import).
WATCHED_ENV = (
    "CYSOFTMAX_SIMD",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def best_time_ns(fn, *, target_ms=75.0, repeats=7, warmup_ms=20.0):
    """Best time of one call of ``fn()``, in nanoseconds.

    ``fn`` is first called for about `warmup_ms` (at least twice), which also
    estimates its cost; the loop count per repeat is then chosen so one repeat
    takes about `target_ms`.  Returns the minimum over `repeats` repeats of
    (repeat time / loops).
    """
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # warm-up, which also gives an estimate of the cost of one call
        est = None
        calls = 0
        t_start = clock()
        while calls < 2 or clock() - t_start < warmup_ms * 1e6:
            t0 = clock()
            fn()
            dt = clock() - t0
            est = dt if est is None else min(est, dt)
            calls += 1
        loops = max(1, int(round(target_ms * 1e6 / max(est, 1))))
        best = None
        for _ in range(repeats):
            t0 = clock()
            for _ in range(loops):
                fn()
            per_call = (clock() - t0) / loops
            best = per_call if best is None else min(best, per_call)
        return best
    finally:
        if gc_was_enabled:
            gc.enable()


def cpu_model():
    """CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags(wanted=("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "asimd", "sve")):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(w for w in wanted if w in have)
    except OSError:
        pass
    return "?"


def set_threads(n, torch=None):
    """Limit every thread pool we can reach to `n` threads.

    Returns the threadpoolctl context (keep a reference; it is a no-op object
    when threadpoolctl is missing) and a note describing what was done.
    """
    notes = []
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
        notes.append(f"threadpoolctl limits={n}")
    except ImportError:
        notes.append("threadpoolctl not installed: BLAS/OpenMP pools NOT limited")
    if torch is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:
            pass  # can only be set once, before any inter-op work
        notes.append(f"torch.set_num_threads({n}) -> {torch.get_num_threads()}")
    return limiter, "; ".join(notes)


def environment_lines(modules=()):
    """Lines describing the machine and the software, for the top of a report."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    lines = [
        f"cpu       {cpu_model()}  ({os.cpu_count()} logical CPUs"
        + (f", {affinity} usable" if affinity is not None else "") + ")",
        f"cpu flags {_cpu_flags()}",
        f"platform  {platform.platform()}",
        f"python    {sys.version.split()[0]}",
    ]
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        lines.append(f"load avg  {load} (1/5/15 min at start; other work adds noise)")
    except (AttributeError, OSError):
        pass
    for name, mod in modules:
        if isinstance(mod, str):
            lines.append(f"{name:<9} {mod}")
        elif mod is None:
            lines.append(f"{name:<9} not importable (its columns are skipped)")
        else:
            lines.append(f"{name:<9} {getattr(mod, '__version__', '?')}")
    for var in WATCHED_ENV:
        val = os.environ.get(var)
        lines.append(f"env       {var}: " + ("not set" if val is None else f"SET to {val!r}"))
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            lines.append(f"pool      {info.get('user_api')}/{info.get('internal_api')} "
                         f"threads={info.get('num_threads')} "
                         f"({os.path.basename(info.get('filepath') or '?')})")
    except ImportError:
        pass
    return lines


def parse_shapes(text, ndim=2):
    """Parse "128x10,60000x10" into [(128, 10), (60000, 10)]; `ndim` sizes per
    shape (bench_linear_ce's cases are NxDxM: ndim=3)."""
    example = {2: "4096x1000", 3: "4096x512x32000"}.get(ndim, "x".join(["8"] * ndim))
    shapes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            shape = tuple(int(v) for v in part.split("x"))
        except ValueError:
            shape = ()
        if len(shape) != ndim:
            raise ValueError(f"bad shape {part!r}; expected {ndim} sizes joined by x, "
                             f"e.g. {example}")
        if min(shape) < 1:
            raise ValueError(f"bad shape {part!r}; sizes must be positive")
        shapes.append(shape)
    if not shapes:
        raise ValueError("no shapes given")
    return shapes


def format_table(header, rows, *, markdown=False, title=None, align=None):
    """Render a table; `align` is a string of 'l'/'r' per column (default: first 2 left)."""
    ncol = len(header)
    if align is None:
        align = "ll" + "r" * (ncol - 2)
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    out = []
    if markdown:
        if title:
            out.append(f"#### {title}")
            out.append("")
        out.append("| " + " | ".join(cells[0]) + " |")
        out.append("|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|")
        for r in cells[1:]:
            out.append("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(r[i]) for r in cells) for i in range(ncol)]

        def fmt(r):
            return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                             for c, w, a in zip(r, widths, align)).rstrip()

        if title:
            out.append(title)
        out.append(fmt(cells[0]))
        out.append("  ".join("-" * w for w in widths))
        out.extend(fmt(r) for r in cells[1:])
    return "\n".join(out)
