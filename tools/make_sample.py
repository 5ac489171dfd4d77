#!/usr/bin/env python
"""Regenerate the Fashion-MNIST sample shipped in src/cysoftmax/data/.

The sample is stratified: 300 training images per class drawn from the
official training file and 100 test images per class from the official test
file, with a fixed seed, kept in their original order.  The output is
byte-for-byte reproducible (gzip with mtime=0 and no file name in the
header), given the same numpy (Generator stream) and zlib.

    python tools/make_sample.py                      # from /usr/share/datasets/fashion-mnist
    python tools/make_sample.py --source DIR --out /tmp/sample

The official files are checked against the SHA-256 digests in
cysoftmax/datasets.py before use.  This script loads datasets.py straight
from the source tree (it needs only numpy), so it runs without a build.
"""

import argparse
import gzip
import hashlib
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 20170828  # Fashion-MNIST's release date
PER_CLASS = {"train": 300, "test": 100}


def _load_datasets_module():
    spec = importlib.util.spec_from_file_location(
        "_cysoftmax_datasets", ROOT / "src" / "cysoftmax" / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _idx_bytes(images, labels):
    n = images.shape[0]
    img = struct.pack(">IIII", 0x803, n, 28, 28) + np.ascontiguousarray(images).tobytes()
    lab = struct.pack(">II", 0x801, n) + np.ascontiguousarray(labels, np.uint8).tobytes()
    return img, lab


def select(labels, per_class, seed):
    """Indices of `per_class` examples of each class, drawn with `seed`, sorted."""
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
              for c in range(10)]
    return np.sort(np.concatenate(chosen))


def main(argv=None):
    ds = _load_datasets_module()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path(ds.SYSTEM_DATA_DIR),
                        help="directory with the four official .gz files "
                             "(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "cysoftmax" / "data",
                        help="output directory (default: %(default)s)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the SHA-256 check of the source files")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for subset in ("train", "test"):
        names = ds._FILES[subset]
        paths = [args.source / n for n in names]
        if not args.no_verify:
            for path, name in zip(paths, names):
                if not ds._verify(path, name):
                    sys.exit(f"{path} is not the official {name} (SHA-256 mismatch); "
                             f"use --no-verify to sample it anyway")
        images, labels = ds._read_pair(paths[0].read_bytes(), paths[1].read_bytes(),
                                       str(paths[0]), str(paths[1]))
        idx = select(labels, PER_CLASS[subset], SEED)
        for name, data in zip(ds._SAMPLE_FILES[subset], _idx_bytes(images[idx], labels[idx])):
            blob = gzip.compress(data, compresslevel=9, mtime=0)
            (args.out / name).write_bytes(blob)
            total += len(blob)
            print(f"{name}: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    print(f"total {total} bytes in {args.out}")


if __name__ == "__main__":
    main()
