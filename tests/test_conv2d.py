"""conv2d against torch 2.13 (float64): named cases from the seeds, every padding form,
hypothesis."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given, strategies as st

import convkit
from convkit import kernels, spec
from convkit.examples import seed000
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d, torch_layer_conv2d

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# name: (input shape, weight shape, settings) -- the seeds' examples, reduced where large
CASES = {
    "seed000-groups1": ((2, 3, 4, 5), (6, 3, 3, 3), {}),
    "seed000-groups3": ((2, 3, 4, 5), (6, 1, 3, 3), dict(groups=3)),
    "seed001-3x3-on-4x4": ((1, 1, 4, 4), (1, 1, 3, 3), {}),
    "seed002-1x1": ((1, 4, 6, 6), (2, 4, 1, 1), {}),
    "seed003-plain-4to8": ((1, 4, 3, 3), (8, 4, 3, 3), dict(padding=1)),
    "seed003-depthwise": ((1, 4, 3, 3), (4, 1, 3, 3), dict(padding=1, groups=4)),
    "depthwise-multiplier-3": ((2, 4, 7, 6), (12, 1, 3, 3), dict(padding=1, groups=4)),
    "seed004-dense-6x3": ((3, 16, 9, 10), (3, 16, 6, 3), dict(padding=(1, 0))),
    "seed004-grouped-6x3": ((8, 32, 9, 10), (8, 4, 6, 3), dict(padding=(1, 0), groups=8)),
    "seed004-column-14x1": ((4, 16, 7, 7), (1, 16, 7, 1), {}),
    "seed004-row-1x14": ((4, 16, 7, 7), (1, 16, 1, 7), {}),
    "stride-dilation": ((2, 6, 11, 13), (4, 3, 3, 2), dict(stride=(2, 3), dilation=(2, 1),
                                                            padding=(2, 1), groups=2)),
    "resnet-stem-small": ((1, 3, 32, 30), (8, 3, 7, 7), dict(stride=2, padding=3)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CASES)
def test_named_cases_match_torch(name, dtype):
    x_shape, w_shape, settings = CASES[name]
    x, w, b = randn(*x_shape, dtype=dtype), randn(*w_shape, dtype=dtype), randn(w_shape[0],
                                                                                dtype=dtype)
    for bias in (None, b):
        out = convkit.conv2d(x, w, bias, **settings)
        assert out.dtype == dtype
        assert_close(out, torch_conv2d(x, w, bias, **settings), dtype)
        assert_close(out[0], convkit.conv2d(x[0], w, bias, **settings), dtype)  # unbatched


def test_seed000_worked_values():
    """The seed's printed sums: -132.636 (groups=1), -105.5849 and 123.3577 (groups=3),
    to the seed's printed precision, and the same numbers from torch."""
    x, w = seed000(groups=1)
    out = convkit.conv2d(x, w)
    assert out[0, 0, 0, 0] == pytest.approx(-132.636, abs=5e-4)
    assert_close(out, torch_conv2d(x, w))
    x, w = seed000(groups=3)
    out = convkit.conv2d(x, w, groups=3)
    assert out[0, 0, 0, 0] == pytest.approx(-105.5849, abs=5e-5)
    assert out[0, 1, 0, 0] == pytest.approx(123.3577, abs=5e-5)
    assert_close(out, torch_conv2d(x, w, groups=3))


PADDINGS = [0, 2, (1, 0), (0, 3), ((0, 2), (1, 0)), ((3, 1), (2, 2)), "valid", "same",
            "same_lower"]
MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("stride", [1, 2, (3, 1)], ids=str)
def test_every_padding_form_and_mode(padding, mode, stride):
    x, w, b = randn(2, 4, 7, 8), randn(6, 2, 3, 4), randn(6)
    settings = dict(stride=stride, padding=padding, dilation=(1, 2), groups=2, padding_mode=mode)
    assert_close(convkit.conv2d(x, w, b, **settings), torch_conv2d(x, w, b, **settings))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"], ids=str)
def test_agrees_with_torch_layer_where_torch_defines_it(padding, mode):
    """torch's own Conv2d: its padding modes and its 'same' (odd extra pixel bottom/right)."""
    x, w, b = randn(2, 3, 9, 8), randn(4, 3, 4, 2), randn(4)
    settings = dict(padding=padding, padding_mode=mode, dilation=(1, 3))
    out = convkit.conv2d(x, w, b, **settings)
    assert_close(out, torch_layer_conv2d(x, w, b, **settings))


