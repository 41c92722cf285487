"""Gradients of ``conv2d`` and the transposed convolution, on the kernels of ``kernels/``.

For ``out = conv2d(x, w, b)`` and a ``grad_output`` of out's shape:

* ``grad_input``  = the transposed convolution of grad_output with ``w`` (the adjoint of
  conv2d in x), folded back through the padding: a reflected border pixel's gradient goes
  to the pixel it copies, a zero border's is dropped;
* ``grad_weight`` = the correlation of the (padded) input with grad_output;
* ``grad_bias``   = grad_output summed over batch and space.

``conv_transpose2d(x, w)`` is exactly that adjoint: the ``grad_input`` of a convolution
whose output has ``x``'s shape.
"""
from __future__ import annotations

import numpy as np

from . import kernels
from .arrays import as_float_array, contiguous
from .functional import _tidy_arrays, deliver, output_target, read_arrays, to_compute
from .kernels import backward
from . import shapes
from .spec import ConvSettings, parse_settings, standardize_pair


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """Gradients of :func:`convkit.conv2d`: ``(grad_input, grad_weight, grad_bias)``.

    Args are those of the forward call (every padding form and mode, unbatched input);
    ``grad_output`` has the forward output's shape.  Equal to torch autograd's
    ``x.grad, w.grad, b.grad`` for ``conv2d(x, w, b).backward(grad_output)``.

    Example:
        >>> import numpy as np, convkit
        >>> x, w = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
        >>> gi, gw, gb = convkit.conv2d_backward(np.ones((2, 4, 3, 3)), x, w)
        >>> gi.shape, gw.shape, gb.tolist()
        ((2, 3, 5, 5), (4, 3, 3, 3), [18.0, 18.0, 18.0, 18.0])
    """
    settings = parse_settings(stride, padding, dilation, groups, padding_mode)
    return _conv2d_backward(grad_output, input, weight, settings)


def _conv2d_backward(grad_output, input, weight, settings: ConvSettings):
    x, w, _, out_dtype, unbatched = _tidy_arrays(input, weight, None, settings.groups)
    problem = kernels.Problem.cached(x.shape, w.shape, settings, x.dtype)
    go = _tidy_grad_output(grad_output, problem, unbatched, out_dtype)
    grad_input = backward.input_gradient(go, w, problem)
    grad_weight, grad_bias = backward.weight_and_bias_gradients(go, x, problem)
    grad_input = grad_input[0] if unbatched else grad_input
    return tuple(g.astype(out_dtype, copy=False) for g in (grad_input, grad_weight, grad_bias))


def _tidy_grad_output(grad_output, problem, unbatched, out_dtype):
    go = as_float_array(grad_output, "grad_output")
    expected = (problem.n, problem.c_out, problem.out_h, problem.out_w)
    shown = expected[1:] if unbatched else expected
    if go.shape != shown:
        raise ValueError(f"grad_output must have the forward output's shape {shown}, "
                         f"got shape {go.shape}")
    return contiguous(go[None] if unbatched else go, problem.dtype)


