"""General kernel: im2col on tiles of the batch, one BLAS product per group.

The column matrix of a tile is bounded (``TILE_BYTES``) so memory stays flat
whatever the batch size.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import padding

TILE_BYTES = 32 << 20


def supports(problem) -> bool:
    return True


def run(x, w, b, p):
    spec = p.spec
    if spec.pads != ((0, 0), (0, 0)):
        x = padding.pad(x, spec.pads, spec.padding_mode)
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    g, cg, og = spec.groups, p.group_in, p.group_out
    windows = sliding_window_view(x, (dh * (p.kh - 1) + 1, dw * (p.kw - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :p.out_h, :p.out_w]
    out = np.empty((p.n, p.c_out, p.out_h, p.out_w), dtype=p.dtype)
    k = cg * p.kh * p.kw
    per_sample = max(1, p.out_h * p.out_w * k * p.dtype.itemsize)
    tile = max(1, TILE_BYTES // per_sample)
    wmat = w.reshape(g, og, k)
    for n0 in range(0, p.n, tile):
        n1 = min(p.n, n0 + tile)
        for gi in range(g):
            cols = windows[n0:n1, gi * cg:(gi + 1) * cg].transpose(0, 2, 3, 1, 4, 5)
            cols = cols.reshape((n1 - n0) * p.out_h * p.out_w, k)
            prod = cols @ wmat[gi].T  # (tile*Ho*Wo, og)
            out[n0:n1, gi * og:(gi + 1) * og] = prod.reshape(
                n1 - n0, p.out_h, p.out_w, og).transpose(0, 3, 1, 2)
    if b is not None:
        out += b[:, None, None]
    return out
