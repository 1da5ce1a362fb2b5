"""CUDA benchmarks; every suite skips cleanly (NotImplementedError) without a GPU."""
import time

from .common import measures, metric


def _require_gpu():
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise NotImplementedError("CUDA simulator: no timings")
    try:
        from numba import cuda
        if not cuda.is_available():
            raise NotImplementedError("no CUDA GPU")
    except ImportError:
        raise NotImplementedError("numba-cuda is not installed") from None


class CudaSolve:
    """Wall-clock time of 20 device iterations (synchronized), versus K and dtype."""
    params = ([1000, 4096], ["dense", "sparse"], ["float32", "float64"])
    param_names = ["K", "target", "dtype"]

    def setup(self, K, target, dtype):
        _require_gpu()
        from numba import cuda
        import sinkhorn_nb as snb
        self.loss = snb.WassersteinLoss(metric(K), 10.0, device="cuda", max_iter=20, tol=0.0)
        h, y = measures(4096, K, target, dtype)
        self.h, self.y = cuda.to_device(h), cuda.to_device(y)
        self._solve()

    def _solve(self):
        from numba import cuda
        self.loss(self.h, self.y)
        cuda.synchronize()

    def track_ms_per_iteration(self, K, target, dtype):
        start = time.perf_counter()
        self._solve()
        return (time.perf_counter() - start) / 20 * 1e3
    track_ms_per_iteration.unit = "ms"
