"""Public convolution functions.  They tidy their arguments and hand them to a kernel."""
from __future__ import annotations

import numpy as np

from . import kernels
from .arrays import as_float_array, check_out, compute_dtype, contiguous
from .spec import ConvSettings, check_channels, parse_settings


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, out=None) -> np.ndarray:
    """2-D convolution (cross-correlation), exactly ``torch.nn.functional.conv2d``.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; any float array-like.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: int or ``(h, w)``, each >= 1.
        padding: int; ``(pH, pW)``; asymmetric ``((top, bottom), (left, right))``;
            ``"valid"`` (none); ``"same"``; ``"same_lower"``.  ``"same"`` keeps
            ``ceil(in / stride)`` outputs: at stride 1 this is torch's 'same' (the odd
            extra pixel at the bottom/right); at stride > 1, which torch refuses, it is
            ONNX SAME_UPPER / TensorFlow 'SAME' (total pad
            ``max(0, (out - 1) * stride + dilation * (k - 1) + 1 - in)``, smaller half
            before).  ``"same_lower"`` is ONNX SAME_LOWER (larger half before).
            Asymmetric pads follow ONNX ``pads``; torch only has them through ``F.pad``.
        groups: splits ``C_in`` and ``C_out`` into this many independent convolutions.
        padding_mode: ``"zeros"``, ``"reflect"`` (pad < size), ``"replicate"``,
            ``"circular"`` (pad <= size) as in ``torch.nn.Conv2d``, or ``"symmetric"``
            (``numpy.pad``'s mode: the edge repeated; pad <= size).  torch offers modes
            only on the layer; here the function takes them too.
        out: optional C-contiguous, writeable array of exactly the result's shape and
            dtype, sharing no memory with ``input``, ``weight`` or ``bias``; the result is
            written into it and it is returned (NumPy's ``out=``; torch's ``conv2d`` has
            none).  For loops over same-shaped calls: a new result of more than 32 MiB
            gets fresh pages from the OS on every call, which the kernel then zeroes
            page by page (5-15 ms measured for a 51 MB float64 ResNet stem output).

    Returns:
        ``(N, C_out, H_out, W_out)`` (or ``(C_out, H_out, W_out)``) in the promoted
        dtype of the arguments (float16 is computed in float32), with
        ``H_out = (H + top + bottom - dilation[0] * (kH - 1) - 1) // stride[0] + 1``
        and likewise for ``W_out``.  ``out`` itself when given.

    Example:
        >>> import numpy as np, convkit
        >>> x = np.ones((2, 3, 4, 5), np.float32)
        >>> w = np.ones((6, 1, 3, 3), np.float32)
        >>> convkit.conv2d(x, w, groups=3).shape
        (2, 6, 2, 3)
    """
    settings = parse_settings(stride, padding, dilation, groups, padding_mode)
    return _conv2d(input, weight, bias, settings, out)


def _conv2d(input, weight, bias, settings: ConvSettings, out=None) -> np.ndarray:
    x, w, b, out_dtype, unbatched = _tidy_arrays(input, weight, bias, settings.groups)
    problem = kernels.Problem.cached(x.shape, w.shape, settings, x.dtype)
    target = output_target(out, (problem.n, problem.c_out, problem.out_h, problem.out_w),
                           out_dtype, problem.dtype, unbatched,
                           input=(input, x), weight=(weight, w), bias=(bias, b))
    if problem.n == 0:  # nothing to compute (the kernels split work by samples)
        result = problem.output(target)
    else:
        result = kernels.run(x, w, b, problem, out=target)
    return deliver(result, target, out, out_dtype, unbatched)


def output_target(out, shape, out_dtype, compute_dtype, unbatched, **sources):
    """Check a caller's ``out`` for a result whose 4-D shape is ``shape`` (see
    :func:`convkit.arrays.check_out`); return the 4-D array a kernel may write straight into,
    or None: no ``out``, or a float16 one that takes a cast copy of the float32 result."""
    if out is None:
        return None
    check_out(out, shape[1:] if unbatched else shape, out_dtype, **sources)
    if out_dtype != compute_dtype:
        return None
    return out[None] if unbatched else out


def deliver(result, target, out, out_dtype, unbatched):
    """What the caller gets from a kernel's 4-D ``result``: ``out`` (filled, unless the kernel
    wrote into ``target`` already) or the result in the caller's dtype and dimensions."""
    if out is None:
        return (result[0] if unbatched else result).astype(out_dtype, copy=False)
    if result is not target:
        np.copyto(out, result[0] if unbatched else result, casting="same_kind")
    return out


