"""Train a depthwise-separable CNN made only of convkit layers on scikit-learn's 8x8 digits.

    python examples/train_digits.py        (the same as: convkit train-digits)
"""
from convkit.train import train_digits

if __name__ == "__main__":
    train_digits()
