"""One output element written out as its sum of products.

With no arguments: seed 000's 2x3x4x5 example, output[0, 0, 0, 0] with groups=1.
  convkit explain --groups 3 --index 0,1,0,0
"""
from __future__ import annotations

from ..examples import seed000
from ..explain import explain
from . import options

HELP = "write one output element out as its sum of products (seed 000 by default)"


def add_arguments(parser) -> None:
    parser.add_argument("--groups", type=int, default=1, choices=(1, 3),
                        help="seed 000's groups=1 or groups=3 layer")
    parser.add_argument("--index", type=options.shape, default=(0, 0, 0, 0),
                        help="output index n,c_out,h,w (default 0,0,0,0)")
    parser.add_argument("--stride", type=options.int_or_pair, default=1)
    parser.add_argument("--padding", type=options.padding, default=0)
    parser.add_argument("--dilation", type=options.int_or_pair, default=1)
    parser.add_argument("--padding-mode", default="zeros")


def run(args) -> int:
    x, w = seed000(args.groups)
    print(explain(x, w, args.index, stride=args.stride, padding=args.padding,
                  dilation=args.dilation, groups=args.groups, padding_mode=args.padding_mode))
    return 0
