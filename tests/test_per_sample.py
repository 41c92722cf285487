"""per_sample_conv2d equals a loop of conv2d (and of torch) over samples: seed 004's problem."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convkit
from oracle import assert_close, torch_conv2d

rng = np.random.default_rng(4)

CASES = [
    ((5, 16, 9, 10), (5, 1, 16, 6, 3), dict(padding=(1, 0))),  # seed 004 case 1, reduced
    ((6, 16, 7, 7), (6, 1, 16, 7, 1), {}),  # seed 004's column kernels (matmul check below)
    ((6, 16, 7, 7), (6, 1, 16, 1, 7), {}),  # ... and row kernels
    ((4, 6, 8, 9), (4, 4, 3, 3, 3), dict(groups=2, stride=2, padding="same", dilation=1)),
    ((3, 4, 6, 6), (3, 8, 1, 3, 3), dict(groups=4, padding=1, padding_mode="reflect")),
    ((2, 3, 5, 7), (2, 2, 3, 2, 2), dict(padding=((0, 1), (2, 0)), padding_mode="symmetric")),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape,w_shape,settings", CASES, ids=str)
def test_equals_a_loop_of_conv2d(x_shape, w_shape, settings, dtype):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[:2]).astype(dtype)
    out = convkit.per_sample_conv2d(x, w, b, **settings)
    expected = np.stack([torch_conv2d(x[i], w[i], b[i], **settings) for i in range(len(x))])
    assert out.dtype == dtype
    assert_close(out, expected, dtype)
    assert_close(convkit.per_sample_conv2d(x, w, None, **settings),
                 expected - b[:, :, None, None], dtype)


def test_seed004_column_kernel_is_a_matmul():
    """Seed 004: with no padding a (C, 14, 1) kernel on a (C, 14, 14) map is a matmul."""
    x = rng.standard_normal((6, 16, 7, 7))
    col = rng.standard_normal((6, 16, 7, 1))
    out = convkit.per_sample_conv2d(x, col[:, None])
    via_matmul = (np.swapaxes(col, 2, 3) @ x).sum(axis=1, keepdims=True)  # (6, 1, 1, 7)
    assert_close(out, via_matmul)


def test_seed004_grouped_call_where_batch_equals_groups():
    """The seed's working call: weight batch == groups, each group its own weight slice."""
    x = rng.standard_normal((8, 32, 9, 10))
    w = rng.standard_normal((8, 4, 6, 3))
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), padding=(1, 0), groups=8).numpy()
    assert_close(convkit.conv2d(x, w, padding=(1, 0), groups=8), expected)


def test_empty_batch():
    out = convkit.per_sample_conv2d(np.zeros((0, 4, 6, 6)), np.zeros((0, 2, 4, 3, 3)))
    assert out.shape == (0, 2, 4, 4)
