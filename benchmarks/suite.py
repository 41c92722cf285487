"""The benchmark cases (issue 3's suite) and their arithmetic: FLOPs, minimal bytes."""
from __future__ import annotations

import math
from dataclasses import dataclass

from convkit.cost import conv2d_cost


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    c_in: int
    hw: int
    c_out: int
    kernel: int
    stride: int
    pad: int
    groups: int
    width: int = 0  # 0: square input

    @property
    def input_shape(self):
        return (self.n, self.c_in, self.hw, self.width or self.hw)

    @property
    def weight_shape(self):
        return (self.c_out, self.c_in // self.groups, self.kernel, self.kernel)

    @property
    def settings(self):
        return {"stride": self.stride, "padding": self.pad, "groups": self.groups}

    @property
    def tiny(self) -> bool:
        return self.name.startswith("seed")

    @property
    def kind(self) -> str:
        if self.groups == 1:
            return "dense"
        return "depthwise" if self.groups == self.c_in else "grouped"

    def cost(self):
        return conv2d_cost(self.input_shape, self.c_out, self.kernel, **self.settings)

    def flops(self) -> int:
        return self.cost().flops

    def min_bytes(self, itemsize: int) -> int:
        """Input, weight and output each moved once: the memory roofline's traffic."""
        c = self.cost()
        count = sum(math.prod(shape) for shape in (c.input_shape, c.weight_shape, c.output_shape))
        return count * itemsize

    def backward_bytes(self, itemsize: int) -> int:
        """Output gradient, input and weight read once; input and weight gradients written."""
        c = self.cost()
        sizes = [math.prod(shape) for shape in (c.input_shape, c.weight_shape, c.output_shape)]
        return (2 * sizes[0] + 2 * sizes[1] + sizes[2]) * itemsize


SUITE = [
    Case("seed-g1", 2, 3, 4, 6, 3, 1, 0, 1, width=5),
    Case("seed-g3", 2, 3, 4, 6, 3, 1, 0, 3, width=5),
    Case("resnet-stem", 8, 3, 224, 64, 7, 2, 3, 1),
    Case("resnet-3x3", 8, 64, 56, 64, 3, 1, 1, 1),
    Case("resnet-1x1", 8, 256, 56, 64, 1, 1, 0, 1),
    Case("resnet-3x3-deep", 8, 256, 14, 256, 3, 1, 1, 1),
    Case("resnext-g32", 8, 128, 56, 128, 3, 1, 1, 32),
    Case("resnext-g32-deep", 8, 512, 14, 512, 3, 1, 1, 32),
    Case("mbv2-dw3x3", 8, 144, 56, 144, 3, 1, 1, 144),
    Case("mbv2-dw3x3-s2", 8, 96, 112, 96, 3, 2, 1, 96),
    Case("mbv2-pw", 8, 144, 56, 24, 1, 1, 0, 1),
    Case("effnet-dw5x5", 8, 240, 28, 240, 5, 1, 2, 240),
    Case("shufflenet-g8-1x1", 8, 240, 28, 240, 1, 1, 0, 8),
]


def _depthwise(net, c, hw, k, s):
    return Case(f"{net}-{c}@{hw}-{k}x{k}-s{s}", 8, c, hw, c, k, s, (k - 1) // 2, c)


# ``--mode depthwise``: the depthwise layers of whole networks (batch 8, "same" padding), beyond
# the suite's three: stride 2 and 7x7 / 14x14 planes are where a width-vectorised kernel runs
# short rows.  Not part of issue 3's targets; it keeps the gaps measured.
DEPTHWISE_GRID = [
    _depthwise("mbv2", 32, 112, 3, 1), _depthwise("mbv2", 144, 56, 3, 2),
    _depthwise("mbv2", 192, 28, 3, 1), _depthwise("mbv2", 192, 28, 3, 2),
    _depthwise("mbv2", 384, 14, 3, 1), _depthwise("mbv2", 576, 14, 3, 2),
    _depthwise("mbv2", 960, 7, 3, 1),
    _depthwise("effnet", 144, 56, 5, 2), _depthwise("effnet", 240, 28, 3, 2),
    _depthwise("effnet", 480, 14, 5, 1), _depthwise("effnet", 672, 14, 5, 2),
    _depthwise("effnet", 1152, 7, 5, 1),
    _depthwise("convnext", 96, 56, 7, 1), _depthwise("convnext", 192, 28, 7, 1),
    _depthwise("convnext", 384, 14, 7, 1), _depthwise("convnext", 768, 7, 7, 1),
]
