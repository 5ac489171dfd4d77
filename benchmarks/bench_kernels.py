"""Benchmark the cysoftmax kernels against SciPy, NumPy and PyTorch.

For each shape and dtype, prints nanoseconds per element of

* softmax and log_softmax (over the last axis): cysoftmax, ``scipy.special``,
  a plain NumPy implementation and ``torch.softmax`` / ``torch.log_softmax``
  on ``torch.from_numpy`` of the same array;
* the fused NLL loss + gradient (mean reduction): ``cysoftmax.nll_loss_and_gradient``,
  a NumPy implementation and ``torch.nn.functional.cross_entropy`` forward +
  backward;
* ``np.copyto`` into a preallocated array of the same shape: the
  memory-bandwidth floor;
* the fused NLL loss + gradient with PyTorch's options (``--option-shapes``,
  default 60000x10 and 4096x1000): class_weight, ignore_index,
  label_smoothing, class-probability targets and combinations, each against
  our plain call (the options' cost) and against ``cross_entropy`` forward +
  backward with the same option; every call measured in interleaved rounds
  (ABAB: each round times every call once, the next round in the reverse
  order), the best of the rounds kept.

Ratios are peer time / our time (> 1 means cysoftmax is faster) and our time
/ copy time (how many copies' worth of time we take).  Also reports the
Python call overhead (microseconds per call at shape (128, 10)).

Every side (cysoftmax, NumPy/BLAS, PyTorch) runs with the same number of
threads (``--threads``, default 1).  PyTorch is optional: its columns are
skipped when it is not importable.  Outputs of every peer are checked
against ours before timing.

SIMD variants: the kernels' variant (baseline, avx2, avx512) is chosen once,
at import, from ``CYSOFTMAX_SIMD`` (default: the best this CPU runs).
``--simd all`` (every variant in ``cysoftmax._softmax.simd_supported()``) or
``--simd avx2,avx512`` re-runs this script once per variant, in a subprocess
with ``CYSOFTMAX_SIMD`` set and the same other options, one after the other.
Each run prints its usual report (environment header and tables); then a
summary per function puts the variants side by side: our ns/el for each
variant, then per variant the ratios to the peers measured in that same run
(scipy/VARIANT and torch/VARIANT for softmax and log_softmax; torch/VARIANT
and numpy/VARIANT for the NLL, which SciPy lacks) and VARIANT/copy.
``--json PATH`` writes the measured ns/el (per function, shape and dtype:
ours, every peer, copy) as JSON; with ``--simd`` it writes every variant's.

Usage::

    python benchmarks/bench_kernels.py                      # full run (~2 min on 2 cores)
    python benchmarks/bench_kernels.py --quick --shapes 128x10,60000x10 --dtypes float64
    python benchmarks/bench_kernels.py --markdown > bench.md
    python benchmarks/bench_kernels.py --quick --simd all   # every SIMD variant, side by side
    python benchmarks/bench_kernels.py --simd avx2,avx512 --markdown --json bench.json
    python benchmarks/bench_kernels.py --quick --shapes 128x10 --option-shapes 4096x1000
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
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


def print_notes(notes, md):
    """The notes under a report: a Markdown list with --markdown (lines
    starting with two spaces become sub-items), else plain lines."""
    if md:
        print("\n".join(f"- {n}" if not n.startswith("  ") else f"  - {n.strip()}"
                        for n in notes))
    else:
        print("\n".join(notes))

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
    # ours into a preallocated output (out=): the like-for-like peer of copy
    outb = np.empty_like(z)
    fns["softmax.ours_out"] = lambda: cs.softmax(z, out=outb)
    fns["log_softmax.ours_out"] = lambda: cs.log_softmax(z, out=outb)

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


# issue 16 ("Speed v2", small class counts): the targets the small-m path is held to
SMALL_TARGET_SHAPES = ((60000, 10), (128, 10))
TARGET_RATIO = 8.0          # >= 8x SciPy and PyTorch, softmax and log_softmax, both dtypes
TARGET_CALL_US = 1.2        # <= 1.2 us per whole softmax call at (128, 10) float32


def small_target_lines(results, ovh):
    """[met] / [NOT met] for the small-m targets among what was measured."""
    lines = []
    for shape, dtype, t in results:
        if tuple(shape) not in SMALL_TARGET_SHAPES:
            continue
        for kern in ("softmax", "log_softmax"):
            ours = t.get(f"{kern}.ours")
            for peer in ("scipy", "torch"):
                other = t.get(f"{kern}.{peer}")
                if ours is None or other is None:
                    continue
                r = other / ours
                lines.append(f"[{'met' if r >= TARGET_RATIO else 'NOT met'}] {kern} "
                             f"{shape[0]}x{shape[1]} {dtype.name}: {peer}/ours = {r:.2f}x "
                             f"(target >= {TARGET_RATIO:g}x)")
    for row in ovh:
        if row[0] == "cysoftmax.softmax" and row[1] == "float32":
            us = float(row[2])
            lines.append(f"[{'met' if us <= TARGET_CALL_US else 'NOT met'}] softmax "
                         f"{OVERHEAD_SHAPE[0]}x{OVERHEAD_SHAPE[1]} float32 whole call: "
                         f"{us:.2f} us (target <= {TARGET_CALL_US:g} us)")
    return lines


# Issue 16 ("Speed v2") targets at large class counts, one thread: softmax and
# log_softmax into a preallocated output (out=) against np.copyto into one.
TARGET_SHAPES = ((4096, 1000), (256, 32000))


def target_lines(results):
    """The issue's targets as [met] / [NOT met] lines, from this run's timings."""
    lines = ["targets (issue 16, large m; ours = softmax/log_softmax(z, out=o), "
             "copy = np.copyto(o, z)):"]

    def line(ok, text):
        lines.append(f"  [{'met' if ok else 'NOT met'}] {text}")

    for shape, dtype, t in results:
        if tuple(shape) not in TARGET_SHAPES:
            continue
        nel = shape[0] * shape[1]
        tag = f"{shape[0]}x{shape[1]} {dtype.name}"
        cp = t["copy"] / nel
        for kern in ("softmax", "log_softmax"):
            ns = t[f"{kern}.ours_out"] / nel
            if dtype == np.float32:
                line(ns <= 0.25 or ns <= 1.2 * cp,
                     f"{kern} {tag}: {ns:.3f} ns/el, {ns / cp:.2f}x copy "
                     "(<= 0.25 ns/el or <= 1.2x copy)")
            else:
                line(ns <= 1.3 * cp, f"{kern} {tag}: {ns / cp:.2f}x copy (<= 1.3x copy)")
        nll = t["loss.ours"] / nel
        sm = t["softmax.ours"] / nel
        if "loss.torch" in t:
            r = t["loss.torch"] / t["loss.ours"]
            line(r >= 4.0, f"fused NLL {tag}: torch cross_entropy fwd+bwd / ours = {r:.2f}x (>= 4x)")
        line(nll <= 1.1 * sm, f"fused NLL {tag}: {nll / sm:.2f}x our softmax (<= 1.1x)")
    return "\n".join(lines)


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


# ------------------------------------------------- the NLL with PyTorch's options

DEFAULT_OPTION_SHAPES = "60000x10,4096x1000"
OPTION_ROUNDS = 2              # ABAB: rounds of timing every call, alternating order

# name -> what the call uses (labels with 10% at -100 when ignore_index is set)
OPTION_CASES = (
    ("plain", {}),
    ("class_weight", {"class_weight": True}),
    ("ignore_index", {"ignore_index": -100}),
    ("label_smoothing=0.1", {"label_smoothing": 0.1}),
    ("soft targets", {"soft": True}),
    ("weight+ignore+smoothing", {"class_weight": True, "ignore_index": -100,
                                 "label_smoothing": 0.1}),
    ("soft+weight+smoothing", {"soft": True, "class_weight": True, "label_smoothing": 0.1}),
)


def option_calls(cs, torch, F, shape, dtype):
    """{(case, 'ours'|'torch'): thunk} for every case of OPTION_CASES, mean reduction."""
    z, y = make_data(shape, dtype, seed=1)
    rng = np.random.default_rng(2)
    y_ign = y.copy()
    y_ign[rng.random(shape[0]) < 0.1] = -100
    q = rng.standard_normal(shape)
    q = np.exp(q - q.max(axis=1, keepdims=True))
    q = (q / q.sum(axis=1, keepdims=True)).astype(dtype)     # rows of probabilities
    cw = (rng.random(shape[1]) + 0.5).astype(dtype)
    if torch is not None:
        zg = torch.from_numpy(z).requires_grad_(True)
    calls = {}
    for name, spec in OPTION_CASES:
        target = q if spec.get("soft") else (y_ign if "ignore_index" in spec else y)
        kw = {k: v for k, v in spec.items() if k in ("ignore_index", "label_smoothing")}
        if spec.get("class_weight"):
            kw["class_weight"] = cw
        calls[(name, "ours")] = lambda t=target, k=kw: cs.nll_loss_and_gradient(z, t, **k)
        if torch is None:
            continue
        tt = torch.from_numpy(target if spec.get("soft") else target.astype(np.int64))
        tkw = {k: v for k, v in kw.items() if k != "class_weight"}
        if spec.get("class_weight"):
            tkw["weight"] = torch.from_numpy(cw)

        def torch_ce(tt=tt, tkw=tkw):
            zg.grad = None
            loss = F.cross_entropy(zg, tt, **tkw)
            loss.backward()
            return loss, zg.grad

        calls[(name, "torch")] = torch_ce
    return calls


def bench_options(cs, torch, F, shape, dtype, timer, warnings):
    """Best time per call of every options case, ours and torch's, ABAB."""
    calls = option_calls(cs, torch, F, shape, dtype)
    tag = f"options {shape[0]}x{shape[1]} {dtype.name}"
    tol = CHECK_TOL[dtype]
    for name, _ in OPTION_CASES:          # agreement (and a warm-up of every path)
        loss0, grad0 = calls[(name, "ours")]()
        if (name, "torch") not in calls:
            continue
        loss1, grad1 = calls[(name, "torch")]()
        loss1, grad1 = float(loss1.detach()), grad1.numpy()
        e_loss = abs(loss1 - loss0) / max(abs(loss0), 1e-300)
        e_grad = rel_err(grad1, grad0)
        if not (e_loss <= tol and e_grad <= tol):
            warnings.append(f"{tag} {name}: torch differs from ours "
                            f"(loss rel. err {e_loss:.2e}, grad {e_grad:.2e})")
    times = {}
    keys = list(calls)
    for r in range(OPTION_ROUNDS):
        for key in keys if r % 2 == 0 else keys[::-1]:
            t = timer(calls[key])
            times[key] = t if key not in times else min(times[key], t)
    return times


