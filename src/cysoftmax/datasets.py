"""Fashion-MNIST: the full data set from disk or the network, and a small sample.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) holds 70,000 grayscale 28x28
images of Zalando articles in 10 classes: 60,000 for training and 10,000 for
testing.  It is distributed as four gzipped IDX files.

- :func:`load_fashion_mnist` reads the four official files from the first
  directory that holds them (see its docstring for the search order), and
  downloads them into a cache when none does.
- :func:`load_fashion_mnist_sample` reads a stratified sample (3,000 training
  and 1,000 test images) shipped inside the package: no files, no network.

Both return ``X`` of shape ``(n, 784)``, C-contiguous, ``float32`` (or
``float64``) pixels scaled to ``[0, 1]``, and ``y`` of shape ``(n,)``,
``int64`` labels ``0..9`` naming :data:`FASHION_MNIST_CLASSES`.

Only the standard library and numpy are used.  Every file is fully
validated (gzip CRC, IDX magic number, 28x28 images, image and label counts
that agree, payload length); a corrupt or truncated file raises
``ValueError`` naming it, never partial data.  Downloads are also
checked against known SHA-256 digests before they are moved into place.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.resources
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "FASHION_MNIST_CLASSES",
    "load_fashion_mnist",
    "load_fashion_mnist_sample",
]

#: Class names, indexed by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Where the official files are downloaded from; the environment variable
#: ``CYSOFTMAX_FASHION_MNIST_URL`` overrides it (a mirror, or a test server).
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "CYSOFTMAX_FASHION_MNIST_URL"

#: A directory holding the four files, searched after ``data_home``.
DATA_ENV = "CYSOFTMAX_DATA"

#: Where Debian's ``dataset-fashion-mnist`` package installs the files;
#: searched last.
SYSTEM_DATA_DIR = "/usr/share/datasets/fashion-mnist"

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

_SAMPLE_FILES = {
    "train": ("fashion-mnist-sample-train-images-idx3-ubyte.gz",
              "fashion-mnist-sample-train-labels-idx1-ubyte.gz"),
    "test": ("fashion-mnist-sample-test-images-idx3-ubyte.gz",
             "fashion-mnist-sample-test-labels-idx1-ubyte.gz"),
}


class _Checksums(NamedTuple):
    gz: str   # SHA-256 of the .gz file as served by the official bucket
    idx: str  # SHA-256 of the decompressed IDX file


# A download is accepted when its bytes match `gz`, or when its decompressed
# contents match `idx`.  The second digest identifies the data whatever
# gzip made the file: mirrors recompress (Debian's package, for one, ships
# other .gz bytes than the bucket, with the same IDX contents).  The `idx`
# digests were computed from Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1; the `gz` digests are those of the bucket's
# files (Zalando publishes their MD5s: 8d4fb7e6c68d591d4c3dfef9ec88bf0d,
# 25c81989df183df01b3e8a0aad5dffbe, bef4ecab320f06d8554ea6380940ec79,
# bb300cfdad3c16e7a12a480ee83cd310, in this order).
_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": _Checksums(
        gz="08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        idx="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte.gz": _Checksums(
        gz="b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        idx="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte.gz": _Checksums(
        gz="78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        idx="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte.gz": _Checksums(
        gz="42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
        idx="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

_IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension
_SIDE = 28
_N_CLASSES = 10


# --------------------------------------------------------------------------
# argument checks


def _check_subset(subset):
    if not isinstance(subset, str) or subset not in _FILES:
        raise ValueError(f"subset must be 'train' or 'test', got subset={subset!r}")
    return subset


def _check_dtype(dtype):
    # np.dtype(None) is float64, and a dtype compares equal to None: reject
    # None first, then compare scalar types.
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.type not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got dtype={dtype!r}")
    return dt


# --------------------------------------------------------------------------
# parsing


def _gunzip(raw, name):
    """Decompress a whole gzip file; any damage is a ValueError naming it."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(
            f"{name}: not a valid gzip file ({exc}); it is corrupt or "
            f"truncated -- delete it and get it again") from exc


