"""Shape rules: pure functions of integers.  No arrays are ever built here.

The output size of a convolution along one axis (torch's formula, seed 001,
with dilation; floor division, never float division)::

    out = (in + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1
"""
from __future__ import annotations

from typing import Sequence, Tuple


def _pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def conv_output_size(in_size: int, kernel: int, stride: int = 1, padding=0,
                     dilation: int = 1) -> int:
    """Output length along one axis; ``padding`` is an int or a ``(lo, hi)`` pair.

    >>> conv_output_size(5, 3)           # seed 000: width 5, kernel 3
    3
    >>> conv_output_size(224, 7, stride=2, padding=3)
    112
    """
    lo, hi = _pair(padding)
    return (in_size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


def same_pads(in_size: int, kernel: int, stride: int = 1, dilation: int = 1,
              *, lower: bool = False) -> Tuple[int, int]:
    """``(lo, hi)`` pads of 'same' padding along one axis.

    The output length is ``ceil(in / stride)`` and the total pad is
    ``max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - in)``.  With
    ``lower=False`` (ONNX SAME_UPPER, TensorFlow 'SAME', torch's 'same' at
    stride 1) the smaller half goes before; with ``lower=True`` (ONNX
    SAME_LOWER) the larger half goes before.

    >>> same_pads(5, 4)                  # total 3: one before, two after, as torch
    (1, 2)
    >>> same_pads(5, 4, lower=True)
    (2, 1)
    >>> same_pads(224, 3, stride=2)      # TensorFlow: out 112, total pad 1
    (0, 1)
    """
    out = -(-in_size // stride)
    total = max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - in_size)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def conv2d_output_shape(input_shape: Sequence[int], weight_shape: Sequence[int],
                        stride=1, padding=0, dilation=1) -> Tuple[int, ...]:
    """Output shape of ``conv2d`` for explicit padding, batched or unbatched.

    ``padding`` is an int, a pair or ``((top, bottom), (left, right))``.  For
    string paddings and checks, use :func:`convkit.spec.parse_settings`.

    >>> conv2d_output_shape((2, 3, 4, 5), (6, 1, 3, 3))
    (2, 6, 2, 3)
    """
    *batch, _, h, w = input_shape
    c_out, _, kh, kw = weight_shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    if isinstance(padding, int):
        ph = pw = padding
    else:
        ph, pw = padding
    return (*batch, c_out, conv_output_size(h, kh, sh, ph, dh),
            conv_output_size(w, kw, sw, pw, dw))


def conv_transpose_output_size(in_size: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis (torch's formula).

    >>> conv_transpose_output_size(3, 3, stride=2, padding=1, output_padding=1)
    6
    """
    return (in_size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
