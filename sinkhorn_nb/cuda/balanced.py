"""CUDA driver for smoothed (balanced) transport (mirrors :mod:`sinkhorn_nb.cpu.balanced`)."""
from .paths import DEFAULT_LAUNCH, outputs, solve
from .results import device_result


def sinkhorn_balanced(h, y, kernel, max_iter, tol, check_every, method, u0=None, v0=None,
                      launch=DEFAULT_LAUNCH):
    """Solve the balanced problem for device arrays ``h, y`` (n, K).

    ``kernel`` is a :class:`~sinkhorn_nb.cuda.paths.DeviceGibbsKernel`.  Returns a
    :class:`~sinkhorn_nb.SinkhornResult` of device arrays.
    """
    state, go = solve(h, y, kernel, True, 1.0, 1.0, max_iter, tol, check_every, method,
                      launch, u0, v0)
    return device_result(state, *outputs(go, h, y, kernel, state, True))
