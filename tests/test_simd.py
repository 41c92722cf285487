"""The explicit-vector intrinsics (kernels/simd.py) against NumPy, one block at a time."""
import numpy as np
import pytest
from numba import njit

from convkit.kernels import simd
from convkit.kernels.simd import (bias_vectors, channel_sums, copy_part, lane_taps, outer_taps,
                                  pixel_taps, rows_block, splat_pack, store_sums, store_transposed,
                                  tap_row, transpose_store, vload, vstore, zero_sums)

DTYPES = [np.float32, np.float64]


def lanes(dtype):
    return simd.lanes(np.dtype(dtype))


def test_vector_width_follows_the_cpu_features():
    assert simd.VECTOR_BYTES in (16, 32, 64)
    assert lanes(np.float32) == 2 * lanes(np.float64)
    width = simd._vector_bytes
    assert [width({"NUMBA_CPU_FEATURES": "+sse2,+avx2,+avx512f,+fma"}),
            width({"NUMBA_CPU_FEATURES": "+sse2,+avx2,-avx512f"}),
            width({"NUMBA_CPU_FEATURES": "+sse2,-avx2"}),
            width({"NUMBA_CPU_NAME": "generic"}),
            width({"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": "+avx2"})] == [
        64, 32, 16, 16, 32]


@njit
def _copy_vector(src, i, dst, j):
    vstore(dst, j, vload(src, i))


@pytest.mark.parametrize("dtype", DTYPES)
def test_vload_vstore_move_one_unaligned_vector(dtype):
    src = np.arange(3 * lanes(dtype), dtype=dtype)
    dst = np.full(3 * lanes(dtype), -1, dtype=dtype)
    _copy_vector(src, 3, dst, 5)
    expected = np.full_like(dst, -1)
    expected[5:5 + lanes(dtype)] = src[3:3 + lanes(dtype)]
    assert np.array_equal(dst, expected)


def _rows_3x3(P):
    @njit
    def block(w, bias, src, s0, pitch, dst, d0, opitch, cstep):
        rows_block(splat_pack(w, 0, 9), bias, src, s0, pitch, dst, d0, opitch, cstep, 3, 3, 4, P)
    return block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vectors, overlap", [(1, 0), (2, 0), (2, 3)])
def test_rows_block_is_four_rows_of_a_correlation(dtype, vectors, overlap):
    """Four output rows by one or two vectors (overlapping or not) of a 3x3 correlation at an
    offset, other outputs untouched."""
    rng = np.random.default_rng(1)
    n = lanes(dtype)
    cstep = n - overlap
    width = n + (vectors - 1) * cstep  # output columns of one row of the block
    pitch, opitch = width + 5, width + 3
    src = rng.standard_normal(8 * pitch).astype(dtype)
    w = rng.standard_normal(9).astype(dtype)
    dst = np.full(6 * opitch, np.nan, dtype=dtype)
    _rows_3x3(vectors)(w, dtype(0.5), src, pitch + 1, pitch, dst, opitch + 2, opitch, cstep)
    plane = src.reshape(8, pitch)
    for r in range(4):
        want = 0.5 + sum(w[3 * i + j] * plane[1 + r + i, 1 + j:1 + j + width]
                         for i in range(3) for j in range(3))
        got = dst[(1 + r) * opitch + 2:(1 + r) * opitch + 2 + width]
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    written = np.zeros(dst.size, bool)
    for r in range(4):
        written[(1 + r) * opitch + 2:(1 + r) * opitch + 2 + width] = True
    assert np.isnan(dst[~written]).all()


@njit
def _channel_block(b, src, w, dst, phase_stride, copy_stride, taps, size):
    sums = channel_sums(b, 1, 2, 3)
    for i in range(2):  # two kernel rows, 3 taps each, stride 2 in the columns
        sums = tap_row(sums, src, i * 100, phase_stride, copy_stride, w, 1 * taps + i * 3, taps,
                       2, 3, 3, 2, 1)
    store_sums(sums, dst, 7, size, 2, 3)


