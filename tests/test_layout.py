"""Memory layouts, out= buffers and dtypes.

Every layout variant is compared with the result on a fresh C-contiguous
copy of the same values (to a few eps: a kernel may order a sum differently
for different alignments, but nothing more).
"""

import numpy as np
import pytest

from cysoftmax import (
    local_gradient,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_gradient,
    softmax,
)

DTYPES = [np.float32, np.float64]


def same(a, b):
    """Equal values (to 4 eps of the dtype), same dtype and shape."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    fi = np.finfo(a.dtype) if a.dtype.kind == "f" else np.finfo(np.float64)
    np.testing.assert_allclose(a, b, rtol=4 * float(fi.eps), atol=4 * float(fi.tiny),
                               equal_nan=True)


def data(dtype, shape=(6, 10), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def labels_for(z, seed=1):
    return np.random.default_rng(seed).integers(0, z.shape[1], size=z.shape[0])


def all_results(z, y, axis=-1):
    """Every function's result on z (labels y for the nll functions)."""
    out = {
        "softmax": softmax(z, axis=axis),
        "log_softmax": log_softmax(z, axis=axis),
        "logsumexp": logsumexp(z, axis=axis),
        "logsumexp_keep": logsumexp(z, axis=axis, keepdims=True),
    }
    if np.ndim(z) == 2 and axis == -1:
        w = np.linspace(0.5, 2.0, z.shape[0])
        out["nll_mean"] = nll_loss(z, y)
        out["nll_none_w"] = nll_loss(z, y, sample_weight=w, reduction="none")
        out["local_gradient"] = local_gradient(z, y)
        loss, grad = nll_loss_and_gradient(z, y, sample_weight=w, reduction="sum")
        out["lg_loss"], out["lg_grad"] = loss, grad
    return out


def compare_with_fresh_copy(z, y, axis=-1):
    before = np.array(z, copy=True)
    got = all_results(z, y, axis)
    ref = all_results(np.ascontiguousarray(np.array(z, copy=True)), y, axis)
    for key in ref:
        same(got[key], ref[key])
        if isinstance(got[key], np.ndarray) and got[key].ndim:
            assert got[key].flags.c_contiguous, key
    np.testing.assert_array_equal(z, before)        # inputs are never modified


# ------------------------------------------------------------ input layouts

