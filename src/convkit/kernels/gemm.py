"""Convolution as matrix products (BLAS through NumPy).

* 1x1 kernels: ``out[n, g] = W[g] (O, C) @ x[n, g] (C, H*W)`` -- products straight
  into the NCHW output, no copy of the input at stride 1.
* everything else: column matrices ``(C*kH*kW, pixels)`` for bands of output rows,
  each multiplied as ``W[g] @ cols[g]`` into the output.  A sample is split once
  into padded stride-phase planes (every padding mode through the index maps), and
  each band's columns are copied out of them: at any stride every column row is a
  contiguous run of one phase plane.  A band's columns are about ``TILE_BYTES`` (so
  they are still in cache for the product) but at least ``MIN_PIXELS`` wide (so the
  product stays efficient).  Memory stays flat whatever the batch or image.

Work is shared out by :func:`convkit.kernels.blas.parallel` -- samples, or the bands
of one sample when there are fewer samples than threads -- with BLAS single-threaded
(see there why).  The Numba helpers here are serial and release the GIL.
The gradients (``backward.py``) reuse :func:`sample_bands`.
"""
from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, uint64

from . import blas
from .direct import _phase_planes

TILE_BYTES = 2 << 20  # a column band still in cache for its product (measured best: 1-2 MiB)
MIN_PIXELS = 512  # but wide enough for an efficient product


def supports(problem) -> bool:
    return True


def flops(p) -> float:
    return 2.0 * p.n * p.c_out * p.out_h * p.out_w * p.group_in * p.kh * p.kw


def run(x, w, b, p, out=None):
    spec = p.spec
    g, og, cg = spec.groups, p.group_out, p.group_in
    out = p.output(out)
    wmat = w.reshape(g, og, cg * p.kh * p.kw)
    flat_out = out.reshape(p.n, g, og, p.out_h * p.out_w)
    bias = None if b is None else b.reshape(g, og, 1)
    if p.kh == p.kw == 1 and spec.pads == ((0, 0), (0, 0)):
        (sh, sw) = spec.stride
        xs = x if (sh, sw) == (1, 1) else x[:, :, ::sh, ::sw][:, :, :p.out_h, :p.out_w]
        xs = xs.reshape(p.n, g, cg, p.out_h * p.out_w)
        def piece(task):  # a slice of one sample's pixels: every thread busy at batch 1
            n, (lo, hi) = task
            _products(wmat, xs[n, :, :, lo:hi], flat_out[n, :, :, lo:hi], bias)
        blas.parallel(piece, pixel_tasks(p), flops(p))
        return out

    def sample(n):  # all bands of one sample
        for pixels, columns in sample_bands(x, p, n):
            _products(wmat, columns.reshape(g, -1, columns.shape[1]),
                      flat_out[n, :, :, pixels], bias)

    threads = numba.get_num_threads()
    if p.n >= threads:
        blas.parallel(sample, range(p.n), flops(p))
        return out
    bands = range(0, p.out_h, band_rows(p))
    for n in range(p.n):  # fewer samples than threads
        planes = phase_planes(x, p, n)
        if len(bands) >= threads:  # share out the bands of each sample

            def band(oh0, n=n, planes=planes):  # this sample's, bound now
                pixels, columns = band_columns(planes, p, oh0)
                _products(wmat, columns.reshape(g, -1, columns.shape[1]),
                          flat_out[n, :, :, pixels], bias)
            blas.parallel(band, bands, flops(p) / p.n)
            continue
        for oh0 in bands:  # too few bands: share out each band's product by output channels
            pixels, columns = band_columns(planes, p, oh0)
            cols = columns.reshape(g, -1, columns.shape[1])

            def part(lo_hi, n=n, pixels=pixels, cols=cols):  # this band's, bound now
                lo, hi = lo_hi
                _products(wmat[:, lo:hi], cols, flat_out[n, :, lo:hi, pixels],
                          None if bias is None else bias[:, lo:hi])
            blas.parallel(part, channel_slices(og, threads), flops(p) / p.n / len(bands))
    return out


