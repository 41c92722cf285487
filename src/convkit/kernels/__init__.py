"""Kernel choice: one explicit table, first match wins.

Every kernel has the same signature::

    run(x, w, b, problem) -> out

``x`` (N, C_in, H, W) and ``w`` (C_out, C_in/groups, kH, kW) are C-contiguous in
the compute dtype (float32 or float64), ``b`` is (C_out,) or None, and
``problem`` holds the shapes and the resolved :class:`~convkit.spec.ConvSpec`.
Kernels never validate: the entry points already did.  Every kernel reads the
border itself, through :func:`convkit.padding.index_map` (the reference through
``numpy.pad``), so no padding mode costs a full padded copy of the input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..padding import index_map
from ..spec import ConvSpec
from .vectors import prefer_wide_vectors

prefer_wide_vectors()  # before the first kernel module builds Numba's CPU target (vectors.py)

from . import direct, gemm, grouped, pointwise, reference, stem, winograd  # noqa: E402


PROBLEMS_KEPT = 1024  # Problem.cached's memory: cleared when full
_PROBLEMS: dict = {}


@dataclass(frozen=True)
class Problem:
    """Shapes of one convolution call plus its resolved spec."""

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    out_h: int
    out_w: int
    spec: ConvSpec
    dtype: np.dtype

    @classmethod
    def of(cls, x_shape, w_shape, spec: ConvSpec, dtype) -> "Problem":
        n, c_in, h, w = x_shape
        c_out, _, kh, kw = w_shape
        out_h, out_w = spec.output_size((h, w), (kh, kw))
        return cls(n, c_in, h, w, c_out, kh, kw, out_h, out_w, spec, np.dtype(dtype))

    @classmethod
    def cached(cls, x_shape, w_shape, settings, dtype) -> "Problem":
        """``Problem.of`` for ``settings`` (a :class:`~convkit.spec.ConvSettings`) resolved on
        these shapes, remembered: a layer called in a loop pays the resolution once (its
        checks raise as ``ConvSettings.resolve`` does; failures are not remembered)."""
        key = (x_shape, w_shape, settings, dtype)
        problem = _PROBLEMS.get(key)
        if problem is None:
            spec = settings.resolve(w_shape[2:], x_shape[2:])
            problem = cls.of(x_shape, w_shape, spec, dtype)
            if len(_PROBLEMS) >= PROBLEMS_KEPT:
                _PROBLEMS.clear()
            _PROBLEMS[key] = problem
        return problem

    def index_maps(self):
        """(row map, column map) of the padded input: for every padded row / column, the
        input row / column it reads, -1 for zero (:func:`convkit.padding.index_map`)."""
        (top, bottom), (left, right) = self.spec.pads
        return (index_map(self.h, top, bottom, self.spec.padding_mode),
                index_map(self.w, left, right, self.spec.padding_mode))

    def output(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The array a kernel writes every element of: ``out`` (the caller's, checked to be
        ``(n, c_out, out_h, out_w)``, C-contiguous, in ``dtype``) or a new one."""
        return np.empty((self.n, self.c_out, self.out_h, self.out_w), self.dtype) \
            if out is None else out

    @property
    def group_in(self) -> int:
        return self.c_in // self.spec.groups

    @property
    def group_out(self) -> int:
        return self.c_out // self.spec.groups


@dataclass(frozen=True)
class Kernel:
    name: str
    supports: Callable[[Problem], bool]
    run: Callable[..., np.ndarray]


def _reference_run(x, w, b, problem: Problem, out=None) -> np.ndarray:
    result = reference.conv2d_reference(x, w, b, problem.spec)
    if out is None:
        return result.astype(problem.dtype, copy=False)
    np.copyto(out, result, casting="same_kind")
    return out


