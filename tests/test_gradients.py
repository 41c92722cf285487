"""conv2d_backward, per_sample_conv2d_backward and conv_transpose2d against torch autograd."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings as hsettings, strategies as st

import convkit
from oracle import assert_close, torch_conv2d_grads
from test_conv2d import build, configs

rng = np.random.default_rng(11)


@given(configs())
def test_conv2d_backward_matches_torch_autograd(cfg):
    x, w, b, settings = build(cfg)
    out = convkit.conv2d(x, w, b, **settings)
    go = rng.standard_normal(out.shape).astype(cfg["dtype"])
    grads = convkit.conv2d_backward(go, x, w, **settings)
    expected = torch_conv2d_grads(go, x, w, **settings)
    tol = 1e-9 if cfg["dtype"] == np.float64 else 2e-5
    for got, want in zip(grads, expected):
        assert got.dtype == cfg["dtype"]
        assert_close(got, want, tol=tol)


@hsettings(deadline=None, max_examples=30)
@given(cg=st.integers(1, 4), og=st.integers(1, 3), k=st.sampled_from([(3, 3), (5, 5), (1, 3)]),
       stride=st.sampled_from([1, 2, 3]), e=st.integers(0, 2), d=st.integers(1, 2),
       left=st.integers(0, 8), top=st.integers(0, 2), h=st.integers(1, 5), width=st.integers(1, 8),
       n=st.integers(1, 3), dtype=st.sampled_from([np.float64, np.float32]))
def test_gradients_on_stride_phases_when_the_width_is_kept(cg, og, k, stride, e, d, left, top,
                                                           h, width, n, dtype):
    """Small groups, zero padding with W_out == W / stride (depthwise 'same', at stride 1
    or 2): the weight gradient reads the output gradient in place against the input split
    into stride phases of its pitch, the input gradient (at a stride) is gathered per
    phase; both take the wrapped reads back -- any split of the padding between left and
    right, wider than the plane included."""
    from convkit.kernels import Problem, backward
    from convkit.spec import parse_settings
    kh, kw = k
    across = max(0, (kw - 1) * d - min(e, stride - 1))  # W_out == W / stride
    left = min(left, across)
    h, width = h * stride, width * stride
    padding = ((top, max(0, (kh - 1) * d + 1 - h - top)), (left, across - left))
    conv = dict(padding=padding, stride=stride, dilation=d, groups=3)
    x = rng.standard_normal((n, 3 * cg, h, width)).astype(dtype)
    w = rng.standard_normal((3 * og, cg, kh, kw)).astype(dtype)
    problem = Problem.of(x.shape, w.shape, parse_settings(**conv).resolve(k, (h, width)), dtype)
    assert backward._in_place(problem) and not backward._pointwise(problem)
    go = rng.standard_normal((n, 3 * og, problem.out_h, problem.out_w))
    got = convkit.conv2d_backward(go.astype(dtype), x, w, **conv)
    for mine, want in zip(got, torch_conv2d_grads(go, x, w, **conv)):
        assert mine.dtype == dtype
        assert_close(mine, want, tol=1e-9 if dtype == np.float64 else 2e-5)


def test_finite_differences():
    """<grad, direction> equals the directional derivative of sum(out * grad_output)."""
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    settings = dict(stride=2, padding=((1, 0), (2, 1)), groups=2, padding_mode="reflect")
    go = rng.standard_normal(convkit.conv2d(x, w, **settings).shape)
    gi, gw, _ = convkit.conv2d_backward(go, x, w, **settings)
    dx, dw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    eps = 1e-6
    f = lambda x_, w_: np.sum(convkit.conv2d(x_, w_, **settings) * go)  # noqa: E731
    assert (f(x + eps * dx, w) - f(x - eps * dx, w)) / (2 * eps) == pytest.approx(
        np.sum(gi * dx), rel=1e-7)
    assert (f(x, w + eps * dw) - f(x, w - eps * dw)) / (2 * eps) == pytest.approx(
        np.sum(gw * dw), rel=1e-7)


@pytest.mark.parametrize("shape,kernel,settings", [
    ((3, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8)),
    ((3, 8, 13, 12), (16, 4, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((3, 64, 10, 10), (32, 64, 1, 1), {}),
    ((2, 3, 20, 20), (8, 3, 7, 7), dict(stride=2, padding=3)),
])
def test_suite_like_shapes_float32(shape, kernel, settings):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(kernel).astype(np.float32)
    go = rng.standard_normal(convkit.conv2d(x, w, **settings).shape).astype(np.float32)
    for got, want in zip(convkit.conv2d_backward(go, x, w, **settings),
                         torch_conv2d_grads(go, x, w, **settings)):
        assert_close(got, want, np.float32)


# One case per route through kernels/backward.py, float64 against torch autograd.
ROUTES = [
    ((2, 6, 7, 5), (4, 3, 1, 1), dict(groups=2)),                       # 1x1: batched products
    ((2, 6, 7, 5), (6, 6, 1, 1), dict(stride=(2, 3))),                  # 1x1 on the stride grid
    ((0, 6, 7, 5), (6, 2, 1, 1), dict(stride=2, groups=3)),             # 1x1, empty batch
    ((2, 6, 8, 7), (6, 1, 3, 3), dict(padding=((1, 0), (2, 1)), groups=6)),  # correlation
    ((2, 6, 8, 7), (12, 2, 3, 3), dict(padding=((0, 1), (2, 0)), groups=3)),  # in place
    ((2, 6, 8, 10), (6, 1, 3, 3), dict(padding=1, stride=2, groups=6)),  # in place, phases
    ((2, 12, 7, 6), (10, 6, 3, 2), dict(padding=1, dilation=(2, 1), groups=2)),  # 4x4 blocks
    ((2, 6, 8, 7), (6, 2, 3, 2), dict(padding=(3, 2), groups=3)),      # pad > kernel: fold
    ((2, 6, 8, 7), (6, 3, 3, 3), dict(padding=2, dilation=2, groups=2, padding_mode="reflect")),
    ((2, 6, 8, 7), (6, 1, 3, 3), dict(padding=1, stride=2, groups=6, padding_mode="circular")),
    ((2, 8, 11, 9), (10, 4, 3, 2), dict(padding=(2, 1), stride=(2, 3), dilation=(1, 2), groups=2,
                                        padding_mode="reflect")),  # stride phases, 4x4 blocks
    ((2, 6, 8, 7), (4, 6, 3, 3), dict(padding="same", padding_mode="symmetric")),
    ((2, 16, 9, 8), (16, 16, 3, 3), dict(padding=((1, 0), (2, 1)), padding_mode="reflect")),
    # ^ dense 3x3 at stride 1: Winograd for both gradients
]


@pytest.mark.parametrize("shape,kernel,settings", ROUTES, ids=str)
def test_every_backward_route_on_an_empty_batch(shape, kernel, settings):
    """No samples: zero weight and bias gradients and an empty input gradient on every
    route (the Winograd route divided its work by the sample count), as torch gives."""
    x, w = np.zeros((0, *shape[1:])), rng.standard_normal(kernel)
    go = np.zeros(convkit.conv2d(x, w, **settings).shape)
    got = convkit.conv2d_backward(go, x, w, **settings)
    for g, want in zip(got, torch_conv2d_grads(go, x, w, **settings)):
        assert g.shape == want.shape and not g.any()


@pytest.mark.parametrize("shape,kernel,settings", ROUTES, ids=str)
def test_every_backward_route_matches_torch(shape, kernel, settings):
    x, w = rng.standard_normal(shape), rng.standard_normal(kernel)
    go = rng.standard_normal(convkit.conv2d(x, w, **settings).shape)
    for got, want in zip(convkit.conv2d_backward(go, x, w, **settings),
                         torch_conv2d_grads(go, x, w, **settings)):
        assert_close(got, want, tol=1e-9)


@pytest.mark.parametrize("shape,kernel,settings", ROUTES + [
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(stride=2, padding=1)),  # dense strided: col2im bands
], ids=str)
def test_every_input_gradient_route_writes_out_whole(shape, kernel, settings):
    """The input gradient (conv_transpose2d's result) into a caller's NaN-filled array:
    every route sets or zero-fills every pixel."""
    from convkit import kernels, spec
    from convkit.kernels import backward
    x, w = rng.standard_normal(shape), rng.standard_normal(kernel)
    go = rng.standard_normal(convkit.conv2d(x, w, **settings).shape)
    problem = kernels.Problem.of(x.shape, w.shape, spec.parse_settings(**settings).resolve(
        w.shape[2:], x.shape[2:]), np.float64)
    out = np.full(x.shape, np.nan)
    assert backward.input_gradient(go, w, problem, out=out) is out
    assert_close(out, torch_conv2d_grads(go, x, w, **settings)[0], tol=1e-9)


def test_conv_transpose2d_out_float16():
    """A float16 result is computed in float32 and cast into ``out``."""
    x, w = (rng.standard_normal(s).astype(np.float16) for s in ((2, 4, 5, 6), (4, 3, 3, 3)))
    into = np.full((2, 3, 11, 13), np.nan, np.float16)
    assert convkit.conv_transpose2d(x, w, stride=2, out=into) is into
    np.testing.assert_array_equal(into, convkit.conv_transpose2d(x, w, stride=2))
    expected = F.conv_transpose2d(torch.tensor(x, dtype=torch.float64),
                                  torch.tensor(w, dtype=torch.float64), stride=2).numpy()
    assert_close(into, expected, np.float16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups", [((12, 2, 3, 5), 3), ((4, 3, 1, 1), 1), ((6, 1, 2, 3), 6)])
def test_flipped_kernels_turn_each_kernel_and_swap_channels_in_its_group(shape, groups, dtype):
    """The input gradient's correlation weights: out[g*cg + c, o] = w[g*og + o, c] rotated."""
    from convkit.kernels.backward import flipped_kernels
    w = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    c_out, cg = shape[:2]
    og = c_out // groups
    want = np.empty((groups * cg, og, *shape[2:]), dtype)
    for g in range(groups):
        for c in range(cg):
            for o in range(og):
                want[g * cg + c, o] = np.rot90(w[g * og + o, c], 2)
    got = flipped_kernels(w, groups)
    assert got.dtype == dtype and np.array_equal(got, want)


def test_dense_gradients_in_bands_of_output_rows(monkeypatch):
    """Tiny column tiles force several bands per image (and the reflect border's fold
    across band edges) in both dense gradients and the forward."""
    from convkit.kernels import gemm
    monkeypatch.setattr(gemm, "TILE_BYTES", 256)
    monkeypatch.setattr(gemm, "MIN_PIXELS", 1)
    x, w = rng.standard_normal((2, 3, 11, 9)), rng.standard_normal((4, 3, 3, 2))
    settings = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), padding_mode="reflect")
    out = convkit.conv2d(x, w, **settings)
    assert gemm.band_rows(kernels_problem(x, w, settings)) < out.shape[2]
    go = rng.standard_normal(out.shape)
    for got, want in zip(convkit.conv2d_backward(go, x, w, **settings),
                         torch_conv2d_grads(go, x, w, **settings)):
        assert_close(got, want, tol=1e-9)


