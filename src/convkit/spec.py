"""Convolution settings, tidied once at the entry point into frozen records.

Every public entry point (``conv2d``, ``per_sample_conv2d``, ``nn.Conv2d``, the
CLI) turns its loose arguments -- ints, pairs, padding strings, mode names --
into a :class:`ConvSettings` with :func:`parse_settings`.  Once the kernel size
and the input size are known, :meth:`ConvSettings.resolve` turns it into a
:class:`ConvSpec`: plain ints and explicit ``(lo, hi)`` pads, which is all a
kernel ever sees.  Nothing downstream validates again.
"""
from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass
from typing import Tuple, Union

from . import shapes

Pair = Tuple[int, int]
Pads = Tuple[Pair, Pair]


class PaddingMode(enum.Enum):
    """How the border outside the input is filled."""

    ZEROS = "zeros"
    REFLECT = "reflect"  # d c b | a b c d | c b a   (edge not repeated), torch/numpy 'reflect'
    REPLICATE = "replicate"  # a a a | a b c d | d d d, numpy 'edge'
    CIRCULAR = "circular"  # b c d | a b c d | a b c, numpy 'wrap'
    SYMMETRIC = "symmetric"  # c b a | a b c d | d c b (edge repeated), numpy 'symmetric'


PADDING_STRINGS = ("valid", "same", "same_lower")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def standardize_pair(value, name: str, *, minimum: int = 1) -> Pair:
    """``3`` -> ``(3, 3)``; ``(2, 3)`` stays.  Errors name ``name`` and echo ``value``."""
    if _is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        pair = (int(value[0]), int(value[1]))
    elif isinstance(value, (tuple, list)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r} "
                         f"(a sequence of length {len(value)})")
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r} "
                        f"of type {type(value).__name__}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _standardize_padding(padding) -> Union[str, Pads]:
    """Padding as a string ('valid', 'same', 'same_lower') or ``((top, bottom), (left, right))``."""
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)) "
                             f"or one of {PADDING_STRINGS}, got {padding!r}")
        if padding == "valid":
            return ((0, 0), (0, 0))
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        h, w = (standardize_pair(p, f"padding[{i}]", minimum=0) for i, p in enumerate(padding))
        return (h, w)
    ph, pw = standardize_pair(padding, "padding", minimum=0)
    return ((ph, ph), (pw, pw))


def parse_padding_mode(mode) -> PaddingMode:
    if isinstance(mode, PaddingMode):
        return mode
    try:
        return PaddingMode(mode)
    except (ValueError, TypeError):
        names = [m.value for m in PaddingMode]
        raise ValueError(f"padding_mode must be one of {names}, got {mode!r}") from None


@dataclass(frozen=True)
class ConvSettings:
    """Tidied settings of a convolution, independent of the input size."""

    stride: Pair = (1, 1)
    padding: Union[str, Pads] = ((0, 0), (0, 0))  # 'same' / 'same_lower' are resolved later
    dilation: Pair = (1, 1)
    groups: int = 1
    padding_mode: PaddingMode = PaddingMode.ZEROS

    def resolve(self, kernel_size: Pair, in_size: Pair) -> "ConvSpec":
        """Explicit pads for this kernel and input size; checks the output is not empty."""
        if isinstance(self.padding, str):
            lower = self.padding == "same_lower"
            pads = tuple(shapes.same_pads(n, k, s, d, lower=lower) for n, k, s, d in
                         zip(in_size, kernel_size, self.stride, self.dilation))
        else:
            pads = self.padding
        spec = ConvSpec(self.stride, pads, self.dilation, self.groups, self.padding_mode)
        for axis, n, k in zip(("height", "width"), in_size, kernel_size):
            i = 0 if axis == "height" else 1
            lo, hi = pads[i]
            span = self.dilation[i] * (k - 1) + 1
            if n + lo + hi < span:
                dilated = f" (dilated to {span})" if span != k else ""
                raise ValueError(
                    f"kernel {axis} {k}{dilated} is larger than the padded input "
                    f"{axis} {n} + {lo} + {hi} = {n + lo + hi}: the output would be empty")
            _check_pad_limit(self.padding_mode, axis, n, lo, hi)
        return spec


def _check_pad_limit(mode: PaddingMode, axis: str, n: int, lo: int, hi: int) -> None:
    """torch's limits: reflect needs pad < size; circular (and symmetric) pad <= size."""
    if mode is PaddingMode.REFLECT and max(lo, hi) >= n:
        raise ValueError(f"padding_mode='reflect' needs padding < input {axis}: "
                         f"padding ({lo}, {hi}) with input {axis} {n}")
    if mode in (PaddingMode.CIRCULAR, PaddingMode.SYMMETRIC) and max(lo, hi) > n:
        raise ValueError(f"padding_mode={mode.value!r} needs padding <= input {axis}: "
                         f"padding ({lo}, {hi}) with input {axis} {n}")


@dataclass(frozen=True)
class ConvSpec:
    """Everything a kernel needs besides the arrays: plain ints and explicit pads."""

    stride: Pair
    pads: Pads  # ((top, bottom), (left, right))
    dilation: Pair
    groups: int
    padding_mode: PaddingMode

    def output_size(self, in_size: Pair, kernel_size: Pair) -> Pair:
        return tuple(shapes.conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                     zip(in_size, kernel_size, self.stride, self.pads, self.dilation))


def _plain_key(value):
    """A cache key that keeps exact types (so ``2.0``, ``True`` and lists are never confused
    with ``2``, ``1`` and tuples), or None when ``value`` is not a plain int/str/tuple."""
    kind = type(value)
    if kind is int or kind is str:
        return value
    if kind is tuple:
        inner = tuple(_plain_key(v) for v in value)
        return None if None in inner else ("t", inner)
    return None


_SETTINGS_CACHE: dict = {}


def parse_settings(stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros") -> ConvSettings:
    """Tidy the loose arguments of ``conv2d`` into a :class:`ConvSettings`.

    Plain arguments (ints, strings, tuples of them) are parsed once and cached:
    argument checks stay cheap for small convolutions called in a loop.
    """
    key = _plain_key((stride, padding, dilation, groups, padding_mode))
    settings = _SETTINGS_CACHE.get(key) if key is not None else None
    if settings is None:
        settings = _parse_settings(stride, padding, dilation, groups, padding_mode)
        if key is not None and len(_SETTINGS_CACHE) < 4096:
            _SETTINGS_CACHE[key] = settings
    return settings


def _parse_settings(stride, padding, dilation, groups, padding_mode) -> ConvSettings:
    if not _is_int(groups):
        raise TypeError(f"groups must be an int, got {groups!r} of type {type(groups).__name__}")
    if groups <= 0:
        raise ValueError(f"groups must be a positive int, got {groups}")
    return ConvSettings(
        stride=standardize_pair(stride, "stride"),
        padding=_standardize_padding(padding),
        dilation=standardize_pair(dilation, "dilation"),
        groups=int(groups),
        padding_mode=parse_padding_mode(padding_mode),
    )


def check_channels(in_channels: int, out_channels: int, groups: int,
                   *, in_name: str = "in_channels", out_name: str = "out_channels") -> None:
    """groups must divide both channel counts."""
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide {in_name}={in_channels}")
    if out_channels % groups:
        raise ValueError(f"groups={groups} must divide {out_name}={out_channels}")
