"""Convolution as matrix products (BLAS through NumPy).

* 1x1 kernels: ``out[n, g] = W[g] (O, C) @ x[n, g] (C, H*W)`` -- one batched
  product straight into the NCHW output, no copy of the input at stride 1.
* everything else: im2col in the (C*kH*kW, H_out*W_out) layout, built by a Numba
  kernel that reads through the padding index maps (so any padding mode, no
  padded copy), then ``W[g] @ cols[g]`` written into the output.  The column
  matrix is built for a tile of samples, or of output rows of one sample, at a
  time, bounded by ``TILE_BYTES``: memory stays flat whatever the batch or image.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..padding import index_map

TILE_BYTES = 32 << 20


def supports(problem) -> bool:
    return True


def run(x, w, b, p):
    spec = p.spec
    g, og, cg = spec.groups, p.group_out, p.group_in
    out = np.empty((p.n, p.c_out, p.out_h, p.out_w), dtype=p.dtype)
    wmat = w.reshape(g, og, cg * p.kh * p.kw)
    if p.kh == p.kw == 1 and spec.pads == ((0, 0), (0, 0)):
        (sh, sw) = spec.stride
        xs = x if (sh, sw) == (1, 1) else x[:, :, ::sh, ::sw][:, :, :p.out_h, :p.out_w]
        _products(wmat, xs.reshape(p.n, g, cg, -1), out.reshape(p.n, g, og, -1))
    else:
        _im2col_gemm(x, wmat, out, p)
    if b is not None:
        out += b[:, None, None]
    return out


def _im2col_gemm(x, wmat, out, p):
    """Column matrices for a tile of samples, or of output rows when one sample's is too
    large, never more than about ``TILE_BYTES``."""
    spec = p.spec
    (top, bottom), (left, right) = spec.pads
    rows = index_map(p.h, top, bottom, spec.padding_mode)
    cols = index_map(p.w, left, right, spec.padding_mode)
    g, k = wmat.shape[0], wmat.shape[2]
    row_bytes = p.c_in * p.kh * p.kw * p.out_w * p.dtype.itemsize
    band = max(1, min(p.out_h, TILE_BYTES // max(1, row_bytes)))  # output rows per tile
    tile = max(1, min(p.n, TILE_BYTES // max(1, row_bytes * p.out_h))) if band == p.out_h else 1
    buf = np.empty((tile, p.c_in * p.kh * p.kw, band * p.out_w), dtype=p.dtype)
    flat_out = out.reshape(p.n, g, -1, p.out_h * p.out_w)
    for n0 in range(0, p.n, tile):
        nt = min(tile, p.n - n0)
        for oh0 in range(0, p.out_h, band):
            oh1 = min(p.out_h, oh0 + band)
            pixels = (oh1 - oh0) * p.out_w
            cols_tile = buf[:nt, :, :pixels]
            _im2col(x, n0, nt, rows, cols, p.kh, p.kw, spec.stride[0], spec.stride[1],
                    spec.dilation[0], spec.dilation[1], oh0, oh1, p.out_w, cols_tile)
            _products(wmat, cols_tile.reshape(nt, g, k, pixels),
                      flat_out[n0:n0 + nt, :, :, oh0 * p.out_w:oh1 * p.out_w])


def _products(wmat, cols, out):
    """out[n, g] = wmat[g] @ cols[n, g]: 2-D BLAS products (a broadcast batched matmul
    with ``out=`` takes a slower path in NumPy)."""
    for n in range(cols.shape[0]):
        for g in range(wmat.shape[0]):
            np.matmul(wmat[g], cols[n, g], out=out[n, g])


@njit(parallel=True, cache=True)
def _im2col(x, n0, nt, rows, cols, kh, kw, sh, sw, dh, dw, oh0, oh1, out_w, buf):
    """buf[t, (c, i, j), (oh - oh0, ow)] = padded x[n0 + t, c, oh*sh + i*dh, ow*sw + j*dw]
    for output rows oh0 <= oh < oh1."""
    c_in = x.shape[1]
    taps = kh * kw
    for task in prange(nt * c_in * taps):
        t = task // (c_in * taps)
        k = task - t * c_in * taps
        c = k // taps
        i = (k - c * taps) // kw
        j = k - c * taps - i * kw
        for oh in range(oh0, oh1):
            dst = buf[t, k, (oh - oh0) * out_w:(oh - oh0 + 1) * out_w]
            r = rows[oh * sh + i * dh]
            if r < 0:
                dst[:] = 0
                continue
            src = x[n0 + t, c, r]
            for ow in range(out_w):
                cc = cols[ow * sw + j * dw]
                dst[ow] = src[cc] if cc >= 0 else 0
