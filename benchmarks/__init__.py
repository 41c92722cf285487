"""convkit's speed suite against PyTorch and ONNX Runtime.  Run ``python -m benchmarks``."""
