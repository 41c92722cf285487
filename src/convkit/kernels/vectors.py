"""512-bit vectors for the Numba kernels on every CPU that has them.

LLVM tunes Intel's server cores (Skylake-SP to Emerald Rapids) with ``prefer-256-bit``: their
512-bit units once cost clock speed, so its loop vectoriser stops at ymm registers there even
though the cores have two 512-bit FMA units.  The direct and grouped kernels are FMA- and
load-bound loops (one multiply-add per loaded input vector), so on those machines they ran at
half the width they could.  Emerald Rapids, 2 threads, ratio to ONNX Runtime in the same
process, ymm -> zmm: effnet-dw5x5 1.26-1.31 -> 0.91-1.05, ConvNeXt 7x7 on 28x28 1.72-1.95 ->
1.48-1.55, resnext-g32-deep 1.31-1.38 -> 1.19-1.21; memory-bound layers unchanged.  Where
LLVM already prefers 512-bit vectors (AMD Zen 4: the 16-lane loops other docstrings here
describe were measured there) lifting the preference changes nothing, and CPUs without
AVX-512 are left alone.

Numba reads its target features once, when its CPU target is first built (the first ``@njit``
in the process), from ``NUMBA_CPU_FEATURES`` if set, else the host's.  So before any kernel
module is imported this sets that variable to the host's features with ``-prefer-256-bit``
appended.  It is process-wide: Numba code of the caller's own, compiled in the same process,
gets the same tuning.  Left alone when the caller chose: ``NUMBA_CPU_FEATURES`` or
``NUMBA_CPU_NAME`` already set (a portable cache, say; setting ``NUMBA_CPU_FEATURES`` to the
host's own features is the way to keep LLVM's choice), or Numba's CPU target already built.
Numba keys its disk cache on these features, so caches of either tuning never mix.
"""
from __future__ import annotations

import os
import sys

PREFER_WIDE = "-prefer-256-bit"


def wide_vector_features() -> str | None:
    """The feature string that asks LLVM for 512-bit vectors on this host, or None where that
    changes nothing (no AVX-512)."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        return None
    return f"{features},{PREFER_WIDE}"


def prefer_wide_vectors() -> bool:
    """Ask Numba for 512-bit vectors (see the module docstring); True if this call did."""
    if "NUMBA_CPU_FEATURES" in os.environ or "NUMBA_CPU_NAME" in os.environ:
        return False
    numba_registry = sys.modules.get("numba.core.registry")
    if numba_registry is not None and "_toplevel_target_context" in vars(
            numba_registry.cpu_target):
        return False  # Numba's code generator exists: too late, and not ours to change
    features = wide_vector_features()
    if features is None:
        return False
    os.environ["NUMBA_CPU_FEATURES"] = features
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba imported already: its config was read from the environment
        config.CPU_FEATURES = features
    return True
