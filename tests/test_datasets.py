"""Tests of cysoftmax.datasets: the IDX parser, the search order, downloads
(from a local HTTP server only), the embedded sample, and, when Debian's
dataset-fashion-mnist is installed, the real files."""

import gzip
import hashlib
import http.server
import importlib.resources
import io
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import _requires

from cysoftmax import datasets
from cysoftmax.datasets import load_fashion_mnist, load_fashion_mnist_sample

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_REAL = all((REAL_DIR / n).is_file() for names in datasets._FILES.values() for n in names)
MAKE_SAMPLE = Path(__file__).resolve().parents[1] / "tools" / "make_sample.py"

needs_real = _requires.skip_unless("fashion-mnist", HAVE_REAL, f"{REAL_DIR} not installed "
                                   "(apt-get install dataset-fashion-mnist)")


# ---------------------------------------------------------------------------
# helpers: small fake data sets in the official format


def idx_images(images, *, magic=2051, dims=None):
    images = np.asarray(images, dtype=np.uint8)
    n = images.shape[0]
    header = struct.pack(">IIII", magic, *(dims or (n, 28, 28)))
    return header + images.tobytes()


def idx_labels(labels, *, magic=2049, n=None):
    labels = np.asarray(labels, dtype=np.uint8)
    return struct.pack(">II", magic, labels.shape[0] if n is None else n) + labels.tobytes()


