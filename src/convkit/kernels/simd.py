"""Explicit SIMD vectors for Numba kernels: register-blocked code LLVM's vectoriser won't write.

LLVM vectorises a Numba loop one output vector at a time: every multiply-add loads its input
(one load per FMA), and a loop that writes two outputs at a run-time distance is not
vectorised at all (direct.py's row pairs: 6x slower).  Register blocking -- one loaded input
vector feeding the multiply-adds of several outputs held in registers -- is what JIT
convolution libraries (oneDNN, XNNPACK) do, and what this module lets a Numba kernel spell
out.  It defines a Numba type for one machine vector and intrinsics that emit LLVM IR
directly:

``vload(a, i)``, ``vstore(a, i, v)``
    the vector ``a[i : i + LANES]`` of a 1-d array, unaligned, with no bounds check (the
    caller guarantees the range);
``splat_pack(a, start, count)``
    ``count`` vectors, each one element of ``a[start : start + count]`` broadcast to every
    lane, held as one SSA value (a kernel's weights, kept in registers for a whole plane);
``rows_block(pack, bias, src, s0, pitch, dst, d0, opitch, cstep, KH, KW, R, P)``
    ``R`` output rows by ``P`` vectors of a stride-1 ``KH x KW`` correlation (see its
    docstring), straight-line code: ``(R + KH - 1) * KW * P`` input loads for
    ``R * KH * KW * P`` multiply-adds (direct.py's depthwise ``_rows`` kernel);
``channel_sums``, ``tap_row``, ``store_sums``
    a block of ``OB`` output channels x ``P`` vectors of pixels: its sums started at the
    biases, one kernel row of taps added (``P`` loads and ``OB`` broadcast weights for
    ``OB * P`` multiply-adds; the sums carried as a value from call to call, so they stay in
    registers), stored (stem.py);
``zero_sums``, ``outer_taps``
    a block of ``OB`` output channels x ``KW`` taps x ``CV`` channel vectors started at zero,
    one output pixel's outer product added (``KW * CV`` loads and ``OB`` broadcasts for
    ``OB * KW * CV`` multiply-adds, carried the same way; grouped_grad.py's weight gradient);
``transpose_store``
    a ``lanes x lanes`` block of channel rows turned in registers into pixels of channels,
    each stored where a position table puts it (grouped_grad.py's channels-last staging);
``bias_vectors``, ``pixel_taps``, ``store_transposed``
    a block of ``OB`` pixels x ``CV`` vectors of output channels: started at the biases, one
    kernel row of taps added (``KW * CV`` weight vectors, each input value broadcast once
    for the taps that read it), stored turned into each channel's run of pixels under a
    mask (grouped.py's ``outer`` layout);
``lane_taps``
    the same block for a depthwise kernel over a channels-last plane: each pixel's
    ``lanes`` channels one vector, ``OB`` pixels' sums plus one kernel row of taps
    (channels.py);
``copy_part``
    fewer than ``lanes`` elements copied by one masked load and store.

A vector is 64 bytes where the CPU has AVX-512, 32 with AVX2, else 16 (``VECTOR_BYTES``, from
the features Numba compiles for).  LLVM splits a wider vector into native ones, so the code
is right on any CPU; the width only keeps blocks inside the register file.  Block shapes
(``KH``, ``KW``, ``R``, ``OB``, ``P``, strides) must be compile-time constants (ints closed
over by the kernel), so the blocks unroll fully.

Numba's disk cache keys a kernel on its own source file only: after editing this module,
clear the ``__pycache__`` of ``kernels/`` (an installed release replaces every file, so its
users never see a stale kernel).
"""
from __future__ import annotations

import os

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


def _vector_bytes(environ=os.environ) -> int:
    """Bytes of one machine vector, from the CPU features Numba compiles for: those of
    ``NUMBA_CPU_FEATURES`` if set; 16 (SSE2's) if only ``NUMBA_CPU_NAME`` is (a portable
    build such as ``generic``, whose features this does not know); else the host's."""
    features = environ.get("NUMBA_CPU_FEATURES")
    if features is None:
        if environ.get("NUMBA_CPU_NAME"):
            return 16
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    flags = features.split(",")
    return 64 if "+avx512f" in flags else 32 if "+avx2" in flags else 16


