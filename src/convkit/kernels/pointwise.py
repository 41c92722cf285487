"""Dense 1x1 convolution, stride 1, direct (Numba, explicit vectors).

A 1x1 layer is a matrix product, ``out[n] = W @ x[n]``, which gemm.py ran on BLAS, one
single-threaded product per sample (or slice of a sample's pixels) on convkit's threads.
With few output channels -- MobileNet's and EfficientNet's projections (144 -> 24 channels) --
the product is memory bound (each input element feeds ``C_out`` multiply-adds), and
OpenBLAS's small-``M`` path ran far below that bound (MobileNet's 144 -> 24 on 56x56 at
16-32 GFLOP/s on one thread).  Here each parallel task is a block of one sample's pixels, and
for each block of ``OB`` output channels the sums of ``OB`` channels x ``P`` vectors of
pixels stay in registers over every input channel (``simd.tap_row``: ``P`` loads and ``OB``
broadcast weights for ``OB * P`` multiply-adds), then are stored into the output.  The pixel
block's input (``C_in`` x ``P`` vectors) stays in cache for every block of channels, so the
input is read from memory once.  A plane's last pixels go in one block of as many vectors as
they fill, ending at the plane's end; the last block of channels is moved back to end at the
last channel (grouped.py's ``_blocked`` does the same within groups).

Measured on Emerald Rapids, 2 threads, interleaved against gemm.py's products (the machine
in a slow phase: ratios only): float32, MobileNet's 144 -> 24 on 56x56 0.44-0.73x the time at
batch 8, 0.35x at batch 1; 32 -> 16 on 112x112 0.35x; ResNet's 256 -> 64 on 56x56 0.74-0.75x
(batch 1: 0.35x); compute-bound ones too: 64 -> 256 on 56x56 0.87x, 256 -> 1024 on 14x14
0.88x, 128 -> 128 on 28x28 0.42x, 512 -> 2048 on 7x7 at batch 1 0.68x, 16 -> 96 on 112x112
0.88x, 64 -> 64 on 112x112 0.99x; float64 0.65-0.99x.  A block of 8 x 3 vectors: per input
channel 3 loads and 8 broadcasts for 24 multiply-adds, 24 sums in registers.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from .forksafe import parallel_kernel
from .grouped import _block, tail_vectors
from .simd import VECTOR_BYTES, lanes, store_sums
from .workers import claim, parallel_blocks, threads

OUT_BLOCK, PIXEL_VECTORS = 8, 3  # a register block: 24 sums


def supports(problem) -> bool:
    """Dense 1x1, stride 1, no padding, at least ``OUT_BLOCK`` output channels, a plane of
    at least one block of pixels (48 float32 with AVX-512)."""
    p = problem
    return (p.spec.groups == 1 and p.kh == p.kw == 1 and p.spec.stride == (1, 1)
            and p.spec.pads == ((0, 0), (0, 0)) and p.c_out >= OUT_BLOCK
            and p.out_h * p.out_w >= PIXEL_VECTORS * lanes(p.dtype))


def run(x, w, b, p, out=None):
    out = p.output(out)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    size = p.out_h * p.out_w
    tail = tail_vectors(size, PIXEL_VECTORS, p.dtype)
    blocks = size // (PIXEL_VECTORS * lanes(p.dtype)) + (1 if tail else 0)
    _kernel(OUT_BLOCK, PIXEL_VECTORS, tail)(x, w, bias, out, parallel_blocks(p.n * blocks),
                                            threads())
    return out


@lru_cache(maxsize=None)
def _kernel(OB, P, TAIL):
    @njit(parallel=True, fastmath=True, cache=True)
    def pointwise_kernel(x, w, b, out, n_blocks, workers):
        n, c_out, out_h, out_w = out.shape
        c_in = x.shape[1]
        size = out_h * out_w
        xf, of, wf = x.reshape(-1), out.reshape(-1), w.reshape(-1)
        span = P * (VECTOR_BYTES // out.itemsize)
        runs = size // span  # whole runs of P vectors a plane
        per_sample = runs + (1 if TAIL else 0)
        tasks = n * per_sample
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            block = claim(claimed)
            while block < n_blocks:
                for task in range(block * tasks // n_blocks, (block + 1) * tasks // n_blocks):
                    ni, r = task // per_sample, task % per_sample
                    at = ni * c_in * size, size, 0, 0, c_in, c_in
                    for o0 in range(0, c_out, OB):
                        oc = min(o0, c_out - OB)  # the last block moved back
                        d0 = (ni * c_out + oc) * size
                        if r < runs:
                            sums = _block(b, oc, xf, at, r * span, wf, OB, P, 1, 1, 1, 1)
                            store_sums(sums, of, d0 + r * span, size, OB, P)
                        if TAIL:  # the plane's last pixels: TAIL vectors ending there
                            if r == runs:
                                t = size - TAIL * (VECTOR_BYTES // out.itemsize)
                                sums = _block(b, oc, xf, at, t, wf, OB, TAIL, 1, 1, 1, 1)
                                store_sums(sums, of, d0 + t, size, OB, TAIL)
                block = claim(claimed)

    return parallel_kernel(pointwise_kernel)
