"""The depthwise kernel vectorised over channels (kernels/channels.py): against the reference
and torch, and where direct.path sends it."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import kernels, spec
from convkit.kernels import channels, direct, simd
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]


def problem_of(x_shape, w_shape, dtype=np.float32, **settings):
    parsed = spec.parse_settings(**settings).resolve(w_shape[2:], x_shape[2:])
    return kernels.Problem.of(x_shape, w_shape, parsed, dtype)


# Each (kernel, stride, dilation) and output-row block compiles a kernel of its own: a few
# geometries, widths that give a handful of blocks (rows of 1 to 2 vectors, odd and even).
@settings(max_examples=30)
@given(geometry=st.sampled_from([(3, 1, 1), (3, 2, 1), (5, 2, 2), (7, 1, 1), (5, 1, 2)]),
       blocks=st.integers(1, 3), h=st.integers(4, 12), w=st.sampled_from([5, 9, 14, 23]),
       pads=st.tuples(*[st.integers(0, 3)] * 4), mode=st.sampled_from(MODES),
       extra=st.integers(0, 19), n=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_channels_against_reference(geometry, blocks, h, w, pads, mode, extra, n, dtype):
    """Any padding and mode, asymmetric pads, stride and dilation, channel counts that leave a
    last block moved back (``extra``), planes whose pixel runs end in a moved-back run."""
    k, s, d = geometry
    lanes = simd.lanes(np.dtype(dtype))
    c = blocks * lanes + extra % lanes
    top, bottom, left, right = pads
    settings = dict(stride=s, dilation=d, padding=((top, bottom), (left, right)),
                    padding_mode=mode, groups=c)
    try:
        resolved = spec.parse_settings(**settings).resolve((k, k), (h, w))
    except ValueError:
        return  # beyond a mode's limit or an empty output: covered by test_errors
    rng = np.random.default_rng(k + 5 * h + 17 * w + 31 * c)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c, 1, k, k)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    problem = problem_of(x.shape, weight.shape, dtype, **settings)
    assert channels.fits(problem)
    before = x.copy()
    out = channels.run(x, weight, b, problem)
    assert_close(out, conv2d_reference(x, weight, b, resolved), dtype)
    np.testing.assert_array_equal(x, before)


def test_channels_blocks_split_rows_evenly():
    """A row in as few blocks as hold a vector's lanes, as even as they come."""
    def block(out_w, dtype=np.float32):
        return channels.pixel_block(problem_of((1, 16, 9, out_w), (16, 1, 3, 3), dtype,
                                               padding=1, groups=16))
    expected = {16: [7, 16, 9, 14, 14, 16], 8: [7, 8, 6, 7, 8, 8]}  # AVX-512, AVX2 lanes
    assert [block(w) for w in (7, 16, 17, 28, 56, 64)] == \
        expected[simd.lanes(np.dtype(np.float32))]
    expected = {8: [7, 8, 5, 7, 8, 8], 4: [4, 4, 3, 4, 4, 4]}
    assert [block(w, np.float64) for w in (7, 8, 9, 28, 56, 64)] == \
        expected[simd.lanes(np.dtype(np.float64))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_route(dtype):
    """Stride 2, 7x7 at stride 1, 5x5 at stride 1 where the rows kernel would not run, 3x3 at
    stride 1 on rows up to half a vector; not wider 3x3 at stride 1, fewer channels than a
    vector, a depth multiplier, rows wider than ``MAX_OUT_WIDTH``, or a tile past
    ``TILE_BYTES``."""
    lanes = simd.lanes(np.dtype(dtype))

    def route(c=4 * lanes, hw=14, k=3, stride=1, multiplier=1, **settings):
        return direct.path(problem_of((2, c, hw, hw), (c * multiplier, 1, k, k), dtype,
                                      stride=stride, padding=k // 2, groups=c, **settings))
    wide = channels.MAX_OUT_WIDTH
    assert route(stride=2) == route(k=5, stride=2, hw=56) == route(k=7, hw=7) == "channels"
    assert route(k=7, hw=28) == route(k=5, hw=lanes - 1) == "channels"
    assert route(stride=2, padding_mode="reflect") == route(k=3, hw=2 * wide - 8, stride=2) \
        == "channels"
    assert route(k=3, hw=lanes // 2) == "channels"  # rows at most half a vector
    assert route(k=3, hw=lanes // 2 + 1) != "channels" and route(k=3, hw=28) == "rows"
    assert route(k=5, hw=28) == "rows"  # 5x5: rows wins where it runs
    assert route(c=lanes - 1, stride=2) != "channels"
    assert route(multiplier=2, stride=2) != "channels"
    assert route(k=3, hw=2 * wide + 2, stride=2) != "channels"  # rows of 65
    assert route(k=7, hw=wide + 1) != "channels"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_channels_public_call_unbatched_non_contiguous(mode, dtype):
    """Through ``conv2d``, against torch: an unbatched, reversed and sliced input whose
    channels span two vectors and a moved-back block, stride 2; read-only and unchanged."""
    rng = np.random.default_rng(12)
    c = simd.lanes(np.dtype(dtype)) + 5
    x = rng.standard_normal((c, 30, 31)).astype(dtype)[:, ::-1, 2:29]
    x.flags.writeable = False
    w = rng.standard_normal((c, 1, 5, 5)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    settings = dict(stride=2, padding=2, groups=c, padding_mode=mode)
    assert direct.path(problem_of((1, *x.shape), w.shape, dtype, **settings)) == "channels"
    before = x.copy()
    out = convkit.conv2d(x, w, b, **settings)
    assert out.shape == (c, 15, 14)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)
    np.testing.assert_array_equal(x, before)


def test_channels_many_tasks_per_worker_and_bias_none():
    """A batch of many (sample, block) tasks: each task's tile overwrites the last one's
    pixels, the zero border never written; no bias."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((9, 48, 7, 7)).astype(np.float32)
    w = rng.standard_normal((48, 1, 7, 7)).astype(np.float32)
    settings = dict(padding=3, groups=48)
    assert direct.path(problem_of(x.shape, w.shape, **settings)) == "channels"
    assert_close(convkit.conv2d(x, w, **settings), torch_conv2d(x, w, None, **settings))
