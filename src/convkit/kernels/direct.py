"""Direct convolution for depthwise and small-group convolutions (Numba).

Depthwise layers are memory bound: the best kernel reads each input plane and
writes each output plane once.  Each parallel task owns one group of one sample:

1. it copies the group's input planes into a small padded scratch buffer through
   the padding's row and column index maps -- every padding mode, read in place
   from the caller's array, and the buffer (one group's planes) stays in cache;
2. for each output channel of the group and each output row, it sums all taps
   of all the group's channels into a register and stores each output once.

The tap geometry ``(kH, kW, stride_w, dilation_h, dilation_w)`` is frozen into
the compiled kernel (a closure over constants), so LLVM unrolls the taps and
vectorises along the row; every index is provably non-negative, so Numba emits
no wraparound checks (that alone is a 6x difference).  Geometries outside
``SPECIALISED`` share one kernel whose geometry is read at run time: exact and
parallel, a few times slower, compiled once (so a test suite that draws many
geometries compiles two kernels, not hundreds).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange, uint64

from ..padding import index_map

# (kH, kW, stride_w, dilation_h, dilation_w) with a kernel of their own.
SPECIALISED = frozenset((k, k, s, d, d) for k in (3, 5, 7) for s in (1, 2) for d in (1, 2)) | {
    (1, 1, 1, 1, 1)}


def supports(problem) -> bool:
    """Grouped convs: with at most 4 input channels per group (depthwise with any depth
    multiplier, ResNeXt-style) in any geometry; with up to 32 per group (ResNeXt deep
    stages, ShuffleNet's grouped 1x1) at stride 1 in a specialised geometry, where the
    flat-plane loop beats many tiny BLAS products.  Dense convs, even with few input
    channels (an RGB stem), have too few (sample, group) tasks to share out: GEMM."""
    p, spec = problem, problem.spec
    if spec.groups == 1:
        return False
    geometry = (p.kh, p.kw, spec.stride[1], *spec.dilation)
    return p.group_in <= 4 or (p.group_in <= 32 and spec.stride == (1, 1)
                               and geometry in SPECIALISED)


def run(x, w, b, p):
    spec = p.spec
    (top, bottom), (left, right) = spec.pads
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    rows = index_map(p.h, top, bottom, spec.padding_mode)
    cols = index_map(p.w, left, right, spec.padding_mode)
    out = np.empty((p.n, p.c_out, p.out_h, p.out_w), dtype=p.dtype)
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    geometry = (p.kh, p.kw, sw, dh, dw)
    if geometry in SPECIALISED:
        _specialised(*geometry)(x, w, bias, out, rows, cols, sh, spec.groups)
    else:
        _any_geometry(x, w, bias, out, rows, cols, sh, sw, dh, dw, spec.groups)
    return out


@lru_cache(maxsize=None)
def _specialised(KH, KW, SW, DH, DW):
    """The kernel for one tap geometry, frozen as constants: taps unrolled, loops vectorised.

    At stride 1 each output plane is computed over the *padded* width as one flat
    vector: every tap is then a constant offset into the flattened padded plane, so
    the loop runs over ``H_out * W_padded`` elements (long vectors even for 14x14
    planes) and the few columns past ``W_out`` are dropped when the plane is copied
    out.  Other strides go row by row."""

    # Only ints are closed over: Numba keys its disk cache on the closure's values, and a
    # jitted helper captured here would hash differently in every process (no cache hit).
    @njit(parallel=True, fastmath=True, cache=True)
    def specialised_kernel(x, w, b, out, rows, cols, sh, groups):
        n, c_out, out_h, out_w = out.shape
        cg, og = w.shape[1], c_out // groups
        width = cols.size
        span = out_h * width - (KW - 1) * DW  # flat path: wide positions with taps inside
        uwidth = uint64(width)
        for task in prange(n * groups):
            ni, g = task // groups, task % groups
            padded = _pad_planes(x, ni, g * cg, cg, rows, cols)
            if SW == 1 and sh == 1:  # whole planes as flat vectors over the padded width
                flat = padded.reshape(cg, -1)
                wide = np.empty(out_h * width, dtype=out.dtype)
                for co in range(g * og, (g + 1) * og):
                    for t in range(span):
                        wide[t] = b[co]  # a pass of its own: a select in the tap loop stops LLVM
                    for ci in range(cg):
                        plane, wc = flat[ci], w[co, ci]
                        for t in range(span):
                            s = wide[t]
                            ut = uint64(t)
                            for i in range(KH):
                                for j in range(KW):
                                    s += wc[i, j] * plane[ut + uint64(i * DH) * uwidth
                                                          + uint64(j * DW)]
                            wide[t] = s
                    for oh in range(out_h):
                        out[ni, co, oh, :] = wide[oh * width:oh * width + out_w]
            else:  # row by row
                for co in range(g * og, (g + 1) * og):
                    _start_at_bias(out[ni, co], b[co])
                    for ci in range(cg):
                        plane, wc = padded[ci], w[co, ci]
                        for oh in range(out_h):
                            o = out[ni, co, oh]
                            r0 = oh * sh
                            for t in range(out_w):
                                s = o[t]
                                for i in range(KH):
                                    row = plane[r0 + i * DH]
                                    for j in range(KW):
                                        s += wc[i, j] * row[t * SW + j * DW]
                                o[t] = s

    return specialised_kernel


@njit(parallel=True, fastmath=True, cache=True)
def _any_geometry(x, w, b, out, rows, cols, sh, sw, dh, dw, groups):
    """Any geometry, read at run time: one pass over each output row per tap.  Indices are
    unsigned, so Numba emits no wraparound check and the row loop vectorises."""
    n, c_out, out_h, out_w = out.shape
    cg, kh, kw = w.shape[1:]
    og = c_out // groups
    usw = uint64(sw)
    for task in prange(n * groups):
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
