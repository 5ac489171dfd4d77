"""cysoftmax.load's bounds on what a file makes it read: decompression bombs
(a small file whose members claim or hold gigabytes), members whose declared
shape the model's structure does not allow, the total against ``max_bytes=``,
and zip entries whose sizes disagree with their ``.npy`` headers.

The bombs are also loaded in a subprocess, whose peak RSS (``ru_maxrss``) is
compared with that of one that only imports cysoftmax."""

import io
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import cysoftmax
from cysoftmax import _persistence

MB = 2 ** 20
BOMB_DATA = 200 * MB          # what a bomb really decompresses to (~200 KB deflated)
RSS_MARGIN = 150 * MB         # a refused bomb may cost at most this above the baseline


def _data():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.standard_normal((60, 4)) + y[:, None]
    return X, y


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(path, classifier, X) of a valid saved model: coef_0 (4, 5), coef_1 (5, 3)."""
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # ConvergenceWarning of max_iter=2
        clf = cysoftmax.Classifier(hidden_layer_sizes=(5,), max_iter=2,
                                   random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "ok.npz"
    clf.save(path)
    return path, clf, X


def _npy_header(shape, descr="<f8", version=(1, 0)):
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def _zeros(n, chunk=4 * MB):
    block = bytes(chunk)
    while n > 0:
        yield block[:min(n, chunk)]
        n -= chunk


def _rebuild(src, dst, compression):
    """Copy the archive `src` to `dst`, every member compressed with `compression`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(zipfile.ZipInfo(name), zin.read(name), compress_type=compression)
    return dst


def _write(src, dst, replace, *, zip64=True):
    """Copy the archive `src` to `dst`, deflated, with the members in `replace`
    ({name: iterable of byte chunks}, added if new) streamed chunk by chunk."""
    with zipfile.ZipFile(src) as zin, \
            zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        names = zin.namelist()
        for name in names + [n for n in replace if n not in names]:
            if name in replace:
                with zout.open(name, "w", force_zip64=zip64) as w:
                    for chunk in replace[name]:
                        w.write(chunk)
            else:
                zout.writestr(name, zin.read(name))
    return dst


def _member(path, name):
    with zipfile.ZipFile(path) as z:
        return z.read(name)


def _patch_central(path, name, *, file_size, crc=None):
    """Overwrite the uncompressed size (and CRC) that the central directory records
    for `name` (an entry with 32-bit sizes): zipfile reads the sizes from there."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        n_len = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + n_len] == name.encode():
            assert struct.unpack_from("<I", raw, at + 24)[0] != 0xFFFFFFFF, "zip64 entry"
            if crc is not None:
                struct.pack_into("<I", raw, at + 16, crc)
            struct.pack_into("<I", raw, at + 24, file_size)
            path.write_bytes(bytes(raw))
            return path
        at = raw.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} not in the central directory")


# ------------------------------------------------------------------ bombs
def _bomb_declares_80_gb(model, dst):
    # a weight's header claims (100000, 100000) float64 = 80 GB; holds 200 MB of zeros
    return _write(model, dst, {"coef_0.npy": [_npy_header((100_000, 100_000)),
                                              *_zeros(BOMB_DATA)]})


def _bomb_declares_4_gb(model, dst):
    # 4 GB: an allocation that would succeed (the 80 GB one fails at once), with
    # a shape that chains (coef_0's rows are the number of features, not fixed)
    return _write(model, dst, {"coef_0.npy": [_npy_header((10 ** 8, 5)),
                                              *_zeros(BOMB_DATA)]})


def _bomb_over_max_bytes(model, dst):
    # the 4 GB header, and a zip entry that agrees with it (file_size patched):
    # only the total against max_bytes (2 GiB by default) refuses this one
    header = _npy_header((10 ** 8, 5))
    _write(model, dst, {"coef_0.npy": [header, *_zeros(BOMB_DATA)]})
    return _patch_central(dst, "coef_0.npy", file_size=len(header) + 4 * 10 ** 9)


def _bomb_long_header(model, dst):
    # a version 2.0 header whose length field claims ~4 GB of header text
    start = np.lib.format.magic(2, 0) + struct.pack("<I", 2 ** 32 - 16)
    return _write(model, dst, {"coef_0.npy": [start, *_zeros(BOMB_DATA)]})


def _bomb_trailing_data(model, dst):
    # the true coef_0 (header, data: file_size and CRC agree with it), then 200 MB
    # more of zeros in the same deflate stream: zipfile alone would cut them silently
    real = _member(model, "coef_0.npy")
    _write(model, dst, {"coef_0.npy": [real, *_zeros(BOMB_DATA)]}, zip64=False)
    return _patch_central(dst, "coef_0.npy", file_size=len(real), crc=zlib.crc32(real))


BOMBS = {
    "declares-80GB": (_bomb_declares_80_gb, r"coef_0's zip entry holds \d+ bytes but its "
                                            r"\.npy header .* declares \(100000, 100000\)"),
    "declares-4GB": (_bomb_declares_4_gb, r"coef_0's zip entry holds \d+ bytes"),
    "over-max-bytes": (_bomb_over_max_bytes, r"declare 400\d{7} bytes .* more than "
                                             r"max_bytes=2147483648; the largest is coef_0"),
    "long-header": (_bomb_long_header, r"coef_0's \.npy header would read past its declared end"),
    "trailing-data": (_bomb_trailing_data, r"coef_0 decompresses to (more|other) data than its"),
}

_LOAD = """
import sys
import cysoftmax
if len(sys.argv) > 1:
    try:
        cysoftmax.load(sys.argv[1])
        print("LOADED")
    except ValueError as exc:
        print("REFUSED", str(exc).replace("\\n", " "))
