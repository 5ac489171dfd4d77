"""The documentation's API reference covers the public API.

Every name of ``cysoftmax.__all__`` (but the ``datasets`` module and
``__version__``, which have no page of their own) and every public name of
``cysoftmax.datasets`` has an entry in ``docs/api.rst``'s autosummary tables
(or, for data, a ``.. data::`` entry), and no entry names something that is
not public.  Reads the sources of the docs, so it needs a checkout (the wheel
check runs the tests without one and skips this module).
"""

import pathlib
import re

import pytest

import _requires

import cysoftmax
import cysoftmax.datasets

API = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.rst"
if not API.exists():
    _requires.missing("checkout", f"{API} is not next to the tests", module_level=True)


def _documented():
    """{module: names} listed under autosummary or .. data:: in docs/api.rst."""
    names, module, in_table = {}, None, False
    for line in API.read_text().splitlines():
        m = re.match(r"\.\. currentmodule:: ([\w.]+)", line)
        if m:
            module = m.group(1)
            continue
        if line.startswith(".. autosummary::"):
            in_table = True
            continue
        m = re.match(r"\.\. data:: (\w+)", line)
        if m:
            names.setdefault(module, set()).add(m.group(1))
            in_table = False
            continue
        if in_table:
            if line.strip() and not line.startswith("   "):
                in_table = False
            elif line.strip() and not line.strip().startswith(":"):
                names.setdefault(module, set()).add(line.strip())
    return names


def test_every_public_name_has_a_page():
    documented = _documented()
    public = {"cysoftmax": set(cysoftmax.__all__) - {"datasets", "__version__"},
              "cysoftmax.datasets": set(cysoftmax.datasets.__all__)}
    for module, names in public.items():
        assert documented.get(module, set()) == names, (
            f"{module}: missing {sorted(names - documented.get(module, set()))}, "
            f"not public {sorted(documented.get(module, set()) - names)}")
