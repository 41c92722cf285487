"""Layers, mirroring ``torch.nn``.

Parameters are plain NumPy arrays held by name; ``state_dict()`` uses torch's
key names (``"0.depthwise.weight"``), so weights move between the two.
"""
from .activation import ReLU
from .container import Sequential
from .conv import Conv2d, DepthwiseSeparableConv2d
from .module import Module

__all__ = ["Module", "Conv2d", "DepthwiseSeparableConv2d", "ReLU", "Sequential"]
