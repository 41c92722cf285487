"""Convolution layers: ``Conv2d``, ``ConvTranspose2d`` (mirroring torch's) and
``DepthwiseSeparableConv2d``."""
from __future__ import annotations

import math

import numpy as np

from .. import functional, gradients, shapes
from ..cost import conv2d_cost
from ..spec import check_channels, parse_settings, standardize_pair
from .module import Module


class _ConvLayer(Module):
    """What the conv layers share: checked settings, torch's initialisation, repr, from_torch.
    A subclass states its weight layout in ``_weight_shape``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, dtype, rng):
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
        self.register_parameter("weight", np.empty(self._weight_shape(), self.dtype))
        self.register_parameter("bias", np.empty(self.out_channels, self.dtype) if bias else None)
        self.reset_parameters(rng)

    def _weight_shape(self):  # pragma: no cover - each layer states it
        raise NotImplementedError

    def reset_parameters(self, rng=None) -> None:
        """torch's initialisation: weight and bias uniform in ``±1/sqrt(fan_in)``.

        torch draws the weight with ``kaiming_uniform_(a=sqrt(5))``, whose bound
        ``gain * sqrt(3 / fan_in)`` with ``gain = sqrt(2 / (1 + a**2))`` is exactly
        ``1 / sqrt(fan_in)``, ``fan_in = weight.shape[1] * kH * kW`` (for Conv2d
        ``in_channels / groups * kH * kW``; for ConvTranspose2d ``out_channels / groups``).
        """
        rng = np.random.default_rng(rng)
        fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = rng.uniform(-bound, bound, self.weight.shape).astype(self.dtype)
        if self.bias is not None:
            self.bias = rng.uniform(-bound, bound, self.bias.shape).astype(self.dtype)

    @classmethod
    def from_torch(cls, module):
        """A convkit copy of the torch layer (weights copied, settings identical)."""
        layer = cls(module.in_channels, module.out_channels, module.kernel_size,
                    stride=module.stride, padding=module.padding, dilation=module.dilation,
                    groups=module.groups, bias=module.bias is not None,
                    padding_mode=module.padding_mode,
                    dtype=str(module.weight.dtype).replace("torch.", ""),
                    **cls._torch_only_settings(module))
        layer.load_state_dict(module.state_dict())
        return layer

    @classmethod
    def _torch_only_settings(cls, module) -> dict:
        return {}

    def _check_channels(self, input_shape):
        if len(input_shape) in (3, 4) and input_shape[-3] != self.in_channels:
            raise ValueError(f"{self!r} expects {self.in_channels} input channels, "
                             f"got input shape {tuple(input_shape)}")

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvLayer):
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
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, rng)

    def _weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def forward(self, x) -> np.ndarray:
        self._input = x
        return self._conv_forward(x, self.weight, self.bias)

    def _conv_forward(self, x, weight, bias) -> np.ndarray:
        return functional._conv2d(x, weight, bias, self.settings)

    def backward(self, grad_output) -> np.ndarray:
        """Gradient with respect to the last input; adds weight and bias gradients to ``grads``."""
        grad_input, grad_weight, grad_bias = gradients._conv2d_backward(
            grad_output, self._input, self.weight, self.settings)
        self._accumulate("weight", grad_weight)
        if self.bias is not None:
            self._accumulate("bias", grad_bias)
        return grad_input

    def cost(self, input_shape):
        """:class:`~convkit.cost.LayerCost` of this layer on ``input_shape`` (checked)."""
        return conv2d_cost(input_shape, self.out_channels, self.kernel_size, self.stride,
                           self.settings.padding, self.dilation, self.groups,
                           self.bias is not None, self.padding_mode)

    def output_shape(self, input_shape):
        self._check_channels(input_shape)
        return self.cost(input_shape).output_shape

    def macs(self, input_shape) -> int:
        return self.cost(input_shape).macs


class ConvTranspose2d(_ConvLayer):
    """Transposed convolution layer, mirroring ``torch.nn.ConvTranspose2d``.

    Weight ``(in_channels, out_channels / groups, kH, kW)``; output size
    ``(H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1``, or
    ``output_size`` given to the call.  Only zero padding, as torch.

    Example:
        >>> import numpy as np
        >>> up = ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, rng=0)
        >>> up(np.zeros((1, 4, 5, 5), np.float32)).shape
        (1, 2, 10, 10)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", dtype=np.float32, rng=None):
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d supports padding_mode='zeros' only (as torch), "
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d takes padding as an int or a pair, "
                             f"got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, rng)
        self.output_padding = standardize_pair(output_padding, "output_padding", minimum=0)
        if any(o >= s and o >= d for o, s, d in zip(self.output_padding, self.stride,
                                                    self.dilation)):
            raise ValueError(f"output_padding must be smaller than stride or dilation: "
                             f"output_padding={output_padding!r}, stride={self.stride}, "
                             f"dilation={self.dilation}")

    def _weight_shape(self):
        return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)

    @classmethod
    def _torch_only_settings(cls, module) -> dict:
        return {"output_padding": module.output_padding}

    def _call_settings(self):
        return dict(stride=self.stride, padding=self.padding, groups=self.groups,
                    dilation=self.dilation)

    def __call__(self, x, output_size=None):
        return self.forward(x, output_size)

    def forward(self, x, output_size=None) -> np.ndarray:
        self._input = x
        out = gradients.conv_transpose2d(x, self.weight, self.bias,
                                         output_padding=self.output_padding,
                                         output_size=output_size, **self._call_settings())
        self._output_hw = out.shape[-2:]
        return out

    def backward(self, grad_output) -> np.ndarray:
        """grad_input is the forward conv of grad_output with the same weight; grad_weight is
        that conv's weight gradient, with the layer's input as its output gradient."""
        x = np.asarray(self._input)
        conv = functional.conv2d(grad_output, self.weight, None, **self._call_settings())
        _, grad_weight, _ = gradients.conv2d_backward(_grow_to(x, conv.shape), grad_output,
                                                      self.weight, **self._call_settings())
        self._accumulate("weight", grad_weight)
        if self.bias is not None:
            go = np.asarray(grad_output)
            self._accumulate("bias", go.sum(axis=(0, 2, 3) if go.ndim == 4 else (1, 2)))
        return conv[..., :x.shape[-2], :x.shape[-1]]  # output_padding >= stride grows conv

    def output_shape(self, input_shape):
        self._check_channels(input_shape)
        size = [shapes.conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in
                zip(input_shape[-2:], self.kernel_size, self.stride, self.padding,
                    self.output_padding, self.dilation)]
        return (*input_shape[:-3], self.out_channels, *size)

    def macs(self, input_shape) -> int:
        """Each input element times its kernel: N * C_in * H * W * (C_out / groups) * kH * kW."""
        n = int(np.prod(input_shape))
        return n * (self.out_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]


def _grow_to(x, shape):
    """``x`` zero-extended at the bottom/right to ``shape`` (output_padding >= stride)."""
    extra = [(0, t - s) for s, t in zip(x.shape, shape)]
    return np.pad(x, extra) if any(e for _, e in extra) else x


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

    def backward(self, grad_output) -> np.ndarray:
        return self.depthwise.backward(self.pointwise.backward(grad_output))

    def output_shape(self, input_shape):
        return self.pointwise.output_shape(self.depthwise.output_shape(input_shape))
