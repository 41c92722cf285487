"""Turning user arrays into what kernels take, with errors that name the argument.

User arrays are never written to: every conversion here either returns a
read-only view of the caller's data or a fresh copy, and kernels only read.
"""
from __future__ import annotations

import numpy as np

COMPUTE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(value, name: str) -> np.ndarray:
    """``value`` as a floating ndarray (float16/32/64); a TypeError names ``name`` otherwise.

    Accepts lists, NumPy arrays of any layout and torch CPU tensors (torch is
    not imported: a tensor is recognised by its ``detach``/``numpy`` methods).
    """
    if value is None:
        raise TypeError(f"{name} must be an array of floats, got None")
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        try:
            value = value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as err:
            raise TypeError(f"{name}: cannot read this tensor as a NumPy array ({err})") from None
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name} must be an array of floats, got {type(value).__name__} "
                        f"that NumPy cannot read as an array ({err})") from None
    if array.dtype.kind != "f" or array.dtype.itemsize > 8:
        raise TypeError(f"{name} must have a float16, float32 or float64 dtype, "
                        f"got dtype {array.dtype} (shape {array.shape})")
    return array


def compute_dtype(*arrays) -> tuple[np.dtype, np.dtype]:
    """(dtype to compute in, dtype to return): NumPy promotion; float16 computes in float32."""
    result = np.result_type(*(a.dtype for a in arrays if a is not None))
    return (np.dtype(np.float32) if result == np.float16 else result), result


def contiguous(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """C-contiguous ``array`` in ``dtype``: the caller's own buffer when it already is one."""
    return np.ascontiguousarray(array, dtype=dtype)


def check_out(out, shape, dtype, **sources) -> None:
    """``out`` can receive a result of ``shape`` and ``dtype``: an ndarray of exactly those,
    C-contiguous, writeable and sharing no memory with any of ``sources`` (argument name:
    the caller's object and the array the kernel reads, a view of it or a copy)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have the result's dtype {np.dtype(dtype)}, got dtype "
                        f"{out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have the result's shape {tuple(shape)}, got shape "
                         f"{out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous, got strides {out.strides} for shape "
                         f"{out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    for name, arrays in sources.items():
        if any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in arrays):
            raise ValueError(f"out must not share memory with {name}: the kernels read "
                             f"{name} while they write out")
