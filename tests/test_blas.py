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


def test_a_forked_child_gets_a_pool_of_its_own():
    """multiprocessing's fork start: the child must not wait on its parent's threads."""
    import multiprocessing
    blas.parallel(lambda task: None, range(4), BIG)  # the parent's pool exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_sum_in_pool, (20,))
        assert result.get(timeout=60) == sum(range(20))


def _sum_in_pool(n):
    total, lock = [], threading.Lock()

    def work(task):
        with lock:
            total.append(task)
    blas.parallel(work, range(n), BIG)
    return sum(total)


def test_overlapping_calls_from_two_threads_restore_blas_once_both_leave():
    """A second user thread entering and leaving convkit while the first is inside must not
    lift the first one's limit; the original thread counts come back when the last leaves."""
    before = blas_threads()
    with blas.single_threaded_blas():
        other = threading.Thread(target=_enter_and_leave)
        other.start()
        other.join(30)
        assert all(n == 1 for n in blas_threads())  # still limited for the first caller
    assert blas_threads() == before


def _enter_and_leave():
    with blas.single_threaded_blas():
        pass
