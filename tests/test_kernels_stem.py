"""The few-input-channel kernel (kernels/stem.py) against the reference and torch; routing."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import kernels, spec
from convkit.kernels import simd, stem
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]
# Output columns one register block spans: the narrowest rows the kernel takes.
SPAN = {dtype: stem.PIXEL_VECTORS * simd.lanes(np.dtype(dtype)) for dtype in DTYPES}


def problem_of(x_shape, w_shape, dtype=np.float32, **conv):
    parsed = spec.parse_settings(**conv).resolve(w_shape[2:], x_shape[2:])
    return kernels.Problem.of(x_shape, w_shape, parsed, dtype)


def route(x_shape, w_shape, dtype=np.float32, **conv):
    return kernels.choose(problem_of(x_shape, w_shape, dtype, **conv)).name


# (kernel, stride, dilation): each compiles a kernel of its own per dtype (~5 s from a cold
# cache), so a few that cover either stride and dilation and both ends of the kernel sizes.
GEOMETRIES = [(3, 1, 1), (3, 2, 1), (7, 2, 1), (5, 1, 2)]


@settings(deadline=None, max_examples=40)
@given(c_in=st.integers(1, 4), c_out=st.integers(3, 10), geometry=st.sampled_from(GEOMETRIES),
       pads=st.tuples(*[st.integers(0, 3)] * 4), mode=st.sampled_from(MODES),
       n=st.integers(1, 3), h=st.integers(7, 16), extra=st.integers(0, 40),
       dtype=st.sampled_from(DTYPES))
def test_stem_against_reference(c_in, c_out, geometry, pads, mode, n, h, extra, dtype):
    """Any padding and mode, both strides and dilations, output widths from one register
    block's span up (the last block of a row and of the channels moved back), channel counts
    that leave a partial block."""
    k, s, d = geometry
    top, bottom, left, right = pads
    width = s * (SPAN[dtype] - 1) + (k - 1) * d + 1 - left - right + extra  # out_w >= SPAN
    rng = np.random.default_rng(c_in + 5 * c_out + 17 * k + 31 * h)
    x = rng.standard_normal((n, c_in, h, width)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    conv = dict(stride=s, padding=((top, bottom), (left, right)), dilation=d, padding_mode=mode)
    try:
        problem = problem_of(x.shape, w.shape, dtype, **conv)
    except ValueError:
        return  # beyond a mode's limit or an empty output: covered by test_errors
    assert problem.out_w >= SPAN[dtype]
    assert kernels.choose(problem).name == "stem"
    out = kernels.run(x, w, b, problem)
    assert_close(out, conv2d_reference(x, w, b, problem.spec), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_resnet_stem_unbatched_non_contiguous_against_torch(dtype):
    """ResNet's stem geometry through the public call: an unbatched, row-reversed, sliced
    input (the caller's array untouched), no bias."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 40, 240)).astype(dtype)[:, ::-2, 5:235]
    w = rng.standard_normal((8, 3, 7, 7)).astype(dtype)
    before = x.copy()
    assert route((1, *x.shape), w.shape, dtype, stride=2, padding=3) == "stem"
    out = convkit.conv2d(x, w, None, stride=2, padding=3)
    assert_close(out, torch_conv2d(x, w, None, stride=2, padding=3), dtype)
    assert np.array_equal(x, before)


def test_stem_runs_samples_in_chunks_of_its_planes_budget(monkeypatch):
    """Phase planes of a few samples at a time (never the whole batch): a budget of one
    sample's planes plus a little runs each sample as its own chunk, with the same numbers."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 20, 240))
    w = rng.standard_normal((4, 3, 3, 3))
    problem = problem_of(x.shape, w.shape, np.float64, stride=2, padding=1,
                         padding_mode="reflect")
    per_sample = 3 * 4 * 11 * 121 * 8
    assert stem.chunk_samples(problem) == stem.PLANES_BYTES // per_sample
    monkeypatch.setattr(stem, "PLANES_BYTES", per_sample + 100)
    assert stem.chunk_samples(problem) == 1
    out = kernels.run(x, w, None, problem)
    assert_close(out, torch_conv2d(x, w, None, stride=2, padding=1, padding_mode="reflect"))


def test_stem_routing():
    """At most 4 input channels, at least 3 outputs, dense, rows a register block wide, a
    specialised geometry; else the GEMM (or, with groups, the direct kernel)."""
    wide = (1, 3, 9, SPAN[np.float32])
    assert [route(wide, (64, 3, 3, 3), padding=1),
            route((1, 4, 9, 2 * SPAN[np.float32]), (8, 4, 7, 7), stride=2, padding=3),
            route((1, 3, 9, SPAN[np.float64]), (8, 3, 5, 5), np.float64, padding=2),
            route((1, 3, 9, SPAN[np.float32] - 1), (64, 3, 3, 3), padding=1),
            route((1, 5, 9, SPAN[np.float32]), (64, 5, 3, 3), padding=1),
            route(wide, (2, 3, 3, 3), padding=1),
            route(wide, (64, 3, 2, 2)),
            route(wide, (6, 1, 3, 3), padding=1, groups=3)] == [
        "stem", "stem", "stem", "gemm", "gemm", "gemm", "gemm", "direct"]
