"""Pure shape and cost rules against torch's shapes and parameter counts."""
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from convkit import cost, shapes
from oracle import explicit_pads


@given(n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3))
def test_output_size_matches_torch(n, k, s, p, d):
    if n + 2 * p < d * (k - 1) + 1:
        return  # empty output: rejected by conv2d, see test_errors
    x = torch.zeros(1, 1, n, 1)
    out = torch.nn.functional.conv2d(x, torch.zeros(1, 1, k, 1), stride=(s, 1), padding=(p, 0),
                                     dilation=(d, 1))
    assert shapes.conv_output_size(n, k, s, p, d) == out.shape[2]


@given(n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3),
       lower=st.booleans())
def test_same_pads_keep_ceil_of_input_over_stride(n, k, s, d, lower):
    lo, hi = shapes.same_pads(n, k, s, d, lower=lower)
    expected = explicit_pads("same_lower" if lower else "same", (n,), (k,), s, d)[0]
    assert (lo, hi) == expected
    assert shapes.conv_output_size(n, k, s, (lo, hi), d) == -(-n // s)


def test_same_pads_at_stride_one_are_torchs():
    """torch's 'same': total d*(k-1), the odd pixel after (even kernel 4 on width 7)."""
    x = torch.arange(7.0).reshape(1, 1, 1, 7)
    w = torch.zeros(1, 1, 1, 4)
    w[..., 0] = 1  # picks the leftmost tap: out[0] = x[-lo]
    out = torch.nn.functional.conv2d(x, w, padding="same")
    lo, hi = shapes.same_pads(7, 4)
    assert (lo, hi) == (1, 2) and out[0, 0, 0, 1] == 0  # out[1] reads x[0] -> one pad before


def test_transposed_size_matches_torch():
    for n, k, s, p, op, d in [(3, 3, 2, 1, 1, 1), (5, 4, 3, 0, 2, 1), (4, 3, 1, 1, 0, 2)]:
        x = torch.zeros(1, 1, n, n)
        out = torch.nn.functional.conv_transpose2d(x, torch.zeros(1, 1, k, k), stride=s,
                                                   padding=p, output_padding=op, dilation=d)
        assert shapes.conv_transpose_output_size(n, k, s, p, op, d) == out.shape[2]


@pytest.mark.parametrize("c_in,c_out,k,groups,bias", [(3, 6, 3, 1, True), (3, 6, 3, 3, False),
                                                       (4, 8, 1, 1, True), (4, 8, 3, 4, False),
                                                       (128, 128, 3, 32, True)])
def test_params_and_macs_match_torch(c_in, c_out, k, groups, bias):
    layer = torch.nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
    assert cost.conv2d_params(c_in, c_out, (k, k), groups, bias) == sum(
        p.numel() for p in layer.parameters())
    c = cost.conv2d_cost((2, c_in, 10, 12), c_out, k, groups=groups, bias=bias, padding=1)
    out_shape = tuple(layer(torch.zeros(2, c_in, 10, 12)).shape) if k == 1 else None
    assert c.macs == np.prod(c.output_shape) * (c_in // groups) * k * k
    assert c.flops == 2 * c.macs
    if out_shape:
        assert c.output_shape == (2, c_out, 12, 14)


def test_seed_shapes():
    assert cost.conv2d_cost((1, 1, 4, 4), 1, 3).output_shape == (1, 1, 2, 2)  # seed 001
    assert cost.conv2d_cost((1, 4, 6, 6), 2, 1).weight_shape == (2, 4, 1, 1)  # seed 002
    plain = cost.conv2d_cost((1, 4, 3, 3), 8, 3, padding=1, bias=False)  # seed 003
    depthwise = cost.conv2d_cost((1, 4, 3, 3), 4, 3, padding=1, groups=4, bias=False)
    pointwise = cost.conv2d_cost((1, 4, 3, 3), 8, 1, bias=False)
    assert (plain.params, depthwise.params, pointwise.params) == (288, 36, 32)
    assert plain.output_shape == pointwise.output_shape == (1, 8, 3, 3)


def test_cost_errors_name_the_argument():
    with pytest.raises(ValueError, match="input shape must be"):
        cost.conv2d_cost((3, 4), 8, 3)
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        cost.conv2d_cost((1, 3, 8, 8), 8, 3, groups=2)
