"""Winograd F(2x2, 3x3) and, in float64, F(4x4, 3x3) for dense 3x3 stride-1 convolutions.

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
V[z] (C_in, tiles)`` -- BLAS does the bulk of the work.  F(4x4, 3x3) is the same
with 4x4 tiles, 6x6 patches and 36 points (matrices beside its transforms): 2.25
products per output, 4x fewer than direct.

Stages:

1. ``U = G g G^T`` for every (C_out, C_in) pair, once per call, summed in float64
   and rounded once (16 or 36 C_out C_in numbers: cheap next to the rest).
2. Input transform (Numba): ``V[z, c, t] = (B^T d B)[z]``.  For each channel the
   padded input rows are gathered through the padding index maps (every padding
   mode, asymmetric pads, no padded copy of the input), into a ring of rows (those
   shared with the previous tile row are kept), combined as whole rows, then the
   columns, storing each tile's values along the contiguous tile axis.
3. One BLAS product per point, ``M[z] = U[z] @ V[z]``.
4. Output transform (Numba): ``Y = A^T M A`` plus bias; the last tile row / column
   is cropped when the tiles overrun the output.

Schedules.  *By units* (images with many tiles): stages 2-4 run on units -- a few
samples, or a band of tile rows of one sample when one sample alone is larger --
whose ``V`` and ``M`` stay under ``TILE_BYTES``, so memory is flat whatever the batch
or image size (one ``V``/``M`` pair per worker, reused) and stays in cache between the
stages.  The units are shared out by :func:`convkit.kernels.blas.parallel`: one worker
per core takes units from a shared list and runs all three stages of each itself, with
BLAS single-threaded meanwhile (alternating a Numba parallel region and multi-threaded
BLAS products instead waits for a descheduled thread on every product: 5-40x slower on
a shared machine; here a slow core just takes fewer units).  *By point* (deep layers on
small planes, where ``U`` -- 4 MB for 256x256 channels in float32, 19 MB with F(4x4) in
float64 -- would be read from memory once per unit): each stage over the whole batch,
the transforms in channel slices and one product per point, so U, V and M each pass
through memory once and the products are as wide as the batch (:func:`by_point`
decides).  Small problems (``SERIAL_FLOPS``) run on the calling thread alone.

Why F(2x2) in float32 and not F(4x4, 3x3) or F(3x3, 3x3): the bigger transforms have
larger entries and amplify float32 rounding.  Measured on random data with 512 input
channels (error / max |out|): F(4x4) 0.8-1.8e-5 depending on the points (0, +-1, +-2,
+-1/2), F(3x3) 4-6e-6, F(2x2) 7e-7 (a direct float32 sum: 3e-7).  The tests allow 2e-5
and this kernel promises 5e-6: only F(2x2) has margin.  Float64 has 29 more bits, so
F(4x4) (error ~5e-15 of max |out|) is used where its tiles fit the plane
(:func:`variant`): a float64 BLAS product runs at half the float32 rate (measured
1.9-2.3x slower here), so float64 needs the fewer products most.
"""
from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numba
import numpy as np
from numba import njit

from . import blas

TILE_BYTES = 4 << 20  # V + M per unit: near L2 size (measured 2-8 MiB: 4 best overall)
MIN_CHANNELS = 16  # below this the transforms cost more than the products save
SERIAL_FLOPS = 20_000_000  # smaller products: one worker, no pool hand-off or BLAS limit
UNITS_PER_WORKER = 4  # several units each: a core slowed by another process takes fewer
BATCH_BYTES = 32 << 20  # V + M of the whole batch, for the stage-by-stage schedule
F4_MAX_PRODUCTS = 0.6  # float64 takes F(4x4) when it needs at most this share of F(2x2)'s
F4_MAX_U_BYTES = 32 << 20  # ... and its transformed weights stay under this

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def supports(problem) -> bool:
    """Dense 3x3, stride 1, dilation 1, at least ``MIN_CHANNELS`` in and out."""
    p, spec = problem, problem.spec
    return (spec.groups == 1 and (p.kh, p.kw) == (3, 3) and spec.stride == (1, 1)
            and spec.dilation == (1, 1) and p.c_in >= MIN_CHANNELS
            and p.c_out >= MIN_CHANNELS)


