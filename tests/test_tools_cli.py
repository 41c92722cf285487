"""convkit cost and convkit draw."""
import json
import struct
import xml.etree.ElementTree as ET

import pytest

from convkit import draw
from convkit.cli import main


def test_cost_json_matches_hand_arithmetic(capsys):
    assert main(["cost", "--in-channels", "32", "--size", "112", "--out-channels", "64",
                 "--kernel-size", "3", "--stride", "2", "--padding", "same", "--groups", "4",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["output_shape"] == [1, 64, 56, 56] and report["pads"] == [[0, 1], [0, 1]]
    assert report["params"] == 64 * 8 * 9 + 64
    assert report["macs"] == 56 * 56 * 64 * 8 * 9 and report["flops"] == 2 * report["macs"]
    assert report["weight_bytes"] == 4 * report["params"]
    assert report["activation_bytes"] == 4 * (32 * 112 * 112 + 64 * 56 * 56)


def test_cost_text_and_errors(capsys):
    assert main(["cost", "-i", "8x3x224x224", "--out-channels", "64", "-k", "7", "--stride",
                 "2", "--padding", "3", "--no-bias", "--dtype", "float16"]) == 0
    out = capsys.readouterr().out
    assert "params       9,408" in out and "(0.02 MiB, float16)" in out
    assert main(["cost", "--out-channels", "4", "-k", "3"]) == 2
    assert "give --input" in capsys.readouterr().err
    assert main(["cost", "--in-channels", "6", "--out-channels", "4", "-k", "3",
                 "--groups", "4"]) == 2
    assert "groups=4 must divide in_channels=6" in capsys.readouterr().err


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_draw_png_and_svg(tmp_path, capsys):
    png, svg = tmp_path / "groups.png", tmp_path / "groups.svg"
    assert main(["draw", "--in-channels", "4", "--out-channels", "8", "--groups", "2",
                 "-o", str(png)]) == 0
    assert png_size(png) == (int(draw.FIGSIZE[0] * draw.DPI), int(draw.FIGSIZE[1] * draw.DPI))
    fig = draw.draw_groups(6, 6, 6, svg)
    assert ET.parse(svg).getroot().tag.endswith("svg")
    title = fig.axes[0].get_title()
    assert "groups=6" in title and "60 parameters" in title  # 6*1*9 + 6
    lines = list(fig.axes[0].get_lines())
    assert len(lines) == 6  # depthwise: one connection per channel


def test_draw_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        draw.draw_groups(4, 6, 3)
    with pytest.raises(ValueError, match="path must end in .png or .svg"):
        draw.draw_groups(4, 8, 2, tmp_path / "g.jpg")
