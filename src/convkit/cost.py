"""Cost arithmetic of a conv layer: pure functions of integers.

MACs count multiply-accumulates of the convolution itself; the bias add is
not counted (the convention of thop and fvcore).  FLOPs = 2 x MACs.
"""
from __future__ import annotations

from typing import Sequence


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
