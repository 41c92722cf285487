"""Direct convolution for depthwise and small-group convolutions (Numba).

Depthwise layers are memory bound: the best kernel reads each input plane and
writes each output plane once, and does everything else in cache.  Each parallel
block of work walks (sample, group) tasks and, per task:

1. copies the group's input planes into a scratch buffer, padded through the
   padding's row and column index maps (every padding mode, read in place from the
   caller's array) and split into *stride phases*: phase ``(pr, pc)`` holds the
   padded pixels ``(q*sH + pr, qc*sW + pc)``.  Every tap of a strided kernel then
   reads one phase plane at a constant offset, so all strides become stride 1;
2. for each output channel, computes the output plane as one flat vector over the
   phase planes' width (``out_h * W_phase`` positions, the few columns past
   ``W_out`` are junk): every tap is a constant offset into the flat plane, so the
   loop is long and vectorises with no remainder per row (rows of 28 or 56 pixels
   leave most of a 16-lane loop to scalar code);
3. copies the valid columns of each row into the output.

All indexing is flat with unsigned offsets: Numba then emits no wraparound
checks, and no per-row array views (a view per row kept these loops scalar, 3-10x).
The tap geometry ``(kH, kW, sH, sW, dH, dW)`` is frozen into the compiled kernel (a
closure over ints), so LLVM unrolls the taps.  Geometries outside ``SPECIALISED``
share one kernel whose geometry is read at run time: exact and parallel, a few
times slower, compiled once (so a test suite that draws many geometries compiles
two kernels, not hundreds).

Depthwise stride 1 and dilation 1 on output rows at least a vector wide (16 float32 pixels
with AVX-512; 3x3 kernels 7/4 of that) has a kernel of its own, ``_rows``: the loops above load
an input vector per multiply-add, while ``_rows`` spells out register blocks with explicit
vectors (simd.py), four output rows at a time, so each loaded vector feeds up to four sums
held in registers; written straight into the output (see its docstring).

Other depthwise stride 1 with zero "same" padding (the width kept: MobileNet's and
EfficientNet's stride-1 layers on planes narrower than that) has a kernel of its own,
``_masked``: the flat plane at the input's own
pitch *is* the output plane, so the sums go straight into the output -- no padded
columns, no copy-out -- at the price of one masked copy of each input plane per tap
column (see its docstring).

Stride 2 on an even input width (MobileNet's strided depthwise layers) has a kernel of
its own, ``_stride2``: the row-by-row phase split above cost most of its time, so there
each plane is split into its two column phases in one flat loop and the rows are read at
stride 2 (see its docstring).  Its vector loops run along output rows, too short on
planes of 14 or 28 pixels: there, with zero padding, ``_stacked`` puts the samples of the
batch side by side in the phase planes, so one flat loop serves them all.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange, uint64

from ..spec import PaddingMode
from . import channels
from .forksafe import parallel_kernel
from .simd import VECTOR_BYTES, lanes, rows_block, splat_pack, vload, vstore
from .workers import claim, parallel_blocks, threads


# (kH, kW, sH, sW, dH, dW) with a kernel of their own.
SPECIALISED = frozenset((k, k, s, s, d, d) for k in (3, 5, 7) for s in (1, 2)
                        for d in (1, 2)) | {(1, 1, 1, 1, 1, 1)}
# The masked kernel's kW copies of one padded plane, per parallel block: 3x3 on 56x56 (39 KB)
# gained on Zen 4, on 112x112 (153 KB) it lost 3-6% to the padded layout (see _masked).
MASKED_BYTES = 128 << 10
# ... and its rows at most this long: two 64-byte lines (32 float32, 16 float64 pixels).  On
# Emerald Rapids the padded layout wins on longer rows (see _masked).
MASKED_ROW_BYTES = 128
# Stride 2 with zero padding runs _stacked (see there) on planes at most this wide, and with
# kernels from 5x5 up on planes up to STACKED_WIDE_WIDTH: 3x3 up to 28x28 takes 0.5-0.9x
# _stride2's time, from 32x32 up _stride2's rows are long enough to win (1.1-1.7x); 5x5 and
# 7x7 0.2-0.6x up to 56x56.  Wider, 5x5 and 7x7 run on the padded layout (_specialised),
# against _stacked (Emerald Rapids, 2 threads, interleaved): 0.8-1.3x the time up to 48x48,
# 0.86-1.08x on 56x56 (EfficientNet's 144 channels: 0.96 and 1.08 in two runs, so they stay),
# 0.72-0.88x on 64x64, 0.65-0.77x on 96x96 and 112x112.  _stride2 runs 3x3 only: at 5x5 and
# 7x7 it took 1.1-2.6x the padded layout's time (every padding mode).
STACKED_WIDTH = 32
STACKED_WIDE_WIDTH = 56
# _stacked's phase planes of one task (the samples side by side), per parallel block.
STACKED_BYTES = 96 << 10
# _rows computes this many output rows per register block (see _rows for the measurements):
# with 5x5's 25 weights in vector registers, four sums and a loaded vector fill 30 of 32.
BLOCK_ROWS = 4
# ... and unrolls the blocks of output rows up to this many vectors (see row_vectors).
ROW_VECTORS = 8


def supports(problem) -> bool:
    """Grouped convs: with at most 4 input channels per group (depthwise with any depth
    multiplier, ResNeXt-style) in any geometry; with up to 32 per group at stride 1 in a
    specialised geometry, where the flat-plane loop beats many tiny BLAS products (the
    table asks ``grouped`` first: here come only groups with fewer than 4 outputs).
    Dense convs, even with few input channels (an RGB stem), have too few (sample, group)
    tasks to share out: GEMM."""
    p, spec = problem, problem.spec
    if spec.groups == 1:
        return False
    return p.group_in <= 4 or (p.group_in <= 32 and spec.stride == (1, 1)
                               and _geometry(p) in SPECIALISED)


def _geometry(p):
    return (p.kh, p.kw, *p.spec.stride, *p.spec.dilation)


def path(p) -> str:
    """Which of this module's kernels runs ``p``: ``channels`` (see ``_channels_win``),
    ``rows`` (depthwise, stride 1, dilation 1,
    a specialised geometry, output rows at least one vector wide -- 3x3 at least 7/4 of one
    -- and at least ``BLOCK_ROWS`` of them), ``masked`` (depthwise, stride 1, zero
    padding that keeps the width, a specialised geometry, scratch within ``MASKED_BYTES``,
    rows within ``MASKED_ROW_BYTES``),
    ``stacked`` (a specialised stride-2 geometry with zero padding on an input at most
    ``STACKED_WIDTH`` wide, or ``STACKED_WIDE_WIDTH`` for a kernel at least 5 wide),
    ``stride2`` (another specialised stride-2 3x3 geometry on an even input width),
    ``specialised`` (another geometry in ``SPECIALISED``) or ``any``."""
    if _geometry(p) not in SPECIALISED:
        return "any"
    if _channels_win(p):
        return "channels"
    if _rows_fit(p):
        return "rows"
    if p.spec.stride == (1, 1) and _masked_fits(p):
        return "masked"
    if p.spec.stride == (2, 2) and _zero_padded(p) and (
            p.w <= STACKED_WIDTH or (p.kw >= 5 and p.w <= STACKED_WIDE_WIDTH)):
        return "stacked"
    return ("stride2" if p.spec.stride == (2, 2) and p.w % 2 == 0 and p.kw <= 3
            else "specialised")


def _channels_win(p) -> bool:
    """``channels.py``'s kernel, vectorised over channels, where it fits (``channels.fits``:
    depthwise, output rows up to 64 pixels) and beats the kernels here: every stride-2
    layer, stride 1 with a 7x7 kernel, with a 5x5 one where ``rows`` would not run, and
    with a 3x3 one on output rows at most half a vector wide (7x7 planes in float32).

    Measured on Emerald Rapids, 2 threads, interleaved, against the kernel this table chose
    before (batch 8, "same" padding), float32: stride 2 0.33-0.59x the time (3x3 and 5x5 on
    14x14 to 112x112 inputs: ``stacked`` and ``stride2``; MobileNet's 112x112 0.88x), 7x7
    stride 1 0.37x on 7x7 planes, 0.49x on 14x14, 0.82-0.95x on 20x20 to 56x56 (against
    ``rows``), 5x5 stride 1 0.47-0.63x against ``masked`` (but 1.14x against ``rows`` on
    28x28); 3x3 stride 1 against ``masked`` 0.69-0.87x on 6x6 to 10x10 planes (MobileNet's
    960 channels on 7x7: 0.69x), but 1.20x on 12x12, 1.06-1.21x on 14x14 and 1.33x on 28x28
    against ``rows`` (both run whole rows in vectors there).  Float64 (8 lanes, so ``rows``
    takes rows from 8 pixels): stride 2 0.52-0.80x, 7x7 0.64x on 7x7, 0.89-1.00x on 14x14
    and 28x28, 5x5 against ``masked`` 0.71x, against ``rows`` 1.02-1.08x, 3x3 0.82x on 5x5,
    0.89-1.18x on 7x7, 1.07x on 10x10."""
    if not channels.fits(p):
        return False
    return (p.spec.stride != (1, 1) or p.kw >= 7 or (p.kw >= 5 and not _rows_fit(p))
            or 2 * p.out_w <= lanes(p.dtype))


def _zero_padded(p) -> bool:
    return p.spec.padding_mode is PaddingMode.ZEROS or not any(sum(p.spec.pads, ()))


def _rows_fit(p) -> bool:
    vector = lanes(p.dtype)
    return (p.group_in == 1 and p.spec.stride == (1, 1) and p.spec.dilation == (1, 1)
            and p.out_w >= vector and p.out_h >= BLOCK_ROWS
            and (p.kw >= 5 or 4 * p.out_w >= 7 * vector))


def _masked_fits(p) -> bool:
    spec = p.spec
    (top, bottom), _ = spec.pads
    copies = p.kw * ((top + p.h + bottom) * p.w + (p.kw - 1) * spec.dilation[1])
    return (p.group_in == 1 and _zero_padded(p) and p.out_w == p.w
            and copies * p.dtype.itemsize <= MASKED_BYTES
            and p.w * p.dtype.itemsize <= MASKED_ROW_BYTES)


def stacked_samples(p) -> int:
    """Samples side by side in one ``_stacked`` task: as many as fit ``STACKED_BYTES`` of
    phase planes, but no fewer than 16 tasks where the batch allows (both threads busy
    when a few groups are all there is)."""
    (top, bottom), (left, right) = p.spec.pads
    hq, wq = (top + p.h + bottom + 1) // 2, (left + p.w + right + 1) // 2
    per_sample = p.group_in * 4 * hq * wq * p.dtype.itemsize
    return max(1, min(p.n, STACKED_BYTES // per_sample, -(-p.n * p.spec.groups // 16)))


def run(x, w, b, p, out=None):
    kind = path(p)
    if kind == "channels":
        return channels.run(x, w, b, p, out)
    spec = p.spec
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    rows, cols = p.index_maps()
    top, left = spec.pads[0][0], spec.pads[1][0]
    out = p.output(out)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    if kind == "rows":
        blocks = parallel_blocks(p.n * spec.groups)
        vectors = row_vectors(p)
        _rows(p.kh, p.kw, BLOCK_ROWS, vectors, not _zero_padded(p))(
            x, w, bias, out, rows, cols, top, left, spec.groups, blocks, threads())
    elif kind == "masked":
        blocks = parallel_blocks(p.n * spec.groups)
        _masked(p.kh, p.kw, dh, dw)(x, w, bias, out, top, left, rows.size, spec.groups, blocks,
                                    threads())
    elif kind == "stacked":
        chunk = stacked_samples(p)
        blocks = parallel_blocks(spec.groups * -(-p.n // chunk))
        _stacked(p.kh, p.kw, dh, dw)(x, w, bias, out, top, left, rows.size, cols.size, chunk,
                                     spec.groups, blocks, threads())
    elif kind == "stride2":
        blocks = parallel_blocks(p.n * spec.groups)
        _stride2(p.kh, p.kw, dh, dw)(x, w, bias, out, rows, cols, top, left, spec.groups, blocks,
                                     threads())
    elif kind == "specialised":
        blocks = parallel_blocks(p.n * spec.groups)
        _specialised(*_geometry(p))(x, w, bias, out, rows, cols, left, spec.groups, blocks,
                                    threads())
    else:
        _any_geometry(x, w, bias, out, rows, cols, sh, sw, dh, dw, spec.groups, threads())
    return out


def row_vectors(p) -> int:
    """``_rows``'s ``P``: the vectors of an output row, from 2 to ``ROW_VECTORS`` (the row's
    blocks unrolled in the kernel, a kernel per count); 1 (a loop over the row's vectors) on
    rows of one vector or more than ``ROW_VECTORS``."""
    vectors = -(-p.out_w // lanes(p.dtype))
    return vectors if 2 <= vectors <= ROW_VECTORS else 1


def pass_rows(kh, kw) -> int:
    """Tap rows summed per pass over a plane: at most 28 weights, so they stay in vector
    registers with the accumulator and input (all 7x7 rows at once: each multiply-add also
    loaded its weight).  3x3 and 5x5 take one pass, 7x7 two (rows [0, 4), then [4, 7))."""
    return min(kh, max(1, 28 // kw))


@lru_cache(maxsize=None)
def _masked(KH, KW, DH, DW):
    """Depthwise (one input channel per group, any depth multiplier), stride 1, zero padding
    with ``W_out == W`` ("same" width: ``left + right == (kW - 1) * dW``; any rows of
    padding): the output plane is computed as one flat vector at the *input's own pitch*,
    so the flat plane is the output plane itself: stored straight into it, with no padded
    columns to compute and no copy-out (grouped.py's ``masked`` layout, for one channel).

    Tap ``(i, j)`` reads column offset ``dj = j*dW - left``.  At the pitch ``W`` a read past
    a row's end lands on the next row's first columns (``dj > 0``), one before its start on
    the previous row's last columns (``dj < 0``), and those must read as the zero padding.
    So each input plane is copied once per tap column, ``kW`` flat copies between zero
    padding rows and zero slack, each with the ``|dj|`` columns such wrapped reads land on
    zeroed.  The copies are whole-plane loops (rows of 28 or 56 left the padded layout's row
    copies mostly scalar) that zero through a select on a table of kept columns (built once per
    call)
    (zeroing the columns in a second, strided pass cost 12% on effnet), and are shared by
    the depth multiplier's output channels.

    Against the padded layout (``_specialised``), kernels alone, interleaved, 2 threads:
    effnet 5x5 on 28x28 0.88-0.90x the time, mbv2 3x3 on 56x56 0.93-1.0x, 3x3 on 14x14
    0.59-0.61x, 5x5 on 14x14 0.44-0.47x, 3x3 on 7x7 0.55x; on one thread 1.04x, 0.96x,
    0.62x, 0.47x, 0.54x.  3x3 on 112x112 (150 KB of copies) was 1.03-1.06x: hence ``MASKED_BYTES``.
    On Emerald Rapids (512-bit vectors), float32: 3x3 0.72-0.93x on 28x28 and 32x32, but
    1.04x on 40x40, 1.07x on 48x48, 1.09-1.13x on 56x56 (mbv2-dw3x3: 1.82 against 1.65 ms),
    5x5 0.85x on 28x28, 0.95-1.07x on 56x56, 1.4x on 112x112, 7x7 on 56x56 1.2x; float64:
    3x3 0.95x on 28x28, 1.1x on 32x32, 1.2x on 40x40; 5x5 on 28x28 1.22x (effnet-dw5x5:
    3.15 against 2.58 ms).  Hence ``MASKED_ROW_BYTES``: rows of at most two cache lines.
    One load per multiply-add: the padded layout's row pairs (which share loads) did not
    vectorise here -- rows of 28 leave a pair's loop a scalar remainder, and pairs run over
    16-aligned spans stored at a run-time distance into the output were 6x slower.

    A kernel wider than 5 sums its taps in two passes over the plane, rows ``[0, ROWS)``
    then the rest added to the stored sums, so each pass's weights stay in vector registers
    (49 weights of a 7x7 do not fit in 32: every multiply-add then loaded its weight as well
    as its input).  ConvNeXt's 7x7 layers, 2 threads: 0.73-0.82x the time of one pass on
    56x56 to 7x7 planes.  Neither splitting a sum into two chains nor running the last
    partial vector again as a whole one gained anything; nor (Emerald Rapids) computing
    the plane's two halves in one loop, two independent sums per iteration: 1.0x on
    effnet's 28x28, 1.3-2.7x slower on 56x56, 14x14 and 7x7.

    Small planes tried elsewhere, not kept (2 threads, interleaved, 512-bit vectors):
    ``_stacked`` at stride 1 (samples side by side, sharing their padding columns): 0.86x
    the time on ConvNeXt's 7x7 kernels on 7x7 planes, 0.94x on 5x5, 1.0x on 3x3, 1.1-1.8x
    from 14x14 up; channels last (a chunk of 64 channels transposed into a padded
    (H, W, C) scratch, the sums vectorised over channels) in loops left to LLVM's
    vectoriser: 0.90x on 7x7 planes of 7x7, 1.04-1.9x elsewhere, and 2.6-4.9x with four
    output columns register-blocked (the body no longer vectorised).  Written with explicit
    vectors (transposes and register blocks in simd.py) it won: channels.py, which now takes
    these planes' 5x5 and 7x7 layers (``_channels_win``)."""
    ROWS = pass_rows(KH, KW)

    @njit(parallel=True, fastmath=True, cache=True)
    def masked_kernel(x, w, b, out, top, left, padded_h, groups, blocks, workers):
        n, c_out, out_h, width = out.shape
        h = x.shape[2]
        og = c_out // groups
        xf, of = x.reshape(-1), out.reshape(-1)
        plen = padded_h * width + (KW - 1) * DW  # a copy: left slack, padded rows, right slack
        hw, span = h * width, out_h * width
        tasks = n * groups
        keep = np.empty(KW * hw, dtype=np.uint8)  # copy j keeps input column q? (read-only)
        for j in range(KW):
            dj = j * DW - left
            for r in range(h):
                for q in range(width):
                    keep[j * hw + r * width + q] = 0 <= q - dj < width
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            scratch = np.zeros(KW * plen, dtype=out.dtype)  # padding rows and slack stay zero
            zero = scratch[0]  # the dtype's zero (a literal 0 would promote float32)
            block = claim(claimed)
            while block < blocks:
                for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                    ni, g = task // groups, task % groups
                    src = uint64(task * hw)  # one input channel per group: plane number = task
                    for j in range(KW):
                        d, m = uint64(j * plen + left + top * width), uint64(j * hw)
                        for t in range(hw):
                            ut = uint64(t)
                            v = xf[src + ut]
                            scratch[d + ut] = v if keep[m + ut] else zero
                    for co in range(g * og, (g + 1) * og):
                        wc, bias = w[co, 0], b[co]
                        o0 = uint64((ni * c_out + co) * span)
                        for t in range(span):  # tap rows [0, ROWS)
                            ut = uint64(t)
                            s = bias
                            for i in range(ROWS):
                                for j in range(KW):
                                    s += wc[i, j] * scratch[ut + uint64(j * plen + j * DW)
                                                            + uint64(i * DH * width)]
                            of[o0 + ut] = s
                        for t in range(span if ROWS < KH else 0):  # tap rows [ROWS, KH), added
                            ut = uint64(t)
                            s = of[o0 + ut]
                            for i in range(ROWS, KH):
                                for j in range(KW):
                                    s += wc[i, j] * scratch[ut + uint64(j * plen + j * DW)
                                                            + uint64(i * DH * width)]
                            of[o0 + ut] = s
                block = claim(claimed)

    return parallel_kernel(masked_kernel)


@lru_cache(maxsize=None)
def _stacked(KH, KW, DH, DW):
    """Stride 2, zero padding, small planes or wide kernels (MobileNet's and EfficientNet's
    strided layers on 14x14 and 28x28, EfficientNet's 5x5 ones on any plane): the padded
    layout's flat loop (``_specialised``) over stride-phase planes, with the task's *samples
    side by side*.  A task is one group and up to
    ``stacked_samples`` samples: phase row ``q`` holds every sample's row ``q``, ``wq``
    columns each, so one flat loop over ``out_h`` rows of the whole pitch computes every
    sample's plane (the per-sample loops were 49-61 positions: a few vectors and a scalar
    remainder as long, or ``_stride2``'s rows of 7-14 columns, scalar).  A tap reads at most
    ``wq - out_w`` columns past a sample's outputs, inside its own columns.

    The phase split is a scatter: input pixel ``(r, c)`` lands at one offset of a table built
    once per call, ``((r + top) % 2, (c + left) % 2)`` phase, row ``(r + top) // 2``, column
    ``(c + left) // 2``, in one flat loop over the plane; the zero padding is never written
    (the scratch is zeroed once per parallel block).  Row by row, through the index maps
    (``_phase_planes``), rows of 7-14 pixels cost 1.5-2.5x as much; on 56x56 the rows won
    (5x5 on 144 channels: 2.6 against 3.8 ms in all, before the 512-bit vectors), so the wide
    5x5 and 7x7 planes routed here could still gain from a row-by-row split.
    The sums go to the output the same way, one flat loop per plane through a table (rows of
    7 output pixels one by one cost 1.5x).  Single thread, the scatter is still 1.4-2.2x a
    plain copy of the input, and half the time of the 3x3 layers (up to three quarters on
    Emerald Rapids).  A gather instead -- one flat loop over a whole chunk's phase planes,
    each position reading its input pixel through a table, the padding through a select --
    took 1.2-2.2x the scatter's time in all.

    Against ``_stride2``, batch 8, 2 threads, interleaved (Emerald Rapids, 512-bit vectors):
    3x3 on 384 channels of 14x14 to 28x28 0.51-0.91x the time, of 32x32 1.1x, 144 channels of
    56x56 1.36x, 96 of 112x112 1.68x; 5x5 on 480 channels 0.21x on 14x14, 0.42-0.49x on 28x28
    and 32x32, on 144 of 56x56 0.59x, on 96 of 112x112 0.92x; 7x7 on 96 of 56x56 0.46x (hence
    the rule in ``path``).  EfficientNet-B0's 672 channels of 5x5 on 14x14: 1.3 against 5.3 ms
    (ONNX Runtime 1.5)."""
    ROWS = pass_rows(KH, KW)

    @njit(parallel=True, fastmath=True, cache=True)
    def stacked_kernel(x, w, b, out, top, left, padded_h, padded_w, chunk, groups, blocks, workers):
        n, c_out, out_h, out_w = out.shape
        c_in, h, width = x.shape[1:]
        cg, og = w.shape[1], c_out // groups
        xf, of = x.reshape(-1), out.reshape(-1)
        hq, wq = (padded_h + 1) // 2, (padded_w + 1) // 2
        pitch = chunk * wq  # a phase row: the chunk's samples side by side
        plane, up, hw = hq * pitch, uint64(pitch), h * width
        lands = np.empty(hw, dtype=np.uint32)  # input pixel -> offset in sample 0's phases
        for r in range(h):
            for c in range(width):
                pr, pc = (r + top) % 2, (c + left) % 2
                lands[r * width + c] = ((pr * 2 + pc) * plane + (r + top) // 2 * pitch
                                        + (c + left) // 2)
        ohw = out_h * out_w
        picks = np.empty(ohw, dtype=np.uint32)  # output pixel -> offset in sample 0's sums
        for oh in range(out_h):
            for ow in range(out_w):
                picks[oh * out_w + ow] = oh * pitch + ow
        chunks = (n + chunk - 1) // chunk
        tasks = groups * chunks
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            scratch = np.zeros(cg * 4 * plane, dtype=out.dtype)
            wide = np.empty(out_h * pitch, dtype=out.dtype)
            block = claim(claimed)
            while block < blocks:
                for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                    g, n0 = task // chunks, task % chunks * chunk
                    m = min(chunk, n - n0)  # (a last, partial chunk: the other columns are junk)
                    for k in range(m):
                        for ci in range(cg):
                            src = uint64(((n0 + k) * c_in + g * cg + ci) * hw)
                            d = uint64(ci * 4 * plane + k * wq)
                            for t in range(hw):
                                scratch[d + uint64(lands[t])] = xf[src + uint64(t)]
                    span = (out_h - 1) * pitch + (m - 1) * wq + out_w
                    for co in range(g * og, (g + 1) * og):
                        for ci in range(cg):
                            wc, base, first = w[co, ci], uint64(ci * 4 * plane), ci == 0
                            bias = b[co]
                            for t in range(span):  # tap rows [0, ROWS)
                                s = bias if first else wide[t]
                                ut = uint64(t) + base
                                for i in range(ROWS):
                                    for j in range(KW):
                                        s += wc[i, j] * scratch[
                                            ut + uint64(((i * DH) % 2 * 2 + (j * DW) % 2) * plane)
                                            + uint64((i * DH) // 2) * up + uint64((j * DW) // 2)]
                                wide[t] = s
                            for t in range(span if ROWS < KH else 0):  # tap rows [ROWS, KH)
                                s = wide[t]
                                ut = uint64(t) + base
                                for i in range(ROWS, KH):
                                    for j in range(KW):
                                        s += wc[i, j] * scratch[
                                            ut + uint64(((i * DH) % 2 * 2 + (j * DW) % 2) * plane)
                                            + uint64((i * DH) // 2) * up + uint64((j * DW) // 2)]
                                wide[t] = s
                        for k in range(m):  # one flat loop per output plane, through a table
                            dst, src = uint64(((n0 + k) * c_out + co) * ohw), uint64(k * wq)
                            for t in range(ohw):
                                of[dst + uint64(t)] = wide[src + uint64(picks[t])]
                block = claim(claimed)

    return parallel_kernel(stacked_kernel)


@lru_cache(maxsize=None)
def _specialised(KH, KW, SH, SW, DH, DW):
    """The kernel for one tap geometry, frozen as constants: taps unrolled, loops vectorised.
    Tap ``(i, j)`` reads phase ``((i*DH) % SH, (j*DW) % SW)`` at row offset ``i*DH // SH``
    and column offset ``j*DW // SW``.

    At 5x5 the taps, not memory, bound the layer (effnet-dw5x5: one zmm load per FMA,
    ~1.3 cycles each), so there two output rows are computed per pass, over the ``wq``
    positions of each: output row ``r + 1`` is ``wq`` further in every phase plane, so the
    two share the input vectors of ``KH - 1`` tap rows (30 loads per 50 FMAs instead of
    50).  Their sums go to two separate buffers: stored into one, at a run-time distance
    ``wq`` apart, the loop lost its vectorisation (6x slower).  At 3x3 the pairs were 9%
    slower (mbv2-dw3x3: rows of 58 leave a remainder per pair) and memory bounds anyway.
    At 7x7 a pair's body (98 multiply-adds) was not vectorised at all: 6.8x slower than
    one row at a time (96 channels of 28x28: 5.9 against 0.87 ms), so only 5x5 pairs.
    Wider kernels sum their taps in two passes, as ``_masked`` does (weights in registers)."""
    PAIRS = KH == 5
    ROWS = pass_rows(KH, KW)  # of the unpaired loop

    # Only ints are closed over: Numba keys its disk cache on the closure's values, and a
    # jitted helper captured here would hash differently in every process (no cache hit).
    @njit(parallel=True, fastmath=True, cache=True)
    def specialised_kernel(x, w, b, out, rows, cols, left, groups, blocks, workers):
        n, c_out, out_h, out_w = out.shape
        c_in, h, width = x.shape[1:]
        cg, og = w.shape[1], c_out // groups
        xf, of = x.reshape(-1), out.reshape(-1)
        hq, wq = (rows.size + SH - 1) // SH, (cols.size + SW - 1) // SW
        plane, uwq = hq * wq, uint64(wq)
        span = (out_h - 1) * wq + out_w  # flat positions that hold an output pixel
        pairs = out_h // 2 if PAIRS and cg == 1 else 0  # (summing over cg lost the vectors)
        tasks = n * groups
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            # pairs read up to wq - out_w positions past the last row's pixels: slack
            scratch = np.zeros(cg * SH * SW * plane + wq, dtype=out.dtype)  # zeroed once
            wide = np.empty(out_h * wq, dtype=out.dtype)
            odd = np.empty(out_h * wq if PAIRS else 0, dtype=out.dtype)  # the pairs' 2nd rows
            block = claim(claimed)
            while block < blocks:
                for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                    ni, g = task // groups, task % groups
                    _phase_planes(xf, (ni * c_in + g * cg) * h * width, h, width, cg, rows, cols,
                                  left, SH, SW, hq, wq, scratch, True)
                    for co in range(g * og, (g + 1) * og):
                        for ci in range(cg):
                            wc, base = w[co, ci], uint64(ci * SH * SW * plane)
                            first = ci == 0
                            bias = b[co]
                            for pair in range(pairs):  # rows 2 * pair -> wide, 2 * pair + 1 -> odd
                                t0 = uint64(2 * pair * wq)
                                for t in range(wq):
                                    ut = t0 + uint64(t)
                                    s0 = bias
                                    s1 = bias
                                    for i in range(KH):
                                        for j in range(KW):
                                            phase = (i * DH) % SH * SW + (j * DW) % SW
                                            at = ut + base + uint64(phase * plane) + uint64(
                                                (i * DH) // SH) * uwq + uint64((j * DW) // SW)
                                            s0 += wc[i, j] * scratch[at]
                                            s1 += wc[i, j] * scratch[at + uwq]
                                    wide[ut] = s0
                                    odd[ut] = s1
                            for t in range(2 * pairs * wq, span):  # unpaired rows: one flat loop
                                s = bias if first else wide[t]
                                ut = uint64(t) + base
                                for i in range(ROWS):
                                    for j in range(KW):
                                        phase = ((i * DH) % SH * SW + (j * DW) % SW) * plane
                                        s += wc[i, j] * scratch[ut + uint64(phase) + uint64(
                                            (i * DH) // SH) * uwq + uint64((j * DW) // SW)]
                                wide[t] = s
                            for t in range(2 * pairs * wq, span if ROWS < KH else 0):  # 2nd pass
                                s = wide[t]
                                ut = uint64(t) + base
                                for i in range(ROWS, KH):
                                    for j in range(KW):
                                        phase = ((i * DH) % SH * SW + (j * DW) % SW) * plane
                                        s += wc[i, j] * scratch[ut + uint64(phase) + uint64(
                                            (i * DH) // SH) * uwq + uint64((j * DW) // SW)]
                                wide[t] = s
                        for oh in range(out_h):
                            dst = uint64(((ni * c_out + co) * out_h + oh) * out_w)
                            paired = oh < 2 * pairs and oh % 2 == 1
                            src = uint64((oh - 1 if paired else oh) * wq)
                            buffer = odd if paired else wide
                            for ow in range(out_w):
                                of[dst + uint64(ow)] = buffer[src + uint64(ow)]
                block = claim(claimed)

    return parallel_kernel(specialised_kernel)


@lru_cache(maxsize=None)
def _rows(KH, KW, R, P, MAPS):
    """Depthwise (any depth multiplier), stride 1, dilation 1, output rows at least one vector
    wide: ``R`` output rows at a time, register-blocked with explicit vectors (simd.py).

    Each input plane is copied once into a padded scratch plane: its interior by whole
    vectors, and with ``MAPS`` (a padding mode that reads the input: reflect, replicate,
    circular) the border through the index maps; with zero padding the border is zeroed once
    per parallel block and stays so.  Then every block of ``R`` output rows by one or two
    vectors of columns is one ``simd.rows_block``: each loaded input vector feeds the sums of every
    output row it touches, ``(R + kH - 1) * kW`` loads for ``R * kH * kW`` multiply-adds per
    vector, against one load per multiply-add in the other kernels here (LLVM's vectoriser
    blocks nothing; row pairs written in Numba were not vectorised).  ``P = 2`` serves rows
    of more than one vector and at most two (28 float32 pixels: EfficientNet's and
    MobileNet's 28x28 stages): the row's two vectors, columns 0-15 and 12-27, in one block --
    eight chains of multiply-adds, so both FMA units stay busy through their latency;
    ``P`` from 3 up (the row's vectors, ``row_vectors``), ``P // 2`` such pairs, unrolled,
    the last ending at the row's end, and one vector more where ``P`` is odd.  With
    ``P = 1`` (one vector, or very long rows) a row's vectors start every ``lanes``
    columns, the last one moved back to end at the row's end.  The last block of rows is
    likewise moved up; so no remainder loop, no masks, and every store lands inside the
    output plane, straight into the output.

    Emerald Rapids, 2 threads, kernels alone, interleaved, float32 batch 8, against the kernel
    each layer ran on before: effnet 5x5 on 28x28 0.70-0.72x the time (``_masked``), 5x5 on
    56x56 0.54x, on 112x112 0.78x, 16x16 0.86x, 20x20 0.94x; mbv2 3x3 on 56x56 0.75x, on
    112x112 0.87x, 32x32 0.86x, 28x28 0.93x; ConvNeXt 7x7 on 56x56 0.68x, 28x28 0.73x,
    16x16 0.72x (49 weights do not all fit in registers: LLVM spills some, each read as a
    memory operand); float64 5x5 on 28x28 and 14x14 0.70x, 3x3 on 56x56 0.77x, 14x14 0.93x;
    reflect padding 0.69-0.72x.  Then, against that first version (one vector a block, every
    row copied through the row map): the copy of the interior without the map 0.85-0.90x
    (effnet), and ``P = 2`` with it 0.73-0.75x (effnet), 0.69x (3x3 on 28x28), 0.73-0.79x
    (5x5 on 20x20), 0.82x (5x5 on 32x32); pairs on longer rows 0.90-0.97x (float64 5x5
    on 28x28, P = 4), 0.93-0.96x (float64 3x3 on 56x56, P = 7), 0.91-0.94x (3x3 on 48x48,
    P = 3), 0.98x (3x3 on 56x56 and 112x112).  Losses, hence ``path``'s rules: 3x3 on 16x16
    1.19x and 20x20 1.26x (two vectors for 20 columns; ``_masked``'s one flat loop wastes no
    lanes); rows narrower than a vector, stored through a lane mask, 1.15-1.9x on 7x7 and
    14x14 planes (a 7x7 plane fills 7 of 16 lanes a row, 49 of 64 flat).  ``R``: 4; 6 and 8
    the same speed, 2 and 3 slower (5x5 on 28x28: 2 took 1.7x the time of 4); with ``P = 2``,
    7 the same as 4.  Pairs of vectors in a loop with a run-time count lost the gain (0.84x
    against 0.74x on effnet: LLVM then spills more of the weights and sums), hence a kernel
    per count.  ``R`` 6 or 8 on float64: 1.02-1.10x.

    Tried to hide the plane copy (a fifth of effnet's time), none kept, interleaved against
    this kernel: no copy at all, zero padding read in place through masked loads (lanes
    outside the plane masked off): 1.3x the time on effnet, 1.6x on ConvNeXt 7x7; the next
    plane's rows copied a share per block of rows (software pipelining, two planes of
    scratch): 1.15-1.25x; a prefetch of the next plane's lines: 1.02-1.11x.  Weights read as
    broadcast memory operands instead of registers (LLVM hoisted the broadcasts and spilled
    them): 1.1x; 5x5 split into passes of 3 and 2 kernel rows (15 weights held at a time):
    1.0-1.2x."""
    NK = KH * KW

    @njit(parallel=True, fastmath=True, cache=True)
    def rows_kernel(x, w, b, out, rows, cols, top, left, groups, blocks, workers):
        n, c_out, out_h, out_w = out.shape
        h, width = x.shape[2:]
        og = c_out // groups
        xf, of, wf = x.reshape(-1), out.reshape(-1), w.reshape(-1)
        hp, wp = rows.size, cols.size
        vector = VECTOR_BYTES // out.itemsize  # lanes
        step = out_w - vector  # P = 2: a row's vectors start at columns 0 and out_w - vector
        tasks = n * groups
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            scratch = np.zeros(hp * wp, dtype=out.dtype)
            block = claim(claimed)
            while block < blocks:
                for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                    ni, g = task // groups, task % groups
                    plane = task * h * width  # one input channel per group: plane number = task
                    if MAPS:  # every padded row through the maps, the border columns too
                        for r in range(hp):
                            s, d = plane + rows[r] * width, r * wp + left
                            _copy_row(xf, s, scratch, d, width, vector)
                            for k in range(wp - width):
                                c = k if k < left else k + width
                                if cols[c] >= 0:
                                    scratch[d - left + c] = xf[s + cols[c]]
                    else:  # the interior: padded rows [top, top + h) are the input's
                        for r in range(h):
                            _copy_row(xf, plane + r * width, scratch, (r + top) * wp + left, width,
                                      vector)
                    for co in range(g * og, (g + 1) * og):
                        weights, bias = splat_pack(wf, co * NK, NK), b[co]
                        o0 = (ni * c_out + co) * out_h * out_w
                        for r0 in range(0, out_h, R):
                            r = min(r0, out_h - R)
                            if P == 2:
                                rows_block(weights, bias, scratch, r * wp, wp,
                                           of, o0 + r * out_w, out_w, step, KH, KW, R, P)
                            elif P > 2:  # P // 2 pairs (the last ending at the row's end)
                                for k in range(P // 2):
                                    c = min(2 * k * vector, out_w - 2 * vector)
                                    rows_block(weights, bias, scratch, r * wp + c, wp,
                                               of, o0 + r * out_w + c, out_w, vector, KH, KW, R, 2)
                                if P % 2:
                                    c = out_w - vector
                                    rows_block(weights, bias, scratch, r * wp + c, wp,
                                               of, o0 + r * out_w + c, out_w, 0, KH, KW, R, 1)
                            else:
                                for c0 in range(0, out_w, vector):
                                    c = min(c0, out_w - vector)
                                    rows_block(weights, bias, scratch, r * wp + c, wp,
                                               of, o0 + r * out_w + c, out_w, 0, KH, KW, R, P)
                block = claim(claimed)

    return parallel_kernel(rows_kernel)


@njit(inline="always")
def _copy_row(xf, s, scratch, d, width, vector):
    """scratch[d : d + width] = xf[s : s + width], by whole vectors where the row has one."""
    if width >= vector:
        for c0 in range(0, width, vector):
            c = min(c0, width - vector)
            vstore(scratch, d + c, vload(xf, s + c))
    else:
        for c in range(width):
            scratch[d + c] = xf[s + c]


@lru_cache(maxsize=None)
def _stride2(KH, KW, DH, DW):
    """Stride 2 in both directions, on an input of even width.  Splitting the padded planes
    into four stride phases row by row (``_phase_planes``) cost most of the time of these
    memory-bound layers: rows of 56 phase columns are too short for the vector loop (5.0 ms
    against 2.5 ms for the same bytes in one loop, mbv2-dw3x3-s2, one thread).  Here each
    input plane is split into its two *column* phases in one flat loop over the whole plane
    (even width: the parity of the flat index is the column's), into rows of ``W/2`` with
    the padded rows added through the row map; no padded columns.  Tap ``(i, j)`` of output
    ``(oh, ow)`` reads padded row ``2*oh + i*DH`` at input column ``2*ow + j*DW - left``: phase
    ``(j*DW - left) % 2``, offset ``(j*DW - left) // 2`` from ``ow``.  Every output row is one
    vector loop over the columns whose taps all fall inside the input, written straight into
    the output; the few border columns read every tap through both index maps.  Routed 3x3
    only (``path``): at 5x5 and 7x7 the padded layout took 0.4-0.9x its time."""

    @njit(parallel=True, fastmath=True, cache=True)
    def stride2_kernel(x, w, b, out, rows, cols, top, left, groups, blocks, workers):
        n, c_out, out_h, out_w = out.shape
        c_in, h, width = x.shape[1:]
        cg, og = w.shape[1], c_out // groups
        xf, of = x.reshape(-1), out.reshape(-1)
        wq = width // 2
        half = rows.size * wq  # one column phase of one channel: every padded row
        lo = 0  # output columns [lo, hi) read only inside the input
        while lo < out_w and 2 * lo - left < 0:
            lo += 1
        hi = out_w
        while hi > lo and 2 * (hi - 1) + (KW - 1) * DW - left >= width:
            hi -= 1
        tasks = n * groups
        claimed = np.zeros(1, np.int64)  # the next block to claim
        for _ in prange(workers):  # one worker a thread (workers.py)
            split = np.empty(cg * 2 * half, dtype=out.dtype)
            block = claim(claimed)
            while block < blocks:
                for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                    ni, g = task // groups, task % groups
                    for ci in range(cg):
                        src = uint64((ni * c_in + g * cg + ci) * h * width)
                        even = uint64(ci * 2 * half)
                        odd, inner = even + uint64(half), uint64(top * wq)
                        for m in range(h * wq):  # padded rows [top, top + h): the input plane
                            um = uint64(m)
                            split[even + inner + um] = xf[src + um * uint64(2)]
                            split[odd + inner + um] = xf[src + um * uint64(2) + uint64(1)]
                        for r in range(rows.size):  # the padded rows, through the map
                            if top <= r < top + h:
                                continue
                            source = rows[r]
                            for qc in range(wq):
                                for pc in range(2):
                                    split[even + uint64(pc * half + r * wq + qc)] = (
                                        xf[src + uint64(source * width + 2 * qc + pc)]
                                        if source >= 0 else 0)
                    for co in range(g * og, (g + 1) * og):
                        bias = b[co]
                        o0 = uint64((ni * c_out + co) * out_h * out_w)
                        for ci in range(cg):
                            wc, first = w[co, ci], ci == 0
                            for oh in range(out_h):
                                orow = o0 + uint64(oh * out_w)
                                for ow in range(lo, hi):
                                    s = bias if first else of[orow + uint64(ow)]
                                    for i in range(KH):
                                        at = ci * 2 * half + (2 * oh + i * DH) * wq + ow
                                        for j in range(KW):
                                            # loop-invariant: hoisted (an array of these was not)
                                            dj = j * DW - left
                                            tap = (dj % 2) * half + dj // 2
                                            s += wc[i, j] * split[uint64(at + tap)]
                                    of[orow + uint64(ow)] = s
                            plane = (ni * c_in + g * cg + ci) * h * width
                            for oh in range(out_h):  # border columns: every tap through the maps
                                orow = o0 + uint64(oh * out_w)
                                for k in range(lo + out_w - hi):
                                    ow = k if k < lo else hi + k - lo
                                    s = bias if first else of[orow + uint64(ow)]
                                    for i in range(KH):
                                        source = rows[2 * oh + i * DH]
                                        for j in range(KW):
                                            c = cols[2 * ow + j * DW]
                                            if source >= 0 and c >= 0:
                                                at = uint64(plane + source * width + c)
                                                s += wc[i, j] * xf[at]
                                    of[orow + uint64(ow)] = s
                block = claim(claimed)

    return parallel_kernel(stride2_kernel)


@njit(inline="always")
def _phase_planes(xf, start, h, width, cg, rows, cols, left, SH, SW, hq, wq, scratch,
                  zeroed=False):
    """scratch[ci, pr, pc, q, qc] = padded x[ci, q*SH + pr, qc*SW + pc] for the ``cg``
    planes of the flat input ``xf`` that begin at ``start`` (zero past the padded edge).
    ``left`` is the left padding: padded column ``left + c`` is input column ``c``.
    ``zeroed``: every position the maps send to zero already holds zero (a scratch zeroed
    once and reused with the same maps), so those are not written again.  With zero padding
    that skips the border columns' scalar loops entirely: they took 0.2 ms of the 0.35 ms
    this split takes on effnet-dw5x5 (one thread), 4 pixels a row against 28 copied."""
    plane = hq * wq
    qa = min(wq, (left + SW - 1) // SW)  # phase columns [qa, qb) are inside the image
    qb = max(qa, min(wq, (left + width) // SW))  # in every phase
    edges = not zeroed  # do the border columns need writing?
    for c in range(min(qa * SW, cols.size)):
        edges = edges or cols[c] >= 0
    for c in range(qb * SW, cols.size):
        edges = edges or cols[c] >= 0
    for ci in range(cg):
        for pr in range(SH):
            for q in range(hq):
                r = q * SH + pr
                source = rows[r] if r < rows.size else -1
                d0 = uint64(((ci * SH + pr) * SW) * plane + q * wq)
                if source < 0:
                    if not zeroed:
                        for pc in range(SW):
                            for qc in range(wq):
                                scratch[d0 + uint64(pc * plane + qc)] = 0
                    continue
                s = uint64(start + (ci * h + source) * width)
                for pc in range(SW if edges else 0):  # border columns, through the map
                    dp = d0 + uint64(pc * plane)
                    for qc in range(qa):
                        c = qc * SW + pc
                        v = cols[c] if c < cols.size else -1
                        scratch[dp + uint64(qc)] = xf[s + uint64(v)] if v >= 0 else 0
                    for qc in range(qb, wq):
                        c = qc * SW + pc
                        v = cols[c] if c < cols.size else -1
                        scratch[dp + uint64(qc)] = xf[s + uint64(v)] if v >= 0 else 0
                s0, dq = s + uint64(qa * SW - left), d0 + uint64(qa)
                for qc in range(qb - qa):  # the interior: every phase in one pass over the row
                    for pc in range(SW):
                        scratch[dq + uint64(pc * plane + qc)] = xf[s0 + uint64(qc * SW + pc)]


@parallel_kernel
@njit(parallel=True, fastmath=True, cache=True)
def _any_geometry(x, w, b, out, rows, cols, sh, sw, dh, dw, groups, workers):
    """Any geometry, read at run time: one pass over each output row per tap.  Indices are
    unsigned, so Numba emits no wraparound check and the row loop vectorises."""
    n, c_out, out_h, out_w = out.shape
    cg, kh, kw = w.shape[1:]
    og = c_out // groups
    usw = uint64(sw)
    claimed = np.zeros(1, np.int64)  # the next task to claim
    for _ in prange(workers):  # one worker a thread (workers.py)
        task = claim(claimed)
        while task < n * groups:
            ni, g = task // groups, task % groups
            padded = _pad_planes(x, ni, g * cg, cg, rows, cols)
            for co in range(g * og, (g + 1) * og):
                _start_at_bias(out[ni, co], b[co])
                for oh in range(out_h):
                    o = out[ni, co, oh]
                    for ci in range(cg):
                        for i in range(kh):
                            row = padded[ci, oh * sh + i * dh]
                            for j in range(kw):
                                weight, tap = w[co, ci, i, j], row[j * dw:]
                                for t in range(out_w):
                                    o[t] += weight * tap[uint64(t) * usw]
            task = claim(claimed)


@njit(inline="always")
def _start_at_bias(plane, bias):
    for r in range(plane.shape[0]):
        for t in range(plane.shape[1]):
            plane[r, t] = bias


@njit(inline="always")
def _pad_planes(x, ni, c0, cg, rows, cols):
    """x[ni, c0:c0 + cg] padded through the index maps (-1: zero) into a new small buffer."""
    width = x.shape[3]
    padded = np.empty((cg, rows.size, cols.size), dtype=x.dtype)
    left = 0
    while left < cols.size and cols[left] != 0:
        left += 1
    inner = left + width <= cols.size and cols[left + width - 1] == width - 1
    for ci in range(cg):
        for r in range(rows.size):
            src = rows[r]
            dst = padded[ci, r]
            if src < 0:
                dst[:] = 0
                continue
            plane_row = x[ni, c0 + ci, src]
            for c in range(cols.size):
                if inner and left <= c < left + width:
                    continue  # copied below in one piece
                dst[c] = 0 if cols[c] < 0 else plane_row[cols[c]]
            if inner:
                dst[left:left + width] = plane_row
    return padded
