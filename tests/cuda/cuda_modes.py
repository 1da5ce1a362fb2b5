"""CUDA test modes (imported by the CUDA test modules).

* ``NUMBA_ENABLE_CUDASIM=1``: kernels run on Numba's CUDA simulator (set before
  Numba is imported, so in its own pytest run: ``.ci/run`` does this).
* a real GPU: the same tests run unsimulated.
* neither: the kernel tests are skipped with that reason; the PTX tests still
  compile every kernel for compute capability 9.0.
"""
import os

import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _gpu_available():
    try:
        from numba import cuda
        return cuda.is_available()
    except Exception:
        return False


HAS_CUDA = _gpu_available()
needs_cuda = pytest.mark.skipif(
    not HAS_CUDA, reason="no CUDA GPU here; run with NUMBA_ENABLE_CUDASIM=1 for the simulator")
needs_ptx = pytest.mark.skipif(
    SIMULATED, reason="compile_ptx is not available under the CUDA simulator")
#: launch shape ``(tile, micro, block)`` of the simulator runs: 4x4 threads with
#: 2x2 register tiles (8x8 product tiles) and 4-thread reductions, so that several
#: blocks run even on tiny problems; a real GPU uses the defaults.
TEST_LAUNCH = (4, 2, 4) if SIMULATED else (16, 4, 128)
