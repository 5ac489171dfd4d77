"""Benchmark the fused linear + cross-entropy (issue 17) against its peers.

For each case (n rows, d features, m classes, dtype, threads) every
contender computes the mean cross-entropy of ``Z = A @ W + b`` with integer
labels ``y`` and its gradients w.r.t. A, W and b:

  fused        ``cysoftmax.linear_nll_loss_and_gradient(A, W, b, y)`` (skipped,
               with a note, when this cysoftmax does not have it)
  unfused      ``Z = np.matmul(A, W, out=Z)`` into a preallocated (n, m) array,
               ``Z += b``, ``loss, G = cysoftmax.nll_loss_and_gradient(Z, y, out=Z)``,
               ``dA = G @ W.T``, ``dW = A.T @ G``, ``db = G.sum(0)``
  torch        ``F.cross_entropy(F.linear(A, W_t, b), y).backward()``
  lce          ``F.linear_cross_entropy(A, W_t, y, linear_bias=b).backward()``
               (``options=None``: PyTorch's reference path)
  lce_auto     the same with ``options=LinearCrossEntropyOptions()``
  lce_b1024    ... ``LinearCrossEntropyOptions(batch_chunk_size=1024)``
  lce_ar1      ... ``LinearCrossEntropyOptions(chunking_method="aspect_ratio")``
  lce_ar2      ... ``LinearCrossEntropyOptions(chunking_method="aspect_ratio:2")``

(``W_t`` is PyTorch's (m, d) weight layout: ``np.ascontiguousarray(W.T)``,
made once before anything is measured; A, W_t, b require grad.)

Every (case, contender) runs in a fresh process (this script re-invoked with
``--child``), with ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` set to the thread count in its environment, so before
NumPy or PyTorch is imported, and ``torch.set_num_threads`` called after
PyTorch's import.  The cysoftmax children do not import PyTorch, the PyTorch
ones do not import cysoftmax.  A child

1. builds the inputs (A (n, d) standard normal / sqrt(d) and W (d, m)
   standard normal, so the logits are O(1); b (m,) 0.1 x standard normal;
   int64 labels), each written in full (so resident),
2. makes one call of the same contender at a tiny shape (32x8x16): library
   set-up that is not the call's workspace (OpenBLAS's per-thread buffers,
   PyTorch's thread pool, lazy imports) is then counted in neither,
3. resets the peak resident set size (writes 5 to /proc/self/clear_refs;
   where that is unavailable the ru_maxrss high-water mark is used, which
   cannot be reset: its delta is then a lower bound, marked "~"), reads
   VmRSS, makes the FIRST call of the real case, keeps its results alive
   and reads VmHWM: extra memory = VmHWM - VmRSS before the call,
   workspace = extra memory - the bytes of the returned gradients
   (dA n*d, dW d*m, db m, in the dtype; what every contender must hand back),
4. times ``--repeats`` more calls (best and median reported; the first call
   is reported apart), the garbage collector off, the previous results
   dropped before each call,
5. prints one JSON line: times, memory, the loss and the norms of the
   gradients (the parent checks every contender against "unfused"), the
   warnings the first call raised (a PyTorch option that falls back to
   the reference path says so with a warning), the chunk the PyTorch options
   resolve to and, for "fused", ``cysoftmax._engine.last_linear_workspace()``.

Tables: per case, each contender's first/best/median time, its time over
"unfused" and over "fused" (for the PyTorch rows: > 1 means cysoftmax is
faster), extra memory and workspace in MiB, the workspace over one (n, m)
logits array and over the smallest workspace of PyTorch's chunked
``linear_cross_entropy`` options; then a summary over the cases and the
issue's targets, each met or missed.

``--out FILE`` appends every result (and a header record per run) as JSON
lines; results already in FILE for the same case, contender and repeats
(and, for the cysoftmax contenders, the same cysoftmax build) are reused, not
re-run, so a long run can be resumed and runs combined (``--force`` re-runs).
``--from-json FILE`` prints the tables of saved results without running.

Usage::

    python benchmarks/bench_linear_ce.py --quick     # smoke run: 512x64x4000, 1 thread, < 1 min
    python benchmarks/bench_linear_ce.py --shapes 4096x512x32000 --dtypes float32 \\
        --threads 2 --repeats 1
    python benchmarks/bench_linear_ce.py --out lce.jsonl --markdown   # full: hours
    python benchmarks/bench_linear_ce.py --from-json lce.jsonl --markdown
"""

