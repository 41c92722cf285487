"""The dense 1x1 kernel (kernels/pointwise.py): against the reference and torch, and where the
table sends it."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import kernels, spec
from convkit.kernels import pointwise, simd
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d


def problem_of(x_shape, w_shape, dtype=np.float32, **settings):
    parsed = spec.parse_settings(**settings).resolve(w_shape[2:], x_shape[2:])
    return kernels.Problem.of(x_shape, w_shape, parsed, dtype)


@settings(max_examples=30)
@given(c_in=st.integers(1, 40), c_out=st.integers(8, 40), h=st.integers(1, 20),
       w=st.integers(1, 20), n=st.integers(1, 3), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_pointwise_against_reference(c_in, c_out, h, w, n, bias, dtype):
    """Any channel counts (a last block of channels moved back), planes of whole runs of
    pixels or with a tail block of 1 or 2 vectors."""
    lanes = simd.lanes(np.dtype(dtype))
    if h * w < pointwise.PIXEL_VECTORS * lanes:
        h = -(-pointwise.PIXEL_VECTORS * lanes // w)  # at least one block of pixels
    rng = np.random.default_rng(c_in + 7 * c_out + 31 * h * w)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in, 1, 1)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    problem = problem_of(x.shape, weight.shape, dtype)
    assert kernels.choose(problem).name == "pointwise"
    out = kernels.run(x, weight, b, problem)
    assert_close(out, conv2d_reference(x, weight, b, problem.spec), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_public_call_unbatched_non_contiguous(dtype):
    """Through ``conv2d``, against torch: an unbatched, reversed and sliced input (tidied to a
    contiguous copy), read-only and unchanged, into ``out=``."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((12, 20, 23)).astype(dtype)[::-1, 1:, 2:]
    x.flags.writeable = False
    w = rng.standard_normal((10, 12, 1, 1)).astype(dtype)
    b = rng.standard_normal(10).astype(dtype)
    assert kernels.choose(problem_of((1, *x.shape), w.shape, dtype)).name == "pointwise"
    before = x.copy()
    out = np.full((10, 19, 21), np.nan, dtype)
    assert convkit.conv2d(x, w, b, out=out) is out
    assert_close(out, torch_conv2d(x, w, b), dtype)
    np.testing.assert_array_equal(x, before)


def test_pointwise_route():
    """Dense 1x1 at stride 1 with no padding, 8 output channels or more, a plane of at least
    a block of pixels; else the BLAS products (gemm) or the grouped kernels."""
    lanes = simd.lanes(np.dtype(np.float32))

    def route(c_out=16, hw=8, groups=1, **settings):
        return kernels.choose(problem_of((2, 8, hw, hw), (c_out, 8 // groups, 1, 1),
                                         groups=groups, **settings)).name
    assert route() == route(c_out=8) == route(c_out=512) == "pointwise"
    assert route(c_out=7) == route(stride=2) == route(padding=1) == "gemm"
    side = int(np.ceil(np.sqrt(pointwise.PIXEL_VECTORS * lanes)))  # a block of pixels
    assert route(hw=side) == "pointwise" and route(hw=side - 2) == "gemm"
    assert route(groups=2) != "pointwise"
