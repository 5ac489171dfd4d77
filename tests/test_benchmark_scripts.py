"""The fused output layer's benchmark scripts run (smoke runs, nothing timed).

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
