"""The Winograd kernels (F(2x2, 3x3); F(4x4, 3x3) in float64) against the reference and torch
float64; their schedules and routing."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import kernels, spec
from convkit.kernels import winograd
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d, torch_conv2d_grads

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
FLOAT32_TOL = 5e-6  # the kernel's own bound, well inside the suite's 2e-5


def problem_of(x_shape, w_shape, dtype=np.float32, **settings):
    parsed = spec.parse_settings(**settings).resolve(w_shape[2:], x_shape[2:])
    return kernels.Problem.of(x_shape, w_shape, parsed, dtype)


def run_winograd(x, w, b, **settings):
    problem = problem_of(x.shape, w.shape, x.dtype, **settings)
    assert kernels.choose(problem).name == "winograd"
    return kernels.run(x, w, b, problem), problem.spec


MIN_TILES = winograd.MIN_TILES  # the routing's, before the fixture lifts it


@pytest.fixture(autouse=True)
def any_tile_count(monkeypatch):
    """The kernel's own tests run on small planes: lift the routing's tile minimum (its own
    test puts it back)."""
    monkeypatch.setattr(winograd, "MIN_TILES", 1)


def tol(dtype):
    return FLOAT32_TOL if np.dtype(dtype) == np.float32 else None


@settings(deadline=None, max_examples=30)
@given(c_in=st.integers(16, 40), c_out=st.integers(16, 24), n=st.integers(1, 3),
       h=st.integers(3, 12), w=st.integers(3, 12),
       pads=st.tuples(*[st.integers(0, 3)] * 4), mode=st.sampled_from(MODES),
       bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_winograd_against_reference(c_in, c_out, n, h, w, pads, mode, bias, dtype):
    rng = np.random.default_rng(c_in + 7 * c_out + 31 * h + 101 * w)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    k = rng.standard_normal((c_out, c_in, 3, 3)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    top, bottom, left, right = pads
    padding = ((top, bottom), (left, right))
    try:
        resolved = spec.parse_settings(padding=padding, padding_mode=mode).resolve(
            (3, 3), (h, w))
    except ValueError:
        return  # reflect past its limit or an empty output: covered by test_errors
    out, _ = run_winograd(x, k, b, padding=padding, padding_mode=mode)
    assert out.dtype == dtype
    expected = conv2d_reference(x, k, b, resolved)
    assert_close(out, expected, dtype, tol(dtype))
    assert_close(out, torch_conv2d(x, k, b, padding=padding, padding_mode=mode), dtype,
                 tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_winograd_every_mode_asymmetric_pads_odd_sizes(mode, dtype):
    rng = np.random.default_rng(len(mode))
    x = rng.standard_normal((2, 17, 9, 8)).astype(dtype)
    w = rng.standard_normal((19, 17, 3, 3)).astype(dtype)
    b = rng.standard_normal(19).astype(dtype)
    padding = ((2, 0), (1, 3))
    out, _ = run_winograd(x, w, b, padding=padding, padding_mode=mode)
    assert_close(out, torch_conv2d(x, w, b, padding=padding, padding_mode=mode), dtype,
                 tol(dtype))


@pytest.mark.parametrize("c_in", [256, 512])
def test_winograd_float32_accuracy_many_channels(c_in):
    """F(2x2) keeps float32 within 5e-6 of max |out| where F(4x4) reached 1.3e-5."""
    rng = np.random.default_rng(c_in)
    x = rng.standard_normal((2, c_in, 14, 14)).astype(np.float32)
    w = rng.standard_normal((32, c_in, 3, 3)).astype(np.float32)
    out, _ = run_winograd(x, w, None, padding=1)
    assert_close(out, torch_conv2d(x, w, None, padding=1), np.float32, FLOAT32_TOL)


@pytest.mark.parametrize("shape", [(2, 64, 56, 64), (2, 256, 14, 256)])
def test_winograd_float32_accuracy_suite_shapes(shape):
    n, c_in, hw, c_out = shape
    rng = np.random.default_rng(hw)
    x = rng.standard_normal((n, c_in, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    out, _ = run_winograd(x, w, b, padding=1)
    assert_close(out, torch_conv2d(x, w, b, padding=1), np.float32, FLOAT32_TOL)


@pytest.mark.parametrize("point", [False, True])
@pytest.mark.parametrize("m", [2, 4])
@settings(deadline=None, max_examples=15)
@given(data=st.data())
def test_winograd_float64_variants_and_schedules(m, point, data):
    """F(2x2) and F(4x4), by units and by point, every output size modulo the tile (the
    cropped last tile row and column), padding mode and asymmetric pads."""
    h, w = data.draw(st.integers(3, 13), "h"), data.draw(st.integers(3, 13), "w")
    pads = data.draw(st.tuples(*[st.integers(0, 2)] * 4), "pads")
    mode = data.draw(st.sampled_from(MODES), "mode")
    n = data.draw(st.integers(1, 3), "n")
    rng = np.random.default_rng(h + 13 * w + 101 * m)
    x = rng.standard_normal((n, 16, h, w))
    k = rng.standard_normal((17, 16, 3, 3))
    b = rng.standard_normal(17)
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    try:
        resolved = spec.parse_settings(padding=padding, padding_mode=mode).resolve(
            (3, 3), (h, w))
    except ValueError:
        return  # reflect past its limit: covered by test_errors
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "variant", lambda p: winograd.F4 if m == 4 else winograd.F2)
        patch.setattr(winograd, "by_point", lambda *args: point)
        out, _ = run_winograd(x, k, b, padding=padding, padding_mode=mode)
    assert_close(out, conv2d_reference(x, k, b, resolved), np.float64, 1e-12)


def test_winograd_float64_f4_accuracy_on_a_deep_layer():
    """F(4x4)'s larger transform entries cost float64 nothing measurable: 1e-13 of max |out|."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 256, 16, 16))
    w = rng.standard_normal((32, 256, 3, 3))
    assert winograd.variant(problem_of(x.shape, w.shape, np.float64, padding=1)).m == 4
    out, _ = run_winograd(x, w, None, padding=1)
    assert_close(out, torch_conv2d(x, w, None, padding=1), np.float64, 1e-13)


