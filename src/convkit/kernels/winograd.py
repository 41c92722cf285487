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
   and rounded once (16 or 36 C_out C_in numbers, memory bound: cheap next to the rest
   on a batch of images, as costly as the products at some 40 tiles: ``MIN_TILES``).
2. Input transform (Numba): ``V[z, c, t] = (B^T d B)[z]``.  For each channel the
   padded input rows of a band of tile rows are gathered through the padding index
   maps (every padding mode, asymmetric pads, no padded copy of the input) into
   phase arrays at the tile pitch, so that every later step is one flat loop over
   the band's tiles with one store stream -- the form LLVM vectorises (the per-tile
   loops it replaced ran scalar: F(2x2) 1.6-2.7x slower).
3. One BLAS product per point, ``M[z] = U[z] @ V[z]``.
4. Output transform (Numba): ``Y = A^T M A`` plus bias, the same way; the last tile
   row / column is cropped when the tiles overrun the output.

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

import math
import os
import queue
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np

from . import blas
from .winograd_transforms import (F2, F4, Variant, grad_output_transform,
                                  weight_gradient_transform)


def last_level_cache(root="/sys/devices/system/cpu/cpu0/cache") -> Optional[int]:
    """Bytes of the largest cache CPU 0 reports (Linux sysfs), None where there is none."""
    sizes = []
    try:
        for index in (name for name in os.listdir(root) if name.startswith("index")):
            with open(os.path.join(root, index, "size")) as f:
                text = f.read().strip()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            sizes.append(int(text.rstrip("KMG")) * scale)
    except (OSError, ValueError):
        return None
    return max(sizes, default=None)