def kernels_problem(x, w, settings):
    from convkit import kernels, spec
    resolved = spec.parse_settings(**settings).resolve(w.shape[2:], x.shape[2:])
    return kernels.Problem.of(x.shape, w.shape, resolved, x.dtype)

def test_per_sample_backward_equals_a_loop():
    x = rng.standard_normal((3, 4, 8, 7))
    w = rng.standard_normal((3, 6, 2, 3, 3))
    settings = dict(padding=1, groups=2, stride=(2, 1))
    go = rng.standard_normal(convkit.per_sample_conv2d(x, w, **settings).shape)
    gi, gw, gb = convkit.per_sample_conv2d_backward(go, x, w, **settings)
    for i in range(3):
        want = torch_conv2d_grads(go[i], x[i], w[i], **settings)
        for got, expected in zip((gi[i], gw[i], gb[i]), want):
            assert_close(got, expected, tol=1e-9)


TRANSPOSED = [
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=3, dilation=2, output_padding=2),  # output_padding >= stride, < dilation
    dict(stride=(2, 1), padding=(1, 0), groups=2),
    dict(dilation=(1, 3), padding=(0, 2)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("settings", TRANSPOSED, ids=str)
def test_conv_transpose2d_matches_torch(settings, dtype):
    groups = settings.get("groups", 1)
    x = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(3 * groups).astype(dtype)
    expected = F.conv_transpose2d(*(torch.tensor(a.astype(np.float64)) for a in (x, w, b)),
                                  **settings).numpy()
    out = convkit.conv_transpose2d(x, w, b, **settings)
    assert out.dtype == dtype
    assert_close(out, expected, dtype)
    assert_close(convkit.conv_transpose2d(x[0], w, b, **settings), expected[0], dtype)
    for source, result in ((x, out), (x[0], out[0])):  # out=, batched and unbatched
        into = np.full(result.shape, np.nan, dtype)
        assert convkit.conv_transpose2d(source, w, b, **settings, out=into) is into
        np.testing.assert_array_equal(into, result)


@pytest.mark.parametrize("settings", [dict(padding=1), dict(stride=2, groups=4), {}], ids=str)
def test_conv_transpose2d_of_an_empty_batch(settings):
    """Winograd (first case), the strided scatter and 1x1 products, with no samples."""
    w = rng.standard_normal((16, 4 if "groups" in settings else 16, 3, 3))
    out = convkit.conv_transpose2d(np.zeros((0, 16, 8, 8)), w, **settings)
    expected = F.conv_transpose2d(torch.zeros(0, 16, 8, 8, dtype=torch.float64),
                                  torch.tensor(w), **settings)
    assert out.shape == tuple(expected.shape)


@pytest.mark.parametrize("settings", [dict(stride=2, output_padding=1),
                                      dict(stride=(1, 2), dilation=3, output_padding=(2, 1)),
                                      dict(groups=2)], ids=str)
def test_conv_transpose2d_1x1_matches_torch(settings):
    """1x1 kernels take the batched-product route of the input gradient."""
    groups = settings.get("groups", 1)
    x, w = rng.standard_normal((2, 4, 5, 3)), rng.standard_normal((4, 3, 1, 1))
    expected = F.conv_transpose2d(torch.tensor(x), torch.tensor(w), **settings).numpy()
    assert expected.shape[1] == 3 * groups
    assert_close(convkit.conv_transpose2d(x, w, **settings), expected)


@pytest.mark.parametrize("padding", [1, 3], ids=["within-kernel", "past-kernel"])
def test_conv_transpose2d_grouped_stride_1_matches_torch(padding):
    """Grouped at stride 1: the forward-correlation route, direct or folded."""
    x, w = rng.standard_normal((2, 6, 7, 8)), rng.standard_normal((6, 5, 3, 3))
    expected = F.conv_transpose2d(torch.tensor(x), torch.tensor(w), padding=padding,
                                  groups=3).numpy()
    assert_close(convkit.conv_transpose2d(x, w, padding=padding, groups=3), expected)


def test_conv_transpose2d_output_size_as_torchs_layer():
    x, w = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((4, 2, 3, 3))
    layer = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, bias=False,
                                     dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
        expected = layer(torch.tensor(x), output_size=[10, 10]).numpy()
    out = convkit.conv_transpose2d(x, w, stride=2, padding=1, output_size=(1, 2, 10, 10))
    assert out.shape == (1, 2, 10, 10)
    assert_close(out, expected)


@pytest.mark.parametrize("call,error,message", [
    (lambda: convkit.conv_transpose2d(np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3)), stride=2,
                                      output_padding=2), ValueError,
     r"output_padding must be smaller than stride or dilation: output_padding=2"),
    (lambda: convkit.conv_transpose2d(np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3))), ValueError,
     r"weight.shape\[0\] must equal input channels"),
    (lambda: convkit.conv_transpose2d(np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3)), stride=2,
                                      output_size=(13, 13)), ValueError,
     r"output_size must be \(H_out, W_out\) with each between \[11, 11\] and \[12, 12\]"),
    (lambda: convkit.conv_transpose2d(np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3)),
                                      padding="same"), ValueError,
     r"conv_transpose2d takes padding as an int or a pair, got 'same'"),
    (lambda: convkit.conv_transpose2d(np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3)), groups=3),
     ValueError, r"groups=3 must divide input channels=4"),
    (lambda: convkit.conv2d_backward(np.ones((1, 4, 4, 4)), np.ones((1, 3, 5, 5)),
                                     np.ones((4, 3, 3, 3))), ValueError,
     r"grad_output must have the forward output's shape \(1, 4, 3, 3\), got shape \(1, 4, 4, 4\)"),
    (lambda: convkit.conv2d_backward(np.ones((1, 4, 3, 3), int), np.ones((1, 3, 5, 5)),
                                     np.ones((4, 3, 3, 3))), TypeError,
     r"grad_output must have a float16, float32 or float64 dtype, got dtype int64"),
])
def test_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