def test_same_with_stride_is_tensorflow_same():
    """TF 'SAME' at stride 2: out = ceil(in / 2), pads (0, 1) for 224 and kernel 3."""
    assert spec.parse_settings(2, "same").resolve((3, 3), (224, 224)).pads == ((0, 1), (0, 1))
    assert spec.parse_settings(2, "same_lower").resolve((3, 3), (224, 224)).pads == ((1, 0),
                                                                                      (1, 0))
    out = convkit.conv2d(randn(1, 1, 224, 225), randn(1, 1, 3, 3), stride=2, padding="same")
    assert out.shape == (1, 1, 112, 113)


@st.composite
def configs(draw):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 2))))
    padding = draw(st.one_of(
        st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                  st.tuples(st.integers(0, 3), st.integers(0, 3))),
        st.sampled_from(["valid", "same", "same_lower"])))
    mode = draw(st.sampled_from(MODES))
    n = draw(st.sampled_from([None, 0, 1, 2, 3]))  # None: unbatched
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "flipped"]))
    bias = draw(st.booleans())
    return dict(groups=groups, cg=cg, og=og, kernel=(kh, kw), hw=(h, w), stride=stride,
                dilation=dilation, padding=padding, mode=mode, n=n, dtype=dtype, layout=layout,
                bias=bias)


def make_input(shape, dtype, layout):
    if layout == "fortran":
        return np.asfortranarray(randn(*shape, dtype=dtype))
    if layout == "strided":  # a non-contiguous view of a larger array
        big = randn(*shape[:-1], 2 * shape[-1], dtype=dtype)
        return big[..., ::2]
    if layout == "flipped":  # negative strides
        return randn(*shape, dtype=dtype)[..., ::-1, ::-1]
    return randn(*shape, dtype=dtype)


def build(cfg):
    g = cfg["groups"]
    batch = () if cfg["n"] is None else (cfg["n"],)
    x = make_input((*batch, g * cfg["cg"], *cfg["hw"]), cfg["dtype"], cfg["layout"])
    w = randn(g * cfg["og"], cfg["cg"], *cfg["kernel"], dtype=cfg["dtype"])
    b = randn(g * cfg["og"], dtype=cfg["dtype"]) if cfg["bias"] else None
    settings = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                    groups=g, padding_mode=cfg["mode"])
    try:  # configurations torch's shape rule or the mode limits reject are tested in test_errors
        spec.parse_settings(**settings).resolve(cfg["kernel"], cfg["hw"])
    except ValueError:
        assume(False)
    return x, w, b, settings


@given(configs())
def test_hypothesis_matches_torch_and_reference(cfg):
    x, w, b, settings = build(cfg)
    before = x.copy()
    out = convkit.conv2d(x, w, b, **settings)
    np.testing.assert_array_equal(x, before)  # the caller's array is untouched
    assert out.dtype == cfg["dtype"]
    expected = torch_conv2d(x, w, b, **settings)
    assert_close(out, expected, cfg["dtype"])
    x4 = x if x.ndim == 4 else x[None]
    if x4.shape[0]:
        parsed = spec.parse_settings(**settings).resolve(cfg["kernel"], cfg["hw"])
        ref = conv2d_reference(x4, w, b, parsed)
        assert_close(ref if x.ndim == 4 else ref[0], expected, np.float64)


