"""Device arrays through the public functions: the outputs follow ``h``, mixed
host/device calls are refused, a device metric is read once on the host.

Under the simulator the device arrays are Numba's (the simulator has no CUDA
array interface); CuPy arrays and CUDA tensors take the same route on a GPU.
"""
import numpy as np
import pytest

import sinkhorn_nb as snb
from cuda_modes import SIMULATED, needs_cuda
from sinkhorn_nb import _arrays
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets

pytestmark = needs_cuda


def _problem(n=3, K=5, seed=0):
    return (random_metric(K, seed), random_predictions(n, K, seed + 1),
            random_targets("sparse", n, K, seed + 2))


def test_host_and_device_arrays_do_not_mix():
    from numba import cuda
    M, h, y = _problem()
    with pytest.raises(TypeError, match="h is on the GPU but y is in host memory"):
        snb.sinkhorn(cuda.to_device(h), y, M, 2.0, device="cuda")
    with pytest.raises(TypeError, match="h is in host memory but y is on the GPU"):
        snb.sinkhorn(h, cuda.to_device(y), M, 2.0, device="cuda")
    with pytest.raises(TypeError, match="h is on the GPU but y is in host memory"):
        snb.WassersteinLoss(M, 2.0, device="cuda")(cuda.to_device(h), y.tolist())


def test_device_metric_is_read_on_the_host():
    from numba import cuda
    M, h, y = _problem(seed=1)
    loss = snb.WassersteinLoss(cuda.to_device(M), 2.0, device="cuda")
    assert isinstance(loss.M, np.ndarray)
    np.testing.assert_array_equal(loss.M, M)
    value, grad = loss(cuda.to_device(h), cuda.to_device(y))
    assert hasattr(value, "copy_to_host") and hasattr(grad, "copy_to_host")
    np.testing.assert_allclose(value.copy_to_host(), snb.sinkhorn(h, y, M, 2.0).loss,
                               rtol=1e-10)


class _Namespace:
    """A stand-in for a GPU library's namespace: records what ``asarray`` received."""

    def __init__(self):
        self.received = []

    def asarray(self, a, device=None):
        self.received.append((a, device))
        return ("converted", device)


def test_device_outputs_are_handed_to_the_callers_namespace_without_a_host_copy():
    from numba import cuda
    M, h, y = _problem(seed=2)
    result = snb.sinkhorn(cuda.to_device(h), cuda.to_device(y), M, 2.0, device="cuda")
    namespace = _Namespace()
    caller = _arrays.Caller(_arrays.DEVICE, namespace, "gpu:0")
    out = caller.result(result, was_1d=False)
    assert out.loss == ("converted", "gpu:0")
    assert all(hasattr(a, "copy_to_host") for a, _ in namespace.received)   # device arrays
    assert len(namespace.received) == 8


@pytest.mark.skipif(SIMULATED, reason="the simulator has no CUDA array interface")
def test_cupy_arrays_in_cupy_arrays_out_on_the_gpu():
    cupy = pytest.importorskip("cupy")
    M, h, y = _problem(n=4, K=6, seed=3)
    hd, yd = cupy.asarray(h), cupy.asarray(y)
    r = snb.sinkhorn(hd, yd, M, 2.0, device="cuda")
    assert isinstance(r.loss, cupy.ndarray) and isinstance(r.grad, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(r.loss), snb.sinkhorn(h, y, M, 2.0).loss,
                               rtol=1e-10)
    with pytest.raises(TypeError, match="h is on the GPU but y is in host memory"):
        snb.sinkhorn(hd, y, M, 2.0, device="cuda")


@pytest.mark.skipif(SIMULATED, reason="the simulator has no CUDA array interface")
def test_cuda_tensors_through_the_torch_loss_on_the_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    from sinkhorn_nb.torch import WassersteinLoss
    M, h, y = _problem(n=4, K=6, seed=4)
    z = torch.tensor(np.log(h), device="cuda", requires_grad=True)
    target = torch.tensor(y, device="cuda")
    loss = WassersteinLoss(M, 2.0, from_logits=True, kl_weight=0.1)
    value = loss(z, target)
    value.backward()
    assert z.grad.device.type == "cuda"
    z_cpu = z.detach().cpu().requires_grad_()
    expected = loss(z_cpu, target.cpu())
    expected.backward()
    np.testing.assert_allclose(value.item(), expected.item(), rtol=1e-9)
    np.testing.assert_allclose(z.grad.cpu().numpy(), z_cpu.grad.numpy(), rtol=1e-8, atol=1e-12)
