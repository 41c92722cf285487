"""A picture of how groups connect input channels to output channels.

  convkit draw --in-channels 4 --out-channels 8 --groups 2 -o groups.png   (or .svg)
"""
from __future__ import annotations

from ..draw import draw_groups
from . import options

HELP = "draw how groups connect channels (PNG or SVG)"


def add_arguments(parser) -> None:
    parser.add_argument("--in-channels", type=int, required=True)
    parser.add_argument("--out-channels", type=int, required=True)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--kernel-size", "-k", type=options.int_or_pair, default=3)
    parser.add_argument("--size", type=options.int_or_pair, default=32,
                        help="input height and width for the MACs (default 32)")
    parser.add_argument("--no-bias", dest="bias", action="store_false")
    parser.add_argument("-o", "--output", default="groups.png", help=".png or .svg")


def run(args) -> int:
    draw_groups(args.in_channels, args.out_channels, args.groups, args.output,
                kernel_size=args.kernel_size, input_size=args.size, bias=args.bias)
    print(f"wrote {args.output}")
    return 0