def option_rows(results):
    """Table rows: per shape, dtype and case, ns/el and the ratios."""
    rows = []
    for shape, dtype, t in results:
        nel = shape[0] * shape[1]
        plain, tplain = t[("plain", "ours")], t.get(("plain", "torch"))
        for name, _ in OPTION_CASES:
            ours, th = t[(name, "ours")], t.get((name, "torch"))
            rows.append([f"{shape[0]}x{shape[1]}", dtype.name, name, fmt_ns(ours / nel),
                         fmt_ratio(ours, plain), fmt_ns(th / nel if th else None),
                         fmt_ratio(th, tplain), fmt_ratio(th, ours)])
    return rows


# ------------------------------------------------------ JSON and SIMD variants

# function name in the JSON / summary -> key prefix in bench_config's times
JSON_FUNCS = (("softmax", "softmax"), ("log_softmax", "log_softmax"), ("nll", "loss"))

# summary tables: (function, title, peers whose ratio peer/ours is shown)
SUMMARY_FUNCS = (
    ("softmax", "softmax(axis=-1)", ("scipy", "torch")),
    ("log_softmax", "log_softmax(axis=-1)", ("scipy", "torch")),
    ("nll", "NLL loss + gradient, mean reduction", ("torch", "numpy")),
)


def build_identity():
    """Path and SHA-256 of the compiled kernels (the _softmax extension) this process runs."""
    from cysoftmax import _softmax

    path = getattr(_softmax, "__file__", None)
    digest = None
    with contextlib.suppress(OSError, TypeError):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    return {"extension": path, "sha256": digest}


