"""Figures of the recorded benchmarks: parses benchmarks/latest_kernels.md and
benchmarks/latest_training.md (the files the benchmark scripts wrote with
``--markdown``) and plots their tables.  Nothing is measured here: the
numbers are the recorded ones, from the machine those files describe.

Run it alone with ``python docs/scripts/benchmark_figures.py``; the
documentation build runs it through matplotlib's plot directive (two
figures).  The benchmarks folder is found next to docs/ (or set
``CYSOFTMAX_BENCHMARKS`` to it).
"""

import os
import pathlib
import re
import sys

import matplotlib.pyplot as plt
import numpy as np


def benchmarks_dir():
    env = os.environ.get("CYSOFTMAX_BENCHMARKS")
    if env:
        return pathlib.Path(env)
    here = pathlib.Path(sys.argv[0] or ".").resolve().parent
    for base in (here, pathlib.Path.cwd().resolve()):
        for parent in (base, *base.parents):
            candidate = parent / "benchmarks" / "latest_kernels.md"
            if candidate.is_file():
                return candidate.parent
    raise FileNotFoundError("benchmarks/latest_kernels.md not found above "
                            f"{here}; set CYSOFTMAX_BENCHMARKS")


def markdown_tables(text):
    """[(heading, [row dicts])] for every pipe table, with the nearest heading above."""
    tables, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if (line.startswith("|") and i + 1 < len(lines)
                and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip())):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells)))
                i += 1
            tables.append((heading, rows))
            continue
        i += 1
    return tables


def number(cell):
    return float(cell.rstrip("x"))


def kernels_figure(path):
    tables = markdown_tables(path.read_text())
    wanted = [("softmax", "softmax(axis=-1)"), ("log_softmax", "log_softmax(axis=-1)"),
              ("NLL loss + gradient", "NLL loss + gradient")]
    peers = [("ours", "C0"), ("scipy", "C1"), ("numpy", "C7"), ("torch", "C2")]
    fig, axes = plt.subplots(len(wanted), 2, figsize=(9, 8.5), sharey="row")
    for r, (title, prefix) in enumerate(wanted):
        rows = next(rows for heading, rows in tables if heading.startswith(prefix))
        for c, dtype in enumerate(("float32", "float64")):
            ax = axes[r, c]
            sel = [row for row in rows if row["dtype"] == dtype]
            shapes = [row["shape"] for row in sel]
            present = [(p, col) for p, col in peers if f"{p} ns/el" in sel[0]]
            width = 0.8 / len(present)
            x = np.arange(len(shapes))
            for k, (peer, color) in enumerate(present):
                vals = [number(row[f"{peer} ns/el"]) for row in sel]
                ax.bar(x + (k - (len(present) - 1) / 2) * width, vals, width,
                       color=color, label="cysoftmax" if peer == "ours" else peer)
            ax.set_yscale("log")
            ax.set_xticks(x, shapes, fontsize=8)
            ax.set_title(f"{title}, {dtype}", fontsize=10)
            ax.grid(True, axis="y", which="major", alpha=0.3)
            if c == 0:
                ax.set_ylabel("ns per element (lower is faster)")
            if r == 0 and c == 0:
                ax.legend(fontsize=8, ncol=2)
    fig.suptitle(f"{path.name}: 1 thread, best of 5 (recorded, not measured here)",
                 fontsize=10)
    return fig


def training_figure(path):
    text = path.read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    columns = [("ours s", "cysoftmax", "C0"), ("floor s", "gemm-only floor", "k"),
               ("numpy s", "numpy", "C7"), ("torch s", "torch", "C2"),
               ("sklearn s", "MLPClassifier", "C3")]
    panels = []
    for section in sections:
        title = section.splitlines()[0].split(":")[0].strip()
        for _, rows in markdown_tables(section):
            panels.append((title, rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(9, 3.6), sharey=True)
    for ax, (title, rows) in zip(np.atleast_1d(axes), panels):
        batches = [row["batch"] for row in rows]
        x = np.arange(len(batches))
        width = 0.8 / len(columns)
        for k, (col, label, color) in enumerate(columns):
            vals = [number(row[col]) for row in rows]
            ax.bar(x + (k - (len(columns) - 1) / 2) * width, vals, width,
                   color=color, label=label)
        ax.set_xticks(x, batches)
        ax.set_xlabel("batch size")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("s per epoch (plain SGD)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{path.name}: one epoch, 60,000 x 784, 784-256-128-10 relu "
                 "(recorded)", fontsize=10)
    return fig


BENCH = benchmarks_dir()
kernels_figure(BENCH / "latest_kernels.md")
training_figure(BENCH / "latest_training.md")

if __name__ == "__main__":
    plt.show()
