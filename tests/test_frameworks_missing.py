"""Without PyTorch or JAX: the core never imports them, the wrappers say which
extra to install, and host arrays of other libraries still go through DLPack."""
import subprocess
import sys

import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb import _arrays


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_wrapper_without_its_framework_names_the_extra(framework):
    # sys.modules[name] = None makes "import name" fail as if it were not installed
    done = _run(f"import sys; sys.modules[{framework!r}] = None\n"
                "import sinkhorn_nb\n"
                "try:\n"
                f"    import sinkhorn_nb.{framework}\n"
                "except ImportError as exc:\n"
                "    print('ImportError:', exc)\n")
    assert done.returncode == 0, done.stderr
    assert f'pip install "sinkhorn_nb[{framework}]"' in done.stdout
    assert f"sinkhorn_nb.{framework} needs" in done.stdout


def test_core_imports_neither_framework():
    done = _run("import sys, numpy as np, sinkhorn_nb as snb\n"
                "M = snb.ground_metric.ordinal(3)\n"
                "snb.sinkhorn(np.array([0.2, 0.5, 0.3]), np.array([0., 1., 0.]), M, 20.0)\n"
                "snb.WassersteinLoss(M, 20.0)(np.array([0.2, 0.5, 0.3]), np.array([0., 1., 0.]))\n"
                "print(sorted({'torch', 'jax', 'array_api_compat'} & set(sys.modules)))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class HostArray:
    """A minimal array of an unknown library: host memory behind DLPack only."""

    def __init__(self, data):
        self._data = np.ascontiguousarray(data)

    def __dlpack__(self, **kwargs):
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()


class ElsewhereArray(HostArray):
    """DLPack memory on a device that is neither the host nor CUDA (Vulkan, 7)."""

    def __dlpack_device__(self):
        return (7, 0)


def test_unknown_dlpack_host_arrays_are_read_in_place_and_answered_in_numpy():
    M = snb.ground_metric.ordinal(5)
    rng = np.random.default_rng(0)
    h, y = rng.dirichlet(np.ones(5), size=3), rng.dirichlet(np.ones(5), size=3)
    wrapped = HostArray(h)
    assert _arrays.where(wrapped) == _arrays.HOST
    view = _arrays.host_view(wrapped, "h")
    assert view.ctypes.data == h.ctypes.data          # no copy
    r = snb.sinkhorn(wrapped, HostArray(y), HostArray(M), 20.0)
    assert isinstance(r.loss, np.ndarray)
    np.testing.assert_array_equal(r.loss, snb.sinkhorn(h, y, M, 20.0).loss)


def test_arrays_neither_on_the_host_nor_on_a_gpu_are_refused():
    M = snb.ground_metric.ordinal(5)
    h = np.full(5, 0.2)
    with pytest.raises(TypeError, match="neither in host memory nor on an NVIDIA GPU"):
        snb.sinkhorn(ElsewhereArray(h), h, M, 20.0)
    with pytest.raises(TypeError, match="neither in host memory nor on an NVIDIA GPU"):
        snb.WassersteinLoss(ElsewhereArray(M), 20.0)


def test_numpy_callers_get_numpy_back():
    caller = _arrays.Caller.of(np.ones(3))
    assert caller.kind == _arrays.NUMPY and not caller.foreign
    assert _arrays.Caller.of([0.5, 0.5]).kind == _arrays.NUMPY
    assert _arrays.where(np.float64(1.0)) == _arrays.NUMPY
