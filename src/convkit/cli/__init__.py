"""The ``convkit`` command.  No maths here: each subcommand is a small module
in this package with ``HELP``, ``add_arguments(parser)`` and ``run(args)``,
listed once in ``COMMANDS``.  ``ValueError``/``TypeError`` from the library
become a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("demo", "shape", "cost", "explain", "summary", "draw", "train-digits")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convkit", description="2-D convolution for NumPy, exactly as PyTorch computes it.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f".{name.replace('-', '_')}", __name__)
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (ValueError, TypeError) as err:
        print(f"convkit {args.command}: error: {err}", file=sys.stderr)
        return 2
