"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from __future__ import annotations



class SGD:
    """``v = momentum * v + (grad + weight_decay * p)``; ``p -= lr * v`` (torch's rule).

    Takes the model (not a parameter list): parameters are updated in place, with the
    gradients that ``backward`` accumulated in each layer's ``grads``.
    """

    def __init__(self, model, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.model, self.lr, self.momentum, self.weight_decay = model, lr, momentum, weight_decay
        self._velocity = {}

    def step(self) -> None:
        for name, param, grad in self.model.named_gradients():
            if grad is None:
                continue
            if self.weight_decay:
                grad = grad + self.weight_decay * param
            if self.momentum:
                v = self._velocity.get(name)
                v = grad.copy() if v is None else self.momentum * v + grad
                self._velocity[name] = v
                grad = v
            param -= (self.lr * grad).astype(param.dtype, copy=False)

    def zero_grad(self) -> None:
        self.model.zero_grad()