def _parse_idx(data, name, *, images):
    """Parse an IDX file of unsigned bytes into a read-only uint8 array.

    Images come out as ``(n, 784)``, labels as ``(n,)``.  The magic number,
    the 28x28 image size, the payload length and (for labels) the range
    0..9 are all checked; a mismatch is a ValueError naming the file.
    """
    magic, kind, ndim = ((_IMAGES_MAGIC, "images", 3) if images
                         else (_LABELS_MAGIC, "labels", 1))
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated IDX {kind} file ({len(data)} bytes, the header "
            f"alone needs {header})")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"{name}: bad IDX magic number {found} (0x{found:08x}); an IDX "
            f"{kind} file of unsigned bytes starts with {magic} (0x{magic:08x}). "
            f"Is it the right file, and decompressed only once?")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if images and dims[1:] != (_SIDE, _SIDE):
        raise ValueError(
            f"{name}: images are {dims[1]}x{dims[2]}, Fashion-MNIST's are "
            f"{_SIDE}x{_SIDE}")
    n = dims[0]
    width = _SIDE * _SIDE if images else 1
    payload = len(data) - header
    if payload != n * width:
        raise ValueError(
            f"{name}: the header announces {n} {kind} ({n * width} bytes) but "
            f"the file holds {payload} bytes after it; it is truncated or "
            f"corrupt -- delete it and get it again")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header)
    if images:
        return arr.reshape(n, width)
    if n and int(arr.max()) >= _N_CLASSES:
        raise ValueError(
            f"{name}: label {int(arr.max())} out of range 0..{_N_CLASSES - 1}; "
            f"the file is corrupt")
    return arr


def _read_pair(images_raw, labels_raw, images_name, labels_name):
    """Decompress and parse an (images, labels) pair of gzipped IDX files."""
    images = _parse_idx(_gunzip(images_raw, images_name), images_name, images=True)
    labels = _parse_idx(_gunzip(labels_raw, labels_name), labels_name, images=False)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} "
            f"holds {labels.shape[0]} labels; they do not belong together")
    return images, labels


def _to_output(images, labels, dtype):
    # uint8 / 255, correctly rounded in the target dtype; 255 -> exactly 1.
    X = images.astype(dtype)  # a new C-contiguous, writable array
    X /= dtype.type(255)
    return X, labels.astype(np.int64)


# --------------------------------------------------------------------------
# locating and downloading


def _cache_dir():
    # XDG: $XDG_CACHE_HOME if set to an absolute path, else ~/.cache.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "cysoftmax" / "fashion-mnist"


def _candidates(data_home):
    """The directories to search, in order, as (path, where-it-came-from)."""
    out = []
    if data_home is not None:
        out.append((Path(data_home).expanduser(), "data_home argument"))
    env = os.environ.get(DATA_ENV, "")
    if env:
        out.append((Path(env).expanduser(), f"${DATA_ENV}"))
    out.append((_cache_dir(), "user cache"))
    out.append((Path(SYSTEM_DATA_DIR), "system, Debian's dataset-fashion-mnist"))
    return out


def _base_url():
    url = os.environ.get(URL_ENV, "") or BASE_URL
    return url if url.endswith("/") else url + "/"


def _verify(path, name):
    """True if the file at `path` is the official `name` (see _CHECKSUMS)."""
    expected = _CHECKSUMS[name]
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() == expected.gz:
        return True
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        return False
    return hashlib.sha256(data).hexdigest() == expected.idx


