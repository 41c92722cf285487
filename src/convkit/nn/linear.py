"""``Linear`` and ``Flatten``: what a classifier head needs after the convolutions."""
from __future__ import annotations

import math

import numpy as np

from ..arrays import as_float_array
from .module import Module


class Linear(Module):
    """``y = x @ weight.T + bias``, mirroring ``torch.nn.Linear`` (weight ``(out, in)``,
    initial values uniform in ``±1/sqrt(in_features)``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=np.float32, rng=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng(rng)
        bound = 1.0 / math.sqrt(in_features)
        self.register_parameter("weight", rng.uniform(
            -bound, bound, (out_features, in_features)).astype(dtype))
        self.register_parameter("bias", rng.uniform(-bound, bound, out_features).astype(dtype)
                                if bias else None)

    def forward(self, x) -> np.ndarray:
        x = as_float_array(x, "input")
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"{self!r} expects inputs (..., {self.in_features}), "
                             f"got shape {x.shape}")
        self._input = x
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias

    def backward(self, grad_output) -> np.ndarray:
        x = self._input.reshape(-1, self.in_features)
        go = np.asarray(grad_output).reshape(-1, self.out_features)
        self._accumulate("weight", go.T @ x)
        if self.bias is not None:
            self._accumulate("bias", go.sum(axis=0))
        return (go @ self.weight).reshape(self._input.shape)

    def output_shape(self, input_shape):
        if tuple(input_shape[-1:]) != (self.in_features,):
            raise ValueError(f"{self!r} expects inputs (..., {self.in_features}), "
                             f"got shape {tuple(input_shape)}")
        return (*input_shape[:-1], self.out_features)

    def macs(self, input_shape) -> int:
        return int(np.prod(input_shape)) * self.out_features

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Flattens every axis from ``start_dim`` on, as ``torch.nn.Flatten`` (default 1)."""

    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x) -> np.ndarray:
        x = np.asarray(x)
        self._shape = x.shape
        return x.reshape(*x.shape[:self.start_dim], -1)

    def backward(self, grad_output) -> np.ndarray:
        return np.asarray(grad_output).reshape(self._shape)

    def output_shape(self, input_shape):
        return (*input_shape[:self.start_dim], int(np.prod(input_shape[self.start_dim:])))
