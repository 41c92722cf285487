"""The Numba transforms of :mod:`convkit.kernels.winograd`: F(2x2, 3x3) (forward, and the
weight gradient's transform of grad_output and inverse weight transform) and F(4x4, 3x3)
(forward, float64).  Each reads the input through the padding index maps and works on
bands of tile rows as flat runs along the contiguous tile axis, one store stream per loop,
so LLVM vectorises every loop; tasks are (sample, channel) pairs of a channel slice, so a
schedule can split the work by samples, tile rows or channels.  The matrices are in
winograd.py's docstring (F(2x2)) and above the F(4x4) functions.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numba import njit, uint64


class Variant(NamedTuple):
    """One Winograd F(m x m, 3x3): output tiles of ``m`` x ``m``, ``(m + 2)**2`` points."""

    m: int
    input_transform: Callable
    output_transform: Callable
    weight_transform: Callable

    @property
    def points(self) -> int:
        return (self.m + 2) ** 2


BAND_ELEMENTS = 512  # tiles of one band of tile rows: the scratch (40 floats a tile) stays in L1


@njit(inline="always")
def _sub(dst, d, a, b, x, y, n):
    """dst[d + k] = a[x + k] - b[y + k], k < n: one store stream, so LLVM vectorises it (with
    several store streams at run-time distances it needs too many overlap checks and gives
    up: the first version of these transforms ran scalar)."""
    for k in range(n):
        uk = uint64(k)
        dst[d + uk] = a[x + uk] - b[y + uk]


@njit(inline="always")
def _add(dst, d, a, b, x, y, n):
    """dst[d + k] = a[x + k] + b[y + k], k < n (see :func:`_sub`)."""
    for k in range(n):
        uk = uint64(k)
        dst[d + uk] = a[x + uk] + b[y + uk]


@njit(inline="always")
def _gather_columns(xf, src, r, cols, left, lo, hi, cp, tw, dst, d, step):
    """dst[d + k] = the padded row at column step k + cp for k < tw: input row ``r`` starting
    at xf[src] (all zero when r < 0), columns of tiles lo..hi-1 straight from the row, the
    others through the column map."""
    if r < 0:
        for k in range(tw):
            dst[d + uint64(k)] = 0
        return
    for k in range(lo):
        a = cols[step * k + cp]
        dst[d + uint64(k)] = xf[src + uint64(a)] if a >= 0 else 0
    q = src + uint64(cp - left)
    for k in range(lo, hi):
        dst[d + uint64(k)] = xf[q + uint64(step * k)]
    for k in range(hi, tw):
        a = cols[step * k + cp]
        dst[d + uint64(k)] = xf[src + uint64(a)] if a >= 0 else 0


@njit(inline="always")
def _gather_band(xf, plane, width, rows, cols, left, lo, hi, b0, nb, tw, ph, phase_len, m):
    """The phase arrays of F(m x m)'s band of tile rows ``b0 .. b0 + nb - 1``: padded row
    ``m (b0 + i) + rp`` (row phase rp < m, and 0, 1 of row ``nb`` for the last patches'
    bottom rows) at column ``m k + cp`` (cp < m + 2) into ``ph[(m + 2) rp + cp, i, k]``
    (arrays of ``phase_len``, rows of ``tw``); ``lo``, ``hi`` from :func:`_inside_tiles`."""
    for i in range(nb + 1):
        for rp in range(m if i < nb else 2):
            r = rows[m * (b0 + i) + rp]
            src = uint64(plane + max(r, 0) * width)
            for cp in range(m + 2):
                _gather_columns(xf, src, r, cols, left, lo[cp], hi[cp], cp, tw, ph,
                                uint64((m + 2) * rp + cp) * phase_len + uint64(i * tw), m)


@njit(inline="always")
def _inside_tiles(inner_lo, inner_end, step, phases, tw):
    """(lo, hi) per column phase cp: the tile columns k whose padded column step k + cp is
    an input column (``inner_lo <= step k + cp < inner_end``)."""
    lo = np.empty(phases, dtype=np.int64)
    hi = np.empty(phases, dtype=np.int64)
    for cp in range(phases):
        lo[cp] = min(tw, max(0, (inner_lo - cp + step - 1) // step))
        hi[cp] = max(lo[cp], min(tw, (inner_end - cp + step - 1) // step))
    return lo, hi


@njit(nogil=True, fastmath=True, cache=True)
def _input_transform(x, rows, cols, left, inner_lo, inner_hi, n0, nt, tr0, tr1, tw, c0, c1,
                     v):
    """v[z, c, t] = (B^T d B)[z] for the 4x4 patch d of tile t = (sample, tile row, tile
    col) of channel c.  ``v`` is C-contiguous.

    Every loop runs over the tiles of a band of tile rows as one flat run, so it is long
    and has one store stream: LLVM vectorises all of them.  The padded rows of the band
    are gathered (through the padding index maps) into eight "phase" arrays, one per row
    parity and per column phase cp = 0..3 (columns 2k + cp of tile column k), each with
    the tile pitch ``tw``: tile t's patch column j is then phase j at position t, for
    every t at once.  The rows of the patches (B^T d) combine the phases of two padded
    rows; the columns ((B^T d) B) combine phases of those and are stored straight into
    ``v``.  Measured against the row-ring version it replaced (per-tile loops, scalar):
    2.7x faster on 14x14 planes, 2.3x on 28x28, 1.6x on 56x56 (there bound by the stores).
    Sums index flat arrays with unsigned offsets (signed per-row views ran scalar)."""
    n_rows = tr1 - tr0
    band = max(1, min(n_rows, BAND_ELEMENTS // tw))
    span = 2 * tw + 2  # padded columns the tiles of one row read
    inner_lo, inner_end = min(max(inner_lo, 0), span), min(inner_hi, span)
    lo, hi = _inside_tiles(inner_lo, inner_end, 2, 4, tw)
    phase_len, tl = uint64((band + 1) * tw), uint64(band * tw)
    ph = np.empty(8 * (band + 1) * tw, dtype=x.dtype)  # [row parity][cp][band row][k]
    tt = np.empty(16 * band * tw, dtype=x.dtype)  # (B^T d)[a] at column phase cp: [a][cp]
    xf, vf, tiles = x.reshape(-1), v.reshape(-1), v.shape[2]
    c_in, height, width = x.shape[1], x.shape[2], x.shape[3]
    point, utw = uint64(v.shape[1] * tiles), uint64(tw)  # v's stride between points
    for task in range(nt * (c1 - c0)):
        s = task // (c1 - c0)
        c = c0 + task - s * (c1 - c0)
        plane = ((n0 + s) * c_in + c) * height * width
        for b0 in range(tr0, tr1, band):
            nb = min(band, tr1 - b0)
            _gather_band(xf, plane, width, rows, cols, left, lo, hi, b0, nb, tw, ph, phase_len, 2)
            n = nb * tw
            for cp in range(4):  # rows: B^T d; patch rows 0..3 = even, odd, next even, next odd
                p0, p1 = uint64(cp) * phase_len, uint64(4 + cp) * phase_len
                t = uint64(cp) * tl
                _sub(tt, t, ph, ph, p0, p0 + utw, n)
                _add(tt, t + uint64(4) * tl, ph, ph, p1, p0 + utw, n)
                _sub(tt, t + uint64(8) * tl, ph, ph, p0 + utw, p1, n)
                _sub(tt, t + uint64(12) * tl, ph, ph, p1, p1 + utw, n)
            o = uint64(c * tiles + (s * n_rows + b0 - tr0) * tw)
            for a in range(4):  # columns: (B^T d) B, straight into the band's tiles
                t0 = uint64(4 * a) * tl
                t1, t2, t3 = t0 + tl, t0 + uint64(2) * tl, t0 + uint64(3) * tl
                z = o + uint64(4 * a) * point
                _sub(vf, z, tt, tt, t0, t2, n)
                _add(vf, z + point, tt, tt, t1, t2, n)
                _sub(vf, z + uint64(2) * point, tt, tt, t2, t1, n)
                _sub(vf, z + uint64(3) * point, tt, tt, t1, t3, n)


@njit(inline="always")
def _a2_row(dst, d, a, x0, x1, x2, x3, x4, x5, i, n, bias):
    """dst[d + k] = (A^T (a[x0 + k], ..., a[x3 + k]))[i] + bias for k < n, F(2x2)'s A^T
    (rows (1, 1, 1, 0) and (0, 1, -1, -1); ``x4``, ``x5`` unused: the F(4x4) signature)."""
    if i == 0:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = a[x0 + uk] + a[x1 + uk] + a[x2 + uk] + bias
    else:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = a[x1 + uk] - a[x2 + uk] - a[x3 + uk] + bias


@njit(inline="always")
def _a_any(dst, d, a, x0, x1, x2, x3, x4, x5, i, n, bias, m):
    """Row ``i`` of F(m x m)'s A^T along flat runs (:func:`_a2_row`, :func:`_at6_row`)."""
    if m == 2:
        _a2_row(dst, d, a, x0, x1, x2, x3, x4, x5, i, n, bias)
    else:
        _at6_row(dst, d, a, x0, x1, x2, x3, x4, x5, i, n, bias)


