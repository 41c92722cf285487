"""The medium-group kernel (kernels/grouped.py) against the reference and torch, and its routing."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import kernels, spec
from convkit.kernels import grouped, simd
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


def problem_of(x_shape, w_shape, dtype=np.float32, **conv):
    parsed = spec.parse_settings(**conv).resolve(w_shape[2:], x_shape[2:])
    return kernels.Problem.of(x_shape, w_shape, parsed, dtype)


def arrays(n, cg, og, groups, k, hw, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cg * groups, *hw)).astype(dtype)
    w = rng.standard_normal((og * groups, cg, k, k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    return x, w, b


@settings(deadline=None, max_examples=20)
@given(cg=st.integers(2, 32), og=st.integers(4, 11), groups=st.integers(2, 3),
       k=st.sampled_from([1, 3, 5]), d=st.integers(1, 2), pad=st.integers(0, 2),
       asym=st.booleans(), mode=st.sampled_from(MODES), n=st.integers(1, 2),
       hw=st.sampled_from([(9, 10), (14, 14), (5, 23)]), dtype=st.sampled_from(DTYPES))
def test_grouped_against_reference(cg, og, groups, k, d, pad, asym, mode, n, hw, dtype):
    if k == 1:
        d = 1
    x, w, b = arrays(n, cg, og, groups, k, hw, dtype, cg + 5 * og + 17 * pad)
    padding = ((pad, max(pad - 1, 0)), (0, pad)) if asym else pad
    conv = dict(padding=padding, dilation=d, groups=groups, padding_mode=mode)
    try:
        problem = problem_of(x.shape, w.shape, dtype, **conv)
    except ValueError:
        return  # beyond a mode's limit or an empty output: covered by test_errors
    assert kernels.choose(problem).name == "grouped"
    out = kernels.run(x, w, b, problem)
    assert out.dtype == dtype
    assert_close(out, conv2d_reference(x, w, b, problem.spec), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_grouped_against_torch_every_mode(mode, dtype):
    """16 channels per group, 3x3 (ResNeXt's deep stage, small), asymmetric pads."""
    x, w, b = arrays(2, 16, 16, 2, 3, (7, 8), dtype, 3)
    conv = dict(padding=((1, 2), (2, 1)), groups=2, padding_mode=mode)
    assert kernels.choose(problem_of(x.shape, w.shape, dtype, **conv)).name == "grouped"
    assert_close(convkit.conv2d(x, w, b, **conv), torch_conv2d(x, w, b, **conv), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_1x1_no_padding_reads_the_input_in_place(dtype):
    """ShuffleNet's grouped 1x1 (30 channels per group): planes read straight from x,
    the last group of the last sample included (no read past the array)."""
    x, w, b = arrays(3, 30, 30, 4, 1, (11, 13), dtype, 4)
    x.flags.writeable = False
    assert_close(convkit.conv2d(x, w, b, groups=4), torch_conv2d(x, w, b, groups=4), dtype)


@pytest.mark.parametrize("cg,k", [(16, 1), (30, 1), (7, 1), (16, 3), (9, 3)])
def test_channel_unroll_divides_the_group(cg, k):
    unroll = grouped.channel_unroll(k, k, cg)
    assert cg % unroll == 0 and 1 <= unroll * k * k <= max(8, k * k)


def test_pack_weights_pads_output_channels_with_zeros():
    w = np.arange(2 * 6 * 4, dtype=np.float64).reshape(12, 4, 1, 1)  # 2 groups, 6 out each
    packed = grouped.pack_weights(w, 2, 2)
    assert packed.shape == (2, 2, 2, 8)
    # group 1, second block holds output channels 4, 5 and two zero channels
    assert packed[1, 1, 0].tolist() == [w[10, 0, 0, 0], w[10, 1, 0, 0], w[11, 0, 0, 0],
                                        w[11, 1, 0, 0], 0, 0, 0, 0]


@settings(deadline=None, max_examples=30)
@given(cg=st.integers(2, 20), og=st.integers(4, 9), k=st.sampled_from([1, 3]),
       d=st.integers(1, 2), left=st.integers(0, 4), top=st.integers(0, 3), h=st.integers(1, 9),
       width=st.integers(1, 32), n=st.integers(1, 2), dtype=st.sampled_from(DTYPES))
def test_masked_layout_against_reference(cg, og, k, d, left, top, h, width, n, dtype):
    """Zero padding that keeps the width: planes at the input's pitch, one copy per tap
    column with the wrapped-onto columns zeroed (any split of the padding between left and
    right, wider than the plane included), output stored in place."""
    if k == 1:  # some row padding, or it reads in place; 4 channels: one compiled unroll
        d, top, cg = 1, max(top, 1), 4
    left = min(left, (k - 1) * d)
    bottom = max(0, (k - 1) * d + 1 - h - top)  # at least one output row
    kh = kw = k
    padding = ((top, bottom), (left, (k - 1) * d - left))
    rng = np.random.default_rng(cg + 7 * og + width)
    x = rng.standard_normal((n, 2 * cg, h, width)).astype(dtype)
    w = rng.standard_normal((2 * og, cg, kh, kw)).astype(dtype)
    b = rng.standard_normal(2 * og).astype(dtype)
    conv = dict(padding=padding, dilation=d, groups=2)
    problem = problem_of(x.shape, w.shape, dtype, **conv)
    with mock.patch.object(grouped, "BLOCKS", ()):  # (else mostly the blocked layout's)
        assert kernels.choose(problem).name == "grouped" and grouped.layout(problem) == "masked"
        out = kernels.run(x, w, b, problem)
    assert out.shape == (n, 2 * og, problem.out_h, width)
    assert_close(out, conv2d_reference(x, w, b, problem.spec), dtype)


LANES = simd.lanes(np.dtype(np.float32))  # float32 lanes of a vector


@settings(deadline=None, max_examples=40)
@given(cg=st.integers(2, 20), og=st.integers(4, 11), d=st.integers(1, 2),
       left_share=st.floats(0, 1), top=st.integers(0, 3), bottom=st.integers(0, 3),
       h=st.integers(3, 12), width=st.integers(1, 40), n=st.integers(1, 2),
       dtype=st.sampled_from(DTYPES))
def test_blocked_layout_against_reference(cg, og, d, left_share, top, bottom, h, width, n,
                                          dtype):
    """3x3 with zero padding that keeps the width, split any way between left and right,
    any rows of padding: register blocks over masked copies, the last run of pixels and the
    last block of channels moved back (any output channel count from 4, planes from a few
    vectors of pixels)."""
    left = round(left_share * 2 * d)
    padding = ((top, bottom), (left, 2 * d - left))
    rng = np.random.default_rng(cg + 7 * og + width)
    x = rng.standard_normal((n, 2 * cg, h, width)).astype(dtype)
    w = rng.standard_normal((2 * og, cg, 3, 3)).astype(dtype)
    b = rng.standard_normal(2 * og).astype(dtype)
    conv = dict(padding=padding, dilation=d, groups=2)
    try:
        problem = problem_of(x.shape, w.shape, dtype, **conv)
    except ValueError:
        return  # no output rows
    if grouped.block_shape(problem) is None:
        return  # a plane smaller than every block: the masked layout, tested above
    with mock.patch.object(grouped, "outer_shape", lambda p: None):  # (else some are outer's)
        assert kernels.choose(problem).name == "grouped" and grouped.layout(problem) == "blocked"
        out = kernels.run(x, w, b, problem)
    assert_close(out, conv2d_reference(x, w, b, problem.spec), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("og,hw,k,conv,block", [
    (16, (3, 5 * LANES), 3, dict(padding=1), (4, 5)),  # 15 vectors: ties go to (4, 5)
    (30, (7, 7 * LANES), 1, dict(), (5, 4)),  # ShuffleNet's: read in place
    (30, (7, 7 * LANES), 1, dict(padding=((1, 0), (0, 0))), (5, 4)),  # a padding row: copies
    (32, (1, 3 * LANES + 3), 3, dict(padding=((1, 1), (2, 0))), (8, 3)),  # 3 vectors of pixels
    (5, (9, 2 * LANES), 5, dict(padding=4, dilation=2), (5, 4)),  # five copies, 5 channels
])
def test_blocked_layout_block_shapes(og, hw, k, conv, block, dtype):
    """Each register block shape, chosen by its count of sums, in place and on copies,
    against torch (the unbatched input sliced, the caller's array untouched)."""
    rng = np.random.default_rng(og + k)
    x = rng.standard_normal((2 * 3, *hw)).astype(dtype)[:, ::-1]  # 3 input channels a group
    w = rng.standard_normal((2 * og, 3, k, k)).astype(dtype)
    b = rng.standard_normal(2 * og).astype(dtype)
    before = x.copy()
    problem = problem_of((1, *x.shape), w.shape, np.float32, groups=2, **conv)
    with mock.patch.object(grouped, "outer_shape", lambda p: None):  # 16 and 32: outer's
        assert grouped.layout(problem) == "blocked" and grouped.block_shape(problem) == block
        assert_close(convkit.conv2d(x, w, b, groups=2, **conv),
                     torch_conv2d(x, w, b, groups=2, **conv), dtype)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width,tail", [(11 * LANES + 3, 2), (10 * LANES, 0), (14 * LANES, 4)])
def test_blocked_layout_tail_block(width, tail, dtype):
    """A plane's pixels past its whole runs of five vectors go in one block of as many vectors
    as they need (``tail_vectors``; four left over: a four-vector block), against torch."""
    rng = np.random.default_rng(width)
    x = rng.standard_normal((2, 6, 1, width)).astype(dtype)
    w = rng.standard_normal((32, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    conv = dict(padding=1, groups=2)
    problem = problem_of(x.shape, w.shape, np.float32, **conv)
    assert grouped.block_shape(problem) == (4, 5)
    assert grouped.tail_vectors(width, 5, np.dtype(np.float32)) == tail
    with mock.patch.object(grouped, "outer_shape", lambda p: None):  # 16 a group: outer's
        assert_close(convkit.conv2d(x, w, b, **conv), torch_conv2d(x, w, b, **conv), dtype)


@pytest.mark.parametrize("hw,k,conv,expected", [
    ((14, 14), 3, dict(padding=1), "blocked"),  # ResNeXt's deep stage
    ((7, 32), 3, dict(padding=((1, 1), (0, 2))), "blocked"),  # all the padding on the right
    ((14, 14), 3, dict(padding=2, dilation=2), "blocked"),
    ((56, 56), 3, dict(padding=1), "blocked"),
    ((14, 14), 5, dict(padding=2), "blocked"),
    ((14, 14), 1, dict(), "blocked"),  # read in place
    ((2, LANES), 3, dict(padding=1), "masked"),  # 2 vectors of pixels: no block fits
    ((1, 2 * LANES), 3, dict(padding=1), "masked"),
    ((56, 56), 3, dict(padding=1, padding_mode="reflect"), "padded"),
    ((14, 14), 3, dict(padding=(1, 0)), "padded"),  # the width shrinks
    ((14, 14), 3, dict(), "unpadded"),
])
def test_grouped_layout(hw, k, conv, expected):
    """Output channels that fill no whole vectors (12 a group): the other layouts."""
    problem = problem_of((1, 32, *hw), (24, 16, k, k), groups=2, **conv)
    assert kernels.choose(problem).name == "grouped" and grouped.layout(problem) == expected


@pytest.mark.parametrize("og,k,expected", [
    (LANES, 3, "outer"), (2 * LANES, 5, "outer"), (LANES, 1, "blocked"),  # 1 wide: no sharing
    (3 * LANES, 3, "blocked"), (LANES // 2, 3, "blocked"),
])
def test_outer_layout_where_output_channels_fill_one_or_two_vectors(og, k, expected):
    problem = problem_of((1, 32, 14, 14), (2 * og, 16, k, k), padding=k // 2, groups=2)
    assert grouped.layout(problem) == expected


@pytest.mark.parametrize("width,pixels", [(LANES - 2, LANES - 2), (2 * LANES - 2, LANES - 1),
                                          (2 * LANES + 1, -(-(2 * LANES + 1) // 3))])
def test_outer_blocks_split_a_row_evenly(width, pixels):
    """A row in as few blocks of at most a vector of pixels as it takes, as even as they come
    (two vectors less two pixels: two blocks of a vector less one, not a whole vector and a
    block moved back over it)."""
    problem = problem_of((1, 32, 3, width), (2 * LANES, 16, 3, 3), padding=1, groups=2)
    assert grouped.outer_shape(problem) == (pixels, 1)


OUTER_GEOMETRY = [(3, 1), (5, 1), (3, 2), (7, 1)]  # (kernel, dilation) in direct.SPECIALISED


@settings(deadline=None, max_examples=24)
@given(cg=st.integers(2, 20), vectors=st.integers(1, 2), geometry=st.sampled_from(OUTER_GEOMETRY),
       top=st.integers(0, 3), bottom=st.integers(0, 3), left=st.integers(0, 3),
       right=st.integers(0, 3), mode=st.sampled_from(MODES), h=st.integers(1, 9),
       width=st.integers(1, 40), n=st.integers(1, 2), dtype=st.sampled_from(DTYPES))
def test_outer_layout_against_reference(cg, vectors, geometry, top, bottom, left, right, mode,
                                        h, width, n, dtype):
    """Output channels in one or two whole vectors: blocks of a row's pixels (rows narrower
    and wider than a vector, the last block moved back), every padding and mode, dilation."""
    k, d = geometry
    og = vectors * simd.lanes(np.dtype(dtype))
    x, w, b = arrays(n, cg, og, 2, k, (h, width), dtype, cg + og + width)
    conv = dict(padding=((top, bottom), (left, right)), dilation=d, groups=2, padding_mode=mode)
    try:
        problem = problem_of(x.shape, w.shape, dtype, **conv)
    except ValueError:
        return  # no output, or a reflection wider than the input
    assert kernels.choose(problem).name == "grouped" and grouped.layout(problem) == "outer"
    before = x.copy()
    assert_close(kernels.run(x, w, b, problem), conv2d_reference(x, w, b, problem.spec), dtype)
    assert np.array_equal(x, before)


def test_masked_layout_where_no_block_fits():
    """The LLVM-vectorised kernel's masked layout still serves planes too small for a
    register block, within MASKED_MAX_WIDTH (wider: padded)."""
    def kind(h, w, og=4):
        return grouped.layout(problem_of((1, 8, h, w), (2 * og, 4, 3, 3), padding=1, groups=2))
    narrow = "masked" if 3 * LANES <= grouped.MASKED_MAX_WIDTH else "padded"
    assert [kind(2, 2 * LANES), kind(1, 3 * LANES), kind(1, 3 * LANES, og=12)] == [
        "masked", narrow, "blocked"]


@pytest.mark.parametrize("shape,expected", [
    ((8, 512, 14, 14, 512, 3, 32, 1), "grouped"),  # ResNeXt deep stage
    ((8, 240, 28, 28, 240, 1, 8, 1), "grouped"),  # ShuffleNet grouped 1x1
    ((8, 128, 56, 56, 128, 3, 32, 1), "grouped"),  # ResNeXt, 4 channels per group
    ((2, 16, 9, 9, 32, 3, 16, 1), "direct"),  # depthwise
    ((2, 64, 9, 9, 8, 3, 4, 1), "direct"),  # 2 output channels per group
    ((2, 64, 9, 9, 64, 3, 4, 2), "gemm"),  # stride 2
    ((2, 64, 9, 9, 64, 3, 1, 1), "winograd"),  # dense 3x3 stride 1
    ((2, 136, 9, 9, 136, 3, 4, 1), "gemm"),  # 34 channels per group
])
def test_grouped_routing(shape, expected):
    n, c, h, w, c_out, k, g, s = shape
    problem = problem_of((n, c, h, w), (c_out, c // g, k, k), padding=k // 2, groups=g, stride=s)
    assert kernels.choose(problem).name == expected
