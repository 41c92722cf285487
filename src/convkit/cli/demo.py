"""A walk through the worked examples convkit grew from (the seed texts).

1. seed 000: a 2x3x4x5 input through a 3 -> 6 conv with groups=1, then groups=3:
   weight and output shapes, parameter counts, and output elements written out
   as their sums of products.
2. seed 003: a plain 4 -> 8 3x3 conv against its depthwise-separable version.
3. seed 004: a different kernel for every sample, in one call.
"""
from __future__ import annotations

import textwrap

import numpy as np

from .. import nn
from ..cost import conv2d_cost
from ..examples import seed000
from ..explain import explain
from ..functional import conv2d, per_sample_conv2d

HELP = "walk through the seed examples: shapes, parameters, sums of products"


def add_arguments(parser) -> None:
    pass


def _indent(text: str) -> str:
    return textwrap.indent(str(text), "    ")


def _groups_example(groups: int, elements) -> None:
    x, w = seed000(groups)
    layer = conv2d_cost(x.shape, 6, 3, groups=groups, bias=False)
    out = conv2d(x, w, groups=groups)
    share = "each over all 3 input channels" if groups == 1 else "2 per input channel"
    print(f"  nn.Conv2d(in_channels=3, out_channels=6, kernel_size=3, groups={groups}, "
          f"bias=False)")
    print(f"  input shape  {x.shape}")
    print(f"  weight shape {layer.weight_shape}   6 kernels of {w.shape[1:]}, {share}")
    print(f"  output shape {out.shape}")
    print(f"  parameters   {layer.params}   MACs {layer.macs:,}")
    for index in elements:
        print(f"\n  output{list(index)} written out:")
        print(_indent(explain(x, w, index, groups=groups)))


def _separable_example() -> None:
    x_shape = (1, 4, 3, 3)
    plain = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    separable = nn.DepthwiseSeparableConv2d(4, 8, 3, padding=1, bias=False)
    mid_shape = separable.depthwise.output_shape(x_shape)
    rows = [("plain      nn.Conv2d(4, 8, 3)", plain, x_shape, "3*3*4*8"),
            ("depthwise  nn.Conv2d(4, 4, 3, groups=4)", separable.depthwise, x_shape, "3*3*4"),
            ("pointwise  nn.Conv2d(4, 8, 1)", separable.pointwise, mid_shape, "1*1*4*8")]
    for label, layer, in_shape, formula in rows:
        print(f"  {label:40s} {layer.weight.size:4d} parameters {'(' + formula + ')':10s}"
              f" {layer.macs(in_shape):6,} MACs")
    n_sep = sum(p.size for p in separable.parameters())
    macs_sep = separable.depthwise.macs(x_shape) + separable.pointwise.macs(mid_shape)
    print(f"  {'depthwise-separable total':40s} {n_sep:4d} = 36 + 32{'':10s}"
          f" {macs_sep:6,} MACs")
    print(f"  both map a 3x3x4 input to {separable.output_shape(x_shape)}; the separable one "
          f"with {plain.weight.size / n_sep:.1f}x fewer weights")


def _per_sample_example() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 10, 10))
    w = rng.standard_normal((4, 2, 8, 3, 3))
    out = per_sample_conv2d(x, w)
    loop = np.stack([conv2d(x[i], w[i]) for i in range(4)])
    print(f"  input {x.shape}, one kernel per sample {w.shape} -> output {out.shape}")
    print(f"  equal to a loop of conv2d over the samples: max difference "
          f"{np.abs(out - loop).max():.1e}")


def run(args) -> int:
    print("convkit demo: the worked examples of the seed texts\n")
    print("1. seed 000, groups=1: every kernel sees every input channel")
    _groups_example(1, [(0, 0, 0, 0)])
    print("\n2. seed 000, groups=3: channels split into 3 groups, 2 kernels per group")
    _groups_example(3, [(0, 0, 0, 0), (0, 1, 0, 0)])
    print("\n3. seed 003: depthwise-separable against a plain 3x3 conv, 4 -> 8 channels, "
          "no bias")
    _separable_example()
    print("\n4. seed 004: a different kernel for every sample, one call")
    _per_sample_example()
    return 0
