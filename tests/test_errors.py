"""Every bad configuration raises ValueError/TypeError naming the argument and what it got."""
import numpy as np
import pytest

import convkit
from convkit import nn

X = np.zeros((2, 6, 8, 8))
W = np.zeros((4, 3, 3, 3))


def _read_only(shape):
    array = np.zeros(shape)
    array.flags.writeable = False
    return array


# (call, exception, pattern the message must contain)
BAD_CALLS = {
    "groups-zero": (lambda: convkit.conv2d(X, W, groups=0), ValueError, r"groups must be a positive int, got 0"),
    "groups-negative": (lambda: convkit.conv2d(X, W, groups=-2), ValueError, r"groups.*-2"),
    "groups-float": (lambda: convkit.conv2d(X, W, groups=2.0), TypeError, r"groups must be an int, got 2.0"),
    "groups-not-dividing-in": (lambda: convkit.conv2d(X, np.zeros((4, 2, 3, 3)), groups=4), ValueError, r"groups=4 must divide input channels=6"),
    "groups-not-dividing-out": (lambda: convkit.conv2d(X, np.zeros((5, 3, 3, 3)), groups=2), ValueError, r"groups=2 must divide weight.shape\[0\] \(out channels\)=5"),
    "weight-3d": (lambda: convkit.conv2d(X, np.zeros((4, 6, 3))), ValueError, r"weight must be 4-D .* got shape \(4, 6, 3\)"),
    "weight-channels": (lambda: convkit.conv2d(X, np.zeros((4, 5, 3, 3))), ValueError, r"weight.shape\[1\] \* groups must equal input channels.*\(4, 5, 3, 3\).*has 6"),
    "weight-empty-kernel": (lambda: convkit.conv2d(X, np.zeros((4, 6, 0, 3))), ValueError, r"kernel size must be >= 1.*\(4, 6, 0, 3\)"),
    "bias-shape": (lambda: convkit.conv2d(X, np.zeros((4, 6, 3, 3)), np.zeros(3)), ValueError, r"bias must have shape \(4,\).*got shape \(3,\)"),
    "input-2d": (lambda: convkit.conv2d(np.zeros((8, 8)), W), ValueError, r"input must be 4-D .* got shape \(8, 8\)"),
    "input-5d": (lambda: convkit.conv2d(np.zeros((1, 2, 6, 8, 8)), W), ValueError, r"input must be 4-D"),
    "stride-zero": (lambda: convkit.conv2d(X, W, groups=2, stride=0), ValueError, r"stride must be >= 1, got 0"),
    "stride-negative-pair": (lambda: convkit.conv2d(X, W, groups=2, stride=(1, -1)), ValueError, r"stride must be >= 1, got \(1, -1\)"),
    "dilation-zero": (lambda: convkit.conv2d(X, W, groups=2, dilation=0), ValueError, r"dilation must be >= 1, got 0"),
    "padding-negative": (lambda: convkit.conv2d(X, W, groups=2, padding=-1), ValueError, r"padding must be >= 0, got -1"),
    "padding-negative-asym": (lambda: convkit.conv2d(X, W, groups=2, padding=((0, 1), (-1, 0))), ValueError, r"padding\[1\] must be >= 0, got \(-1, 0\)"),
    "stride-triple": (lambda: convkit.conv2d(X, W, groups=2, stride=(1, 2, 3)), ValueError, r"stride must be an int or a pair of ints, got \(1, 2, 3\)"),
    "padding-triple": (lambda: convkit.conv2d(X, W, groups=2, padding=(1, 2, 3)), ValueError, r"padding must be an int or a pair.*\(1, 2, 3\)"),
    "stride-string": (lambda: convkit.conv2d(X, W, groups=2, stride="2"), TypeError, r"stride must be an int or a pair of ints, got '2'"),
    "padding-unknown-string": (lambda: convkit.conv2d(X, W, groups=2, padding="full"), ValueError, r"padding must be .*got 'full'"),
    "padding-mode-unknown": (lambda: convkit.conv2d(X, W, groups=2, padding_mode="mirror"), ValueError, r"padding_mode must be one of .*got 'mirror'"),
    "kernel-larger-than-input": (lambda: convkit.conv2d(X, np.zeros((4, 6, 9, 3))), ValueError, r"kernel height 9 is larger than the padded input height 8"),
    "dilated-kernel-too-large": (lambda: convkit.conv2d(X, np.zeros((4, 6, 3, 3)), dilation=(1, 4)), ValueError, r"kernel width 3 \(dilated to 9\) is larger than the padded input width 8"),
    "reflect-too-wide": (lambda: convkit.conv2d(X, W, groups=2, padding=8, padding_mode="reflect"), ValueError, r"padding_mode='reflect' needs padding < input height: padding \(8, 8\) with input height 8"),
    "circular-too-wide": (lambda: convkit.conv2d(X, W, groups=2, padding=((0, 0), (9, 0)), padding_mode="circular"), ValueError, r"padding_mode='circular' needs padding <= input width"),
    "out-list": (lambda: convkit.conv2d(X, W, groups=2, out=[0.0]), TypeError, r"out must be a numpy.ndarray, got list"),
    "out-dtype": (lambda: convkit.conv2d(X, W, groups=2, out=np.empty((2, 4, 6, 6), np.float32)), TypeError, r"out must have the result's dtype float64, got dtype float32"),
    "out-shape": (lambda: convkit.conv2d(X, W, groups=2, out=np.empty((2, 4, 6, 7))), ValueError, r"out must have the result's shape \(2, 4, 6, 6\), got shape \(2, 4, 6, 7\)"),
    "out-unbatched-shape": (lambda: convkit.conv2d(X[0], W, groups=2, out=np.empty((1, 4, 6, 6))), ValueError, r"out must have the result's shape \(4, 6, 6\), got shape \(1, 4, 6, 6\)"),
    "out-strided": (lambda: convkit.conv2d(X, W, groups=2, out=np.empty((2, 4, 6, 12))[..., ::2]), ValueError, r"out must be C-contiguous, got strides"),
    "out-broadcast": (lambda: convkit.conv2d(X, W, groups=2, out=np.broadcast_to(np.empty(1), (2, 4, 6, 6))), ValueError, r"out must be C-contiguous, got strides \(0, 0, 0, 0\)"),
    "out-read-only": (lambda: convkit.conv2d(X, W, groups=2, out=_read_only((2, 4, 6, 6))), ValueError, r"out must be writeable, got a read-only array"),
    "out-overlaps-input": (lambda: (lambda x: convkit.conv2d(x, np.zeros((4, 1, 1, 1)), groups=4, out=x))(np.zeros((2, 4, 6, 6))), ValueError, r"out must not share memory with input"),
    "out-overlaps-weight": (lambda: (lambda w: convkit.conv2d(np.zeros((1, 1, 1, 1)), w, out=w))(np.zeros((1, 1, 1, 1))), ValueError, r"out must not share memory with weight"),
    "transpose-out-shape": (lambda: convkit.conv_transpose2d(X, np.zeros((6, 2, 3, 3)), out=np.empty((2, 2, 9, 9))), ValueError, r"out must have the result's shape \(2, 2, 10, 10\), got shape \(2, 2, 9, 9\)"),
    "transpose-out-overlaps-input": (lambda: (lambda x: convkit.conv_transpose2d(x, np.zeros((2, 2, 1, 1)), out=x))(np.zeros((1, 2, 3, 3))), ValueError, r"out must not share memory with input"),
    "input-int": (lambda: convkit.conv2d(X.astype(np.int64), W, groups=2), TypeError, r"input must have a float16, float32 or float64 dtype, got dtype int64"),
    "input-bool": (lambda: convkit.conv2d(X.astype(bool), W, groups=2), TypeError, r"input .* got dtype bool"),
    "input-complex": (lambda: convkit.conv2d(X.astype(complex), W, groups=2), TypeError, r"input .* got dtype complex128"),
    "input-strings": (lambda: convkit.conv2d([[["a"]]], W), TypeError, r"input .* got dtype <U1"),
    "input-object": (lambda: convkit.conv2d(np.array([None, 1.0], dtype=object), W), TypeError, r"input .* got dtype object"),
    "input-ragged": (lambda: convkit.conv2d([[[1.0], [1.0, 2.0]]], W), TypeError, r"input must be an array of floats, got list that NumPy cannot read"),
    "input-none": (lambda: convkit.conv2d(None, W), TypeError, r"input must be an array of floats, got None"),
    "weight-int": (lambda: convkit.conv2d(X, W.astype(np.int32), groups=2), TypeError, r"weight must have a float.*got dtype int32"),
    "bias-int": (lambda: convkit.conv2d(X, W, np.zeros(4, int), groups=2), TypeError, r"bias must have a float.*got dtype int64"),
    "per-sample-weight-4d": (lambda: convkit.per_sample_conv2d(X, W), ValueError, r"weight must be 5-D .* N = input.shape\[0\] = 2, got shape \(4, 3, 3, 3\)"),
    "per-sample-weight-batch": (lambda: convkit.per_sample_conv2d(X, np.zeros((3, 4, 6, 3, 3))), ValueError, r"weight must be 5-D .*got shape \(3, 4, 6, 3, 3\)"),
    "per-sample-bias": (lambda: convkit.per_sample_conv2d(X, np.zeros((2, 4, 6, 3, 3)), np.zeros(4)), ValueError, r"bias must have shape \(2, 4\).*got shape \(4,\)"),
    "per-sample-input-3d": (lambda: convkit.per_sample_conv2d(X[0], np.zeros((2, 4, 6, 3, 3))), ValueError, r"input must be 4-D .* per-sample"),
    "layer-groups": (lambda: nn.Conv2d(6, 4, 3, groups=4), ValueError, r"groups=4 must divide in_channels=6"),
    "layer-groups-out": (lambda: nn.Conv2d(6, 4, 3, groups=3), ValueError, r"groups=3 must divide out_channels=4"),
    "layer-in-channels": (lambda: nn.Conv2d(0, 4, 3), ValueError, r"in_channels must be a positive int, got 0"),
    "layer-out-channels": (lambda: nn.Conv2d(3, 2.5, 3), ValueError, r"out_channels must be a positive int, got 2.5"),
    "layer-kernel": (lambda: nn.Conv2d(3, 4, 0), ValueError, r"kernel_size must be >= 1, got 0"),
    "layer-kernel-triple": (lambda: nn.Conv2d(3, 4, (3, 3, 3)), ValueError, r"kernel_size must be an int or a pair"),
    "layer-stride": (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, r"stride must be >= 1, got 0"),
    "layer-padding": (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, r"padding must be .*'full'"),
    "layer-mode": (lambda: nn.Conv2d(3, 4, 3, padding_mode="wrap"), ValueError, r"padding_mode must be one of .*'wrap'"),
    "layer-dtype": (lambda: nn.Conv2d(3, 4, 3, dtype=np.int32), TypeError, r"dtype must be float16, float32 or float64"),
    "layer-input-channels": (lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 5, 8, 8), np.float32)), ValueError, r"weight.shape\[1\] \* groups must equal input channels.*has 5"),
    "separable-multiplier": (lambda: nn.DepthwiseSeparableConv2d(3, 4, 3, depth_multiplier=0), ValueError, r"depth_multiplier must be a positive int, got 0"),
    "load-state-missing": (lambda: nn.Conv2d(3, 4, 3).load_state_dict({"weight": np.zeros((4, 3, 3, 3))}), ValueError, r"missing keys \['bias'\]"),
    "load-state-shape": (lambda: nn.Conv2d(3, 4, 3).load_state_dict({"weight": np.zeros((4, 3, 3, 2)), "bias": np.zeros(4)}), ValueError, r"state_dict\['weight'\] has shape \(4, 3, 3, 2\), expected \(4, 3, 3, 3\)"),
    "sequential-item": (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, r"Sequential takes convkit.nn modules, got 'relu' at position 1"),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_configuration_is_named(name):
    call, error, pattern = BAD_CALLS[name]
    with pytest.raises(error, match=pattern):
        call()


def test_failed_load_changes_nothing():
    layer = nn.Conv2d(3, 4, 3, rng=0)
    before = layer.state_dict()
    with pytest.raises(ValueError):
        layer.load_state_dict({"weight": np.ones((4, 3, 3, 3)), "bias": np.ones(5)})
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
