"""Convolution as matrix products (BLAS through NumPy).

* 1x1 kernels: ``out[n, g] = W[g] (O, C) @ x[n, g] (C, H*W)`` -- one batched
  product straight into the NCHW output, no copy of the input at stride 1.
* everything else: column matrices ``(C*kH*kW, pixels)`` for bands of output rows
  (see :func:`column_bands`: built from stride-phase planes, cache-sized, any padding
  mode and stride), each multiplied as ``W[g] @ cols[g]`` into the output.  Memory
  stays flat whatever the batch or image.  The gradients reuse the same bands.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..padding import index_map
from .direct import _phase_planes

TILE_BYTES = 1 << 20  # a column tile that stays in L2 for its product (measured: 0.5-1 MiB)
MIN_PIXELS = 512  # but wide enough for an efficient product


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
    g, k = wmat.shape[0], wmat.shape[2]
    flat_out = out.reshape(p.n, g, -1, p.out_h * p.out_w)
    for n0, nt, pixels, columns in column_bands(x, p):
        _products(wmat, columns.reshape(nt, g, k, -1), flat_out[n0:n0 + nt, :, :, pixels])


def band_shape(p):
    """(output rows per band, samples per tile) for column matrices of about
    ``TILE_BYTES`` and at least ``MIN_PIXELS`` wide; several samples only for whole images."""
    row_bytes = p.c_in * p.kh * p.kw * p.out_w * p.dtype.itemsize
    band = max(TILE_BYTES // max(1, row_bytes), -(-MIN_PIXELS // p.out_w))
    band = max(1, min(p.out_h, band))
    tile = max(1, min(p.n, TILE_BYTES // max(1, row_bytes * p.out_h))) if band == p.out_h else 1
    return band, tile


def column_bands(x, p):
    """Yield ``(n0, nt, pixels, columns)``: the column matrices ``(nt, C*kH*kW, band)`` of
    samples ``n0:n0 + nt`` for the output pixels ``pixels`` (a slice of ``H_out*W_out``),
    band after band.  Each tile of samples is split once into padded stride-phase planes
    (every padding mode through the index maps), and each band's columns are copied out
    of them: at any stride every column row is a contiguous run of one phase plane.  A
    band is about ``TILE_BYTES`` (still in cache for its product) but at least
    ``MIN_PIXELS`` wide (so the product stays efficient); the buffer is reused."""
    spec = p.spec
    (top, bottom), (left, right) = spec.pads
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    rows = index_map(p.h, top, bottom, spec.padding_mode)
    cols = index_map(p.w, left, right, spec.padding_mode)
    hq, wq = -(-rows.size // sh), -(-cols.size // sw)
    band, tile = band_shape(p)
    planes = np.empty((tile, p.c_in * sh * sw * hq * wq), dtype=p.dtype)
    buf = np.empty((tile, p.c_in * p.kh * p.kw, band * p.out_w), dtype=p.dtype)
    for n0 in range(0, p.n, tile):
        nt = min(tile, p.n - n0)
        _phase_split(x, n0, nt, rows, cols, left, sh, sw, hq, wq, planes)
        for oh0 in range(0, p.out_h, band):
            oh1 = min(p.out_h, oh0 + band)
            columns = buf[:nt, :, :(oh1 - oh0) * p.out_w]
            _im2col_phases(planes, nt, p.c_in, p.kh, p.kw, sh, sw, dh, dw, hq, wq, oh0, oh1,
                           p.out_w, columns)
            yield n0, nt, slice(oh0 * p.out_w, oh1 * p.out_w), columns


@njit(parallel=True, cache=True)
def _phase_split(x, n0, nt, rows, cols, left, sh, sw, hq, wq, planes):
    """planes[t] = the padded stride-phase planes of every channel of sample n0 + t."""
    c_in, h, width = x.shape[1:]
    xf, size = x.reshape(-1), sh * sw * hq * wq
    for task in prange(nt * c_in):
        t, c = task // c_in, task % c_in
        _phase_planes(xf, ((n0 + t) * c_in + c) * h * width, h, width, 1, rows, cols, left,
                      sh, sw, hq, wq, planes[t, c * size:(c + 1) * size])


@njit(parallel=True, cache=True)
def _im2col_phases(planes, nt, c_in, kh, kw, sh, sw, dh, dw, hq, wq, oh0, oh1, out_w, buf):
    """buf[t, (c, i, j), (oh - oh0, ow)] = padded x[t, c, oh*sh + i*dh, ow*sw + j*dw], read
    as phase ((i*dh) % sh, (j*dw) % sw) at (oh + i*dh // sh, ow + j*dw // sw)."""
    taps = kh * kw
    size = sh * sw * hq * wq
    for task in prange(nt * c_in * taps):
        t = task // (c_in * taps)
        k = task - t * c_in * taps
        c = k // taps
        i = (k - c * taps) // kw
        j = k - c * taps - i * kw
        phase = ((i * dh) % sh) * sw + (j * dw) % sw
        base = uint64(c * size + phase * hq * wq + (i * dh // sh) * wq + j * dw // sw)
        src, dst = planes[t], buf[t, k]
        for oh in range(oh0, oh1):
            s = base + uint64(oh * wq)
            d = uint64((oh - oh0) * out_w)
            for ow in range(out_w):
                dst[d + uint64(ow)] = src[s + uint64(ow)]


def _products(wmat, cols, out):
    """out[n, g] = wmat[g] @ cols[n, g]: 2-D BLAS products (a broadcast batched matmul
    with ``out=`` takes a slower path in NumPy)."""
    for n in range(cols.shape[0]):
        for g in range(wmat.shape[0]):
            np.matmul(wmat[g], cols[n, g], out=out[n, g])
