"""Every CUDA kernel compiled to PTX for compute capability 9.0, in both dtypes.

The simulator cannot see typing or code-generation errors; these tests can, on a
machine without a GPU (numba-cuda's NVVM is enough).
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")
from cuda_modes import HAS_CUDA, needs_ptx  # noqa: E402
from ptx_signatures import signatures  # noqa: E402

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("launch", [(16, 4, 128), (32, 2, 256)])
def test_every_kernel_compiles_to_ptx_sm90(dtype, launch):
    from numba import cuda
    from sinkhorn_nb.cuda.scaling import kernel_sources
    sources = kernel_sources(*launch, np.dtype(dtype))
    sigs = signatures(np.dtype(dtype))
    assert set(sigs) == set(sources), set(sources) ^ set(sigs)
    for name, sig_list in sigs.items():
        for sig in sig_list:
            ptx, _ = cuda.compile_ptx(sources[name], sig, cc=(9, 0))
            assert ".target sm_90" in ptx, name
            assert ".entry" in ptx, name


@pytest.mark.parametrize("dtype, suffix", [(np.float32, "f32"), (np.float64, "f64")])
@pytest.mark.parametrize("micro", [2, 4])
def test_ptx_product_kernel_is_register_blocked(dtype, suffix, micro):
    """Shared-memory panels, a ``micro x micro`` register tile per thread (the
    accumulators stay in registers: no local memory, one multiply-add per
    accumulator in the loop body, which the compiler may unroll) and sums in the
    input dtype."""
    from numba import cuda
    from sinkhorn_nb.cuda.scaling import kernel_sources
    sources = kernel_sources(16, micro, 128, np.dtype(dtype))
    (sig,) = signatures(np.dtype(dtype))["matmul_rows"]
    ptx, _ = cuda.compile_ptx(sources["matmul_rows"], sig, cc=(9, 0))
    assert ".shared" in ptx and "bar.sync" in ptx
    assert f"ld.shared.{suffix}" in ptx
    assert ".local" not in ptx
    fmas = ptx.count(f"fma.rn.{suffix}")
    assert fmas >= micro * micro and fmas % (micro * micro) == 0, fmas
    if dtype == np.float32:
        assert "cvt.f64.f32" not in ptx and ".f64" not in ptx
