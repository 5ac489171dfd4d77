#!/usr/bin/env bash
# ci/portable_check.sh -- build and test the "portable" configuration once:
# -Dsimd=portable (the baseline row-kernel variant only, no x86 flag) with
# -Dopenmp=disabled (serial kernels).
#
# Why: aarch64 and other non-x86 builds (the Linux aarch64 and macOS arm64
# wheels, MSVC) compile only the portable variant, and macOS/Windows wheels are
# built without OpenMP.  There is no aarch64 machine here, so CI builds that
# configuration on x86-64 instead: the same C code, no AVX2/AVX-512 variant
# and no libgomp, and the whole non-slow test suite must pass against it.
#
#  1. a snapshot of the working tree (tracked + new, not-ignored files) is
#     copied to a temporary directory: the build reads only the copy, and the
#     checkout (including build/) is never written to;
#  2. a fresh venv gets the [build-system] requires of pyproject.toml plus
#     ninja; `pip wheel --no-build-isolation` builds the wheel there, with a
#     temporary meson build directory and at most 2 compile jobs;
#  3. the compile commands carry no -march/-m<isa> flag, the extensions
#     contain no AVX (ymm/zmm) instruction and do not link libgomp;
#  4. the wheel and its test extra are installed; from a copy of tests/
#     outside the tree: simd_compiled() == ['baseline'], openmp_enabled() is
#     False, then `pytest -m "not slow"` (as ci/wheel_check.sh runs it) with
#     CYSOFTMAX_EXPECT_NO_OPENMP=1 (tests/test_threads.py).
#
# Run by .ci/run after ci/wheel_check.sh; by hand: `bash ci/portable_check.sh`
# (Linux x86-64, python3 >= 3.11 with venv, gcc, PyPI reachable).
# Environment: PYTHON (default python3), CYSOFTMAX_PORTABLE_DIR (default
# $TMPDIR/cysoftmax-portable-check: snapshot, build, venv and logs go there).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
work=${CYSOFTMAX_PORTABLE_DIR:-${TMPDIR:-/tmp}/cysoftmax-portable-check}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1
start=$SECONDS

ci_name="portable check"
# shellcheck source=ci/_lib.sh
. "$repo/ci/_lib.sh"