def fake_set(n=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    images[0, :2] = (0, 255)  # both ends of the scale
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_set(directory, subset="train", n=12, seed=0):
    """Write a gzipped fake `subset` under the official names; return the arrays."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = fake_set(n, seed)
    img_name, lab_name = datasets._FILES[subset]
    (directory / img_name).write_bytes(gzip.compress(idx_images(images)))
    (directory / lab_name).write_bytes(gzip.compress(idx_labels(labels)))
    return images, labels


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def trust(monkeypatch, directory, subset):
    """Make the checksum table accept the fake files of `subset` in `directory`."""
    for name in datasets._FILES[subset]:
        raw = (Path(directory) / name).read_bytes()
        monkeypatch.setitem(datasets._CHECKSUMS, name, datasets._Checksums(
            gz=sha256(raw), idx=sha256(gzip.decompress(raw))))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's cache, $CYSOFTMAX_DATA, the system files or
    the network: HOME is a fresh directory, the system directory an empty
    path, and the download URL a local port nobody listens on."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", str(tmp_path / "system"))
    monkeypatch.setenv(datasets.URL_ENV, "http://127.0.0.1:9/")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    return home


def default_cache(home):
    return home / ".cache" / "cysoftmax" / "fashion-mnist"


class Server:
    """A static file server on 127.0.0.1 that records the paths requested."""

    def __init__(self, root):
        self.root = root
        self.requests = []
        self.short = False  # announce the full length, send half the body
        requests, srv = self.requests, self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                requests.append(self.path)
                if not srv.short:
                    return super().do_GET()
                body = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path, monkeypatch, request):
    """Serve tmp_path/srv/mirror/ and point CYSOFTMAX_FASHION_MNIST_URL at it
    (without a trailing slash, which the loader must add)."""
    (tmp_path / "srv" / "mirror").mkdir(parents=True)
    srv = Server(tmp_path / "srv")
    request.addfinalizer(srv.close)
    monkeypatch.setenv(datasets.URL_ENV, srv.url)
    srv.files = tmp_path / "srv" / "mirror"
    return srv


# ---------------------------------------------------------------------------
# output conventions


@pytest.mark.parametrize("subset", ["train", "test"])
@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.dtype(np.float64)])
def test_shapes_dtype_and_scaling(tmp_path, subset, dtype):
    images, labels = write_set(tmp_path / "d", subset, n=13)
    X, y = load_fashion_mnist(subset, data_home=tmp_path / "d", dtype=dtype)
    dt = np.dtype(dtype)
    assert X.shape == (13, 784) and X.dtype == dt
    assert X.flags.c_contiguous and X.flags.writeable
    assert y.shape == (13,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(X, images.astype(dt) / dt.type(255))
    assert X.min() == 0.0 and X.max() == 1.0


def test_default_subset_is_train_and_default_dtype_float32(tmp_path):
    write_set(tmp_path, "train", n=7)
    write_set(tmp_path, "test", n=3)
    X, y = load_fashion_mnist(data_home=str(tmp_path))
    assert X.shape == (7, 784) and X.dtype == np.float32
    X, y = load_fashion_mnist("test", data_home=tmp_path)
    assert X.shape == (3, 784)


def test_data_home_expands_user(isolated):
    write_set(isolated / "fm", "test", n=4)
    X, _ = load_fashion_mnist("test", data_home="~/fm", download=False)
    assert X.shape == (4, 784)


# ---------------------------------------------------------------------------
# argument checks


@pytest.mark.parametrize("subset", ["all", "TRAIN", "validation", "", None, 0, ("train",)])
def test_invalid_subset(tmp_path, subset):
    write_set(tmp_path, "train")
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist(subset, data_home=tmp_path)
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist_sample(subset)


@pytest.mark.parametrize("dtype", ["float16", "int64", np.uint8, "complex128", object,
                                   "nonsense", None, "longdouble"])
def test_invalid_dtype(tmp_path, dtype):
    write_set(tmp_path, "train")
    with pytest.raises(ValueError, match="dtype"):
        load_fashion_mnist("train", data_home=tmp_path, dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        load_fashion_mnist_sample("train", dtype=dtype)


def test_arguments_are_checked_before_any_search_or_download(server):
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist("all")
    with pytest.raises(ValueError, match="dtype"):
        load_fashion_mnist("test", dtype="int8")
    assert server.requests == []


# ---------------------------------------------------------------------------
# where the files are looked for


def test_search_order(tmp_path, isolated, monkeypatch):
    # Four complete copies, told apart by their sizes.
    write_set(tmp_path / "arg", "test", n=1)
    write_set(tmp_path / "env", "test", n=2)
    write_set(default_cache(isolated), "test", n=3)
    write_set(tmp_path / "system", "test", n=4)
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "env"))

    def n_found(**kw):
        return load_fashion_mnist("test", download=False, **kw)[0].shape[0]

    assert n_found(data_home=tmp_path / "arg") == 1
    assert n_found() == 2
    monkeypatch.delenv(datasets.DATA_ENV)
    assert n_found() == 3
    for name in datasets._FILES["test"]:
        (default_cache(isolated) / name).unlink()
    assert n_found() == 4
    # data_home is searched first, not exclusively
    assert n_found(data_home=tmp_path / "nowhere") == 4


def test_xdg_cache_home_replaces_dot_cache(tmp_path, isolated, monkeypatch):
    write_set(default_cache(isolated), "test", n=3)
    write_set(tmp_path / "xdg" / "cysoftmax" / "fashion-mnist", "test", n=5)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert load_fashion_mnist("test", download=False)[0].shape[0] == 5
    # the XDG spec says to ignore a relative path
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")
    assert load_fashion_mnist("test", download=False)[0].shape[0] == 3


def test_directory_counts_only_with_both_files(tmp_path, monkeypatch):
    write_set(tmp_path / "arg", "test", n=1)
    (tmp_path / "arg" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_set(tmp_path / "env", "test", n=2)
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "env"))
    X, _ = load_fashion_mnist("test", data_home=tmp_path / "arg", download=False)
    assert X.shape[0] == 2


def test_subsets_are_found_independently(tmp_path, monkeypatch):
    write_set(tmp_path / "arg", "train", n=6)
    write_set(tmp_path / "system", "test", n=4)
    assert load_fashion_mnist("train", data_home=tmp_path / "arg")[0].shape[0] == 6
    assert load_fashion_mnist("test", data_home=tmp_path / "arg")[0].shape[0] == 4


def test_not_found_without_download(tmp_path, isolated, monkeypatch, server):
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "env"))
    write_set(server.files, "test")  # would be downloadable; must not be fetched
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("test", data_home=tmp_path / "arg", download=False)
    msg = str(info.value)
    for place in (tmp_path / "arg", tmp_path / "env", default_cache(isolated),
                  tmp_path / "system"):
        assert str(place) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "download=True" in msg
    assert "t10k-images-idx3-ubyte.gz" in msg
    assert server.requests == []
    assert not default_cache(isolated).exists()


# ---------------------------------------------------------------------------
# downloads, from a local server only


def test_download_into_cache_then_reuse(isolated, server, monkeypatch, capsys):
    images, labels = write_set(server.files, "test", n=9)
    trust(monkeypatch, server.files, "test")

    X, y = load_fashion_mnist("test")
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(X, images / np.float32(255))
    assert sorted(server.requests) == sorted(f"/mirror/{n}" for n in datasets._FILES["test"])
    err = capsys.readouterr().err
    assert "downloading" in err and server.url in err and "done" in err

    cache = default_cache(isolated)
    assert sorted(p.name for p in cache.iterdir()) == sorted(datasets._FILES["test"])
    for name in datasets._FILES["test"]:
        assert (cache / name).read_bytes() == (server.files / name).read_bytes()

    # second call: found in the cache, nothing downloaded, nothing printed
    X2, y2 = load_fashion_mnist("test")
    np.testing.assert_array_equal(X2, X)
    assert len(server.requests) == 2
    assert capsys.readouterr().err == ""


def test_download_into_data_home(tmp_path, isolated, server, monkeypatch):
    write_set(server.files, "train", n=5)
    trust(monkeypatch, server.files, "train")
    target = tmp_path / "new" / "dir"
    X, _ = load_fashion_mnist("train", data_home=target, dtype="float64")
    assert X.shape == (5, 784) and X.dtype == np.float64
    assert sorted(p.name for p in target.iterdir()) == sorted(datasets._FILES["train"])
    assert not default_cache(isolated).exists()


def test_download_into_env_dir(tmp_path, isolated, server, monkeypatch):
    write_set(server.files, "test", n=5)
    trust(monkeypatch, server.files, "test")
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "env"))
    load_fashion_mnist("test")
    assert sorted(p.name for p in (tmp_path / "env").iterdir()) == sorted(datasets._FILES["test"])
    assert not default_cache(isolated).exists()


def test_download_fetches_only_the_missing_file(tmp_path, server, monkeypatch):
    write_set(server.files, "test", n=5)
    trust(monkeypatch, server.files, "test")
    target = tmp_path / "arg"
    target.mkdir()
    labels_name = datasets._FILES["test"][1]
    (target / labels_name).write_bytes((server.files / labels_name).read_bytes())
    X, _ = load_fashion_mnist("test", data_home=target)
    assert X.shape == (5, 784)
    assert server.requests == [f"/mirror/{datasets._FILES['test'][0]}"]


def test_download_accepts_recompressed_file_by_its_contents(server, monkeypatch):
    # A mirror may gzip the same IDX bytes differently (Debian does): the
    # digest of the decompressed data is accepted as well.
    write_set(server.files, "test", n=5)
    for name in datasets._FILES["test"]:
        raw = (server.files / name).read_bytes()
        monkeypatch.setitem(datasets._CHECKSUMS, name, datasets._Checksums(
            gz="0" * 64, idx=sha256(gzip.decompress(raw))))
    assert load_fashion_mnist("test")[0].shape == (5, 784)


def test_download_checksum_mismatch_leaves_nothing(isolated, server, monkeypatch):
    write_set(server.files, "test", n=5)
    trust(monkeypatch, server.files, "test")
    name = datasets._FILES["test"][0]
    monkeypatch.setitem(datasets._CHECKSUMS, name, datasets._Checksums(gz="1" * 64, idx="2" * 64))
    with pytest.raises(OSError, match="checksum mismatch") as info:
        load_fashion_mnist("test")
    assert name in str(info.value) and "1" * 64 in str(info.value)
    cache = default_cache(isolated)
    assert name not in {p.name for p in cache.iterdir()}
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_download_cut_short(isolated, server, monkeypatch):
    write_set(server.files, "test", n=50)
    trust(monkeypatch, server.files, "test")
    server.short = True
    with pytest.raises(OSError, match="could not download"):
        load_fashion_mnist("test")
    assert not list(default_cache(isolated).iterdir())


def test_downloaded_files_are_readable_by_all(isolated, server, monkeypatch):
    write_set(server.files, "test", n=5)
    trust(monkeypatch, server.files, "test")
    load_fashion_mnist("test")
    for name in datasets._FILES["test"]:
        assert (default_cache(isolated) / name).stat().st_mode & 0o777 == 0o644


def test_download_http_error(isolated, server):
    with pytest.raises(OSError, match="could not download") as info:
        load_fashion_mnist("train")
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert not list(default_cache(isolated).iterdir())


def test_download_server_unreachable(isolated):
    # the autouse fixture points the URL at a closed local port
    with pytest.raises(OSError, match="could not download"):
        load_fashion_mnist("test")
    assert not list(default_cache(isolated).iterdir())


def test_download_progress_on_a_terminal(server, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    write_set(server.files, "test", n=5)
    trust(monkeypatch, server.files, "test")
    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    load_fashion_mnist("test")
    out = err.getvalue()
    assert "\r" in out and "100%" in out and out.endswith("\n")


def test_default_url_is_the_official_bucket():
    assert datasets.BASE_URL == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert set(datasets._CHECKSUMS) == {n for v in datasets._FILES.values() for n in v}
    for digests in datasets._CHECKSUMS.values():
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)


# ---------------------------------------------------------------------------
# corrupt files: a clear ValueError naming the file, never partial data


def _truncate_gzip(raw):
    return raw[: len(raw) // 2]


def _flip_byte(raw):
    b = bytearray(raw)
    b[len(b) // 2] ^= 0xFF
    return bytes(b)


def _short_payload(raw):  # valid gzip, but one image fewer than announced
    data = gzip.decompress(raw)
    return gzip.compress(data[:-784])


def _long_payload(raw):
    return gzip.compress(gzip.decompress(raw) + b"\0" * 784)


def _wrong_magic(raw):  # a labels magic number on an images file
    return gzip.compress(struct.pack(">I", 2049) + gzip.decompress(raw)[4:])


def _not_gzip(raw):
    return gzip.decompress(raw)


def _header_only_part(raw):
    return gzip.compress(gzip.decompress(raw)[:10])


def _wrong_size(raw):
    data = gzip.decompress(raw)
    n = struct.unpack(">I", data[4:8])[0]
    return gzip.compress(idx_images(np.zeros((n, 27 * 27), np.uint8), dims=(n, 27, 27)))


@pytest.mark.parametrize("corrupt, message", [
    (_truncate_gzip, "gzip"),
    (_flip_byte, "gzip"),
    (_not_gzip, "gzip"),
    (_short_payload, "truncated"),
    (_long_payload, "holds"),
    (_wrong_magic, "magic"),
    (_header_only_part, "truncated"),
    (_wrong_size, "28x28"),
])
def test_corrupt_images_file(tmp_path, corrupt, message):
    write_set(tmp_path, "train", n=8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as info:
        load_fashion_mnist("train", data_home=tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)


def test_wrong_magic_in_labels_file(tmp_path):
    write_set(tmp_path, "test", n=8)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    images, labels = fake_set(8)
    path.write_bytes(gzip.compress(idx_labels(labels, magic=2051)))
    with pytest.raises(ValueError, match="magic") as info:
        load_fashion_mnist("test", data_home=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_truncated_labels_file(tmp_path):
    write_set(tmp_path, "test", n=8)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_labels(np.zeros(7, np.uint8), n=8)))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*truncated"):
        load_fashion_mnist("test", data_home=tmp_path)


def test_label_out_of_range(tmp_path):
    write_set(tmp_path, "test", n=8)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_labels(np.full(8, 10, np.uint8))))
    with pytest.raises(ValueError, match="label 10 out of range"):
        load_fashion_mnist("test", data_home=tmp_path)


def test_image_and_label_counts_differ(tmp_path):
    write_set(tmp_path, "test", n=8)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_labels(np.zeros(7, np.uint8))))
    with pytest.raises(ValueError, match="8 images.*7 labels"):
        load_fashion_mnist("test", data_home=tmp_path)


def test_corrupt_file_is_reported_not_skipped(tmp_path, monkeypatch):
    # A damaged file in an earlier directory is an error, even if a later
    # directory holds good files: silently using other data would hide it.
    write_set(tmp_path / "arg", "test", n=8)
    (tmp_path / "arg" / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    write_set(tmp_path / "system", "test", n=4)
    with pytest.raises(ValueError, match="gzip"):
        load_fashion_mnist("test", data_home=tmp_path / "arg")


def test_empty_files_are_valid(tmp_path):
    d = tmp_path
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_images(np.zeros((0, 784)))))
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_labels(np.zeros(0))))
    X, y = load_fashion_mnist("test", data_home=d)
    assert X.shape == (0, 784) and y.shape == (0,)


# ---------------------------------------------------------------------------
# the embedded sample


@pytest.mark.parametrize("subset, n", [("train", 3000), ("test", 1000)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample(subset, n, dtype):
    X, y = load_fashion_mnist_sample(subset, dtype=dtype)
    assert X.shape == (n, 784) and X.dtype == np.dtype(dtype) and X.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [n // 10] * 10
    assert X.min() == 0.0 and X.max() == 1.0
    # exactly k/255 values
    np.testing.assert_array_equal(np.round(X * 255) / 255, X)


def test_sample_default_and_independent_of_search_paths(server):
    X, y = load_fashion_mnist_sample()
    assert X.shape == (3000, 784) and X.dtype == np.float32
    assert server.requests == []


def test_sample_files_are_small_and_licensed():
    data = importlib.resources.files("cysoftmax") / "data"
    names = [n for pair in datasets._SAMPLE_FILES.values() for n in pair]
    total = sum(len((data / n).read_bytes()) for n in names)
    assert total < 2_000_000
    notice = (data / "LICENSE-fashion-mnist.txt").read_text()
    assert "Copyright (c) 2017 Zalando SE" in notice and "MIT" in notice


def test_train_and_test_samples_do_not_overlap():
    Xtr, _ = load_fashion_mnist_sample("train")
    Xte, _ = load_fashion_mnist_sample("test")
    assert not {r.tobytes() for r in Xtr} & {r.tobytes() for r in Xte}


# ---------------------------------------------------------------------------
# the real files, when Debian's dataset-fashion-mnist is installed


@needs_real
def test_real_test_set(monkeypatch):
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", str(REAL_DIR))
    X, y = load_fashion_mnist("test", download=False)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [1000] * 10
    assert X.min() == 0.0 and X.max() == 1.0


@needs_real
def test_checksum_table_matches_real_files():
    for names in datasets._FILES.values():
        for name in names:
            assert datasets._verify(REAL_DIR / name, name), name


@needs_real
@pytest.mark.parametrize("subset", ["train", "test"])
def test_sample_is_drawn_from_the_official_subset(subset):
    Xs, ys = load_fashion_mnist_sample(subset)
    X, y = load_fashion_mnist(subset, data_home=REAL_DIR, download=False)
    labels_of = {}
    for row, label in zip((X * 255).round().astype(np.uint8), y):
        labels_of.setdefault(row.tobytes(), set()).add(int(label))
    for row, label in zip((Xs * 255).round().astype(np.uint8), ys):
        assert int(label) in labels_of.get(row.tobytes(), ()), "sample image not in the official set"


@needs_real
@_requires.skip_unless("checkout", MAKE_SAMPLE.is_file(), f"{MAKE_SAMPLE} not next to the tests")
def test_make_sample_reproduces_the_shipped_files(tmp_path):
    subprocess.run([sys.executable, str(MAKE_SAMPLE), "--source", str(REAL_DIR),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    data = importlib.resources.files("cysoftmax") / "data"
    for pair in datasets._SAMPLE_FILES.values():
        for name in pair:
            assert (tmp_path / name).read_bytes() == (data / name).read_bytes(), name