@pytest.mark.parametrize("copy_stride", [0, 1000])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tap_rows_sum_two_channels_over_three_vectors(copy_stride, dtype):
    """channel_sums starts at the biases, tap_row reads tap column j in column phase j % 2 at
    offset j // 2 (and copy j, copy_stride apart), store_sums writes each channel's three
    vectors: against the same sum in NumPy."""
    rng = np.random.default_rng(2)
    n = lanes(dtype)
    phase_stride, taps, size = 500, 6, 3 * n + 5
    src = rng.standard_normal(4000).astype(dtype)
    w = rng.standard_normal(3 * taps).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    dst = np.full(7 + 2 * size, np.nan, dtype=dtype)
    _channel_block(b, src, w, dst, phase_stride, copy_stride, taps, size)
    for o in range(2):
        want = np.full(3 * n, b[1 + o], dtype=np.float64)
        for i in range(2):
            for j in range(3):
                start = i * 100 + (j % 2) * phase_stride + j // 2 + j * copy_stride
                want += w[(1 + o) * taps + i * 3 + j] * src[start:start + 3 * n]
        got = dst[7 + o * size:7 + o * size + 3 * n]
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


def _outer_block(OB, KW, CV):
    COUNT, P = OB * KW * CV, KW * CV

    @njit
    def block(xs, g, dst, positions, x_step, tap_stride, g_step):
        sums = zero_sums(xs, COUNT)
        for t in range(positions):
            sums = outer_taps(sums, xs, t * x_step, tap_stride, g, 3 + t, g_step, OB, KW, CV)
        store_sums(sums, dst, 0, P * (dst.size // COUNT), OB, P)
    return block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ob, kw, cv", [(3, 2, 1), (2, 3, 2)])
def test_outer_taps_sums_outer_products_over_pixels(dtype, ob, kw, cv):
    """sums[o, j, v] = sum over pixels t of g[3 + t + o*g_step] * xs[t*x_step + j*tap + v*lanes:]"""
    rng = np.random.default_rng(2)
    n = lanes(dtype)
    positions, x_step, tap, g_step = 5, cv * n, 3 * cv * n, 11
    xs = rng.standard_normal(positions * x_step + kw * tap).astype(dtype)
    g = rng.standard_normal(3 + positions + ob * g_step).astype(dtype)
    dst = np.full(ob * kw * cv * n, np.nan, dtype=dtype)
    _outer_block(ob, kw, cv)(xs, g, dst, positions, x_step, tap, g_step)
    want = np.zeros((ob, kw, cv * n))
    for t in range(positions):
        for o in range(ob):
            for j in range(kw):
                start = t * x_step + j * tap
                want[o, j] += g[3 + t + o * g_step] * xs[start:start + cv * n]
    np.testing.assert_allclose(dst.reshape(ob, kw, cv * n), want,
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@njit
def _transpose_block(src, s0, sstride, dst, d0, positions, p0):
    transpose_store(src, s0, sstride, dst, d0, positions, p0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_store_turns_rows_of_pixels_into_pixels_of_channels(dtype):
    """dst[d0 + positions[p0 + k] + c] = src[s0 + c*sstride + k] for c, k < lanes; nothing else
    written."""
    n = lanes(dtype)
    src = np.random.default_rng(3).standard_normal(n * 40 + 3).astype(dtype)
    positions = np.random.default_rng(4).permutation(n + 2)[::-1] * (n + 1)  # unsorted, apart
    dst = np.full(positions.max() + 2 * n, np.nan, dtype=dtype)
    _transpose_block(src, 3, 40, dst, 1, positions, 2)
    want = np.full_like(dst, np.nan)
    for k in range(n):
        want[1 + positions[2 + k]:][:n] = src[3 + np.arange(n) * 40 + k]
    np.testing.assert_array_equal(dst, want)


def _pixel_block(OB, KW, CV, DW):
    @njit
    def block(b, src, s0, w, w0, dst, d0, ostride, rows, rstride, wrstride):
        sums = bias_vectors(b, 0, OB, CV)
        for r in range(rows):
            sums = pixel_taps(sums, src, s0 + r * rstride, w, w0 + r * wrstride, OB, KW, CV, DW)
        store_transposed(sums, dst, d0, ostride, OB, CV)
    return block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ob, kw, cv, dw", [(None, 3, 1, 1), (7, 3, 2, 1), (5, 2, 1, 2),
                                            (-2, 5, 1, 1)])
def test_pixel_taps_sum_over_output_channels_and_store_turned(dtype, ob, kw, cv, dw):
    """dst[d0 + (v*lanes + c)*ostride + o] = b[v*lanes + c] + sum over rows r and taps j of
    src[s0 + r*rstride + o + j*dw] * w[w0 + r*wrstride + (j*cv + v)*lanes + c], for o < OB
    (a whole vector of pixels, or fewer: nothing else written)."""
    n = lanes(dtype)
    ob = n if ob is None else ob % n
    rng = np.random.default_rng(ob + kw)
    b = rng.standard_normal(cv * n).astype(dtype)
    src = rng.standard_normal(200).astype(dtype)
    rows, rstride, wrstride = 3, 40, kw * cv * n
    w = rng.standard_normal(rows * wrstride + 5).astype(dtype)
    dst = np.full(cv * n * 30 + 40, np.nan, dtype=dtype)
    _pixel_block(ob, kw, cv, dw)(b, src, 3, w, 2, dst, 1, 30, rows, rstride, wrstride)
    want = np.full_like(dst, np.nan)
    for v in range(cv):
        for c in range(n):
            for o in range(ob):
                taps = [src[3 + r * rstride + o + j * dw]
                        * w[2 + r * wrstride + (j * cv + v) * n + c]
                        for r in range(rows) for j in range(kw)]
                want[1 + (v * n + c) * 30 + o] = b[v * n + c] + np.sum(taps, dtype=np.float64)
    np.testing.assert_allclose(dst, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def _lane_block(OB, KW, SW, DW):
    @njit
    def block(b, src, s0, w, w0, wstride, dst, d0, ostride, rows, rstride, wrstride):
        sums = bias_vectors(b, 0, OB, 1)
        for r in range(rows):
            sums = lane_taps(sums, src, s0 + r * rstride, w, w0 + r * wrstride, wstride,
                             OB, KW, SW, DW)
        store_transposed(sums, dst, d0, ostride, OB, 1)
    return block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ob, kw, sw, dw", [(None, 3, 1, 1), (5, 3, 2, 1), (3, 2, 2, 2)])
def test_lane_taps_sum_over_channels_last_pixels(dtype, ob, kw, sw, dw):
    """dst[d0 + c*ostride + o] = b[c] + sum over rows r and taps j of
    src[s0 + r*rstride + (o*sw + j*dw)*lanes + c] * w[w0 + r*wrstride + j*wstride + c]:
    each pixel's channels one vector, ``OB`` pixels (nothing else written)."""
    n = lanes(dtype)
    ob = n if ob is None else min(ob, n)  # store_transposed: at most a vector of pixels
    rng = np.random.default_rng(ob + kw + sw)
    b = rng.standard_normal(n).astype(dtype)
    rows, rstride, wstride, wrstride = 2, 50 * n, n + 3, 4 * (n + 3)
    src = rng.standard_normal(rows * rstride + 3 * n * (ob + kw) * 2).astype(dtype)
    w = rng.standard_normal(rows * wrstride + 2 * n).astype(dtype)
    dst = np.full(n * 30 + 40, np.nan, dtype=dtype)
    _lane_block(ob, kw, sw, dw)(b, src, 3, w, 2, wstride, dst, 1, 30, rows, rstride, wrstride)
    want = np.full_like(dst, np.nan)
    for c in range(n):
        for o in range(ob):
            taps = [src[3 + r * rstride + (o * sw + j * dw) * n + c]
                    * w[2 + r * wrstride + j * wstride + c]
                    for r in range(rows) for j in range(kw)]
            want[1 + c * 30 + o] = b[c] + np.sum(taps, dtype=np.float64)
    np.testing.assert_allclose(dst, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@njit
def _copy_part(src, s0, dst, d0, count):
    copy_part(src, s0, dst, d0, count)


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_part_moves_fewer_than_a_vector_and_nothing_else(dtype):
    for count in range(lanes(dtype)):
        src = np.arange(40, dtype=dtype)
        dst = np.full(40, -1, dtype=dtype)
        _copy_part(src, 3, dst, 5, count)
        want = np.full(40, -1, dtype=dtype)
        want[5:5 + count] = src[3:3 + count]
        np.testing.assert_array_equal(dst, want)
