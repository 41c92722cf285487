"""Winograd F(2x2, 3x3) for dense 3x3 stride-1 convolutions.

The algorithm (Lavin & Gray 2016).  Each 2x2 block of outputs ("tile") of one
output channel depends on a 4x4 patch ``d`` of each input channel (tiles step
by 2, patches overlap by 2).  With the 3x3 filter ``g``::

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A           (* elementwise, 4x4)

    B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
          [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
          [0 -1  1  0]         [1/2 -1/2  1/2]
          [0  1  0 -1]         [ 0    0    1 ]

(interpolation points 0, 1, -1 and infinity).  Per output the products drop
from 9 per input channel to 16 / 4 = 4: 2.25x fewer multiplies.  The sum over
input channels of the elementwise products is, for each of the 16 transform
points ``z``, one matrix product ``M[z] (C_out, tiles) = U[z] (C_out, C_in) @
V[z] (C_in, tiles)`` -- BLAS does the bulk of the work.

Stages:

1. ``U = G g G^T`` for every (C_out, C_in) pair, once per call, summed in float64
   and rounded once (16 C_out C_in numbers: cheap next to the rest).
2. Input transform (Numba): ``V[z, c, t] = (B^T d B)[z]``.  For each channel the
   padded input rows are gathered through the padding index maps (every padding
   mode, asymmetric pads, no padded copy of the input), four at a time (two of
   them shared with the previous tile row), combined as whole rows, then the
   columns, storing each tile's 16 values along the contiguous tile axis.
3. 16 BLAS products ``M[z] = U[z] @ V[z]``.
4. Output transform (Numba): ``Y = A^T M A`` plus bias; the last tile row / column
   is cropped when the output size is odd.

Tiling and threads: stages 2-4 run on *units* -- a few samples, or a band of tile
rows of one sample when one sample alone is larger -- whose ``V`` and ``M`` stay
under ``TILE_BYTES``, so memory is flat whatever the batch or image size (one
``V``/``M`` pair per worker, reused).  The units are shared out by
:func:`convkit.kernels.blas.parallel`: one worker per core takes units from a shared
list and runs all three stages of each itself, with BLAS single-threaded meanwhile
(alternating a Numba parallel region and multi-threaded BLAS products instead waits
for a descheduled thread on every product: 5-40x slower on a shared machine; here a
slow core just takes fewer units).  Small problems (``SERIAL_FLOPS``) run on the
calling thread alone.

Why F(2x2) and not F(4x4, 3x3) (4x fewer multiplies) or F(3x3, 3x3): the bigger
transforms have larger entries and amplify float32 rounding.  Measured on random
data with 512 input channels (error / max |out|): F(4x4) 0.8-1.8e-5 depending on
the points (0, +-1, +-2, +-1/2), F(3x3) 4-6e-6, F(2x2) 7e-7 (a direct float32 sum:
3e-7).  The tests allow 2e-5 and this kernel promises 5e-6: only F(2x2) has margin.
"""
from __future__ import annotations

import queue

import numba
import numpy as np
from numba import njit

from . import blas

TILE_BYTES = 4 << 20  # V + M per unit: near L2 size (measured 2-8 MiB: 4 best overall)
MIN_CHANNELS = 16  # below this the transforms cost more than the products save
SERIAL_FLOPS = 20_000_000  # smaller products: one worker, no pool hand-off or BLAS limit
UNITS_PER_WORKER = 4  # several units each: a core slowed by another process takes fewer

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def supports(problem) -> bool:
    """Dense 3x3, stride 1, dilation 1, at least ``MIN_CHANNELS`` in and out."""
    p, spec = problem, problem.spec
    return (spec.groups == 1 and (p.kh, p.kw) == (3, 3) and spec.stride == (1, 1)
            and spec.dilation == (1, 1) and p.c_in >= MIN_CHANNELS
            and p.c_out >= MIN_CHANNELS)


