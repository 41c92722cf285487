"""Parameters, MACs, FLOPs and memory of one conv layer.

  convkit cost --in-channels 32 --size 112 --out-channels 64 --kernel-size 3 --stride 2 \\
      --padding same --groups 4 [--batch 8] [--dtype float32] [--json]
  convkit cost --input 8x32x112x112 --out-channels 64 --kernel-size 3
"""
from __future__ import annotations

import json

import numpy as np

from ..cost import conv2d_cost
from . import options

HELP = "parameters, MACs, FLOPs and bytes of one conv layer (--json)"


def add_arguments(parser) -> None:
    parser.add_argument("--input", "-i", type=options.shape, default=None,
                        help="input shape N x C x H x W (or give --in-channels and --size)")
    parser.add_argument("--in-channels", type=int, default=None, help="C_in")
    parser.add_argument("--size", type=options.int_or_pair, default=224,
                        help="input height and width: 224 or 224,160 (default 224)")
    parser.add_argument("--batch", type=int, default=1, help="N (default 1)")
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    parser.add_argument("--json", action="store_true", help="print JSON")
    options.add_layer_arguments(parser)


def layer_cost(args) -> dict:
    if args.input is None:
        if args.in_channels is None:
            raise ValueError("give --input N,C,H,W or --in-channels (with --size, --batch)")
        h, w = (args.size, args.size) if isinstance(args.size, int) else args.size
        shape = (args.batch, args.in_channels, h, w)
    else:
        shape = args.input
    c = conv2d_cost(shape, args.out_channels, args.kernel_size, args.stride, args.padding,
                    args.dilation, args.groups, args.bias, args.padding_mode)
    item = np.dtype(args.dtype).itemsize
    return {"input_shape": list(c.input_shape), "weight_shape": list(c.weight_shape),
            "output_shape": list(c.output_shape), "pads": [list(p) for p in c.pads],
            "params": c.params, "macs": c.macs, "flops": c.flops, "dtype": args.dtype,
            "weight_bytes": c.params * item,
            "activation_bytes": (int(np.prod(c.input_shape)) + int(np.prod(c.output_shape)))
            * item}


def run(args) -> int:
    report = layer_cost(args)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    mib = 1 << 20
    print(f"input        {tuple(report['input_shape'])}")
    print(f"weight       {tuple(report['weight_shape'])}")
    print(f"output       {tuple(report['output_shape'])}")
    print(f"params       {report['params']:,}")
    print(f"MACs         {report['macs']:,}  (bias adds not counted)")
    print(f"FLOPs        {report['flops']:,}  (2 x MACs)")
    print(f"weights      {report['weight_bytes']:,} bytes ({report['weight_bytes'] / mib:.2f} "
          f"MiB, {report['dtype']})")
    print(f"activations  {report['activation_bytes']:,} bytes "
          f"({report['activation_bytes'] / mib:.2f} MiB: input + output)")
    return 0
