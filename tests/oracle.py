"""The one comparison helper: torch 2.13 in float64, and the closeness rule.

``torch_conv2d`` gives torch's answer for convkit's full semantics.  Where torch
takes the setting itself it is used directly; where it refuses (asymmetric pads,
'same' at stride > 1, modes in the functional form, 'symmetric') the input is
padded first -- by ``F.pad``, or ``numpy.pad`` for 'symmetric' -- with pads from
``explicit_pads`` below, an independent copy of the ONNX / TensorFlow rule.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-5,
             np.dtype(np.float16): 2e-3}


def assert_close(actual, expected, dtype=None, tol=None):
    """max |actual - expected| <= tol * max |expected| (tol by dtype: 1e-10 / 2e-5)."""
    actual, expected = np.asarray(actual), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    tol = tol if tol is not None else TOLERANCE[np.dtype(dtype or actual.dtype)]
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    err = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    assert err <= tol * scale, f"max error {err:.3e} > {tol:.0e} x max |expected| {scale:.3e}"


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def explicit_pads(padding, in_hw, k_hw, stride, dilation):
    """((top, bottom), (left, right)) for every padding form convkit takes."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding in ("same", "same_lower"):
        pads = []
        for n, k, s, d in zip(in_hw, k_hw, _pair(stride), _pair(dilation)):
            out = math.ceil(n / s)
            total = max(0, (out - 1) * s + d * (k - 1) + 1 - n)
            lo = total // 2 if padding == "same" else total - total // 2
            pads.append((lo, total - lo))
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return tuple(tuple(p) for p in padding)


def torch_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    """torch's float64 output for convkit's semantics, as a NumPy array."""
    x = np.array(x, dtype=np.float64, order="C")  # a copy: no negative strides, even if empty
    wt = torch.tensor(np.asarray(w, dtype=np.float64))
    bt = None if b is None else torch.tensor(np.asarray(b, dtype=np.float64))
    (t, bo), (lf, r) = explicit_pads(padding, x.shape[-2:], wt.shape[-2:], stride, dilation)
    if padding_mode == "symmetric":
        widths = [(0, 0)] * (x.ndim - 2) + [(t, bo), (lf, r)]
        xt = torch.tensor(np.pad(x, widths, mode="symmetric"))
    else:
        mode = "constant" if padding_mode == "zeros" else padding_mode
        xt = F.pad(torch.tensor(x), (lf, r, t, bo), mode=mode)
    return F.conv2d(xt, wt, bt, _pair(stride), 0, _pair(dilation), groups).numpy()


def torch_layer_conv2d(x, w, b=None, **settings):
    """torch's own ``nn.Conv2d`` (its padding modes, its 'same') in float64."""
    w = np.asarray(w, dtype=np.float64)
    layer = torch.nn.Conv2d(w.shape[1] * settings.get("groups", 1), w.shape[0], w.shape[2:],
                            bias=b is not None, dtype=torch.float64, **settings)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
        if b is not None:
            layer.bias.copy_(torch.tensor(np.asarray(b, dtype=np.float64)))
        return layer(torch.tensor(np.array(x, dtype=np.float64, order="C"))).numpy()


def torch_conv2d_grads(grad_output, x, w, b=None, stride=1, padding=0, dilation=1, groups=1,
                       padding_mode="zeros"):
    """torch autograd's (grad_input, grad_weight, grad_bias) for convkit's semantics, float64."""
    x = np.array(x, dtype=np.float64, order="C")  # a copy: fresh strides even when empty
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True)
    bt = torch.zeros(wt.shape[0], dtype=torch.float64, requires_grad=True)
    (t, bo), (lf, r) = explicit_pads(padding, x.shape[-2:], wt.shape[-2:], stride, dilation)
    if padding_mode == "symmetric":  # numpy's mode, as index gathers torch can differentiate
        rows = np.pad(np.arange(x.shape[-2]), (t, bo), mode="symmetric")
        cols = np.pad(np.arange(x.shape[-1]), (lf, r), mode="symmetric")
        padded = xt[..., rows, :][..., cols]
    else:
        mode = "constant" if padding_mode == "zeros" else padding_mode
        padded = F.pad(xt, (lf, r, t, bo), mode=mode)
    out = F.conv2d(padded, wt, bt, _pair(stride), 0, _pair(dilation), groups)
    out.backward(torch.tensor(np.ascontiguousarray(grad_output, dtype=np.float64)))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()