def spread_rows(rows: int, row_bytes: int) -> int:
    """Rows (>= ``rows``) to allocate per transform point so that the 16 planes of a
    ``(16, rows, ...)`` array start in 16 different L1 cache sets.  The transforms touch all
    16 planes at once; planes a multiple of 4 KiB apart (64 x 784 float32 tiles is one)
    would share one 8-way set and evict each other on every store."""
    for extra in range(64):
        stride = (rows + extra) * row_bytes
        if len({(z * stride // 64) % 64 for z in range(16)}) == 16:
            return rows + extra
    return rows + 1


def run(x, w, b, p):
    spec = p.spec
    rows, cols = p.index_maps()
    left = spec.pads[1][0]
    # padded columns inner_lo..inner_hi-1 read input column q - left: copied in one piece
    inner_lo, inner_hi = max(left, 0), max(left, 0, min(cols.size, left + p.w))
    th, tw = (p.out_h + 1) // 2, (p.out_w + 1) // 2
    bias = np.zeros(p.c_out, p.dtype) if b is None else b
    out = np.empty((p.n, p.c_out, p.out_h, p.out_w), dtype=p.dtype)
    item = p.dtype.itemsize
    u = np.empty((16, spread_rows(p.c_out, p.c_in * item), p.c_in), dtype=p.dtype)

    product_flops = 32 * p.n * th * tw * p.c_in * p.c_out
    # small problems: the calling thread alone (a hand-off costs more than it saves)
    flops = product_flops if product_flops >= SERIAL_FLOPS else 0.0
    workers = numba.get_num_threads() if flops else 1
    units = work_units(p.n, th, 16 * (p.c_in + p.c_out) * tw * p.dtype.itemsize,
                       workers, TILE_BYTES)
    sizes = [nt * (tr1 - tr0) * tw for _, nt, tr0, tr1 in units]
    v_size = max(16 * spread_rows(p.c_in, t * item) * t for t in sizes)
    m_size = max(16 * spread_rows(p.c_out, t * item) * t for t in sizes)
    buffers = queue.SimpleQueue()  # one (V, M) pair per worker, reused unit after unit
    for _ in range(min(workers, len(units))):
        buffers.put((np.empty(v_size, p.dtype), np.empty(m_size, p.dtype)))

    def unit(task):
        n0, nt, tr0, tr1 = task
        tiles = nt * (tr1 - tr0) * tw
        v_buf, m_buf = buffers.get()
        try:
            v_rows = spread_rows(p.c_in, tiles * item)
            m_rows = spread_rows(p.c_out, tiles * item)
            v = v_buf[:16 * v_rows * tiles].reshape(16, v_rows, tiles)
            m = m_buf[:16 * m_rows * tiles].reshape(16, m_rows, tiles)
            _input_transform(x, rows, cols, left, inner_lo, inner_hi, n0, nt, tr0, tr1, tw, v)
            for z in range(16):
                np.matmul(u[z, :p.c_out], v[z, :p.c_in], out=m[z, :p.c_out])
            _output_transform(m, bias, n0, nt, tr0, tr1, tw, out)
        finally:  # a failed unit must not leave the next one waiting for buffers
            buffers.put((v_buf, m_buf))

    bounds = [p.c_out * i // workers for i in range(workers + 1)]
    blas.parallel(lambda i: _weight_transform(w, u, bounds[i], bounds[i + 1]), range(workers),
                  flops)
    blas.parallel(unit, units, flops)  # workers take units as they free up
    return out


def work_units(n, tile_rows, row_bytes, workers, budget):
    """(n0, samples, tr0, tr1) pieces of the work: whole samples while one sample's V + M
    fits ``budget`` (and there are at least ``workers`` samples), else bands of tile rows;
    up to ``UNITS_PER_WORKER`` pieces per worker when there is that much to split (measured
    on the deep ResNet case: 1.3-1.5x faster than one piece each), sizes balanced."""
    sample_bytes = tile_rows * row_bytes
    wanted = UNITS_PER_WORKER * workers
    if sample_bytes <= budget and n >= workers:
        count = max(-(-n // max(1, budget // sample_bytes)), min(n, wanted))
        edges = [n * i // count for i in range(count + 1)]
        return [(a, b - a, 0, tile_rows) for a, b in zip(edges, edges[1:]) if b > a]
    per_sample = max(-(-tile_rows // max(1, budget // row_bytes)), -(-wanted // n))
    per_sample = min(per_sample, tile_rows)
    edges = [tile_rows * i // per_sample for i in range(per_sample + 1)]
    return [(s, 1, a, b) for s in range(n) for a, b in zip(edges, edges[1:]) if b > a]


@njit(nogil=True, fastmath=True, cache=True)
def _input_transform(x, rows, cols, left, inner_lo, inner_hi, n0, nt, tr0, tr1, tw, v):
    """v[z, c, t] = (B^T d B)[z] for the 4x4 patch d of tile t = (sample, tile row, tile
    col) of channel c; padded positions past the map's end read as zero."""
    c_in = x.shape[1]
    span = 2 * tw + 2  # padded columns the tiles of one row read
    n_rows = tr1 - tr0
    for task in range(nt * c_in):
        s = task // c_in
        c = task - s * c_in
        plane = x[n0 + s, c]
        head, inner_end = min(inner_lo, span), min(inner_hi, span)
        d = np.empty((4, span), dtype=x.dtype)
        t_ = np.empty((4, span), dtype=x.dtype)
        for tr in range(tr0, tr1):
            # padded row 2 tr + i lives in d[(2 tr + i) % 4]: consecutive tile rows share two
            for i in range(0 if tr == tr0 else 2, 4):
                pr = 2 * tr + i
                r = rows[pr] if pr < rows.size else -1
                row = d[pr % 4]
                if r < 0:
                    row[:] = 0
                    continue
                src = plane[r]
                for q in range(head):
                    k = cols[q]
                    row[q] = src[k] if k >= 0 else 0
                row[inner_lo:inner_end] = src[inner_lo - left:inner_end - left]
                for q in range(inner_end, span):
                    k = cols[q] if q < cols.size else -1
                    row[q] = src[k] if k >= 0 else 0
            first = (2 * tr) % 4
            r0, r1, r2, r3 = d[first], d[first + 1], d[(first + 2) % 4], d[(first + 3) % 4]
            for q in range(span):  # rows: B^T d
                d0, d1, d2, d3 = r0[q], r1[q], r2[q], r3[q]
                t_[0, q] = d0 - d2
                t_[1, q] = d1 + d2
                t_[2, q] = d2 - d1
                t_[3, q] = d1 - d3
            base = (s * n_rows + tr - tr0) * tw
            for a in range(4):  # columns: (B^T d) B
                ta = t_[a]
                v0, v1, v2, v3 = v[4 * a, c], v[4 * a + 1, c], v[4 * a + 2, c], v[4 * a + 3, c]
                for tc in range(tw):
                    e0, e1 = ta[2 * tc], ta[2 * tc + 1]
                    e2, e3 = ta[2 * tc + 2], ta[2 * tc + 3]
                    v0[base + tc] = e0 - e2
                    v1[base + tc] = e1 + e2
                    v2[base + tc] = e2 - e1
                    v3[base + tc] = e1 - e3


@njit(nogil=True, fastmath=True, cache=True)
def _output_transform(m, bias, n0, nt, tr0, tr1, tw, out):
    """out[n0 + s, o, 2 tr + i, 2 tc + j] = (A^T M A)[i, j] + bias[o], cropped to the output."""
    c_out, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    n_rows = tr1 - tr0
    full = out_w // 2  # tile columns with both output columns inside
    for task in range(nt * c_out):
        s = task // c_out
        o = task - s * c_out
        bo = bias[o]
        u = np.empty((2, 4, tw), dtype=m.dtype)
        for tr in range(tr0, tr1):
            base = (s * n_rows + tr - tr0) * tw
            for b_ in range(4):  # rows: A^T M
                m0 = m[b_, o, base:base + tw]
                m1 = m[4 + b_, o, base:base + tw]
                m2 = m[8 + b_, o, base:base + tw]
                m3 = m[12 + b_, o, base:base + tw]
                for tc in range(tw):
                    u[0, b_, tc] = m0[tc] + m1[tc] + m2[tc]
                    u[1, b_, tc] = m1[tc] - m2[tc] - m3[tc]
            for i in range(2):  # columns: (A^T M) A
                oh = 2 * tr + i
                if oh >= out_h:
                    break
                row = out[n0 + s, o, oh]
                u0, u1, u2, u3 = u[i, 0], u[i, 1], u[i, 2], u[i, 3]
                for tc in range(full):
                    row[2 * tc] = u0[tc] + u1[tc] + u2[tc] + bo
                    row[2 * tc + 1] = u1[tc] - u2[tc] - u3[tc] + bo
                if full < tw:
                    row[2 * full] = u0[full] + u1[full] + u2[full] + bo


@njit(nogil=True, fastmath=True, cache=True)
def _weight_transform(w, u, o0, o1):
    """u[4a + b, o, c] = (G w[o, c] G^T)[a, b] for o0 <= o < o1, sums in float64.  Scalars
    only (no scratch array), so LLVM keeps everything in registers."""
    c_in = w.shape[1]
    for o in range(o0, o1):
        for c in range(c_in):
            g = w[o, c]
            # rows of G g: t[a][j], a = 0..3, j = 0..2
            t00, t01, t02 = np.float64(g[0, 0]), np.float64(g[0, 1]), np.float64(g[0, 2])
            t30, t31, t32 = np.float64(g[2, 0]), np.float64(g[2, 1]), np.float64(g[2, 2])
            m0, m1, m2 = np.float64(g[1, 0]), np.float64(g[1, 1]), np.float64(g[1, 2])
            t10, t11, t12 = 0.5 * (t00 + m0 + t30), 0.5 * (t01 + m1 + t31), 0.5 * (t02 + m2 + t32)
            t20, t21, t22 = 0.5 * (t00 - m0 + t30), 0.5 * (t01 - m1 + t31), 0.5 * (t02 - m2 + t32)
            # columns: (G g) G^T
            u[0, o, c], u[3, o, c] = t00, t02
            u[1, o, c], u[2, o, c] = 0.5 * (t00 + t01 + t02), 0.5 * (t00 - t01 + t02)
            u[4, o, c], u[7, o, c] = t10, t12
            u[5, o, c], u[6, o, c] = 0.5 * (t10 + t11 + t12), 0.5 * (t10 - t11 + t12)
            u[8, o, c], u[11, o, c] = t20, t22
            u[9, o, c], u[10, o, c] = 0.5 * (t20 + t21 + t22), 0.5 * (t20 - t21 + t22)
            u[12, o, c], u[15, o, c] = t30, t32
            u[13, o, c], u[14, o, c] = 0.5 * (t30 + t31 + t32), 0.5 * (t30 - t31 + t32)
