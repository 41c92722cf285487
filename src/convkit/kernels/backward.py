"""Kernels for the gradients of a convolution.  They take the forward problem's shapes.

Routes, first match wins (the same for both gradients where it applies):

``1x1, no padding``  both gradients are batched matrix products (BLAS), the input
    gradient placed on the stride grid.
``input_gradient``  d(out)/d(input) applied to grad_output -- a transposed convolution.
    Stride 1 (dense or grouped): a forward correlation of grad_output with the flipped
    kernels, on the forward table's kernels (Winograd, GEMM or direct, whichever the table
    picks; measured faster than the col2im scatter below; on grouped.py's ``outer`` layout
    the kernels are flipped and packed for it in one pass); zero padding within the
    kernel's extent gives the input gradient directly, any other padding is folded back
    through the index maps.  Small groups at a stride: where zero padding keeps ``W_out ==
    W / stride`` (MobileNet's strided depthwise), gathered per input stride phase in flat
    loops (``_input_grad_phases``); otherwise a direct Numba scatter per (sample, group)
    into a phase-major padded scratch, folded once.  Dense at a stride:
    per sample and band of output rows, ``cols = W[g]^T @ grad_out[g]`` (C/g*kH*kW,
    pixels), then a Numba col2im scatter-adds each column into the input *through the
    padding index maps*, so the fold back from padded to real coordinates (dropping zero
    padding, adding a reflected or wrapped border onto the pixel it copies) is fused, and
    a stride needs no zero-stuffed input.
``weight_and_bias_gradients`` correlation of the input with grad_output.
    Grouped at stride 1 with 5-32 channels per group: ``grouped_grad`` (where the group's
    channels fill their vectors, the input staged channels-last and one outer product per
    output pixel into register-held sums; else the samples laid side by side, so each tap
    is one dot product over the whole batch, 4x4 channel blocks; the bias gradient summed
    on the way).
    Other grouped at stride 1, and small groups at any stride: long dot products over flat
    padded planes split into stride phases, register-blocked (4x4 channels, or 4 taps);
    with zero padding that keeps the width (depthwise 'same'), on the output gradient in
    place and the input split into stride phases of the same pitch, the few wrapped reads
    taken back (``_weight_grad_in_place``).
    Dense 3x3 at stride 1 (where the forward takes Winograd): F(2x2, 3x3), one product
    per transform point summed over the tiles (``winograd.weight_gradient``; 0.6-0.8x
    the time of the im2col product on ResNet's 3x3 stages).  Other dense: the forward
    im2col (read through the padding maps) and ``grad_out[g] @ cols[g]^T``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..spec import ConvSpec, PaddingMode
from . import Problem, blas, choose, gemm, grouped, grouped_grad, run, winograd
from .direct import _pad_planes
from .forksafe import parallel_kernel
from .grouped import wrapped_columns
from .workers import claim, parallel_blocks, threads


def _geometry(p):
    """(row map, column map, sh, sw, dh, dw) of the forward problem."""
    return (*p.index_maps(), *p.spec.stride, *p.spec.dilation)


def _direct(p) -> bool:
    return p.spec.groups > 1 and p.group_in <= 4


def input_gradient(grad_out, w, p, out=None):
    """grad of sum(out * grad_out) with respect to the input, shape (N, C_in, H, W), into
    ``out`` if given (C-contiguous, that shape, ``p.dtype``)."""
    if p.n == 0:  # the kernels split work by samples: none to split
        return _grad_array(p, out, zeroed=True)
    if _pointwise(p):
        return _pointwise_input_gradient(grad_out, w, p, out)
    if p.spec.stride == (1, 1):
        return _correlation_input_gradient(grad_out, w, p, out)
    geometry = _geometry(p)
    if _direct(p):  # sets every input pixel: no zero fill
        grad = _grad_array(p, out, zeroed=False)
        (top, _), (left, _) = p.spec.pads
        if _in_place(p):
            _input_grad_phases(grad_out, w, grad, top, left, *p.spec.stride, *p.spec.dilation,
                               p.spec.groups, parallel_blocks(p.n * p.spec.groups), threads())
        else:
            _input_grad_direct(grad_out, w, grad, *geometry, p.spec.groups, top, left, threads())
        return grad
    grad = _grad_array(p, out, zeroed=True)
    g, og, k = p.spec.groups, p.group_out, p.group_in * p.kh * p.kw
    wt = np.ascontiguousarray(w.reshape(g, og, k).transpose(0, 2, 1))  # (g, k, og)
    go = grad_out.reshape(p.n, g, og, p.out_h * p.out_w)
    band = gemm.band_rows(p)  # bands of output rows, as the forward's columns

    def sample(n):  # scatters into grad[n] only
        pool = np.empty(g * k * band * p.out_w, dtype=p.dtype)
        for oh0 in range(0, p.out_h, band):
            oh1 = min(p.out_h, oh0 + band)
            pixels = slice(oh0 * p.out_w, oh1 * p.out_w)
            buf = pool[:g * k * (oh1 - oh0) * p.out_w].reshape(g, k, -1)
            for gi in range(g):
                np.matmul(wt[gi], go[n, gi, :, pixels], out=buf[gi])
            _col2im(buf.reshape(p.c_in * p.kh * p.kw, -1), grad[n], p.kh, p.kw, oh0, oh1,
                    p.out_w, *geometry)
    blas.parallel(sample, range(p.n), gemm.flops(p))
    return grad


def _grad_array(p, out, zeroed):
    """The input gradient's array: the caller's ``out`` or a new one, all zeros if
    ``zeroed`` (for routes that add into it or leave pixels untouched)."""
    if out is None:
        return (np.zeros if zeroed else np.empty)((p.n, p.c_in, p.h, p.w), dtype=p.dtype)
    if zeroed:
        out.fill(0)
    return out


def _pointwise(p) -> bool:
    """1x1 kernels without padding: both gradients are batched matrix products."""
    return p.kh == p.kw == 1 and p.spec.pads == ((0, 0), (0, 0))


def _pointwise_input_gradient(grad_out, w, p, out=None):
    """grad[n, g] = W[g]^T (C/g, O/g) @ grad_out[n, g] (O/g, pixels), placed on the stride
    grid (a 1x1 kernel at stride s reads only every s-th pixel)."""
    g, og, cg = p.spec.groups, p.group_out, p.group_in
    wt = np.ascontiguousarray(w.reshape(g, og, cg).transpose(0, 2, 1))
    go = grad_out.reshape(p.n, g, og, p.out_h * p.out_w)
    (sh, sw) = p.spec.stride
    if (sh, sw) == (1, 1):
        grad = _grad_array(p, out, zeroed=False)
        flat = grad.reshape(p.n, g, cg, p.h * p.w)

        def piece(task):  # a slice of one sample's pixels (gemm.pixel_tasks)
            n, (lo, hi) = task
            np.matmul(wt, go[n, :, :, lo:hi], out=flat[n, :, :, lo:hi])
        blas.parallel(piece, gemm.pixel_tasks(p), gemm.flops(p))
        return grad
    grad = _grad_array(p, out, zeroed=True)

    def sample(n):
        grad[n, :, ::sh, ::sw] = np.matmul(wt, go[n]).reshape(p.c_in, p.out_h, p.out_w)
    blas.parallel(sample, range(p.n), gemm.flops(p))
    return grad


def _pointwise_weight_gradient(grad_out, x, p):
    """W[g] gradient = sum over samples of grad_out[n, g] (O/g, pixels) @ x[n, g]^T."""
    g, og, cg = p.spec.groups, p.group_out, p.group_in
    (sh, sw) = p.spec.stride
    xs = x if (sh, sw) == (1, 1) else x[:, :, ::sh, ::sw]
    xs = xs.reshape(p.n, g, cg, p.out_h * p.out_w)
    go = grad_out.reshape(p.n, g, og, p.out_h * p.out_w)

    tasks = gemm.pixel_tasks(p)

    def add(i, acc):  # the products of a slice of one sample's pixels
        n, (lo, hi) = tasks[i]
        acc += np.matmul(go[n, :, :, lo:hi], xs[n, :, :, lo:hi].transpose(0, 2, 1))
    grad = blas.accumulate(add, len(tasks), (g, og, cg), p.dtype, gemm.flops(p))
    return grad.reshape(p.c_out, cg, 1, 1)


def _correlation_input_gradient(grad_out, w, p, out=None):
    """At stride 1 the input gradient is a forward correlation of grad_output with each
    kernel flipped and its in/out channels swapped within the group, so it runs on the
    forward kernels.  Zero padding of at most the dilated kernel extent ``e`` becomes the
    correlation's padding ``e - pad``, and the result is the input gradient itself;
    otherwise the correlation is taken in padded coordinates (padding ``e`` all round)
    and folded back onto the input through the padding maps."""
    g = p.spec.groups
    (dh, dw) = p.spec.dilation
    extent = ((p.kh - 1) * dh, (p.kw - 1) * dw)
    inside = p.spec.padding_mode is PaddingMode.ZEROS and all(
        lo <= e and hi <= e for (lo, hi), e in zip(p.spec.pads, extent))
    pads = tuple((e - lo, e - hi) if inside else (e, e)
                 for (lo, hi), e in zip(p.spec.pads, extent))
    spec = ConvSpec((1, 1), pads, p.spec.dilation, g, PaddingMode.ZEROS)
    problem = Problem.of(grad_out.shape, (p.c_in, p.group_out, p.kh, p.kw), spec, p.dtype)
    if choose(problem).name == "grouped" and grouped.layout(problem) == "outer":
        packed = grouped.pack_outer(w, g, True)  # flipped and packed in one pass

        def correlate(out=None):
            return grouped.run_outer(grad_out, packed, None, problem, out)
    else:
        flipped = flipped_kernels(w, g)

        def correlate(out=None):
            return run(grad_out, flipped, None, problem, out=out)
    if inside:
        return correlate(out)  # (N, C_in, H, W)
    correlation = correlate()
    rows, cols = _geometry(p)[:2]
    grad = _grad_array(p, out, zeroed=False)
    _fold_planes(correlation, grad, rows, cols, p.spec.pads[0][0], p.spec.pads[1][0],
                 threads())
    return grad


@njit(cache=True)
def flipped_kernels(w, groups):
    """The input gradient's correlation weights: ``out[g*cg + c, o] = w[g*og + o, c]`` turned
    by 180 degrees (``(C_in, C_out/groups, kH, kW)``).  One pass writing in order, each
    kernel's taps read backwards: 0.6-0.7x the time of NumPy's copy of the flipped,
    transposed view (0.42 against 0.63 ms for 256 x 256 x 3 x 3)."""
    c_out, cg, kh, kw = w.shape
    og = c_out // groups
    taps = uint64(kh * kw)
    out = np.empty((groups * cg, og, kh, kw), w.dtype)
    src, dst = w.reshape(-1), out.reshape(-1)
    d = uint64(0)
    for g in range(groups):
        for c in range(cg):
            last = uint64((g * og * cg + c) * kh * kw) + taps - uint64(1)  # output channel 0's
            for o in range(og):
                s = last + uint64(o * cg) * taps
                for k in range(taps):
                    dst[d + k] = src[s - k]
                d += taps
    return out


@parallel_kernel
@njit(parallel=True, cache=True)
def _fold_planes(padded, grad, rows, cols, top, left, workers):
    """grad[n, c] = padded[n, c] folded through the padding maps (one task per plane)."""
    n, c = grad.shape[:2]
    claimed = np.zeros(1, np.int64)  # the next task to claim
    for _ in prange(workers):  # one worker a thread (workers.py)
        task = claim(claimed)
        while task < n * c:
            ni, ci = task // c, task % c
            plane = padded[ni, ci]
            _fold(plane.reshape(plane.shape[0], 1, plane.shape[1]), grad[ni, ci], rows, cols, 1,
                  top, left)
            task = claim(claimed)


def weight_and_bias_gradients(grad_out, x, p):
    """(weight gradient, bias gradient), the weight's ``(C_out, C_in/groups, kH, kW)``.
    The grouped and small-group routes sum the bias gradient while each output-gradient
    plane is in cache (for a depthwise layer that pass over grad_output costs as much as
    the weight gradient's own reads); the others leave it to one NumPy reduction."""
    if p.n == 0:
        return (np.zeros((p.c_out, p.group_in, p.kh, p.kw), dtype=p.dtype),
                np.zeros(p.c_out, dtype=p.dtype))
    if _pointwise(p):
        return _pointwise_weight_gradient(grad_out, x, p), _bias_gradient(grad_out)
    if grouped_grad.supports(p):
        return grouped_grad.weight_and_bias_gradients(grad_out, x, p)
    if p.spec.groups > 1 and (p.spec.stride == (1, 1) or _direct(p)):
        grad = np.zeros((p.c_out, p.group_in, p.kh, p.kw), dtype=p.dtype)
        bias = np.zeros(p.c_out)  # float64 sums
        if _in_place(p):
            (top, _), (left, _) = p.spec.pads
            _weight_grad_in_place(grad_out, x, grad, bias, top, left, *p.spec.stride,
                                  *p.spec.dilation, p.spec.groups, threads())
        else:
            _weight_grad_flat(grad_out, x, grad, bias, *_geometry(p), p.spec.groups, threads())
        return grad, bias.astype(p.dtype)
    if winograd.supports(p):
        return winograd.weight_gradient(grad_out, x, p), _bias_gradient(grad_out)
    g, og, k = p.spec.groups, p.group_out, p.group_in * p.kh * p.kw
    go = grad_out.reshape(p.n, g, og, p.out_h * p.out_w)

    def add(n, acc):  # the forward's column bands
        for pixels, columns in gemm.sample_bands(x, p, n):
            per_group = columns.reshape(g, k, -1)
            for gi in range(g):
                acc[gi] += go[n, gi, :, pixels] @ per_group[gi].T
    grad = blas.accumulate(add, p.n, (g, og, k), p.dtype, gemm.flops(p))
    return grad.reshape(p.c_out, p.group_in, p.kh, p.kw), _bias_gradient(grad_out)


def weight_gradient(grad_out, x, p):
    """The weight gradient alone (see :func:`weight_and_bias_gradients`)."""
    return weight_and_bias_gradients(grad_out, x, p)[0]


def _bias_gradient(grad_out):
    return grad_out.sum(axis=(0, 2, 3))


@njit(nogil=True, cache=True)
def _col2im(buf, grad, kh, kw, oh0, oh1, out_w, rows, cols, sh, sw, dh, dw):
    """grad[c, rows[oh*sh + i*dh], cols[ow*sw + j*dw]] += buf[(c, i, j), (oh - oh0, ow)]
    for the band of output rows oh0 <= oh < oh1."""
    c_in = grad.shape[0]
    taps = kh * kw
    for c in range(c_in):
        for i in range(kh):
            for j in range(kw):
                src = buf[c * taps + i * kw + j]
                for oh in range(oh0, oh1):
                    r = rows[oh * sh + i * dh]
                    if r < 0:
                        continue
                    for ow in range(out_w):
                        q = cols[ow * sw + j * dw]
                        if q >= 0:
                            grad[c, r, q] += src[(oh - oh0) * out_w + ow]


@parallel_kernel
@njit(parallel=True, fastmath=True, cache=True)
def _input_grad_direct(grad_out, w, grad, rows, cols, sh, sw, dh, dw, groups, top, left, workers):
    """Per (sample, group): scatter every output gradient times every tap into a padded
    scratch plane, then fold it onto the input through the padding maps once.

    The scratch stores padded column ``c`` at ``[c % stride, c // stride]``: a tap's
    columns ``t * stride + j * dilation`` are then contiguous in ``t``, so the scatter
    vectorises at any stride (unsigned indices: no wraparound checks)."""
    n, c_out, out_h, out_w = grad_out.shape
    cg, kh, kw = w.shape[1:]
    og = c_out // groups
    phase_width = (cols.size + sw - 1) // sw
    claimed = np.zeros(1, np.int64)  # the next task to claim
    for _ in prange(workers):  # one worker a thread (workers.py)
        task = claim(claimed)
        while task < n * groups:
            ni, g = task // groups, task % groups
            scratch = np.zeros((cg, rows.size, sw, phase_width), dtype=grad.dtype)
            for co in range(g * og, (g + 1) * og):
                for ci in range(cg):
                    for i in range(kh):
                        for oh in range(out_h):
                            src = grad_out[ni, co, oh]
                            row = scratch[ci, oh * sh + i * dh]
                            for j in range(kw):
                                weight = w[co, ci, i, j]
                                tap = row[(j * dw) % sw, (j * dw) // sw:]
                                for t in range(out_w):
                                    tap[uint64(t)] += weight * src[t]
            for ci in range(cg):
                _fold(scratch[ci], grad[ni, g * cg + ci], rows, cols, sw, top, left)
            task = claim(claimed)


@parallel_kernel
@njit(parallel=True, fastmath=True, cache=True)
def _input_grad_phases(grad_out, w, grad, top, left, sh, sw, dh, dw, groups, blocks, workers):
    """The small-group input gradient at a stride, gathered instead of scattered, where
    zero padding keeps ``W_out == W / sw`` (``_in_place``).  Input pixel ``(r, c)`` in
    stride phase ``(r % sh, c % sw)`` gets tap ``(i, j)`` exactly when ``ri = i*dh - top``
    and ``ci = j*dw - left`` are congruent to that phase, from output pixel ``(r // sh -
    ri // sh, c // sw - ci // sw)``.  A phase plane has the output gradient's pitch, so
    each of its taps is one flat vector loop reading a copy of the output-gradient plane
    between zero rows at a constant offset; the reads that wrap onto a neighbouring row
    instead of a column outside the plane are subtracted again, and the phase planes are
    interleaved into the input's rows at the end (both column phases in one loop at
    stride 2).  Each phase's taps go four to a pass (padded with zero weights), so a phase
    plane is read and written once per four taps.  mbv2-dw3x3-s2 (8x96x112x112), one
    thread: 11.6 -> 8.0-8.9 ms against the scatter, of which ~5 ms is writing the 38.5 MB
    input gradient (fresh pages from the OS on every call at that size, as for any
    output past glibc's mmap threshold)."""
    n, c_out, out_h, wq = grad_out.shape
    cg, kh, kw = w.shape[1:]
    h, width = grad.shape[2:]
    hq = h // sh
    og = c_out // groups
    size = hq * wq  # positions of one phase plane
    taps = kh * kw
    # output column = phase column - shift; flat: output position = phase position - back
    phase, shift, back = _tap_phases(kh, kw, top, left, sh, sw, dh, dw, wq)
    lead = max(0, back.max())
    length = lead + max(out_h * wq, size - back.min())  # every read below it
    # each phase's taps in fours (padded with weight-0 copies of its first): one pass each
    count = np.zeros(sh * sw, np.int64)
    for k in range(taps):
        count[phase[k]] += 1
    fours = np.zeros((sh * sw, (count.max() + 3) // 4 * 4), np.int64)
    filled = np.zeros(sh * sw, np.int64)  # ends equal to count
    for k in range(taps):
        fours[phase[k], filled[phase[k]]] = k
        filled[phase[k]] += 1
    for f in range(sh * sw):
        for m in range(count[f], fours.shape[1]):
            fours[f, m] = fours[f, 0]
    tasks = n * groups
    zero = np.zeros(1, dtype=grad.dtype)[0]  # (a literal 0 would make the sums float64)
    claimed = np.zeros(1, np.int64)  # the next block to claim
    for _ in prange(workers):  # one worker a thread (workers.py)
        staged = np.zeros((og, length), dtype=grad.dtype)  # zero outside the planes' rows
        planes = np.empty((sh * sw, size), dtype=grad.dtype)
        block = claim(claimed)
        while block < blocks:
            for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                ni, g = task // groups, task % groups
                for o in range(og):
                    src, dst = grad_out[ni, g * og + o].reshape(-1), staged[o]
                    for t in range(out_h * wq):
                        dst[uint64(lead + t)] = src[uint64(t)]
                for ci in range(cg):
                    planes[:] = 0
                    for o in range(og):
                        weights, row = w[g * og + o, ci].reshape(-1), staged[o]
                        for f in range(sh * sw):
                            plane = planes[f]
                            for m in range(0, count[f], 4):
                                k0, k1, k2, k3 = fours[f, m], fours[f, m + 1], fours[f, m + 2], \
                                    fours[f, m + 3]
                                w0 = weights[k0]
                                w1 = weights[k1] if m + 1 < count[f] else zero
                                w2 = weights[k2] if m + 2 < count[f] else zero
                                w3 = weights[k3] if m + 3 < count[f] else zero
                                a0, a1 = uint64(lead - back[k0]), uint64(lead - back[k1])
                                a2, a3 = uint64(lead - back[k2]), uint64(lead - back[k3])
                                for t in range(size):
                                    ut = uint64(t)
                                    plane[ut] += (w0 * row[a0 + ut] + w1 * row[a1 + ut]
                                                  + w2 * row[a2 + ut] + w3 * row[a3 + ut])
                        for k in range(taps):
                            plane, weight = planes[phase[k]], weights[k]
                            at = uint64(lead - back[k])
                            c0, c1 = wrapped_columns(wq, -shift[k])
                            for q in range(hq):
                                for qc in range(c0, c1):  # wrapped reads: products taken back
                                    t = uint64(q * wq + qc)
                                    plane[t] -= weight * row[at + t]
                    out = grad[ni, g * cg + ci].reshape(-1)
                    for r in range(h):  # interleave the phases into the input's rows
                        a, d = r % sh, uint64(r * width)
                        s = uint64((r // sh) * wq)
                        if sw == 2:
                            even, odd = planes[a * 2], planes[a * 2 + 1]
                            for qc in range(wq):
                                out[d + uint64(2 * qc)] = even[s + uint64(qc)]
                                out[d + uint64(2 * qc + 1)] = odd[s + uint64(qc)]
                        else:
                            for b in range(sw):
                                source = planes[a * sw + b]
                                for qc in range(wq):
                                    out[d + uint64(qc * sw + b)] = source[s + uint64(qc)]
            block = claim(claimed)


@njit(inline="always")
def _tap_phases(kh, kw, top, left, sh, sw, dh, dw, wq):
    """Per tap ``k = i * kw + j`` on input stride phases of width ``wq``: the phase
    ``(ri % sh) * sw + ci % sw`` it meets (``ri = i*dh - top``, ``ci = j*dw - left``), its
    column shift ``ci // sw`` and its flat shift ``(ri // sh) * wq + ci // sw`` between
    an output position and the phase position it pairs with."""
    taps = kh * kw
    phase, shift, flat = (np.empty(taps, np.int64), np.empty(taps, np.int64),
                          np.empty(taps, np.int64))
    for k in range(taps):
        ri, ci = (k // kw) * dh - top, (k % kw) * dw - left
        phase[k] = (ri % sh) * sw + ci % sw
        shift[k] = ci // sw
        flat[k] = (ri // sh) * wq + ci // sw
    return phase, shift, flat


@njit(inline="always")
def _fold(scratch, grad, rows, cols, sw, top, left):
    """grad[rows[r], cols[c]] = the sum of padded[r, c] over the positions whose maps point
    there (``grad`` may start uninitialised); ``padded[r, c]`` lives at
    ``scratch[r, c % sw, c // sw]``.  Padded rows ``top .. top + H - 1`` and columns
    ``left .. left + W - 1`` are the input's own (``map[c] = c - lo`` in every mode): they
    *set* each pixel once, vectorised, and only then do the border rows and columns go
    through the maps and add onto the pixels they copy."""
    height = grad.shape[0]
    for r in range(top, top + height):
        _set_interior(scratch[r], grad[r - top], sw, left)
        _add_border_columns(scratch[r], grad[r - top], cols, sw, left)
    for r in range(rows.size):
        if (r < top or r >= top + height) and rows[r] >= 0:
            _add_interior(scratch[r], grad[rows[r]], sw, left)
            _add_border_columns(scratch[r], grad[rows[r]], cols, sw, left)


@njit(inline="always")
def _add_border_columns(source, target, cols, sw, left):
    for c in range(left):
        if cols[c] >= 0:
            target[cols[c]] += source[c % sw, c // sw]
    for c in range(left + target.size, cols.size):
        if cols[c] >= 0:
            target[cols[c]] += source[c % sw, c // sw]


@njit(inline="always")
def _set_interior(source, target, sw, left):
    """target[k] = padded[left + k]: one copy at stride 1, an interleaved pair at stride 2
    (both vectorised), a strided loop per phase otherwise."""
    width = target.size
    if sw == 1:
        target[:] = source[0, left:left + width]
    elif sw == 2:
        even, odd = source[left % 2, left // 2:], source[(left + 1) % 2, (left + 1) // 2:]
        for m in range(width // 2):
            target[2 * m] = even[m]
            target[2 * m + 1] = odd[m]
        if width % 2:
            target[width - 1] = even[width // 2]
    else:
        for phase in range(sw):
            first = (left - phase + sw - 1) // sw  # first q with q * sw + phase >= left
            start = first * sw + phase - left
            if start < width:
                src, dst = source[phase, first:], target[start:]
                for q in range((width - start + sw - 1) // sw):
                    dst[uint64(q) * uint64(sw)] = src[q]


@njit(inline="always")
def _add_interior(source, target, sw, left):
    """target[k] += padded[left + k] (a border row folding onto the row it copies)."""
    width = target.size
    for k in range(width):
        c = left + k
        target[k] += source[c % sw, c // sw]


@parallel_kernel
@njit(parallel=True, fastmath=True, cache=True)
def _weight_grad_flat(grad_out, x, grad, bias, rows, cols, sh, sw, dh, dw, groups, workers):
    """Per group: the padded input planes split into stride phases (padded pixel ``(r, c)``
    at ``[r % sh, c % sw, r // sh, c // sw]``; at stride 1 the plane itself), each output
    gradient plane laid out on the phase width (zeros past W_out), so every tap's gradient
    is one long dot product with one flattened phase plane -- vectorised, unsigned
    indices, at any stride.  Output and input channels in blocks of 4 share their loads
    (:func:`_block_4x4`); the rest, depthwise included, four taps at a time.  ``bias``
    (float64) gets the bias gradient on the way."""
    n, c_out, out_h, out_w = grad_out.shape
    cg, kh, kw = grad.shape[1:]
    og = c_out // groups
    ph, pw = (rows.size + sh - 1) // sh, (cols.size + sw - 1) // sw
    span = (out_h - 1) * pw + out_w  # past it the output gradient is zero
    taps = kh * kw
    rho = np.empty(taps, np.int64)  # tap k reads phase plane (rho[k], phi[k]) from offsets[k]
    phi = np.empty(taps, np.int64)
    offsets = np.empty(taps, np.uint64)
    for k in range(taps):
        i, j = k // kw, k % kw
        rho[k], phi[k] = (i * dh) % sh, (j * dw) % sw
        offsets[k] = uint64((i * dh) // sh) * uint64(pw) + uint64((j * dw) // sw)
    zero = np.zeros(1, dtype=grad_out.dtype)[0]  # sums in the arrays' dtype: float32 stays
    claimed = np.zeros(1, np.int64)  # the next g to claim
    for _ in prange(workers):  # one worker a thread (workers.py)
        g = claim(claimed)
        while g < groups:
            acc = np.zeros((og, cg, taps))
            wide = np.zeros((og, out_h * pw), dtype=grad_out.dtype)
            for ni in range(n):
                planes = _phase_planes(x, ni, g * cg, cg, rows, cols, sh, sw, ph, pw)
                for oc in range(og):
                    for oh in range(out_h):
                        wide[oc, oh * pw:oh * pw + out_w] = grad_out[ni, g * og + oc, oh]
                    row, total = wide[oc], 0.0
                    for t in range(span):  # the bias gradient, while the plane is in cache
                        total += row[t]
                    bias[g * og + oc] += total
                ob_end, cb_end = og - og % 4, cg - cg % 4
                for ob in range(0, ob_end, 4):
                    for cb in range(0, cb_end, 4):
                        for k in range(taps):
                            _block_4x4(wide, planes, rho[k], phi[k], acc, ob, cb, k, offsets[k],
                                       span, zero)
                for oc in range(og):
                    src = wide[oc]
                    for ci in range(cb_end if oc < ob_end else 0, cg):  # outside the 4x4 blocks
                        plane, sums = planes[ci], acc[oc, ci]
                        for k in range(0, taps - taps % 4, 4):
                            _taps_4(src, plane, sums, k, rho, phi, offsets, span, zero)
                        for k in range(taps - taps % 4, taps):
                            row = plane[rho[k], phi[k], offsets[k]:]
                            s = zero
                            for t in range(span):
                                s += src[t] * row[uint64(t)]
                            sums[k] += s
            grad[g * og:(g + 1) * og] = acc.reshape(og, cg, kh, kw)
            g = claim(claimed)


def _in_place(p) -> bool:
    """Zero padding that keeps the width on the stride grid (``W_out == W / stride``, e.g.
    MobileNet's and EfficientNet's depthwise layers at stride 1 and 2), the input's height
    and width multiples of the stride: ``_weight_grad_in_place`` reads grad_output in place
    and ``_input_grad_phases`` (at a stride) gathers per input stride phase."""
    (sh, sw), zeros = p.spec.stride, p.spec.padding_mode is PaddingMode.ZEROS
    return (p.h % sh == 0 and p.w % sw == 0 and p.out_w == p.w // sw
            and (zeros or p.spec.pads == ((0, 0), (0, 0))))


@parallel_kernel
@njit(parallel=True, fastmath=True, cache=True)
def _weight_grad_in_place(grad_out, x, grad, bias, top, left, sh, sw, dh, dw, groups, workers):
    """``_weight_grad_flat`` for zero padding with ``W_out == W / sw``: the output gradient's
    own planes have the pitch of the input's *stride phases*, so they are read in place (no
    copy onto a padded width).  Each input plane is split into its ``sh * sw`` phases,
    input pixel ``(r, c)`` at ``lead + (r // sh) * wq + c // sw`` of phase ``(r % sh, c %
    sw)`` (``wq = W / sw``; at stride 1 one flat copy), between zero rows.  Tap ``(i, j)``
    then reads, for output position ``t = oh * wq + ow``, phase ``((i*dh - top) % sh, (j*dw -
    left) % sw)`` at ``t`` plus a constant offset: one flat dot product per tap.  Where the
    tap's phase column ``ow + (j*dw - left) // sw`` falls outside ``[0, wq)`` that read wraps
    onto the neighbouring row instead of the zero padding, and those few products are
    subtracted again afterwards.  Rows outside the input read the zero rows.

    Weight and bias gradients against the padded route, two threads: mbv2-dw3x3
    (8x144x56x56) 4.2 -> 2.4 ms, mbv2-dw3x3-s2 (8x96x112x112) 5.4-5.9 -> 3.0-3.5 ms (the
    padded copies of both planes, in short row loops, cost more than the products; the
    phase split is most of what is left at stride 2).  (Subtracting a product cancels it
    exactly unless it overflowed: the kernels assume finite values anyway, ``fastmath``.)"""
    n, c_out, out_h, wq = grad_out.shape
    cg, kh, kw = grad.shape[1:]
    h, width = x.shape[2:]
    hq = h // sh
    og = c_out // groups
    size = out_h * wq
    taps = kh * kw
    # input phase column = output column + shift; flat: the same with relative
    phase, shift, relative = _tap_phases(kh, kw, top, left, sh, sw, dh, dw, wq)
    lead = max(0, -relative.min())
    plane = max(lead + hq * wq, lead + size + relative.max())  # every read below it
    offsets = (relative + lead).astype(np.uint64)
    column = np.zeros(taps, np.int64)  # _taps_4's second phase index: always 0 here
    zero = np.zeros(1, dtype=grad_out.dtype)[0]
    claimed = np.zeros(1, np.int64)  # the next g to claim
    for _ in prange(workers):  # one worker a thread (workers.py)
        g = claim(claimed)
        while g < groups:
            acc = np.zeros((og, cg, taps))
            scratch = np.zeros((cg, sh * sw, 1, plane), dtype=x.dtype)  # zero rows: never written
            for ni in range(n):
                for ci in range(cg):
                    src = x[ni, g * cg + ci].reshape(-1)
                    if sh == 1 and sw == 1:  # the plane itself, one flat loop
                        dst = scratch[ci, 0, 0]
                        for t in range(h * width):
                            dst[uint64(lead + t)] = src[uint64(t)]
                        continue
                    flat = scratch[ci].reshape(-1)
                    for r in range(h):  # input row r: row r // sh of phases (r % sh, b)
                        d = uint64((r % sh) * sw * plane + lead + (r // sh) * wq)
                        s = uint64(r * width)
                        if sw == 2:  # both column phases in one loop of constant strides
                            for c in range(wq):
                                flat[d + uint64(c)] = src[s + uint64(2 * c)]
                                flat[d + uint64(plane + c)] = src[s + uint64(2 * c + 1)]
                        else:
                            for b in range(sw):
                                for c in range(wq):
                                    flat[d + uint64(b * plane + c)] = src[s + uint64(c * sw + b)]
                for oc in range(og):
                    src = grad_out[ni, g * og + oc].reshape(-1)
                    total = 0.0
                    for t in range(size):  # the bias gradient, while the plane is in cache
                        total += src[uint64(t)]
                    bias[g * og + oc] += total
                    for ci in range(cg):
                        planes, sums = scratch[ci], acc[oc, ci]
                        for k in range(0, taps - taps % 4, 4):
                            _taps_4(src, planes, sums, k, phase, column, offsets, size, zero)
                        for k in range(taps):
                            row = planes[phase[k], 0, offsets[k]:]
                            s = zero
                            for t in range(size if k >= taps - taps % 4 else 0):
                                s += src[uint64(t)] * row[uint64(t)]
                            c0, c1 = wrapped_columns(wq, shift[k])
                            for oh in range(out_h):
                                for ow in range(c0, c1):  # the wrapped reads: products taken back
                                    t = uint64(oh * wq + ow)
                                    s -= src[t] * row[t]
                            sums[k] += s
            grad[g * og:(g + 1) * og] = acc.reshape(og, cg, kh, kw)
            g = claim(claimed)


@njit(inline="always")
def _phase_planes(x, ni, c0, cg, rows, cols, sh, sw, ph, pw):
    """x[ni, c0:c0 + cg] padded through the index maps and split into stride phases:
    ``(cg, sh, sw, ph * pw)``, padded pixel ``(r, c)`` at ``[r % sh, c % sw,
    (r // sh) * pw + c // sw]``, zeros past the padded plane."""
    if sh == 1 and sw == 1:
        return _pad_planes(x, ni, c0, cg, rows, cols).reshape(cg, 1, 1, ph * pw)
    planes = np.zeros((cg, sh, sw, ph * pw), dtype=x.dtype)
    for ci in range(cg):
        for r in range(rows.size):
            if rows[r] < 0:
                continue
            source = x[ni, c0 + ci, rows[r]]
            for a in range(sw):
                target = planes[ci, r % sh, a, (r // sh) * pw:]
                for q in range((cols.size - a + sw - 1) // sw):
                    c = cols[q * sw + a]
                    if c >= 0:
                        target[q] = source[c]
    return planes


@njit(inline="always", fastmath=True)
def _taps_4(src, plane, sums, k, rho, phi, offsets, span, zero):
    """sums[k:k+4] += the dot products of ``src`` with the phase rows of taps k..k+3 (taps
    numbered row-major): one load of ``src`` feeds four multiply-adds."""
    x0 = plane[rho[k], phi[k], offsets[k]:]
    x1 = plane[rho[k + 1], phi[k + 1], offsets[k + 1]:]
    x2 = plane[rho[k + 2], phi[k + 2], offsets[k + 2]:]
    x3 = plane[rho[k + 3], phi[k + 3], offsets[k + 3]:]
    s0 = s1 = s2 = s3 = zero
    for t in range(span):
        ut = uint64(t)
        a = src[ut]
        s0 += a * x0[ut]
        s1 += a * x1[ut]
        s2 += a * x2[ut]
        s3 += a * x3[ut]
    sums[k] += s0
    sums[k + 1] += s1
    sums[k + 2] += s2
    sums[k + 3] += s3


@njit(inline="always", fastmath=True)
def _block_4x4(wide, planes, r, f, acc, ob, cb, k, offset, span, zero):
    """acc[ob:ob+4, cb:cb+4, k] += the 16 dot products of 4 output-gradient rows with 4
    input rows (tap k's phase, shifted by its ``offset``)."""
    grouped_grad.dots_4x4(wide[ob], wide[ob + 1], wide[ob + 2], wide[ob + 3],
                          planes[cb, r, f, offset:], planes[cb + 1, r, f, offset:],
                          planes[cb + 2, r, f, offset:], planes[cb + 3, r, f, offset:],
                          acc, ob, cb, k, span, zero)
