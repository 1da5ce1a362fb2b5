"""Thread counts of Numba's parallel regions, for kernels that make one pass over a
batch (shared by the CPU driver and the estimator's objective)."""
import contextlib
import threading

import numba

from .core import PARALLEL_MIN_ENTRIES

_PARALLEL_LOCK = threading.Lock()


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
def passes_on_one_thread(entries):
    """Run the enclosed single-pass kernels on one thread for batches of fewer than
    :data:`~sinkhorn_nb.core.PARALLEL_MIN_ENTRIES` entries (Numba's thread count
    is per calling thread, so other threads are unaffected)."""
    if entries >= PARALLEL_MIN_ENTRIES:
        yield
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)
