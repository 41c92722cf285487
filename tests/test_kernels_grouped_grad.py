"""The gradients of grouped layers (kernels/grouped_grad.py, and the input gradient on
grouped.py's kernels) against torch, and the weight gradient's layout."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit.kernels import grouped, simd
from oracle import assert_close, torch_conv2d_grads
from test_kernels_grouped import DTYPES, MODES, arrays, problem_of


@pytest.mark.parametrize("conv,dtype", [(dict(padding=1), np.float32),
                                        (dict(padding=(2, 1), padding_mode="reflect"), np.float64),
                                        (dict(padding=2, dilation=2), np.float32)])
def test_outer_layout_gradients_against_torch(conv, dtype):
    """The input gradient's correlation on the outer layout (its weights flipped and packed in
    one pass, pack_outer's ``flip``; with a padding mode, folded back), unbatched and sliced
    input, against torch."""
    from convkit.kernels import backward
    lanes = simd.lanes(np.dtype(dtype))
    rng = np.random.default_rng(lanes)
    x = rng.standard_normal((2 * lanes, 11, 2 * 19)).astype(dtype)[:, :, ::2]  # non-contiguous
    w = rng.standard_normal((2 * 3, lanes, 3, 3)).astype(dtype)  # 3 outputs, lanes inputs
    go = rng.standard_normal((2 * 3, *convkit.conv2d(x, w, groups=2, **conv).shape[1:]))
    problem = problem_of((1, *x.shape), w.shape, dtype, groups=2, **conv)
    flipped = problem_of((1, 6, problem.out_h, problem.out_w), (2 * lanes, 3, 3, 3), dtype,
                         groups=2, padding=1)
    assert grouped.layout(flipped) == "outer"  # the correlation: lanes outputs a group
    got = convkit.conv2d_backward(go.astype(dtype), x, w, groups=2, **conv)
    for mine, theirs in zip(got, torch_conv2d_grads(go, x, w, groups=2, **conv)):
        assert_close(mine, theirs, dtype)
    packed = grouped.pack_outer(w, 2, True).reshape(2, 3, 9, lanes)
    flipped_w = backward.flipped_kernels(w, 2).reshape(2, lanes, 3, 9)
    assert np.array_equal(packed, flipped_w.transpose(0, 2, 3, 1))


@settings(deadline=None, max_examples=10)
@given(cg=st.sampled_from([8, 16]), og=st.sampled_from([4, 16]), k=st.sampled_from([1, 3]),
       pad=st.integers(0, 2), mode=st.sampled_from(MODES), dtype=st.sampled_from(DTYPES))
def test_grouped_gradients_against_torch(cg, og, k, pad, mode, dtype):
    """conv2d_backward on medium groups: the input gradient runs on this kernel."""
    x, w, _ = arrays(2, cg, og, 2, k, (8, 9), dtype, cg + og + pad)
    conv = dict(padding=pad, groups=2, padding_mode=mode)
    try:
        problem_of(x.shape, w.shape, dtype, **conv)
    except ValueError:
        return
    go = np.random.default_rng(1).standard_normal(convkit.conv2d(x, w, **conv).shape)
    got = convkit.conv2d_backward(go.astype(dtype), x, w, **conv)
    for mine, theirs in zip(got, torch_conv2d_grads(go, x, w, **conv)):
        assert_close(mine, theirs, dtype)


@settings(deadline=None, max_examples=25)
@given(cg=st.integers(5, 32), og=st.integers(1, 9), k=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
       d=st.integers(1, 2), pad=st.integers(0, 2), asym=st.booleans(),
       mode=st.sampled_from(MODES), n=st.integers(1, 3), stage=st.sampled_from([1, 512 << 10]),
       dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["flat", "channels"]))
def test_weight_gradient_against_torch(cg, og, k, d, pad, asym, mode, n, stage, dtype, kind):
    """grouped_grad, both layouts: ``flat`` with the samples side by side, ``channels`` with
    the input staged channels-last (one sample or several per chunk, the last chunk shorter;
    the last block of output channels moved back over the one before), the bias gradient
    summed on the way."""
    from convkit.kernels import grouped_grad
    rng = np.random.default_rng(cg + 3 * og + pad)
    x = rng.standard_normal((n, 2 * cg, 7, 9)).astype(dtype)
    w = rng.standard_normal((2 * og, cg, *k)).astype(dtype)
    padding = ((pad, max(pad - 1, 0)), (0, pad)) if asym else pad
    conv = dict(padding=padding, dilation=d, groups=2, padding_mode=mode)
    try:
        problem = problem_of(x.shape, w.shape, dtype, **conv)
    except ValueError:
        return
    assert grouped_grad.supports(problem)
    go = rng.standard_normal((n, 2 * og, problem.out_h, problem.out_w))
    old, grouped_grad.STAGE_BYTES = grouped_grad.STAGE_BYTES, stage
    try:
        got, bias = grouped_grad.weight_and_bias_gradients(go.astype(dtype), x, problem, kind)
    finally:
        grouped_grad.STAGE_BYTES = old
    assert got.dtype == bias.dtype == dtype
    _, grad_w, grad_b = torch_conv2d_grads(go, x, w, **conv)
    assert_close(got, grad_w, dtype)
    assert_close(bias, grad_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vectors,hw,mode", [(1, (7, 9), "zeros"), (2, (5, 3), "reflect"),
                                             (1, (1, 1), "zeros")])
def test_weight_gradient_channels_staged_in_transposed_blocks(vectors, hw, mode, dtype):
    """Channels filling whole vectors are staged channels-last in blocks of lanes x lanes
    turned in registers (a plane of 63 or 15 pixels: its last block moved back over the one
    before; a 1-pixel plane channel by channel), against torch."""
    from convkit.kernels import grouped_grad
    cg = vectors * simd.lanes(np.dtype(dtype))
    rng = np.random.default_rng(cg + hw[0])
    x = rng.standard_normal((2, 2 * cg, *hw)).astype(dtype)
    w = rng.standard_normal((6, cg, 3, 3)).astype(dtype)
    conv = dict(padding=1, groups=2, padding_mode=mode)
    problem = problem_of(x.shape, w.shape, dtype, **conv)
    assert grouped_grad.layout(problem) == "channels"
    go = rng.standard_normal((2, 6, problem.out_h, problem.out_w))
    got, bias = grouped_grad.weight_and_bias_gradients(go.astype(dtype), x, problem)
    _, grad_w, grad_b = torch_conv2d_grads(go, x, w, **conv)
    assert_close(got, grad_w, dtype)
    assert_close(bias, grad_b, dtype)


def test_weight_gradient_layout_fills_vectors():
    """``channels`` where a group's input channels fill at least 3/4 of their vectors."""
    from convkit.kernels import grouped_grad
    lanes = simd.lanes(np.dtype(np.float32))

    def layout(cg, k=3, dtype=np.float32):
        return grouped_grad.layout(problem_of((1, 2 * cg, 9, 9), (4, cg, k, k), dtype,
                                              padding=1, groups=2))
    assert [layout(lanes), layout(lanes * 3 // 4), layout(lanes * 3 // 4 - 1), layout(2 * lanes),
            layout(lanes + 1), layout(lanes // 2, dtype=np.float64)] == [
        "channels", "channels", "flat", "channels", "flat", "channels"]