def unit_bytes(llc: Optional[int]) -> int:
    """V + M of one unit: an eighth of the last-level cache, 4-16 MiB (32 MiB assumed where
    unknown).  Measured: AMD Zen 4 (32 MB L3) 2-8 MiB, 4 best overall; Intel Emerald Rapids
    (300 MB L3) 4 -> 16 MiB took resnet-3x3 from 15.1 to 12.8 ms (2 workers: 32 MiB of buffers,
    inside the memory target), the wider products running nearer BLAS's peak."""
    return min(16 << 20, max(4 << 20, (llc or 32 << 20) // 8))


TILE_BYTES = unit_bytes(last_level_cache())
MIN_CHANNELS = 16  # below this the transforms cost more than the products save
MIN_TILES = 48  # 2x2 tiles of the whole batch: below this the im2col product is faster
SERIAL_FLOPS = 20_000_000  # smaller products: one worker, no pool hand-off or BLAS limit
UNITS_PER_WORKER = 4  # several units each: a core slowed by another process takes fewer
BATCH_BYTES = 32 << 20  # V + M of the whole batch, for the stage-by-stage schedule
F4_MAX_PRODUCTS = 0.6  # float64 takes F(4x4) when it needs at most this share of F(2x2)'s
F4_MAX_U_BYTES = 32 << 20  # ... and its transformed weights stay under this

def supports(problem) -> bool:
    """Dense 3x3, stride 1, dilation 1, at least ``MIN_CHANNELS`` in and out and
    ``MIN_TILES`` 2x2 output tiles in the batch.  The weight transform is a fixed cost per
    call, memory bound (U is 16/9 the weights), as large as the products when the batch has
    some 40 tiles; measured against the im2col product (both on two threads): ResNet's
    512-channel 7x7 layer (16 tiles a sample) 1.49x the time at batch 1, 1.23x at 2, 0.88x
    at 4; 256 channels on 14x14 (49 tiles) 0.93x at batch 1."""
    p, spec = problem, problem.spec
    return (spec.groups == 1 and (p.kh, p.kw) == (3, 3) and spec.stride == (1, 1)
            and spec.dilation == (1, 1) and p.c_in >= MIN_CHANNELS
            and p.c_out >= MIN_CHANNELS
            and p.n * math.prod(tile_grid(p, 2)) >= MIN_TILES)


def tile_grid(p, m):
    """(tile rows, tile columns) of F(m x m)'s m x m output tiles covering the output."""
    return -(-p.out_h // m), -(-p.out_w // m)


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
        f4 = 36 * math.prod(tile_grid(p, 4))
        f2 = 16 * math.prod(tile_grid(p, 2))
        if f4 <= F4_MAX_PRODUCTS * f2:
            return F4
    return F2


def run(x, w, b, p, out=None):
    f = variant(p)
    plan = _Plan.of(p, f.m)
    call = _Call.of(p, f, x, np.zeros(p.c_out, p.dtype) if b is None else b,
                    p.output(out))
    u = np.empty((f.points, spread_rows(p.c_out, p.c_in * p.dtype.itemsize, f.points), p.c_in),
                 dtype=p.dtype)
    weights = _slices(p.c_out, plan.workers)
    if plan.by_point:
        _by_point(call, w, u, p, plan, weights)
    else:
        blas.parallel(lambda lo_hi: f.weight_transform(w, u, *lo_hi), weights, plan.flops)
        _by_units(call, u, p, plan)
    return call.out


@dataclass(frozen=True)
class _Plan:
    """How one call's work is cut: tile rows and columns, the workers, the units (samples or
    tile rows) and whether to run by point instead (shared by the forward and the weight
    gradient, whose products have the same size)."""

    th: int
    tw: int
    flops: float  # 0.0 for a small problem: the calling thread alone
    workers: int
    units: list
    by_point: bool

    @classmethod
    def of(cls, p, m) -> "_Plan":
        points, item = (m + 2) ** 2, p.dtype.itemsize
        th, tw = tile_grid(p, m)
        product_flops = 2 * points * p.n * th * tw * p.c_in * p.c_out
        # small problems: the calling thread alone (a hand-off costs more than it saves)
        flops = product_flops if product_flops >= SERIAL_FLOPS else 0.0
        workers = numba.get_num_threads() if flops else 1
        units = work_units(p.n, th, points * (p.c_in + p.c_out) * tw * item, workers,
                           TILE_BYTES)
        batch_bytes = points * (p.c_in + p.c_out) * p.n * th * tw * item
        return cls(th, tw, flops, workers, units,
                   by_point(batch_bytes, len(units), points * p.c_out * p.c_in * item))

    @property
    def pieces(self) -> int:
        """Channel slices of a by-point transform stage."""
        return UNITS_PER_WORKER * self.workers

    def batch_planes(self, p, points):
        """(V, M) for every tile of the batch, ``(points, rows, tiles)``, planes spread over
        the cache sets."""
        tiles, item = p.n * self.th * self.tw, p.dtype.itemsize
        return tuple(np.empty((points, spread_rows(rows, tiles * item, points), tiles), p.dtype)
                     for rows in (p.c_in, p.c_out))


def _slices(count, pieces):
    """``pieces`` (lo, hi) ranges covering ``range(count)`` in balanced parts."""
    return [(count * i // pieces, count * (i + 1) // pieces) for i in range(pieces)]


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
        th, tw = tile_grid(p, f.m)
        # the maps padded with -1 (zero) to every row and column the tiles read
        rows, cols = (np.pad(a, (0, max(0, f.m * t + 2 - a.size)), constant_values=-1)
                      for a, t in zip(p.index_maps(), (th, tw)))
        left = p.spec.pads[1][0]
        # padded columns inner_lo..inner_hi-1 read input column q - left: copied in one piece
        inner_lo, inner_hi = max(left, 0), max(left, 0, min(cols.size, left + p.w))
        return cls(f, x, rows, cols, left, inner_lo, inner_hi, tw, bias, out)

    def transform_input(self, v, n0, nt, tr0, tr1, c0, c1):
        self.f.input_transform(self.x, self.rows, self.cols, self.left, self.inner_lo,
                               self.inner_hi, n0, nt, tr0, tr1, self.tw, c0, c1, v)

    def transform_output(self, m, n0, nt, tr0, tr1, o0, o1):
        self.f.output_transform(m, self.bias, n0, nt, tr0, tr1, self.tw, o0, o1, self.out)


def _by_units(call, u, p, plan):
    """Each worker takes a unit (samples or tile rows) and runs all three stages on it in
    its own cache-sized V and M."""
    buffers = _UnitBuffers(p, call.f.points, call.tw, plan.units, plan.workers)

    def unit(task):
        n0, nt, tr0, tr1 = task
        with buffers.lease(task) as (v, m):
            call.transform_input(v, n0, nt, tr0, tr1, 0, p.c_in)
            np.matmul(u[:, :p.c_out], v[:, :p.c_in], out=m[:, :p.c_out])  # a BLAS call a point
            call.transform_output(m, n0, nt, tr0, tr1, 0, p.c_out)

    blas.parallel(unit, plan.units, plan.flops)  # workers take units as they free up


class _UnitBuffers:
    """One pair of flat buffers per worker (V and M, or V and D), reused unit after unit:
    ``lease(unit)`` lends a pair shaped ``(points, rows, tiles)`` for that unit, the planes
    spread over the cache sets, and takes it back even when the unit fails (a failed unit
    must not leave the next one waiting for buffers)."""

    def __init__(self, p, points, tw, units, workers):
        self.points, self.tw, self.item = points, tw, p.dtype.itemsize
        self.rows = (p.c_in, p.c_out)
        tiles = [nt * (tr1 - tr0) * tw for _, nt, tr0, tr1 in units]
        sizes = [max(points * spread_rows(r, t * self.item, points) * t for t in tiles)
                 for r in self.rows]
        self.free = queue.SimpleQueue()
        for _ in range(min(workers, len(units))):
            self.free.put(tuple(np.empty(size, p.dtype) for size in sizes))

    @contextmanager
    def lease(self, unit):
        _, nt, tr0, tr1 = unit
        tiles = nt * (tr1 - tr0) * self.tw
        pair = self.free.get()
        try:
            yield tuple(
                buf[:self.points * r * tiles].reshape(self.points, r, tiles) for buf, r in
                zip(pair, (spread_rows(rows, tiles * self.item, self.points) for rows in
                           self.rows)))
        finally:
            self.free.put(pair)


def _by_point(call, w, u, p, plan, weights):
    """Stage by stage over the whole batch: the transforms in channel slices, then one
    product per point with every tile of the batch.  Each of U, V and M then passes
    through memory once, where units would read all of U once per unit."""
    v, m = plan.batch_planes(p, call.f.points)

    def transform(task):
        kind, lo, hi = task
        if kind == "weights":
            call.f.weight_transform(w, u, lo, hi)
        else:
            call.transform_input(v, 0, p.n, 0, plan.th, lo, hi)
    blas.parallel(transform, [("weights", *lo_hi) for lo_hi in weights]
                  + [("input", *lo_hi) for lo_hi in _slices(p.c_in, plan.pieces)], plan.flops)
    blas.parallel(lambda z: np.matmul(u[z, :p.c_out], v[z, :p.c_in], out=m[z, :p.c_out]),
                  range(call.f.points), plan.flops)
    blas.parallel(lambda lo_hi: call.transform_output(m, 0, p.n, 0, plan.th, *lo_hi),
                  _slices(p.c_out, plan.pieces), plan.flops)


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
    points, plan = F2.points, _Plan.of(p, 2)
    call, th, tw = _Call.of(p, F2, x), plan.th, plan.tw
    if plan.by_point:
        v, d = plan.batch_planes(p, points)

        def transform(task):
            kind, lo, hi = task
            if kind == "input":
                call.transform_input(v, 0, p.n, 0, th, lo, hi)
            else:
                grad_output_transform(grad_out, 0, p.n, 0, th, tw, lo, hi, d)
        blas.parallel(transform, [("input", *lo_hi) for lo_hi in _slices(p.c_in, plan.pieces)]
                      + [("grad", *lo_hi) for lo_hi in _slices(p.c_out, plan.pieces)],
                      plan.flops)
        du = np.empty((points, p.c_out, p.c_in), p.dtype)
        blas.parallel(lambda z: np.matmul(d[z, :p.c_out], v[z, :p.c_in].T, out=du[z]),
                      range(points), plan.flops)
    else:
        units = plan.units
        buffers = _UnitBuffers(p, points, tw, units, plan.workers)

        def add(i, acc):
            n0, nt, tr0, tr1 = units[i]
            product = np.empty((points, p.c_out, p.c_in), p.dtype)
            with buffers.lease(units[i]) as (v, d):
                call.transform_input(v, n0, nt, tr0, tr1, 0, p.c_in)
                grad_output_transform(grad_out, n0, nt, tr0, tr1, tw, 0, p.c_out, d)
                np.matmul(d[:, :p.c_out], v[:, :p.c_in].transpose(0, 2, 1), out=product)
                acc += product
        du = blas.accumulate(add, len(units), (points, p.c_out, p.c_in), p.dtype, plan.flops)
    grad = np.empty((p.c_out, p.c_in, 3, 3), p.dtype)
    weight_gradient_transform(du, grad)
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