def json_results(results):
    """[{function, shape, dtype, ns_per_el: {ours, scipy, numpy, torch, copy}}] (None: not run)."""
    out = []
    for fn_name, prefix in JSON_FUNCS:
        for shape, dtype, t in results:
            nel = shape[0] * shape[1]
            ns = {k: (t[f"{prefix}.{k}"] / nel if f"{prefix}.{k}" in t else None)
                  for k in ("ours", "scipy", "numpy", "torch")}
            ns["copy"] = t["copy"] / nel
            out.append({"function": fn_name, "shape": [shape[0], shape[1]],
                        "dtype": dtype.name, "ns_per_el": ns})
    return out


def child_argv(args):
    """The options of `args` as a command line, without --simd and --json.

    Built from the parsed namespace (so --simd=X, abbreviations like --sim X
    and defaults are all handled): every option is ``--name`` with dest
    ``name`` (dashes as underscores); store_true flags are booleans.
    """
    argv = []
    for dest, val in vars(args).items():
        if dest in ("simd", "json"):
            continue
        opt = "--" + dest.replace("_", "-")
        if isinstance(val, bool):
            if val:
                argv.append(opt)
        elif val is not None:
            argv += [opt, str(val)]
    return argv


def parse_simd_list(text, supported, compiled):
    """'all' or 'avx2,avx512' -> list of variant names (checked against this CPU and build)."""
    if text.strip().lower() == "all":
        return list(supported)
    variants = []
    for name in text.split(","):
        name = name.strip().lower()
        if not name:
            continue
        if name not in supported:
            why = ("not built into this cysoftmax" if name not in compiled
                   else "not supported by this CPU")
            raise ValueError(f"SIMD variant {name!r} is {why}; this CPU and build run "
                             f"{', '.join(supported)} (or use 'all')")
        if name not in variants:
            variants.append(name)
    if not variants:
        raise ValueError("no SIMD variant given")
    return variants