@pytest.mark.parametrize("dtype", DTYPES)
def test_c_order(dtype):
    z = data(dtype)
    compare_with_fresh_copy(z, labels_for(z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fortran_order(dtype):
    z = np.asfortranarray(data(dtype))
    assert not z.flags.c_contiguous
    compare_with_fresh_copy(z, labels_for(z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_slice(dtype):
    big = data(dtype, shape=(12, 20))
    for z in (big[:, ::2], big[::2, 1::3], big[1:5, 3:9]):
        assert not z.flags.c_contiguous
        compare_with_fresh_copy(z, labels_for(z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_strides(dtype):
    big = data(dtype)
    for z in (big[::-1], big[:, ::-1], big[::-2, ::-3]):
        compare_with_fresh_copy(z, labels_for(z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_input(dtype):
    for z in (data(dtype), np.asfortranarray(data(dtype)), data(dtype)[:, ::2]):
        z.flags.writeable = False
        compare_with_fresh_copy(z, labels_for(z))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1, (0, 2), None])
def test_layouts_with_other_axes(axis, dtype):
    z3 = data(dtype, shape=(4, 6, 8))
    for z in (z3, np.asfortranarray(z3), z3[:, ::-1, ::2], z3.transpose(2, 0, 1)):
        compare_with_fresh_copy(z, None, axis=axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_labels_and_weights(dtype):
    z = data(dtype)
    y = labels_for(z)
    w = np.linspace(0.5, 2, len(y))
    y.flags.writeable = False
    w.flags.writeable = False
    same(nll_loss(z, y, sample_weight=w), nll_loss(z, y.copy(), sample_weight=w.copy()))
    ys = np.repeat(y, 2)[::2]          # non-contiguous labels
    same(nll_loss(z, ys, reduction="none"), nll_loss(z, y, reduction="none"))


# ------------------------------------------------------------ out=

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", [softmax, log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_out_is_input_in_place(func, axis, dtype):
    z = data(dtype)
    expected = func(z.copy(), axis=axis)
    res = func(z, axis=axis, out=z)
    assert res is z
    same(z, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_local_gradient_in_place(dtype):
    z = data(dtype)
    y = labels_for(z)
    expected = local_gradient(z.copy(), y)
    res = local_gradient(z, y, out=z)
    assert res is z
    same(z, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_and_gradient_in_place(reduction, dtype):
    z = data(dtype)
    y = labels_for(z)
    w = np.linspace(0.5, 2, len(y))
    exp_loss, exp_grad = nll_loss_and_gradient(z.copy(), y, sample_weight=w, reduction=reduction)
    loss, grad = nll_loss_and_gradient(z, y, sample_weight=w, reduction=reduction, out=z)
    assert grad is z
    same(grad, exp_grad)
    same(loss, exp_loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", [softmax, log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_out_separate_buffer(func, axis, dtype):
    for z in (data(dtype), np.asfortranarray(data(dtype)), data(dtype)[::-1]):
        before = z.copy()
        buf = np.full(z.shape, np.nan, dtype=dtype)
        res = func(z, axis=axis, out=buf)
        assert res is buf
        same(buf, func(np.ascontiguousarray(z), axis=axis))
        np.testing.assert_array_equal(z, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_separate_buffer_gradients(dtype):
    z = np.asfortranarray(data(dtype))
    y = labels_for(z)
    buf = np.full(z.shape, np.nan, dtype=dtype)
    assert local_gradient(z, y, out=buf) is buf
    same(buf, local_gradient(np.ascontiguousarray(z), y))
    buf2 = np.full(z.shape, np.nan, dtype=dtype)
    loss, grad = nll_loss_and_gradient(z, y, out=buf2)
    assert grad is buf2
    ref_loss, ref_grad = nll_loss_and_gradient(np.ascontiguousarray(z), y)
    same(grad, ref_grad)
    same(loss, ref_loss)


def test_out_int_input_into_float64_buffer():
    z = np.arange(12).reshape(3, 4)
    buf = np.empty((3, 4))
    assert softmax(z, out=buf) is buf
    same(buf, softmax(z.astype(np.float64)))


# ------------------------------------------------------------ dtypes

@pytest.mark.parametrize("dtype", DTYPES)
def test_float_dtypes_are_kept(dtype):
    """float32 in -> float32 out (no up-cast), float64 -> float64, for every output."""
    z = data(dtype)
    y = labels_for(z)
    assert z.flags.c_contiguous
    assert softmax(z).dtype == dtype
    assert log_softmax(z).dtype == dtype
    assert logsumexp(z).dtype == dtype
    assert logsumexp(z, axis=None).dtype == dtype
    assert nll_loss(z, y, reduction="none").dtype == dtype
    assert local_gradient(z, y).dtype == dtype
    loss, grad = nll_loss_and_gradient(z, y, reduction="none")
    assert loss.dtype == dtype and grad.dtype == dtype
    assert isinstance(nll_loss(z, y), float)


@pytest.mark.parametrize("src", [np.int8, np.int32, np.int64, np.uint16, np.float16,
                                 np.longdouble], ids=lambda t: np.dtype(t).name)
def test_other_real_dtypes_compute_in_float64(src):
    z64 = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 0.0, 1.0, 2.0]])
    z = z64.astype(src)
    y = np.array([1, 0])
    for func in (softmax, log_softmax, logsumexp):
        res = func(z)
        assert res.dtype == np.float64
        same(res, func(z64))
    res = nll_loss(z, y, reduction="none")
    assert res.dtype == np.float64
    same(res, nll_loss(z64, y, reduction="none"))
    assert local_gradient(z, y).dtype == np.float64


def test_python_lists_are_accepted():
    same(softmax([[0.0, 1.0], [2.0, 2.0]]), softmax(np.array([[0.0, 1.0], [2.0, 2.0]])))
    same(softmax([1, 2, 3]), softmax(np.array([1.0, 2.0, 3.0])))
    assert nll_loss([[0.0, 0.0]], [1]) == pytest.approx(np.log(2), rel=1e-15)


@pytest.mark.parametrize("dtype", [">f8", ">f4", "<f8"])
def test_non_native_byte_order(dtype):
    z = data(np.float64).astype(dtype)
    y = labels_for(z)
    native = z.astype(np.dtype(dtype).newbyteorder("="))
    for func in (softmax, log_softmax, logsumexp):
        res = func(z)
        assert res.dtype.isnative and res.dtype == native.dtype
        same(res, func(native))
    same(nll_loss(z, y, reduction="none"), nll_loss(native, y, reduction="none"))
    same(local_gradient(z, y), local_gradient(native, y))


def test_big_endian_labels_and_weights():
    z = data(np.float64)
    y = labels_for(z)
    w = np.linspace(0.5, 2, len(y))
    got = nll_loss(z, y.astype(">i8"), sample_weight=w.astype(">f8"), reduction="none")
    same(got, nll_loss(z, y, sample_weight=w, reduction="none"))