VECTOR_BYTES = _vector_bytes()


def lanes(dtype) -> int:
    """Elements of ``dtype`` in one machine vector (16 float32 with AVX-512): for the routing
    rules in Python (a kernel computes ``VECTOR_BYTES // itemsize`` itself)."""
    return VECTOR_BYTES // dtype.itemsize


def row_block(width, most) -> int:
    """Pixels of a register block along a row of ``width``: the row split into as few blocks
    of at most ``most`` as it takes, as even as they come (14 with at most 8: 7 + 7, not
    8 + 8 with the last moved back; grouped.py's ``outer`` layout, channels.py)."""
    blocks = -(-width // most)
    return -(-width // blocks)


class Vector(types.Type):
    """One machine vector of ``lanes`` elements of ``dtype`` (an LLVM ``<lanes x dtype>``)."""

    def __init__(self, dtype, lanes):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vector({dtype}, {lanes})")


class VectorPack(types.Type):
    """``count`` vectors held as one value (an LLVM array of vectors, kept in registers)."""

    def __init__(self, dtype, lanes, count):
        self.dtype, self.lanes, self.count = dtype, lanes, count
        super().__init__(name=f"VectorPack({dtype}, {lanes}, {count})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


@register_model(VectorPack)
class _VectorPackModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type,
                         ir.ArrayType(ir.VectorType(element, fe_type.lanes), fe_type.count))


def _vector_of(dtype) -> Vector:
    return Vector(dtype, VECTOR_BYTES * 8 // dtype.bitwidth)


def _index(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, ary).data


def _at(builder, data, index, vector_type):
    """A pointer to the vector that starts at ``data[index]``."""
    return builder.bitcast(builder.gep(data, [index]), vector_type.as_pointer())


def _broadcast(builder, vector_type, data, index):
    """The element ``data[index]`` in every lane."""
    return _splat(builder, vector_type, builder.load(builder.gep(data, [index])))


def _splat(builder, vector_type, value):
    v = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value,
                               ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(v, v, zeros)


def _fma(builder, a, b, c):
    """a * b + c, one fused multiply-add per lane (``llvm.fma``)."""
    vt = a.type
    name = f"llvm.fma.v{vt.count}f{32 if vt.element == ir.FloatType() else 64}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt] * 3), name)
    return builder.call(fn, [a, b, c])


def _literal_ints(*values):
    return all(isinstance(v, types.IntegerLiteral) for v in values)


@intrinsic
def vload(typingctx, a, i):
    """The vector ``a[i : i + lanes]`` of the 1-d array ``a``, unaligned, unchecked."""
    vector = _vector_of(a.dtype)

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(vector)
        at = _at(builder, _data(context, builder, sig.args[0], args[0]),
                 _index(context, builder, args[1], sig.args[1]), vt)
        return builder.load(at, align=1)
    return vector(a, i), codegen


@intrinsic
def vstore(typingctx, a, i, v):
    """``a[i : i + lanes] = v``, unaligned, unchecked."""
    def codegen(context, builder, sig, args):
        vt = context.get_value_type(sig.args[2])
        at = _at(builder, _data(context, builder, sig.args[0], args[0]),
                 _index(context, builder, args[1], sig.args[1]), vt)
        builder.store(args[2], at, align=1)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def splat_pack(typingctx, a, start, count):
    """``count`` vectors: ``a[start + k]`` in every lane of vector ``k`` (``count`` a constant)."""
    if not _literal_ints(count):
        return None  # Numba retries with the literal value
    vector = _vector_of(a.dtype)
    pack = VectorPack(a.dtype, vector.lanes, count.literal_value)

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(vector)
        data = _data(context, builder, sig.args[0], args[0])
        first = _index(context, builder, args[1], sig.args[1])
        value = ir.Constant(context.get_value_type(pack), ir.Undefined)
        for k in range(pack.count):
            value = builder.insert_value(
                value, _broadcast(builder, vt, data, builder.add(first, first.type(k))), k)
        return value
    return pack(a, start, count), codegen


@intrinsic
def rows_block(typingctx, pack, bias, src, s0, pitch, dst, d0, opitch, cstep, KH, KW, R, P):
    """Store ``R`` output rows by ``P`` vectors (``cstep`` columns apart) of a stride-1
    correlation::

        dst[d0 + r*opitch + p*cstep + t] =
            bias + sum(pack[i*KW + j] * src[s0 + (r + i)*pitch + p*cstep + j + t])

    for ``r < R``, ``p < P``, ``i < KH``, ``j < KW``, every lane ``t``; ``pack`` holds the
    ``KH*KW`` weights (``splat_pack``).  Input row ``s0 + q*pitch`` feeds output rows ``q - i``
    for every kernel row ``i``, so each of its ``KW * P`` loaded vectors serves up to
    ``min(R, KH)`` multiply-adds: ``(R + KH - 1) * KW * P`` loads for ``R * KH * KW * P``
    multiply-adds, the ``R * P`` sums held in registers beside the weights (``R * P``
    independent chains of multiply-adds: eight keep both FMA units of a core busy through
    their latency).  ``KH``, ``KW``, ``R``, ``P`` are compile-time constants."""
    if not _literal_ints(KH, KW, R, P):
        return None
    kh, kw, rr, pp = KH.literal_value, KW.literal_value, R.literal_value, P.literal_value
    dtype = pack.dtype

    def codegen(context, builder, sig, args):
        weights, b = args[0], args[1]
        vt = context.get_value_type(sig.args[0]).element
        src_data = _data(context, builder, sig.args[2], args[2])
        dst_data = _data(context, builder, sig.args[5], args[5])
        s, step, d, ostep, cs = (_index(context, builder, args[k], sig.args[k])
                                 for k in (3, 4, 6, 7, 8))
        columns = [builder.mul(cs, cs.type(p)) for p in range(pp)]
        total = _splat(builder, vt, context.cast(builder, b, sig.args[1], dtype))
        sums = [[total] * pp for _ in range(rr)]
        for q in range(rr + kh - 1):
            row = builder.add(s, builder.mul(step, step.type(q)))
            for j in range(kw):
                for p in range(pp):
                    at = builder.add(builder.add(row, row.type(j)), columns[p])
                    v = builder.load(_at(builder, src_data, at, vt), align=1)
                    for r in range(max(0, q - kh + 1), min(rr, q + 1)):
                        weight = builder.extract_value(weights, (q - r) * kw + j)
                        sums[r][p] = _fma(builder, weight, v, sums[r][p])
        for r in range(rr):
            row = builder.add(d, builder.mul(ostep, ostep.type(r)))
            for p in range(pp):
                at = _at(builder, dst_data, builder.add(row, columns[p]), vt)
                builder.store(sums[r][p], at, align=1)
        return context.get_dummy_value()
    return types.none(pack, bias, src, s0, pitch, dst, d0, opitch, cstep, KH, KW, R, P), codegen


def _start_sums(b, start, OB, N, vector_at):
    """Typing and code of ``OB * N`` starting sums read from the array ``b`` from ``start``:
    vector ``o*N + k`` is ``vector_at(builder, vector type, b's data, start, o, k)``."""
    if not _literal_ints(OB, N):
        return None  # Numba retries with the literal values
    vector = _vector_of(b.dtype)
    ob, n = OB.literal_value, N.literal_value
    pack = VectorPack(b.dtype, vector.lanes, ob * n)

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(vector)
        data = _data(context, builder, sig.args[0], args[0])
        first = _index(context, builder, args[1], sig.args[1])
        value = ir.Constant(context.get_value_type(pack), ir.Undefined)
        for o in range(ob):
            for k in range(n):
                value = builder.insert_value(value, vector_at(builder, vt, data, first, o, k),
                                             o * n + k)
        return value
    return pack(b, start, OB, N), codegen


@intrinsic
def channel_sums(typingctx, b, start, OB, P):
    """``OB * P`` vectors: vector ``o*P + p`` holds ``b[start + o]`` in every lane (the
    starting sums of ``OB`` output channels over ``P`` vectors of pixels)."""
    return _start_sums(b, start, OB, P, lambda builder, vt, data, first, o, p: _broadcast(
        builder, vt, data, builder.add(first, first.type(o))))


@intrinsic
def tap_row(typingctx, sums, src, s0, phase_stride, copy_stride, w, w0, wstride, OB, P, KW,
            SW, DW):
    """``sums`` (``channel_sums``) plus one kernel row of taps, returned::

        sums[o*P + p] += w[w0 + o*wstride + j] * src[s0 + at(j) + p*lanes + t]

    for ``o < OB``, ``p < P``, ``j < KW``, every lane ``t``, where tap column ``j`` reads
    column phase ``(j*DW) % SW`` (``phase_stride`` apart) at offset ``(j*DW) // SW``, in
    copy ``j`` of the plane (``copy_stride`` apart: grouped.py's masked copies; else 0).  Per
    tap: ``P`` vector loads and ``OB`` broadcast weights for ``OB * P`` multiply-adds, the
    sums staying in registers from call to call (the value is carried, not stored)."""
    if not _literal_ints(OB, P, KW, SW, DW):
        return None
    ob, pp, kw, sw, dw = (t.literal_value for t in (OB, P, KW, SW, DW))

    def codegen(context, builder, sig, args):
        value = args[0]
        vt = context.get_value_type(sig.args[0]).element
        src_data = _data(context, builder, sig.args[1], args[1])
        w_data = _data(context, builder, sig.args[5], args[5])
        s, stride, copies, w0, wstep = (_index(context, builder, args[k], sig.args[k])
                                        for k in (2, 3, 4, 6, 7))
        for j in range(kw):
            at = builder.add(s, builder.add(builder.mul(stride, stride.type((j * dw) % sw)),
                                            stride.type((j * dw) // sw)))
            at = builder.add(at, builder.mul(copies, copies.type(j)))
            weights = [_broadcast(builder, vt, w_data, builder.add(
                w0, builder.add(builder.mul(wstep, wstep.type(o)), wstep.type(j))))
                for o in range(ob)]
            for p in range(pp):
                v = builder.load(_at(builder, src_data, builder.add(at, at.type(p * vt.count)),
                                     vt), align=1)
                for o in range(ob):
                    k = o * pp + p
                    value = builder.insert_value(
                        value, _fma(builder, weights[o], v, builder.extract_value(value, k)), k)
        return value
    return sums(sums, src, s0, phase_stride, copy_stride, w, w0, wstride, OB, P, KW, SW,
                DW), codegen


@intrinsic
def store_sums(typingctx, sums, dst, d0, ostride, OB, P):
    """``dst[d0 + o*ostride + p*lanes + t] = sums[o*P + p]``: ``OB`` output channels'
    ``P`` vectors of pixels."""
    if not _literal_ints(OB, P):
        return None
    ob, pp = OB.literal_value, P.literal_value

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(sig.args[0]).element
        data = _data(context, builder, sig.args[1], args[1])
        d, step = (_index(context, builder, args[k], sig.args[k]) for k in (2, 3))
        for o in range(ob):
            for p in range(pp):
                at = builder.add(d, builder.add(builder.mul(step, step.type(o)),
                                                step.type(p * vt.count)))
                builder.store(builder.extract_value(args[0], o * pp + p),
                              _at(builder, data, at, vt), align=1)
        return context.get_dummy_value()
    return types.none(sums, dst, d0, ostride, OB, P), codegen


@intrinsic
def zero_sums(typingctx, a, COUNT):
    """``COUNT`` vectors of zeros in the element type of the array ``a``."""
    if not _literal_ints(COUNT):
        return None
    vector = _vector_of(a.dtype)
    pack = VectorPack(a.dtype, vector.lanes, COUNT.literal_value)

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(vector)
        value = ir.Constant(context.get_value_type(pack), ir.Undefined)
        for k in range(pack.count):
            value = builder.insert_value(value, ir.Constant(vt, None), k)
        return value
    return pack(a, COUNT), codegen


@intrinsic
def outer_taps(typingctx, sums, xs, x0, tap_stride, g, g0, gstride, OB, KW, CV):
    """``sums`` (``OB * KW * CV`` vectors, ``zero_sums``) plus one output pixel's outer
    product of ``OB`` output-gradient values and ``KW`` taps of ``CV`` channel vectors,
    returned::

        sums[(o*KW + j)*CV + v] += g[g0 + o*gstride] * xs[x0 + j*tap_stride + v*lanes + t]

    for ``o < OB``, ``j < KW``, ``v < CV``, every lane ``t`` (grouped_grad's weight gradient:
    ``xs`` holds the input channels-last, a pixel's channels one run of vectors).  ``KW * CV``
    vector loads and ``OB`` broadcasts for ``OB * KW * CV`` multiply-adds."""
    if not _literal_ints(OB, KW, CV):
        return None
    ob, kw, cv = OB.literal_value, KW.literal_value, CV.literal_value

    def codegen(context, builder, sig, args):
        value = args[0]
        vt = context.get_value_type(sig.args[0]).element
        xs_data = _data(context, builder, sig.args[1], args[1])
        g_data = _data(context, builder, sig.args[4], args[4])
        x0, step, g0, gstep = (_index(context, builder, args[k], sig.args[k])
                               for k in (2, 3, 5, 6))
        grads = [_broadcast(builder, vt, g_data, builder.add(g0, builder.mul(gstep, gstep.type(o))))
                 for o in range(ob)]
        for j in range(kw):
            at = builder.add(x0, builder.mul(step, step.type(j)))
            for v in range(cv):
                x = builder.load(_at(builder, xs_data, builder.add(at, at.type(v * vt.count)), vt),
                                 align=1)
                for o in range(ob):
                    k = (o * kw + j) * cv + v
                    value = builder.insert_value(
                        value, _fma(builder, grads[o], x, builder.extract_value(value, k)), k)
        return value
    return sums(sums, xs, x0, tap_stride, g, g0, gstride, OB, KW, CV), codegen



def _transpose(builder, rows):
    """The ``L x L`` transpose of ``L`` vectors of ``L`` lanes (``L`` a power of two): the
    off-diagonal blocks of each scale swapped, ``log2(L)`` rounds of ``L`` two-input
    shuffles (64 for 16 x 16)."""
    size = len(rows)
    rows = list(rows)
    index = ir.IntType(32)
    b = size // 2
    while b:
        for i in range(size):
            if i & b:
                continue
            j = i + b
            low = [k if not k & b else size + k - b for k in range(size)]
            high = [k + b if not k & b else size + k for k in range(size)]
            rows[i], rows[j] = (
                builder.shuffle_vector(rows[i], rows[j], ir.Constant(ir.VectorType(index, size),
                                                                     mask))
                for mask in (low, high))
        b //= 2
    return rows


@intrinsic
def transpose_store(typingctx, src, s0, sstride, dst, d0, positions, p0):
    """A ``lanes x lanes`` block turned from rows of pixels into pixels of channels::

        dst[d0 + positions[p0 + k] + c] = src[s0 + c*sstride + k]

    for ``c, k < lanes``: ``lanes`` vector loads (channel ``c``'s ``lanes`` pixels), the
    transpose in registers, ``lanes`` vector stores (pixel ``k``'s channels, where
    ``positions`` puts it: grouped_grad's channels-last staging)."""
    def codegen(context, builder, sig, args):
        vt = context.get_value_type(_vector_of(sig.args[0].dtype))
        src_data = _data(context, builder, sig.args[0], args[0])
        dst_data = _data(context, builder, sig.args[3], args[3])
        pos_data = _data(context, builder, sig.args[5], args[5])
        s, step, d, p = (_index(context, builder, args[k], sig.args[k]) for k in (1, 2, 4, 6))
        rows = [builder.load(_at(builder, src_data, builder.add(s, builder.mul(step, step.type(c))),
                                 vt), align=1) for c in range(vt.count)]
        for k, row in enumerate(_transpose(builder, rows)):
            at = builder.load(builder.gep(pos_data, [builder.add(p, p.type(k))]))
            at = builder.add(d, context.cast(builder, at, sig.args[5].dtype, types.intp))
            builder.store(row, _at(builder, dst_data, at, vt), align=1)
        return context.get_dummy_value()
    return types.none(src, s0, sstride, dst, d0, positions, p0), codegen


@intrinsic
def bias_vectors(typingctx, b, start, OB, CV):
    """``OB * CV`` vectors: vector ``o*CV + v`` is ``b[start + v*lanes :][:lanes]`` (the
    starting sums of ``OB`` pixels, each a run of ``CV`` vectors of output channels)."""
    return _start_sums(b, start, OB, CV, lambda builder, vt, data, first, o, v: builder.load(
        _at(builder, data, builder.add(first, first.type(v * vt.count)), vt), align=1))


@intrinsic
def pixel_taps(typingctx, sums, src, s0, w, w0, OB, KW, CV, DW):
    """``sums`` (``bias_vectors``) plus one kernel row of taps over ``OB`` neighbouring pixels,
    vectorised over output channels, returned::

        sums[o*CV + v] += src[s0 + o + j*DW] * w[w0 + (j*CV + v)*lanes + t]

    for ``o < OB``, ``j < KW``, ``v < CV``, every lane ``t``: ``KW * CV`` weight vectors and
    ``OB + (KW - 1)*DW`` broadcast input values (each shared by the taps that read it) for
    ``OB * KW * CV`` multiply-adds (grouped.py's ``outer`` layout)."""
    if not _literal_ints(OB, KW, CV, DW):
        return None
    ob, kw, cv, dw = (t.literal_value for t in (OB, KW, CV, DW))

    def codegen(context, builder, sig, args):
        value = args[0]
        vt = context.get_value_type(sig.args[0]).element
        src_data = _data(context, builder, sig.args[1], args[1])
        w_data = _data(context, builder, sig.args[3], args[3])
        s, w0 = (_index(context, builder, args[k], sig.args[k]) for k in (2, 4))
        weights = [[builder.load(_at(builder, w_data, builder.add(w0, w0.type((j * cv + v)
                                                                              * vt.count)), vt),
                                 align=1) for v in range(cv)] for j in range(kw)]
        return _shared_taps(builder, value, weights, ob, lambda o, j: o + j * dw, lambda at:
                            _broadcast(builder, vt, src_data, builder.add(s, s.type(at))))
    return sums(sums, src, s0, w, w0, OB, KW, CV, DW), codegen


def _shared_taps(builder, value, weights, ob, position, read):
    """``value[o*CV + v] += read(position(o, j)) * weights[j][v]`` for ``o < ob`` and every
    tap ``j`` and channel vector ``v`` of ``weights``: each input read once, however many
    taps share it (pixel_taps, lane_taps)."""
    cv = len(weights[0])
    values = {}
    for o in range(ob):
        for j, row in enumerate(weights):
            at = position(o, j)
            if at not in values:
                values[at] = read(at)
            for v in range(cv):
                k = o * cv + v
                value = builder.insert_value(value, _fma(
                    builder, values[at], row[v], builder.extract_value(value, k)), k)
    return value


@intrinsic
def lane_taps(typingctx, sums, src, s0, w, w0, wstride, OB, KW, SW, DW):
    """``sums`` (``bias_vectors``, ``CV`` 1) plus one kernel row of taps over ``OB``
    neighbouring pixels of a channels-last plane, vectorised over channels, returned::

        sums[o] += src[s0 + (o*SW + j*DW)*lanes + t] * w[w0 + j*wstride + t]

    for ``o < OB``, ``j < KW``, every lane ``t`` (``src`` holds each pixel's ``lanes``
    channels as one vector; ``w`` each tap's weights of those channels): ``KW`` weight
    vectors and one load per input pixel read, shared by the taps that read it, for
    ``OB * KW`` multiply-adds (channels.py's depthwise kernel)."""
    if not _literal_ints(OB, KW, SW, DW):
        return None
    ob, kw, sw, dw = (t.literal_value for t in (OB, KW, SW, DW))

    def codegen(context, builder, sig, args):
        value = args[0]
        vt = context.get_value_type(sig.args[0]).element
        src_data = _data(context, builder, sig.args[1], args[1])
        w_data = _data(context, builder, sig.args[3], args[3])
        s, w0, wstep = (_index(context, builder, args[k], sig.args[k]) for k in (2, 4, 5))
        weights = [[builder.load(_at(builder, w_data, builder.add(
            w0, builder.mul(wstep, wstep.type(j))), vt), align=1)] for j in range(kw)]
        return _shared_taps(builder, value, weights, ob, lambda o, j: o * sw + j * dw,
                            lambda at: builder.load(_at(builder, src_data, builder.add(
                                s, s.type(at * vt.count)), vt), align=1))
    return sums(sums, src, s0, w, w0, wstride, OB, KW, SW, DW), codegen


@intrinsic
def store_transposed(typingctx, sums, dst, d0, ostride, OB, CV):
    """``dst[d0 + (v*lanes + c)*ostride + o] = sums[o*CV + v][c]`` for ``o < OB``, ``v < CV``,
    every lane ``c``: ``OB`` pixels' runs of output-channel vectors written as each output
    channel's run of ``OB`` pixels (``OB <= lanes``), turned in registers (``_transpose``)
    and stored under a mask of ``OB`` lanes (nothing past them written)."""
    if not _literal_ints(OB, CV):
        return None
    ob, cv = OB.literal_value, CV.literal_value

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(sig.args[0]).element
        lanes = vt.count
        data = _data(context, builder, sig.args[1], args[1])
        d, step = (_index(context, builder, args[k], sig.args[k]) for k in (2, 3))
        zero = ir.Constant(vt, None)
        mask = ir.Constant(ir.VectorType(ir.IntType(1), lanes),
                           [1 if c < ob else 0 for c in range(lanes)])
        store = _masked_memory(builder, vt, "store")
        for v in range(cv):
            rows = [builder.extract_value(args[0], o * cv + v) if o < ob else zero
                    for o in range(lanes)]
            for c, row in enumerate(_transpose(builder, rows)):
                at = builder.add(d, builder.mul(step, step.type(v * lanes + c)))
                builder.call(store, [row, _at(builder, data, at, vt),
                                     ir.Constant(ir.IntType(32), 4), mask])
        return context.get_dummy_value()
    return types.none(sums, dst, d0, ostride, OB, CV), codegen


def _masked_memory(builder, vt, name):
    """``llvm.masked.load`` / ``llvm.masked.store`` for vectors of type ``vt``."""
    width = 32 if vt.element == ir.FloatType() else 64
    bits = ir.VectorType(ir.IntType(1), vt.count)
    suffix = f"v{vt.count}f{width}.p0v{vt.count}f{width}"
    if name == "load":
        signature = ir.FunctionType(vt, [vt.as_pointer(), ir.IntType(32), bits, vt])
    else:
        signature = ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), ir.IntType(32), bits])
    return cgutils.get_or_insert_function(builder.module, signature, f"llvm.masked.{name}.{suffix}")


@intrinsic
def copy_part(typingctx, src, s0, dst, d0, count):
    """``dst[d0 : d0 + count] = src[s0 : s0 + count]`` for ``count < lanes``, one masked load
    and store: nothing read or written past ``count``."""
    def codegen(context, builder, sig, args):
        vt = context.get_value_type(_vector_of(sig.args[0].dtype))
        src_data = _data(context, builder, sig.args[0], args[0])
        dst_data = _data(context, builder, sig.args[2], args[2])
        s, d, n = (_index(context, builder, args[k], sig.args[k]) for k in (1, 3, 4))
        lanes = ir.Constant(ir.VectorType(n.type, vt.count), list(range(vt.count)))
        mask = builder.icmp_signed("<", lanes, _splat(builder, lanes.type, n))
        align = ir.Constant(ir.IntType(32), 1)
        v = builder.call(_masked_memory(builder, vt, "load"),
                         [_at(builder, src_data, s, vt), align, mask, ir.Constant(vt, None)])
        builder.call(_masked_memory(builder, vt, "store"), [v, _at(builder, dst_data, d, vt),
                                                            align, mask])
        return context.get_dummy_value()
    return types.none(src, s0, dst, d0, count), codegen