def _tidy_arrays(input, weight, bias, groups):
    """Check shapes and dtypes; return contiguous arrays in the compute dtype."""
    x, w, b = read_arrays(input, weight, bias)
    check_weight_shape(w.shape)
    c_in = x.shape[-3]
    check_channels(c_in, w.shape[0], groups, in_name="input channels",
                   out_name="weight.shape[0] (out channels)")
    if w.shape[1] * groups != c_in:
        raise ValueError(f"weight.shape[1] * groups must equal input channels: weight shape "
                         f"{w.shape} with groups={groups} expects {w.shape[1] * groups} "
                         f"channels, input shape {x.shape} has {c_in}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"bias must have shape ({w.shape[0]},) to match weight shape "
                         f"{w.shape}, got shape {b.shape}")
    return to_compute(x, w, b)


def read_arrays(input, weight, bias):
    """The arguments as float arrays; the input 3-D or 4-D."""
    x = as_float_array(input, "input")
    w = as_float_array(weight, "weight")
    b = None if bias is None else as_float_array(bias, "bias")
    if x.ndim not in (3, 4):
        raise ValueError(f"input must be 4-D (N, C_in, H, W) or 3-D (C_in, H, W), "
                         f"got shape {x.shape}")
    return x, w, b


def to_compute(x, w, b):
    """(x as 4-D, w, b) contiguous in the compute dtype, the dtype to return, unbatched?"""
    dtype, out_dtype = compute_dtype(x, w, b)
    unbatched = x.ndim == 3
    x = contiguous(x[None] if unbatched else x, dtype)
    return x, contiguous(w, dtype), None if b is None else contiguous(b, dtype), out_dtype, \
        unbatched


def check_weight_shape(shape) -> None:
    if len(shape) != 4:
        raise ValueError(f"weight must be 4-D (C_out, C_in/groups, kH, kW), got shape {shape}")
    if min(shape[2:]) < 1:
        raise ValueError(f"weight kernel size must be >= 1 in both axes, got shape {shape}")


def per_sample_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                      padding_mode="zeros") -> np.ndarray:
    """A different kernel for every sample: ``out[i] = conv2d(input[i], weight[i], bias[i])``.

    Args:
        input: ``(N, C_in, H, W)``.
        weight: ``(N, C_out, C_in / groups, kH, kW)``, one kernel per sample.
        bias: ``(N, C_out)`` or None.
        stride, padding, dilation, groups, padding_mode: as :func:`conv2d`.

    Returns:
        ``(N, C_out, H_out, W_out)``.

    One call, no loop over samples: the batch is folded into the channels and
    run as a single grouped convolution with ``N * groups`` groups (the trick
    seed 004 reaches for: input ``(1, N * C_in, H, W)``, weight
    ``(N * C_out, C_in / groups, kH, kW)``).

    Example:
        >>> import numpy as np, convkit
        >>> x = np.ones((4, 8, 10, 10)); w = np.ones((4, 2, 8, 3, 3))
        >>> convkit.per_sample_conv2d(x, w).shape
        (4, 2, 8, 8)
    """
    settings = parse_settings(stride, padding, dilation, groups, padding_mode)
    x = as_float_array(input, "input")
    w = as_float_array(weight, "weight")
    b = None if bias is None else as_float_array(bias, "bias")
    if x.ndim != 4:
        raise ValueError(f"input must be 4-D (N, C_in, H, W) for per-sample kernels, "
                         f"got shape {x.shape}")
    if w.ndim != 5 or w.shape[0] != x.shape[0]:
        raise ValueError(f"weight must be 5-D (N, C_out, C_in/groups, kH, kW) with "
                         f"N = input.shape[0] = {x.shape[0]}, got shape {w.shape}")
    n, c_out = w.shape[:2]
    if b is not None and b.shape != (n, c_out):
        raise ValueError(f"bias must have shape ({n}, {c_out}) to match weight shape "
                         f"{w.shape}, got shape {b.shape}")
    folded = ConvSettings(settings.stride, settings.padding, settings.dilation,
                          settings.groups * n, settings.padding_mode)
    if n == 0:  # nothing to fold; the shape rule still applies
        return _conv2d(x, np.zeros((c_out, *w.shape[2:]), w.dtype), None, settings)
    out = _conv2d(x.reshape(1, n * x.shape[1], *x.shape[2:]), w.reshape(n * c_out, *w.shape[2:]),
                  None if b is None else b.reshape(n * c_out), folded)
    return out.reshape(n, c_out, *out.shape[2:])
