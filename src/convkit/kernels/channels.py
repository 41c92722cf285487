"""Depthwise convolution on small planes, vectorised over channels (Numba, explicit vectors).

direct.py's depthwise kernels run their vectors along a plane's rows: on 7x7 and 14x14
planes, or on strided layers whose output rows are 14 or 28 pixels, a row fills a vector
or two at most and the per-row and per-plane work (copies, borders, phases) is most of the
call.  The channels of a depthwise layer are independent planes of the same shape, so here a
vector holds ``lanes`` *channels* of one pixel (16 float32 with AVX-512) and the plane's
shape no longer matters:

1. each parallel task, one sample's block of ``lanes`` channels (the last block moved back
   to end at the last channel), turns its input planes channels-last into a padded scratch
   tile, ``lanes x lanes`` pixels at a time in registers (``simd.transpose_store``: the
   plane's flat runs of pixels, each pixel put at its padded position by a table); the
   border stays zero, or for the other padding modes is copied, a vector per padded pixel,
   from the input pixel the index maps name;
2. for each output row, blocks of ``OB`` neighbouring pixels keep ``OB`` vectors of sums
   (started at the biases) in registers over every tap: per kernel row, ``KW`` weight
   vectors (a tap's weights of the block's channels, contiguous in the weights turned
   ``(taps, C)`` once per call) and one load per input pixel read, shared by the taps
   that read it (``simd.lane_taps``).  A stride or dilation is only a different constant
   offset between pixels: no stride phases;
3. the sums are stored turned back into the channels' planes (``simd.store_transposed``,
   under a mask of ``OB`` lanes).

Where it runs: ``fits`` here, and ``direct._channels_win`` (with the measurements: stride 2
0.33-0.59x the time of direct.py's kernels, 7x7 layers on 7x7 planes 0.37x).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from ..spec import PaddingMode
from .forksafe import parallel_kernel
from .simd import (VECTOR_BYTES, bias_vectors, lane_taps, lanes, row_block, store_transposed,
                   transpose_store, vload, vstore)
from .workers import claim, parallel_blocks, threads

# Output rows at most this wide: measured up to 56 (MobileNet's 112x112 at stride 2: 0.88x
# direct.py's time, 32 channels 5x5: 0.57x); wider rows fill direct.py's vectors.
MAX_OUT_WIDTH = 64
# One task's channels-last padded tile, at most: 112x112 padded (832 KB) stays in the 2 MB L2.
TILE_BYTES = 1 << 20


def fits(p) -> bool:
    """Depthwise with one output channel per input channel, at least a vector of channels
    and of input pixels, output rows at most ``MAX_OUT_WIDTH`` pixels wide, the padded tile
    within ``TILE_BYTES``, a kernel at most 7 wide (its taps unrolled)."""
    vector = lanes(p.dtype)
    (top, bottom), (left, right) = p.spec.pads
    tile = (top + p.h + bottom) * (left + p.w + right) * VECTOR_BYTES
    return (p.spec.groups == p.c_in == p.c_out and p.c_in >= vector
            and p.h * p.w >= vector and p.out_w <= MAX_OUT_WIDTH and p.kw <= 7
            and tile <= TILE_BYTES)


def pixel_block(p) -> int:
    """Pixels of a register block: an output row split into as few blocks as hold at most a
    vector's lanes, as even as they come (28 pixels: 14 + 14; ``simd.row_block``)."""
    return row_block(p.out_w, lanes(p.dtype))


def run(x, w, b, p, out=None):
    out = p.output(out)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    (sh, sw), (dh, dw) = p.spec.stride, p.spec.dilation
    positions, border, tile_rows, pitch = tile_tables(p.h, p.w, p.spec.pads,
                                                      p.spec.padding_mode, lanes(p.dtype))
    taps = np.ascontiguousarray(w.reshape(p.c_out, p.kh * p.kw).T)  # (taps, C)
    blocks = -(-p.c_out // lanes(p.dtype))
    _kernel(p.kh, p.kw, sh, sw, dh, dw, pixel_block(p), len(border) == 0)(
        x, taps, bias, out, positions, border, tile_rows, pitch,
        parallel_blocks(p.n * blocks), threads())
    return out


@lru_cache(maxsize=256)
def tile_tables(h, w, pads, mode, vector):
    """Where the channels-last tile puts things, for planes ``h x w`` padded by ``pads``:
    ``positions[k]``, the offset of input pixel ``k`` (flat) in the tile; ``border``, pairs
    (tile offset, offset it copies) for the padded pixels outside the input (empty with
    zero padding: they stay zero); the tile's rows and pitch."""
    from ..padding import index_map  # kernels/__init__ imports this module first

    (top, bottom), (left, right) = pads
    tile_rows, pitch = top + h + bottom, left + w + right
    y, x = np.divmod(np.arange(h * w), w)
    positions = (((y + top) * pitch + x + left) * vector).astype(np.int64)
    border = np.zeros((0, 2), np.int64)
    if mode is not PaddingMode.ZEROS and (top or bottom or left or right):
        rows, cols = index_map(h, top, bottom, mode), index_map(w, left, right, mode)
        r, c = np.divmod(np.arange(tile_rows * pitch), pitch)
        outside = (r < top) | (r >= top + h) | (c < left) | (c >= left + w)
        r, c = r[outside], c[outside]
        border = np.stack([(r * pitch + c) * vector,
                           ((rows[r] + top) * pitch + cols[c] + left) * vector],
                          axis=1).astype(np.int64)
    positions.flags.writeable = border.flags.writeable = False  # shared by the lru_cache
    return positions, border, tile_rows, pitch


@lru_cache(maxsize=None)
def _kernel(KH, KW, SH, SW, DH, DW, OB, ZERO):
    @njit(parallel=True, fastmath=True, cache=True)
    def channels_last_kernel(x, taps, b, out, positions, border, tile_rows, pitch, n_blocks,
                             workers):
        n, c, out_h, out_w = out.shape
        h, width = x.shape[2:]
        vector = VECTOR_BYTES // out.itemsize
        area, size = h * width, out_h * out_w
        xf, of = x.reshape(-1), out.reshape(-1)
        cblocks = (c + vector - 1) // vector
        tasks = n * cblocks
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            tile = np.zeros(tile_rows * pitch * vector, x.dtype)  # ZERO: the border stays zero
            block = claim(claimed)
            while block < n_blocks:
                for task in range(block * tasks // n_blocks, (block + 1) * tasks // n_blocks):
                    ni, cb = task // cblocks, task % cblocks
                    c0 = min(cb * vector, c - vector)  # the last block moved back
                    first, plane0 = (ni * c + c0) * area, (ni * c + c0) * size
                    for k0 in range(0, area, vector):
                        k = min(k0, area - vector)  # the last run moved back
                        transpose_store(xf, first + k, area, tile, 0, positions, k)
                    if not ZERO:
                        for e in range(border.shape[0]):
                            vstore(tile, border[e, 0], vload(tile, border[e, 1]))
                    for y in range(out_h):
                        for x0 in range(0, out_w, OB):
                            at = min(x0, out_w - OB)  # the row's last block moved back
                            sums = bias_vectors(b, c0, OB, 1)
                            for i in range(KH):
                                sums = lane_taps(sums, tile,
                                                 ((y * SH + i * DH) * pitch + at * SW) * vector,
                                                 taps, i * KW * c + c0, c, OB, KW, SW, DW)
                            store_transposed(sums, of, plane0 + y * out_w + at,
                                             size, OB, 1)
                block = claim(claimed)

    return parallel_kernel(channels_last_kernel)