import argparse
import gc
import hashlib
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import environment_lines, format_table, parse_shapes  # noqa: E402

DEFAULT_SHAPES = "4096x512x32000,4096x1024x32000,4096x512x128000,4096x1024x128000"
QUICK_SHAPES = "512x64x4000"
DEFAULT_DTYPES = "float32,float64"
DEFAULT_THREADS = "1,2"
TINY = (32, 8, 16)            # the set-up call's shape (n, d, m)
MIB = 2.0 ** 20
FUSED_TARGET = 1.2            # fused time / unfused time must be <= this
CHUNK_ELEMENTS = 2 ** 24      # the documented default bound on one block of logits,
MIN_ROWS = 128                # and its floor in rows
LOW_MEMORY = ("lce_auto", "lce_ar1", "lce_ar2")   # PyTorch's low-memory chunkings

# name -> (label, kind, options kwargs for LinearCrossEntropyOptions or None)
CONTENDERS = {
    "fused": ("cysoftmax fused", "cysoftmax", None),
    "unfused": ("cysoftmax unfused", "cysoftmax", None),
    "torch": ("torch linear+cross_entropy", "torch", None),
    "lce": ("torch linear_cross_entropy default", "torch", None),
    "lce_auto": ("torch lce Options()", "torch", {}),
    "lce_b1024": ("torch lce batch_chunk_size=1024", "torch", {"batch_chunk_size": 1024}),
    "lce_ar1": ("torch lce aspect_ratio", "torch", {"chunking_method": "aspect_ratio"}),
    "lce_ar2": ("torch lce aspect_ratio:2", "torch", {"chunking_method": "aspect_ratio:2"}),
}
CHUNKED = [k for k, v in CONTENDERS.items() if v[2] is not None]   # the chunked lce options

# normwise relative agreement with "unfused" (loss and gradient norms)
CHECK_TOL = {"float32": 2e-4, "float64": 1e-9}


# ---------------------------------------------------------------- child side


def _status_kib():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    return out


class PeakMeter:
    """Peak resident memory of one call, above the resident memory before it."""

    def __init__(self):
        self.method = None

    def start(self):
        import resource

        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            st = _status_kib()
            if st.get("VmHWM") is None or st["VmHWM"] > st["VmRSS"] + (1 << 20):
                raise OSError("VmHWM not reset")
            self.method = "VmHWM"
        except OSError:
            self.method = "ru_maxrss"
        try:
            self.rss0 = _status_kib()["VmRSS"]
        except (OSError, KeyError):
            self.rss0 = None
        self.maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def stop(self):
        import resource

        if self.method == "VmHWM":
            peak = _status_kib()["VmHWM"]
            return {"rss_before": self.rss0, "peak": peak, "extra": peak - self.rss0,
                    "method": "VmHWM", "exact": True}
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        base = self.rss0 if self.rss0 is not None else self.maxrss0
        # a high-water mark below the old one is invisible: a lower bound
        return {"rss_before": self.rss0, "peak": maxrss, "extra": max(0, maxrss - base),
                "method": "ru_maxrss", "exact": maxrss > self.maxrss0}


def make_inputs(n, d, m, dtype, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d), dtype=dtype)
    A *= 1.0 / math.sqrt(d)           # logits A @ W ~ N(0, 1)
    W = rng.standard_normal((d, m), dtype=dtype)
    b = rng.standard_normal(m, dtype=dtype)
    b *= 0.1
    y = rng.integers(0, m, n, dtype=np.int64)
    return A, W, b, y


def cysoftmax_call(name, A, W, b, y):
    """-> fn() returning (loss, dA, dW, db), or a string saying why it is skipped."""
    import numpy as np

    import cysoftmax

    if name == "fused":
        fused = getattr(cysoftmax, "linear_nll_loss_and_gradient", None)
        if fused is None:
            return (f"cysoftmax {getattr(cysoftmax, '__version__', '?')} has no "
                    "linear_nll_loss_and_gradient")

        def fn():
            return fused(A, W, b, y)
        return fn

    nll = cysoftmax.nll_loss_and_gradient
    n, m = A.shape[0], W.shape[1]

    def fn():
        Z = np.empty((n, m), dtype=A.dtype)
        np.matmul(A, W, out=Z)
        Z += b
        loss, G = nll(Z, y, out=Z)
        dA = G @ W.T
        dW = A.T @ G
        db = G.sum(0)
        return loss, dA, dW, db
    return fn


