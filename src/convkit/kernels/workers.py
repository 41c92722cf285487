"""How convkit's Numba kernels share their work between threads: claimed, not split.

Numba's OpenMP layer splits a ``prange`` statically: with two threads, iterations
``[0, n/2)`` run on one and the rest on the other, whatever ``numba.set_parallel_chunksize``
says (measured on numba 0.68: the same halves with a chunk size of 1).  On a shared
machine the OS takes a core away now and then, and the whole kernel then waits for that
thread's half.  So a kernel's ``prange`` runs one iteration per thread -- a *worker*,
which allocates its scratch once -- and the workers claim *blocks* of tasks (samples,
groups, planes) from a shared counter, one atomic fetch-and-add per block (``claim``),
until none are left: a thread that loses its core leaves its blocks to the other, as
``blas.parallel``'s queue does for the BLAS kernels.  The pattern::

    claimed = np.zeros(1, np.int64)
    for _ in prange(workers):  # workers = threads(), an argument
        scratch = ...
        block = claim(claimed)
        while block < blocks:
            for task in range(block * tasks // blocks, (block + 1) * tasks // blocks):
                ...
            block = claim(claimed)

Without threads (a forked child's serial twin, forksafe.py) the first worker claims every
block.  Measured on Emerald Rapids (2 cores shared with other tenants), ResNeXt's deep
stage forward kernel, interleaved, 5 x 50 calls: 0.72-0.97x the time of the static halves
(the gain grows with the machine's noise), the 90th percentile 0.76-0.91x.
"""
from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def threads() -> int:
    """The workers of a kernel: Numba's thread count, passed in as an argument (read inside
    a kernel, ``numba.get_num_threads()`` is a dynamic global: no disk cache)."""
    return numba.get_num_threads()


def parallel_blocks(tasks: int) -> int:
    """Blocks of ``tasks`` for the workers to claim: eight per thread, so a thread that
    loses its core holds up at most one block."""
    return min(tasks, 8 * numba.get_num_threads())


@intrinsic
def claim(typingctx, counter):
    """The next block: ``counter[0]`` before adding one to it, atomically (an int64 array
    shared by the workers, zero at the start)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "monotonic")
    return types.int64(counter), codegen
