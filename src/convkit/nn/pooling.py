"""Pooling: ``MaxPool2d`` (torch's, without ceil_mode) and ``GlobalAvgPool2d``."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..shapes import conv_output_size
from ..spec import standardize_pair
from .module import Module


class MaxPool2d(Module):
    """The largest value of each window, as ``torch.nn.MaxPool2d`` (padding counts as -inf;
    ties send the gradient to the first maximum, as torch)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = standardize_pair(kernel_size, "kernel_size")
        self.stride = standardize_pair(stride if stride is not None else kernel_size, "stride")
        self.padding = standardize_pair(padding, "padding", minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"padding must be at most half of kernel_size: padding="
                             f"{self.padding}, kernel_size={self.kernel_size}")

    def forward(self, x) -> np.ndarray:
        x = np.asarray(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)],
                        constant_values=-np.inf)
        windows = sliding_window_view(padded, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
        flat = windows.reshape(*windows.shape[:-2], kh * kw)
        self._argmax = flat.argmax(axis=-1)  # first maximum, as torch
        self._shape = x.shape
        return np.take_along_axis(flat, self._argmax[..., None], axis=-1)[..., 0]

    def backward(self, grad_output) -> np.ndarray:
        kw, (sh, sw), (ph, pw) = self.kernel_size[1], self.stride, self.padding
        *lead, h, w = self._shape
        out_h, out_w = self._argmax.shape[-2:]
        rows = (np.arange(out_h) * sh)[:, None] + self._argmax // kw - ph
        cols = (np.arange(out_w) * sw)[None, :] + self._argmax % kw - pw
        grad = np.zeros((*lead, h, w), dtype=np.result_type(grad_output))
        flat = grad.reshape(-1, h * w)
        index = (rows * w + cols).reshape(flat.shape[0], -1)
        for i in range(flat.shape[0]):  # one bincount per plane; windows may overlap
            flat[i] = np.bincount(index[i], np.asarray(grad_output).reshape(flat.shape[0], -1)[i],
                                  minlength=h * w)
        return grad

    def output_shape(self, input_shape):
        size = [conv_output_size(n, k, s, p) for n, k, s, p in
                zip(input_shape[-2:], self.kernel_size, self.stride, self.padding)]
        return (*input_shape[:-2], *size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """The mean of each channel over space: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x) -> np.ndarray:
        x = np.asarray(x)
        self._shape = x.shape
        return x.mean(axis=(-2, -1))

    def backward(self, grad_output) -> np.ndarray:
        h, w = self._shape[-2:]
        go = np.asarray(grad_output)[..., None, None] / (h * w)
        return np.broadcast_to(go, self._shape).copy()

    def output_shape(self, input_shape):
        return tuple(input_shape[:-2])
