"""save/load: .safetensors and .npz, torch-written files, and nothing half-loaded."""
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from convkit import nn
from oracle import assert_close


def model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, rng=0), nn.ReLU(),
                         nn.DepthwiseSeparableConv2d(8, 4, 3, stride=2, rng=1))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip(tmp_path, suffix):
    source, target = model(), nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, rng=5), nn.ReLU(),
                                            nn.DepthwiseSeparableConv2d(8, 4, 3, stride=2, rng=6))
    source.save(tmp_path / f"m{suffix}")
    target.load(tmp_path / f"m{suffix}")
    for (k, a), (k2, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)


def test_file_written_by_torch_gives_torchs_outputs(tmp_path):
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.Sequential())
    reference[2].add_module("depthwise", torch.nn.Conv2d(8, 8, 3, stride=2, groups=8))
    reference[2].add_module("pointwise", torch.nn.Conv2d(8, 4, 1))
    safetensors.torch.save_file(reference.state_dict(), tmp_path / "torch.safetensors")
    layers = model()
    layers.load(tmp_path / "torch.safetensors")
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 11)).astype(np.float32)
    with torch.no_grad():
        assert_close(layers(x), reference(torch.from_numpy(x)).numpy(), np.float32)


@pytest.mark.parametrize("damage,error,message", [
    (lambda s: s.pop("2.pointwise.bias"), ValueError, r"missing keys \['2.pointwise.bias'\]"),
    (lambda s: s.update({"0.weight": np.zeros((8, 3, 3, 2), np.float32)}), ValueError,
     r"state_dict\['0.weight'\] has shape \(8, 3, 3, 2\), expected \(8, 3, 3, 3\)"),
    (lambda s: s.update({"0.bias": np.zeros(8, np.int32)}), TypeError,
     r"state_dict\['0.bias'\] must have a float16, float32 or float64 dtype, got dtype int32"),
])
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_bad_file_names_the_key_and_changes_nothing(tmp_path, suffix, damage, error, message):
    state = model().state_dict()
    damage(state)
    path = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        np.savez(path, **state)
    else:
        safetensors.numpy.save_file(state, str(path))
    target = model()
    target[0].weight += 1  # differs from the file's weights
    before = target.state_dict()
    with pytest.raises(error, match=message):
        target.load(path)
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"path must end in .safetensors or .npz, got '.*m.pt'"):
        model().save(tmp_path / "m.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="is not a readable .safetensors file"):
        model().load(tmp_path / "junk.safetensors")
