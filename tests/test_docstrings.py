"""The Examples in the docstrings of cysoftmax._api run and give what they show."""

import doctest

import numpy as np

import cysoftmax._api as api


def test_api_docstring_examples():
    # the examples print arrays in NumPy's default format
    with np.printoptions(legacy=False):
        result = doctest.testmod(api, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False,
                                 report=True)
    assert result.attempted > 0, "no docstring examples were found in cysoftmax._api"
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed"


def test_every_public_function_has_examples():
    finder = doctest.DocTestFinder()
    for name in api.__all__:
        tests = finder.find(getattr(api, name), name)
        assert any(t.examples for t in tests), f"{name} has no Examples in its docstring"
