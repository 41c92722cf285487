"""Layers against torch.nn: outputs, initial distribution, state_dict keys, repr, from_torch."""
import numpy as np
import pytest
import torch

from convkit import nn
from oracle import assert_close

LAYER_SETTINGS = [
    dict(in_channels=3, out_channels=6, kernel_size=3),
    dict(in_channels=3, out_channels=6, kernel_size=3, groups=3, bias=False),
    dict(in_channels=4, out_channels=8, kernel_size=(3, 1), stride=(2, 1), padding=(1, 0),
         dilation=(1, 2)),
    dict(in_channels=4, out_channels=4, kernel_size=5, padding="same", groups=4),
    dict(in_channels=2, out_channels=4, kernel_size=2, padding="valid"),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=2, padding_mode="reflect"),
    dict(in_channels=4, out_channels=2, kernel_size=3, padding=1, padding_mode="circular"),
    dict(in_channels=4, out_channels=2, kernel_size=3, padding=1, padding_mode="replicate"),
]


@pytest.mark.parametrize("settings", LAYER_SETTINGS, ids=str)
def test_conv2d_layer_matches_torch(settings):
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(**settings, dtype=torch.float64)
    layer = nn.Conv2d.from_torch(reference)
    assert repr(layer) == repr(reference)
    assert list(layer.state_dict()) == list(reference.state_dict())
    assert layer.weight.dtype == np.float64
    x = np.random.default_rng(1).standard_normal((2, settings["in_channels"], 9, 8))
    with torch.no_grad():
        expected = reference(torch.tensor(x)).numpy()
    assert_close(layer(x), expected)
    assert_close(layer(x[0]), expected[0])  # unbatched


@pytest.mark.parametrize("settings", LAYER_SETTINGS, ids=str)
def test_repr_and_shapes_without_torch(settings):
    layer = nn.Conv2d(**settings, rng=0)
    reference = torch.nn.Conv2d(**settings)
    assert repr(layer) == repr(reference)
    assert layer.weight.shape == tuple(reference.weight.shape)
    assert layer.weight.dtype == np.float32
    assert (layer.bias is None) == (reference.bias is None)


