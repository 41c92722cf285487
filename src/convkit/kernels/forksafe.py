"""convkit's Numba parallel kernels in a process forked from one that already ran them.

Numba's Linux wheels run parallel kernels on GNU OpenMP unless they find TBB, and GNU
OpenMP cannot run in a child made by ``fork()`` after the parent used it: the child has
none of the parent's worker threads.  Numba then prints "Terminating: fork() called from a process
already using GNU OpenMP, this is unsafe." and kills the child with SIGTERM, and a
``multiprocessing.Pool`` (``fork`` is Linux's default start method up to Python 3.13)
waits forever for the task it lost.  So convkit notes such a fork (:func:`threads_lost`),
and the kernel table and the gradients then route around the Numba parallel kernels onto
the BLAS ones (GEMM, Winograd): the same numbers within rounding, depthwise and grouped
layers slower.  Each parallel kernel also checks before it launches and raises a
RuntimeError naming the ways out, should a route ever reach one.
"""
from __future__ import annotations

import os
import sys
from functools import wraps

FORKED_AFTER_OPENMP = (
    "convkit cannot run this parallel kernel here: this process was forked from one that had "
    "already run convkit's kernels on Numba's GNU OpenMP threading layer, which does not "
    "work in a forked child (Numba would terminate the process). Start worker processes "
    "with multiprocessing's 'spawn' or 'forkserver' method "
    "(multiprocessing.get_context('spawn')), run convkit in the parent only, or give Numba "
    "a fork-safe threading layer (NUMBA_THREADING_LAYER=tbb, with TBB where Numba finds it)")

_state = {"forked_after_openmp": False}


def threads_lost() -> bool:
    """Is this a child forked after GNU OpenMP ran, where Numba's parallel kernels cannot?"""
    return _state["forked_after_openmp"]


def parallel_kernel(dispatcher):
    """``dispatcher`` (a Numba ``parallel=True`` function, called from Python) behind a check
    that this process may launch it."""
    @wraps(dispatcher.py_func)
    def launch(*args):
        if threads_lost():
            raise RuntimeError(FORKED_AFTER_OPENMP)
        return dispatcher(*args)
    launch.dispatcher = dispatcher
    return launch


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