def torch_call(name, A, W_t, b, y, extra):
    """-> fn() returning (loss, dA, dW_t, db) (fresh .grad each call)."""
    import torch
    import torch.nn.functional as F

    tA = torch.from_numpy(A).requires_grad_(True)
    tW = torch.from_numpy(W_t).requires_grad_(True)
    tb = torch.from_numpy(b).requires_grad_(True)
    ty = torch.from_numpy(y)
    params = (tA, tW, tb)
    kw = CONTENDERS[name][2]
    if name == "torch":
        def loss_fn():
            return F.cross_entropy(F.linear(tA, tW, tb), ty)
    else:
        opts = None
        if kw is not None:
            opts = torch.nn.LinearCrossEntropyOptions(**kw)
            try:   # what the options resolve to here (private API: best effort)
                r = opts._adjust(A.shape[0], A.shape[1], W_t.shape[0], tA.dtype, tA.device)
                extra["torch_resolved"] = {"batch_chunk_size": r.batch_chunk_size,
                                           "chunking_method": r.chunking_method,
                                           "acc_policy": r.acc_policy,
                                           "acc_dtype": str(r.acc_dtype)}
            except Exception as exc:  # noqa: BLE001
                extra["torch_resolved"] = {"error": repr(exc)}

        def loss_fn():
            return F.linear_cross_entropy(tA, tW, ty, linear_bias=tb, options=opts)

    def fn():
        for p in params:
            p.grad = None
        loss = loss_fn()
        loss.backward()
        return loss.detach(), tA.grad, tW.grad, tb.grad
    return fn


def _norm(x):
    import numpy as np

    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return float(np.linalg.norm(x.astype(np.float64, copy=False).ravel()))


def run_child(spec):
    """Measure one (case, contender); returns the result record."""
    t_start = time.perf_counter()
    n, d, m = spec["n"], spec["d"], spec["m"]
    name, threads, dtype = spec["contender"], spec["threads"], spec["dtype"]
    kind = CONTENDERS[name][1]
    rec = dict(spec, kind="result", status="ok", load_start=list(os.getloadavg()))
    import numpy as np

    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
        rec["torch_threads"] = torch.get_num_threads()
        rec["torch_version"] = torch.__version__
    else:
        import cysoftmax

        rec["cysoftmax_version"] = getattr(cysoftmax, "__version__", "?")
        rec["cysoftmax_build"] = build_id()
    with_pools(rec)

    def prepare(nn, dd, mm, extra):
        A, W, b, y = make_inputs(nn, dd, mm, np.dtype(dtype))
        if kind == "torch":
            W_t = np.ascontiguousarray(W.T)
            del W
            return torch_call(name, A, W_t, b, y, extra)
        return cysoftmax_call(name, A, W, b, y)

    # set-up call at a tiny shape (library initialization is not workspace)
    fn = prepare(*TINY, {})
    if isinstance(fn, str):
        rec.update(status="skipped", reason=fn)
        return rec
    fn()
    del fn
    fn = prepare(n, d, m, rec)
    itemsize = np.dtype(dtype).itemsize
    rec["input_bytes"] = (n * d + d * m + m) * itemsize + n * 8
    rec["grad_bytes"] = (n * d + d * m + m) * itemsize
    rec["logits_bytes"] = n * m * itemsize

    meter = PeakMeter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meter.start()
        t0 = time.perf_counter()
        res = fn()
        t1 = time.perf_counter()
        mem = meter.stop()
    rec["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    rec["first_s"] = t1 - t0
    rec["mem"] = mem
    rec["extra_bytes"] = mem["extra"]
    rec["workspace_bytes"] = mem["extra"] - rec["grad_bytes"]
    loss, dA, dW, db = res
    rec["loss"] = float(loss)
    rec["norms"] = [_norm(dA), _norm(dW), _norm(db)]
    rec["out_dtypes"] = sorted({str(getattr(g, "dtype", "?")).replace("torch.", "")
                                for g in (dA, dW, db)})
    if name == "fused":
        from cysoftmax import _engine

        lw = getattr(_engine, "last_linear_workspace", None)
        rec["last_linear_workspace"] = list(lw()) if lw is not None else None
    del res, loss, dA, dW, db

    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - t0)
            del res
    finally:
        gc.enable()
    rec["times"] = times
    rec["best_s"] = min(times) if times else rec["first_s"]
    rec["median_s"] = statistics.median(times) if times else rec["first_s"]
    rec["load_end"] = list(os.getloadavg())
    rec["child_s"] = time.perf_counter() - t_start
    return rec


