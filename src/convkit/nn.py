"""Layers, mirroring ``torch.nn``: ``Conv2d``, ``DepthwiseSeparableConv2d``, ``Sequential``, ``ReLU``.

Parameters are plain NumPy arrays held by name; ``state_dict()`` uses torch's
key names (``"0.depthwise.weight"``), so weights move between the two.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from . import functional
from .arrays import as_float_array
from .spec import check_channels, parse_settings, standardize_pair


class Module:
    """Base class: named parameters, named children, state dicts and a torch-like repr."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self._parameters[name] = value
        object.__setattr__(self, name, value)

    def register_parameter(self, name: str, value: Optional[np.ndarray]) -> None:
        self._parameters[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):  # pragma: no cover - every layer defines it
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        return iter(self._modules.items())

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        for module_name, module in self.named_modules(prefix):
            for name, value in module._parameters.items():
                if value is not None:
                    yield (f"{module_name}.{name}" if module_name else name), value

    def parameters(self) -> Iterator[np.ndarray]:
        return (value for _, value in self.named_parameters())

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters by torch's key names, as copies."""
        return OrderedDict((name, value.copy()) for name, value in self.named_parameters())

    def load_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True) -> None:
        """Load parameters by name.  Everything is checked before anything is assigned.

        Values may be NumPy arrays or torch tensors; they are copied and cast to
        the layer's dtype.  A missing or unexpected key (when ``strict``) or a
        wrong shape raises ``ValueError`` naming the key.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match {type(self).__name__}: "
                             f"missing keys {missing}, unexpected keys {unexpected}")
        staged = {}
        for key, current in own.items():
            if key not in state:
                continue
            value = as_float_array(state[key], f"state_dict[{key!r}]")
            if value.shape != current.shape:
                raise ValueError(f"state_dict[{key!r}] has shape {value.shape}, "
                                 f"expected {current.shape}")
            staged[key] = np.array(value, dtype=current.dtype)
        for key, value in staged.items():
            *path, name = key.split(".")
            module = self
            for part in path:
                module = module._modules[part]
            setattr(module, name, value)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Conv2d(Module):
    """2-D convolution layer, mirroring ``torch.nn.Conv2d``.

    Args:
        in_channels, out_channels: channel counts; both divisible by ``groups``.
        kernel_size: int or ``(kH, kW)``.
        stride, padding, dilation, groups, padding_mode: as :func:`convkit.conv2d`
            (so also asymmetric pads, ``"same"`` at any stride and ``"symmetric"``).
        bias: learn a per-channel bias.
        dtype: parameter dtype (float32 by default, as torch).
        rng: ``numpy.random.Generator`` (or a seed) for the initial weights.

    Shapes: input ``(N, C_in, H, W)`` or ``(C_in, H, W)``; ``weight``
    ``(out_channels, in_channels / groups, kH, kW)``; ``bias`` ``(out_channels,)``.

    Example:
        >>> import numpy as np
        >>> conv = Conv2d(3, 6, 3, groups=3, bias=False, rng=0)
        >>> conv.weight.shape, conv(np.zeros((2, 3, 4, 5), np.float32)).shape
        ((6, 1, 3, 3), (2, 6, 2, 3))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype=np.float32, rng=None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.settings = parse_settings(stride, padding, dilation, groups, padding_mode)
        check_channels(in_channels, out_channels, self.settings.groups)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = standardize_pair(kernel_size, "kernel_size")
        self.stride, self.dilation = self.settings.stride, self.settings.dilation
        self.groups, self.padding_mode = self.settings.groups, self.settings.padding_mode.value
        self.padding = padding if isinstance(padding, str) else _padding_for_repr(padding)
        if np.dtype(dtype) not in (np.float16, np.float32, np.float64):
            raise TypeError(f"dtype must be float16, float32 or float64, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.register_parameter("weight", np.empty(shape, self.dtype))
        self.register_parameter("bias", np.empty(self.out_channels, self.dtype) if bias else None)
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """torch's initialisation: weight and bias uniform in ``±1/sqrt(fan_in)``.

        torch draws the weight with ``kaiming_uniform_(a=sqrt(5))``, whose bound
        ``gain * sqrt(3 / fan_in)`` with ``gain = sqrt(2 / (1 + a**2))`` is exactly
        ``1 / sqrt(fan_in)``, ``fan_in = in_channels / groups * kH * kW``.
        """
        rng = np.random.default_rng(rng)
        fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = rng.uniform(-bound, bound, self.weight.shape).astype(self.dtype)
        if self.bias is not None:
            self.bias = rng.uniform(-bound, bound, self.bias.shape).astype(self.dtype)

    def forward(self, x) -> np.ndarray:
        return self._conv_forward(x, self.weight, self.bias)

    def _conv_forward(self, x, weight, bias) -> np.ndarray:
        return functional._conv2d(x, weight, bias, self.settings)

    @classmethod
    def from_torch(cls, module) -> "Conv2d":
        """A convkit copy of a ``torch.nn.Conv2d`` (weights copied, settings identical)."""
        layer = cls(module.in_channels, module.out_channels, module.kernel_size,
                    stride=module.stride, padding=module.padding, dilation=module.dilation,
                    groups=module.groups, bias=module.bias is not None,
                    padding_mode=module.padding_mode,
                    dtype=str(module.weight.dtype).replace("torch.", ""))
        layer.load_state_dict(module.state_dict())
        return layer

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _padding_for_repr(padding):
    """Padding as torch stores it: ``(pH, pW)``, or the asymmetric pairs as given."""
    if isinstance(padding, int):
        return (padding, padding)
    return tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)


class DepthwiseSeparableConv2d(Module):
    """A depthwise conv (``groups = in_channels``) then a 1x1 pointwise conv (seed 003).

    The depthwise conv has ``in_channels * depth_multiplier`` outputs, each
    channel filtered alone; the pointwise conv mixes them into ``out_channels``.
    With ``bias=False``, 4 -> 8 channels and a 3x3 kernel it holds
    3*3*4 + 1*1*4*8 = 36 + 32 = 68 weights, against 288 for a plain conv.

    Children: ``depthwise`` and ``pointwise`` (:class:`Conv2d`), so the keys of
    ``state_dict()`` are ``depthwise.weight``, ``pointwise.weight``, ...
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, depth_multiplier: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype=np.float32, rng=None):
        super().__init__()
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) \
                or depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be a positive int, got {depth_multiplier!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, (int, np.integer)) \
                or in_channels <= 0:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        rng = np.random.default_rng(rng)
        mid = in_channels * depth_multiplier
        self.depthwise = Conv2d(in_channels, mid, kernel_size, stride, padding, dilation,
                                groups=in_channels, bias=bias, padding_mode=padding_mode,
                                dtype=dtype, rng=rng)
        self.pointwise = Conv2d(mid, out_channels, 1, bias=bias, dtype=dtype, rng=rng)

    def forward(self, x) -> np.ndarray:
        return self.pointwise(self.depthwise(x))


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x) -> np.ndarray:
        return np.maximum(x, 0)


class Sequential(Module):
    """Layers applied in order; children are named ``"0"``, ``"1"``, ... as in torch."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes convkit.nn modules, got {layer!r} at "
                                f"position {i}")
            self._modules[str(i)] = layer

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x