def per_sample_conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1,
                               groups=1, padding_mode="zeros"):
    """Gradients of :func:`convkit.per_sample_conv2d`: ``(grad_input, grad_weight, grad_bias)``
    with ``grad_weight`` ``(N, C_out, C_in/groups, kH, kW)`` and ``grad_bias`` ``(N, C_out)``:
    one weight gradient per sample, in one call (the batch folded into the groups)."""
    settings = parse_settings(stride, padding, dilation, groups, padding_mode)
    x = as_float_array(input, "input")
    w = as_float_array(weight, "weight")
    if x.ndim != 4 or w.ndim != 5 or w.shape[0] != x.shape[0]:
        raise ValueError(f"per-sample gradients need input (N, C_in, H, W) and weight "
                         f"(N, C_out, C_in/groups, kH, kW) with the same N, got input shape "
                         f"{x.shape} and weight shape {w.shape}")
    n, c_out = w.shape[:2]
    go = as_float_array(grad_output, "grad_output")
    folded = ConvSettings(settings.stride, settings.padding, settings.dilation,
                          settings.groups * n, settings.padding_mode)
    gi, gw, gb = _conv2d_backward(go.reshape(1, n * c_out, *go.shape[2:]) if go.ndim == 4
                                  else go, x.reshape(1, -1, *x.shape[2:]),
                                  w.reshape(n * c_out, *w.shape[2:]), folded)
    return gi.reshape(x.shape), gw.reshape(w.shape), gb.reshape(n, c_out)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, output_size=None, *, out=None):
    """Transposed convolution, exactly ``torch.nn.functional.conv_transpose2d``.

    Args:
        input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        weight: ``(C_in, C_out / groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, padding, output_padding, dilation: int or pair; ``output_padding`` must be
            smaller than ``stride`` or ``dilation``.
        output_size: ``(H_out, W_out)`` (or with batch and channels), as torch's
            ``ConvTranspose2d`` takes it: chooses ``output_padding``.
        out: optional array the result is written into and returned, as in
            :func:`convkit.conv2d` (exact shape and dtype, C-contiguous, no shared memory
            with the arguments): an upsampling layer's result is often past the 32 MiB
            beyond which every new result gets fresh, OS-zeroed pages.

    Output: ``H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) +
    output_padding + 1``.  It is the gradient of ``conv2d(y, weight, stride=stride,
    padding=padding, dilation=dilation, groups=groups)`` with respect to ``y``.

    Example:
        >>> import numpy as np, convkit
        >>> convkit.conv_transpose2d(np.ones((1, 4, 3, 3)), np.ones((4, 2, 3, 3)), stride=2,
        ...                          padding=1, output_padding=1).shape
        (1, 2, 6, 6)
    """
    settings = parse_settings(stride, padding, dilation, groups)
    if isinstance(settings.padding, str) or any(lo != hi for lo, hi in settings.padding):
        raise ValueError(f"conv_transpose2d takes padding as an int or a pair, got {padding!r}")
    x, w, b, out_dtype, unbatched = _tidy_transposed(input, weight, bias, settings.groups)
    out_hw = _transposed_size(x.shape[2:], w.shape[2:], settings, output_padding, output_size)
    # the forward conv from an output-sized array back to the input: its weight is ``w``
    spec = settings.resolve(w.shape[2:], out_hw)
    problem = kernels.Problem.of((x.shape[0], w.shape[1] * settings.groups, *out_hw), w.shape,
                                 spec, x.dtype)
    if (problem.out_h, problem.out_w) != x.shape[2:]:  # output_padding >= stride (< dilation)
        x = np.pad(x, ((0, 0), (0, 0), (0, problem.out_h - x.shape[2]),
                       (0, problem.out_w - x.shape[3])))
    target = output_target(out, (problem.n, problem.c_in, *out_hw), out_dtype, problem.dtype,
                           unbatched, input=(input, x), weight=(weight, w), bias=(bias, b))
    result = backward.input_gradient(x, w, problem, out=target)
    if b is not None:
        result += b[:, None, None]
    return deliver(result, target, out, out_dtype, unbatched)


def _tidy_transposed(input, weight, bias, groups):
    x, w, b = read_arrays(input, weight, bias)
    if w.ndim != 4 or min(w.shape[2:]) < 1:
        raise ValueError(f"weight must be 4-D (C_in, C_out/groups, kH, kW), got shape {w.shape}")
    c_in = x.shape[-3]
    if w.shape[0] != c_in:
        raise ValueError(f"weight.shape[0] must equal input channels: weight shape {w.shape}, "
                         f"input shape {x.shape} has {c_in} channels")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide input channels={c_in}")
    c_out = w.shape[1] * groups
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},) (weight.shape[1] * groups), "
                         f"got shape {b.shape}")
    return to_compute(x, w, b)


def _transposed_size(in_hw, kernel, settings, output_padding, output_size):
    """torch's rule: (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1."""
    stride, dilation = settings.stride, settings.dilation
    pads = (settings.padding[0][0], settings.padding[1][0])
    smallest = [shapes.conv_transpose_output_size(n, k, s, p, 0, d)
                for n, k, s, p, d in zip(in_hw, kernel, stride, pads, dilation)]
    if output_size is not None:
        size = tuple(output_size)[-2:]
        if len(tuple(output_size)) not in (2, 4) or not all(
                lo <= n < lo + s for n, lo, s in zip(size, smallest, stride)):
            raise ValueError(f"output_size must be (H_out, W_out) with each between "
                             f"{smallest} and {[lo + s - 1 for lo, s in zip(smallest, stride)]}"
                             f" for this input, got {output_size!r}")
        return size
    extra = standardize_pair(output_padding, "output_padding", minimum=0)
    if any(e >= s and e >= d for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"output_padding must be smaller than stride or dilation: "
                         f"output_padding={output_padding!r}, stride={stride}, "
                         f"dilation={dilation}")
    size = tuple(lo + e for lo, e in zip(smallest, extra))
    if min(size) < 1:
        raise ValueError(f"the output would be empty: size {size} for input size "
                         f"{tuple(in_hw)}, kernel {tuple(kernel)}, padding {pads}")
    return size