def simd_summary(runs, md, threads):
    """One table per function: rows shape x dtype, the variants side by side."""
    variants = [v for v, _ in runs]
    index = {}
    keys = []
    for v, data in runs:
        for r in data["results"]:
            key = (r["function"], tuple(r["shape"]), r["dtype"])
            index[(v, *key)] = r["ns_per_el"]
            if key not in keys:
                keys.append(key)

    out = []
    for fn_name, label, peers in SUMMARY_FUNCS:
        cells = [(k[1], k[2]) for k in keys if k[0] == fn_name]
        # a peer's columns are shown when some run measured it (torch may be absent)
        peers = [p for p in peers
                 if any(index.get((v, fn_name, *c), {}).get(p) is not None
                        for v in variants for c in cells)]
        header = (["shape", "dtype"] + [f"{v} ns/el" for v in variants]
                  + [f"{p}/{v}" for v in variants for p in peers]
                  + [f"{v}/copy" for v in variants])
        rows = []
        for shape, dtype in cells:
            g = {v: index.get((v, fn_name, shape, dtype), {}) for v in variants}
            rows.append([f"{shape[0]}x{shape[1]}", dtype]
                        + [fmt_ns(g[v].get("ours")) for v in variants]
                        + [fmt_ratio(g[v].get(p), g[v].get("ours"))
                           for v in variants for p in peers]
                        + [fmt_ratio(g[v].get("ours"), g[v].get("copy")) for v in variants])
        out.append(format_table(header, rows, markdown=md,
                                title=f"{label}  [SIMD variants, threads={threads}]"))
        out.append("")
    return "\n".join(out)