def with_pools(rec):
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        rec["pools"] = None
        return
    rec["pools"] = [f"{i.get('user_api')}/{i.get('internal_api')} threads={i.get('num_threads')}"
                    for i in threadpool_info()]


def build_id():
    """Where cysoftmax is and a digest of its compiled extension: runs of one build
    can be combined, results of another cysoftmax build are re-run."""
    import cysoftmax
    from cysoftmax import _engine

    path = getattr(_engine, "__file__", None)
    digest = None
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
    src = os.path.dirname(getattr(cysoftmax, "__file__", "") or ".")
    try:
        commit = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{commit or '?'}:{digest or '?'}"


# ---------------------------------------------------------------- parent side


def parse_list(text, allowed, what):
    vals = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in vals if v not in allowed]
    if bad or not vals:
        raise ValueError(f"bad {what} {', '.join(bad) or text!r}; choose from "
                         + ", ".join(allowed))
    return list(dict.fromkeys(vals))


def case_key(r):
    return (r["n"], r["d"], r["m"], r["dtype"], r["threads"])


def load_records(path):
    recs = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except ValueError:
                print(f"{path}:{i}: not JSON, skipped", file=sys.stderr)
    return recs


def run_one(spec, timeout):
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(spec["threads"])
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(spec, kind="result", status="error", reason=f"timed out after {timeout} s")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return dict(spec, kind="result", status="error",
                    reason=f"exit status {p.returncode}: {tail[:300]}")
    rec = json.loads(lines[-1])
    rec["process_s"] = time.perf_counter() - t0
    return rec


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def fmt_s(t):
    if t is None:
        return "-"
    return f"{t:.3g}" if t < 10 else f"{t:.1f}"


def fmt_ratio(a, b, suffix="x"):
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.2f}{suffix}"


def fmt_mib(nbytes, exact=True):
    if nbytes is None:
        return "-"
    return ("" if exact else "~") + f"{nbytes / MIB:.1f}"


