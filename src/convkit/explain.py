"""One output element of a convolution written out as its sum of products (seed 000's picture).

``explain(input, weight, index)`` lists every multiply that makes
``conv2d(input, weight)[index]``: which input value (or which padding) meets
which weight, in which group, from which input channels.  ``str()`` prints the
kernel beside its input window and the sum term by term, as the seed does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import padding as _padding
from .functional import _tidy_arrays
from .spec import parse_settings


@dataclass(frozen=True)
class Term:
    """One multiply: ``input_value * weight_value``.

    ``position`` is (n, c_in, row, col) in padded coordinates (row/col may lie
    outside the input); ``source`` is the input element read there, None for zero
    padding, or the element a reflect/replicate/circular/symmetric border copies.
    """

    position: Tuple[int, int, int, int]
    source: Optional[Tuple[int, int, int, int]]
    input_value: float
    weight_index: Tuple[int, int, int, int]
    weight_value: float

    @property
    def is_padding(self) -> bool:
        return self.source != self.position


@dataclass(frozen=True)
class Explanation:
    """``value = bias + sum(t.input_value * t.weight_value for t in terms)``."""

    index: Tuple[int, ...]
    value: float
    terms: Tuple[Term, ...]
    group: int
    in_channels: Tuple[int, ...]
    bias: Optional[float]
    kernel_size: Tuple[int, int]
    padding_mode: str

    def __str__(self) -> str:
        return _render(self)


def explain(input, weight, index, bias=None, stride=1, padding=0, dilation=1, groups=1,
            padding_mode="zeros") -> Explanation:
    """The products that make ``conv2d(input, weight, ...)[index]``.

    Args:
        input, weight, bias, stride, padding, dilation, groups, padding_mode: as
            :func:`convkit.conv2d`.
        index: ``(n, c_out, h, w)``, or ``(c_out, h, w)`` for an unbatched input.

    Example (seed 000, groups=3: the second output channel reads input channel 0):
        >>> from convkit.examples import seed000
        >>> x, w = seed000(groups=3)
        >>> e = explain(x, w, (0, 1, 0, 0), groups=3)
        >>> round(e.value, 4), e.group, e.in_channels, len(e.terms)
        (123.3577, 0, (0,), 9)
    """
    settings = parse_settings(stride, padding, dilation, groups, padding_mode)
    x, w, b, _, unbatched = _tidy_arrays(input, weight, bias, settings.groups)
    spec = settings.resolve(w.shape[2:], x.shape[2:])
    out_shape = (x.shape[0], w.shape[0], *spec.output_size(x.shape[2:], w.shape[2:]))
    n, c_out, h, w_ = _check_index(index, out_shape[1:] if unbatched else out_shape, unbatched)
    c_group, kh, kw = w.shape[1:]
    group = c_out // (w.shape[0] // settings.groups)
    channels = tuple(range(group * c_group, (group + 1) * c_group))
    (top, bottom), (left, right) = spec.pads
    rows = _padding.index_map(x.shape[2], top, bottom, spec.padding_mode)
    cols = _padding.index_map(x.shape[3], left, right, spec.padding_mode)
    terms = []
    for ci, c in enumerate(channels):
        for i in range(kh):
            for j in range(kw):
                pr = h * spec.stride[0] + i * spec.dilation[0]  # padded coordinates
                pc = w_ * spec.stride[1] + j * spec.dilation[1]
                sr, sc = rows[pr], cols[pc]
                source = None if sr < 0 or sc < 0 else (n, c, int(sr), int(sc))
                value = 0.0 if source is None else float(x[source])
                terms.append(Term((n, c, pr - top, pc - left), source, value,
                                  (c_out, ci, i, j), float(w[c_out, ci, i, j])))
    bias_value = None if b is None else float(b[c_out])
    total = sum(t.input_value * t.weight_value for t in terms) + (bias_value or 0.0)
    return Explanation(tuple(index), total, tuple(terms), group, channels, bias_value,
                       (kh, kw), spec.padding_mode.value)


def _check_index(index, shape, unbatched):
    if not isinstance(index, (tuple, list)) or len(index) != len(shape) or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in index):
        form = "(c_out, h, w) for an unbatched input" if unbatched else "(n, c_out, h, w)"
        raise ValueError(f"index must be {form}, got {index!r}")
    if any(not 0 <= i < s for i, s in zip(index, shape)):
        raise ValueError(f"index {tuple(index)} is outside the output of shape {shape}")
    return (0, *index) if unbatched else tuple(index)


def _num(value: float) -> str:
    """141 for whole numbers, else four decimals (the seed prints weights so)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4f}"


def _cell(term: Term) -> str:
    """The input value of a term: 141, 'pad' (zero padding) or [141] (a copied border value)."""
    if term.source is None:
        return "pad"
    return f"[{_num(term.input_value)}]" if term.is_padding else _num(term.input_value)


def _matrix(cells):
    """Rows of right-aligned cells: ['[-0.1146, -0.0763]', '[ 0.0143,  0.0109]']."""
    width = max(len(c) for row in cells for c in row)
    return ["[" + ", ".join(c.rjust(width) for c in row) + "]" for row in cells]


def _render(e: Explanation) -> str:
    kh, kw = e.kernel_size
    lines = [f"output{list(e.index)}: group {e.group}, input channels {list(e.in_channels)}, "
             f"{len(e.terms)} products"
             + ("" if e.padding_mode == "zeros" else
                f"; [v] is {e.padding_mode} padding copying v")]
    blocks = [e.terms[k:k + kh * kw] for k in range(0, len(e.terms), kh * kw)]
    rows = [block[r * kw:(r + 1) * kw] for block in blocks for r in range(kh)]
    for channel, block in zip(e.in_channels, blocks):
        block_rows = [block[r * kw:(r + 1) * kw] for r in range(kh)]
        kernel = _matrix([[_num(t.weight_value) for t in row] for row in block_rows])
        window = _matrix([[_cell(t) for t in row] for row in block_rows])
        width = len(kernel[0])
        lines.append(f"  {'weight' + str(list(block[0].weight_index[:2])):{width}}   "
                     f"input channel {channel}")
        lines.extend(f"  {k}   {w}" for k, w in zip(kernel, window))
    lines.append("sum of products:")
    written = [_sum_row(row) for row in rows]
    if e.bias is not None:
        written.append(f"{_num(e.bias)} (bias)")
    lines.append("  " + " +\n  ".join(written) + f" = {e.value:.4f}")
    return "\n".join(lines)


def _sum_row(terms) -> str:
    """'-0.1146*141 - 0.0763*138 + 0.0392*pad' with signs folded, as the seed writes it."""
    parts = []
    for k, t in enumerate(terms):
        factor = f"{_num(abs(t.weight_value))}*{_cell(t)}"
        sign = "-" if t.weight_value < 0 else ("" if k == 0 else "+")
        parts.append(f"{sign}{factor}" if k == 0 else f" {sign} {factor}")
    return "".join(parts)
