#!/usr/bin/env bash
# Copy what the test suite reads into DEST, away from the checkout: the
# tests, their pytest settings (pyproject.toml), README.md, the examples they
# run, docs/ sources, tools/, benchmarks/ (whose scripts tests run), and the
# package's sources (the architecture
# tests read the .pyx/.pxd files, which are not installed).  The package the
# tests import is the installed one: DEST/src is not on sys.path.
#   ci/copy_tests.sh DEST
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$1"
mkdir -p "$dest"
cp "$repo/pyproject.toml" "$repo/README.md" "$dest/"
for d in tests examples tools docs src benchmarks; do
  cp -a "$repo/$d" "$dest/"
done
# not the build products of the checkout (an editable build, a docs build)
find "$dest" \( -name __pycache__ -o -name .hypothesis -o -path "$dest/docs/_build" \
  -o -path "$dest/docs/generated" -o -path "$dest/docs/auto_examples" \) -prune -exec rm -rf {} +
find "$dest" -name '*.so' -delete
