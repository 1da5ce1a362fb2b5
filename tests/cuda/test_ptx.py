"""Every CUDA kernel compiled to PTX for compute capability 9.0, in both dtypes.

The simulator cannot see typing or code-generation errors; these tests can, on a
machine without a GPU (numba-cuda's NVVM is enough).  Each kernel carries the
argument types it is compiled for here (``@kernel`` in :mod:`sinkhorn_nb.cuda.jit`).
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")
from cuda_modes import HAS_CUDA, needs_ptx  # noqa: E402

pytestmark = needs_ptx


@pytest.fixture(autouse=True)
def target_sm90_without_a_driver(monkeypatch):
    """Device functions called by a kernel are compiled for the *current* device's
    compute capability, which needs a driver; without a GPU, name sm_90 instead."""
    from types import SimpleNamespace

    from numba.cuda import dispatcher
    if not HAS_CUDA:
        monkeypatch.setattr(dispatcher, "get_current_device",
                            lambda: SimpleNamespace(compute_capability=(9, 0)))


def _ptx(kernel, argument_types):
    from numba import cuda
    ptx, _ = cuda.compile_ptx(kernel.py_func, argument_types, cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
    return ptx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("module", ["kernels", "balanced", "relaxed", "scan"])
def test_every_kernel_compiles_to_ptx_sm90(dtype, module):
    import importlib

    from sinkhorn_nb.cuda.jit import ArgumentTypes, compiled_kernels
    kernels = compiled_kernels(importlib.import_module(f"sinkhorn_nb.cuda.{module}"))
    expected = {"kernels": {"start_rows", "update_rows", "finish_rows", "row_dots",
                            "gather_support", "combine_rows", "gather_dots", "scatter_support",
                            "start_log_rows", "log_sum_exps", "log_update", "log_costs",
                            "final_status"},
                "scan": {"scan_measures", "scale_rows"},
                "balanced": {"outputs_from_scalings", "outputs_from_logs", "one_hot_rows",
                             "newton_rows"},
                "relaxed": {"outputs_from_scalings", "outputs_from_logs", "empty_rows"}}
    assert set(kernels) == expected[module]
    types = ArgumentTypes(np.dtype(dtype))
    for name, kernel in kernels.items():
        for argument_types in kernel.argument_types(types):
            _ptx(kernel, argument_types)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("launch", [(16, 4), (32, 2)])
def test_product_kernel_compiles_for_every_launch_shape(dtype, launch):
    from sinkhorn_nb.cuda.jit import ArgumentTypes
    from sinkhorn_nb.cuda.kernels import row_products
    kernel = row_products(*launch, np.dtype(dtype))
    (argument_types,) = kernel.argument_types(ArgumentTypes(np.dtype(dtype)))
    ptx = _ptx(kernel, argument_types)
    assert "ld.shared" in ptx and "bar.sync" in ptx       # panels staged in shared memory


@pytest.mark.parametrize("dtype, suffix", [(np.float32, "f32"), (np.float64, "f64")])
@pytest.mark.parametrize("micro", [2, 4])
def test_ptx_product_kernel_is_register_blocked(dtype, suffix, micro):
    """Shared-memory panels, a ``micro x micro`` register tile per thread (the
    accumulators stay in registers: no local memory, one multiply-add per
    accumulator in the loop body, which the compiler may unroll) and sums in the
    input dtype."""
    from sinkhorn_nb.cuda.jit import ArgumentTypes
    from sinkhorn_nb.cuda.kernels import row_products
    kernel = row_products(16, micro, np.dtype(dtype))
    (argument_types,) = kernel.argument_types(ArgumentTypes(np.dtype(dtype)))
    ptx = _ptx(kernel, argument_types)
    assert ".shared" in ptx and "bar.sync" in ptx
    assert f"ld.shared.{suffix}" in ptx
    assert ".local" not in ptx
    fmas = ptx.count(f"fma.rn.{suffix}")
    assert fmas >= micro * micro and fmas % (micro * micro) == 0, fmas
    if dtype == np.float32:
        assert "cvt.f64.f32" not in ptx and ".f64" not in ptx
