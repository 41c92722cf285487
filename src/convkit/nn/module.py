"""The layer base class: named parameters, named children, state dicts, a torch-like repr.

Every layer also states its shape rule, ``output_shape(input_shape)``, and its
cost, ``macs(input_shape)``, as pure integer functions: the summary uses them
without running anything.

Training: ``forward`` keeps a reference to its input (never a copy, never
written); ``backward(grad_output)`` returns the gradient with respect to that
input and *adds* each parameter's gradient into ``module.grads[name]`` (as torch
accumulates ``.grad``), until ``zero_grad()`` clears them.  ``named_gradients()``
pairs every parameter with its gradient for an optimiser.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from ..arrays import as_float_array


class Module:
    """Base class: named parameters, named children, state dicts and a torch-like repr."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "grads", {})

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

    def backward(self, grad_output):  # pragma: no cover - every trainable layer defines it
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def _accumulate(self, name: str, grad: np.ndarray) -> None:
        grad = grad.astype(self._parameters[name].dtype, copy=False)
        self.grads[name] = grad if name not in self.grads else self.grads[name] + grad

    def zero_grad(self) -> None:
        """Forget the accumulated gradients of this layer and all its children."""
        for _, module in self.named_modules():
            module.grads.clear()

    def named_gradients(self) -> Iterator[Tuple[str, np.ndarray, Optional[np.ndarray]]]:
        """``(name, parameter, gradient or None)`` for every parameter, torch's key names."""
        for module_name, module in self.named_modules():
            for name, value in module._parameters.items():
                if value is not None:
                    key = f"{module_name}.{name}" if module_name else name
                    yield key, value, module.grads.get(name)

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

    def output_shape(self, input_shape: Tuple[int, ...]) -> Tuple[int, ...]:
        """Shape of ``self(x)`` for ``x`` of ``input_shape``, from integers only."""
        raise NotImplementedError(f"{type(self).__name__} does not state its output shape")

    def macs(self, input_shape: Tuple[int, ...]) -> int:
        """Multiply-accumulates of ``self(x)`` itself (children not included)."""
        return 0

    def save(self, path) -> None:
        """Write the parameters to ``path`` (``.safetensors`` or ``.npz``), torch's key names."""
        from .. import weights
        weights.save(self, path)

    def load(self, path, strict: bool = True) -> None:
        """Load parameters from ``path``; a bad file raises and changes nothing."""
        from .. import weights
        weights.load(self, path, strict=strict)
