"""Containers."""
from __future__ import annotations

from .module import Module


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

    def backward(self, grad_output):
        for layer in reversed(self._modules.values()):
            grad_output = layer.backward(grad_output)
        return grad_output

    def output_shape(self, input_shape):
        for name, layer in self._modules.items():
            input_shape = layer.output_shape(input_shape)
        return tuple(input_shape)