def _download(name, directory):
    """Download `name` into `directory`: temp file, checksum, atomic rename."""
    url = _base_url() + name
    directory.mkdir(parents=True, exist_ok=True)
    tty = sys.stderr.isatty()
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp)
    try:
        print(f"cysoftmax: downloading {url} ...", end="", file=sys.stderr, flush=True)
        try:
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0)
                done, shown = 0, -1
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if tty and total and (pct := 100 * done // total) != shown:
                        shown = pct
                        print(f"\rcysoftmax: downloading {url} ... {pct:3d}%",
                              end="", file=sys.stderr, flush=True)
                if total and done != total:
                    raise OSError(f"connection closed after {done} of {total} bytes")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the response's socket open
            print(" failed", file=sys.stderr)
            raise OSError(
                f"could not download {url}: {exc}. Install the files with "
                f"`apt-get install dataset-fashion-mnist`, put them in one of "
                f"the searched directories, or set ${URL_ENV} to a mirror") from exc
        print(f" done ({done / 1e6:.1f} MB)", file=sys.stderr)
        if not _verify(tmp, name):
            got = hashlib.sha256(tmp.read_bytes()).hexdigest()
            raise OSError(
                f"checksum mismatch for {url}: SHA-256 {got}, expected "
                f"{_CHECKSUMS[name].gz} (or a gzip of IDX data with SHA-256 "
                f"{_CHECKSUMS[name].idx}). The download was discarded; it may "
                f"be damaged or not the official file -- try again, or check "
                f"${URL_ENV}")
        os.chmod(tmp, 0o644)  # mkstemp made it private; the data is not
        os.replace(tmp, directory / name)
    finally:
        tmp.unlink(missing_ok=True)
    return directory / name


def _find_or_download(subset, data_home, download):
    names = _FILES[subset]
    searched = _candidates(data_home)
    for directory, _ in searched:
        if all((directory / n).is_file() for n in names):
            return [directory / n for n in names]
    places = "\n".join(f"  - {d}  ({why})" for d, why in searched)
    if not download:
        raise FileNotFoundError(
            f"Fashion-MNIST {subset!r} files ({', '.join(names)}) were not found "
            f"together in any of:\n{places}\n"
            f"Get them with `apt-get install dataset-fashion-mnist` (Debian/"
            f"Ubuntu), copy the four official files into one of these "
            f"directories, or call load_fashion_mnist(..., download=True) to "
            f"download them from {_base_url()}")
    # Download into the first place the user named, else into the cache.
    target = searched[0][0]
    for n in names:
        if not (target / n).is_file():
            _download(n, target)
    return [target / n for n in names]


# --------------------------------------------------------------------------
# public loaders


def load_fashion_mnist(subset="train", *, data_home=None, download=True,
                       dtype="float32"):
    """Load the Fashion-MNIST training or test set.

    The four official files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``) are looked for in these directories, in
    order; the first that holds both files of `subset` is used:

    1. `data_home`, if given;
    2. ``$CYSOFTMAX_DATA``, if set;
    3. the user cache, ``$XDG_CACHE_HOME/cysoftmax/fashion-mnist`` or
       ``~/.cache/cysoftmax/fashion-mnist``;
    4. ``/usr/share/datasets/fashion-mnist``, where Debian's
       ``dataset-fashion-mnist`` package puts them.

    When none does and `download` is true, the missing files are downloaded
    from Zalando's bucket (:data:`BASE_URL`, or ``$CYSOFTMAX_FASHION_MNIST_URL``)
    into `data_home`, else ``$CYSOFTMAX_DATA``, else the user cache, with a
    progress line on stderr, and verified by SHA-256 before use.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    data_home : str or os.PathLike, optional
        A directory holding (or to receive) the four ``.gz`` files.
    download : bool, default=True
        Download the files when they are found nowhere.  With ``False``,
        a missing data set raises ``FileNotFoundError`` instead.
    dtype : {"float32", "float64"}, default="float32"
        The dtype of `X`.

    Returns
    -------
    X : ndarray of shape (n_samples, 784)
        C-contiguous pixels, row-major 28x28 images, scaled to ``[0, 1]``
        (the stored bytes divided by 255).
    y : ndarray of shape (n_samples,), dtype int64
        Labels ``0..9``; :data:`FASHION_MNIST_CLASSES` names them.

    Raises
    ------
    ValueError
        For a bad `subset` or `dtype`, or a corrupt or truncated file
        (the message names it).
    FileNotFoundError
        When the files are not found and `download` is false; the message
        lists the directories searched.
    OSError
        When a download fails or its checksum does not match (the partial
        file is deleted).

    See Also
    --------
    load_fashion_mnist_sample : a small sample shipped with the package.

    Notes
    -----
    Files found on disk are validated (gzip CRC, IDX header, sizes) but not
    checksummed, so a local copy may be re-compressed or a derived data set
    in the same format.  Downloads are accepted when their bytes, or their
    decompressed contents, match the official files' SHA-256.

    References
    ----------
    Han Xiao, Kashif Rasul and Roland Vollgraf, "Fashion-MNIST: a Novel
    Image Dataset for Benchmarking Machine Learning Algorithms",
    arXiv:1708.07747, 2017.  https://github.com/zalandoresearch/fashion-mnist

    Examples
    --------
    >>> from cysoftmax.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist("test", download=False)  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]                            # doctest: +SKIP
    ((10000, 784), dtype('float32'), array([9, 2, 1, 1, 6]))
    """
    subset = _check_subset(subset)
    dt = _check_dtype(dtype)
    images_path, labels_path = _find_or_download(subset, data_home, download)
    images, labels = _read_pair(images_path.read_bytes(), labels_path.read_bytes(),
                                str(images_path), str(labels_path))
    return _to_output(images, labels, dt)


def load_fashion_mnist_sample(subset="train", *, dtype="float32"):
    """Load the small Fashion-MNIST sample shipped with cysoftmax.

    A stratified sample of the official files, for examples, tests and
    quick experiments without the 30 MB download: 3,000 training images
    (300 per class) and 1,000 test images (100 per class), drawn with a
    fixed seed by ``tools/make_sample.py`` and kept in their original order.
    The sample's test images all come from the official test set, so it
    never leaks training images into a test score.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 3,000-image training sample or the 1,000-image test sample.
    dtype : {"float32", "float64"}, default="float32"
        The dtype of `X`.

    Returns
    -------
    X : ndarray of shape (n_samples, 784)
        C-contiguous pixels scaled to ``[0, 1]``, as in
        :func:`load_fashion_mnist`.
    y : ndarray of shape (n_samples,), dtype int64
        Labels ``0..9``.

    Raises
    ------
    ValueError
        For a bad `subset` or `dtype`.

    See Also
    --------
    load_fashion_mnist : the full data set.

    Notes
    -----
    Fashion-MNIST is Copyright (c) 2017 Zalando SE, under the MIT license;
    the notice ships beside the sample as
    ``cysoftmax/data/LICENSE-fashion-mnist.txt``.

    Examples
    --------
    >>> import numpy as np
    >>> from cysoftmax.datasets import load_fashion_mnist_sample
    >>> X, y = load_fashion_mnist_sample("test")
    >>> X.shape, str(X.dtype)
    ((1000, 784), 'float32')
    >>> np.bincount(y).tolist()
    [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    >>> bool(X.min() >= 0.0 and X.max() <= 1.0)
    True
    """
    subset = _check_subset(subset)
    dt = _check_dtype(dtype)
    folder = importlib.resources.files(__package__ or "cysoftmax") / "data"
    raws = []
    for name in _SAMPLE_FILES[subset]:
        try:
            raws.append((folder / name).read_bytes())
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"the Fashion-MNIST sample file {name} is missing from this "
                f"cysoftmax installation; reinstall cysoftmax") from exc
    images, labels = _read_pair(*raws, *_SAMPLE_FILES[subset])
    return _to_output(images, labels, dt)