def channel_slices(count, threads):
    """(lo, hi) slices of ``count`` output channels: two per thread, at least 16 channels
    each where there are that many (narrower products lose BLAS's efficiency)."""
    pieces = max(1, min(2 * threads, count // 16))
    return [(count * i // pieces, count * (i + 1) // pieces) for i in range(pieces)]


def pixel_tasks(p):
    """(sample, (lo, hi)) for every sample and every slice of its pixels (:func:`pixel_pieces`):
    the tasks of the 1x1 products and of their gradients."""
    pieces = pixel_pieces(p)
    return [(n, cut) for n in range(p.n) for cut in pieces]


def pixel_pieces(p):
    """(lo, hi) slices of a sample's output pixels for the 1x1 products: the whole plane when
    the batch alone gives every thread a sample, else enough pieces (of at least
    ``MIN_PIXELS``) for two per thread (measured at batch 1: ResNet's 1x1 layer ran on one
    thread of two)."""
    pixels, threads = p.out_h * p.out_w, numba.get_num_threads()
    count = 1 if p.n >= threads else max(1, min(-(-2 * threads // p.n), pixels // MIN_PIXELS))
    return [(pixels * i // count, pixels * (i + 1) // count) for i in range(count)]


def _products(wmat, cols, out, bias):
    """out[g] = wmat[g] @ cols[g] (+ bias[g]) for every group: 2-D BLAS products, the bias
    added while the block is still in cache."""
    for g in range(wmat.shape[0]):
        np.matmul(wmat[g], cols[g], out=out[g])
        if bias is not None:
            out[g] += bias[g]


def band_rows(p) -> int:
    """Output rows per band: columns of about ``TILE_BYTES``, at least ``MIN_PIXELS`` wide."""
    row_bytes = p.c_in * p.kh * p.kw * p.out_w * p.dtype.itemsize
    band = max(TILE_BYTES // max(1, row_bytes), -(-MIN_PIXELS // max(1, p.out_w)))
    return max(1, min(p.out_h, band))


def phase_planes(x, p, n):
    """Sample ``n``'s padded stride-phase planes, flat: ``(C, sH, sW, H_phase, W_phase)``."""
    (sh, sw) = p.spec.stride
    rows, cols = p.index_maps()
    hq, wq = _phase_shape(p)
    planes = np.empty(p.c_in * sh * sw * hq * wq, dtype=p.dtype)
    _phase_splitter(sh, sw)(x.reshape(-1), n * p.c_in * p.h * p.w, p.h, p.w, p.c_in, rows,
                            cols, p.spec.pads[1][0], hq, wq, planes)
    return planes


def band_columns(planes, p, oh0, buf=None):
    """``(pixels, columns)`` for output rows ``oh0:oh0 + band_rows(p)`` of the sample whose
    phase planes are ``planes``: ``columns[(c, i, j), pixel]``, pixels a slice of
    ``H_out*W_out``."""
    oh1 = min(p.out_h, oh0 + band_rows(p))
    size = p.c_in * p.kh * p.kw * (oh1 - oh0) * p.out_w
    buf = np.empty(size, dtype=p.dtype) if buf is None else buf[:size]
    columns = buf.reshape(p.c_in * p.kh * p.kw, (oh1 - oh0) * p.out_w)
    (sh, sw), (dh, dw) = p.spec.stride, p.spec.dilation
    hq, wq = _phase_shape(p)
    _im2col_phases(planes, p.c_in, p.kh, p.kw, sh, sw, dh, dw, hq, wq, oh0, oh1, p.out_w,
                   columns)
    return slice(oh0 * p.out_w, oh1 * p.out_w), columns


def _phase_shape(p):
    """(rows, columns) of one stride-phase plane of the padded input."""
    (top, bottom), (left, right) = p.spec.pads
    (sh, sw) = p.spec.stride
    return -(-(p.h + top + bottom) // sh), -(-(p.w + left + right) // sw)


def sample_bands(x, p, n):
    """Yield ``(pixels, columns)`` band after band for sample ``n`` (one reused buffer)."""
    planes = phase_planes(x, p, n)
    rows = band_rows(p)
    buf = np.empty(p.c_in * p.kh * p.kw * rows * p.out_w, dtype=p.dtype)
    for oh0 in range(0, p.out_h, rows):
        yield band_columns(planes, p, oh0, buf)


@lru_cache(maxsize=None)
def _phase_splitter(SH, SW):
    """The phase split with the strides frozen as constants: with a run-time column stride
    the interleaved copy does not vectorise (measured 2.9 ms instead of about 0.3 for the
    batch of ResNet stems)."""

    # Only ints are closed over (see direct._specialised: the disk cache needs it).
    @njit(nogil=True, cache=True)
    def phase_split(xf, start, h, width, c_in, rows, cols, left, hq, wq, planes):
        _phase_planes(xf, start, h, width, c_in, rows, cols, left, SH, SW, hq, wq, planes)
    return phase_split


@njit(nogil=True, cache=True)
def _im2col_phases(planes, c_in, kh, kw, sh, sw, dh, dw, hq, wq, oh0, oh1, out_w, columns):
    """columns[(c, i, j), (oh - oh0, ow)] = padded x[c, oh*sh + i*dh, ow*sw + j*dw], read
    as phase ((i*dh) % sh, (j*dw) % sw) at (oh + i*dh // sh, ow + j*dw // sw)."""
    size = sh * sw * hq * wq
    for c in range(c_in):
        for i in range(kh):
            for j in range(kw):
                phase = ((i * dh) % sh) * sw + (j * dw) % sw
                base = uint64(c * size + phase * hq * wq + (i * dh // sh) * wq + j * dw // sw)
                dst = columns[(c * kh + i) * kw + j]
                for oh in range(oh0, oh1):
                    s = base + uint64(oh * wq)
                    d = uint64((oh - oh0) * out_w)
                    for ow in range(out_w):
                        dst[d + uint64(ow)] = planes[s + uint64(ow)]