def spread_rows(rows: int, row_bytes: int, points: int = 16) -> int:
    """Rows (>= ``rows``) to allocate per transform point so that the planes of a
    ``(points, rows, ...)`` array start in different L1 cache sets (all 64 when there are
    more points).  The transforms touch all the planes at once; planes a multiple of 4 KiB
    apart (64 x 784 float32 tiles is one) would share one 8-way set and evict each other
    on every store."""
    wanted = min(points, 64)
    for extra in range(64):
        stride = (rows + extra) * row_bytes
        if len({(z * stride // 64) % 64 for z in range(points)}) >= wanted:
            return rows + extra
    return rows + 1


class Variant(NamedTuple):
    """One Winograd F(m x m, 3x3): output tiles of ``m`` x ``m``, ``(m + 2)**2`` points."""

    m: int
    input_transform: Callable
    output_transform: Callable
    weight_transform: Callable

    @property
    def points(self) -> int:
        return (self.m + 2) ** 2


def variant(p) -> Variant:
    """F(2x2) for float32: F(4x4) would amplify its rounding past the promised 5e-6.
    For float64 (29 more bits absorb that) F(4x4) where it needs at most 0.6x the
    products of F(2x2): 36 per 4x4 tile against 16 per 2x2 tile is 0.5625x when the tiles
    fit the plane (28x28, 56x56), but 14x14 is covered by 16x16 (0.73x), and then the
    heavier transforms eat the gain (measured on ResNet's 256-channel 14x14 stage: F(4x4)
    0.85-0.95x the speed of F(2x2); on the 64-channel 56x56 stage 1.1-1.35x faster).
    Its transformed weights are 4x the weights: above ``F4_MAX_U_BYTES`` (512 x 512
    channels would take 75 MB) F(2x2)'s 16/9 keep the workspace smaller."""
    if p.dtype == np.float64 and 36 * p.c_in * p.c_out * 8 <= F4_MAX_U_BYTES:
        f4 = 36 * -(-p.out_h // 4) * -(-p.out_w // 4)
        f2 = 16 * -(-p.out_h // 2) * -(-p.out_w // 2)
        if f4 <= F4_MAX_PRODUCTS * f2:
            return F4
    return F2


def run(x, w, b, p):
    f = variant(p)
    points, item = f.points, p.dtype.itemsize
    th, tw = -(-p.out_h // f.m), -(-p.out_w // f.m)
    call = _Call.of(p, f, x, np.zeros(p.c_out, p.dtype) if b is None else b,
                    np.empty((p.n, p.c_out, p.out_h, p.out_w), dtype=p.dtype))
    u = np.empty((points, spread_rows(p.c_out, p.c_in * item, points), p.c_in), dtype=p.dtype)

    product_flops = 2 * points * p.n * th * tw * p.c_in * p.c_out
    # small problems: the calling thread alone (a hand-off costs more than it saves)
    flops = product_flops if product_flops >= SERIAL_FLOPS else 0.0
    workers = numba.get_num_threads() if flops else 1
    units = work_units(p.n, th, points * (p.c_in + p.c_out) * tw * item, workers, TILE_BYTES)
    weights = [("weights", p.c_out * i // workers, p.c_out * (i + 1) // workers)
               for i in range(workers)]
    batch_bytes = points * (p.c_in + p.c_out) * p.n * th * tw * item
    if by_point(batch_bytes, len(units), u[:, :p.c_out].nbytes):
        _by_point(call, w, u, p, th, weights, workers, flops)
    else:
        blas.parallel(lambda task: f.weight_transform(w, u, *task[1:]), weights, flops)
        _by_units(call, u, p, units, workers, flops)
    return call.out


def by_point(batch_bytes, units, u_bytes) -> bool:
    """The stage-by-stage schedule when the batch's V + M fit ``BATCH_BYTES`` and streaming
    them through memory twice costs less than reading U once per unit (deep layers on
    small planes: measured 1.2x faster in float32 and 1.6-2x in float64 on ResNet's
    256-channel 14x14 stage, where the products also get 8x wider)."""
    return batch_bytes <= BATCH_BYTES and units * u_bytes > 2 * batch_bytes


@dataclass(frozen=True)
class _Call:
    """The fixed arguments of one call's transforms."""

    f: Variant
    x: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    left: int
    inner_lo: int
    inner_hi: int
    tw: int
    bias: Optional[np.ndarray]
    out: Optional[np.ndarray]

    @classmethod
    def of(cls, p, f: Variant, x, bias=None, out=None) -> "_Call":
        rows, cols = p.index_maps()
        left = p.spec.pads[1][0]
        # padded columns inner_lo..inner_hi-1 read input column q - left: copied in one piece
        inner_lo, inner_hi = max(left, 0), max(left, 0, min(cols.size, left + p.w))
        return cls(f, x, rows, cols, left, inner_lo, inner_hi, -(-p.out_w // f.m), bias, out)

    def transform_input(self, v, n0, nt, tr0, tr1, c0, c1):
        self.f.input_transform(self.x, self.rows, self.cols, self.left, self.inner_lo,
                               self.inner_hi, n0, nt, tr0, tr1, self.tw, c0, c1, v)

    def transform_output(self, m, n0, nt, tr0, tr1, o0, o1):
        self.f.output_transform(m, self.bias, n0, nt, tr0, tr1, self.tw, o0, o1, self.out)


def _by_units(call, u, p, units, workers, flops):
    """Each worker takes a unit (samples or tile rows) and runs all three stages on it in
    its own cache-sized V and M."""
    points, item, tw = call.f.points, p.dtype.itemsize, call.tw
    sizes = [nt * (tr1 - tr0) * tw for _, nt, tr0, tr1 in units]
    v_size = max(points * spread_rows(p.c_in, t * item, points) * t for t in sizes)
    m_size = max(points * spread_rows(p.c_out, t * item, points) * t for t in sizes)
    buffers = queue.SimpleQueue()  # one (V, M) pair per worker, reused unit after unit
    for _ in range(min(workers, len(units))):
        buffers.put((np.empty(v_size, p.dtype), np.empty(m_size, p.dtype)))

    def unit(task):
        n0, nt, tr0, tr1 = task
        tiles = nt * (tr1 - tr0) * tw
        v_buf, m_buf = buffers.get()
        try:
            v_rows = spread_rows(p.c_in, tiles * item, points)
            m_rows = spread_rows(p.c_out, tiles * item, points)
            v = v_buf[:points * v_rows * tiles].reshape(points, v_rows, tiles)
            m = m_buf[:points * m_rows * tiles].reshape(points, m_rows, tiles)
            call.transform_input(v, n0, nt, tr0, tr1, 0, p.c_in)
            for z in range(points):
                np.matmul(u[z, :p.c_out], v[z, :p.c_in], out=m[z, :p.c_out])
            call.transform_output(m, n0, nt, tr0, tr1, 0, p.c_out)
        finally:  # a failed unit must not leave the next one waiting for buffers
            buffers.put((v_buf, m_buf))

    blas.parallel(unit, units, flops)  # workers take units as they free up


def _by_point(call, w, u, p, th, weights, workers, flops):
    """Stage by stage over the whole batch: the transforms in channel slices, then one
    product per point with every tile of the batch.  Each of U, V and M then passes
    through memory once, where units would read all of U once per unit."""
    points, item = call.f.points, p.dtype.itemsize
    tiles = p.n * th * call.tw
    v = np.empty((points, spread_rows(p.c_in, tiles * item, points), tiles), p.dtype)
    m = np.empty((points, spread_rows(p.c_out, tiles * item, points), tiles), p.dtype)
    pieces = UNITS_PER_WORKER * workers
    inputs = [("input", p.c_in * i // pieces, p.c_in * (i + 1) // pieces)
              for i in range(pieces)]

    def transform(task):
        kind, lo, hi = task
        if kind == "weights":
            call.f.weight_transform(w, u, lo, hi)
        else:
            call.transform_input(v, 0, p.n, 0, th, lo, hi)
    blas.parallel(transform, weights + inputs, flops)
    blas.parallel(lambda z: np.matmul(u[z, :p.c_out], v[z, :p.c_in], out=m[z, :p.c_out]),
                  range(points), flops)
    blas.parallel(lambda i: call.transform_output(m, 0, p.n, 0, th, p.c_out * i // pieces,
                                                  p.c_out * (i + 1) // pieces),
                  range(pieces), flops)


def weight_gradient(grad_out, x, p):
    """The weight gradient ``(C_out, C_in, 3, 3)`` of a problem this kernel supports, by
    F(2x2, 3x3) in both dtypes (2.25x fewer multiplies than the im2col product).

    With ``Y = A^T (U * V) A`` per tile, ``dL/dU = sum over tiles (A dY A^T) * V``: for
    each point, ``dU[z] (C_out, C_in) = D[z] (C_out, tiles) @ V[z]^T (tiles, C_in)``,
    where ``V`` is the forward's input transform and ``D`` the transform of each 2x2
    block of ``grad_out`` (zero past the output, so cropped tiles add nothing); then
    ``dW = G^T dU G``.  The products are long dot products over the tiles.  Schedules
    as the forward: by point over the whole batch for deep layers on small planes, else
    by units, each worker summing its units' products into its own ``dU`` (the workers'
    sums added in a fixed order: the same bits every run)."""
    f = F2
    points, item = f.points, p.dtype.itemsize
    th, tw = -(-p.out_h // 2), -(-p.out_w // 2)
    call = _Call.of(p, f, x)
    product_flops = 2 * points * p.n * th * tw * p.c_in * p.c_out
    flops = product_flops if product_flops >= SERIAL_FLOPS else 0.0
    workers = numba.get_num_threads() if flops else 1
    units = work_units(p.n, th, points * (p.c_in + p.c_out) * tw * item, workers, TILE_BYTES)
    batch_bytes = points * (p.c_in + p.c_out) * p.n * th * tw * item
    if by_point(batch_bytes, len(units), points * p.c_out * p.c_in * item):
        tiles = p.n * th * tw
        v = np.empty((points, spread_rows(p.c_in, tiles * item, points), tiles), p.dtype)
        d = np.empty((points, spread_rows(p.c_out, tiles * item, points), tiles), p.dtype)
        pieces = UNITS_PER_WORKER * workers

        def transform(task):
            kind, i = task
            if kind == "input":
                call.transform_input(v, 0, p.n, 0, th, p.c_in * i // pieces,
                                     p.c_in * (i + 1) // pieces)
            else:
                _grad_output_transform(grad_out, 0, p.n, 0, th, tw, p.c_out * i // pieces,
                                       p.c_out * (i + 1) // pieces, d)
        blas.parallel(transform, [(kind, i) for kind in ("input", "grad") for i in range(pieces)],
                      flops)
        du = np.empty((points, p.c_out, p.c_in), p.dtype)
        blas.parallel(lambda z: np.matmul(d[z, :p.c_out], v[z, :p.c_in].T, out=du[z]),
                      range(points), flops)
    else:
        sizes = [nt * (tr1 - tr0) * tw for _, nt, tr0, tr1 in units]
        v_size = max(points * spread_rows(p.c_in, t * item, points) * t for t in sizes)
        d_size = max(points * spread_rows(p.c_out, t * item, points) * t for t in sizes)
        buffers = queue.SimpleQueue()  # one (V, D, product) triple per worker
        for _ in range(min(workers, len(units))):
            buffers.put((np.empty(v_size, p.dtype), np.empty(d_size, p.dtype),
                         np.empty((p.c_out, p.c_in), p.dtype)))

        def add(i, acc):
            n0, nt, tr0, tr1 = units[i]
            tiles = nt * (tr1 - tr0) * tw
            v_buf, d_buf, product = buffers.get()
            try:
                v_rows = spread_rows(p.c_in, tiles * item, points)
                d_rows = spread_rows(p.c_out, tiles * item, points)
                v = v_buf[:points * v_rows * tiles].reshape(points, v_rows, tiles)
                d = d_buf[:points * d_rows * tiles].reshape(points, d_rows, tiles)
                call.transform_input(v, n0, nt, tr0, tr1, 0, p.c_in)
                _grad_output_transform(grad_out, n0, nt, tr0, tr1, tw, 0, p.c_out, d)
                for z in range(points):
                    np.matmul(d[z, :p.c_out], v[z, :p.c_in].T, out=product)
                    acc[z] += product
            finally:
                buffers.put((v_buf, d_buf, product))
        du = blas.accumulate(add, len(units), (points, p.c_out, p.c_in), p.dtype, flops)
    grad = np.empty((p.c_out, p.c_in, 3, 3), p.dtype)
    _weight_gradient_transform(du, grad)
    return grad


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


@njit(inline="always")
def _gather_row(plane, rows, cols, pr, left, head, inner_lo, inner_end, row):
    """row[q] = padded ``plane`` at (pr, q) for q < row.size, read through the padding index
    maps (zero where a map says -1 or has ended); columns ``inner_lo:inner_end`` in one
    copy."""
    r = rows[pr] if pr < rows.size else -1
    if r < 0:
        row[:] = 0
        return
    src = plane[r]
    for q in range(head):
        k = cols[q]
        row[q] = src[k] if k >= 0 else 0
    row[inner_lo:inner_end] = src[inner_lo - left:inner_end - left]
    for q in range(inner_end, row.size):
        k = cols[q] if q < cols.size else -1
        row[q] = src[k] if k >= 0 else 0


@njit(inline="always")
def _ring_rows(plane, rows, cols, left, head, inner_lo, inner_end, m, tr, first, d):
    """Padded rows ``m tr .. m tr + m + 1`` (tile row ``tr``'s patches) into the ring ``d``:
    row ``r`` lives in ``d[r % len(d)]``, so the two rows shared with the previous tile row
    are already there unless this is the ``first``."""
    for i in range(0 if first else 2, m + 2):
        r = m * tr + i
        _gather_row(plane, rows, cols, r, left, head, inner_lo, inner_end, d[r % d.shape[0]])


@njit(nogil=True, fastmath=True, cache=True)
def _input_transform(x, rows, cols, left, inner_lo, inner_hi, n0, nt, tr0, tr1, tw, c0, c1,
                     v):
    """v[z, c, t] = (B^T d B)[z] for the 4x4 patch d of tile t = (sample, tile row, tile
    col) of channel c; padded positions past the map's end read as zero."""
    span = 2 * tw + 2  # padded columns the tiles of one row read
    n_rows = tr1 - tr0
    head, inner_end = min(inner_lo, span), min(inner_hi, span)
    d = np.empty((4, span), dtype=x.dtype)
    t_ = np.empty((4, span), dtype=x.dtype)
    for task in range(nt * (c1 - c0)):
        s = task // (c1 - c0)
        c = c0 + task - s * (c1 - c0)
        plane = x[n0 + s, c]
        for tr in range(tr0, tr1):
            _ring_rows(plane, rows, cols, left, head, inner_lo, inner_end, 2, tr, tr == tr0, d)
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
def _output_transform(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out):
    """out[n0 + s, o, 2 tr + i, 2 tc + j] = (A^T M A)[i, j] + bias[o], cropped to the output.
    The even and odd output columns are computed as two contiguous rows and interleaved by
    a plain copy (the interleaved arithmetic stayed scalar: 8% slower overall on ResNet's
    64-channel 3x3 stage)."""
    out_h, out_w = out.shape[2], out.shape[3]
    n_rows = tr1 - tr0
    full = out_w // 2  # tile columns with both output columns inside
    u = np.empty((2, 4, tw), dtype=m.dtype)
    even = np.empty(tw, dtype=m.dtype)
    odd = np.empty(tw, dtype=m.dtype)
    for task in range(nt * (o1 - o0)):
        s = task // (o1 - o0)
        o = o0 + task - s * (o1 - o0)
        bo = bias[o]
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
                for tc in range(tw):
                    even[tc] = u0[tc] + u1[tc] + u2[tc] + bo
                    odd[tc] = u1[tc] - u2[tc] - u3[tc] + bo
                for tc in range(full):
                    row[2 * tc] = even[tc]
                    row[2 * tc + 1] = odd[tc]
                if full < tw:
                    row[2 * full] = even[full]


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



@njit(inline="always")
def _a4(r0, r1):
    """(r0, r1) A^T: one row of A dY A^T from a row of A dY."""
    return r0, r0 + r1, r0 - r1, -r1


@njit(inline="always")
def _put4(m, z, o, t, values):
    """m[z + k, o, t] = values[k], k = 0..3."""
    m[z, o, t], m[z + 1, o, t] = values[0], values[1]
    m[z + 2, o, t], m[z + 3, o, t] = values[2], values[3]


@njit(inline="always")
def _grad_tile(d, o, t, y00, y01, y10, y11):
    """d[4a + b, o, t] = (A dY A^T)[a, b] for the 2x2 block dY = [[y00, y01], [y10, y11]]."""
    _put4(d, 0, o, t, _a4(y00, y01))
    _put4(d, 4, o, t, _a4(y00 + y10, y01 + y11))
    _put4(d, 8, o, t, _a4(y00 - y10, y01 - y11))
    _put4(d, 12, o, t, _a4(-y10, -y11))


@njit(nogil=True, fastmath=True, cache=True)
def _grad_output_transform(go, n0, nt, tr0, tr1, tw, o0, o1, d):
    """d[z, o, t] = (A dY A^T)[z] for the 2x2 block dY of ``go`` at tile t (tiles numbered
    as :func:`_input_transform`'s), zero past the output: the transpose of the output
    transform."""
    out_h, out_w = go.shape[2], go.shape[3]
    n_rows = tr1 - tr0
    full = out_w // 2  # tiles with both columns inside
    zero = np.zeros(out_w, dtype=go.dtype)
    for task in range(nt * (o1 - o0)):
        s = task // (o1 - o0)
        o = o0 + task - s * (o1 - o0)
        for tr in range(tr0, tr1):
            y0 = go[n0 + s, o, 2 * tr]
            y1 = go[n0 + s, o, 2 * tr + 1] if 2 * tr + 1 < out_h else zero
            base = (s * n_rows + tr - tr0) * tw
            for tc in range(full):
                _grad_tile(d, o, base + tc, y0[2 * tc], y0[2 * tc + 1], y1[2 * tc],
                           y1[2 * tc + 1])
            if full < tw:
                _grad_tile(d, o, base + full, y0[2 * full], zero[0], y1[2 * full], zero[0])


@njit(inline="always")
def _gt3(d0, d1, d2, d3):
    """G^T (d0, d1, d2, d3)."""
    return d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3


@njit(nogil=True, fastmath=True, cache=True)
def _weight_gradient_transform(du, grad):
    """grad[o, c] = G^T dU G, dU[a, b] = du[4a + b, o, c]."""
    for o in range(grad.shape[0]):
        for c in range(grad.shape[1]):
            # columns b of G^T dU, three rows each
            t0 = _gt3(du[0, o, c], du[4, o, c], du[8, o, c], du[12, o, c])
            t1 = _gt3(du[1, o, c], du[5, o, c], du[9, o, c], du[13, o, c])
            t2 = _gt3(du[2, o, c], du[6, o, c], du[10, o, c], du[14, o, c])
            t3 = _gt3(du[3, o, c], du[7, o, c], du[11, o, c], du[15, o, c])
            for i in range(3):
                grad[o, c, i, 0], grad[o, c, i, 1], grad[o, c, i, 2] = _gt3(
                    t0[i], t1[i], t2[i], t3[i])

# F(4x4, 3x3), float64 only: interpolation points 0, 1, -1, 2, -2 and infinity.
#   B^T = [4  0 -5  0  1  0]    G = [ 1/4     0     0 ]    A^T = [1  1  1  1  1  0]
#         [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0  1 -1  2 -2  0]
#         [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0  1  1  4  4  0]
#         [0 -2 -1  2  1  0]        [1/24  1/12   1/6 ]          [0  1 -1  8 -8  1]
#         [0  2 -1 -2  1  0]        [1/24 -1/12   1/6 ]
#         [0  4  0 -5  0  1]        [  0     0     1  ]
# Tiles step by 4 and 6x6 patches overlap by 2; point z = 6 a + b is (row a, column b).

@njit(nogil=True, fastmath=True, cache=True)
def _input_transform_4(x, rows, cols, left, inner_lo, inner_hi, n0, nt, tr0, tr1, tw, c0,
                       c1, v):
    """v[z, c, t] = (B^T d B)[z] for the 6x6 patch d of tile t (F(4x4)); as
    :func:`_input_transform`, the padded rows in a ring of 8 (two shared between tile
    rows)."""
    span = 4 * tw + 2
    n_rows = tr1 - tr0
    head, inner_end = min(inner_lo, span), min(inner_hi, span)
    d = np.empty((8, span), dtype=x.dtype)
    t_ = np.empty((6, span), dtype=x.dtype)
    for task in range(nt * (c1 - c0)):
        s = task // (c1 - c0)
        c = c0 + task - s * (c1 - c0)
        plane = x[n0 + s, c]
        for tr in range(tr0, tr1):
            _ring_rows(plane, rows, cols, left, head, inner_lo, inner_end, 4, tr, tr == tr0, d)
            first = 4 * tr
            r0, r1, r2 = d[first % 8], d[(first + 1) % 8], d[(first + 2) % 8]
            r3, r4, r5 = d[(first + 3) % 8], d[(first + 4) % 8], d[(first + 5) % 8]
            for q in range(span):  # rows: B^T d
                t_[0, q], t_[1, q], t_[2, q], t_[3, q], t_[4, q], t_[5, q] = _bt6(
                    r0[q], r1[q], r2[q], r3[q], r4[q], r5[q])
            base = (s * n_rows + tr - tr0) * tw
            for a in range(6):  # columns: (B^T d) B
                ta = t_[a]
                v0, v1, v2 = v[6 * a, c], v[6 * a + 1, c], v[6 * a + 2, c]
                v3, v4, v5 = v[6 * a + 3, c], v[6 * a + 4, c], v[6 * a + 5, c]
                for tc in range(tw):
                    q = 4 * tc
                    k = base + tc
                    v0[k], v1[k], v2[k], v3[k], v4[k], v5[k] = _bt6(
                        ta[q], ta[q + 1], ta[q + 2], ta[q + 3], ta[q + 4], ta[q + 5])


@njit(inline="always", fastmath=True)
def _bt6(d0, d1, d2, d3, d4, d5):
    """B^T (d0, ..., d5) for F(4x4, 3x3)."""
    return (4.0 * d0 - 5.0 * d2 + d4, d3 + d4 - 4.0 * (d1 + d2), 4.0 * (d1 - d2) + d4 - d3,
            2.0 * (d3 - d1) + d4 - d2, 2.0 * (d1 - d3) + d4 - d2, 4.0 * d1 - 5.0 * d3 + d5)


@njit(inline="always", fastmath=True)
def _at6(m0, m1, m2, m3, m4, m5):
    """A^T (m0, ..., m5) for F(4x4, 3x3)."""
    return (m0 + m1 + m2 + m3 + m4, m1 - m2 + 2.0 * (m3 - m4), m1 + m2 + 4.0 * (m3 + m4),
            m1 - m2 + 8.0 * (m3 - m4) + m5)


@njit(nogil=True, fastmath=True, cache=True)
def _output_transform_4(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out):
    """out[n0 + s, o, 4 tr + i, 4 tc + j] = (A^T M A)[i, j] + bias[o], cropped (F(4x4))."""
    out_h, out_w = out.shape[2], out.shape[3]
    n_rows = tr1 - tr0
    full = out_w // 4  # tile columns with all four output columns inside
    rest = out_w - 4 * full
    u = np.empty((4, 6, tw), dtype=m.dtype)
    for task in range(nt * (o1 - o0)):
        s = task // (o1 - o0)
        o = o0 + task - s * (o1 - o0)
        bo = bias[o]
        for tr in range(tr0, tr1):
            base = (s * n_rows + tr - tr0) * tw
            for b_ in range(6):  # rows: A^T M
                m0, m1, m2 = m[b_, o], m[6 + b_, o], m[12 + b_, o]
                m3, m4, m5 = m[18 + b_, o], m[24 + b_, o], m[30 + b_, o]
                for tc in range(tw):
                    k = base + tc
                    u[0, b_, tc], u[1, b_, tc], u[2, b_, tc], u[3, b_, tc] = _at6(
                        m0[k], m1[k], m2[k], m3[k], m4[k], m5[k])
            for i in range(4):  # columns: (A^T M) A
                oh = 4 * tr + i
                if oh >= out_h:
                    break
                row = out[n0 + s, o, oh]
                u0, u1, u2, u3, u4, u5 = u[i, 0], u[i, 1], u[i, 2], u[i, 3], u[i, 4], u[i, 5]
                for tc in range(full):
                    y0, y1, y2, y3 = _at6(u0[tc], u1[tc], u2[tc], u3[tc], u4[tc], u5[tc])
                    row[4 * tc] = y0 + bo
                    row[4 * tc + 1] = y1 + bo
                    row[4 * tc + 2] = y2 + bo
                    row[4 * tc + 3] = y3 + bo
                if rest:
                    y = _at6(u0[full], u1[full], u2[full], u3[full], u4[full], u5[full])
                    for j in range(rest):
                        row[4 * full + j] = y[j] + bo


SIXTH, TWELFTH, TWENTY_FOURTH = 1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0  # multiplies, not divisions


@njit(inline="always")
def _g6(g0, g1, g2):
    """G (g0, g1, g2) for F(4x4, 3x3)."""
    even, odd = TWENTY_FOURTH * g0 + SIXTH * g2, TWELFTH * g1
    return (0.25 * g0, -SIXTH * (g0 + g1 + g2), SIXTH * (g1 - g0 - g2), even + odd, even - odd,
            g2)


@njit(inline="always")
def _put6(u, z, o, c, values):
    """u[z + k, o, c] = values[k], k = 0..5."""
    u[z, o, c], u[z + 1, o, c], u[z + 2, o, c] = values[0], values[1], values[2]
    u[z + 3, o, c], u[z + 4, o, c], u[z + 5, o, c] = values[3], values[4], values[5]


@njit(nogil=True, fastmath=True, cache=True)
def _weight_transform_4(w, u, o0, o1):
    """u[6a + b, o, c] = (G w[o, c] G^T)[a, b] for o0 <= o < o1 (F(4x4); float64 input).
    Straight-line scalars, so LLVM keeps them in registers."""
    c_in = w.shape[1]
    for o in range(o0, o1):
        for c in range(c_in):
            g = w[o, c]
            # the three columns of G g (6 x 3); row a of G g is (p[a], q[a], r[a])
            p = _g6(g[0, 0], g[1, 0], g[2, 0])
            q = _g6(g[0, 1], g[1, 1], g[2, 1])
            r = _g6(g[0, 2], g[1, 2], g[2, 2])
            _put6(u, 0, o, c, _g6(p[0], q[0], r[0]))  # rows: (G g) G^T
            _put6(u, 6, o, c, _g6(p[1], q[1], r[1]))
            _put6(u, 12, o, c, _g6(p[2], q[2], r[2]))
            _put6(u, 18, o, c, _g6(p[3], q[3], r[3]))
            _put6(u, 24, o, c, _g6(p[4], q[4], r[4]))
            _put6(u, 30, o, c, _g6(p[5], q[5], r[5]))


F2 = Variant(2, _input_transform, _output_transform, _weight_transform)
F4 = Variant(4, _input_transform_4, _output_transform_4, _weight_transform_4)
