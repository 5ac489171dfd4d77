"""Every argument check: the exception type, and a message that names the argument.

Each case is its own test.  None of them may crash the interpreter: the
kernels must never see an unchecked label, shape or buffer.
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

Y = r"\by\b"
W = r"\bsample_weight\b"
OUT = r"\bout\b"
AXIS = r"\baxis\b"

NLL_FUNCS = {
    "nll_loss": lambda z, y, **kw: nll_loss(z, y, **kw),
    "local_gradient": lambda z, y, **kw: local_gradient(z, y, **kw),
    "nll_loss_and_gradient": lambda z, y, **kw: nll_loss_and_gradient(z, y, **kw),
}
LABEL_FUNCS = pytest.mark.parametrize("func", list(NLL_FUNCS.values()), ids=list(NLL_FUNCS))
WEIGHT_FUNCS = pytest.mark.parametrize(
    "func", [NLL_FUNCS["nll_loss"], NLL_FUNCS["nll_loss_and_gradient"]],
    ids=["nll_loss", "nll_loss_and_gradient"])
ROW_FUNCS = pytest.mark.parametrize("func", [softmax, log_softmax, logsumexp],
                                    ids=["softmax", "log_softmax", "logsumexp"])
OUT_FUNCS = {
    "softmax": lambda z, out: softmax(z, out=out),
    "log_softmax": lambda z, out: log_softmax(z, out=out),
    "local_gradient": lambda z, out: local_gradient(z, np.zeros(z.shape[0], int), out=out),
    "nll_loss_and_gradient":
        lambda z, out: nll_loss_and_gradient(z, np.zeros(z.shape[0], int), out=out),
}
OUT_PARAM = pytest.mark.parametrize("call", list(OUT_FUNCS.values()), ids=list(OUT_FUNCS))


def z34():
    return np.arange(12, dtype=np.float64).reshape(3, 4) / 7


# ------------------------------------------------------------ labels

@LABEL_FUNCS
def test_label_equal_to_n_classes(func):
    with pytest.raises(ValueError, match=Y):
        func(z34(), [0, 1, 4])


@LABEL_FUNCS
def test_label_minus_one(func):
    with pytest.raises(ValueError, match=Y):
        func(z34(), [0, -1, 2])


@LABEL_FUNCS
def test_huge_unsigned_label(func):
    with pytest.raises(ValueError, match=Y):
        func(z34(), np.array([0, 1, 2**64 - 1], dtype=np.uint64))


@LABEL_FUNCS
def test_float_labels(func):
    with pytest.raises(TypeError, match=Y):
        func(z34(), np.array([0.0, 1.0, 2.0]))


@LABEL_FUNCS
def test_bool_labels(func):
    with pytest.raises(TypeError, match=Y):
        func(z34(), np.array([True, False, True]))


@LABEL_FUNCS
def test_object_labels(func):
    with pytest.raises(TypeError, match=Y):
        func(z34(), [0, 1, 2**70])


@LABEL_FUNCS
def test_labels_wrong_length(func):
    with pytest.raises(ValueError, match=Y):
        func(z34(), [0, 1])


@LABEL_FUNCS
def test_empty_labels_for_nonempty_batch(func):
    with pytest.raises(ValueError, match=Y):
        func(z34(), [])


@LABEL_FUNCS
def test_labels_2d(func):
    # a 2-D y holds class probabilities: an integer one is refused for its
    # dtype, a float one of the wrong shape for its shape
    with pytest.raises(TypeError, match=Y):
        func(z34(), np.array([[0], [1], [2]]))
    with pytest.raises(ValueError, match=Y):
        func(z34(), np.array([[0.0], [1.0], [2.0]]))


@LABEL_FUNCS
def test_labels_scalar(func):
    with pytest.raises(ValueError, match=Y):
        func(z34(), 1)


def test_empty_label_list_for_empty_batch_is_accepted():
    assert nll_loss(np.empty((0, 3)), [], reduction="sum") == 0.0


# ------------------------------------------------------------ sample weights

@WEIGHT_FUNCS
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_weight(func, bad):
    with pytest.raises(ValueError, match=W):
        func(z34(), [0, 1, 2], sample_weight=[1.0, bad, 1.0])


@WEIGHT_FUNCS
def test_negative_weight(func):
    with pytest.raises(ValueError, match=W):
        func(z34(), [0, 1, 2], sample_weight=[1.0, -0.5, 1.0])


@WEIGHT_FUNCS
def test_weights_wrong_length(func):
    with pytest.raises(ValueError, match=W):
        func(z34(), [0, 1, 2], sample_weight=[1.0, 1.0])


@WEIGHT_FUNCS
def test_weights_2d(func):
    with pytest.raises(ValueError, match=W):
        func(z34(), [0, 1, 2], sample_weight=np.ones((3, 1)))


@WEIGHT_FUNCS
def test_weights_not_real(func):
    with pytest.raises(TypeError, match=W):
        func(z34(), [0, 1, 2], sample_weight=np.array([1, 2, 3], dtype=complex))


@WEIGHT_FUNCS
def test_all_zero_weights_with_mean(func):
    with pytest.raises(ValueError, match=W):
        func(z34(), [0, 1, 2], sample_weight=[0.0, 0.0, 0.0], reduction="mean")


@WEIGHT_FUNCS
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_all_zero_weights_allowed_with_sum_and_none(func, reduction):
    res = func(z34(), [0, 1, 2], sample_weight=[0.0, 0.0, 0.0], reduction=reduction)
    loss = res[0] if isinstance(res, tuple) else res
    assert np.all(np.asarray(loss) == 0.0)


# ------------------------------------------------------------ reduction

@WEIGHT_FUNCS
def test_unknown_reduction(func):
    with pytest.raises(ValueError, match=r"\breduction\b"):
        func(z34(), [0, 1, 2], reduction="average")


@WEIGHT_FUNCS
@pytest.mark.parametrize("bad", [None, 1, b"mean"], ids=repr)
def test_non_string_reduction(func, bad):
    with pytest.raises(TypeError, match=r"\breduction\b"):
        func(z34(), [0, 1, 2], reduction=bad)


# ------------------------------------------------------------ logits shape / dtype

@LABEL_FUNCS
@pytest.mark.parametrize("shape", [(3,), (3, 4, 1), ()], ids=repr)
def test_nll_logits_not_2d(func, shape):
    z = np.zeros(shape)
    with pytest.raises(ValueError, match=r"\blogits\b"):
        func(z, [0, 1, 2])


BAD_DTYPES = {
    "complex": np.array([[1.0 + 1j, 2.0]]),
    "object": np.array([[1.0, 2.0]], dtype=object),
    "string": np.array([["1.0", "2.0"]]),
    "bytes": np.array([[b"1", b"2"]]),
    "bool": np.array([[True, False]]),
    "datetime": np.array([["2024-01-01", "2024-01-02"]], dtype="datetime64[D]"),
}


@ROW_FUNCS
@pytest.mark.parametrize("bad", list(BAD_DTYPES))
def test_row_functions_reject_non_real_input(func, bad):
    with pytest.raises(TypeError, match=r"\bz\b"):
        func(BAD_DTYPES[bad])


@LABEL_FUNCS
@pytest.mark.parametrize("bad", list(BAD_DTYPES))
def test_nll_functions_reject_non_real_logits(func, bad):
    with pytest.raises(TypeError, match=r"\blogits\b"):
        func(BAD_DTYPES[bad], [0])


@ROW_FUNCS
def test_ragged_input(func):
    with pytest.raises(TypeError, match=r"\bz\b"):
        func([[1.0, 2.0], [3.0]])


# ------------------------------------------------------------ axis

@ROW_FUNCS
@pytest.mark.parametrize("axis", [2, -3, (0, 2), 100], ids=repr)
def test_axis_out_of_range(func, axis):
    with pytest.raises(ValueError, match=AXIS):
        func(z34(), axis=axis)


@ROW_FUNCS
def test_axis_on_zero_dim_input(func):
    with pytest.raises(ValueError, match=AXIS):
        func(np.float64(1.0), axis=0)


@ROW_FUNCS
@pytest.mark.parametrize("axis", [(0, 0), (1, -1), (-2, 0, 1)], ids=repr)
def test_repeated_axis(func, axis):
    with pytest.raises(ValueError, match=AXIS):
        func(z34(), axis=axis)


@ROW_FUNCS
@pytest.mark.parametrize("axis", [1.0, np.float64(0.0), (0, 1.0)], ids=repr)
def test_float_axis(func, axis):
    with pytest.raises(TypeError, match=AXIS):
        func(z34(), axis=axis)


@ROW_FUNCS
@pytest.mark.parametrize("axis", [True, False, np.bool_(True), (0, True)], ids=repr)
def test_bool_axis(func, axis):
    with pytest.raises(TypeError, match=AXIS):
        func(z34(), axis=axis)


@ROW_FUNCS
@pytest.mark.parametrize("axis", [[0, 1], "0"], ids=repr)
def test_axis_of_other_types(func, axis):
    with pytest.raises(TypeError, match=AXIS):
        func(z34(), axis=axis)


def test_numpy_integer_axis_is_accepted():
    z = z34()
    np.testing.assert_array_equal(softmax(z, axis=np.int64(0)), softmax(z, axis=0))


# ------------------------------------------------------------ out=

@OUT_PARAM
def test_out_wrong_shape(call):
    with pytest.raises(ValueError, match=OUT):
        call(z34(), np.empty((4, 3)))


@OUT_PARAM
def test_out_wrong_dtype(call):
    with pytest.raises(ValueError, match=OUT):
        call(z34(), np.empty((3, 4), dtype=np.float32))


@OUT_PARAM
def test_out_float64_for_float32_input(call):
    with pytest.raises(ValueError, match=OUT):
        call(z34().astype(np.float32), np.empty((3, 4)))


@OUT_PARAM
def test_out_not_c_contiguous(call):
    with pytest.raises(ValueError, match=OUT):
        call(z34(), np.empty((3, 4), order="F"))
    with pytest.raises(ValueError, match=OUT):
        call(z34(), np.empty((3, 8))[:, ::2])


@OUT_PARAM
def test_out_read_only(call):
    buf = np.empty((3, 4))
    buf.flags.writeable = False
    with pytest.raises(ValueError, match=OUT):
        call(z34(), buf)


@OUT_PARAM
def test_out_read_only_input_in_place(call):
    z = z34()
    z.flags.writeable = False
    with pytest.raises(ValueError, match=OUT):
        call(z, z)


@OUT_PARAM
def test_out_partially_overlapping_input(call):
    buf = np.arange(16, dtype=np.float64) / 7
    z = buf[:12].reshape(3, 4)
    out = buf[4:16].reshape(3, 4)           # shifted by one row
    before = buf.copy()
    with pytest.raises(ValueError, match=OUT):
        call(z, out)
    np.testing.assert_array_equal(buf, before)   # nothing was written


@OUT_PARAM
def test_out_same_start_different_strides(call):
    buf = np.arange(24, dtype=np.float64) / 7
    z = buf.reshape(3, 8)[:, :4]            # non-contiguous view
    out = buf[:12].reshape(3, 4)            # same first element, other layout
    with pytest.raises(ValueError, match=OUT):
        call(z, out)


@OUT_PARAM
@pytest.mark.parametrize("bad", [[[0.0] * 4] * 3, 1.0, "out"], ids=["list", "float", "str"])
def test_out_not_an_ndarray(call, bad):
    with pytest.raises(TypeError, match=OUT):
        call(z34(), bad)


def test_out_with_other_axis_validated():
    with pytest.raises(ValueError, match=OUT):
        softmax(z34(), axis=0, out=np.empty((4, 3)))