case "$work" in
  "$repo"|"$repo"/*) echo "CYSOFTMAX_PORTABLE_DIR must be outside the source tree" >&2; exit 2 ;;
esac
rm -rf "$work"
mkdir -p "$work/src" "$work/run" "$work/dist"

step "snapshot of the working tree -> $work/src"
snapshot_tree "$repo" "$work/src"
echo "$(find "$work/src" -type f | wc -l) files"

step "fresh virtual environment with the build requirements"
venv="$work/venv"
"$py" -m venv "$venv"
vpy="$venv/bin/python"
mapfile -t build_reqs < <("$vpy" - "$work/src/pyproject.toml" <<'EOF'
import sys, tomllib
for r in tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]:
    print(r)
EOF
)
build_reqs+=(ninja)   # with --no-build-isolation meson-python does not add it
echo "build requirements: ${build_reqs[*]}"
logged "$work/pip.log" "$vpy" -m pip install --upgrade pip
logged "$work/pip.log" "$vpy" -m pip install "${build_reqs[@]}"
"$vpy" -m pip list 2>/dev/null | grep -iE '^(meson|meson-python|ninja|cython|numpy|scipy) '

step "wheel: -Dsimd=portable -Dopenmp=disabled (pip wheel, no build isolation)"
build="$work/build"
# -Ccompile-args=-j2: a 2-core machine; the build directory is temporary
(cd "$work/src" && logged "$work/build.log" "$vpy" -m pip wheel -v --no-build-isolation \
  --no-deps -w "$work/dist" . \
  -Cbuild-dir="$build" \
  -Csetup-args=-Dsimd=portable \
  -Csetup-args=-Dopenmp=disabled \
  -Ccompile-args=-j2)
grep -E 'Message: SIMD variants|Run-time dependency openmp|User defined options|simd *: |openmp *: ' \
  "$work/build.log" | sort -u || true
whl=$(ls "$work"/dist/cysoftmax-*.whl)
echo "built: $(basename "$whl")"

step "no x86 ISA flags, no AVX instructions, no libgomp"
"$vpy" - "$build/compile_commands.json" <<'EOF'
import json, re, sys
cmds = json.load(open(sys.argv[1]))
isa = re.compile(r"\s(-march=\S+|-mtune=\S+|-mavx\S*|-msse\S*|-mfma|-mprefer-vector-width=\S+)")
bad = {c["file"]: isa.findall(" " + c["command"]) for c in cmds if isa.search(" " + c["command"])}
assert not bad, f"x86 flags in the portable build: {bad}"
kernels = [c["file"] for c in cmds if "_kernels/" in c["file"]]
rows = [c for c in cmds if c["file"].endswith("_kernels/rows.c")]
assert len(rows) == 1, f"expected rows.c compiled once (baseline only): {len(rows)} times"
assert "-DCS_VARIANT=baseline" in rows[0]["command"], rows[0]["command"]
assert not any("-DCS_HAVE_" in c["command"] for c in cmds), "a CS_HAVE_* variant is compiled in"
assert not any("-fopenmp" in c["command"].replace("-fopenmp-simd", "") for c in cmds), \
    "-fopenmp in a compile command"
print(f"ok: {len(cmds)} compile commands, none with an x86 ISA flag or -fopenmp; kernel sources: "
      f"{', '.join(sorted(set(k.split('/')[-1] for k in kernels)))}; rows.c compiled once (baseline)")
EOF
mkdir -p "$work/unpacked"
(cd "$work/unpacked" && "$vpy" -m zipfile -e "$whl" .)
for so in "$work"/unpacked/cysoftmax/_*.so; do
  avx=$(objdump -d --no-show-raw-insn "$so" | grep -cE '%[yz]mm[0-9]' || true)
  gomp=$(readelf -d "$so" | grep -c 'NEEDED.*libgomp' || true)
  echo "$(basename "$so"): $avx instructions on ymm/zmm registers, libgomp NEEDED: $gomp"
  [ "$avx" -eq 0 ] || { echo "AVX instructions in the portable build: $so" >&2; exit 1; }
  [ "$gomp" -eq 0 ] || { echo "$so links libgomp with -Dopenmp=disabled" >&2; exit 1; }
done

step "install the wheel and the test extra"
logged "$work/pip.log" "$vpy" -m pip install "$whl[test]"
"$vpy" -m pip list 2>/dev/null \
  | grep -iE '^(cysoftmax|numpy|scipy|scikit-learn|threadpoolctl|pytest|hypothesis|mpmath|dask|distributed|dask-ml) '

# the tests, their pytest settings, the example script they run and the
# README some check against, away from the checkout (as ci/wheel_check.sh)
run="$work/run"
bash "$repo/ci/copy_tests.sh" "$run"
cd "$run"

step "the installed build is the portable one"
"$vpy" - "$repo" <<'EOF'
import os, sys
import cysoftmax
from cysoftmax import _softmax
src = os.path.realpath(sys.argv[1])
assert not os.path.realpath(cysoftmax.__file__).startswith(src + os.sep), cysoftmax.__file__
print("cysoftmax from", cysoftmax.__file__)
compiled, supported, active = _softmax.simd_compiled(), _softmax.simd_supported(), _softmax.simd_active()
assert compiled == ["baseline"], f"simd_compiled() = {compiled!r}, want ['baseline']"
assert supported == ["baseline"], f"simd_supported() = {supported!r}"
assert active == "baseline", f"simd_active() = {active!r}"
assert _softmax.openmp_enabled() is False, f"openmp_enabled() = {_softmax.openmp_enabled()!r}"
assert _softmax.max_threads() == 1, _softmax.max_threads()
print(f"simd_compiled() = {compiled!r}, simd_active() = {active!r}, "
      f"openmp_enabled() = False, max_threads() = 1")
cysoftmax.show_config()
EOF

step "test suite (not slow) with CYSOFTMAX_EXPECT_NO_OPENMP=1, from $run"
set +e
CYSOFTMAX_REQUIRE=dask,pandas,fashion-mnist,checkout CYSOFTMAX_EXPECT_NO_OPENMP=1 "$vpy" -m pytest -m "not slow" -p no:cacheprovider 2>&1 \
  | tee "$work/pytest.log"
status=${PIPESTATUS[0]}
set -e
counts=$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$work/pytest.log" | tail -1 | tr -d '=' | xargs)
echo "counts: ${counts:-unknown}"
if [ "$status" -ne 0 ]; then
  echo "FAILED: the test suite in the portable configuration (pytest exit $status; log: $work/pytest.log)" >&2
  exit "$status"
fi

step "passed in $((SECONDS - start)) s: $(basename "$whl") (simd=portable, openmp=disabled): $counts"