def test_dtypes_follow_numpy_promotion():
    x, w = randn(1, 2, 5, 5), randn(3, 2, 3, 3)
    assert convkit.conv2d(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32
    assert convkit.conv2d(x.astype(np.float32), w).dtype == np.float64
    half = convkit.conv2d(x.astype(np.float16), w.astype(np.float16))
    assert half.dtype == np.float16
    assert_close(half, torch_conv2d(x.astype(np.float16), w.astype(np.float16)), np.float16)
    assert convkit.conv2d(x.astype(np.float16), w.astype(np.float32)).dtype == np.float32


def test_array_likes_and_read_only_inputs():
    x, w, b = randn(1, 2, 4, 4), randn(3, 2, 2, 2), randn(3)
    expected = torch_conv2d(x, w, b)
    assert_close(convkit.conv2d(x.tolist(), w.tolist(), b.tolist()), expected)
    xt = torch.tensor(x, requires_grad=True)
    assert_close(convkit.conv2d(xt, torch.tensor(w), torch.tensor(b)), expected)
    for a in (x, w, b):
        a.flags.writeable = False  # any write would raise
    assert_close(convkit.conv2d(x, w, b), expected)


def test_out_unbatched_float16_and_empty():
    """``out=`` takes the result's own shape and dtype: unbatched 3-D, float16 (computed in
    float32, then cast into it) and an empty batch."""
    x, w, b = randn(3, 7, 6), randn(4, 3, 3, 3), randn(4)
    out = np.full((4, 5, 4), np.nan)
    assert convkit.conv2d(x, w, b, out=out) is out
    assert_close(out, torch_conv2d(x[None], w, b)[0])
    half = [a.astype(np.float16) for a in (x, w, b)]
    out16 = np.full((4, 5, 4), np.nan, np.float16)
    assert convkit.conv2d(*half, out=out16) is out16
    np.testing.assert_array_equal(out16, convkit.conv2d(*half))
    assert_close(out16, torch_conv2d(half[0][None], *half[1:])[0], np.float16)
    empty = np.empty((0, 4, 5, 4))
    assert convkit.conv2d(np.zeros((0, 3, 7, 6)), w, out=empty) is empty


def test_empty_batch():
    out = convkit.conv2d(np.zeros((0, 4, 6, 7)), randn(8, 2, 3, 3), groups=2, padding=1)
    assert out.shape == (0, 8, 6, 7)


def test_every_configuration_above_runs_on_a_fast_kernel():
    """The table never hands a common problem to the reference kernel."""
    problems = [kernels.Problem.of((2, 4, 9, 9), (4, 1, 3, 3),
                                   spec.parse_settings(padding=1, groups=4,
                                                       padding_mode=m).resolve((3, 3), (9, 9)),
                                   np.float32) for m in MODES]
    assert all(kernels.choose(p).name != "reference" for p in problems)


def test_import_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, convkit; convkit.conv2d([[[[1.0]]]], [[[[2.0]]]]); " \
           "sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


FORK_SCRIPT = """
import os, numpy as np, convkit
from convkit.kernels import direct, forksafe
CASES = [  # (input, weight shapes, settings): depthwise, strided, grouped, reflect, dense
    ((2, 6, 9, 8), (6, 1, 3, 3), dict(padding=1, groups=6)),
    ((2, 6, 10, 8), (12, 1, 3, 3), dict(padding=1, stride=2, groups=6)),
    ((2, 16, 10, 8), (16, 1, 3, 3), dict(padding=1, stride=2, groups=16)),  # channels-last
    ((2, 8, 9, 9), (8, 4, 3, 3), dict(padding=1, groups=2)),
    ((2, 12, 9, 9), (12, 2, 3, 3), dict(padding=2, dilation=2, groups=6, padding_mode="reflect")),
    ((2, 6, 9, 8), (6, 1, 2, 3), dict(padding=(1, 2), groups=6)),
    ((2, 16, 8, 8), (16, 16, 3, 3), dict(padding=1)),
    ((2, 5, 9, 9), (7, 5, 3, 3), dict(stride=2, padding=1)),
    ((2, 5, 8, 8), (9, 5, 1, 1), dict()),  # dense 1x1: pointwise
]
def compute():
    results = []
    for xs, ws, settings in CASES:
        r = np.random.default_rng(sum(xs) + sum(ws))
        x, w = r.standard_normal(xs), r.standard_normal(ws)
        out = convkit.conv2d(x, w, **settings)
        results.append([out, *convkit.conv2d_backward(np.cos(out), x, w, **settings)])
    return results
parent = compute()  # Numba's parallel kernels ran: its threads exist in this process only
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        error = max(float(np.abs(a - b).max() / np.abs(b).max())
                    for got, want in zip(compute(), parent) for a, b in zip(got, want))
        result = f"{error:.3g}"
    except Exception as err:
        result = f"failed {type(err).__name__}: {err}"
    twins = len(direct._masked(3, 3, 1, 1).twin)
    os.write(write, f"{forksafe.threads_lost()}|{result}|{twins}".encode())
    os._exit(0)
os.close(write)
message = os.read(read, 8192).decode()
os.waitpid(pid, 0)
print(message)
"""


def test_forked_child_runs_every_kernel_on_one_thread():
    """A process forked after convkit ran its Numba parallel kernels.  On GNU OpenMP (which
    cannot run in the child: Numba would SIGTERM it, and a multiprocessing pool would hang)
    the child runs each parallel kernel as its serial twin and gets the parent's numbers,
    forward and backward, on every route; on a fork-safe threading layer it needs no twin."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    lost, error, twins = done.stdout.strip().split("|")
    assert float(error) < 1e-12, error  # the same numbers
    assert twins == ("1" if lost == "True" else "0")
