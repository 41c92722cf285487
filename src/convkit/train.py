"""Train a small depthwise-separable CNN, built only from convkit layers, on 8x8 digits.

The data is scikit-learn's bundled ``load_digits`` (1,797 8x8 images, no download);
a fixed 20% of it is held out for the test accuracy.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import List

import numpy as np

from . import nn
from .optim import SGD


def digits_model(rng=None) -> nn.Sequential:
    """1x8x8 -> 10 logits: a 3x3 stem, two depthwise-separable blocks each followed by 2x2
    max pooling, and a linear head on the 128x2x2 features (where a digit's strokes are
    matters, so the head sees them rather than a global average)."""
    rng = np.random.default_rng(rng)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, rng=rng), nn.ReLU(),
        nn.DepthwiseSeparableConv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.DepthwiseSeparableConv2d(64, 128, 3, padding=1, rng=rng), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(128 * 2 * 2, 10, rng=rng))


def load_digits_split(seed: int = 0, test_fraction: float = 0.2):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) standardised with the training
    split's mean and standard deviation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits example needs scikit-learn: "
                          "pip install 'convkit[examples]'") from None
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(len(x) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


@dataclass
class History:
    losses: List[float]  # mean training loss of each epoch
    test_accuracy: float
    seconds: float


def train_digits(epochs: int = 12, batch_size: int = 32, lr: float = 0.05,
                 momentum: float = 0.9, seed: int = 0, limit=None, out=sys.stdout) -> History:
    """Train on the digits; print a progress bar per epoch and the final test accuracy."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    model, criterion = digits_model(seed), nn.CrossEntropyLoss()
    optimiser = SGD(model, lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)
    start, losses = time.perf_counter(), []
    batches = -(-len(x_train) // batch_size)
    for epoch in range(epochs):
        order, total = rng.permutation(len(x_train)), 0.0
        for b in range(batches):
            index = order[b * batch_size:(b + 1) * batch_size]
            optimiser.zero_grad()
            loss = criterion(model(x_train[index]), y_train[index])
            model.backward(criterion.backward().astype(np.float32))
            optimiser.step()
            total += loss * len(index)
            _progress(out, epoch, epochs, b + 1, batches, total / min((b + 1) * batch_size,
                                                                      len(x_train)))
        losses.append(total / len(x_train))
        print(file=out)
    accuracy = float((predict(model, x_test) == y_test).mean())
    seconds = time.perf_counter() - start
    print(f"test accuracy {accuracy:.2%} on {len(x_test)} held-out digits "
          f"({seconds:.1f} s)", file=out)
    return History(losses, accuracy, seconds)


def predict(model, x, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([model(x[i:i + batch_size]).argmax(axis=1)
                           for i in range(0, len(x), batch_size)])


def _progress(out, epoch, epochs, done, total, loss, width=30):
    filled = width * done // total
    print(f"\repoch {epoch + 1:2d}/{epochs} [{'#' * filled}{'.' * (width - filled)}] "
          f"loss {loss:.4f}", end="", file=out, flush=True)
