"""A model summary table: per layer shapes, parameters and MACs, from integers only.

Nothing is run: every layer states ``output_shape(input_shape)`` and
``macs(input_shape)``, so the summary of a large model is instant.  A layer
with children (``Sequential``, ``DepthwiseSeparableConv2d``) is shown with its
children indented below it, fed one after the other.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import List, Tuple

import numpy as np

FOOTER = ("MACs: multiply-accumulates of each layer itself; bias adds are not counted (as thop "
          "and fvcore). FLOPs = 2 x MACs. A backward pass costs about 2 x the forward MACs "
          "(grad_input and grad_weight), not multiplied by groups.")


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    depth: int
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    params: int  # this layer's own parameters (its children have their own rows)
    macs: int
    leaf: bool


@dataclass(frozen=True)
class Summary:
    rows: List[Row]
    input_shape: Tuple[int, ...]
    dtype: str
    total_params: int
    total_macs: int
    param_bytes: int
    activation_bytes: int  # the input and every leaf layer's output, in ``dtype``

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    def to_dict(self) -> dict:
        """JSON-ready: plain ints, strings and lists."""
        return {"input_shape": list(self.input_shape), "dtype": self.dtype,
                "rows": [{**asdict(r), "input_shape": list(r.input_shape),
                          "output_shape": list(r.output_shape)} for r in self.rows],
                "total_params": self.total_params, "total_macs": self.total_macs,
                "total_flops": self.total_flops, "param_bytes": self.param_bytes,
                "activation_bytes": self.activation_bytes}

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "type", "depth", "input_shape", "output_shape", "params",
                         "macs"])
        for r in self.rows:
            writer.writerow([r.name, r.type, r.depth, "x".join(map(str, r.input_shape)),
                             "x".join(map(str, r.output_shape)), r.params, r.macs])
        return buffer.getvalue()

    def __str__(self) -> str:
        return _render(self)


def summary(model, input_shape, *, dtype=np.float32) -> Summary:
    """Shapes, parameters and MACs of every layer of ``model`` on ``input_shape``.

    Example (seed 003's layer):
        >>> from convkit import nn
        >>> s = summary(nn.DepthwiseSeparableConv2d(4, 8, 3, padding=1, bias=False), (1, 4, 3, 3))
        >>> s.total_params, s.total_macs, [r.params for r in s.rows]
        (68, 612, [0, 36, 32])
    """
    dtype = np.dtype(dtype)
    input_shape = tuple(int(s) for s in input_shape)
    rows: List[Row] = []
    _visit(model, type(model).__name__, 0, input_shape, rows)
    leaves = [r for r in rows if r.leaf]
    total_params = sum(r.params for r in rows)
    activations = int(np.prod(input_shape)) + sum(int(np.prod(r.output_shape)) for r in leaves)
    return Summary(rows, input_shape, dtype.name, total_params, sum(r.macs for r in rows),
                   total_params * dtype.itemsize, activations * dtype.itemsize)


def _visit(module, name, depth, shape, rows) -> Tuple[int, ...]:
    """Append the rows of ``module`` and its children (fed in order); its output shape."""
    children = list(module.named_children())
    own_params = sum(int(v.size) for v in module._parameters.values() if v is not None)
    position = len(rows)
    rows.append(None)  # this module's row goes before its children's
    inner = shape
    for child_name, child in children:  # children first, so an error names the layer at fault
        inner = _visit(child, f"{name}.{child_name}" if depth else child_name, depth + 1, inner,
                       rows)
    try:
        out = tuple(module.output_shape(shape))
        macs = 0 if children else int(module.macs(shape))
    except NotImplementedError:
        raise TypeError(f"layer {name!r} ({type(module).__name__}) does not state its "
                        f"output shape, so it cannot be summarised") from None
    except ValueError as err:
        raise ValueError(f"layer {name!r} ({type(module).__name__}) does not take input "
                         f"shape {shape}: {err}") from None
    rows[position] = Row(name, type(module).__name__, depth, shape, out, own_params, macs,
                         leaf=not children)
    return out


def _render(s: Summary) -> str:
    total = max(s.total_macs, 1)
    head = ("Layer (type)", "Input shape", "Output shape", "Params", "MACs", "% MACs")
    body = []
    for r in s.rows:
        label = "  " * r.depth + (f"{r.name} ({r.type})" if r.depth else r.type)
        share = f"{100 * r.macs / total:.1f}%" if r.leaf and r.macs else ""
        params = f"{r.params:,}" if r.params or r.leaf else "--"
        body.append((label, str(list(r.input_shape)), str(list(r.output_shape)), params,
                     f"{r.macs:,}" if r.leaf else "--", share))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = lambda row: "  ".join(c.ljust(w) if i < 3 else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(row, widths)))
    rule = "=" * len(line(head))
    mib = 1 << 20
    totals = [f"Total params: {s.total_params:,}",
              f"Total MACs: {s.total_macs:,} ({s.total_macs / 1e6:,.2f} M)",
              f"Total FLOPs: {s.total_flops:,} (2 x MACs)",
              f"Parameter memory: {s.param_bytes / mib:.2f} MiB ({s.dtype})",
              f"Activation memory (input + layer outputs, forward): "
              f"{s.activation_bytes / mib:.2f} MiB ({s.dtype})"]
    return "\n".join([rule, line(head), rule, *map(line, body), rule, *totals, rule, FOOTER])
