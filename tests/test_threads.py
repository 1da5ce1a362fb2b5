"""Small work runs on one thread on every CPU path (no parallel region is opened
for a row or a few); larger batches use Numba's whole pool.

The tests record the thread count in effect when each path's kernel is called
(``numba.get_num_threads()``), not any timing.
"""
import numba
import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb import threads
from sinkhorn_nb.core import PARALLEL_MIN_ENTRIES
from sinkhorn_nb.cpu import balanced, drivers, relaxed

from plans import solve_on_path

ITERATIVE = ("newton", "sparse", "dense", "log")
PATHS = [("balanced", "newton"), ("balanced", "sparse"), ("balanced", "dense"),
         ("balanced", "log"), ("relaxed", "sparse"), ("relaxed", "dense"), ("relaxed", "log")]
K = 12


@pytest.fixture
def thread_counts(monkeypatch):
    """``{path: [thread count at each call]}`` for the iterative paths of the CPU
    driver, the closed forms and the outputs."""
    seen = {}

    def spy_method(name):
        original = getattr(drivers._Run, name)

        def spy(self, rows, warm):
            seen.setdefault(name, []).append(numba.get_num_threads())
            return original(self, rows, warm)
        monkeypatch.setattr(drivers._Run, name, spy)

    def spy_kernel(module, name, key):
        original = getattr(module, name)

        def spy(*args):
            seen.setdefault(key, []).append(numba.get_num_threads())
            return original(*args)
        monkeypatch.setattr(module, name, spy)

    for name in ITERATIVE:
        spy_method(name)
    spy_kernel(balanced, "one_hot_rows", "closed")
    spy_kernel(relaxed, "empty_rows", "closed")
    spy_kernel(balanced, "outputs_from_scalings", "outputs")
    spy_kernel(relaxed, "outputs_from_scalings", "outputs")
    return seen


def _rows(n, path, seed=0):
    """``n`` predictions and targets whose rows every path can solve (targets with
    3 non-zeros: Newton's method takes them, the others too)."""
    rng = np.random.default_rng(seed)
    h = rng.dirichlet(np.ones(K), size=n)
    y = np.zeros((n, K))
    for i in range(n):
        y[i, rng.choice(K, 3, replace=False)] = rng.dirichlet(np.ones(3))
    return h, y


@pytest.mark.parametrize("variant,path", PATHS)
@pytest.mark.parametrize("n", [1, threads.ITERATION_PARALLEL_MIN_ROWS - 1])
def test_few_rows_iterate_on_one_thread(thread_counts, variant, path, n):
    before = numba.get_num_threads()
    h, y = _rows(n, path)
    result = solve_on_path(path, variant, h, y, snb.ground_metric.ordinal(K), 20.0)
    assert result.converged.all()
    assert thread_counts[path] == [1]
    if path != "log":                 # the log domain computes its outputs itself
        assert thread_counts["outputs"] == [1]
    assert numba.get_num_threads() == before                     # restored afterwards


@pytest.mark.parametrize("variant,path", PATHS)
def test_batches_at_the_threshold_use_the_pool(thread_counts, variant, path):
    pool = numba.get_num_threads()
    if pool == 1:
        pytest.skip("Numba's pool has one thread here")
    h, y = _rows(threads.ITERATION_PARALLEL_MIN_ROWS, path)
    solve_on_path(path, variant, h, y, snb.ground_metric.ordinal(K), 20.0)
    assert thread_counts[path] == [pool]


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_one_row_through_the_public_functions_stays_on_one_thread(thread_counts, variant):
    M = snb.ground_metric.ordinal(K)
    h, y = _rows(1, "sparse")
    one_hot = np.eye(K)[3]
    empty = np.zeros(K)
    solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
    solve(h[0], y[0], M, 20.0)
    solve(h[0], one_hot if variant == "balanced" else empty, M, 20.0)
    counts = [c for key in thread_counts for c in thread_counts[key]]
    assert thread_counts["closed"] and len(counts) >= 2     # an iterative path and a closed form
    assert set(counts) == {1}


def test_one_thread_if_sets_and_restores_the_count():
    pool = numba.get_num_threads()
    with threads.one_thread_if(True):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == pool
    with threads.one_thread_if(False):
        assert numba.get_num_threads() == pool
    with pytest.raises(RuntimeError), threads.one_thread_if(True):
        raise RuntimeError("restored on errors too")
    assert numba.get_num_threads() == pool


def test_thresholds():
    # the single-pass threshold counts entries, the iterative one rows
    with threads.passes_on_one_thread(PARALLEL_MIN_ENTRIES - 1):
        assert numba.get_num_threads() == 1
    with threads.iterations_on_one_thread(threads.ITERATION_PARALLEL_MIN_ROWS - 1):
        assert numba.get_num_threads() == 1
    pool = numba.get_num_threads()
    with threads.iterations_on_one_thread(threads.ITERATION_PARALLEL_MIN_ROWS):
        assert numba.get_num_threads() == pool


def _blas_threads():
    from threadpoolctl import threadpool_info
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_small_dense_products_run_on_one_blas_thread(monkeypatch):
    default = _blas_threads()
    seen = []
    original = drivers._Run.dense

    def spy(self, rows, warm):
        seen.append((rows.size, _blas_threads()))
        return original(self, rows, warm)
    monkeypatch.setattr(drivers._Run, "dense", spy)
    h, y = _rows(4, "dense")
    solve_on_path("dense", "balanced", h, y, snb.ground_metric.ordinal(K), 20.0)
    assert seen == [(4, {1})]
    assert _blas_threads() == default                   # restored afterwards
    # products of at least BLAS_PARALLEL_MIN_PRODUCT multiply-adds keep the setting
    n = 16
    big = int(np.ceil(np.sqrt(threads.BLAS_PARALLEL_MIN_PRODUCT / n)))
    rng = np.random.default_rng(1)
    h, y = rng.dirichlet(np.ones(big), size=n), rng.dirichlet(np.ones(big), size=n)
    solve_on_path("dense", "balanced", h, y, snb.ground_metric.ordinal(big), 20.0,
                  max_iter=2, tol=0.0)
    assert seen[-1] == (n, default)
