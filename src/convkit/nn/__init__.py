"""Layers, mirroring ``torch.nn``.

Parameters are plain NumPy arrays held by name; ``state_dict()`` uses torch's
key names (``"0.depthwise.weight"``), so weights move between the two.
``backward(grad_output)`` returns the input gradient and accumulates parameter
gradients in ``layer.grads`` (see :mod:`convkit.nn.module`).
"""
from .activation import ReLU
from .container import Sequential
from .conv import Conv2d, ConvTranspose2d, DepthwiseSeparableConv2d
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss
from .module import Module
from .pooling import GlobalAvgPool2d, MaxPool2d

__all__ = ["Module", "Conv2d", "ConvTranspose2d", "DepthwiseSeparableConv2d", "ReLU",
           "Sequential", "Linear", "Flatten", "MaxPool2d", "GlobalAvgPool2d",
           "CrossEntropyLoss"]
