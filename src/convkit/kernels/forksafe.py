"""convkit's Numba parallel kernels in a process forked from one that already ran them.

Numba's Linux wheels run parallel kernels on GNU OpenMP unless they find TBB, and GNU
OpenMP cannot run in a child made by ``fork()`` after the parent used it: the child has
none of the parent's worker threads.  Numba then prints "Terminating: fork() called from
a process already using GNU OpenMP, this is unsafe." and kills the child with SIGTERM, and a
``multiprocessing.Pool`` (``fork`` is Linux's default start method up to Python 3.13)
waits forever for the task it lost.  So convkit notes such a fork (:func:`threads_lost`),
and there each parallel kernel runs as its *serial twin* instead: the same Python function
compiled without ``parallel=True`` (``prange`` is then ``range``), so the same routes and
numbers on one thread.  A twin is compiled on its first use in such a child, under a name
of its own: Numba's disk cache keys on the function, not on its flags, so the twin must
not share the parallel kernel's cache entries (the child would load the parallel code and
be killed).  Measured (mbv2-dw3x3, 8x144x56x56): 1.5-2.1 ms in the parent on two
threads, 3.1 ms in the child on its twin, 22 ms when the child was routed onto the BLAS
kernels instead.

Why not drop OpenMP and run every kernel as its serial twin on convkit's Python threads
(``blas.py``'s pool, ``nogil``), parts of the outer loop taken one at a time?  Tried on
all twelve kernels: bit-for-bit the same numbers, fork-safe on every thread, and a serial
kernel compiles 2-3x faster (5x5 depthwise: 1.6-2.3 against 4.9-5.2 s).  But the serial
code ran 15-20% slower on one thread (the grouped kernel on 56x56 planes: 4.9-6.3 against
4.2-5.5 ms, the same inner loop in the assembly; not the error model, bounds checks or
reference counts), and waking a pool thread took 0.06-0.23 ms: against the OpenMP
kernels, both waiting passively, 0.8-1.3x the time forward, 1.0-1.2x backward (ResNeXt
1.1x, ShuffleNet's grouped 1x1 1.3x).  Kept for small calls in mind: one call on the
calling thread costs ~1 us against ~4 us for an OpenMP region.
"""
from __future__ import annotations

import os
import sys
import types
from functools import wraps

from numba import njit

_state = {"forked_after_openmp": False}


def threads_lost() -> bool:
    """Is this a child forked after GNU OpenMP ran, where Numba's threads cannot run?"""
    return _state["forked_after_openmp"]


def parallel_kernel(dispatcher):
    """``dispatcher`` (a Numba ``parallel=True`` function, called from Python), or its serial
    twin where this process cannot launch Numba's threads."""
    twin = []

    @wraps(dispatcher.py_func)
    def launch(*args):
        if threads_lost():
            if not twin:
                twin.append(serial_twin(dispatcher))
            return twin[0](*args)
        return dispatcher(*args)
    launch.dispatcher, launch.twin = dispatcher, twin
    return launch


def serial_twin(dispatcher):
    """``dispatcher``'s function compiled without ``parallel``, cached under its own name."""
    f = dispatcher.py_func
    copy = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                              f.__defaults__, f.__closure__)
    copy.__qualname__ = f.__qualname__ + "_serial"
    copy.__module__ = f.__module__
    options = {k: v for k, v in dispatcher.targetoptions.items()
               if k not in ("parallel", "nopython")}  # njit is nopython already
    return njit(cache=True, **options)(copy)


def _gnu_openmp_running() -> bool:
    """Has this process started Numba's threads on GNU OpenMP?"""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return False
    try:
        layer = parallel.threading_layer()
    except ValueError:  # no layer launched after all
        return False
    omppool = sys.modules.get("numba.np.ufunc.omppool")
    return layer == "omp" and getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _note_fork_in_child() -> None:
    if _gnu_openmp_running():
        _state["forked_after_openmp"] = True


os.register_at_fork(after_in_child=_note_fork_in_child)