def test_winograd_variant_and_schedule_choice():
    def variant(hw, dtype):
        return winograd.variant(problem_of((8, 64, hw, hw), (64, 64, 3, 3), dtype,
                                           padding=1)).m
    assert [variant(hw, np.float32) for hw in (7, 14, 28, 56)] == [2, 2, 2, 2]
    # float64: F(4x4) unless its 4x4 tiles overrun the plane too much (14 -> 16)
    assert [variant(hw, np.float64) for hw in (7, 14, 28, 56)] == [4, 2, 4, 4]
    wide = problem_of((1, 512, 28, 28), (512, 512, 3, 3), np.float64, padding=1)
    assert winograd.variant(wide).m == 2  # F(4x4)'s U would be 75 MB
    deep = 16 * 256 * 256 * 4  # U of ResNet's 256-channel stage, float32
    assert winograd.by_point(16 * 512 * 392 * 4, 8, deep)  # its batch of 8 at 14x14
    assert not winograd.by_point(16 * 128 * 6272 * 4, 8, 16 * 64 * 64 * 4)  # 64 ch, 56x56
    assert not winograd.by_point(winograd.BATCH_BYTES + 1, 1000, deep)  # memory stays flat


def test_winograd_unbatched_and_non_contiguous_through_conv2d():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((20, 13, 22))
    x = base[::-1, :, ::2]  # negative and doubled strides: not C-contiguous
    w = rng.standard_normal((16, 20, 3, 3))
    b = rng.standard_normal(16)
    problem = problem_of((1, *x.shape), w.shape, np.float64, padding="same",
                         padding_mode="reflect")
    assert kernels.choose(problem).name == "winograd"
    for dtype in (np.float32, np.float64):
        out = convkit.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype),
                             padding="same", padding_mode="reflect")
        expected = torch_conv2d(x[None], w, b, padding=1, padding_mode="reflect")[0]
        assert out.shape == expected.shape
        assert_close(out, expected, dtype, tol(dtype))


