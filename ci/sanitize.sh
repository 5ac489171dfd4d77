#!/usr/bin/env bash
# Memory-safety check of the compiled core.
#
# Builds cysoftmax with AddressSanitizer and UndefinedBehaviorSanitizer (gcc,
# -fsanitize=address,undefined -fno-omit-frame-pointer) and with Cython's
# bounds and initialization checks switched on, installs it (non-editable)
# into a throwaway virtual environment, and runs the test suite (all but the
# slow tests, from a copy of tests/ outside the source tree) with the ASan
# runtime preloaded into the uninstrumented interpreter.  Fails on a test
# failure or on any sanitizer or bounds-check report.
#
#   ci/sanitize.sh [extra pytest arguments]
#
# Environment: PYTHON (default python3), CYSOFTMAX_SANITIZE_DIR (default
# $TMPDIR/cysoftmax-sanitize: sources, build, venv and logs go there),
# CYSOFTMAX_SANITIZE_KEEP_GOING=1 (UBSan reports do not stop the run: lists
# them all; ASan errors always stop it).
# NumPy, SciPy, OpenBLAS and libgomp stay uninstrumented: ASan still checks
# every access our code makes, and intercepts malloc/free/memcpy for all.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=ci/_lib.sh
. "$repo/ci/_lib.sh"
python=${PYTHON:-python3}
work=${CYSOFTMAX_SANITIZE_DIR:-${TMPDIR:-/tmp}/cysoftmax-sanitize}
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
for lib in "$libasan" "$libubsan"; do
  if [ ! -e "$lib" ]; then
    echo "sanitize.sh: $lib not found (gcc's sanitizer runtimes are needed)" >&2
    exit 2
  fi
done

rm -rf "$work"
mkdir -p "$work/src" "$work/run"

echo "== sources (with Cython bounds checks) -> $work/src"
snapshot_tree "$repo" "$work/src"
# Cython's `# cython:` header directives win over -X on the command line, so
# switch the checks on in the copies' headers themselves
for f in "$work"/src/src/cysoftmax/*.pyx; do
  sed -i -E '1,5 s/boundscheck=False/boundscheck=True/; 1,5 s/initializedcheck=False/initializedcheck=True/' "$f"
  head -1 "$f" | grep -q 'boundscheck=True' || { echo "no bounds-check header in $f" >&2; exit 2; }
done

echo "== virtual environment $work/venv"
"$python" -m venv "$work/venv"
vpy="$work/venv/bin/python"
"$vpy" -m pip install -q "meson-python>=0.18" "meson>=1.1" ninja "Cython>=3.1" "numpy>=2" \
  "scipy>=1.11" "scikit-learn>=1.6" pytest hypothesis mpmath threadpoolctl pandas \
  "dask[array]>=2024.1" "distributed>=2024.1" "dask-ml>=2024.1" \
  > "$work/pip.log" 2>&1 || { tail -20 "$work/pip.log"; exit 1; }

echo "== build with -fsanitize=address,undefined"
san="'-fsanitize=address','-fsanitize=undefined','-fno-omit-frame-pointer','-g'"
# Python extensions link against an interpreter that is not instrumented:
# b_lundef=false lets the sanitizer symbols resolve at load time (LD_PRELOAD)
(cd "$work/src" && CC=gcc "$vpy" -m pip install -v --no-build-isolation --no-deps . \
  -Cbuild-dir="$work/build" \
  "-Csetup-args=-Dc_args=[$san]" \
  "-Csetup-args=-Dc_link_args=[$san]" \
  -Csetup-args=-Db_lundef=false \
  > "$work/build.log" 2>&1) || { tail -40 "$work/build.log"; exit 1; }
grep -q -- '-fsanitize=address' "$work/build/compile_commands.json" ||
  { echo "the sanitizer flags did not reach the compiler" >&2; exit 1; }
echo "   ($(grep -c -- '-fsanitize=address' "$work/build/compile_commands.json") compile commands instrumented)"

echo "== tests under ASan+UBSan (not slow), from a copy outside the tree"
bash "$repo/ci/copy_tests.sh" "$work/run"
cd "$work/run"
export LD_PRELOAD="$libasan:$libubsan"
# allocator_may_return_null: a huge request (tests that ask for one) must give
# NumPy's MemoryError, not an ASan abort; detect_leaks: CPython "leaks" by design
halt=1
[ "${CYSOFTMAX_SANITIZE_KEEP_GOING:-0}" = 1 ] && halt=0
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:print_summary=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=$halt:print_summary=1
# Python objects through malloc too, so that ASan sees them
export PYTHONMALLOC=malloc
set +e
"$vpy" -c "import cysoftmax, sys; print('cysoftmax from', cysoftmax.__file__); cysoftmax.show_config()" \
  > "$work/pytest.log" 2>&1
# --capture=sys: the sanitizers write to file descriptor 2 and may abort the
# process, so pytest must not capture at the descriptor level (the report
# would die with the captured output)
CYSOFTMAX_REQUIRE=dask,pandas,fashion-mnist,checkout,openmp \
  "$vpy" -m pytest -m "not slow" -p no:cacheprovider -q -ra --capture=sys "$@" tests \
  >> "$work/pytest.log" 2>&1
status=$?
set -e
unset LD_PRELOAD
grep -m1 '^cysoftmax from' "$work/pytest.log"
tail -5 "$work/pytest.log"

reports=$(grep -c -E 'ERROR: AddressSanitizer|runtime error:|Out of bounds on buffer access|Buffer not initialized|SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$work/pytest.log" || true)
echo "== $(( $(date +%s) - start )) s; sanitizer / bounds-check reports: $reports; pytest exit status: $status"
if [ "$reports" -ne 0 ]; then
  grep -n -E -A30 'ERROR: AddressSanitizer|runtime error:|Out of bounds on buffer access|Buffer not initialized' \
    "$work/pytest.log" | head -120
  echo "sanitizer reports found (full log: $work/pytest.log)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "tests failed under the sanitizers (full log: $work/pytest.log)" >&2
  exit "$status"
fi
echo "clean: no sanitizer reports"
