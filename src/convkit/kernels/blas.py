"""Dense products on convkit's own threads, with the BLAS library single-threaded meanwhile.

Why not let OpenBLAS thread each product?  Its worker threads keep spinning for a
long while after every call, so whatever runs next -- a Numba parallel region of
convkit (an im2col band, a depthwise layer), or another library -- competes with
them for the cores.  With products and Numba regions alternating band after band
that cost 5-10x (measured: 430 ms instead of 55 ms for a ResNet 3x3 layer on 2
busy cores).  So convkit splits its own work into independent tasks (samples, or
bands of output rows), runs them on a small pool of Python threads (NumPy's
products and convkit's ``nogil`` Numba helpers release the GIL) and keeps the BLAS
library at one thread for the duration.  Pool threads wait passively; a task queue
balances the load when the OS takes a core away.

The number of threads is Numba's (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``),
so one setting governs every convkit kernel.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

SMALL_FLOPS = 4_000_000  # below this one thread does it all: a hand-off costs more

_lock = threading.RLock()
_state: dict = {}


def parallel(work, tasks, flops: float) -> None:
    """Call ``work(task)`` for every task, on up to ``numba.get_num_threads()`` threads
    (the calling thread is one of them), each taking the next task when it is done, with
    the BLAS library single-threaded.  Tasks must not write to the same memory.  Below
    ``SMALL_FLOPS`` of work the calling thread runs them all, BLAS untouched."""
    tasks = list(tasks)
    if flops < SMALL_FLOPS:
        for task in tasks:
            work(task)
        return
    queue, taken = iter(tasks), threading.Lock()

    def drain():
        while True:
            with taken:
                task = next(queue, _DONE)
            if task is _DONE:
                return
            work(task)

    threads = min(numba.get_num_threads(), len(tasks))
    with single_threaded_blas():
        helpers = [_pool().submit(drain) for _ in range(threads - 1)]
        try:
            drain()
        finally:
            for helper in helpers:
                helper.result()  # waits, and re-raises a helper's exception


_DONE = object()


def accumulate(work, n: int, shape, dtype, flops: float) -> np.ndarray:
    """Sum over samples: ``work(i, acc)`` adds sample ``i``'s term into ``acc``.  Samples
    are cut into one contiguous chunk per thread, each summed in order into its own
    array, and the chunks added in order: the same bits on every run."""
    chunks = max(1, min(numba.get_num_threads(), n)) if flops >= SMALL_FLOPS else 1
    partial = np.zeros((chunks, *shape), dtype=dtype)

    def chunk(c):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            work(i, partial[c])
    parallel(chunk, range(chunks), flops)
    return partial.sum(axis=0, dtype=dtype) if chunks > 1 else partial[0]


@contextmanager
def single_threaded_blas():
    """The BLAS libraries NumPy and SciPy loaded run single-threaded inside the block.
    Blocks may nest and overlap across threads: the first to enter sets the limit, the
    last to leave restores what was there before."""
    with _lock:
        if _state.get("users", 0) == 0:
            _state["limit"] = _controller().limit(limits=1)  # remembers the old counts
        _state["users"] = _state.get("users", 0) + 1
    try:
        yield
    finally:
        with _lock:
            _state["users"] -= 1
            if _state["users"] == 0:
                _state.pop("limit").restore_original_limits()


def _controller():
    """Found once, under ``_lock`` (the callers hold it)."""
    if "controller" not in _state:
        _state["controller"] = ThreadpoolController().select(user_api="blas")
    return _state["controller"]


def _forget_pool_in_child():
    """A forked child has none of its parent's threads: start a new pool on demand."""
    _state.pop("pool", None)


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _pool() -> ThreadPoolExecutor:
    pool = _state.get("pool")
    if pool is None:
        with _lock:
            pool = _state.setdefault("pool", ThreadPoolExecutor(
                max_workers=numba.config.NUMBA_NUM_THREADS, thread_name_prefix="convkit"))
    return pool