"""

# A child's ru_maxrss starts from its parent's peak RSS (Linux carries the old
# address space's high-water mark across exec), so measured straight from pytest
# it would show pytest's own peak.  A small launcher runs the loading process and
# reports that one's peak: RUSAGE_CHILDREN, its waited-for child's ru_maxrss.
_LAUNCH = """
import resource, subprocess, sys
run = subprocess.run([sys.executable, "-c", *sys.argv[1:]], capture_output=True, text=True)
sys.stdout.write(run.stdout)
sys.stderr.write(run.stderr)
print("MAXRSS", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(run.returncode)
"""


def _peak(*args):
    """(outcome line, peak RSS in bytes) of a fresh interpreter that imports cysoftmax
    and loads args[0] (only imports it without args)."""
    run = subprocess.run([sys.executable, "-c", _LAUNCH, _LOAD, *map(str, args)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    rss = int(next(l for l in lines if l.startswith("MAXRSS")).split()[1]) * 1024  # KiB
    outcome = next((l for l in lines if l.startswith(("LOADED", "REFUSED"))), run.stdout)
    return outcome, rss


@pytest.fixture(scope="module")
def baseline_rss():
    return _peak()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB on Linux")
@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_bomb_is_refused_with_bounded_memory(model, tmp_path, baseline_rss, bomb):
    make, match = BOMBS[bomb]
    path = make(model[0], tmp_path / "bomb.npz")
    assert path.stat().st_size < 2 * MB                # a small file ...
    with zipfile.ZipFile(path) as z:                  # ... that says or holds >= 200 MB
        assert z.getinfo("coef_0.npy").file_size >= BOMB_DATA or bomb == "trailing-data"
    with pytest.raises(ValueError, match=match):
        cysoftmax.load(path)
    outcome, rss = _peak(path)
    assert outcome.startswith("REFUSED") and "coef_0" in outcome, outcome
    assert rss - baseline_rss < RSS_MARGIN, (
        f"loading the bomb peaked at {rss / MB:.0f} MB, {(rss - baseline_rss) / MB:.0f} MB "
        f"above an import of cysoftmax")


def test_single_npy_bomb_is_refused_unread(tmp_path):
    path = tmp_path / "one.npy"
    path.write_bytes(_npy_header((100_000, 100_000)) + bytes(1000))
    with pytest.raises(ValueError, match="holds a single array"):
        cysoftmax.load(path)


# ------------------------------------------------------------------ shapes
def _reads(monkeypatch):
    """The members that load reads data of, in order."""
    seen = []
    getitem = _persistence._Members.__getitem__

    def spy(self, key):
        seen.append(key)
        return getitem(self, key)

    monkeypatch.setattr(_persistence._Members, "__getitem__", spy)
    return seen


@pytest.mark.parametrize("member,array,match", [
    ("coef_1", np.zeros((4, 3)), "coef_1 has 4 rows but coef_0 columns is 5"),
    ("coef_1", np.zeros((5, 7)), r"intercept_1 has 3 entries but coef_1 has 7 columns"),
    ("coef_0", np.zeros((4, 6)), "intercept_0 has 5 entries but coef_0 has 6 columns"),
    ("coef_0", np.zeros((4, 5, 1)), r"coef_0 must be 2-D; got shape \(4, 5, 1\)"),
    ("intercept_0", np.zeros(4), "intercept_0 has 4 entries"),
    ("coef_1", np.zeros((5, 3), np.float32), "must all have one dtype"),
    ("coef_0", np.zeros((4, 5), np.int64), "coef_0 must be float32 or float64"),
    ("classes", np.arange(4), r"classes must be 1-D with 3 \(>= 2\) entries; got shape \(4,\)"),
    ("loss_curve", np.zeros((2, 2)), "loss_curve must be a 1-D float array"),
    ("n_iter", np.arange(3), "n_iter must be a scalar"),
    ("feature_names_in", np.array(["a", "b"]), "feature_names_in must be 4 strings"),
])
def test_wrong_shape_is_refused_before_any_weight_is_read(model, tmp_path, monkeypatch,
                                                          member, array, match):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    path = _write(model[0], tmp_path / "bad.npz", {f"{member}.npy": [buf.getvalue()]})
    seen = _reads(monkeypatch)
    with pytest.raises(ValueError, match=match):
        cysoftmax.load(path)
    # only the metadata members read first were read, never the member or a weight
    assert seen and set(seen) <= {"format", "params", "n_layers"}, seen


def test_wrong_hidden_sizes_refused_before_any_weight_is_read(model, tmp_path, monkeypatch):
    with np.load(model[0]) as d:
        arrays = dict(d)
    arrays["params"] = np.array(str(arrays["params"]).replace(
        '"hidden_layer_sizes": [5]', '"hidden_layer_sizes": [6]'))
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    seen = _reads(monkeypatch)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        cysoftmax.load(path)
    assert set(seen) == {"format", "params", "n_layers"}, seen


# ------------------------------------------------------------------ max_bytes
def _declared_total(path):
    """The sum of the declared sizes of the members load reads (all but the version)."""
    with np.load(path) as d:
        return sum(d[k].nbytes for k in d.files if k != "cysoftmax_version")


def test_total_over_max_bytes_is_refused_and_loads_with_the_default(model, monkeypatch):
    path, clf, X = model
    total = _declared_total(path)
    assert 1000 < total < 10_000
    seen = _reads(monkeypatch)
    # one byte short: refused once the headers are summed, before any weight is read
    with pytest.raises(ValueError, match=rf"declare {total} bytes .* more than "
                                         rf"max_bytes={total - 1};.*max_bytes={total}") as info:
        cysoftmax.load(path, max_bytes=total - 1)
    assert "raise the limit" in str(info.value) and "cysoftmax model" in str(info.value)
    assert seen and not any(k.startswith(("coef", "intercept")) for k in seen), seen
    # smaller than the metadata read first (params is ~1.8 KB here): refused as it is
    with pytest.raises(ValueError, match=r"more than max_bytes=1000;.*largest is params"):
        cysoftmax.load(path, max_bytes=1000)
    assert_array_equal(cysoftmax.load(path, max_bytes=total).predict_proba(X),
                       clf.predict_proba(X))
    assert_array_equal(cysoftmax.load(path).predict_proba(X), clf.predict_proba(X))


def test_the_max_bytes_default_is_2_gib():
    import inspect
    assert inspect.signature(cysoftmax.load).parameters["max_bytes"].default == 2 ** 31
    assert "max_bytes" in cysoftmax.load.__doc__


@pytest.mark.parametrize("bad,exc", [(True, TypeError), (1.5, TypeError), ("1e9", TypeError),
                                     (None, TypeError), (0, ValueError), (-1, ValueError)])
def test_max_bytes_is_checked(model, bad, exc):
    with pytest.raises(exc, match="max_bytes"):
        cysoftmax.load(model[0], max_bytes=bad)


def test_a_huge_params_text_is_refused_before_it_is_read(model, tmp_path, monkeypatch):
    # params is read before the structure is known: it has its own small bound
    n = _persistence.MAX_PARAMS_BYTES // 4 + 1
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array("x" * n))
    path = _write(model[0], tmp_path / "bad.npz", {"params.npy": [buf.getvalue()]})
    seen = _reads(monkeypatch)
    with pytest.raises(ValueError, match="params declares"):
        cysoftmax.load(path)
    assert "params" not in seen


# ------------------------------------------------------------------ zip sizes
def test_file_size_disagreeing_with_header_is_refused(model, tmp_path):
    real = _member(model[0], "coef_0.npy")
    for extra, name in ((b"\0" * 16, "longer"), (b"", "shorter")):
        data = real + extra if extra else real[:-16]
        path = _write(model[0], tmp_path / f"{name}.npz", {"coef_0.npy": [data]})
        with pytest.raises(ValueError, match=r"coef_0's zip entry holds \d+ bytes but its "
                                             r"\.npy header \(128 bytes\) declares \(4, 5\)"):
            cysoftmax.load(path)


def test_member_shorter_than_its_zip_entry_says_is_refused(model, tmp_path):
    # the zip entry and the header agree, but the deflate stream holds less
    real = _member(model[0], "coef_0.npy")
    path = _write(model[0], tmp_path / "short.npz", {"coef_0.npy": [real[:-16]]}, zip64=False)
    _patch_central(path, "coef_0.npy", file_size=len(real), crc=zlib.crc32(real))
    with pytest.raises(ValueError, match="not a valid cysoftmax model.*coef_0|EOF"):
        cysoftmax.load(path)


def test_bzip2_and_lzma_members_are_refused(model, tmp_path):
    # their decompressors expand a read without a bound: refused before opening
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        path = _rebuild(model[0], tmp_path / "other.npz", compression=method)
        with pytest.raises(ValueError, match=f"compressed with method {method}"):
            cysoftmax.load(path)


# ------------------------------------------------------------------ round trip
def test_valid_model_round_trips_bit_identically(model, tmp_path):
    path, clf, X = model
    deflated = _rebuild(path, tmp_path / "deflated.npz", compression=zipfile.ZIP_DEFLATED)
    for p in (path, deflated, io.BytesIO(path.read_bytes())):
        back = cysoftmax.load(p)
        assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
        for a, b in zip(back.coefs_ + back.intercepts_, clf.coefs_ + clf.intercepts_):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        assert_array_equal(back.classes_, clf.classes_)
        assert back.loss_curve_ == clf.loss_curve_ and back.n_iter_ == clf.n_iter_
