"""Softmax cross-entropy with its gradient."""
from __future__ import annotations

import numpy as np

from .module import Module


class CrossEntropyLoss(Module):
    """Mean of ``-log softmax(logits)[target]``, as ``torch.nn.CrossEntropyLoss``.

    ``loss = criterion(logits, targets)`` with logits ``(N, classes)`` and integer
    targets ``(N,)``; ``criterion.backward()`` returns d(loss)/d(logits)
    ``= (softmax(logits) - one_hot(targets)) / N``.
    """

    def forward(self, logits, targets) -> float:
        logits = np.asarray(logits, dtype=np.float64)
        targets = np.asarray(targets)
        if logits.ndim != 2 or targets.shape != logits.shape[:1] or targets.dtype.kind not in "iu":
            raise ValueError(f"CrossEntropyLoss takes logits (N, classes) and integer targets "
                             f"(N,), got shapes {logits.shape} and {targets.shape} "
                             f"({targets.dtype})")
        if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[1]):
            raise ValueError(f"targets must lie in [0, {logits.shape[1]}), got values from "
                             f"{targets.min()} to {targets.max()}")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self._probs, self._targets = np.exp(log_probs), targets
        return float(-log_probs[np.arange(len(targets)), targets].mean())

    def __call__(self, logits, targets) -> float:
        return self.forward(logits, targets)

    def backward(self, grad_output=1.0) -> np.ndarray:
        grad = self._probs.copy()
        grad[np.arange(len(self._targets)), self._targets] -= 1
        return grad * (grad_output / len(self._targets))
