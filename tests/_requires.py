"""What a test needs that may be absent, and the one rule for its absence.

A test that needs an optional package (PyTorch, Dask, pandas, rich, the
callback API of scikit-learn >= 1.9: ``sklearn-callback``), the full
Fashion-MNIST, the checkout around ``tests/`` (docs/, tools/, README.md) or an
OpenMP build asks here.  When the thing is missing the test is skipped,
unless the environment variable ``CYSOFTMAX_REQUIRE`` names it (a comma-separated
list of the names in `KNOWN`, or ``all``): then the test fails, saying what was
required and why it is missing.  ``.ci/run`` sets it, so a skip in CI is a
failure, not a pass.
"""

import importlib
import os

import pytest

KNOWN = frozenset({"torch", "dask", "pandas", "fashion-mnist", "checkout", "openmp",
                   "sklearn-callback", "rich"})


def required():
    """The names CYSOFTMAX_REQUIRE asks for (checked against `KNOWN`)."""
    raw = os.environ.get("CYSOFTMAX_REQUIRE", "")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    if "all" in names:
        return KNOWN
    unknown = names - KNOWN
    if unknown:
        raise ValueError(f"CYSOFTMAX_REQUIRE names {sorted(unknown)}; known: {sorted(KNOWN)} or 'all'")
    return frozenset(names)


def missing(what, reason, *, module_level=False):
    """Skip (or, when `what` is required, fail) because `what` is absent."""
    if what not in KNOWN:
        raise ValueError(f"unknown requirement {what!r}")
    if what in required():
        pytest.fail(f"{what} is required here (CYSOFTMAX_REQUIRE="
                    f"{os.environ.get('CYSOFTMAX_REQUIRE')}) but {reason}", pytrace=False)
    pytest.skip(f"{what} not available: {reason}", allow_module_level=module_level)


def import_module(name, what, *, module_level=False):
    """The module `name`, else `missing(what, ...)`."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(what, f"import {name} failed: {exc}", module_level=module_level)


def skip_unless(what, available, reason):
    """A ``skipif`` mark for tests that need `what`; no mark at all when
    `what` is required, so that the test runs and fails on what it lacks."""
    if what not in KNOWN:
        raise ValueError(f"unknown requirement {what!r}")
    return pytest.mark.skipif(not available and what not in required(),
                              reason=f"{what} not available: {reason}")


REQUIRED = required()      # a misspelt CYSOFTMAX_REQUIRE fails every module that asks here
