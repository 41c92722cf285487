"""A picture of how ``groups`` connects input channels to output channels (seed 003's figure).

Input channels on the left, output channels on the right, and each group's
connections in its own colour: with ``groups=1`` every input reaches every
output; with ``groups=in_channels`` (depthwise) each input reaches only its own
outputs.  The title carries the layer's parameters and MACs.
"""
from __future__ import annotations

import os

from .cost import conv2d_cost

FIGSIZE = (8.0, 5.0)  # inches
DPI = 100  # a PNG is FIGSIZE * DPI pixels


def draw_groups(in_channels: int, out_channels: int, groups: int = 1, path=None, *,
                kernel_size=3, input_size=(32, 32), bias: bool = True):
    """Draw the channel connections of a conv layer; save to ``path`` (.png or .svg) if given.

    Returns the matplotlib figure.  Errors name the argument, as ``conv2d`` does.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    cost = conv2d_cost((1, in_channels, h, w), out_channels, kernel_size, groups=groups,
                       bias=bias, padding="same")
    if path is not None and os.path.splitext(os.fspath(path))[1].lower() not in (".png", ".svg"):
        raise ValueError(f"path must end in .png or .svg, got {os.fspath(path)!r}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    colours = plt.get_cmap("tab10" if groups <= 10 else "turbo")
    y_in = _positions(in_channels)
    y_out = _positions(out_channels)
    cg, og = in_channels // groups, out_channels // groups
    for g in range(groups):
        colour = colours(g % 10 if groups <= 10 else g / max(groups - 1, 1))
        for i in range(g * cg, (g + 1) * cg):
            for o in range(g * og, (g + 1) * og):
                ax.plot([0.1, 0.9], [y_in[i], y_out[o]], color=colour, alpha=0.6, linewidth=1.2)
        top = max(y_in[g * cg], y_out[g * og])
        bottom = min(y_in[(g + 1) * cg - 1], y_out[(g + 1) * og - 1])
        if groups <= 16:
            ax.text(0.5, (top + bottom) / 2, f"group {g}\n{cg} in -> {og} out", ha="center",
                    va="center", fontsize=8, bbox=dict(facecolor=colour, alpha=0.3,
                                                        edgecolor="none"))
    size = max(12, 160 // max(in_channels, out_channels, 1))
    ax.scatter([0.1] * in_channels, y_in, s=size * 8, color="#444", zorder=3)
    ax.scatter([0.9] * out_channels, y_out, s=size * 8, color="#444", zorder=3)
    ax.text(0.1, 1.04, f"{in_channels} input channels", ha="center", fontsize=10)
    ax.text(0.9, 1.04, f"{out_channels} output channels", ha="center", fontsize=10)
    ax.text(0.5, 1.04, f"{groups} group{'s' if groups > 1 else ''}", ha="center", fontsize=10)
    kh, kw = cost.weight_shape[2:]
    ax.set_title(f"Conv2d({in_channels}, {out_channels}, kernel_size={kh}x{kw}, groups={groups})"
                 f"   weight {cost.weight_shape}\n{cost.params:,} parameters, {cost.macs:,} MACs "
                 f"on a {h}x{w} input ('same' padding)", fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.06, 1.1)
    ax.axis("off")
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig


def _positions(count: int):
    return [0.5] if count == 1 else [1 - k / (count - 1) for k in range(count)]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("drawing needs matplotlib: pip install 'convkit[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