def test_winograd_tiles_samples_and_tile_rows(monkeypatch):
    """Workspace larger than TILE_BYTES: a few samples, or a band of tile rows, at a time."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 16, 11, 9))
    w = rng.standard_normal((16, 16, 3, 3))
    b = rng.standard_normal(16)
    expected = torch_conv2d(x, w, b, padding=((1, 2), (0, 1)), padding_mode="circular")
    for serial_flops in (0, 1 << 60):  # the worker pool, the calling thread alone
        monkeypatch.setattr(winograd, "SERIAL_FLOPS", serial_flops)
        for budget in (16 * 32 * 5 * 8 * 6 * 2, 16 * 32 * 5 * 8 * 2, 1):  # 2 samples, 2 rows
            monkeypatch.setattr(winograd, "TILE_BYTES", budget)
            out, _ = run_winograd(x, w, b, padding=((1, 2), (0, 1)), padding_mode="circular")
            assert_close(out, expected)


def test_winograd_unit_size_follows_the_last_level_cache(tmp_path):
    """An eighth of the largest cache sysfs lists, between 4 and 16 MiB; 4 MiB with a 32 MB
    L3 (Zen 4, where 4 was measured best), 16 with 300 MB (Emerald Rapids)."""
    for index, size in (("index0", "48K"), ("index2", "2048K"), ("index3", "307200K")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "size").write_text(size + "\n")
    (tmp_path / "uevent").write_text("")
    assert winograd.last_level_cache(str(tmp_path)) == 300 << 20
    assert winograd.last_level_cache(str(tmp_path / "missing")) is None
    assert [winograd.unit_bytes(b) >> 20 for b in (32 << 20, 300 << 20, 1 << 20, 96 << 20,
                                                    None)] == [4, 16, 4, 12, 4]


def test_winograd_work_units_cover_the_work_once():
    for n, rows, workers, budget in [(8, 28, 2, 8), (8, 7, 2, 100), (1, 28, 2, 1000),
                                     (3, 5, 4, 1), (1, 1, 2, 1), (5, 9, 2, 10 ** 9)]:
        units = winograd.work_units(n, rows, 1, workers, budget)
        covered = sorted((s, r) for n0, nt, tr0, tr1 in units
                         for s in range(n0, n0 + nt) for r in range(tr0, tr1))
        assert covered == [(s, r) for s in range(n) for r in range(rows)]
        assert len(units) >= min(workers, n * rows)


def test_winograd_worker_failure_does_not_hang(monkeypatch):
    """A unit that raises returns its buffers: the call fails instead of waiting forever."""
    def boom(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(winograd, "SERIAL_FLOPS", 0)
    monkeypatch.setattr(winograd, "TILE_BYTES", 1)
    monkeypatch.setattr(winograd, "variant", lambda p: winograd.F2._replace(
        output_transform=boom))
    x, w = np.ones((4, 16, 6, 6)), np.ones((16, 16, 3, 3))
    with pytest.raises(RuntimeError, match="boom"):
        run_winograd(x, w, None, padding=1)


def test_winograd_routing():
    def name(c_in=32, c_out=32, k=(3, 3), **settings):
        return kernels.choose(problem_of((2, c_in, 12, 12), (c_out, c_in, *k),
                                         **settings)).name
    assert name() == "winograd"
    assert name(padding=((0, 2), (1, 0)), padding_mode="symmetric") == "winograd"
    assert name(c_in=winograd.MIN_CHANNELS - 1) == "gemm"
    assert name(c_out=winograd.MIN_CHANNELS - 1) == "gemm"
    assert name(stride=2) == "gemm"
    assert name(dilation=2) == "gemm"
    assert name(k=(5, 5)) == "gemm"
    assert name(k=(3, 1)) == "gemm"
    assert kernels.choose(problem_of((2, 128, 12, 12), (64, 64, 3, 3), groups=2)).name == "gemm"
    assert kernels.choose(problem_of((2, 64, 12, 12), (64, 4, 3, 3), groups=16)).name == "grouped"


def test_winograd_needs_enough_tiles_for_its_weight_transform(monkeypatch):
    """Below ``MIN_TILES`` 2x2 output tiles in the batch the im2col product takes the layer:
    ResNet's 512-channel 7x7 layer at batch 1 and 2 (16 tiles a sample), Winograd from 3."""
    monkeypatch.setattr(winograd, "MIN_TILES", MIN_TILES)
    assert MIN_TILES == 48

    def name(n, hw=7, c=512):
        return kernels.choose(problem_of((n, c, hw, hw), (c, c, 3, 3), padding=1)).name
    assert [name(n) for n in (1, 2, 3, 4, 8)] == ["gemm", "gemm", "winograd", "winograd",
                                                 "winograd"]
    assert name(1, hw=14) == "winograd"  # 7 x 7 = 49 tiles
    assert name(1, hw=12) == "gemm"  # 6 x 6 = 36
    x = np.random.default_rng(2).standard_normal((1, 16, 12, 12))
    w = np.random.default_rng(3).standard_normal((16, 16, 3, 3))
    assert_close(convkit.conv2d(x, w, padding=1), torch_conv2d(x, w, None, padding=1))


def _conv_in_child(queue_):
    x, w = np.ones((4, 16, 6, 6)), np.ones((16, 16, 3, 3))
    queue_.put(float(convkit.conv2d(x, w, padding=1).sum()))


