"""Small built-in models, made only of convkit layers: examples and the default summary."""
from __future__ import annotations

from .nn import Conv2d, DepthwiseSeparableConv2d, ReLU, Sequential

# (expansion, output channels, repeats, first stride): MobileNetV2's table
MOBILENET_V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2_like(in_channels: int = 3, width: int = 32, rng=None) -> Sequential:
    """A MobileNetV2-style stack: a 3x3 stem, then inverted bottlenecks, each a 1x1
    expansion and a depthwise-separable conv (3x3 depthwise + 1x1 projection).

    Residual additions are left out (``Sequential`` chains layers), so the shapes,
    parameters and MACs are MobileNetV2's convolutions without its residual adds.

    >>> model = mobilenet_v2_like()
    >>> model.output_shape((1, 3, 224, 224))
    (1, 1280, 7, 7)
    """
    layers = [Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False, rng=rng), ReLU()]
    channels = width
    for expansion, out, repeats, stride in MOBILENET_V2_BLOCKS:
        for r in range(repeats):
            hidden = channels * expansion
            block = []
            if expansion != 1:
                block += [Conv2d(channels, hidden, 1, bias=False, rng=rng), ReLU()]
            block.append(DepthwiseSeparableConv2d(hidden, out, 3, stride=stride if r == 0 else 1,
                                                  padding=1, bias=False, rng=rng))
            layers.append(Sequential(*block))
            channels = out
    layers += [Conv2d(channels, 1280, 1, bias=False, rng=rng), ReLU()]
    return Sequential(*layers)


def resnext_block(channels: int = 256, width: int = 128, groups: int = 32, rng=None):
    """ResNeXt's bottleneck without its residual add: 1x1 reduce, grouped 3x3, 1x1 expand.

    >>> resnext_block().output_shape((1, 256, 56, 56))
    (1, 256, 56, 56)
    """
    return Sequential(Conv2d(channels, width, 1, bias=False, rng=rng), ReLU(),
                      Conv2d(width, width, 3, padding=1, groups=groups, bias=False, rng=rng),
                      ReLU(), Conv2d(width, channels, 1, bias=False, rng=rng))
