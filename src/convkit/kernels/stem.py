"""A network's first layer: dense convolution of at most 4 input channels, direct (Numba).

An RGB stem (ResNet's 7x7 stride 2, 3 -> 64 channels on 224x224) is a product of depth
``C_in * kH * kW`` = 147: as im2col and GEMM (gemm.py) it runs near the BLAS peak, but the
im2col bands cost another 15-20% of the call (2.4 of 14.6 ms at batch 8), and the product
of a 64-row weight matrix leaves OpenBLAS's blocking little to work with.  oneDNN runs
such layers direct, with JIT-generated register blocks; this is that kernel, written with
explicit vectors (simd.py):

1. every sample's input is split into padded *stride-phase* planes (direct._phase_planes:
   every stride becomes stride 1, every padding mode read through the index maps), one
   parallel task per (sample, channel);
2. each parallel task then computes a band of ``BAND`` output rows of one sample.  Per output
   row, a register block is ``OUT_BLOCK`` output channels x ``PIXEL_VECTORS`` vectors of
   pixels (3 x 7 x 16 = 336 sums in 21 registers on AVX-512): for every tap, ``P`` input
   vectors loaded from the phase planes and ``OB`` weights broadcast feed ``OB * P``
   multiply-adds (``simd.tap_row``), and the sums go straight into the NCHW output.  A row's
   vectors of pixels start every ``P * lanes`` columns, the last block moved back to end at
   the row's end, and the last block of channels moved back likewise (recomputing a few
   sums: every store lands inside the output, and no remainder loop is needed).

Measured on ResNet's stem (8 x 3 x 224 x 224 -> 64 x 112 x 112), Emerald Rapids, 2 threads,
interleaved with torch in one process (the machine's speed moved 1.5x over the minutes):
blocks of 3 channels x 7 vectors 0.76x torch's time, where the im2col GEMM took 1.10x;
4 x 7 (28 sums and 7 loaded vectors: more than 32 registers, spilled) 1.37x, 8 x 3 1.28x,
6 x 4 0.81-0.87x (a row of 112 pixels in 8 vectors of 16: 14% recomputed), 5 x 4 0.84x.
The loop order matters as much: each block of channels runs down the band's rows (a
channel's rows stored in sequence) in 0.70-0.72x the time of every block per row (each row
store landing in another of 64 planes); bands of 4, 8 or 16 rows the same.  Against the
best peer, interleaved: 0.57-0.59 of ONNX Runtime's time.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from .direct import SPECIALISED, _geometry, _phase_planes
from .forksafe import parallel_kernel
from .gemm import _phase_shape
from .simd import VECTOR_BYTES, channel_sums, lanes, store_sums, tap_row
from .workers import claim, threads

MAX_C_IN = 4  # input channels of the layers this kernel takes
OUT_BLOCK = 3  # output channels per register block
PIXEL_VECTORS = 7  # vectors of output pixels per register block
BAND = 8  # output rows per parallel task
PLANES_BYTES = 16 << 20  # phase planes of one kernel call: samples run in chunks this size


def supports(problem) -> bool:
    """Dense, at most ``MAX_C_IN`` input channels, at least ``OUT_BLOCK`` output channels,
    output rows at least ``PIXEL_VECTORS`` vectors wide (112 float32 pixels with AVX-512), a
    tap geometry in direct's ``SPECIALISED`` set (compiled kernels stay few)."""
    p = problem
    return (p.spec.groups == 1 and p.c_in <= MAX_C_IN and p.c_out >= OUT_BLOCK
            and p.out_w >= PIXEL_VECTORS * lanes(p.dtype) and _geometry(p) in SPECIALISED)


def run(x, w, b, p, out=None):
    out = p.output(out)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    rows, cols = p.index_maps()
    hq, wq = _phase_shape(p)
    (sh, sw), (dh, dw) = p.spec.stride, p.spec.dilation
    kernel = _kernel(p.kh, p.kw, sh, sw, dh, dw)
    chunk = chunk_samples(p)
    planes = np.empty(min(chunk, p.n) * p.c_in * sh * sw * hq * wq, p.dtype)
    for n0 in range(0, p.n, chunk):  # the phase planes of a chunk of samples at a time
        n1 = min(p.n, n0 + chunk)
        kernel(x[n0:n1], w, bias, out[n0:n1], rows, cols, p.spec.pads[1][0], hq, wq, planes,
               threads())
    return out


def chunk_samples(p) -> int:
    """Samples per kernel call: as many as ``PLANES_BYTES`` of phase planes hold, at least 1
    (so the planes never grow with the batch: ResNet's stem 25 samples, 16 MiB)."""
    hq, wq = _phase_shape(p)
    per_sample = p.c_in * p.spec.stride[0] * p.spec.stride[1] * hq * wq * p.dtype.itemsize
    return max(1, PLANES_BYTES // per_sample)


@lru_cache(maxsize=None)
def _kernel(KH, KW, SH, SW, DH, DW):
    OB, P = OUT_BLOCK, PIXEL_VECTORS

    @njit(parallel=True, fastmath=True, cache=True)
    def stem_kernel(x, w, b, out, rows, cols, left, hq, wq, planes, workers):
        n, c_out, out_h, out_w = out.shape
        c_in, h, width = x.shape[1:]
        xf, of, wf = x.reshape(-1), out.reshape(-1), w.reshape(-1)
        plane = hq * wq
        size = SH * SW * plane  # one channel's phase planes
        claimed = np.zeros(1, np.int64)  # the next task to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            task = claim(claimed)
            while task < n * c_in:
                _phase_planes(xf, task * h * width, h, width, 1, rows, cols, left, SH, SW, hq, wq,
                              planes[task * size:(task + 1) * size])
                task = claim(claimed)
        span = P * (VECTOR_BYTES // out.itemsize)
        bands = (out_h + BAND - 1) // BAND
        taps = c_in * KH * KW  # weights of one output channel
        claimed_bands = np.zeros(1, np.int64)  # the next task to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            task = claim(claimed_bands)
            while task < n * bands:
                ni, band = task // bands, task % bands
                for o0 in range(0, c_out, OB):  # a block of channels down the band: each
                    oc = min(o0, c_out - OB)  # channel's rows written in sequence
                    for oh in range(band * BAND, min(out_h, (band + 1) * BAND)):
                        for c0 in range(0, out_w, span):
                            c = min(c0, out_w - span)
                            sums = channel_sums(b, oc, OB, P)
                            for ci in range(c_in):
                                for i in range(KH):
                                    pr, q = (i * DH) % SH, oh + (i * DH) // SH
                                    at = ((ni * c_in + ci) * SH + pr) * SW * plane + q * wq + c
                                    sums = tap_row(sums, planes, at, plane, 0, wf,
                                                   oc * taps + (ci * KH + i) * KW, taps,
                                                   OB, P, KW, SW, DW)
                            store_sums(sums, of, ((ni * c_out + oc) * out_h + oh) * out_w + c,
                                       out_h * out_w, OB, P)
                task = claim(claimed_bands)

    return parallel_kernel(stem_kernel)
