"""Output shape, weight shape, parameters and MACs of one conv layer.

example:  convkit shape --input 2x3x4x5 --out-channels 6 --kernel-size 3 --groups 3
"""
from __future__ import annotations

from ..cost import conv2d_cost
from . import options

HELP = "shapes, parameters and MACs of one conv layer"


def add_arguments(parser) -> None:
    parser.add_argument("--input", "-i", type=options.shape, required=True,
                        help="input shape N x C x H x W (or C x H x W), e.g. 2x3x4x5")
    options.add_layer_arguments(parser)


def run(args) -> int:
    c = conv2d_cost(args.input, args.out_channels, args.kernel_size, args.stride, args.padding,
                    args.dilation, args.groups, args.bias, args.padding_mode)
    print(f"input   {c.input_shape}")
    print(f"weight  {c.weight_shape}" + ("" if args.bias else "  (no bias)"))
    print(f"output  {c.output_shape}")
    print(f"pads    (top, bottom) = {c.pads[0]}, (left, right) = {c.pads[1]}")
    print(f"params  {c.params:,}")
    print(f"MACs    {c.macs:,}   (FLOPs = 2 x MACs = {c.flops:,}; bias adds not counted)")
    return 0
