"""Every kernel against the reference on configurations that route to it; the table's routing."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import convkit
from convkit import kernels, spec
from convkit.kernels import direct, grouped, simd
from convkit.kernels.reference import conv2d_reference
from oracle import assert_close, torch_conv2d, torch_conv2d_grads

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]

# name: (N, C_in, H(=W), C_out, kernel, stride, pad, groups) -- the benchmark suite
SUITE = {
    "seed-g1": (2, 3, 4, 6, 3, 1, 0, 1), "seed-g3": (2, 3, 4, 6, 3, 1, 0, 3),
    "resnet-stem": (8, 3, 224, 64, 7, 2, 3, 1), "resnet-3x3": (8, 64, 56, 64, 3, 1, 1, 1),
    "resnet-1x1": (8, 256, 56, 64, 1, 1, 0, 1), "resnet-3x3-deep": (8, 256, 14, 256, 3, 1, 1, 1),
    "resnext-g32": (8, 128, 56, 128, 3, 1, 1, 32),
    "resnext-g32-deep": (8, 512, 14, 512, 3, 1, 1, 32),
    "mbv2-dw3x3": (8, 144, 56, 144, 3, 1, 1, 144), "mbv2-dw3x3-s2": (8, 96, 112, 96, 3, 2, 1, 96),
    "mbv2-pw": (8, 144, 56, 24, 1, 1, 0, 1), "effnet-dw5x5": (8, 240, 28, 240, 5, 1, 2, 240),
    "shufflenet-g8-1x1": (8, 240, 28, 240, 1, 1, 0, 8),
}


def problem_of(x_shape, w_shape, dtype=np.float32, **settings):
    parsed = spec.parse_settings(**settings).resolve(w_shape[2:], x_shape[2:])
    return kernels.Problem.of(x_shape, w_shape, parsed, dtype)


def suite_problem(name):
    n, c_in, hw, c_out, k, s, p, g = SUITE[name]
    return problem_of((n, c_in, hw, hw), (c_out, c_in // g, k, k), stride=s, padding=p, groups=g)


def run_kernel(name, x, w, b, **settings):
    problem = problem_of(x.shape, w.shape, x.dtype, **settings)
    assert kernels.choose(problem).name == name
    return kernels.run(x, w, b, problem)


@pytest.mark.parametrize("case", SUITE)
def test_suite_routes_as_the_table_says(case):
    problem = suite_problem(case)
    if problem.spec.groups > 1:
        expected = "grouped" if problem.group_in > 1 else "direct"
    elif case in ("resnet-3x3", "resnet-3x3-deep"):
        expected = "winograd"  # dense 3x3 stride 1 with >= 16 channels
    elif case == "resnet-stem":
        expected = "stem"  # 3 input channels, rows of 112
    elif case in ("resnet-1x1", "mbv2-pw"):
        expected = "pointwise"  # dense 1x1, stride 1, at least 8 output channels
    else:
        expected = "gemm"
    assert kernels.choose(problem).name == expected


# One configuration per way a kernel writes its output: (x shape, w shape, settings, kernel,
# grouped layout or direct path or None).  Grouped: 5 outputs a group, which fill no whole
# vector on any CPU (the outer layout's); depthwise: fewer channels than a vector (channels').
OUT_ROUTES = [
    ((2, 8, 9, 9), (10, 4, 3, 3), dict(padding=1, groups=2), "grouped", "blocked"),
    ((2, 8, 1, 3), (10, 4, 3, 3), dict(padding=1, groups=2), "grouped", "masked"),
    ((2, 8, 9, 9), (10, 4, 3, 3), dict(padding=1, groups=2, padding_mode="reflect"), "grouped",
     "padded"),
    ((2, 8, 9, 9), (10, 4, 3, 3), dict(groups=2), "grouped", "unpadded"),
    ((2, 6, 9, 6), (6, 1, 3, 3), dict(padding=1, groups=6), "direct", "masked"),
    ((2, 6, 9, 40), (12, 1, 5, 5), dict(padding=2, groups=6), "direct", "rows"),
    ((2, 6, 9, 6), (6, 1, 3, 3), dict(padding=1, groups=6, padding_mode="reflect"), "direct",
     "specialised"),
    ((2, 6, 9, 10), (12, 1, 3, 3), dict(padding=1, stride=2, groups=6), "direct", "stacked"),
    ((2, 6, 9, 34), (12, 1, 3, 3), dict(padding=1, stride=2, groups=6), "direct", "stride2"),
    ((2, 6, 9, 10), (6, 1, 2, 3), dict(padding=1, groups=6), "direct", "any"),
    ((2, 20, 9, 10), (20, 1, 3, 3), dict(padding=1, stride=2, groups=20), "direct", "channels"),
    ((2, 3, 9, 240), (4, 3, 3, 3), dict(padding=1, stride=2), "stem", None),
    ((2, 16, 10, 10), (16, 16, 3, 3), dict(padding=1), "winograd", None),  # 50 tiles
    ((2, 5, 8, 8), (9, 5, 1, 1), {}, "pointwise", None),  # a run, a tail, a block moved back
    ((2, 5, 8, 8), (7, 5, 1, 1), {}, "gemm", None),  # 1x1: products straight into out
    ((3, 5, 8, 8), (7, 5, 3, 3), dict(stride=2, padding=1), "gemm", None),  # bands per sample
    ((1, 5, 96, 96), (16, 5, 7, 7), dict(stride=2, padding=3), "gemm", None),  # one sample's
]                                                                 # bands shared out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,settings,route,how", OUT_ROUTES, ids=str)
def test_out_is_written_whole_on_every_route(x_shape, w_shape, settings, route, how, dtype):
    """``conv2d(out=...)`` hands the caller's array to the kernel: every element is written
    (it starts as NaN), with the bits of a fresh result, and the caller's inputs unchanged."""
    rng = np.random.default_rng(len(OUT_ROUTES[0]) + sum(x_shape) + sum(w_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    problem = problem_of(x.shape, w.shape, dtype, **settings)
    assert kernels.choose(problem).name == route
    if how is not None:
        assert (grouped.layout if route == "grouped" else direct.path)(problem) == how
    copies = [a.copy() for a in (x, w, b)]
    expected = convkit.conv2d(x, w, b, **settings)
    out = np.full_like(expected, np.nan)
    assert convkit.conv2d(x, w, b, **settings, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert_close(out, torch_conv2d(x, w, b, **settings))
    for a, before in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, before)


def test_out_on_the_reference_kernel():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 6, 7)), rng.standard_normal((6, 2, 3, 2))
    problem = problem_of(x.shape, w.shape, np.float64, padding=1, groups=2)
    out = np.full((2, 6, 6, 8), np.nan)
    assert kernels.run(x, w, None, problem, kernel=kernels.KERNELS[-1], out=out) is out
    assert_close(out, torch_conv2d(x, w, padding=1, groups=2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", sorted(direct.SPECIALISED))
def test_direct_specialised_geometries(geometry, dtype):
    k, _, s, _, d, _ = geometry
    rng = np.random.default_rng(k * 100 + s * 10 + d)
    x = rng.standard_normal((2, 6, 17, 16)).astype(dtype)
    w = rng.standard_normal((12, 1, k, k)).astype(dtype)  # depth multiplier 2
    b = rng.standard_normal(12).astype(dtype)
    settings = dict(stride=s, padding=k // 2 * d, dilation=d, groups=6)
    out = run_kernel("direct", x, w, b, **settings)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)


@given(cg=st.integers(1, 4), og=st.integers(1, 3), groups=st.integers(2, 5),
       k=st.sampled_from([(3, 3), (5, 5), (1, 1), (2, 3), (3, 1)]), s=st.integers(1, 3),
       d=st.integers(1, 2), pad=st.integers(0, 3), mode=st.sampled_from(MODES),
       asym=st.booleans(), n=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_against_reference(cg, og, groups, k, s, d, pad, mode, asym, n, dtype):
    rng = np.random.default_rng(cg + 7 * og + 31 * pad)
    x = rng.standard_normal((n, cg * groups, 11, 12)).astype(dtype)
    w = rng.standard_normal((og * groups, cg, *k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    padding = ((pad, max(pad - 1, 0)), (0, pad)) if asym else pad
    settings = dict(stride=(s, 1 + s % 2), padding=padding, dilation=(d, 1), groups=groups,
                    padding_mode=mode)
    try:
        resolved = spec.parse_settings(**settings).resolve(k, x.shape[2:])
    except ValueError:
        return  # reflect beyond its limit: covered by test_errors
    out = run_kernel("direct", x, w, b, **settings)
    assert_close(out, conv2d_reference(x, w, b, resolved), dtype)


@given(cg=st.integers(1, 4), og=st.integers(1, 3), groups=st.integers(2, 4),
       d=st.integers(1, 2), h=st.integers(5, 16), half_w=st.integers(3, 9),
       pads=st.tuples(*[st.integers(0, 3)] * 4), mode=st.sampled_from(MODES),
       n=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_stride2_against_reference(cg, og, groups, d, h, half_w, pads, mode, n, dtype):
    """3x3 stride 2 on an even width: the column-phase kernel, border columns through the
    maps."""
    rng = np.random.default_rng(cg + 5 * og + 17 * h + 31 * half_w)
    x = rng.standard_normal((n, cg * groups, h, 2 * half_w)).astype(dtype)
    w = rng.standard_normal((og * groups, cg, 3, 3)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    top, bottom, left, right = pads
    if mode == "zeros" or not any(pads):  # the stacked kernel's, unless wide
        x = np.concatenate([x] * 6, axis=3)  # even, wider than direct.STACKED_WIDTH
    check_direct_path(x, w, b, "stride2", stride=2, padding=((top, bottom), (left, right)),
                      dilation=d, groups=groups, padding_mode=mode)


def check_direct_path(x, w, b, path, **settings):
    """``direct`` runs ``x`` on its ``path`` kernel and agrees with the reference."""
    try:
        resolved = spec.parse_settings(**settings).resolve(w.shape[2:], x.shape[2:])
    except ValueError:
        return  # beyond a mode's limit or an empty output: covered by test_errors
    assert direct.path(problem_of(x.shape, w.shape, x.dtype, **settings)) == path
    out = run_kernel("direct", x, w, b, **settings)
    assert_close(out, conv2d_reference(x, w, b, resolved), x.dtype)


def route(x, w, **settings):
    """direct.path of this call, or None where the settings are refused."""
    try:
        return direct.path(problem_of(x.shape, w.shape, x.dtype, **settings))
    except ValueError:
        return None


# (kernel, stride, dilation): each compiles a kernel of its own (in CI, from a cold cache: all
# eight combinations took 2.5 minutes); these five cover pairs with either stride and dilation,
# and both 7x7 passes with either stride.
ROW_PAIR_GEOMETRIES = [(5, 1, 1), (5, 2, 1), (5, 1, 2), (7, 1, 1), (7, 2, 2)]


@given(og=st.integers(1, 3), groups=st.integers(2, 4),
       geometry=st.sampled_from(ROW_PAIR_GEOMETRIES), h=st.integers(7, 18),
       half_w=st.integers(3, 9), pads=st.tuples(*[st.integers(0, 4)] * 4),
       mode=st.sampled_from(MODES), n=st.integers(1, 2),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_row_pairs_against_reference(og, groups, geometry, h, half_w, pads, mode, n,
                                            dtype):
    """Depthwise 5x5 and 7x7 on the padded layout (outside the stride-2 and masked kernels):
    5x5 two output rows per pass, odd and even output heights, the last unpaired row in the
    flat loop; 7x7 one row at a time."""
    k, s, d = geometry
    top, bottom, left, right = pads
    zeros = mode == "zeros" or not any(pads)
    assume(not (s == 1 and zeros and left + right == (k - 1) * d))  # masked's
    assume(not (s == 2 and zeros))  # the stacked kernel's (widths up to 19 here)
    rng = np.random.default_rng(og + 5 * h + 17 * half_w + 31 * k)
    x = rng.standard_normal((n, groups, h, 2 * half_w + 1)).astype(dtype)
    w = rng.standard_normal((og * groups, 1, k, k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    assume(route(x, w, stride=s, padding=((top, bottom), (left, right)), dilation=d,
                 groups=groups) != "rows")  # the rows kernel's: rows a vector wide
    check_direct_path(x, w, b, "specialised", stride=s, padding=((top, bottom), (left, right)),
                      dilation=d, groups=groups, padding_mode=mode)


@given(og=st.integers(1, 3), groups=st.integers(2, 4), k=st.sampled_from([1, 3, 5, 7]),
       d=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 16),
       left_share=st.floats(0, 1), rows=st.tuples(st.integers(0, 4), st.integers(0, 4)),
       n=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_masked_against_reference(og, groups, k, d, h, w, left_share, rows, n, dtype):
    """Depthwise stride 1 with zero padding that keeps the width, split any way between left
    and right (widths down to 1: wrapped reads reaching several rows back), any rows of
    padding: the masked kernel, written straight into the output."""
    d = d if k > 1 else 1  # (1x1 with dilation 2 is not a specialised geometry)
    rng = np.random.default_rng(og + 5 * h + 17 * w + 31 * k)
    x = rng.standard_normal((n, groups, h, w)).astype(dtype)
    weight = rng.standard_normal((og * groups, 1, k, k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    left = round(left_share * (k - 1) * d)
    padding = (rows, (left, (k - 1) * d - left))
    assume(route(x, weight, padding=padding, dilation=d, groups=groups) != "rows")
    check_direct_path(x, weight, b, "masked", padding=padding, dilation=d, groups=groups)


@given(og=st.integers(1, 3), groups=st.integers(2, 4), k=st.sampled_from([3, 5, 7]),
       h=st.integers(4, 14), w=st.integers(8, 68), pads=st.tuples(*[st.integers(0, 4)] * 4),
       mode=st.sampled_from(MODES), n=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_rows_against_reference(og, groups, k, h, w, pads, mode, n, dtype):
    """Depthwise stride 1 on output rows at least a vector wide, any padding and mode: the
    register-blocked rows kernel (simd.rows_block), one vector or a row's pairs a block, its
    last vector of a row and its last block of rows moved back to end at the plane's edge,
    the border through the maps."""
    rng = np.random.default_rng(og + 5 * h + 17 * w + 31 * k)
    x = rng.standard_normal((n, groups, h, w)).astype(dtype)
    weight = rng.standard_normal((og * groups, 1, k, k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    top, bottom, left, right = pads
    settings = dict(padding=((top, bottom), (left, right)), groups=groups, padding_mode=mode)
    assume(route(x, weight, **settings) == "rows")
    check_direct_path(x, weight, b, "rows", **settings)


def test_direct_rows_needs_a_vector_of_output_columns_and_four_rows():
    """Rows of at least one vector (16 float32, 8 float64 on AVX-512), 3x3 at least 7/4 of
    one (the masked kernel's single flat loop wins on narrower planes), four rows of output,
    depthwise at stride 1 and dilation 1."""
    lanes = simd.lanes(np.dtype(np.float32))

    def path(w, k, h=9, dtype=np.float32, c_in=3, **settings):  # 3: channels.py's too few
        return direct.path(problem_of((1, c_in, h, w), (3, c_in // 3, k, k), dtype,
                                      padding=k // 2, groups=3, **settings))
    assert [path(lanes, 5), path(lanes - 1, 5), path(lanes, 7, h=4), path(lanes, 7, h=3),
            path(lanes * 7 // 4, 3), path(lanes * 7 // 4 - 1, 3), path(lanes * 7 // 8, 3,
            dtype=np.float64), path(lanes * 4, 5, dilation=2), path(lanes * 4, 5, c_in=6),
            path(64, 3, stride=2)] == [
        "rows", "masked", "rows", "masked", "rows", "masked", "rows", "specialised",
        "specialised", "stride2"]


def test_direct_rows_unrolls_rows_of_two_to_eight_vectors():
    """``P``: a row's vectors from 2 to ``ROW_VECTORS`` (blocks unrolled), else one vector a
    block in a loop."""
    lanes = simd.lanes(np.dtype(np.float32))

    def vectors(out_w):
        return direct.row_vectors(problem_of((1, 8, 9, out_w + 4), (8, 1, 5, 5), groups=8))
    assert direct.ROW_VECTORS == 8
    assert [vectors(w) for w in (lanes, lanes + 1, 2 * lanes, 2 * lanes + 1, 4 * lanes + 1,
                                 8 * lanes, 8 * lanes + 1)] == [1, 2, 2, 3, 5, 8, 1]


def test_direct_masked_only_on_short_rows_within_its_scratch_budget():
    """Rows of at most two cache lines (32 float32 or 16 float64 pixels: the padded layout won
    on longer ones) and at most ``MASKED_BYTES`` of copies (dilation 2 and 7x7 count their
    longer copies)."""
    def route(w, k, d=2, dtype=np.float32, h=None):
        return direct.path(problem_of((1, 3, h or w, w), (3, 1, k, k), dtype,
                                      padding=(k - 1) * d // 2, dilation=d, groups=3))
    assert [route(28, 3), route(32, 3), route(33, 3), route(56, 3), route(16, 3, dtype=np.float64),
            route(17, 3, dtype=np.float64), route(28, 5), route(32, 7, h=120),
            route(32, 7, h=140), route(simd.lanes(np.dtype(np.float32)) * 7 // 4 - 1, 3, d=1)] == [
        "masked", "masked", "specialised", "specialised", "masked", "specialised", "masked",
        "masked", "specialised", "masked"]


def test_direct_masked_needs_depthwise_and_the_same_width():
    def route(c_in_per_group, padding, mode="zeros"):
        return direct.path(problem_of((1, 4 * c_in_per_group, 9, 10), (4, c_in_per_group, 3, 3),
                                      padding=padding, groups=4, padding_mode=mode))
    assert [route(1, 1), route(2, 1), route(1, (1, 0)), route(1, 1, "replicate"),
            route(1, ((0, 0), (2, 0)))] == [
        "masked", "specialised", "specialised", "specialised", "masked"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_stride2_unbatched_non_contiguous(dtype):
    import convkit
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 20, 24)).astype(dtype)[:, ::-1, 2:22]  # odd strides, width 20
    w = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
    problem = problem_of((1, *x.shape), w.shape, dtype, stride=2, padding=1, groups=6,
                         padding_mode="reflect")
    assert direct.path(problem) == "stride2"
    out = convkit.conv2d(x, w, None, stride=2, padding=1, groups=6, padding_mode="reflect")
    assert_close(out, torch_conv2d(x, w, None, stride=2, padding=1, groups=6,
                                   padding_mode="reflect"), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_rows_unbatched_non_contiguous(dtype):
    """The rows kernel through the public call, against torch: an unbatched, reversed and
    sliced input, depth multiplier 2, "same" padding of a 5x5 in circular mode."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 13, 44)).astype(dtype)[:, ::-1, 3:40]
    w = rng.standard_normal((6, 1, 5, 5)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    settings = dict(padding="same", groups=3, padding_mode="circular")
    assert direct.path(problem_of((1, *x.shape), w.shape, dtype, **settings)) == "rows"
    before = x.copy()
    out = convkit.conv2d(x, w, b, **settings)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)
    assert np.array_equal(x, before)


def test_direct_stride2_only_on_even_widths_and_3x3():
    even = problem_of((1, 4, 9, 10), (4, 1, 3, 3), stride=2, padding=1, groups=4,
                      padding_mode="reflect")
    odd = problem_of((1, 4, 9, 11), (4, 1, 3, 3), stride=2, padding=1, groups=4,
                     padding_mode="reflect")
    wider = problem_of((1, 4, 9, 10), (4, 1, 5, 5), stride=2, padding=2, groups=4,
                       padding_mode="reflect")
    unlisted = problem_of((1, 4, 9, 10), (4, 1, 2, 2), stride=2, groups=4)
    assert [direct.path(p) for p in (even, odd, wider, unlisted)] == [
        "stride2", "specialised", "specialised", "any"]


@given(cg=st.integers(1, 4), og=st.integers(1, 3), groups=st.integers(2, 4),
       k=st.sampled_from([3, 5, 7]), d=st.integers(1, 2), h=st.integers(1, 20),
       w=st.integers(1, 32), pads=st.tuples(*[st.integers(0, 3)] * 4), n=st.integers(1, 5),
       budget=st.sampled_from([1, 4096, direct.STACKED_BYTES]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_stacked_against_reference(cg, og, groups, k, d, h, w, pads, n, budget, dtype):
    """Stride 2, zero padding, planes up to 32 wide: samples side by side in the phase planes,
    in chunks of ``stacked_samples`` (a budget of 1 byte: one sample a task; 4 KB: chunks with
    a partial last one), odd and even sizes, asymmetric pads."""
    rng = np.random.default_rng(cg + 5 * og + 17 * h + 31 * w + n)
    x = rng.standard_normal((n, cg * groups, h, w)).astype(dtype)
    weight = rng.standard_normal((og * groups, cg, k, k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    top, bottom, left, right = pads
    saved, direct.STACKED_BYTES = direct.STACKED_BYTES, budget
    try:
        check_direct_path(x, weight, b, "stacked", stride=2,
                          padding=((top, bottom), (left, right)), dilation=d, groups=groups)
    finally:
        direct.STACKED_BYTES = saved


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_stacked_unbatched_non_contiguous(dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 15, 30)).astype(dtype)[:, ::-1, 1::2]  # 15x15, odd strides
    w = rng.standard_normal((12, 1, 5, 5)).astype(dtype)
    b = rng.standard_normal(12).astype(dtype)
    settings = dict(stride=2, padding=2, groups=6)
    assert direct.path(problem_of((1, *x.shape), w.shape, dtype, **settings)) == "stacked"
    assert_close(convkit.conv2d(x, w, b, **settings), torch_conv2d(x, w, b, **settings), dtype)


def test_direct_stacked_only_on_small_zero_padded_planes():
    """Stride 2 with zero padding (or none) up to ``STACKED_WIDTH`` wide, and up to
    ``STACKED_WIDE_WIDTH`` from 5x5 up; wider, or another padding mode, 3x3 on the stride-2
    kernel (even widths), the rest on the padded layout; stride 1 elsewhere."""
    def route(width, mode="zeros", padding=1, stride=2, k=3):
        return direct.path(problem_of((2, 3, 14, width), (3, 1, k, k), stride=stride,
                                      padding=padding, groups=3, padding_mode=mode))
    assert [route(14), route(28, k=5, padding=2), route(31), route(32), route(34), route(33),
            route(14, "reflect"), route(14, "reflect", padding=0), route(12, stride=1),
            route(56, k=5, padding=2), route(58, k=7, padding=3), route(64, k=5, padding=2),
            route(113, k=7, padding=3), route(56, "reflect", k=5)] == [
        "stacked", "stacked", "stacked", "stacked", "stride2", "specialised", "stride2",
        "stacked", "masked", "stacked", "specialised", "specialised", "specialised",
        "specialised"]


def test_direct_stacked_samples_per_task():
    """Side by side as the budget allows, keeping 16 tasks where the batch has them."""
    def chunk(n, c, hw, k, dtype=np.float32):
        return direct.stacked_samples(problem_of((n, c, hw, hw), (c, 1, k, k), dtype, stride=2,
                                                 padding=k // 2, groups=c))
    # EfficientNet-B0's 672 channels on 14x14 at batch 8: one task per channel, all 8 samples
    # (4 phases of 9x9, 1.3 KB each); 64 samples of 28x28 (4 of 15x15, 3.6 KB): 27 of them;
    # 2 channels: 8 samples in 16 tasks, one each; float64 at 2.6 KB a sample: still all 8.
    assert [chunk(8, 672, 14, 5), chunk(64, 96, 28, 3), chunk(8, 2, 14, 3),
            chunk(8, 672, 14, 5, np.float64)] == [8, 27, 1, 8]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES + ["masked"])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("width", [6, 36])
def test_direct_scratch_reused_across_many_tasks(width, k, mode, dtype):
    """Many (sample, group) tasks per parallel block: the zeroed scratch is reused, its
    zero-padding positions written once; a task must not see the previous one's pixels
    (``masked``: zero "same" padding, on the masked kernel; 36 columns: the rows kernel;
    5x5 on 6 columns, or outside the rows kernel: the channels-last tile)."""
    import numba
    rng = np.random.default_rng(k)
    x = rng.standard_normal((3, 40, 9, width)).astype(dtype)
    w = rng.standard_normal((40, 1, k, k)).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    assert 3 * 40 >= 4 * min(3 * 40, 8 * numba.get_num_threads())  # >= 4 tasks per block
    if mode == "masked":
        settings = dict(padding=((k // 2, 1), (k // 2, k // 2)), groups=40)
    else:
        settings = dict(padding=((k // 2, 1), (2, k // 2 + 1)), groups=40, padding_mode=mode)
    problem = problem_of(x.shape, w.shape, dtype, **settings)
    lanes = simd.lanes(np.dtype(dtype))  # the rows kernel's rule (path)
    rows = problem.out_w >= lanes and (k >= 5 or 4 * problem.out_w >= 7 * lanes)
    path = ("channels" if direct._channels_win(problem) else "rows" if rows
            else "masked" if mode == "masked" else "specialised")
    assert direct.path(problem) == path
    out = run_kernel("direct", x, w, b, **settings)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)


def test_direct_reads_read_only_inputs():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    x.flags.writeable = False
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    out = run_kernel("direct", x, w, None, padding=1, groups=4, padding_mode="circular")
    assert_close(out, torch_conv2d(x, w, None, padding=1, groups=4, padding_mode="circular"))


@given(groups=st.integers(1, 3), cg=st.sampled_from([1, 5, 8]), og=st.integers(1, 3),
       k=st.sampled_from([(1, 1), (3, 3), (2, 5), (7, 7)]), s=st.integers(1, 3),
       d=st.integers(1, 2), pad=st.integers(0, 3), mode=st.sampled_from(MODES),
       n=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]))
def test_gemm_against_reference(groups, cg, og, k, s, d, pad, mode, n, dtype):
    if groups > 1:
        cg += 32  # keep it off the direct kernel
    rng = np.random.default_rng(groups + 3 * cg + 11 * pad)
    x = rng.standard_normal((n, cg * groups, 13, 12)).astype(dtype)
    w = rng.standard_normal((og * groups, cg, *k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    settings = dict(stride=s, padding=pad, dilation=d, groups=groups, padding_mode=mode)
    try:
        resolved = spec.parse_settings(**settings).resolve(k, x.shape[2:])
    except ValueError:
        return  # beyond a mode's limit or an empty output: covered by test_errors
    out = run_kernel("gemm", x, w, b, **settings)
    assert_close(out, conv2d_reference(x, w, b, resolved), dtype)


def test_gemm_tiles_the_batch(monkeypatch):
    """A column matrix larger than TILE_BYTES is built a few samples at a time."""
    from convkit.kernels import gemm
    monkeypatch.setattr(gemm, "TILE_BYTES", 4096)
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((5, 3, 10, 10)), rng.standard_normal((4, 3, 3, 3))
    out = run_kernel("gemm", x, w, None, padding=1, padding_mode="reflect")
    assert_close(out, torch_conv2d(x, w, None, padding=1, padding_mode="reflect"))


@given(cg=st.integers(5, 32), og=st.integers(1, 3), groups=st.integers(2, 3),
       k=st.sampled_from([1, 3, 5]), d=st.integers(1, 2), pad=st.integers(0, 2),
       mode=st.sampled_from(MODES), dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_medium_groups_flat_path(cg, og, groups, k, d, pad, mode, dtype):
    """5 to 32 channels per group at stride 1: the flat-plane path of the direct kernel."""
    if k == 1:
        d = 1
    rng = np.random.default_rng(cg + 5 * og + 17 * pad)
    x = rng.standard_normal((2, cg * groups, 9, 10)).astype(dtype)
    w = rng.standard_normal((og * groups, cg, k, k)).astype(dtype)
    b = rng.standard_normal(og * groups).astype(dtype)
    settings = dict(padding=pad, dilation=d, groups=groups, padding_mode=mode)
    try:
        resolved = spec.parse_settings(**settings).resolve((k, k), x.shape[2:])
    except ValueError:
        return
    out = run_kernel("direct", x, w, b, **settings)
    assert_close(out, conv2d_reference(x, w, b, resolved), dtype)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_shares_the_bands_of_one_sample_between_threads(monkeypatch, dtype):
    """Fewer samples than threads: one sample's bands of output rows run in parallel (with
    enough work for the thread pool), each writing its own rows of the output."""
    from convkit.kernels import blas, gemm
    monkeypatch.setattr(gemm, "TILE_BYTES", 8192)
    monkeypatch.setattr(gemm, "MIN_PIXELS", 1)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 8, 64, 62)).astype(dtype)
    w = rng.standard_normal((16, 8, 5, 5)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    settings = dict(stride=2, padding=2, padding_mode="circular")
    problem = problem_of(x.shape, w.shape, dtype, **settings)
    assert gemm.flops(problem) >= blas.SMALL_FLOPS and gemm.band_rows(problem) < problem.out_h
    out = run_kernel("gemm", x, w, b, **settings)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups, bias", [(1, True), (2, False)])
def test_gemm_shares_one_band_between_threads_by_output_channels(groups, bias, dtype):
    """One sample whose output fits one band: the band's product is cut by output channels
    (each piece writing its own output planes), every group's."""
    import numba
    from convkit.kernels import blas, gemm
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((1, 40 * groups, 20, 19)).astype(dtype)  # 40: off the grouped kernel
    w = rng.standard_normal((64 * groups, 40, 5, 5)).astype(dtype)
    b = rng.standard_normal(64 * groups).astype(dtype) if bias else None
    settings = dict(padding=2, groups=groups, padding_mode="reflect")
    problem = problem_of(x.shape, w.shape, dtype, **settings)
    assert gemm.band_rows(problem) == problem.out_h and gemm.flops(problem) >= blas.SMALL_FLOPS
    slices = gemm.channel_slices(64, numba.get_num_threads())
    assert slices[0][0] == 0 and slices[-1][1] == 64
    assert len(slices) == min(4, 2 * numba.get_num_threads())
    out = run_kernel("gemm", x, w, b, **settings)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, stride, groups", [(1, 1, 1), (1, 2, 3), (3, 1, 1)])
def test_gemm_pointwise_shares_pixels_when_samples_are_few(n, stride, groups, dtype):
    """1x1 products with fewer samples than threads: each sample's pixels cut into pieces
    (enough flops for the thread pool), each piece written to its own output columns; a
    batch of at least one sample per thread keeps whole planes.  The gradients cut the same
    pieces (the input gradient at stride 1)."""
    import numba
    from convkit.kernels import blas, gemm
    rng = np.random.default_rng(n + 10 * stride)
    x = rng.standard_normal((n, 48 * groups, 70, 66)).astype(dtype)
    w = rng.standard_normal((32 * groups, 48, 1, 1)).astype(dtype)
    b = rng.standard_normal(32 * groups).astype(dtype)
    settings = dict(stride=stride, groups=groups)
    problem = problem_of(x.shape, w.shape, dtype, **settings)
    pieces = gemm.pixel_pieces(problem)
    pixels = problem.out_h * problem.out_w
    assert pieces[0][0] == 0 and pieces[-1][1] == pixels
    assert all(a[1] == b_[0] for a, b_ in zip(pieces, pieces[1:]))
    assert len(pieces) == (1 if n >= numba.get_num_threads() else
                           min(-(-2 * numba.get_num_threads() // n), pixels // gemm.MIN_PIXELS))
    assert gemm.flops(problem) >= blas.SMALL_FLOPS
    # dense at stride 1 the table picks pointwise.py's kernel; gemm still runs the others
    assert kernels.choose(problem).name == ("pointwise" if (stride, groups) == (1, 1)
                                            else "gemm")
    out = gemm.run(x, w, b, problem)
    assert_close(out, torch_conv2d(x, w, b, **settings), dtype)
    go = rng.standard_normal(out.shape).astype(dtype)
    got = convkit.conv2d_backward(go, x, w, **settings)
    for have, want in zip(got, torch_conv2d_grads(go, x, w, b, **settings)):
        assert_close(have, want, dtype)


def test_compiled_kernels_load_from_the_disk_cache_in_a_fresh_process():
    """Cold start depends on it: a kernel whose cache key changes per process recompiles
    every time (a jitted helper captured in a closure does that)."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np, convkit\n"
            "x = np.ones((1, 4, 9, 9), np.float32)\n"
            "convkit.conv2d(x, np.ones((4, 1, 3, 3), np.float32), padding=1, groups=4)\n"
            "convkit.conv2d(x, np.ones((4, 1, 3, 3), np.float32), padding=1, groups=4,\n"
            "               padding_mode='reflect')\n"
            "convkit.conv2d(x, np.ones((4, 1, 2, 2), np.float32), groups=4)\n"
            "convkit.conv2d(np.ones((1, 4, 9, 40), np.float32), np.ones((4, 1, 5, 5),\n"
            "               np.float32), padding=2, groups=4)\n"
            "convkit.conv2d(np.ones((1, 3, 9, 240), np.float32), np.ones((4, 3, 3, 3),\n"
            "               np.float32), stride=2, padding=1)\n"
            "convkit.conv2d(x, np.ones((4, 1, 3, 3), np.float32), stride=2, groups=4)\n"
            "convkit.conv2d(np.ones((1, 4, 8, 8), np.float32), np.ones((8, 4, 1, 1),\n"
            "               np.float32))\n"  # dense 1x1: pointwise
            "convkit.conv2d(np.ones((1, 16, 9, 9), np.float32),\n"  # 16 channels: a vector
            "               np.ones((16, 1, 3, 3), np.float32), stride=2, groups=16)\n"
            "convkit.conv2d(np.ones((3, 16, 9, 9), np.float32),\n"  # 75 tiles: Winograd
            "               np.ones((16, 16, 3, 3), np.float32), padding=1)\n"
            "convkit.conv2d(np.ones((1, 3, 9, 9), np.float32),\n"
            "               np.ones((4, 3, 3, 3), np.float32), stride=2)\n"
            "x, w = np.ones((1, 16, 9, 9), np.float32), np.ones((8, 8, 3, 3), np.float32)\n"
            "convkit.conv2d(x, w, padding=1, groups=2)\n"
            "convkit.conv2d(x, w, padding=1, groups=2, padding_mode='reflect')\n"
            "convkit.conv2d_backward(np.ones((1, 8, 9, 9), np.float32), x, w, padding=1,"
            " groups=2)\n"
            "convkit.conv2d(np.ones((1, 32, 9, 9), np.float32),\n"  # 16 outputs a group
            "               np.ones((32, 16, 3, 3), np.float32), padding=1, groups=2)\n"
            "x, w = np.ones((1, 32, 9, 9), np.float32), np.ones((8, 16, 3, 3), np.float32)\n"
            "convkit.conv2d_backward(np.ones((1, 8, 9, 9), np.float32), x, w, padding=1,"
            " groups=2)\n")
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    log = second.stdout + second.stderr
    for kernel in ("_specialised.locals.specialised_kernel", "_masked.locals.masked_kernel",
                   "_stacked.locals.stacked_kernel", "direct._any_geometry",
                   "_rows.locals.rows_kernel"):
        assert kernel in log, kernel
    for kernel in ("_input_transform", "_output_transform", "_weight_transform"):
        assert f"winograd_transforms.{kernel}" in log, kernel
    for kernel in ("phase_splitter.locals.phase_split", "gemm._im2col_phases",
                   "_kernel.locals.grouped_kernel", "grouped_grad._weight_grad",
                   "_channels.locals.channels_kernel",
                   "stem._kernel.locals.stem_kernel", "_blocked.locals.blocked_kernel",
                   "_outer.locals.outer_kernel", "grouped.pack_outer",
                   "channels._kernel.locals.channels_last_kernel",
                   "pointwise._kernel.locals.pointwise_kernel",
                   "backward.flipped_kernels"):
        assert kernel in log, kernel
    assert "data loaded from" in log
    assert "data saved" not in log, "a kernel was compiled again in a fresh process"


def test_problems_are_remembered_per_shape_and_settings():
    """conv2d resolves a layer's settings once per shape (Problem.cached): the same problem
    as resolving afresh, a different one for other shapes, and a failed resolution raises
    again rather than being remembered."""
    settings = spec.parse_settings(padding="same", groups=2, dilation=2)
    dtype = np.dtype(np.float32)
    first = kernels.Problem.cached((1, 4, 9, 11), (6, 2, 3, 3), settings, dtype)
    assert first == problem_of((1, 4, 9, 11), (6, 2, 3, 3), padding="same", groups=2,
                               dilation=2)
    assert kernels.Problem.cached((1, 4, 9, 11), (6, 2, 3, 3), settings, dtype) is first
    other = kernels.Problem.cached((1, 4, 10, 11), (6, 2, 3, 3), settings, dtype)
    assert (other.h, other.out_h, other.spec.pads) == (10, 10, ((2, 2), (2, 2)))
    valid = spec.parse_settings(groups=2)
    for _ in range(2):
        with pytest.raises(ValueError, match="larger than the padded input"):
            kernels.Problem.cached((1, 4, 2, 2), (6, 2, 3, 3), valid, dtype)