def test_initial_distribution_is_torchs():
    """Uniform in +-1/sqrt(fan_in) for weight and bias, fan_in = C_in/groups * kH * kW."""
    layer = nn.Conv2d(64, 128, 3, groups=4, rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(16 * 9)
    for values in (layer.weight, layer.bias):
        assert np.abs(values).max() <= bound
    w = layer.weight.ravel()
    assert np.abs(w).max() > 0.99 * bound  # fills the interval ...
    assert abs(w.mean()) < 0.01 * bound  # ... evenly: mean 0, variance bound^2 / 3
    assert w.var() == pytest.approx(bound ** 2 / 3, rel=0.02)
    torch_w = torch.nn.Conv2d(64, 128, 3, groups=4).weight.detach().numpy().ravel()
    assert torch_w.var() == pytest.approx(w.var(), rel=0.03)


def test_reset_parameters_is_reproducible():
    a, b = nn.Conv2d(3, 4, 3, rng=7), nn.Conv2d(3, 4, 3, rng=7)
    np.testing.assert_array_equal(a.weight, b.weight)
    a.reset_parameters(rng=8)
    assert not np.array_equal(a.weight, b.weight)


def test_depthwise_separable_matches_torch_and_seed003_counts():
    """Seed 003: 4 -> 8 channels, 3x3: plain conv 288 weights, depthwise-separable 36 + 32 = 68."""
    layer = nn.DepthwiseSeparableConv2d(4, 8, 3, padding=1, bias=False, rng=0)
    counts = {k: v.size for k, v in layer.state_dict().items()}
    assert counts == {"depthwise.weight": 36, "pointwise.weight": 32}
    assert nn.Conv2d(4, 8, 3, padding=1, bias=False).weight.size == 288

    class TorchSeparable(torch.nn.Module):  # seed 003's depthwise_separable_conv
        def __init__(self, ch_in, ch_out):
            super().__init__()
            self.depthwise = torch.nn.Conv2d(ch_in, ch_in, 3, padding=1, groups=ch_in,
                                             bias=False, dtype=torch.float64)
            self.pointwise = torch.nn.Conv2d(ch_in, ch_out, 1, bias=False,
                                             dtype=torch.float64)

        def forward(self, x):
            return self.pointwise(self.depthwise(x))

    reference = TorchSeparable(4, 8)
    layer = nn.DepthwiseSeparableConv2d(4, 8, 3, padding=1, bias=False, dtype=np.float64)
    layer.load_state_dict(reference.state_dict())
    x = np.random.default_rng(2).standard_normal((2, 4, 3, 3))
    with torch.no_grad():
        assert_close(layer(x), reference(torch.tensor(x)).numpy())


def test_depth_multiplier_and_sequential_keys_match_torch():
    model = nn.Sequential(nn.DepthwiseSeparableConv2d(3, 5, 3, depth_multiplier=2, stride=2),
                          nn.ReLU(), nn.Conv2d(5, 2, 1))
    reference = torch.nn.Sequential(torch.nn.Sequential(), torch.nn.ReLU(),
                                    torch.nn.Conv2d(5, 2, 1, dtype=torch.float64))
    reference[0].add_module("depthwise", torch.nn.Conv2d(3, 6, 3, stride=2, groups=3,
                                                         dtype=torch.float64))
    reference[0].add_module("pointwise", torch.nn.Conv2d(6, 5, 1, dtype=torch.float64))
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict())
    assert model[0].depthwise.weight.dtype == np.float32  # loading keeps the layer's dtype
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 9))
    with torch.no_grad():
        expected = reference(torch.tensor(x)).numpy()
    assert_close(model(x), expected, np.float32)
    assert model.output_shape(x.shape) == expected.shape


def test_output_shape_is_pure_and_checks_channels():
    layer = nn.Conv2d(3, 6, 3, groups=3)
    assert layer.output_shape((2, 3, 4, 5)) == (2, 6, 2, 3)
    assert layer.macs((2, 3, 4, 5)) == 2 * 6 * 2 * 3 * 1 * 9
    with pytest.raises(ValueError, match="expects 3 input channels, got input shape"):
        layer.output_shape((2, 4, 4, 5))


TRANSPOSED_SETTINGS = [
    dict(in_channels=4, out_channels=6, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1,
         groups=2, bias=False),
    dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=(1, 2), dilation=(2, 1)),
]


@pytest.mark.parametrize("settings", TRANSPOSED_SETTINGS, ids=str)
def test_conv_transpose2d_layer_matches_torch(settings):
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(**settings, dtype=torch.float64)
    layer = nn.ConvTranspose2d.from_torch(reference)
    assert repr(layer) == repr(reference)
    assert repr(nn.ConvTranspose2d(**settings)) == repr(torch.nn.ConvTranspose2d(**settings))
    assert list(layer.state_dict()) == list(reference.state_dict())
    x = np.random.default_rng(1).standard_normal((2, settings["in_channels"], 5, 6))
    with torch.no_grad():
        expected = reference(torch.tensor(x)).numpy()
    assert_close(layer(x), expected)
    assert layer.output_shape(x.shape) == expected.shape


def test_conv_transpose2d_layer_output_size_and_init():
    layer = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, rng=0)
    assert layer(np.zeros((1, 4, 5, 5), np.float32), output_size=(10, 10)).shape == (1, 2, 10, 10)
    bound = 1 / np.sqrt(2 * 9)  # torch's fan_in for a transposed weight: out/groups * kH * kW
    assert np.abs(layer.weight).max() <= bound and np.abs(layer.weight).max() > 0.9 * bound
    with pytest.raises(ValueError, match="supports padding_mode='zeros' only"):
        nn.ConvTranspose2d(4, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or dilation"):
        nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=2)
