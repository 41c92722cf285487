"""Command-line spellings of conv settings, shared by the subcommands."""
from __future__ import annotations

import argparse


def shape(text: str):
    """'2x3x4x5' or '2,3,4,5' -> (2, 3, 4, 5)."""
    try:
        return tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape such as 2x3x4x5, got {text!r}")


def int_or_pair(text: str):
    """'3' -> 3, '3,1' -> (3, 1)."""
    parts = shape(text)
    return parts[0] if len(parts) == 1 else parts


def padding(text: str):
    """'1', '1,2' (pH, pW), '1,2,0,3' (top, bottom, left, right), or valid/same/same_lower."""
    if text in ("valid", "same", "same_lower"):
        return text
    parts = shape(text)
    if len(parts) == 4:
        return (parts[:2], parts[2:])
    return parts[0] if len(parts) == 1 else parts


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """The torch-like spellings of one conv layer's settings."""
    parser.add_argument("--out-channels", type=int, required=True, help="C_out")
    parser.add_argument("--kernel-size", "-k", type=int_or_pair, required=True,
                        help="kernel size: 3 or 3,1")
    parser.add_argument("--stride", type=int_or_pair, default=1, help="stride: 2 or 2,1")
    parser.add_argument("--padding", type=padding, default=0,
                        help="padding: 1, 1,2 (h,w), 1,2,0,3 (top,bottom,left,right), "
                             "valid, same, same_lower")
    parser.add_argument("--dilation", type=int_or_pair, default=1, help="dilation: 2 or 2,1")
    parser.add_argument("--groups", type=int, default=1, help="groups")
    parser.add_argument("--padding-mode", default="zeros",
                        help="zeros, reflect, replicate, circular, symmetric")
    parser.add_argument("--no-bias", dest="bias", action="store_false",
                        help="layer without bias (counted out of the parameters)")