def run_simd_variants(args, variants, parent_build):
    """Run this script once per variant (CYSOFTMAX_SIMD set), then print the summary."""
    md = args.markdown
    script = os.path.abspath(__file__)
    base_argv = child_argv(args)
    runs = []
    failures = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_kernels_simd_") as tmp:
        for i, v in enumerate(variants, 1):
            path = os.path.join(tmp, f"{v}.json")
            cmd = [sys.executable, script, *base_argv, "--json", path]
            env = dict(os.environ, CYSOFTMAX_SIMD=v)
            shown = f"CYSOFTMAX_SIMD={v} " + " ".join(shlex.quote(a) for a in cmd)
            if md:
                print(f"## SIMD variant {v} ({i}/{len(variants)})\n\n`{shown}`\n", flush=True)
            else:
                print("#" * 78)
                print(f"# SIMD variant {v} ({i}/{len(variants)})")
                print("#" * 78, flush=True)
            progress(f"=== SIMD variant {v} ({i}/{len(variants)}): {shown}")
            rc = subprocess.run(cmd, env=env).returncode   # output goes straight through
            sys.stdout.flush()
            data = None
            if rc == 0:
                with contextlib.suppress(OSError, ValueError):
                    with open(path) as f:
                        data = json.load(f)
            if data is None:
                failures.append(f"{v}: the run failed (exit status {rc}); no results")
                progress(f"SIMD variant {v}: FAILED (exit status {rc})")
                continue
            if data.get("simd_active") != v:
                failures.append(f"{v}: the run reports simd_active={data.get('simd_active')!r}")
            runs.append((v, data))
            print(flush=True)
    if not runs:
        print("no SIMD variant produced results:\n" + "\n".join(failures), file=sys.stderr)
        return 1

    # ---- summary
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    title = f"cysoftmax kernels: SIMD variants side by side (threads={args.threads})"
    if md:
        print(f"## {title}\n\n`{cmd}`\n")
    else:
        print("=" * 78)
        print(title)
        print("=" * 78)
        print(f"command   {cmd}\n")
    print(simd_summary(runs, md, args.threads))

    notes = [
        "VARIANT ns/el = our time per element with CYSOFTMAX_SIMD=VARIANT; "
        "PEER/VARIANT = peer time / our time, both measured in that variant's run "
        "(> 1: cysoftmax faster); VARIANT/copy = our time / np.copyto time of that run. "
        "The variants ran one after the other, each in its own process "
        "(environment headers above).",
    ]
    for v, data in runs:
        load = data.get("load_avg") or {}
        ld = " -> ".join(" ".join(f"{x:.2f}" for x in load[k])
                         for k in ("start", "end") if load.get(k))
        line = f"{v}: {data.get('total_s', 0):.0f} s"
        if ld:
            line += f", load avg {ld}"
        if data.get("import_s", 0) > 1.0:
            line += f", import took {data['import_s']:.1f} s"
        nwarn = len(data.get("warnings") or [])
        line += f", {nwarn} agreement warning{'s' if nwarn != 1 else ''}" if nwarn else ""
        notes.append(line)
    digests = {data.get("build", {}).get("sha256") for _, data in runs}
    digests.add(parent_build.get("sha256"))
    if len(digests) > 1:
        failures.append("the kernels were rebuilt during this run (an editable rebuild: the "
                        "sources changed); the variants may come from different builds: "
                        + ", ".join(f"{v} {str(d.get('build', {}).get('sha256'))[:12]}"
                                    for v, d in runs)
                        + f" (before: {str(parent_build.get('sha256'))[:12]})")
    if failures:
        notes.append("WARNINGS:")
        notes.extend("  " + w for w in failures)
    notes.append(f"total time {time.perf_counter() - t_start:.0f} s for "
                 f"{len(variants)} variant{'s' if len(variants) != 1 else ''}")
    print_notes(notes, md)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": cmd, "variants": {v: d for v, d in runs},
                       "warnings": failures}, f, indent=1)
            f.write("\n")
    return 0 if len(runs) == len(variants) else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Usage::"):].replace("::", ":"),
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
    p.add_argument("--option-shapes", default=DEFAULT_OPTION_SHAPES,
                   help="shapes of the NLL-with-options section (default "
                        f"{DEFAULT_OPTION_SHAPES}); 'none' skips it")
    p.add_argument("--simd", metavar="LIST",
                   help="'all' or a comma-separated list of SIMD variants (baseline, avx2, "
                        "avx512): run this benchmark once per variant, each in a subprocess "
                        "with CYSOFTMAX_SIMD set, then print the variants side by side")
    p.add_argument("--json", metavar="PATH",
                   help="also write the measured ns/el (ours, peers, copy per function, "
                        "shape, dtype) as JSON to PATH; with --simd, every variant's")
    args = p.parse_args(argv)

    try:
        shapes = parse_shapes(args.shapes)
        option_shapes = ([] if args.option_shapes.strip().lower() == "none"
                         else parse_shapes(args.option_shapes))
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

    if args.simd is not None:
        # The parent only picks the variants and collects the children's JSON.
        # Import without CYSOFTMAX_SIMD (a value this CPU lacks would fail
        # here); an editable rebuild, if any, also happens here, once.
        saved = os.environ.pop("CYSOFTMAX_SIMD", None)
        try:
            from cysoftmax import _softmax
        finally:
            if saved is not None:
                os.environ["CYSOFTMAX_SIMD"] = saved
        try:
            variants = parse_simd_list(args.simd, _softmax.simd_supported(),
                                       _softmax.simd_compiled())
        except ValueError as exc:
            p.error(str(exc))
        return run_simd_variants(args, variants, build_identity())

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
    build = build_identity()  # now: another process's import may rebuild it later

    limiter, thread_note = set_threads(args.threads, torch)
    md = args.markdown
    t_start = time.perf_counter()
    load_start = None
    with contextlib.suppress(AttributeError, OSError):
        load_start = list(os.getloadavg())

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
    opt_results = []
    opt_configs = [(s, d) for s in option_shapes for d in dtypes]
    for i, (shape, dtype) in enumerate(opt_configs, 1):
        progress(f"[options {i}/{len(opt_configs)}] {shape[0]}x{shape[1]} {dtype.name} "
                 f"({time.perf_counter() - t_start:.0f} s elapsed)")
        opt_results.append((shape, dtype, bench_options(cs, torch, F, shape, dtype, timer,
                                                        warnings)))
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
            out_ns = t[f"{kern}.ours_out"] / nel   # into a preallocated out=, as copy
            rows.append([f"{shape[0]}x{shape[1]}", dtype.name,
                         fmt_ns(g["ours"]), fmt_ns(g["scipy"]), fmt_ns(g["numpy"]),
                         fmt_ns(g["torch"]), fmt_ns(cp),
                         fmt_ratio(g["scipy"], g["ours"]), fmt_ratio(g["numpy"], g["ours"]),
                         fmt_ratio(g["torch"], g["ours"]), fmt_ratio(out_ns, cp)])
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

    print(target_lines(results))
    print()

    if opt_results:
        header = ["shape", "dtype", "option", "ours ns/el", "ours/plain", "torch ns/el",
                  "torch/its plain", "torch/ours"]
        rows = option_rows(opt_results)
        if torch is None:
            header, rows = header[:5], [r[:5] for r in rows]
        print(format_table(header, rows, markdown=md, align="lll" + "r" * (len(header) - 3),
                           title="NLL loss + gradient with PyTorch's options, mean reduction "
                                 f"(ABAB, {OPTION_ROUNDS} rounds)  [{thr}]"))
        print()

    print(format_table(["function", "dtype", "us/call", "vs cysoftmax.softmax"], ovh,
                       markdown=md, align="llrr",
                       title=f"Python call overhead at shape {OVERHEAD_SHAPE[0]}x"
                             f"{OVERHEAD_SHAPE[1]}  [{thr}]"))
    print()
    targets = small_target_lines(results, ovh)
    if targets:
        print(f"Targets (issue 16, small class counts)  [{thr}]")
        for line in targets:
            print("  " + line)
        print()

    notes = [
        "ns/el = best time per call / (rows*cols). Ratios peer/ours > 1 mean cysoftmax is "
        "faster; ours/copy = our time in units of the np.copyto bandwidth floor "
        "(for softmax/log_softmax: ours(z, out=o) against np.copyto(o, z), both into a "
        "preallocated array; every other column allocates its output).",
        "numpy = plain NumPy (max-subtract, exp, sum, divide; log version subtracts "
        "log(sum(exp))); torch = torch.softmax/log_softmax(torch.from_numpy(z), dim=-1) and "
        "F.cross_entropy forward+backward with int64 labels, grad reset to None each rep.",
    ]
    if opt_results:
        notes.append("options: ours = nll_loss_and_gradient(z, y, **option), ours/plain = "
                     "that / the plain call (labels, no option) measured in the same rounds; "
                     "torch = F.cross_entropy(..., same option) forward+backward, "
                     "torch/its plain = that / torch's plain call; ignore_index sets 10% of "
                     "the labels to -100, class weights in [0.5, 1.5), soft targets are rows "
                     "of probabilities.")
    if warnings:
        notes.append("AGREEMENT WARNINGS:")
        notes.extend("  " + w for w in warnings)
    else:
        notes.append("agreement: every peer matched cysoftmax before timing "
                     f"(normwise rel. err <= {CHECK_TOL[np.dtype(np.float32)]:g} float32, "
                     f"{CHECK_TOL[np.dtype(np.float64)]:g} float64).")
    load = ""
    load_end = None
    with contextlib.suppress(AttributeError, OSError):
        load_end = list(os.getloadavg())
        load = "; load avg at end " + " ".join(f"{v:.2f}" for v in load_end)
    total_s = time.perf_counter() - t_start
    notes.append(f"total benchmark time {total_s:.0f} s{load}")
    print_notes(notes, md)

    if args.json:
        from cysoftmax import _softmax

        data = {
            "command": cmd,
            "simd_active": _softmax.simd_active(),
            "simd_supported": _softmax.simd_supported(),
            "cysoftmax": cs.__version__,
            "build": build,
            "import_s": t_import,
            "threads": args.threads,
            "thread_note": thread_note,
            "timing": {"repeats": repeats, "target_ms": target_ms},
            "peers": {"numpy": np.__version__, "scipy": scipy.__version__,
                      "torch": getattr(torch, "__version__", None)},
            "load_avg": {"start": load_start, "end": load_end},
            "total_s": total_s,
            "warnings": warnings,
            "results": json_results(results),
            "options": [{"shape": [shape[0], shape[1]], "dtype": dtype.name, "option": name,
                         "ns_per_el": {side: (t[(name, side)] / (shape[0] * shape[1])
                                              if (name, side) in t else None)
                                       for side in ("ours", "torch")}}
                        for shape, dtype, t in opt_results for name, _ in OPTION_CASES],
            "overhead_us": [{"function": r[0], "dtype": r[1], "us_per_call": float(r[2])}
                            for r in ovh],
        }
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")

    with contextlib.suppress(Exception):
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
