"""The summary table of a model: shapes, parameters and MACs per layer, nothing run.

With no model: a built-in MobileNetV2-style model on a 1x3x224x224 input.
  convkit summary path/model.py:build --input 1,3,224,224
  convkit summary --json | --csv
"""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np

from ..models import mobilenet_v2_like
from ..summary import summary
from . import options

HELP = "summary table of a model (built-in MobileNetV2-style by default)"


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", default=None,
                        help="FILE.py:FUNCTION, a function returning a convkit.nn model")
    parser.add_argument("--input", "-i", type=options.shape, default=(1, 3, 224, 224),
                        help="input shape, e.g. 1,3,224,224 (the default)")
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--csv", action="store_true", help="print CSV")


def load_model(spec: str):
    """Call FUNCTION from FILE.py in 'FILE.py:FUNCTION'."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name:
        raise ValueError(f"model must be FILE.py:FUNCTION, got {spec!r}")
    if not os.path.isfile(path):
        raise ValueError(f"model file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location("convkit_user_model", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise ValueError(f"{path!r} has no function {name!r}")
    return getattr(module, name)()


def run(args) -> int:
    model = mobilenet_v2_like() if args.model is None else load_model(args.model)
    result = summary(model, args.input, dtype=np.dtype(args.dtype))
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    elif args.csv:
        print(result.to_csv(), end="")
    else:
        print(result)
    return 0