# The table.  Order matters: the first kernel whose ``supports`` accepts wins.
#   grouped     grouped, 2-32 input and >= 4 output channels per group, stride 1 (ResNeXt,
#               ShuffleNet's grouped 1x1): too small for BLAS, so direct loops (grouped.layout):
#               output channels filling 1-2 whole vectors, kernels >= 2 wide: vectorised over
#               output channels, blocks of a row's pixels, one padded copy, stored turned
#               into the planes in registers; else over flat planes:
#               zero-padded "same" planes, and 1x1 read in place,
#               in explicit-vector register blocks of 4 output channels x 5 vectors of
#               pixels (or 5 x 4, 8 x 3; a plane's last pixels in a block of as many
#               vectors as they fill) over masked copies at the input's pitch, stored
#               straight into the output; other paddings an LLVM-vectorised loop over
#               padded planes, register-blocked over 4 output channels
#   direct      the other grouped with C_in/groups <= 4: depthwise (any depth multiplier),
#               strided or with few outputs per group: memory-bound, so one pass over
#               each input plane, borders read in place (depthwise stride 1, dilation 1,
#               output rows at least a vector wide (3x3: 7/4 of one): four rows at a time
#               in explicit register blocks (simd.py) of one or two vectors, a row's
#               vectors in unrolled pairs up to eight, straight into the output; other
#               depthwise stride 1 with zero "same" padding on planes up to 32 wide, 16 in
#               float64: straight into the output through masked copies; stride 2
#               with zero padding on planes up to 32 wide, 56 for kernels from 5x5 up:
#               the samples side by side in the phase planes; 3x3 stride 2 on wider,
#               even planes: planes split into column phases in one flat loop; the rest
#               on padded stride-phase planes; direct.path says which kernel) -- except
#               depthwise layers with at least a vector of channels and output rows up to
#               64 pixels at stride 2, or with 7x7 kernels, or 5x5 where the rows kernel
#               would not run, or 3x3 on rows up to half a vector (7x7 planes in float32):
#               vectorised over channels instead (channels.py: a block of
#               a vector's channels turned channels-last into a padded tile in registers,
#               register blocks of a row's pixels, stored turned back into the planes)
#   stem        dense with at most 4 input channels (a network's first layer, RGB in), output
#               rows at least 7 vectors wide (112 float32 pixels with AVX-512), a specialised
#               geometry: direct, register blocks of 3 output channels x 7 vectors of pixels
#               in explicit vectors (simd.py) over stride-phase planes, straight into NCHW
#               (ResNet's 7x7 stem: 0.6-0.7x the best peer's time; im2col + GEMM 1.1-1.5x)
#   winograd    dense (groups == 1) 3x3, stride 1, dilation 1, C_in and C_out >= 16, at least
#               48 2x2 output tiles in the batch (fewer: the per-call weight transform costs
#               more than it saves, e.g. 7x7 planes at batch 1-2), any pads
#               and padding mode: F(2x2, 3x3) (float64: F(4x4, 3x3) where its tiles fit the
#               plane), 2.25x (4x) fewer multiplies, one BLAS product per transform point,
#               per unit of samples / tile rows or over the whole batch for deep layers on
#               small planes, on kernels/blas.py
#   pointwise   dense 1x1, stride 1, no padding, at least 8 output channels, planes of at
#               least 3 vectors: direct, register blocks of 8 output channels x 3 vectors of
#               pixels in explicit vectors over every input channel, a block of a sample's
#               pixels per task (its input read from memory once), straight into NCHW
#               (0.35-0.99x the time of the BLAS products below: OpenBLAS's few-row products
#               ran far from the memory bound)
#   gemm        everything else: 1x1 as one product per sample and group (per slice of
#               pixels when samples are fewer than threads); otherwise cache-sized im2col
#               bands copied from padded stride-phase planes, times W (a lone band's product
#               cut by output channels); BLAS single-threaded on convkit's own threads
#               (kernels/blas.py)
#   reference   the oracle; never chosen while gemm accepts everything, kept last as the floor
KERNELS = (
    Kernel("grouped", grouped.supports, grouped.run),
    Kernel("direct", direct.supports, direct.run),
    Kernel("stem", stem.supports, stem.run),
    Kernel("winograd", winograd.supports, winograd.run),
    Kernel("pointwise", pointwise.supports, pointwise.run),
    Kernel("gemm", gemm.supports, gemm.run),
    Kernel("reference", lambda p: True, _reference_run),
)


def choose(problem: Problem) -> Kernel:
    for kernel in KERNELS:
        if kernel.supports(problem):
            return kernel
    raise AssertionError("the reference kernel accepts every problem")


def run(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], problem: Problem,
        kernel: Optional[Kernel] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Run ``problem`` on ``kernel`` (default: the table's choice), into ``out`` if given
    (see :meth:`Problem.output`: every element is written, none read)."""
    return (kernel or choose(problem)).run(x, w, b, problem, out)
