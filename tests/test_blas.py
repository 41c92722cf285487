"""kernels/blas.py: convkit's own threads for BLAS products."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from convkit.kernels import blas

BIG = 10 * blas.SMALL_FLOPS  # enough work to use the pool


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_every_task_runs_once_with_blas_single_threaded_and_restored():
    before = blas_threads()
    seen, inside, lock = [], [], threading.Lock()

    def work(task):
        with lock:
            seen.append(task)
            inside.append(blas_threads())
    blas.parallel(work, range(37), BIG)
    assert sorted(seen) == list(range(37))
    assert all(all(n == 1 for n in counts) for counts in inside)
    assert blas_threads() == before


def test_small_work_stays_on_the_calling_thread():
    threads = set()
    blas.parallel(lambda task: threads.add(threading.get_ident()), range(8), 1.0)
    assert threads == {threading.get_ident()}


def test_a_task_error_reaches_the_caller_and_blas_is_restored():
    before = blas_threads()

    def work(task):
        if task == 5:
            raise ValueError("task 5")
    with pytest.raises(ValueError, match="task 5"):
        blas.parallel(work, range(12), BIG)
    assert blas_threads() == before


@pytest.mark.parametrize("n", [1, 2, 7])
def test_accumulate_is_the_ordered_sum(n):
    terms = np.random.default_rng(n).standard_normal((n, 3, 4))

    def add(i, acc):
        acc += terms[i]
    got = blas.accumulate(add, n, (3, 4), np.float64, BIG)
    np.testing.assert_allclose(got, terms.sum(axis=0), rtol=1e-12)
    assert np.array_equal(got, blas.accumulate(add, n, (3, 4), np.float64, BIG))
