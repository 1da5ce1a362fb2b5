"""Validation and dispatch shared by :func:`sinkhorn`, :func:`sinkhorn_relaxed` and
:class:`WassersteinLoss`: host or device inputs, CPU or CUDA drivers."""
import numpy as np

from .cpu.balanced import sinkhorn_balanced as cpu_balanced
from .cpu.relaxed import sinkhorn_relaxed as cpu_relaxed
from .cpu.scaling import CONVERGED, scalings_from_logs
from .result import SinkhornResult, warn_if_not_converged
from .validation import (as_real_array, check_balanced_masses, check_pair, compute_dtype,
                         is_device_array)

METHODS = ("auto", "multiplicative", "log")
#: Default tolerance on the relative marginal error, per compute dtype.
DEFAULT_TOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-5}


def check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _initial_scalings(init, shape, dtype):
    """``(u0, v0)`` from ``init`` (a pair of arrays of ``shape``), or ``(None, None)``."""
    if init is None:
        return None, None
    u0, v0 = (np.ascontiguousarray(a, dtype=dtype) for a in init)
    if u0.shape != shape or v0.shape != shape:
        raise ValueError(f"init must be two arrays of shape {shape}, got {u0.shape} "
                         f"and {v0.shape}")
    if not (np.all(np.isfinite(u0)) and np.all(np.isfinite(v0))
            and np.all(u0 >= 0) and np.all(v0 >= 0)):
        raise ValueError("init scalings must be finite and non-negative")
    return u0, v0


def _cpu_solve(balanced, h, y, kernel, gammas, controls, u0, v0):
    if balanced:
        loss, grad, state = cpu_balanced(h, y, kernel, *controls, u0, v0)
    else:
        loss, grad, state = cpu_relaxed(h, y, kernel, *gammas, *controls, u0, v0)
    dtype = h.dtype
    if state.scalings is not None:      # every row from a multiplicative path
        u, v = state.scalings
    else:
        u, v = np.empty(h.shape, dtype), np.empty(h.shape, dtype)
        scalings_from_logs(state.log_u, state.log_v, 0.9 * np.log(np.finfo(dtype).max),
                           balanced, u, v)
    return SinkhornResult(
        loss=loss.astype(dtype, copy=False), grad=grad.astype(dtype, copy=False),
        transport_cost=state.cost.astype(dtype, copy=False), n_iter=state.n_iter,
        err=state.err.astype(dtype, copy=False), converged=state.status == CONVERGED,
        u=u, v=v)


def _cuda_solve(balanced, h, y, kernel, gammas, controls, u0, v0):
    from .cuda import sinkhorn_balanced, sinkhorn_relaxed
    if balanced:
        return sinkhorn_balanced(h, y, kernel.on_device(), *controls, u0, v0)
    return sinkhorn_relaxed(h, y, kernel.on_device(), *gammas, *controls, u0, v0)


def run(variant, h, y, M, kernel_for, *, gammas=(1.0, 1.0), max_iter, tol, check_every,
        method, renormalize=False, device="cpu", init=None, metric_sets_dtype=True,
        what="sinkhorn"):
    """Validate ``(h, y)``, solve every row, warn once if some row did not converge.

    ``kernel_for(dtype)`` returns the :class:`~sinkhorn_nb.gibbs.GibbsKernel`; ``M``
    is the validated float metric (only its shape and, with
    ``metric_sets_dtype``, its dtype are used here).  ``device`` is already
    resolved to ``"cpu"`` or ``"cuda"``.  Host inputs give NumPy outputs; device
    inputs (``device="cuda"``) give device arrays.
    """
    balanced = variant == "balanced"
    from_device = device == "cuda" and is_device_array(h) and is_device_array(y)
    if from_device:
        from .cuda.arrays import as_device_pair, check_device_measures
        from .cuda.paths import DEFAULT_LAUNCH
        h2, y2, was_1d = as_device_pair(h, y)
        if h2.shape[1] != M.shape[0]:
            raise ValueError(f"M has shape {M.shape} but h and y have K={h2.shape[1]} labels")
        h2, y2 = check_device_measures(h2, y2, balanced, renormalize, DEFAULT_LAUNCH)
        dtype = np.dtype(h2.dtype)
    else:
        arrays = [as_real_array(h, "h"), as_real_array(y, "y")]
        dtype = compute_dtype(*arrays, *([M] if metric_sets_dtype else []))
        h2, y2, was_1d = check_pair(h, y, M.shape, dtype)   # M was validated by the caller
        if balanced:
            h2, y2 = check_balanced_masses(h2, y2, renormalize)
    tol = DEFAULT_TOL[dtype] if tol is None else float(tol)
    kernel = kernel_for(dtype)
    u0, v0 = _initial_scalings(init, tuple(h2.shape), dtype)
    controls = (max_iter, tol, check_every, method)
    if device == "cuda":
        if not from_device:
            from numba import cuda
            from .cuda.results import to_host
            result = to_host(_cuda_solve(balanced, cuda.to_device(h2), cuda.to_device(y2),
                                         kernel, gammas, controls, u0, v0))
        else:
            result = _cuda_solve(balanced, h2, y2, kernel, gammas, controls, u0, v0)
    else:
        result = _cpu_solve(balanced, h2, y2, kernel, gammas, controls, u0, v0)
    converged = result.converged
    if hasattr(converged, "copy_to_host"):
        converged = converged.copy_to_host()
    warn_if_not_converged(converged, tol, max_iter, what)
    return result.squeeze() if was_1d else result

