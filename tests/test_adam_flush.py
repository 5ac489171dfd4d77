"""Adam's moments are stored flushed to 0 below the smallest normal number.

The moments of a parameter whose gradient stays 0 decay into the subnormal
range, where x86 arithmetic is slow (``benchmarks/bench_adam.py``).  The
update (``_optim.adam_update``) stores m and v as 0 once their magnitude is
below FLT_MIN / DBL_MIN; everything else is scikit-learn's formula, bit for
bit: the parameters, and every moment at or above the smallest normal.
The reference here is that formula in NumPy, in the network's dtype.
"""

import math

import numpy as np
import pytest

from cysoftmax import _engine

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def adam_reference(params, grads, ms, vs, t, dtype):
    """scikit-learn's AdamOptimizer (``_stochastic_optimizers.py``) in `dtype`,
    NumPy's scalar rules (Python floats adopt the array's dtype), no flush."""
    lr_t = LR * math.sqrt(1 - B2 ** t) / (1 - B1 ** t)      # a Python float: weak
    ms = [B1 * m + (1 - B1) * g for m, g in zip(ms, grads)]
    vs = [B2 * v + (1 - B2) * (g * g) for v, g in zip(vs, grads)]
    params = [p + -lr_t * m / (np.sqrt(v) + EPS) for p, m, v in zip(params, ms, vs)]
    return params, ms, vs


def flushed(a):
    a = a.copy()
    a[np.abs(a) < np.finfo(a.dtype).tiny] = 0
    return a


def _state(rng, shape, dtype):
    """Moments that cover every case: normal, subnormal, ones that fall below
    the smallest normal in this step (b1 m < tiny), exact zeros, and large."""
    tiny = np.finfo(dtype).tiny
    pool = np.array([0.0, tiny / 4, -tiny / 1024, tiny * 1.05, -tiny * 1.05, tiny * 2,
                     tiny, -tiny, 1e-3, -0.5, 3.0], dtype)
    m = rng.choice(pool, shape).astype(dtype)
    v = np.abs(rng.choice(pool, shape)).astype(dtype)
    return m, v


def _grads(rng, shape, dtype):
    """Gradients: mostly 0 (a dead unit's weights), some normal, some so small
    that their square is subnormal."""
    tiny = np.finfo(dtype).tiny
    g = rng.standard_normal(shape).astype(dtype)
    kind = rng.integers(0, 4, shape)
    g[kind == 0] = 0
    g[kind == 1] *= np.sqrt(tiny) / 8
    return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moments_below_the_smallest_normal_are_stored_as_zero(dtype):
    rng = np.random.default_rng(0)
    shapes = [(6, 40), (40,)]
    W = rng.standard_normal(shapes[0]).astype(dtype)
    b = rng.standard_normal(shapes[1]).astype(dtype)
    tr = _engine.Trainer([W], [b], 4, "relu", "adam", 0.0, LR, 0.9, True, B1, B2, EPS)
    assert tr._flush_below == np.finfo(dtype).tiny
    ms, vs = zip(*(_state(rng, s, dtype) for s in shapes))
    ms, vs = list(ms), list(vs)
    tr.set_optimizer_state({"t": 0, "ms": ms, "vs": vs})
    params = [W.copy(), b.copy()]
    saw_subnormal = False
    for t in range(1, 4):
        grads = [_grads(rng, s, dtype) for s in shapes]
        params, ref_m, ref_v = adam_reference(params, grads, ms, vs, t, dtype)
        saw_subnormal |= any(np.any((a != 0) & (np.abs(a) < np.finfo(dtype).tiny))
                             for a in ref_m + ref_v)
        ms, vs = [flushed(a) for a in ref_m], [flushed(a) for a in ref_v]
        tr.apply_gradients(grads[:1], grads[1:])
        st = tr.optimizer_state
        for got, want in zip(st["ms"] + st["vs"], ms + vs):
            assert got.dtype == dtype
            # bit for bit: the normal moments are the formula's, the
            # subnormal ones are +0
            np.testing.assert_array_equal(got.view(f"u{got.itemsize}"),
                                          want.view(f"u{want.itemsize}"))
            assert not np.any((got != 0) & (np.abs(got) < np.finfo(dtype).tiny))
        # the parameters move exactly as the unflushed formula says
        for got, want in zip([W, b], params):
            np.testing.assert_array_equal(got, want)
    assert saw_subnormal, "the test never produced a subnormal moment"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_without_the_flush_the_state_would_be_subnormal(dtype):
    # the same update with the flush turned off (_flush_below = 0) keeps the
    # subnormal moments: the reference without its flush, bit for bit, and
    # not the flushed one -- the test above sees a flush that went missing
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 30)).astype(dtype)
    b = rng.standard_normal(30).astype(dtype)
    tr = _engine.Trainer([W], [b], 4, "relu", "adam", 0.0, LR, 0.9, True, B1, B2, EPS)
    tr._flush_below = 0.0
    ms, vs = map(list, zip(*(_state(rng, s, dtype) for s in [(5, 30), (30,)])))
    tr.set_optimizer_state({"t": 0, "ms": ms, "vs": vs})
    grads = [_grads(rng, (5, 30), dtype), _grads(rng, (30,), dtype)]
    params, ref_m, ref_v = adam_reference([W.copy(), b.copy()], grads, ms, vs, 1, dtype)
    tr.apply_gradients(grads[:1], grads[1:])
    st = tr.optimizer_state
    for got, want in zip(st["ms"] + st["vs"], ref_m + ref_v):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(got, flushed(got)) for got in st["ms"] + st["vs"])
    for got, want in zip([W, b], params):
        np.testing.assert_array_equal(got, want)


def test_nan_and_inf_moments_pass_the_flush():
    W = np.ones((2, 3), np.float32)
    b = np.zeros(3, np.float32)
    tr = _engine.Trainer([W], [b], 4, "relu", "adam", 0.0, LR, 0.9, True, B1, B2, EPS)
    g = np.array([[np.nan, np.inf, 0], [1, 0, 0]], np.float32)
    tr.apply_gradients([g], [np.zeros(3, np.float32)])
    m = tr.optimizer_state["ms"][0]
    assert np.isnan(m[0, 0]) and np.isinf(m[0, 1])


def test_flush_threshold_is_checked():
    tr = _engine.Trainer([np.ones((2, 2))], [np.zeros(2)], 4, "relu", "adam")
    with pytest.raises(ValueError):
        tr._flush_below = -1.0
    with pytest.raises(ValueError):
        tr._flush_below = float("nan")