def tables(records, md, contenders=None):
    """Text of every table, and the notes, for the result records."""
    results = {}
    for r in records:   # the last record of a (case, contender) wins
        if r.get("kind") == "result":
            results[(case_key(r), r["contender"])] = r
    cases = sorted({k for k, _ in results}, key=lambda c: (c[4], c[3], c[2], c[1], c[0]))
    names = [c for c in CONTENDERS if contenders is None or c in contenders]
    out, notes, summary, targets = [], [], [], []
    for case in cases:
        n, d, m, dtype, threads = case
        got = {c: results.get((case, c)) for c in names}
        ok = {c: r for c, r in got.items() if r and r.get("status") == "ok"}
        t_unf = ok.get("unfused", {}).get("best_s")
        t_fus = ok.get("fused", {}).get("best_s")
        isz = 4 if dtype == "float32" else 8
        logits = n * m * isz
        chunked_ws = [(ok[c]["workspace_bytes"], c) for c in CHUNKED if c in ok]
        min_lce = min(chunked_ws) if chunked_ws else None
        ref = ok.get("unfused")
        rows = []
        for c in names:
            r = got[c]
            label = CONTENDERS[c][0]
            if r is None:
                continue
            if r.get("status") != "ok":
                rows.append([label, r.get("status")] + ["-"] * 10
                            + [str(r.get("reason", ""))[:70]])
                continue
            exact = r["mem"].get("exact", True)
            note = []
            if r.get("warnings"):
                note.append("WARNED: " + "; ".join(w[:90] for w in r["warnings"]))
            tr = r.get("torch_resolved")
            if tr and "batch_chunk_size" in tr:
                note.append(f"chunk {tr['batch_chunk_size']} rows, {tr['acc_policy']}")
            lw = r.get("last_linear_workspace")
            if lw:
                note.append(f"chunk {lw[0]} rows, C buffer {lw[1] / MIB:.1f} MiB")
            if ref is not None and c != "unfused":
                tol = CHECK_TOL.get(dtype, 1e-6)
                devs = [abs(a - b) / max(abs(b), 1e-300)
                        for a, b in zip([r["loss"], *r["norms"]], [ref["loss"], *ref["norms"]])]
                if max(devs) > tol:
                    note.append(f"DISAGREES with unfused by {max(devs):.1e}")
            rows.append([label, fmt_s(r["first_s"]), fmt_s(r["best_s"]), fmt_s(r["median_s"]),
                         fmt_ratio(r["best_s"], t_unf), fmt_ratio(r["best_s"], t_fus),
                         fmt_mib(r["extra_bytes"], exact), fmt_mib(r["workspace_bytes"], exact),
                         fmt_ratio(r["workspace_bytes"], logits, ""),
                         fmt_ratio(r["workspace_bytes"], min_lce[0] if min_lce else None, ""),
                         str(len(r.get("times", []))), r["mem"].get("method", "?"),
                         "; ".join(note)])
        header = ["contender", "first s", "best s", "median s", "/unfused", "/fused",
                  "extra MiB", "workspace MiB", "ws/logits", "ws/min lce", "reps", "mem",
                  "notes"]
        title = (f"n={n} d={d} m={m} {dtype}, {threads} thread{'s' if threads > 1 else ''}"
                 f"  (one {n}x{m} logits array = {logits / MIB:.1f} MiB, gradients = "
                 f"{(n * d + d * m + m) * isz / MIB:.1f} MiB)")
        out.append(format_table(header, rows, markdown=md, title=title, align="lrrrrrrrrrrll"))
        out.append("")

        # ---- summary row and targets
        torch_ok = [(ok[c]["best_s"], c) for c in names if CONTENDERS[c][1] == "torch" and c in ok]
        best_torch = min(torch_ok) if torch_ok else None
        f = ok.get("fused")
        summary.append([f"{n}x{d}x{m}", dtype, str(threads), fmt_s(t_fus), fmt_s(t_unf),
                        fmt_ratio(t_fus, t_unf),
                        (f"{fmt_s(best_torch[0])} ({best_torch[1]})" if best_torch else "-"),
                        fmt_ratio(best_torch[0] if best_torch else None, t_fus),
                        fmt_mib(f["workspace_bytes"]) if f else "-",
                        fmt_ratio(f["workspace_bytes"] if f else None, logits, ""),
                        (f"{fmt_mib(min_lce[0])} ({min_lce[1]})" if min_lce else "-"),
                        fmt_ratio(f["workspace_bytes"] if f else None,
                                  min_lce[0] if min_lce else None, "")])
        where = f"{n}x{d}x{m} {dtype} t={threads}"
        if t_fus is not None and t_unf is not None:
            q = t_fus / t_unf
            targets.append([f"time: fused / unfused <= {FUSED_TARGET}", where, f"{q:.2f}",
                            "met" if q <= FUSED_TARGET else "MISSED"])
        elif "fused" in names:
            targets.append([f"time: fused / unfused <= {FUSED_TARGET}", where, "not measured",
                            "-"])
        lce_ok = [(ok[c]["best_s"], c) for c in CHUNKED if c in ok]
        if t_fus is not None and lce_ok:
            fastest = min(lce_ok)
            targets.append(["time: fused <= fastest linear_cross_entropy option", where,
                            f"{fastest[0] / t_fus:.2f}x ({fastest[1]})",
                            "met" if t_fus <= fastest[0] else "MISSED"])
            low = [(ok[c]["best_s"], c) for c in LOW_MEMORY if c in ok]
            if low:
                lo = min(low)
                targets.append(["time: >= 1.5x faster than its low-memory options", where,
                                f"{lo[0] / t_fus:.2f}x ({lo[1]})",
                                "met" if lo[0] >= 1.5 * t_fus else "MISSED"])
        if f:
            ws = f["workspace_bytes"]
            if m >= 128_000:
                targets.append(["workspace <= 1/8 of one n x m logits array (m = 128,000)",
                                where, f"{ws / logits:.3f} x logits",
                                "met" if ws <= logits / 8 else "MISSED"])
            if min_lce:
                targets.append(["workspace <= 1/4 of the smallest linear_cross_entropy option's",
                                where, f"{ws / min_lce[0]:.3f} ({min_lce[1]})",
                                "met" if ws <= min_lce[0] / 4 else
                                ("MISSED" if m >= 128_000 else "missed (issue: m = 128,000)")])
            lw = f.get("last_linear_workspace")
            if lw:
                rows_rule = min(n, max(MIN_ROWS, CHUNK_ELEMENTS // m // 32 * 32))
                good = lw[0] == rows_rule and lw[1] == lw[0] * m * isz + 8 * m
                targets.append(["default block: min(n, max(128, 2^24 // m, to 32s)) rows, "
                                "bytes = rows*m*itemsize + 8m", where,
                                f"{lw[0]} rows, {lw[1]} B", "met" if good else "MISSED"])
            if f.get("out_dtypes") and f["out_dtypes"] != [dtype]:
                targets.append(["outputs in the input dtype", where, ",".join(f["out_dtypes"]),
                                "MISSED"])
        warned = [c for c in CHUNKED if c in ok and ok[c].get("warnings")]
        if warned:
            notes.append(f"{where}: PyTorch warned for {', '.join(warned)} "
                         "(an option that falls back to the reference path says so)")

    if summary:
        out.append(format_table(
            ["case", "dtype", "threads", "fused s", "unfused s", "fused/unfused",
             "fastest torch s", "torch/fused", "fused ws MiB", "ws/logits",
             "min lce ws MiB", "fused ws/min lce"],
            summary, markdown=md, title="Summary (best times; ws = workspace)",
            align="llrrrrlrrrlr"))
        out.append("")
    if targets:
        out.append(format_table(["target (issue 17)", "case", "value", "status"], targets,
                                markdown=md, title="Targets", align="llrl"))
        out.append("")
        missed = sum(t[3] == "MISSED" for t in targets)
        met = sum(t[3] == "met" for t in targets)
        notes.append(f"targets: {met} met, {missed} missed, "
                     f"{sum(t[3] == '-' for t in targets)} not measured, "
                     f"{sum(t[3].startswith('missed (') for t in targets)} missed where the "
                     "issue states no target")
    return "\n".join(out), notes


def print_notes(notes, md):
    print("\n".join((f"- {n}" if md else n) for n in notes))


def legend():
    return [
        "first s = the first call (the one whose memory is measured); best/median s over "
        "the `reps` further calls; /unfused and /fused = this row's best time over that "
        "contender's (for PyTorch rows > 1 means cysoftmax is faster).",
        "extra MiB = peak resident memory during the first call above the resident memory "
        "before it (inputs, imports and a set-up call at a tiny shape already resident); "
        "workspace = extra - the returned gradients (dA, dW, db); ws/logits = workspace over "
        "one n x m array of the dtype; ws/min lce = over the smallest workspace of PyTorch's "
        "chunked linear_cross_entropy options (lce_auto, lce_b1024, lce_ar1, lce_ar2). "
        "mem = VmHWM (reset through /proc/self/clear_refs) or ru_maxrss (not resettable: "
        "'~' marks a lower bound).",
        "Each (case, contender) ran in its own process, OPENBLAS_NUM_THREADS = "
        "OMP_NUM_THREADS = MKL_NUM_THREADS = threads set before NumPy/PyTorch are imported, "
        "and torch.set_num_threads(threads).",
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", help=f"NxDxM list (default {DEFAULT_SHAPES}; "
                   f"--quick: {QUICK_SHAPES})")
    p.add_argument("--dtypes", default=DEFAULT_DTYPES, help="default %(default)s")
    p.add_argument("--threads", help=f"list (default {DEFAULT_THREADS}; --quick: 1)")
    p.add_argument("--contenders", default=",".join(CONTENDERS),
                   help="subset of %(default)s")
    p.add_argument("--repeats", type=int, help="timed calls after the first (default 2; "
                   "--quick: 1)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: shape {QUICK_SHAPES}, 1 thread, 1 repeat (under a minute)")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--out", metavar="FILE", help="append results as JSON lines; reuse the "
                   "results already there")
    p.add_argument("--force", action="store_true", help="with --out: re-run, do not reuse")
    p.add_argument("--from-json", metavar="FILE",
                   help="print the tables of saved results (JSON lines); run nothing")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds per child process (default %(default)s)")
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        rec = run_child(json.loads(args.child))
        print(json.dumps(rec), flush=True)
        return 0

    md = args.markdown
    try:
        names = parse_list(args.contenders, list(CONTENDERS), "contender")
        dtypes = parse_list(args.dtypes, ["float32", "float64"], "dtype")
        threads = [int(t) for t in (args.threads or ("1" if args.quick else DEFAULT_THREADS))
                   .split(",") if t.strip()]
        if not threads or min(threads) < 1:
            raise ValueError("--threads: positive integers")
        shapes = parse_shapes(args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES), 3)
    except ValueError as exc:
        p.error(str(exc))
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 2)
    if repeats < 0:
        p.error("--repeats must be >= 0")

    if args.from_json:
        records = load_records(args.from_json)
        heads = [r for r in records if r.get("kind") == "header"]
        sel = [r for r in records if r.get("kind") == "result"
               and r["contender"] in names and r["dtype"] in dtypes
               and r["threads"] in threads
               and (args.shapes is None or (r["n"], r["d"], r["m"]) in shapes)]
        print_header(heads[-1] if heads else None, md, f"results from {args.from_json}")
        text, notes = tables(sel, md, names)
        print(text)
        print_notes(legend() + notes, md)
        return 0

    header = {"kind": "header", "time": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
              "env": env_lines()}
    print_header(header, md, None)
    previous = []
    if args.out and os.path.exists(args.out) and not args.force:
        previous = [r for r in load_records(args.out)
                    if r.get("kind") == "result" and r.get("status") == "ok"]
    current_build = None
    if any(CONTENDERS[c][1] == "cysoftmax" for c in names) and previous:
        current_build = subprocess.run(
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
             "import bench_linear_ce as b; print(b.build_id())",
             os.path.dirname(os.path.abspath(__file__))],
            capture_output=True, text=True).stdout.strip()
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(header) + "\n")

    specs = [{"n": n, "d": d, "m": m, "dtype": dt, "threads": t, "contender": c,
              "repeats": repeats}
             for t in threads for dt in dtypes for (n, d, m) in shapes for c in names]
    records = []
    t_start = time.perf_counter()
    for i, spec in enumerate(specs, 1):
        what = (f"[{i}/{len(specs)}] {spec['n']}x{spec['d']}x{spec['m']} {spec['dtype']} "
                f"t={spec['threads']} {spec['contender']}")
        old = [r for r in previous if case_key(r) == case_key(spec)
               and r["contender"] == spec["contender"] and r.get("repeats") == repeats
               and (CONTENDERS[spec["contender"]][1] != "cysoftmax"
                    or r.get("cysoftmax_build") == current_build)]
        if old:
            records.append(old[-1])
            progress(f"{what}: reused from {args.out}")
            continue
        rec = run_one(spec, args.timeout)
        records.append(rec)
        if rec["status"] == "ok":
            progress(f"{what}: best {rec['best_s']:.3g} s, extra "
                     f"{rec['extra_bytes'] / MIB:.1f} MiB ({rec['process_s']:.0f} s)")
        else:
            progress(f"{what}: {rec['status']}: {rec.get('reason')}")
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
    text, notes = tables(records, md, names)
    print(text)
    pools = {}
    for r in records:
        if r.get("pools"):
            pools.setdefault((r["threads"], CONTENDERS[r["contender"]][1]), r["pools"])
    extra = [f"child pools, {t} thread(s), {k} child: " + "; ".join(v)
             for (t, k), v in sorted(pools.items())]
    notes = legend() + extra + notes
    notes.append(f"total {time.perf_counter() - t_start:.0f} s for {len(specs)} "
                 f"measurement(s); load avg at the end "
                 + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print_notes(notes, md)
    errors = [r for r in records if r.get("status") == "error"]
    return 1 if errors else 0


def env_lines():
    mods = []
    for mod in ("numpy", "cysoftmax", "torch"):
        try:
            mods.append((mod, __import__(mod)))
        except ImportError:
            mods.append((mod, None))
    lines = environment_lines(mods)
    return [ln for ln in lines if not ln.startswith("pool ")]


def print_header(header, md, source):
    title = "cysoftmax fused linear + cross-entropy benchmark"
    lines = list(header["env"]) if header else ["(no environment header saved)"]
    if header:
        lines.insert(0, f"command   {header['command']}")
        lines.insert(1, f"started   {header['time']}")
    if source:
        lines.insert(0, source)
    if md:
        print(f"## {title}\n\n```\n" + "\n".join(lines) + "\n```\n")
    else:
        print("=" * 78 + f"\n{title}\n" + "=" * 78)
        print("\n".join(lines) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
