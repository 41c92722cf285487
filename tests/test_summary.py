"""summary: counts against hand arithmetic and torch; tables, JSON, CSV; layers that don't chain."""
import json

import numpy as np
import pytest
import torch

import convkit
from convkit import models, nn
from convkit.cli import main


def test_resnext_block_by_hand():
    """1x1 256->128, grouped 3x3 128->128 g32, 1x1 128->256 on 56x56."""
    s = convkit.summary(models.resnext_block(), (2, 256, 56, 56))
    convs = [r for r in s.rows if r.type == "Conv2d"]
    hw = 2 * 56 * 56
    assert [r.params for r in convs] == [256 * 128, 128 * 4 * 9, 128 * 256]
    assert [r.macs for r in convs] == [hw * 128 * 256, hw * 128 * 4 * 9, hw * 256 * 128]
    assert s.total_params == 32768 + 4608 + 32768
    assert s.total_flops == 2 * s.total_macs == 2 * hw * (2 * 128 * 256 + 128 * 36)
    assert s.param_bytes == 4 * s.total_params


def test_mobilenet_block_by_hand_and_nesting():
    """An inverted bottleneck 16 -> 96 -> 24, stride 2, on 112x112: nested rows and counts."""
    block = nn.Sequential(nn.Conv2d(16, 96, 1, bias=False), nn.ReLU(),
                          nn.DepthwiseSeparableConv2d(96, 24, 3, stride=2, padding=1, bias=False))
    s = convkit.summary(block, (1, 16, 112, 112), dtype=np.float64)
    names = [(r.depth, r.name, r.type) for r in s.rows]
    assert names == [(0, "Sequential", "Sequential"), (1, "0", "Conv2d"), (1, "1", "ReLU"),
                     (1, "2", "DepthwiseSeparableConv2d"), (2, "2.depthwise", "Conv2d"),
                     (2, "2.pointwise", "Conv2d")]
    macs = {r.name: r.macs for r in s.rows}
    assert macs["0"] == 112 * 112 * 96 * 16
    assert macs["2.depthwise"] == 56 * 56 * 96 * 9
    assert macs["2.pointwise"] == 56 * 56 * 24 * 96
    assert s.total_params == 16 * 96 + 96 * 9 + 96 * 24
    assert s.rows[0].output_shape == (1, 24, 56, 56)
    assert s.activation_bytes == 8 * (16 * 112 * 112 + 2 * 96 * 112 * 112 + 96 * 56 * 56
                                      + 24 * 56 * 56)
    text = str(s)
    assert "  2.depthwise (Conv2d)" in text and "Total params: 4,704" in text
    assert "bias adds are not counted" in text and "MiB (float64)" in text


def test_params_match_torch_for_mobilenet_v2_like():
    model = models.mobilenet_v2_like()
    reference = torch.nn.Sequential()
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            reference.add_module(name.replace(".", "_"), torch.nn.Conv2d(
                module.in_channels, module.out_channels, module.kernel_size, module.stride,
                module.padding, groups=module.groups, bias=module.bias is not None))
    s = convkit.summary(model, (1, 3, 224, 224))
    assert s.total_params == sum(p.numel() for p in reference.parameters()) == 2_189_760
    assert s.rows[0].output_shape == (1, 1280, 7, 7)
    with torch.no_grad():  # torch's shapes, layer by layer, agree with the pure shape rules
        x = torch.zeros(1, 3, 224, 224)
        leaves = [r for r in s.rows if r.type == "Conv2d"]
        for row, layer in zip(leaves, reference):
            assert tuple(x.shape) == row.input_shape
            x = layer(x)
            assert tuple(x.shape) == row.output_shape


def test_outputs_json_and_csv():
    s = convkit.summary(models.resnext_block(), (1, 256, 14, 14))
    data = json.loads(json.dumps(s.to_dict()))
    assert data["total_macs"] == s.total_macs and data["rows"][1]["params"] == 32768
    csv = s.to_csv().splitlines()
    assert csv[0] == "name,type,depth,input_shape,output_shape,params,macs"
    assert csv[1] == "Sequential,Sequential,0,1x256x14x14,1x256x14x14,0,0"
    assert csv[2].startswith("0,Conv2d,1,1x256x14x14,1x128x14x14,32768,")


def test_layers_that_do_not_chain_are_named():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(6, 4, 1))
    with pytest.raises(ValueError, match=r"layer '2' \(Conv2d\) does not take input shape "
                                         r"\(1, 8, 30, 30\).*expects 6 input channels"):
        convkit.summary(model, (1, 3, 32, 32))

    class Opaque(nn.Module):
        def forward(self, x):
            return x
    with pytest.raises(TypeError, match=r"layer '1' \(Opaque\) does not state its output"):
        convkit.summary(nn.Sequential(nn.ReLU(), Opaque()), (1, 3, 8, 8))


def test_summary_cli_default_and_file(tmp_path, capsys):
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 2,189,760" in out and "[1, 1280, 7, 7]" in out
    source = tmp_path / "model.py"
    source.write_text("from convkit import nn\n"
                      "def build():\n"
                      "    return nn.Sequential(nn.Conv2d(3, 6, 3, groups=3, bias=False))\n")
    assert main(["summary", f"{source}:build", "--input", "2,3,4,5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 54 and data["total_macs"] == 648
    assert main(["summary", f"{source}:missing"]) == 2
    assert "has no function 'missing'" in capsys.readouterr().err
