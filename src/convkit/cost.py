"""Cost arithmetic of a conv layer: pure functions of integers.

MACs count multiply-accumulates of the convolution itself; the bias add is
not counted (the convention of thop and fvcore).  FLOPs = 2 x MACs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple


def conv2d_params(in_channels: int, out_channels: int, kernel_size: Sequence[int],
                  groups: int = 1, bias: bool = True) -> int:
    """Number of weights (and biases) of a conv layer.

    >>> conv2d_params(4, 8, (3, 3), bias=False)              # seed 003: plain conv
    288
    >>> conv2d_params(4, 4, (3, 3), groups=4, bias=False)    # its depthwise part
    36
    """
    kh, kw = kernel_size
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def conv2d_macs(output_shape: Sequence[int], in_channels: int, kernel_size: Sequence[int],
                groups: int = 1) -> int:
    """Multiply-accumulates: N * C_out * H_out * W_out * (C_in / groups) * kH * kW.

    ``output_shape`` is ``(N, C_out, H_out, W_out)`` or unbatched ``(C_out, H_out, W_out)``.

    >>> conv2d_macs((2, 6, 2, 3), 3, (3, 3), groups=3)
    648
    """
    n = 1
    for size in output_shape:
        n *= size
    kh, kw = kernel_size
    return n * (in_channels // groups) * kh * kw


@dataclass(frozen=True)
class LayerCost:
    """Shapes and cost of one conv layer, computed from integers only."""

    input_shape: Tuple[int, ...]
    weight_shape: Tuple[int, int, int, int]
    output_shape: Tuple[int, ...]
    pads: Tuple[Tuple[int, int], Tuple[int, int]]
    params: int
    macs: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


def conv2d_cost(input_shape: Sequence[int], out_channels: int, kernel_size, stride=1,
                padding=0, dilation=1, groups: int = 1, bias: bool = True,
                padding_mode: str = "zeros") -> LayerCost:
    """Output shape, weight shape, parameters and MACs of a conv layer on ``input_shape``.

    Every argument is checked as ``conv2d`` checks it; no array is built.

    >>> c = conv2d_cost((2, 3, 4, 5), 6, 3, groups=3, bias=False)   # seed 000, groups=3
    >>> c.weight_shape, c.output_shape, c.params, c.macs
    ((6, 1, 3, 3), (2, 6, 2, 3), 54, 648)
    """
    from .spec import check_channels, parse_settings, standardize_pair

    input_shape = tuple(input_shape)
    if len(input_shape) not in (3, 4) or min(input_shape, default=0) < 0 or \
            min(input_shape[-2:]) < 1:
        raise ValueError(f"input shape must be (N, C, H, W) or (C, H, W) with H, W >= 1, "
                         f"got {input_shape}")
    settings = parse_settings(stride, padding, dilation, groups, padding_mode)
    kernel = standardize_pair(kernel_size, "kernel_size")
    c_in = input_shape[-3]
    if out_channels < 1 or c_in < 1:
        raise ValueError(f"channels must be >= 1, got in_channels={c_in}, "
                         f"out_channels={out_channels}")
    check_channels(c_in, out_channels, settings.groups)
    spec = settings.resolve(kernel, input_shape[-2:])
    out_hw = spec.output_size(input_shape[-2:], kernel)
    output_shape = (*input_shape[:-3], out_channels, *out_hw)
    weight_shape = (out_channels, c_in // settings.groups, *kernel)
    return LayerCost(input_shape, weight_shape, output_shape, spec.pads,
                     conv2d_params(c_in, out_channels, kernel, settings.groups, bias),
                     conv2d_macs(output_shape, c_in, kernel, settings.groups))
