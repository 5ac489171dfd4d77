"""The SIMD variant switch: ``CYSOFTMAX_SIMD`` selects the variant the
kernels run, the default is the best one this CPU supports, and a bad value
is refused at import with the list of what is available.

``.ci/run`` runs the test suite once per supported variant with
``CYSOFTMAX_SIMD`` set; `test_active_variant_is_the_one_asked_for` is what
makes such a run fail if the variable were ignored (the same variant would
otherwise pass three times).
"""

import os
import subprocess
import sys

import pytest

import cysoftmax
from cysoftmax import _softmax

SUPPORTED = _softmax.simd_supported()


def _run(code, simd):
    env = dict(os.environ)
    env.pop("CYSOFTMAX_SIMD", None)
    if simd is not None:
        env["CYSOFTMAX_SIMD"] = simd
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


def test_active_variant_is_the_one_asked_for():
    want = os.environ.get("CYSOFTMAX_SIMD", "").strip().lower()
    assert _softmax.simd_active() == (want or SUPPORTED[-1])


def test_supported_variants_are_compiled_and_ordered():
    assert SUPPORTED, "no SIMD variant runs on this CPU"
    assert set(SUPPORTED) <= set(_softmax.simd_compiled()) <= set(_softmax.VARIANTS)
    # the order is the preference order: the default is the last supported
    assert SUPPORTED == [v for v in _softmax.VARIANTS if v in SUPPORTED]


@pytest.mark.parametrize("variant", SUPPORTED)
def test_each_supported_variant_can_be_forced(variant):
    code = ("import cysoftmax, numpy as np\n"
            "from cysoftmax import _softmax\n"
            "print(_softmax.simd_active())\n"
            "p = cysoftmax.softmax(np.linspace(-5, 5, 64).reshape(4, 16))\n"
            "print(bool(np.allclose(p.sum(axis=1), 1.0)))\n"
            "cysoftmax.show_config()\n")
    for spelling in (variant, f" {variant.upper()} "):
        r = _run(code, spelling)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == variant
        assert lines[1] == "True"
        simd_line = next(line for line in lines if line.startswith("simd"))
        assert simd_line.split()[1] == variant, simd_line


def test_default_is_the_best_supported_variant():
    r = _run("from cysoftmax import _softmax; print(_softmax.simd_active())", None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == SUPPORTED[-1]


@pytest.mark.parametrize("bad", ["bogus", "avx1024", "sse2"])
def test_bad_variant_is_refused_at_import_with_the_supported_list(bad):
    r = _run("import cysoftmax", bad)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: "), r.stderr
    assert f"CYSOFTMAX_SIMD={bad!r} is not available" in last
    for v in SUPPORTED:
        assert v in last


def test_show_config_names_the_active_variant(capsys):
    cysoftmax.show_config()
    out = capsys.readouterr().out
    simd_line = next(line for line in out.splitlines() if line.startswith("simd"))
    assert simd_line.split()[1] == _softmax.simd_active()
    for v in SUPPORTED:
        assert v in simd_line