@njit(nogil=True, fastmath=True, cache=True)
def _output_transform(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out):
    """out[n0 + s, o, 2 tr + i, 2 tc + j] = (A^T M A)[i, j] + bias[o], cropped to the output
    (see :func:`_output_transform_m`)."""
    _output_transform_m(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out, 2, BAND_ELEMENTS)


@njit(inline="always")
def _output_transform_m(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out, mm, band_elements):
    """out[n0 + s, o, mm tr + i, mm tc + j] = (A^T M A)[i, j] + bias[o] for F(mm x mm),
    cropped to the output.  As the input transforms, the sums run over a band of tile rows
    at once, one store stream per loop (vectorised): A^T M into ``mm`` rows per point column,
    then each output row's ``mm`` column phases plus the bias, and a plain loop places the
    phases into the row (1.1-3x faster than the per-tile-row versions they replaced, which
    ran scalar).  ``m`` and ``out`` are C-contiguous, indexed flat with unsigned offsets."""
    points = mm + 2  # per side
    c_out, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    n_rows = tr1 - tr0
    band = max(1, min(n_rows, band_elements // tw))
    full = out_w // mm  # tile columns with all their output columns inside
    rest = out_w - mm * full
    tl = uint64(band * tw)
    u = np.empty(mm * points * band * tw, dtype=m.dtype)  # (A^T M)[i, b] along the tiles
    y = np.empty(mm * band * tw, dtype=m.dtype)  # output row i of every tile: columns j
    mf, of = m.reshape(-1), out.reshape(-1)
    point = uint64(m.shape[1] * m.shape[2])  # m's stride between points
    column = uint64(points) * point  # from point (a, b) to (a + 1, b)
    zero = np.zeros(1, dtype=m.dtype)[0]  # (a literal 0 would make the sums float64)
    for task in range(nt * (o1 - o0)):
        s = task // (o1 - o0)
        o = o0 + task - s * (o1 - o0)
        bo = bias[o]
        plane = uint64(((n0 + s) * c_out + o) * out_h * out_w)
        for b0 in range(tr0, tr1, band):
            nb = min(band, tr1 - b0)
            n = nb * tw
            base = uint64(o * m.shape[2] + (s * n_rows + b0 - tr0) * tw)
            for b in range(points):  # rows: A^T M
                k0 = base + uint64(b) * point
                for i in range(mm):
                    _a_any(u, uint64(points * i + b) * tl, mf, k0, k0 + column,
                           k0 + uint64(2) * column, k0 + uint64(3) * column,
                           k0 + uint64(min(4, points - 1)) * column,
                           k0 + uint64(min(5, points - 1)) * column, i, n, zero, mm)
            for i in range(mm):  # columns: (A^T M) A, plus the bias
                u0 = uint64(points * i) * tl
                for j in range(mm):
                    _a_any(y, uint64(j) * tl, u, u0, u0 + tl, u0 + uint64(2) * tl,
                           u0 + uint64(3) * tl, u0 + uint64(min(4, points - 1)) * tl,
                           u0 + uint64(min(5, points - 1)) * tl, j, n, bo, mm)
                for r in range(nb):
                    oh = mm * (b0 + r) + i
                    if oh >= out_h:
                        break
                    row, e = plane + uint64(oh * out_w), uint64(r * tw)
                    for tc in range(full):
                        ut, q = uint64(tc), row + uint64(mm * tc)
                        for j in range(mm):
                            of[q + uint64(j)] = y[uint64(j) * tl + e + ut]
                    for j in range(rest):
                        of[row + uint64(mm * full + j)] = y[uint64(j) * tl + e + uint64(full)]


@njit(inline="always")
def _g_row(dst, d, src, s0, s1, s2, a, n):
    """dst[d + k] = (G (src[s0 + k], src[s1 + k], src[s2 + k]))[a] for k < n (F(2x2)'s G:
    rows (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1))."""
    if a == 0:
        for k in range(n):
            dst[d + uint64(k)] = src[s0 + uint64(k)]
    elif a == 1:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 0.5 * (src[s0 + uk] + src[s1 + uk] + src[s2 + uk])
    elif a == 2:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 0.5 * (src[s0 + uk] - src[s1 + uk] + src[s2 + uk])
    else:
        for k in range(n):
            dst[d + uint64(k)] = src[s2 + uint64(k)]


@njit(inline="always")
def _gather_taps(wo, g, c_in):
    """g[(3 i + j) c_in + c] = wo[c, i, j] (float64): each 3x3 tap of every input channel as
    one contiguous row."""
    for tap in range(9):
        base = uint64(tap) * uint64(c_in)
        for c in range(c_in):
            g[base + uint64(c)] = wo[c, tap // 3, tap % 3]


@njit(nogil=True, fastmath=True, cache=True)
def _weight_transform(w, u, o0, o1):
    """u[4a + b, o, c] = (G w[o, c] G^T)[a, b] for o0 <= o < o1, sums in float64 (see
    :func:`_weight_transform_m`)."""
    _weight_transform_m(w, u, o0, o1, 2)


@njit(inline="always")
def _weight_transform_m(w, u, o0, o1, m):
    """u[(m + 2) a + b, o, c] = (G w[o, c] G^T)[a, b] for o0 <= o < o1, F(m x m)'s G, sums in
    float64.  For each output channel the taps of all input channels are gathered into nine
    float64 rows, then G's rows and columns are flat loops over the input channels, one
    store stream each, the last storing straight into ``u``.  The per-channel scalar
    versions they replaced stored 16 or 36 values at run-time distances and were not
    vectorised: F(2x2) 1.05 against 0.74 ms for 256 x 256 channels and 17.8 against 7.3
    for 512 x 512 in float64, F(4x4) 8.8 against 1.9 ms for 256 x 256 (one thread)."""
    points = m + 2  # per side
    c_in = w.shape[1]
    uc = uint64(c_in)
    g = np.empty(9 * c_in)  # tap (i, j) of every input channel at (3 i + j) c_in, float64
    t = np.empty(3 * points * c_in)  # (G g)[a, j] at (3 a + j) c_in
    uf = u.reshape(-1)
    point = uint64(u.shape[1] * u.shape[2])  # u's stride between points
    for o in range(o0, o1):
        _gather_taps(w[o], g, c_in)
        for a in range(points):  # rows: G g, for each column j of the taps
            for j in range(3):
                _g_any(t, uint64(3 * a + j) * uc, g, uint64(j) * uc, uint64(3 + j) * uc,
                       uint64(6 + j) * uc, a, c_in, m)
        for a in range(points):  # columns: (G g) G^T, into u[points a + b, o, :]
            ta = uint64(3 * a) * uc
            for b in range(points):
                _g_any(uf, uint64(points * a + b) * point + uint64(o) * uc, t, ta, ta + uc,
                       ta + uint64(2) * uc, b, c_in, m)


@njit(inline="always")
def _g_any(dst, d, src, s0, s1, s2, a, n, m):
    """Row ``a`` of F(m x m)'s G applied along flat runs (:func:`_g_row`, :func:`_g6_row`)."""
    if m == 2:
        _g_row(dst, d, src, s0, s1, s2, a, n)
    else:
        _g6_row(dst, d, src, s0, s1, s2, a, n)


@njit(inline="always")
def _gather_pairs(gf, src, inside, count, full, tw, dst, even, odd):
    """dst[even + k], dst[odd + k] = columns 2k, 2k + 1 of the grad_output row at gf[src]
    for k < tw (``count`` columns: zero past them; all zero when not ``inside``)."""
    if not inside:
        for k in range(tw):
            dst[even + uint64(k)] = 0
        for k in range(tw):
            dst[odd + uint64(k)] = 0
        return
    for k in range(full):
        dst[even + uint64(k)] = gf[src + uint64(2 * k)]
    for k in range(full):
        dst[odd + uint64(k)] = gf[src + uint64(2 * k + 1)]
    if full < tw:  # odd width: the last tile's second column is past the output
        dst[even + uint64(full)] = gf[src + uint64(count - 1)]
        dst[odd + uint64(full)] = 0


@njit(nogil=True, fastmath=True, cache=True)
def grad_output_transform(go, n0, nt, tr0, tr1, tw, o0, o1, d):
    """d[z, o, t] = (A dY A^T)[z] for the 2x2 block dY of ``go`` at tile t (tiles numbered
    as :func:`_input_transform`'s), zero past the output: the transpose of the output
    transform.  With dY = [[y00, y01], [y10, y11]], rows a of A dY are (y00, y01),
    (y00 + y10, y01 + y11), (y00 - y10, y01 - y11), (-y10, -y11), and each row (r0, r1)
    times A^T is (r0, r0 + r1, r0 - r1, -r1).  As the forward transforms: the band's
    2x2 blocks are split into four arrays at the tile pitch, and every point is one flat
    loop with one store stream (the per-tile version stored 16 scalars a tile: 17.7 ms
    against 1.x ms for ResNet's 64-channel 56x56 batch on one thread)."""
    c_out, out_h, out_w = go.shape[1], go.shape[2], go.shape[3]
    n_rows = tr1 - tr0
    band = max(1, min(n_rows, BAND_ELEMENTS // tw))
    full = out_w // 2  # tiles with both columns inside
    tl = uint64(band * tw)
    y = np.empty(4 * band * tw, dtype=go.dtype)  # y00, y01, y10, y11 along the band's tiles
    gf, df, tiles = go.reshape(-1), d.reshape(-1), d.shape[2]
    point = uint64(d.shape[1] * tiles)  # d's stride between points
    for task in range(nt * (o1 - o0)):
        s = task // (o1 - o0)
        o = o0 + task - s * (o1 - o0)
        plane = ((n0 + s) * c_out + o) * out_h * out_w
        for b0 in range(tr0, tr1, band):
            nb = min(band, tr1 - b0)
            n = nb * tw
            for i in range(nb):
                r = 2 * (b0 + i)
                e = uint64(i * tw)
                _gather_pairs(gf, uint64(plane + r * out_w), True, out_w, full, tw, y, e, e + tl)
                _gather_pairs(gf, uint64(plane + (r + 1) * out_w), r + 1 < out_h, out_w, full,
                              tw, y, e + uint64(2) * tl, e + uint64(3) * tl)
            y00, y01, y10, y11 = uint64(0), tl, uint64(2) * tl, uint64(3) * tl
            z = uint64(o * tiles + (s * n_rows + b0 - tr0) * tw)
            for k in range(n):  # a = 0: (y00, y01)
                uk = uint64(k)
                df[z + uk] = y[y00 + uk]
                df[z + point + uk] = y[y00 + uk] + y[y01 + uk]
            for k in range(n):
                uk = uint64(k)
                df[z + uint64(2) * point + uk] = y[y00 + uk] - y[y01 + uk]
                df[z + uint64(3) * point + uk] = -y[y01 + uk]
            z4 = z + uint64(4) * point
            for k in range(n):  # a = 1: (y00 + y10, y01 + y11)
                uk = uint64(k)
                df[z4 + uk] = y[y00 + uk] + y[y10 + uk]
            for k in range(n):
                uk = uint64(k)
                df[z4 + point + uk] = (y[y00 + uk] + y[y10 + uk]) + (y[y01 + uk] + y[y11 + uk])
            for k in range(n):
                uk = uint64(k)
                df[z4 + uint64(2) * point + uk] = ((y[y00 + uk] + y[y10 + uk])
                                                  - (y[y01 + uk] + y[y11 + uk]))
            for k in range(n):
                uk = uint64(k)
                df[z4 + uint64(3) * point + uk] = -(y[y01 + uk] + y[y11 + uk])
            z8 = z + uint64(8) * point
            for k in range(n):  # a = 2: (y00 - y10, y01 - y11)
                uk = uint64(k)
                df[z8 + uk] = y[y00 + uk] - y[y10 + uk]
            for k in range(n):
                uk = uint64(k)
                df[z8 + point + uk] = (y[y00 + uk] - y[y10 + uk]) + (y[y01 + uk] - y[y11 + uk])
            for k in range(n):
                uk = uint64(k)
                df[z8 + uint64(2) * point + uk] = ((y[y00 + uk] - y[y10 + uk])
                                                  - (y[y01 + uk] - y[y11 + uk]))
            for k in range(n):
                uk = uint64(k)
                df[z8 + uint64(3) * point + uk] = y[y11 + uk] - y[y01 + uk]
            z12 = z + uint64(12) * point
            for k in range(n):  # a = 3: (-y10, -y11)
                uk = uint64(k)
                df[z12 + uk] = -y[y10 + uk]
            for k in range(n):
                uk = uint64(k)
                df[z12 + point + uk] = -(y[y10 + uk] + y[y11 + uk])
            for k in range(n):
                uk = uint64(k)
                df[z12 + uint64(2) * point + uk] = y[y11 + uk] - y[y10 + uk]
            for k in range(n):
                uk = uint64(k)
                df[z12 + uint64(3) * point + uk] = y[y11 + uk]


@njit(inline="always")
def _gt3(d0, d1, d2, d3):
    """G^T (d0, d1, d2, d3)."""
    return d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3


@njit(nogil=True, fastmath=True, cache=True)
def weight_gradient_transform(du, grad):
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

BAND_ELEMENTS_4 = 256  # F(4x4) keeps 60 numbers a tile of scratch (float64: in L2)


@njit(inline="always")
def _bt6_row(dst, d, a, x0, x1, x2, x3, x4, x5, b, n):
    """dst[d + k] = (B^T (a[x0 + k], ..., a[x5 + k]))[b] for k < n (F(4x4)), one flat loop
    with one store stream."""
    if b == 0:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 4.0 * a[x0 + uk] - 5.0 * a[x2 + uk] + a[x4 + uk]
    elif b == 1:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = a[x3 + uk] + a[x4 + uk] - 4.0 * (a[x1 + uk] + a[x2 + uk])
    elif b == 2:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 4.0 * (a[x1 + uk] - a[x2 + uk]) + a[x4 + uk] - a[x3 + uk]
    elif b == 3:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 2.0 * (a[x3 + uk] - a[x1 + uk]) + a[x4 + uk] - a[x2 + uk]
    elif b == 4:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 2.0 * (a[x1 + uk] - a[x3 + uk]) + a[x4 + uk] - a[x2 + uk]
    else:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = 4.0 * a[x1 + uk] - 5.0 * a[x3 + uk] + a[x5 + uk]


@njit(nogil=True, fastmath=True, cache=True)
def _input_transform_4(x, rows, cols, left, inner_lo, inner_hi, n0, nt, tr0, tr1, tw, c0,
                       c1, v):
    """v[z, c, t] = (B^T d B)[z] for the 6x6 patch d of tile t (F(4x4)), as
    :func:`_input_transform`: the padded rows of a band of tile rows gathered into phase
    arrays at the tile pitch (row phase 4 i + rp, rp < 4; column phase 4 k + cp, cp < 6),
    then every row and column combination one flat loop over the band's tiles (the
    per-tile version it replaced ran scalar)."""
    n_rows = tr1 - tr0
    band = max(1, min(n_rows, BAND_ELEMENTS_4 // tw))
    span = 4 * tw + 2  # padded columns the tiles of one row read
    inner_lo, inner_end = min(max(inner_lo, 0), span), min(inner_hi, span)
    lo, hi = _inside_tiles(inner_lo, inner_end, 4, 6, tw)
    phase_len, tl = uint64((band + 1) * tw), uint64(band * tw)
    ph = np.empty(24 * (band + 1) * tw, dtype=x.dtype)  # [row phase][column phase][row][k]
    tt = np.empty(36 * band * tw, dtype=x.dtype)  # (B^T d)[a] at column phase cp: [a][cp]
    xf, vf, tiles = x.reshape(-1), v.reshape(-1), v.shape[2]
    c_in, height, width = x.shape[1], x.shape[2], x.shape[3]
    point, utw = uint64(v.shape[1] * tiles), uint64(tw)  # v's stride between points
    for task in range(nt * (c1 - c0)):
        s = task // (c1 - c0)
        c = c0 + task - s * (c1 - c0)
        plane = ((n0 + s) * c_in + c) * height * width
        for b0 in range(tr0, tr1, band):
            nb = min(band, tr1 - b0)
            _gather_band(xf, plane, width, rows, cols, left, lo, hi, b0, nb, tw, ph, phase_len, 4)
            n = nb * tw
            for cp in range(6):  # rows: patch rows 0..5 = phases 0..3 of row i, 0..1 of i + 1
                p0 = uint64(cp) * phase_len
                p1, p2, p3 = p0 + uint64(6) * phase_len, p0 + uint64(12) * phase_len, \
                    p0 + uint64(18) * phase_len
                for a in range(6):
                    _bt6_row(tt, uint64(6 * a + cp) * tl, ph, p0, p1, p2, p3, p0 + utw,
                             p1 + utw, a, n)
            o = uint64(c * tiles + (s * n_rows + b0 - tr0) * tw)
            for a in range(6):  # columns: (B^T d) B, straight into the band's tiles
                t0 = uint64(6 * a) * tl
                for b in range(6):
                    _bt6_row(vf, o + uint64(6 * a + b) * point, tt, t0, t0 + tl,
                             t0 + uint64(2) * tl, t0 + uint64(3) * tl, t0 + uint64(4) * tl,
                             t0 + uint64(5) * tl, b, n)


@njit(inline="always")
def _at6_row(dst, d, a, x0, x1, x2, x3, x4, x5, i, n, bias):
    """dst[d + k] = (A^T (a[x0 + k], ..., a[x5 + k]))[i] + bias for k < n (F(4x4))."""
    if i == 0:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = a[x0 + uk] + a[x1 + uk] + a[x2 + uk] + a[x3 + uk] + a[x4 + uk] + bias
    elif i == 1:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = a[x1 + uk] - a[x2 + uk] + 2.0 * (a[x3 + uk] - a[x4 + uk]) + bias
    elif i == 2:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = a[x1 + uk] + a[x2 + uk] + 4.0 * (a[x3 + uk] + a[x4 + uk]) + bias
    else:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = (a[x1 + uk] - a[x2 + uk] + 8.0 * (a[x3 + uk] - a[x4 + uk])
                           + a[x5 + uk] + bias)


@njit(nogil=True, fastmath=True, cache=True)
def _output_transform_4(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out):
    """out[n0 + s, o, 4 tr + i, 4 tc + j] = (A^T M A)[i, j] + bias[o], cropped (F(4x4); see
    :func:`_output_transform_m`)."""
    _output_transform_m(m, bias, n0, nt, tr0, tr1, tw, o0, o1, out, 4, BAND_ELEMENTS_4)


SIXTH, TWELFTH, TWENTY_FOURTH = 1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0  # multiplies, not divisions


@njit(inline="always")
def _g6_row(dst, d, src, s0, s1, s2, a, n):
    """dst[d + k] = (G (src[s0 + k], src[s1 + k], src[s2 + k]))[a] for k < n, F(4x4)'s G."""
    if a == 0:
        for k in range(n):
            dst[d + uint64(k)] = 0.25 * src[s0 + uint64(k)]
    elif a == 1:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = -SIXTH * (src[s0 + uk] + src[s1 + uk] + src[s2 + uk])
    elif a == 2:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = SIXTH * (src[s1 + uk] - src[s0 + uk] - src[s2 + uk])
    elif a == 3:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = (TWENTY_FOURTH * src[s0 + uk] + SIXTH * src[s2 + uk]
                           + TWELFTH * src[s1 + uk])
    elif a == 4:
        for k in range(n):
            uk = uint64(k)
            dst[d + uk] = (TWENTY_FOURTH * src[s0 + uk] + SIXTH * src[s2 + uk]
                           - TWELFTH * src[s1 + uk])
    else:
        for k in range(n):
            dst[d + uint64(k)] = src[s2 + uint64(k)]


@njit(nogil=True, fastmath=True, cache=True)
def _weight_transform_4(w, u, o0, o1):
    """u[6a + b, o, c] = (G w[o, c] G^T)[a, b] for o0 <= o < o1 (F(4x4); float64 input; see
    :func:`_weight_transform_m`)."""
    _weight_transform_m(w, u, o0, o1, 4)


F2 = Variant(2, _input_transform, _output_transform, _weight_transform)
F4 = Variant(4, _input_transform_4, _output_transform_4, _weight_transform_4)
