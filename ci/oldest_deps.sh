#!/usr/bin/env bash
# ci/oldest_deps.sh [WHEEL] -- the test suite against the oldest runtime
# dependencies that pyproject.toml admits.
#
# Reads the floors (`name>=X`) of [project] dependencies from pyproject.toml,
# installs exactly those versions (binary wheels only) and the cysoftmax
# wheel into a fresh virtual environment, and runs the tests (slow ones
# skipped) from a copy of tests/ outside the checkout.  WHEEL defaults to one
# built here from the working tree.  Run by ci/wheel_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/cysoftmax-oldest.XXXXXX")
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1

whl=${1:-}
if [ -z "$whl" ]; then
  echo "building a wheel from the working tree"
  "$py" -m venv "$work/build-env"
  "$work/build-env/bin/python" -m pip install -q build 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
  "$work/build-env/bin/python" -m build --wheel --outdir "$work/dist" . > "$work/build.log" 2>&1 \
    || { tail -n 60 "$work/build.log"; exit 1; }
  whl=$(ls "$work"/dist/*.whl)
fi
whl=$(realpath "$whl")

mapfile -t pins < <("$py" - <<'EOF'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for d in deps:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)\s*", d)
    if not m:
        raise SystemExit(f"no plain `>=` floor in dependency {d!r}")
    print(f"{m[1]}=={m[2]}")
EOF
)
echo "oldest admitted: ${pins[*]}"

"$py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
"$work/venv/bin/python" -m pip install -q --only-binary=:all: "${pins[@]}" "$whl[test]" 2>&1 \
  | { grep -v "^WARNING: Location 'file:" || true; }
"$work/venv/bin/python" -m pip list 2>/dev/null \
  | grep -iE '^(cysoftmax|numpy|scipy|scikit-learn|threadpoolctl|joblib|pytest|hypothesis) '
# the pins must have held (pip would have refused the install otherwise)
"$work/venv/bin/python" - "${pins[@]}" <<'EOF'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    have = version(name)
    assert [int(x) for x in have.split(".")[:len(want.split("."))]] == \
        [int(x) for x in want.split(".")], (name, have, want)
print("installed exactly the floors")
EOF

mkdir -p "$work/run/tests" "$work/run/examples"
cp "$repo"/tests/*.py "$work/run/tests/"
cp "$repo"/examples/*.py "$work/run/examples/"
cp "$repo/pyproject.toml" "$work/run/"
cd "$work/run"
"$work/venv/bin/python" -c "import cysoftmax; cysoftmax.show_config()"
"$work/venv/bin/python" -m pytest -m "not slow" -p no:cacheprovider
cd /
rm -rf "$work"
