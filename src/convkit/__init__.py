"""convkit: 2-D convolution for NumPy, exactly as PyTorch computes it, and fast on the CPU."""
from . import nn
from .explain import explain
from .functional import conv2d, per_sample_conv2d
from .gradients import conv2d_backward, conv_transpose2d, per_sample_conv2d_backward
from .summary import Summary, summary
from .spec import PaddingMode

__all__ = ["conv2d", "per_sample_conv2d", "conv2d_backward", "per_sample_conv2d_backward",
           "conv_transpose2d", "explain", "summary", "Summary", "nn", "PaddingMode"]
__version__ = "0.1.0"
