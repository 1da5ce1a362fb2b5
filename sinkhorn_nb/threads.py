"""Thread counts of Numba's parallel regions (shared by the CPU driver and the
estimator's objective).

Small work runs on one thread on every CPU path: a parallel region wakes the
whole pool, which costs from microseconds on an idle machine to milliseconds
when other processes hold the cores, and a kernel that loops over rows gives
threads beyond the number of rows nothing to do.

* Single-pass kernels (closed forms, outputs, the softmax of the estimator):
  :func:`passes_on_one_thread`, below :data:`~sinkhorn_nb.core.PARALLEL_MIN_ENTRIES`
  entries.
* Iterative per-row kernels (Newton, support, dense, log domain; balanced and
  relaxed): :func:`iterations_on_one_thread`, below
  :data:`ITERATION_PARALLEL_MIN_ROWS` rows.

BLAS and Numba keep separate thread pools, and both keep their threads spinning
for a while after each call, so alternating BLAS products with Numba's parallel
kernels (a training step) makes the two pools compete for the same cores.
Training and the experiments therefore run BLAS on one thread
(:func:`blas_on_one_thread`), leaving the cores to Numba's pool.  Measured on 2
cores with other processes running: the two products of a training step
(``X @ W.T`` and ``dZ.T @ X``, 4,000 x 784 features, 10 classes) took 8.6 ms
(median) on one BLAS thread against 36 ms on two, and 47 ms against 376 ms at
20,000 rows.
"""
import contextlib
import threading

import numba

from .core import PARALLEL_MIN_ENTRIES

_PARALLEL_LOCK = threading.Lock()

#: Solves of fewer rows run the iterative per-row kernels on one thread.  Measured
#: on 2 cores, K = 50, every path, one thread against two: on an idle machine two
#: threads gained nothing below 8 rows; with another process busy on the cores,
#: waking the second thread cost about 24 ms per call (the relaxed support path:
#: 0.2 ms for one row on one thread, 24 ms on two) and two threads were still
#: slower at 8 rows, while from 16 rows the log-domain path gained 38 %.
ITERATION_PARALLEL_MIN_ROWS = 16


def parallel_section():
    """A lock when Numba's threading layer does not allow concurrent calls.

    Numba's ``workqueue`` threading layer (the fallback when neither OpenMP nor
    TBB is available) does not allow concurrent parallel regions, so under it
    (and before the layer is known) solves are serialized; under ``omp`` and
    ``tbb`` they run concurrently.
    """
    try:
        layer = numba.threading_layer()
    except ValueError:          # no parallel region has run in this process yet
        layer = None
    return _PARALLEL_LOCK if layer in (None, "workqueue") else contextlib.nullcontext()


@contextlib.contextmanager
def one_thread_if(small):
    """Run the enclosed Numba kernels on one thread when ``small`` is true (Numba's
    thread count is per calling thread, so other threads are unaffected)."""
    if not small:
        yield
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def passes_on_one_thread(entries):
    """Run the enclosed single-pass kernels on one thread for batches of fewer than
    :data:`~sinkhorn_nb.core.PARALLEL_MIN_ENTRIES` entries."""
    return one_thread_if(entries < PARALLEL_MIN_ENTRIES)


#: The dense path's BLAS products of fewer multiply-adds (rows x K x K) run on one
#: BLAS thread.  Measured on 2 cores under load (load average 6-7), 30 dense
#: iterations: 64 rows x K = 256 (4.2 million per product) took 41-49 ms (median)
#: on one BLAS thread against 172-221 ms on two; 256 rows x K = 1000 (256
#: million) took 2.3 s against 3.3-5.2 s, but such products can use a second
#: core on an idle machine, so they keep the BLAS library's setting.
BLAS_PARALLEL_MIN_PRODUCT = 2 ** 24

_CONTROLLER = []


def _controller():
    """One ``threadpoolctl.ThreadpoolController`` per process (building it scans
    the loaded libraries; limiting through it costs microseconds)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def blas_on_one_thread(small=True):
    """Limit the BLAS libraries loaded in this process to one thread for the
    enclosed block when ``small`` is true (``threadpoolctl``, a dependency of
    scikit-learn)."""
    if not small:
        return contextlib.nullcontext()
    return _controller().limit(limits=1, user_api="blas")


def iterations_on_one_thread(rows):
    """Run the enclosed iterative per-row kernels on one thread for fewer than
    :data:`ITERATION_PARALLEL_MIN_ROWS` rows."""
    return one_thread_if(rows < ITERATION_PARALLEL_MIN_ROWS)
