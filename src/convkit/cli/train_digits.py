"""Train a small depthwise-separable CNN, only convkit layers, on scikit-learn's 8x8 digits
(bundled, no download; 20% held out) and print the test accuracy."""
from __future__ import annotations

from ..train import train_digits

HELP = "train a depthwise-separable CNN on the 8x8 digits (needs scikit-learn)"


def add_arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    train_digits(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    return 0
