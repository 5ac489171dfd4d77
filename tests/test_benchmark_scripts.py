"""Benchmark scripts run (smoke runs, nothing timed).

Issue 16's scripts at tiny sizes: ``bench_adam.py`` (the subnormal-state
update, flush on and off), ``bench_threads.py`` (1 vs 2 threads) and
``bench_training.py`` printing its Adam/SGD and 1-thread floor targets.
The fused output layer's:

``benchmarks/bench_linear_ce.py --quick`` (its own fresh process per
measurement, the memory accounting, the targets table) and
``benchmarks/bench_fused_training.py`` at a tiny size, so that the scripts
whose numbers the README and the user guide quote keep working.  No timing
is asserted: only that each runs, checks its contenders' results against
each other (bench_linear_ce compares every loss and gradient norm with the
unfused path's and exits non-zero when a child fails) and prints its tables.
Needs the checkout (benchmarks/ beside tests/).
"""

import pathlib
import subprocess
import sys

import pytest

import _requires

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
if not (BENCH / "bench_linear_ce.py").exists():
    _requires.missing("checkout", f"{BENCH} is not next to the tests", module_level=True)


def _run(*args, timeout=600):
    res = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


@pytest.mark.slow
def test_bench_linear_ce_quick_runs_and_reports_every_target():
    out = _run(BENCH / "bench_linear_ce.py", "--quick", "--dtypes", "float32",
               "--contenders", "fused,unfused,lce_auto")
    assert "Targets" in out and "time: fused / unfused" in out
    assert "default block: min(n, max(128, 2^24 // m, to 32s)) rows" in out
    # the block rule, as measured by the child: 512 rows of 4000 logits
    assert "chunk 512 rows" in out


@pytest.mark.slow
def test_bench_fused_training_runs():
    out = _run(BENCH / "bench_fused_training.py", "--classes", "2000,40000", "--batch", "64",
               "--rows", "128", "--hidden", "8", "--repeats", "1")
    assert "fused/unfused" in out


def test_bench_adam_runs_and_reports_its_target():
    out = _run(BENCH / "bench_adam.py", "--dtypes", "float32", "--rounds", "1", "--steps", "2",
               "--fractions", "1.0")
    assert "| float32 | 1 | on |" in out and "| float32 | 1 | off |" in out
    assert "subnormal/normal" in out and ("[met]" in out or "[NOT met]" in out)


def test_bench_threads_runs():
    out = _run(BENCH / "bench_threads.py", "--nets", "20-8-3", "--batch-sizes", "4",
               "--rounds", "1", "--steps", "2", "--repeat-processes", "1")
    assert "| 20-8-3 | 4 |" in out and "2t / 1t" in out


def test_bench_training_reports_issue_16s_targets():
    out = _run(BENCH / "bench_training.py", "--quick", "--batch-sizes", "512", "--dtypes",
               "float32", "--no-sklearn", "--no-torch", "--repeats", "1", "--segments", "1",
               "--threads", "1")
    assert "Adam epoch / SGD epoch" in out and "(target <= 1.15)" in out
    assert "ours/floor" in out and "(target <= 1.1)" in out
