"""Border filling: zeros, reflect, replicate, circular, symmetric.

A padding is described by an *index map* per axis: for every position of the
padded axis, the source index in the input, or -1 where the border is zero.
Kernels read the border through these maps (forward) and fold gradients back
through them, so no padding mode needs a full padded copy of the input.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .spec import PaddingMode


@lru_cache(maxsize=256)
def index_map(size: int, lo: int, hi: int, mode: PaddingMode) -> np.ndarray:
    """Source index of every position of an axis padded by ``(lo, hi)``; -1 means zero.

    Cached (a layer asks for the same maps on every call): the array is shared, so
    callers read it and never write to it.

    >>> index_map(4, 2, 2, PaddingMode.REFLECT).tolist()
    [2, 1, 0, 1, 2, 3, 2, 1]
    >>> index_map(4, 2, 2, PaddingMode.SYMMETRIC).tolist()
    [1, 0, 0, 1, 2, 3, 3, 2]
    """
    i = np.arange(-lo, size + hi)
    if mode is PaddingMode.ZEROS:
        return np.where((i >= 0) & (i < size), i, -1)
    if mode is PaddingMode.REPLICATE:
        return np.clip(i, 0, size - 1)
    if mode is PaddingMode.CIRCULAR:
        return i % size
    if mode is PaddingMode.REFLECT:
        period = max(2 * size - 2, 1)
        j = np.abs(i) % period
        return np.where(j < size, j, period - j)
    if mode is PaddingMode.SYMMETRIC:
        j = np.where(i < 0, -i - 1, i) % (2 * size)
        return np.where(j < size, j, 2 * size - 1 - j)
    raise AssertionError(mode)  # unreachable: PaddingMode is closed
