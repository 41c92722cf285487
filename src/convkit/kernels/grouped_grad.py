"""Weight gradient of a grouped convolution at stride 1 with medium groups (Numba).

Two layouts, ``layout`` picks: ``channels`` where a group's input channels fill whole
vectors (at most a quarter of the lanes idle: 12-16 or 24-32 float32 channels with AVX-512,
6-8 ... 32 float64), else ``flat``.

``channels`` (``_channels``): the group's input is staged channels-last on padded planes --
a pixel's channels one run of vectors -- and every output pixel adds one outer product to
register-held sums: ``OB`` output-gradient values (broadcast from grad_output in place) times
the ``kW`` taps of one kernel row (``kW * CV`` vector loads), ``OB * kW * CV`` multiply-adds
(``simd.outer_taps``).  No horizontal sums, no padded positions in the products (only real
output pixels are visited), one kernel row per pass.  ResNeXt's deep stage (14x14, 16
channels a group, batch 8, kernels alone, interleaved): 0.52x the time of ``flat``; 7x7 with
32 a group 0.48x; 28x28 with 8 a group (half the lanes idle) 1.1x, so it stays ``flat``.
The staging turns blocks of ``lanes`` channels x ``lanes`` pixels in registers where the
group's channels fill whole vectors (``simd.transpose_store``: 16 loads, 64 shuffles, 16
stores per 256 values, against 256 scalar stores a vector apart): on the deep stage the
staging alone 0.37 -> 0.14-0.17 ms, about the time of reading the input once, and the
whole backward 0.90-0.94x the time.  There the products take ~1.2 ms of ~1.3 (kernel
alone, a quiet minute: 0.85 of ~0.97), the rest reading the input and grad_output from
memory (staging, the bias sums).  Tried, not kept: prefetching the next group's planes
during the products, a few lines per output row: 1.04-1.2x the time.  Winograd F(2x2,
3x3) for these grouped layers (by transform point, a batched product per point): its input
transform alone took 3.8 ms on the deep stage, the products 1.3, where the direct kernels
take ~2.

``flat``, below:

``grad_w[o, c, i, j] = sum over samples n and output pixels (y, x) of
grad_out[n, o, y, x] * padded_x[n, c, y + i*dh, x + j*dw]``.

Laid out on flat padded planes (the forward kernel's trick), every tap is a constant
offset ``i*dh*W_padded + j*dw``: the gradient of one tap is one dot product between
an output-gradient plane spread on the padded width (zeros in the columns past
``W_out``) and the flattened padded input plane, shifted by that offset.  This kernel
goes one step further and lays the *samples* of a chunk side by side: padded row ``r``
of sample ``s`` sits at ``r * pitch + s * W_padded`` with ``pitch = samples *
W_padded``, and the output gradient is spread on the same grid (zeros in each sample's
columns past ``W_out``), so each tap's gradient over the whole chunk is a single dot
product of length ``(H_out - 1) * pitch + (samples - 1) * W_padded + W_out``, with
constant tap offsets ``i*dh*pitch + j*dw``.  The per-sample version
(``backward._weight_grad_flat``) runs ~200-element dot products on 14x14 planes and pays
16 horizontal reductions per block per sample; here they are paid once per chunk.
Side by side rather than end to end (one long plane per sample, as before): the padding
rows are paid once per chunk instead of once per sample -- on ResNeXt's deep stage
(14x14, 8 samples) the dot products shrink from 2014 to 1790 positions for 1568 real
ones; measured 6.0 -> 5.3 ms single-threaded for the weight and bias gradients.

The bias gradient is summed (float64) while the output gradient is staged: grad_output
is read once (a separate NumPy reduction cost ~0.25 ms of ~5.8 ms on that stage).

One parallel task per group; output and input channels in blocks of 4 share their
loads (8 vector loads feed 16 multiply-adds, the 16 sums in registers); channels past
a multiple of four go one pair at a time.  The chunk of samples is sized so both
staged rows sets stay within ``STAGE_BYTES`` (L2), whatever the batch.

Tried, not kept: ``dots_4x4`` runs 84-87 GFLOP/s a core on 64-byte aligned rows against
63-65 with the input rows one element off (a line split per load), so the input was
staged once per tap column, shifted by ``j * dw``, rows and pitch on whole 64-byte lines:
every load aligned, bit-for-bit the same gradients -- and no faster in the kernel
(ResNeXt's deep stage 3.3-3.7 ms either way; 56x56 planes 5.4 against 4.3, the pitch
rounding adding columns).  The 4x4 dot blocks written with explicit vectors (simd.py, the
16 sums carried in registers, reduced across lanes once per block): 1.08-1.13x the time
on ResNeXt's deep stage and ShuffleNet's 1x1, 0.97x on 28x28 -- the products already run
near the FMA rate; the staging (~40% of the time) is what remains.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange, uint64

from .direct import _zero_padded
from .forksafe import parallel_kernel
from .grouped import pad_plane
from .simd import VECTOR_BYTES, lanes, outer_taps, store_sums, transpose_store, zero_sums
from .workers import claim, parallel_blocks, threads

STAGE_BYTES = 512 << 10  # staged input and output-gradient rows of one task


def supports(p) -> bool:
    """Grouped, stride 1, 5 to 32 input channels per group (the forward kernel's range)."""
    return p.spec.groups > 1 and p.spec.stride == (1, 1) and 5 <= p.group_in <= 32


# Sums a ``channels`` block holds in registers: output channels x taps x channel vectors.
SUMS = 24


def channel_vectors(p) -> int:
    """Vectors that hold one pixel's input channels of a group."""
    return -(-p.group_in // lanes(p.dtype))


def layout(p) -> str:
    """``channels`` where the group's input channels fill their vectors at least 3/4 and a
    kernel row's sums fit ``SUMS``, else ``flat``."""
    cv = channel_vectors(p)
    return ("channels" if 4 * p.group_in >= 3 * cv * lanes(p.dtype) and p.kw * cv <= SUMS
            else "flat")


def weight_and_bias_gradients(grad_out, x, p, kind=None):
    """(weight gradient, bias gradient), on ``kind`` (default: ``layout(p)``); the bias
    gradient is summed while grad_output is read for the products."""
    if (kind or layout(p)) == "channels":
        return _channels_gradients(grad_out, x, p)
    rows, cols = p.index_maps()
    left = p.spec.pads[1][0]
    grad = np.empty((p.c_out, p.group_in, p.kh, p.kw), dtype=p.dtype)
    bias = np.empty(p.c_out)
    plane = rows.size * cols.size * p.dtype.itemsize
    chunk = max(1, min(p.n, STAGE_BYTES // max(1, plane * (p.group_in + p.group_out))))
    _weight_grad(grad_out, x, grad, bias, rows, cols, left, p.spec.groups, *p.spec.dilation,
                 chunk, threads())
    return grad, bias.astype(p.dtype)


@parallel_kernel
@njit(parallel=True, fastmath=True, cache=True)
def _weight_grad(grad_out, x, grad, bias, rows, cols, left, groups, dh, dw, chunk, workers):
    n, c_out, out_h, out_w = grad_out.shape
    cg, kh, kw = grad.shape[1:]
    og = c_out // groups
    pw = cols.size
    taps = kh * kw
    zero = np.zeros(1, dtype=grad_out.dtype)[0]  # sums in the arrays' dtype
    ob_end, cb_end = og - og % 4, cg - cg % 4
    claimed = np.zeros(1, np.int64)  # the next g to claim
    for _ in prange(workers):  # one worker a thread (workers.py): its scratch once
        offsets = np.empty(taps, np.uint64)
        xs = np.empty((cg, chunk * rows.size * pw), dtype=x.dtype)
        gs = np.empty((og, chunk * rows.size * pw), dtype=grad_out.dtype)
        g = claim(claimed)
        while g < groups:
            acc = np.zeros((og, cg, taps))
            sums = np.zeros(og)  # the bias gradient
            for n0 in range(0, n, chunk):
                m = min(chunk, n - n0)
                pitch = m * pw  # side by side: padded row r of sample s at r * pitch + s * pw
                for k in range(taps):
                    offsets[k] = uint64((k // kw) * dh * pitch + (k % kw) * dw)
                for s in range(m):
                    _stage_padded(x, n0 + s, g * cg, cg, rows, cols, left, xs, s * pw, pitch)
                    for o in range(og):
                        src, dst = grad_out[n0 + s, g * og + o].reshape(-1), gs[o]
                        total = 0.0
                        for oh in range(out_h):  # flat unsigned index loops, no view per row
                            d, a = uint64(oh * pitch + s * pw), uint64(oh * out_w)
                            for ow in range(out_w):
                                value = src[a + uint64(ow)]
                                dst[d + uint64(ow)] = value
                                total += value
                            for ow in range(out_w, pw):  # the columns past W_out stay zero
                                dst[d + uint64(ow)] = 0
                        sums[o] += total
                # past span the output gradient is never read; the last tap then reads up to
                # (rows.size - 1) * pitch + (m - 1) * pw + pw - 1 = rows.size * pitch - 1
                span = (out_h - 1) * pitch + (m - 1) * pw + out_w
                for ob in range(0, ob_end, 4):
                    for cb in range(0, cb_end, 4):
                        for k in range(taps):
                            _block_4x4(gs, xs, acc, ob, cb, k, offsets[k], span, zero)
                for o in range(og):
                    for c in range(cb_end if o < ob_end else 0, cg):
                        src, plane = gs[o], xs[c]
                        for k in range(taps):
                            row = plane[offsets[k]:]
                            s0 = zero
                            for t in range(span):
                                s0 += src[uint64(t)] * row[uint64(t)]
                            acc[o, c, k] += s0
            grad[g * og:(g + 1) * og] = acc.reshape(og, cg, kh, kw)
            bias[g * og:(g + 1) * og] = sums
            g = claim(claimed)


@njit(inline="always")
def _stage_padded(x, ni, c0, cg, rows, cols, left, xs, start, pitch):
    """xs[c, start + r * pitch + q] = padded x[ni, c0 + c] at (r, q), through the index maps."""
    for c in range(cg):
        pad_plane(x[ni, c0 + c].reshape(-1), x.shape[3], rows, cols, left, xs[c], start, pitch)


@njit(inline="always", fastmath=True)
def _block_4x4(gs, xs, acc, ob, cb, k, offset, span, zero):
    """acc[ob:ob+4, cb:cb+4, k] += the 16 dot products of 4 output-gradient rows with 4
    input rows shifted by tap k's ``offset``."""
    dots_4x4(gs[ob], gs[ob + 1], gs[ob + 2], gs[ob + 3], xs[cb, offset:], xs[cb + 1, offset:],
             xs[cb + 2, offset:], xs[cb + 3, offset:], acc, ob, cb, k, span, zero)


@njit(inline="always", fastmath=True)
def dots_4x4(g0, g1, g2, g3, x0, x1, x2, x3, acc, ob, cb, k, span, zero):
    """acc[ob + a, cb + b, k] += dot(g_a[:span], x_b[:span]) for a, b < 4: 8 loads feed 16
    multiply-adds, all 16 sums in vector registers (shared with backward.py's flat route)."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
    for t in range(span):
        ut = uint64(t)
        a0, a1, a2, a3 = g0[ut], g1[ut], g2[ut], g3[ut]
        b0, b1, b2, b3 = x0[ut], x1[ut], x2[ut], x3[ut]
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s10 += a1 * b0
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
        s20 += a2 * b0
        s21 += a2 * b1
        s22 += a2 * b2
        s23 += a2 * b3
        s30 += a3 * b0
        s31 += a3 * b1
        s32 += a3 * b2
        s33 += a3 * b3
    acc[ob, cb, k] += s00
    acc[ob, cb + 1, k] += s01
    acc[ob, cb + 2, k] += s02
    acc[ob, cb + 3, k] += s03
    acc[ob + 1, cb, k] += s10
    acc[ob + 1, cb + 1, k] += s11
    acc[ob + 1, cb + 2, k] += s12
    acc[ob + 1, cb + 3, k] += s13
    acc[ob + 2, cb, k] += s20
    acc[ob + 2, cb + 1, k] += s21
    acc[ob + 2, cb + 2, k] += s22
    acc[ob + 2, cb + 3, k] += s23
    acc[ob + 3, cb, k] += s30
    acc[ob + 3, cb + 1, k] += s31
    acc[ob + 3, cb + 2, k] += s32
    acc[ob + 3, cb + 3, k] += s33


def _channels_gradients(grad_out, x, p):
    cv = channel_vectors(p)
    ob = max(o for o in (8, 6, 4, 3, 2, 1) if o * p.kw * cv <= SUMS and o <= p.group_out)
    maps = not _zero_padded(p)  # a padding mode that reads the input
    rows, cols = p.index_maps()
    plane = rows.size * cols.size * cv * lanes(p.dtype) * p.dtype.itemsize
    chunk = max(1, min(p.n, STAGE_BYTES // plane))
    grad = np.empty((p.c_out, p.group_in, p.kh, p.kw), dtype=p.dtype)
    bias = np.empty(p.c_out)
    blocks = parallel_blocks(p.spec.groups)
    _channels(ob, p.kw, cv, maps)(grad_out, x, grad, bias, rows, cols, p.spec.pads[0][0],
                                  p.spec.pads[1][0], p.spec.groups, *p.spec.dilation, chunk,
                                  blocks, threads())
    return grad, bias.astype(p.dtype)


@lru_cache(maxsize=None)
def _channels(OB, KW, CV, MAPS):
    """The ``channels`` layout (see the module docstring): blocks of ``OB`` output channels x
    ``KW`` taps x ``CV`` channel vectors; ``MAPS``: a padding mode that reads the input
    (else the border stays zero)."""
    P = KW * CV  # sums per output channel
    OUT = OB * P

    @njit(parallel=True, fastmath=True, cache=True)
    def channels_kernel(grad_out, x, grad, bias, rows, cols, top, left, groups, dh, dw, chunk,
                        blocks, workers):
        n, c_out, out_h, out_w = grad_out.shape
        c_in, h, width = x.shape[1:]
        cg, kh = grad.shape[1], grad.shape[2]
        og = c_out // groups
        hp, wp = rows.size, cols.size
        vector = VECTOR_BYTES // x.itemsize  # lanes
        cvl = CV * vector  # a staged pixel: its channels, the lanes past cg zero
        gf, xf = grad_out.reshape(-1), x.reshape(-1)
        plane_out, plane_in = out_h * out_w, h * width
        zero = np.zeros(1, dtype=x.dtype)[0]
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            xs = np.zeros(chunk * hp * wp * cvl, dtype=x.dtype)
            sums_out = np.empty(OUT * vector, dtype=x.dtype)
            acc = np.empty((og, cg, kh, KW))
            bias_acc = np.empty(og)
            positions = np.empty(plane_in, np.int64)  # input pixel t's place in a staged plane
            for t in range(plane_in):
                positions[t] = ((t // width + top) * wp + left + t % width) * cvl
            block = claim(claimed)
            while block < blocks:
                for g in range(block * groups // blocks, (block + 1) * groups // blocks):
                    acc[:] = 0
                    bias_acc[:] = 0
                    for n0 in range(0, n, chunk):
                        m = min(chunk, n - n0)
                        for s in range(m):
                            _stage_channels(xf, ((n0 + s) * c_in + g * cg) * plane_in, cg, h,
                                            width, rows, cols, top, left, xs, s * hp * wp * cvl,
                                            cvl, positions, MAPS)
                            for o in range(og):  # the bias gradient; brings grad_out to cache
                                start = ((n0 + s) * c_out + g * og + o) * plane_out
                                total = zero
                                for t in range(plane_out):
                                    total += gf[uint64(start + t)]
                                bias_acc[o] += total
                        for o0 in range(0, og, OB):
                            ob = min(o0, og - OB)  # the last block moved back, its overlap skipped
                            for i in range(kh):
                                sums = zero_sums(xs, OUT)
                                for s in range(m):
                                    for oh in range(out_h):
                                        xrow = (s * hp + oh + i * dh) * wp * cvl
                                        grow = ((n0 + s) * c_out + g * og + ob) * plane_out + \
                                            oh * out_w
                                        for ow in range(out_w):
                                            sums = outer_taps(sums, xs, xrow + ow * cvl, dw * cvl,
                                                              gf, grow + ow, plane_out, OB, KW, CV)
                                store_sums(sums, sums_out, 0, P * vector, OB, P)
                                for o in range(o0 - ob, OB):
                                    for j in range(KW):
                                        at = (o * P + j * CV) * vector
                                        for c in range(cg):
                                            acc[ob + o, c, i, j] += sums_out[at + c]
                    for o in range(og):
                        bias[g * og + o] = bias_acc[o]
                        for c in range(cg):
                            for i in range(kh):
                                for j in range(KW):
                                    grad[g * og + o, c, i, j] = acc[o, c, i, j]
                block = claim(claimed)

    return parallel_kernel(channels_kernel)


@njit(inline="always")
def _stage_channels(xf, start, cg, h, width, rows, cols, top, left, xs, d0, cvl, positions,
                    maps):
    """xs[d0 + (r * wp + q) * cvl + c] = padded x[c] at (r, q) for the ``cg`` input planes of
    the flat input ``xf`` that begin at ``start``: the interior in blocks of ``lanes``
    channels x ``lanes`` pixels turned in registers (``simd.transpose_store``; ``positions``:
    where each input pixel's channels go) where the channels fill whole vectors, else channel
    by channel (read in rows, written a pixel apart); with ``maps`` the border through the
    index maps too."""
    wp, plane = cols.size, h * width
    vector = VECTOR_BYTES // xs.itemsize  # lanes
    if cg % vector == 0 and plane >= vector:  # blocks of lanes x lanes, turned in registers
        for c0 in range(0, cg, vector):
            for t0 in range(0, plane, vector):
                t = min(t0, plane - vector)  # the last block moved back
                transpose_store(xf, start + c0 * plane + t, plane, xs, d0 + c0, positions, t)
    else:
        for c in range(cg):
            for r in range(h):
                d = uint64(d0 + ((r + top) * wp + left) * cvl + c)
                s = uint64(start + c * plane + r * width)
                for q in range(width):
                    xs[d + uint64(q * cvl)] = xf[s + uint64(q)]
    if maps:
        for r in range(rows.size):
            source = rows[r]
            if source < 0:
                continue
            for q in range(wp):
                column = cols[q]
                if column < 0 or (top <= r < top + h and left <= q < left + width):
                    continue
                d = d0 + (r * wp + q) * cvl
                for c in range(cg):
                    xs[d + c] = xf[start + c * plane + source * width + column]

