"""The oracle: a slow, obviously correct convolution.  Never optimise it.

Pads with ``numpy.pad`` (independent of convkit's own padding code), takes a
window view, and sums products with one ``einsum`` in float64.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..spec import ConvSpec, PaddingMode

_NUMPY_MODES = {
    PaddingMode.ZEROS: "constant",
    PaddingMode.REFLECT: "reflect",
    PaddingMode.REPLICATE: "edge",
    PaddingMode.CIRCULAR: "wrap",
    PaddingMode.SYMMETRIC: "symmetric",
}


def conv2d_reference(x: np.ndarray, w: np.ndarray, b, spec: ConvSpec) -> np.ndarray:
    """x (N, C_in, H, W), w (C_out, C_in/groups, kH, kW), b (C_out,) or None -> float64 output."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c_in = x.shape[:2]
    c_out, c_group, kh, kw = w.shape
    g = spec.groups
    (dh, dw), (sh, sw) = spec.dilation, spec.stride
    xp = np.pad(x, ((0, 0), (0, 0), *spec.pads), mode=_NUMPY_MODES[spec.padding_mode])
    windows = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C_in, H_out, W_out, kH, kW)
    windows = windows.reshape(n, g, c_group, *windows.shape[2:])
    out = np.einsum("ngchwij,gocij->ngohw",
                    windows, w.reshape(g, c_out // g, c_group, kh, kw))
    out = out.reshape(n, c_out, *out.shape[3:])
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[:, None, None]
    return out