def test_winograd_pool_works_in_a_forked_child(monkeypatch):
    """The worker threads do not survive fork(): a child must not wait on the parent's pool."""
    import multiprocessing
    monkeypatch.setattr(winograd, "SERIAL_FLOPS", 0)
    x, w = np.ones((4, 16, 6, 6)), np.ones((16, 16, 3, 3))
    expected = float(convkit.conv2d(x, w, padding=1).sum())  # the parent's pool is up
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_conv_in_child, args=(results,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung on the parent's worker pool"
    assert results.get(timeout=5) == expected


@pytest.mark.parametrize("point", [False, True])
@settings(deadline=None, max_examples=12)
@given(c_in=st.integers(16, 24), c_out=st.integers(16, 20), n=st.integers(1, 3),
       h=st.integers(3, 11), w=st.integers(3, 11), pads=st.tuples(*[st.integers(0, 2)] * 4),
       mode=st.sampled_from(MODES), dtype=st.sampled_from([np.float32, np.float64]))
def test_winograd_weight_gradient_against_torch(point, c_in, c_out, n, h, w, pads, mode,
                                                dtype):
    """conv2d_backward's weight gradient on the Winograd route (both schedules), every
    output size modulo 2, padding mode and asymmetric pads."""
    from convkit.kernels import backward
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    try:
        spec.parse_settings(padding=padding, padding_mode=mode).resolve((3, 3), (h, w))
    except ValueError:
        return  # reflect past its limit: covered by test_errors
    problem = problem_of((n, c_in, h, w), (c_out, c_in, 3, 3), dtype, padding=padding,
                         padding_mode=mode)
    assert winograd.supports(problem)
    rng = np.random.default_rng(c_in + 7 * h + 31 * w)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    k = rng.standard_normal((c_out, c_in, 3, 3)).astype(dtype)
    go = rng.standard_normal((n, c_out, problem.out_h, problem.out_w)).astype(dtype)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "by_point", lambda *args: point)
        grad_w, grad_b = backward.weight_and_bias_gradients(go, x, problem)
    _, want_w, want_b = torch_conv2d_grads(go, x, k, padding=padding, padding_mode=mode)
    assert grad_w.dtype == dtype
    assert_close(grad_w, want_w, dtype, 1e-12 if dtype == np.float64 else FLOAT32_TOL)
    assert_close(grad_b, want_b, dtype, 1e-12 if dtype == np.float64 else FLOAT32_TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_planes_of_several_bands(dtype):
    """Planes with more tiles than one band of the transforms: a 76x72 output is 38 rows of
    36 F(2x2) tiles, run as bands of 14, 14 and 10 tile rows, and 19 rows of 18 F(4x4)
    tiles (float64), bands of 14 and 5; forward and weight gradient (F(2x2) in both
    dtypes), asymmetric reflect padding."""
    from convkit.kernels import backward
    from convkit.kernels.winograd_transforms import BAND_ELEMENTS, BAND_ELEMENTS_4
    padding = ((2, 1), (0, 3))
    problem = problem_of((2, 16, 75, 71), (16, 16, 3, 3), dtype, padding=padding,
                         padding_mode="reflect")
    f = winograd.variant(problem)
    assert f.m == (4 if dtype == np.float64 else 2)
    for m, band in ((2, BAND_ELEMENTS), (f.m, BAND_ELEMENTS_4 if f.m == 4 else BAND_ELEMENTS)):
        assert -(-problem.out_h // m) * -(-problem.out_w // m) > band  # more than one band
    rng = np.random.default_rng(75)
    x = rng.standard_normal((2, 16, 75, 71)).astype(dtype)
    k = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    out, _ = run_winograd(x, k, b, padding=padding, padding_mode="reflect")
    want = torch_conv2d(x, k, b, padding=padding, padding_mode="reflect")
    assert_close(out, want, dtype, tol(dtype))
    go = rng.standard_normal(out.shape).astype(dtype)
    grad_w, _ = backward.weight_and_bias_gradients(go, x, problem)
    want_w = torch_conv2d_grads(go, x, k, padding=padding, padding_mode="reflect")[1]
    assert_close(grad_w, want_w, dtype, 1e-12 if dtype == np.float64 else FLOAT32_TOL)


@pytest.mark.parametrize("shape", [(2, 64, 56, 64), (4, 256, 14, 256)])
def test_winograd_weight_gradient_float32_accuracy_suite_shapes(shape):
    n, c_in, hw, c_out = shape
    rng = np.random.default_rng(hw)
    x = rng.standard_normal((n, c_in, hw, hw)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)
    go = rng.standard_normal((n, c_out, hw, hw)).astype(np.float32)
    _, grad_w, _ = convkit.conv2d_backward(go, x, w, padding=1)
    assert_close(grad_w, torch_conv2d_grads(go, x, w, padding=1)[1], np.float32, FLOAT32_TOL)
