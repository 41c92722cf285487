"""Grouped convolution with 2 to 32 input channels per group, stride 1.

ResNeXt's stages (4 channels per group on 56x56 planes, 16 per group on 14x14) and
ShuffleNet's grouped 1x1 (30 channels per group) sit between the two other routes:
each group's product is far too small for BLAS (hundreds of tiny calls, each paying
its overhead and waking BLAS's own thread pool), yet the flat-plane loop of
``direct.py``, one output channel at a time, loads one input vector per multiply-add
and is load bound (single thread on the ResNeXt deep stage: ~33 GFLOP/s there,
~55 here).

Where the group's output channels fill one or two whole vectors (16 or 32 float32 with
AVX-512: ResNeXt's 14x14 and 7x7 stages) and the kernel is at least 2 wide, the *outer*
layout runs ``_outer``, vectorised over output channels: one zero-padded copy of the group's
input planes (rows copied in whole vectors plus one masked part: nothing past a row touched,
so the border zeroed once per worker stays zero; other padding modes through the index
maps), then per block of a row's pixels the sums of every output channel in registers, each
input value broadcast once for the taps that read it (``simd.pixel_taps``: per input
channel and kernel row ``KW`` weight vectors and ``OB + KW - 1`` broadcasts for ``OB * KW``
multiply-adds, no padded or repeated pixel computed), stored turned into the output planes
in registers under a mask (``simd.store_transposed``: 64 shuffles per 16 x 16).  Against
``blocked`` below (interleaved through conv2d, Emerald Rapids): ResNeXt's deep stage
0.77-0.90x the time (its conv2d_backward 0.79-0.92x: the input gradient's correlation runs
here, its weights flipped and packed in one pass), 7x7 with 32 a group 0.47x (kernel
alone; 0.76x through conv2d), 5x5 with 16 a group 0.75x; float64 0.87-0.91x (rows of 14
in blocks of 7 + 7: 8 + 8 with the last moved back took 0.95-1.0x).  A 1-wide
kernel stays ``blocked`` (nothing shared: one broadcast per multiply-add, 1.3x).  The
padded copy was at first ``pad_plane``'s, through the maps: 0.6-0.7 ms of 1.9 on the deep
stage, against ~0.1 now.  An earlier try of the same idea, LLVM-vectorised (listed below),
lost to the transpose through memory.

Where the output plane keeps the input's width with zero padding (ResNeXt's 3x3 with
padding 1) or reads the input in place (a grouped 1x1), and the plane holds a register
block, the *blocked* layout runs ``_blocked``: blocks of 4 output channels x 5 vectors of
pixels (or 5 x 4, 8 x 3: ``block_shape``) written with explicit vectors (simd.py), every
sum kept in registers over all of the group's input channels and taps; 0.6-0.75x the time
of the kernel described next, which serves the other layouts.

The LLVM-vectorised kernel is register-blocked over output channels.  One parallel task
owns one group of one sample:

1. it copies the group's input planes into a padded scratch buffer through the
   padding's row and column index maps (every padding mode, read in place; with no
   padding the planes are read straight from the caller's array, no copy);
2. it computes each output plane over the *padded* width as one flat vector (every
   tap is then a constant offset into the flattened plane, so even a 14x14 plane is
   one long vectorised loop; the few columns past ``W_out`` are dropped when the
   plane is copied out), **four output channels at once** (the ``masked`` layout
   below drops those columns and the copy-out on small "same" planes): one load of an input
   vector feeds four multiply-adds, and ``CU`` input channels x all taps are summed
   in registers before the four accumulator rows are stored again -- for a 3x3 kernel
   36 multiply-adds per 13 loads and 4 stores, instead of 9 per 10 loads and 1 store.
3. the flat vector is walked in tiles of ``TILE`` positions, so a tile of the group's
   input planes and the four accumulator rows stay in L1/L2 while every output-channel
   block passes over them.

The ``masked`` layout (:func:`layout`), for zero padding that keeps the width (``W_out ==
W``: ResNeXt's 3x3 with padding 1) on planes up to ``MASKED_MAX_WIDTH`` wide: the planes
keep the input's own pitch, so the wide plane *is* the output plane (stored straight into
it, no junk columns to compute, no copy-out).  A tap of column offset ``dj`` then reads
past a row's end into the next (or previous) row; each input plane is therefore copied
once per tap column, with the ``|dj|`` columns a wrapped read lands on zeroed: what it
reads there is exactly the zero padding.  The copies are flat, whole-plane loops (rows of
14 left the padded copy's loops mostly scalar).  ResNeXt's deep stage (14x14, one
thread): -7 to -15%, its 7x7 stage -30%; 56x56 planes were 5% slower (2 junk columns in
58 and long rows cost little), and 5x5 kernels 3x slower (five copies read from five
rows: not vectorised), hence the limits.

Tap geometry ``(kH, kW, dilation_h, dilation_w)`` and the channel unroll ``CU`` are
frozen as constants (a closure over ints only: a captured jitted function would change
Numba's disk-cache key in every process), so LLVM unrolls taps and channels and
vectorises along the flat positions with unsigned (check-free) indices.  Output
channels past a multiple of four get zero weights (computed, never stored).

Things that looked harmless and cost 2-5x, measured: the four accumulator rows must be
one array of a *constant* shape (LLVM then knows the row stride and vectorises with one
alias check; a run-time shape kills vectorisation); a block's weights read from the
packed array, not turned into a tuple (``to_fixed_tuple`` compiles to a slow switch);
the unroll body must stay small (3x3 with 2+ channels per pass, or 1x1 with 30, is no
longer fully unrolled, so nothing is vectorised) -- hence ``channel_unroll``.  Blocks of
2, 3, 5 or 6 output channels, partial sums per tap row and other tile sizes measured
no better than 4 on the ResNeXt deep stage.

Where the time went on that stage (8x512x14x14, 16 channels per group, one thread, CPU
time) in the padded layout: ~4.0 ms, of which the multiply-adds ~2.7 (8.3 M 16-lane FMAs,
12.5% of them on the two padded columns of each row: about the rate OpenBLAS's sgemm
reaches here, ~2.7 G vector FMAs/s), the padded copy ~0.75, the copy-out ~0.37, the rest
~0.2.  The masked layout (above) removes the padded columns' FMAs and the copy-out and
makes the copy three flat loops.  Also tried on that stage, none kept (all exact or
within F(2x2)'s error, all slower or even):

* vectorised over the 16 *output* channels (weights as (ci, tap, co) vectors, input
  values broadcast, 7 or 8 output pixels per register block, no padded-column waste):
  the compute drops to ~2.55 ms, but the pixel-major accumulators must be transposed
  into NCHW (~0.35 ms: a scalar read of a just-stored vector stalls store forwarding,
  so they go through a whole-plane scratch) and LLVM keeps the accumulators in
  registers across the input-channel loop only for some block sizes (16 pixels: not
  vectorised at all; a view of a caller's buffer instead of a fresh array as the
  accumulator: a scalar fallback): 3.9-4.6 ms in all, against 4.0;
* per-group BLAS: 32 x (16 x 144 @ 144 x 1568) runs at ~37 GFLOP/s single-threaded
  (6.3 ms before any im2col), the weight gradient's shapes at ~40 (5.4-7.2 ms);
* Winograd F(2x2, 3x3) per group (U from winograd_transforms._weight_transform, V and M in L2,
  input split into row/column parity planes so every transform is a flat vectorised
  loop, products as this kernel's 1x1 loop): products 1.8 ms, but parity planes 0.64,
  input transform 0.73, output transform 0.44 and interleaving into NCHW 0.58: 4.2-5.2
  ms in all -- at 16 channels per group the transforms cost what the products save;
* the padded copy as one 16-wide vector per row (the 14-element row loop is scalar):
  0.48 -> 0.35 ms in isolation, within noise in the kernel; the copy-out straight from
  the accumulators instead of through ``wide``: +-5% (worse on the 56x56 stage).

Tried on Emerald Rapids (512-bit vectors), interleaved in one process, none kept: the four
weight rows read in place from ``w`` instead of the packed array (no ``pack_weights``):
3.7 against 3.1 ms with the packing included; each sum split into two chains (odd tap
rows apart): 2.3x slower (the body was no longer vectorised); ``TILE`` 1040 or 1088
instead of 1024 (accumulator rows off 4 KB strides): no difference.  The loop's assembly
there: per 16 positions 36 zmm multiply-adds, 9 input loads, 4 accumulator loads and
stores, 9 of the 36 weights spilled (read as memory operands).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange, uint64

from ..spec import PaddingMode
from .direct import SPECIALISED, _geometry, _zero_padded
from .forksafe import parallel_kernel
from .simd import (VECTOR_BYTES, bias_vectors, channel_sums, copy_part, lanes, pixel_taps,
                   row_block, store_sums, store_transposed, tap_row, vload, vstore)
from .workers import claim, parallel_blocks, threads

TILE = 1024  # flat positions per tile
SLACK = 16  # zeros past each padded plane: the last tile runs in whole 16-lane vectors
MASKED_MAX_WIDTH = 32  # the masked layout on planes up to this wide (measured: 14, 28 gain)
# Register blocks (output channels, vectors of pixels) of the blocked layout: block_shape
# takes the one that computes the fewest sums (see _blocked for the measurements).
BLOCKS = ((4, 5), (5, 4), (8, 3))


def supports(problem) -> bool:
    """Grouped, 2 to 32 input channels and at least 4 output channels per group (fewer
    would leave most of a four-channel block idle), stride 1, a tap geometry in
    direct's ``SPECIALISED`` set (compiled kernels stay few).  Depthwise (1 input
    channel per group) stays on ``direct``: nothing to share across input channels."""
    p, spec = problem, problem.spec
    return (spec.groups > 1 and 2 <= p.group_in <= 32 and p.group_out >= 4
            and spec.stride == (1, 1) and _geometry(p) in SPECIALISED)


def channel_unroll(kh, kw, cg) -> int:
    """Input channels summed in registers per pass: enough taps (about 8) to amortise the
    accumulators' loads and stores, and a divisor of ``cg`` (no remainder loop): 8 for a
    1x1 kernel with 16 channels per group, 6 with 30, 1 for 3x3 and up."""
    cap = max(1, 8 // (kh * kw))
    return max(d for d in range(1, cap + 1) if cg % d == 0)


def pack_weights(w, groups, cu):
    """(C_out, cg, kH, kW) -> (groups, blocks of 4 output channels, cg / cu, 4 * cu * kH * kW):
    each block's weights for ``cu`` input channels in one contiguous row, ordered
    (output channel, input channel, tap); output channels past ``C_out / groups`` padded
    with zeros to a multiple of four (computed, never stored)."""
    c_out, cg, kh, kw = w.shape
    og = c_out // groups
    blocks = -(-og // 4)
    if og % 4:  # (else w itself, viewed: one copy in all, not three)
        padded = np.zeros((groups, blocks * 4, cg, kh, kw), dtype=w.dtype)
        padded[:, :og] = w.reshape(groups, og, cg, kh, kw)
        w = padded
    packed = w.reshape(groups, blocks, 4, cg // cu, cu, kh * kw).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(packed).reshape(groups, blocks, cg // cu, 4 * cu * kh * kw)


def block_shape(p):
    """The blocked layout's register block for ``p``, ``(output channels, vectors of
    pixels)``: of ``BLOCKS``, those with at most the group's output channels and at most the
    output plane's pixels, the one computing the fewest sums (the group's last block of
    channels moved back to end at its last channel recomputes some, and so does a plane's
    ``tail_vectors``; the first listed on a tie); None if none fits."""
    size, og = p.out_h * p.out_w, p.group_out
    best = None
    for ob, vectors in BLOCKS:
        span = vectors * lanes(p.dtype)
        if ob <= og and span <= size:
            pixels = size // span * span + tail_vectors(size, vectors, p.dtype) * lanes(p.dtype)
            sums = -(-og // ob) * ob * pixels
            if best is None or sums < best[0]:
                best = (sums, ob, vectors)
    return None if best is None else best[1:]


def tail_vectors(size, vectors, dtype) -> int:
    """Vectors of the block that ends a plane of ``size`` pixels after its whole runs of
    ``vectors`` (0: none left over): the pixels left, rounded up to whole vectors."""
    step = lanes(dtype)
    return -(-(size % (vectors * step)) // step)


def layout(p) -> str:
    """How the kernel lays out a group's input planes for ``p``: ``outer`` (output channels
    filling one or two vectors, a kernel at least 2 wide: ``_outer`` over one padded copy,
    any padding), ``blocked`` (zero padding
    keeping the width, or none with a 1-wide kernel, and a register block that fits: the
    explicit-vector kernel ``_blocked`` over masked copies, or the input read in place),
    ``unpadded`` (no padding: read in place from the caller's array), ``masked`` (zero
    padding keeping the width, on planes up to ``MASKED_MAX_WIDTH`` wide, kernels up to 3
    wide: one copy per tap column at the input's pitch, see the module docstring) or
    ``padded`` (through the index maps)."""
    spec = p.spec
    if outer_shape(p) is not None:
        return "outer"
    if _zero_padded(p) and p.out_w == p.w and block_shape(p) is not None:
        return "blocked"
    if spec.pads == ((0, 0), (0, 0)):
        return "unpadded"
    if (spec.padding_mode is PaddingMode.ZEROS and p.out_w == p.w and p.kw <= 3
            and p.w <= MASKED_MAX_WIDTH):
        return "masked"
    return "padded"


def run(x, w, b, p, out=None):
    spec = p.spec
    kind = layout(p)
    if kind == "outer":
        return run_outer(x, pack_outer(w, spec.groups, False), b, p, out)
    rows, cols = p.index_maps()
    (top, bottom), (left, _) = spec.pads
    out = p.output(out)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    dh, dw = spec.dilation
    n_blocks = parallel_blocks(p.n * spec.groups)
    if kind == "blocked":
        in_place = spec.pads == ((0, 0), (0, 0))
        ob, vectors = block_shape(p)
        tail = tail_vectors(p.out_h * p.out_w, vectors, p.dtype)
        _blocked(p.kh, p.kw, dh, dw, ob, vectors, tail, not in_place)(
            x, w, bias, out, top, bottom, left, spec.groups, n_blocks, threads())
        return out
    cu = channel_unroll(p.kh, p.kw, p.group_in)
    _kernel(p.kh, p.kw, dh, dw, cu, kind == "masked")(
        x, pack_weights(w, spec.groups, cu), bias, out, rows, cols, top, left,
        kind == "unpadded", n_blocks, threads())
    return out


def run_outer(x, packed, b, p, out=None):
    """The ``outer`` layout on weights already packed (``pack_outer``)."""
    rows, cols = p.index_maps()
    out = p.output(out)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    _outer(p.kh, p.kw, *p.spec.dilation, *outer_shape(p), _zero_padded(p))(
        x, packed, bias, out, rows, cols, p.spec.pads[0][0], p.spec.pads[1][0], p.spec.groups,
        parallel_blocks(p.n * p.spec.groups), threads())
    return out


@lru_cache(maxsize=None)
def _kernel(KH, KW, DH, DW, CU, MASKED):
    """The kernel for one tap geometry, channel unroll and layout (``MASKED`` or not),
    frozen as constants.  The layout too: read through a run-time plane index, a 5x5
    kernel's 25 taps were no longer vectorised (4x slower) even when every tap read the
    same plane."""
    TAPS = KH * KW
    COPIES = KW if MASKED else 1  # of each input plane: one per tap column when masked
    BY_COLUMN = 1 if MASKED else 0

    @njit(parallel=True, fastmath=True, cache=True)
    def grouped_kernel(x, wp, b, out, rows, cols, top, left, unpadded, n_blocks, workers):
        n, c_out, out_h, out_w = out.shape
        groups, blocks, cblocks = wp.shape[:3]
        cg, og = cblocks * CU, c_out // groups
        h, xw = x.shape[2:]
        width = xw if MASKED else cols.size  # the planes' pitch
        size = out_h * width  # the wide output plane
        # positions whose taps all fall inside the padded plane (masked: every position)
        span = size if MASKED else size - (KW - 1) * DW
        # masked: padded pixel (r, c) at left + r * width + c, so no read is negative
        plane = rows.size * width + SLACK + (left + (KW - 1) * DW if MASKED else 0)
        uwidth = uint64(width)
        direct_out = width == out_w  # the wide plane is the output plane
        tasks = n * groups
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            acc = np.empty((4, TILE), dtype=out.dtype)  # a constant shape: LLVM sees the row stride
            wide = np.empty((og, 0 if direct_out else size), dtype=out.dtype)
            scratch = np.zeros((0 if unpadded else cg * COPIES, plane), out.dtype)
            block = claim(claimed)
            while block < n_blocks:
                for task in range(block * tasks // n_blocks, (block + 1) * tasks // n_blocks):
                    ni, g = task // groups, task % groups
                    if unpadded:
                        planes = x[ni, g * cg:(g + 1) * cg].reshape(cg, -1)
                        end = span  # no slack past the caller's planes
                    elif MASKED:
                        planes = scratch  # zero from the start; only the input rows are written
                        for ci in range(cg):
                            mask_copies(x[ni, g * cg + ci].reshape(-1), h, xw, top, left, DW,
                                        planes, ci * KW, KW)
                        end = size
                    else:
                        planes = scratch  # its slack is zero from the start, never written
                        for ci in range(cg):
                            pad_plane(x[ni, g * cg + ci].reshape(-1), x.shape[3], rows, cols, left,
                                      planes[ci], 0, width)
                        end = min(size, (span + SLACK - 1) // SLACK * SLACK)  # whole vectors
                    for t0 in range(0, end, TILE):
                        length = min(end - t0, TILE)
                        base = uint64(t0)
                        for ob in range(blocks):
                            co = ob * 4
                            for k in range(4):
                                bk = b[g * og + co + k] if co + k < og else 0
                                for t in range(length):
                                    acc[k, t] = bk
                            for cb in range(cblocks):
                                wt = wp[g, ob, cb]
                                c0 = uint64(cb * CU)
                                for t in range(length):
                                    ut = uint64(t)
                                    s0, s1, s2, s3 = acc[0, ut], acc[1, ut], acc[2, ut], acc[3, ut]
                                    for u in range(CU):
                                        for i in range(KH):
                                            for j in range(KW):
                                                v = planes[
                                                    (c0 + uint64(u)) * uint64(COPIES)
                                                    + uint64(j * BY_COLUMN), base + ut
                                                    + uint64(i * DH) * uwidth + uint64(j * DW)]
                                                tap = u * TAPS + i * KW + j
                                                s0 += wt[tap] * v
                                                s1 += wt[CU * TAPS + tap] * v
                                                s2 += wt[2 * CU * TAPS + tap] * v
                                                s3 += wt[3 * CU * TAPS + tap] * v
                                    acc[0, ut], acc[1, ut], acc[2, ut], acc[3, ut] = s0, s1, s2, s3
                            keep = min(length, span - t0)  # positions past span are dropped
                            for k in range(min(4, og - co)):  # loops: a slice assignment allocates
                                dst = out[ni, g * og + co + k].reshape(-1) if direct_out \
                                    else wide[co + k]
                                for t in range(keep):
                                    dst[base + uint64(t)] = acc[k, uint64(t)]
                    if not direct_out:  # flat index loops: a view or slice per row costs more
                        for oc in range(og):
                            src, dst = wide[oc], out[ni, g * og + oc].reshape(-1)
                            for oh in range(out_h):
                                d, w0 = uint64(oh * out_w), uint64(oh * width)
                                for ow in range(out_w):  # unsigned: no wraparound checks
                                    dst[d + uint64(ow)] = src[w0 + uint64(ow)]
                block = claim(claimed)

    return parallel_kernel(grouped_kernel)


@lru_cache(maxsize=None)
def _blocked(KH, KW, DH, DW, OB, P, TAIL, COPY):
    """Zero padding keeping the width, or none with a 1-wide kernel (``COPY`` False: the
    planes read in place): register blocks of ``OB`` output channels x ``P`` vectors of
    pixels, written with explicit vectors (simd.py), straight into the output.

    Each task (one group of one sample) makes the masked copies of its input planes (the
    ``masked`` layout's: at the input's pitch, one per tap column, the wrapped-onto columns
    zeroed), so the output plane is one flat run of pixels and tap ``(i, j)`` a constant
    offset into copy ``j``.  A block's sums start at the biases and stay in registers over
    every input channel and tap (``simd.tap_row``: per tap ``P`` loads and ``OB`` broadcast
    weights for ``OB * P`` multiply-adds; the LLVM-vectorised kernel above loads and stores
    its four accumulator rows again for every channel pass), then are stored once.  A
    plane's runs of ``P`` vectors start every ``P * lanes`` pixels; the pixels left over go
    in one block of ``TAIL`` vectors (``tail_vectors``) ending at the plane's end, and the
    group's last block of channels is moved back to end at its last channel: no remainder
    loop, every store inside the output.  The tail block, against the last run of ``P``
    moved back as before: ResNeXt's 14x14 planes (196 pixels: 5 + 5 + 3 vectors, not
    5 + 5 + 5) 0.88-0.90x the time, 7x7 with 32 a group 0.81-0.83x.

    Emerald Rapids, 2 threads, interleaved with torch, against the kernel above: ResNeXt's
    16 channels per group on 14x14 (8 x 512 channels) 0.78-0.97 of torch's time where it took
    1.22-1.31 (4 x 5 blocks; 3 x 7 0.83-1.04, 4 x 6 0.88-1.11, 2 x 12 1.44-1.88: spilled);
    4 per group on 56x56 0.30 against 0.51-0.53; 8 per group on 28x28 0.50 against
    0.78-0.80; 32 per group on 7x7 (8 x 3 blocks: a plane of 49 pixels holds 3 vectors)
    1.67-1.82 against 1.91; ShuffleNet's grouped 1x1 (30 per group, read in place) 0.51-0.53
    with 5 x 4 blocks against 0.85-1.03, 4 x 5 0.59-0.60; float64 0.60x the time.
    ``block_shape``'s count of sums picks the measured best in each."""
    COPIES = KW if COPY else 1

    @njit(parallel=True, fastmath=True, cache=True)
    def blocked_kernel(x, w, b, out, top, bottom, left, groups, n_blocks, workers):
        n, c_out, out_h, out_w = out.shape
        c_in, h, width = x.shape[1:]
        cg, og = w.shape[1], c_out // groups
        xf, of, wf = x.reshape(-1), out.reshape(-1), w.reshape(-1)
        size = out_h * out_w  # one output plane: the positions computed
        vector = VECTOR_BYTES // out.itemsize  # lanes
        span = P * vector  # one block's pixels
        plane = (top + h + bottom) * width + left + (KW - 1) * DW + SLACK  # one copy
        taps = cg * KH * KW  # weights of one output channel
        # where a channel's taps read: its copies (plane apart, KW per channel) or its plane
        # of the caller's array
        channel, copy = (KW * plane, plane) if COPY else (h * width, 0)
        tasks = n * groups
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            scratch = np.zeros((cg * COPIES if COPY else 0, plane), dtype=out.dtype)
            src = scratch.reshape(-1) if COPY else xf
            block = claim(claimed)
            while block < n_blocks:
                for task in range(block * tasks // n_blocks, (block + 1) * tasks // n_blocks):
                    ni, g = task // groups, task % groups
                    if COPY:
                        for ci in range(cg):
                            mask_copies(x[ni, g * cg + ci].reshape(-1), h, width, top, left, DW,
                                        scratch, ci * KW, KW)
                    first = 0 if COPY else (ni * c_in + g * cg) * h * width  # channel 0's plane
                    for o0 in range(0, og, OB):
                        oc = g * og + min(o0, og - OB)
                        at = first, channel, width, copy, cg, taps
                        for t in range(0, size - span + 1, span):
                            sums = _block(b, oc, src, at, t, wf, OB, P, KH, KW, DH, DW)
                            store_sums(sums, of, (ni * c_out + oc) * size + t, size, OB, P)
                        if TAIL:  # the plane's last pixels: a block of TAIL vectors ending there
                            t = size - TAIL * vector
                            sums = _block(b, oc, src, at, t, wf, OB, TAIL, KH, KW, DH, DW)
                            store_sums(sums, of, (ni * c_out + oc) * size + t, size, OB, TAIL)
                block = claim(claimed)

    return parallel_kernel(blocked_kernel)


def outer_shape(p):
    """The ``outer`` layout's register block for ``p``, ``(pixels, channel vectors)``: where the
    group's output channels fill one or two whole vectors and the kernel is at least 2 wide
    (its taps share the broadcast inputs), ``OB`` neighbouring pixels of a row: the row split
    into as few blocks as hold at most a vector's lanes and 24 sums, as even as they come
    (14 float64 pixels: 7 + 7, not 8 + 8 with the last moved back); else None."""
    vector = lanes(p.dtype)
    cv, rest = divmod(p.group_out, vector)
    if rest or cv not in (1, 2) or p.kw < 2:
        return None
    return row_block(p.out_w, min(vector, 24 // cv)), cv


@lru_cache(maxsize=None)
def _outer(KH, KW, DH, DW, OB, CV, ZERO):
    """Vectorised over output channels: each task (one group of one sample) copies its input
    planes onto padded planes through the index maps (every padding mode), then for each
    output row, blocks of ``OB`` neighbouring pixels: sums of ``CV`` vectors of the group's
    output channels per pixel, started at the biases, plus per input channel and kernel row
    ``simd.pixel_taps`` (``KW * CV`` weight vectors, each input value broadcast once for the
    taps that read it), stored turned into the channels' planes (``simd.store_transposed``).
    No pixel computed twice except where a row's last block is moved back, one padded copy
    instead of the masked layout's one per tap column."""

    @njit(parallel=True, fastmath=True, cache=True)
    def outer_kernel(x, wp, b, out, rows, cols, top, left, groups, n_blocks, workers):
        n, c_out, out_h, out_w = out.shape
        c_in, h, width = x.shape[1:]
        cg, og = c_in // groups, c_out // groups
        pitch = cols.size
        plane = rows.size * pitch
        size = out_h * out_w
        of, xf = out.reshape(-1), x.reshape(-1)
        tasks = n * groups
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            planes = np.zeros(cg * plane, dtype=x.dtype)  # ZERO: the border stays zero
            block = claim(claimed)
            while block < n_blocks:
                for task in range(block * tasks // n_blocks, (block + 1) * tasks // n_blocks):
                    ni, g = task // groups, task % groups
                    for ci in range(cg):
                        if ZERO:
                            copy_rows(xf, ((ni * c_in + g * cg + ci) * h) * width, h, width,
                                      planes, ci * plane + top * pitch + left, pitch)
                        else:
                            pad_plane(x[ni, g * cg + ci].reshape(-1), width, rows, cols, left,
                                      planes, ci * plane, pitch)
                    for y in range(out_h):
                        for x0 in range(0, out_w, OB):
                            at = min(x0, out_w - OB)  # the row's last block moved back
                            sums = bias_vectors(b, g * og, OB, CV)
                            for ci in range(cg):
                                for i in range(KH):
                                    sums = pixel_taps(sums, planes, ci * plane + (y + i * DH)
                                                      * pitch + at, wp,
                                                      ((g * cg + ci) * KH + i) * KW * og,
                                                      OB, KW, CV, DW)
                            store_transposed(sums, of, ((ni * c_out + g * og) * out_h + y)
                                             * out_w + at, size, OB, CV)
                block = claim(claimed)

    return parallel_kernel(outer_kernel)


@njit(inline="always")
def copy_rows(src, s0, h, width, dst, d0, pitch):
    """``h`` rows of ``width`` from ``src[s0:]`` (one after another) to ``dst[d0:]``, ``pitch``
    apart: whole vectors, then the rest of each row under a mask (nothing past a row read or
    written, so a zero border around the rows stays zero)."""
    vector = VECTOR_BYTES // dst.itemsize
    whole = width - width % vector
    for r in range(h):
        s, d = s0 + r * width, d0 + r * pitch
        for k in range(0, whole, vector):
            vstore(dst, d + k, vload(src, s + k))
        if whole < width:
            copy_part(src, s + whole, dst, d + whole, width - whole)


@njit(cache=True)
def pack_outer(w, groups, flip):
    """The ``outer`` layout's weights, flat: each (group, input channel, tap)'s weights one
    run of the group's output channels.  ``flip``: those of the input gradient's correlation
    instead (its input channels are ``w``'s output channels and the reverse, every kernel
    turned by 180 degrees: ``backward.flipped_kernels``, packed in the same pass)."""
    c_out, cg, kh, kw = w.shape
    og = c_out // groups
    taps = kh * kw
    src = w.reshape(-1)
    dst = np.empty(w.size, w.dtype)
    d = 0
    for g in range(groups):
        if flip:  # [g, o, t, c] = w[g*og + o, c, taps - 1 - t]
            for o in range(og):
                first = (g * og + o) * cg * taps + taps - 1
                for t in range(taps):
                    for c in range(cg):
                        dst[d] = src[first + c * taps - t]
                        d += 1
        else:  # [g, c, t, o] = w[g*og + o, c, t]
            for c in range(cg):
                for t in range(taps):
                    first = (g * og * cg + c) * taps + t
                    for o in range(og):
                        dst[d] = src[first + o * cg * taps]
                        d += 1
    return dst


@njit(inline="always")
def _block(b, oc, src, at, t, wf, OB, P, KH, KW, DH, DW):
    """``_blocked``'s sums of output channels ``oc ..`` over ``P`` vectors of pixels from
    ``t``: every input channel's kernel rows (``at``: where channel 0's taps read, the
    channels' and copies' distances, the plane's width, channels and weights per output
    channel)."""
    first, channel, width, copy, cg, taps = at
    sums = channel_sums(b, oc, OB, P)
    for ci in range(cg):
        for i in range(KH):
            sums = tap_row(sums, src, first + ci * channel + i * DH * width + t, 0, copy, wf,
                           (oc * cg + ci) * KH * KW + i * KW, taps, OB, P, KW, 1, DW)
    return sums


@njit(inline="always")
def mask_copies(plane, h, width, top, left, dw, dst, first, kw):
    """The masked layout's copies of one flat input plane (``h`` rows of ``width``):
    ``dst[first + j]`` for tap column ``j`` holds input pixel ``(r, c)`` at ``left + (top + r)
    * width + c``, except the columns a read at column offset ``dj = j * dw - left`` wraps
    onto (the last ``-dj``, or the first ``dj``), which are zero like everything outside
    the input rows (never written: ``dst`` starts zeroed)."""
    o, count = uint64(left + top * width), uint64(h * width)
    for j in range(kw):
        row = dst[first + j]
        for k in range(count):  # the whole plane in one flat loop
            row[o + uint64(k)] = plane[uint64(k)]
        c0, c1 = wrapped_columns(width, left - j * dw)  # the columns reads land on
        for r in range(h):
            for c in range(c0, c1):
                row[left + (top + r) * width + c] = 0


@njit(inline="always")
def wrapped_columns(width, offset):
    """The columns ``[c0, c1)`` of a flat row-major plane whose read at column offset
    ``offset`` wraps onto a neighbouring row instead of leaving the plane; with ``-offset``,
    the columns those reads land on (the masked copies zero these; the gradients in
    backward.py take the wrapped products back)."""
    if offset < 0:
        return 0, min(width, -offset)
    return max(0, width - offset), width


@njit(inline="always")
def pad_plane(plane, width, rows, cols, left, dst, start, pitch):
    """dst[start + r * pitch:start + r * pitch + cols.size] = row r of the flat input
    ``plane`` (rows of ``width``) padded through the index maps (``pitch = cols.size``:
    one flat padded plane).  The interior columns ``left .. left + W - 1`` (``left``: the
    left pad) map to themselves in every mode: one copy per row, in flat unsigned index
    loops (a view or slice per row costs more, signed indices get wraparound checks);
    only the border columns go through the map."""
    pw = cols.size
    for r in range(rows.size):
        d = start + r * pitch
        if rows[r] < 0:
            for c in range(pw):
                dst[d + c] = 0
            continue
        s = rows[r] * width
        ud, us = uint64(d + left), uint64(s)
        for c in range(width):
            dst[ud + uint64(c)] = plane[us + uint64(c)]
        for c in range(left):
            dst[d + c] = plane[s + cols[c]] if cols[c] >= 0 else 0
        for c in range(left + width, pw):
            dst[d + c] = plane[s + cols[c]] if cols[c] >= 0 else 0
