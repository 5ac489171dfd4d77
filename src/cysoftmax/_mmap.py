"""Reading a memory-mapped X through its file (an adapter under the training engine).

Owns `_MappedFile`: when the estimator is handed an ``np.memmap`` (or
``np.load(..., mmap_mode="r")``) of float32/float64, the NaN/inf check, each
epoch and the early-stopping validation rows read it with ``pread``, slice by
slice, never through the mapping.  It calls the trainer's ``run_epoch`` on
one slice at a time; it knows nothing of the estimator (it is called by
`classifier.py`, and imports nothing of cysoftmax).
"""

import contextlib
import mmap
import os

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import _assert_all_finite

__all__ = ["_MappedFile", "_MAPPED_SLICE_BYTES"]

# ------------------------------------------------------------ memory-mapped X
# A float32/float64 np.memmap (or np.load(..., mmap_mode="r")) is trained on
# without ever being read as a whole into memory.  Reading it *through the
# mapping* is not enough: the pages of a file mapping that were touched stay
# mapped, and count in the process's resident size, until the kernel needs
# the memory; and recent kernels map the page cache in large folios (up to
# 2 MB at a time), so a few hundred rows gathered at random from a mapping
# make the whole file resident (measured: 1,000 random rows of a 500 MB file
# mapped 474 MB; madvise MADV_RANDOM / MADV_NOHUGEPAGE did not help).  So the
# rows are read through the file instead (pread into a buffer of
# _MAPPED_SLICE_BYTES): the NaN/inf check in contiguous slices, an epoch in
# slices of whole mini-batches (the same batches in the same order as one
# compiled call over the array: the same model, bit for bit), and the
# early-stopping validation rows.  The kernel's page cache holds the file,
# the process holds one slice.

_MAPPED_SLICE_BYTES = 32 << 20


class _MappedFile:
    """The file under a memory-mapped X, read with pread (not through the mapping).

    `open(X)` gives None (a null context) when X is not a C-contiguous
    float32/float64 2-D view of a file mapped by np.memmap, when the mapping
    is copy-on-write (mode "c": its pages may hold edits the file has not),
    or when the file cannot be read back as the mapping shows it (deleted,
    replaced): the caller then uses X as it is.
    """

    def __init__(self, f, offset, X):
        self._f, self._offset, self.X = f, offset, X
        self.row_bytes = X.shape[1] * X.itemsize       # C-contiguous rows

    @staticmethod
    def applies(X):
        """True when X is a view of an np.memmap that `open` may read through its file."""
        return _MappedFile._locate(X) is not None

    @staticmethod
    def _locate(X):
        if not isinstance(X, np.ndarray):
            return None
        memmap, root, base = None, X, X
        while isinstance(base, np.ndarray):
            if isinstance(base, np.memmap):
                memmap = base
            root, base = base, base.base
        if (memmap is None or not isinstance(base, mmap.mmap) or memmap.mode == "c"
                or getattr(memmap, "filename", None) is None):
            return None
        return memmap, root

    @classmethod
    def open(cls, X):
        found = cls._locate(X)
        if (found is None or X.ndim != 2 or 0 in X.shape or not X.flags.c_contiguous
                or X.dtype not in (np.float32, np.float64) or not X.dtype.isnative):
            return contextlib.nullcontext()
        memmap, root = found
        # the root's data is at file position `memmap.offset` (np.memmap copies
        # the offset of the array it was made from to its views)
        offset = memmap.offset + (X.__array_interface__["data"][0]
                                  - root.__array_interface__["data"][0])
        try:
            f = open(memmap.filename, "rb", buffering=0)
        except OSError:
            return contextlib.nullcontext()
        self = cls(f, offset, X)
        try:
            ok = os.fstat(f.fileno()).st_size >= offset + X.shape[0] * self.row_bytes
            for r in ({0, X.shape[0] - 1} if ok else ()):
                row = np.empty(X.shape[1], X.dtype)
                self.read_rows(np.array([r]), row[None])
                ok = ok and row.tobytes() == X[r].tobytes()
        except OSError:
            ok = False
        if not ok:
            f.close()
            return contextlib.nullcontext()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def _read(self, view, pos):
        fd = self._f.fileno()
        while len(view):
            if hasattr(os, "preadv"):
                got = os.preadv(fd, [view], pos)
            else:                                   # pragma: no cover (Windows)
                self._f.seek(pos)
                got = self._f.readinto(view)
            if not got:
                raise OSError(f"{self._f.name}: unexpected end of file")
            view, pos = view[got:], pos + got

    def read_rows(self, rows, out):
        """out[i] = X[rows[i]], read in file order, runs of consecutive rows at once."""
        if not rows.shape[0]:
            return
        srt = np.argsort(rows, kind="stable")
        r, p = rows[srt], srt
        # a run: consecutive rows of the file going to consecutive rows of out
        brk = np.flatnonzero((np.diff(r) != 1) | (np.diff(p) != 1)) + 1
        starts = np.concatenate(([0], brk)).tolist()
        ends = np.concatenate((brk, [len(r)])).tolist()
        rb = self.row_bytes
        with memoryview(out).cast("B") as flat:
            for a, b, ra, pa in zip(starts, ends, r[starts].tolist(), p[starts].tolist()):
                self._read(flat[pa * rb:(pa + b - a) * rb], self._offset + ra * rb)

    def take(self, rows):
        out = np.empty((rows.shape[0], self.X.shape[1]), self.X.dtype)
        if rows.shape[0]:
            self.read_rows(rows, out)
        return out

    def check_finite(self, estimator_name):
        """scikit-learn's NaN/inf check (and message), slice by slice."""
        if get_config()["assume_finite"]:
            return
        n = self.X.shape[0]
        step = max(1, _MAPPED_SLICE_BYTES // self.row_bytes)
        buf = np.empty((min(step, n), self.X.shape[1]), self.X.dtype)
        for start in range(0, n, step):
            part = buf[:min(step, n - start)]
            self._read(memoryview(part).cast("B"), self._offset + start * self.row_bytes)
            _assert_all_finite(part, input_name="X", estimator_name=estimator_name)

    def run_epoch(self, trainer, y, sample_weight, order, batch_size, lr, schedule=None,
                  seed=0):
        """`trainer.run_epoch` over X's rows in `order`, slice by slice (whole batches)."""
        step = batch_size * max(1, _MAPPED_SLICE_BYTES // (batch_size * self.row_bytes))
        buf = np.empty((min(step, order.shape[0]), self.X.shape[1]), self.X.dtype)
        total, interrupt = 0.0, None
        for start in range(0, order.shape[0], step):
            idx = order[start:start + step]
            while True:     # an interrupt while reading: read again (nothing trained yet)
                try:
                    srt = np.argsort(idx, kind="stable")
                    rows = idx[srt]                 # the buffer holds the rows in file order
                    local = np.empty_like(srt)
                    local[srt] = np.arange(srt.shape[0], dtype=srt.dtype)
                    self.read_rows(rows, buf[:rows.shape[0]])
                    sw = None if sample_weight is None else sample_weight[rows]
                    break
                except KeyboardInterrupt as exc:
                    interrupt = exc
            try:
                # whole batches per slice: batch start // batch_size of the epoch
                total += trainer.run_epoch(buf[:rows.shape[0]], y[rows], sw, local, batch_size,
                                           lr, schedule, seed, start // batch_size)
            except KeyboardInterrupt as exc:
                # delivered when the compiled call returned: that slice ran.  As
                # with one compiled call, the epoch runs to its end
                interrupt = exc
        if interrupt is not None:
            raise interrupt
        return total
