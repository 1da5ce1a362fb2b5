"""Device-array inputs: recognition, validation on the GPU, host/device movement."""
import numpy as np
from numba import cuda

from ..validation import BALANCED_MASS_RTOL
from .paths import Launcher


def as_device_pair(h, y):
    """View two device arrays as 2-D Numba device arrays of one float dtype."""
    h, y = _as_numba(h), _as_numba(y)
    for name, arr in (("h", h), ("y", y)):
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} on the device must be float32 or float64, got {arr.dtype}")
        if arr.ndim not in (1, 2):
            raise ValueError(f"{name} must be 1-D (K,) or 2-D (n, K), got {arr.ndim} dimensions")
        if hasattr(arr, "is_c_contiguous") and not arr.is_c_contiguous():
            raise ValueError(f"{name} on the device must be C-contiguous")
    if h.shape != y.shape:
        raise ValueError(f"h and y must have the same shape, got {h.shape} and {y.shape}")
    if h.dtype != y.dtype:
        raise TypeError(f"h and y on the device must share a dtype, got {h.dtype} and {y.dtype}")
    was_1d = h.ndim == 1
    if was_1d:
        h = h.reshape(1, h.shape[0])
        y = y.reshape(1, y.shape[0])
    if h.shape[0] == 0:
        raise ValueError("h and y are an empty batch (0 rows)")
    return h, y, was_1d


def _as_numba(x):
    """A Numba device array view of ``x`` (no copy)."""
    if hasattr(x, "copy_to_host"):          # already a Numba (or simulator) array
        return x
    return cuda.as_cuda_array(x)


def check_device_measures(h, y, balanced, renormalize, launch):
    """Validate device measures on the GPU; return ``(h, y)`` ready to solve.

    Raises the same errors as :func:`sinkhorn_nb.validation.check_measures`.  For
    the balanced variant ``y`` (and with ``renormalize`` also ``h``) is rescaled
    into a new device array, never in place.
    """
    n, K = h.shape
    go = Launcher(n, K, h.dtype, launch)
    flags = cuda.device_array(n, np.int64)
    mass_h = cuda.device_array(n, np.float64)
    mass_y = cuda.device_array(n, np.float64)
    go("check_rows", "rows", h, y, flags, mass_h, mass_y)
    flags = flags.copy_to_host()
    for bit, message in ((1, "h contains NaN or infinite values"),
                         (2, "y contains NaN or infinite values"),
                         (4, "h contains negative values"), (8, "y contains negative values")):
        if np.any(flags & bit):
            raise ValueError(message)
    if not balanced:
        return h, y
    mh, my = mass_h.copy_to_host(), mass_y.copy_to_host()
    for name, mass in (("h", mh), ("y", my)):
        if np.any(mass <= 0):
            raise ValueError(f"{name} row {int(np.argmax(mass <= 0))} has zero total mass; "
                             "the balanced variant needs positive masses")
    if renormalize:
        h = _scaled(go, h, 1.0 / mh)
        return h, _scaled(go, y, 1.0 / my)
    gap = np.abs(mh - my) / np.maximum(mh, my)
    rtol = BALANCED_MASS_RTOL[np.dtype(h.dtype)]
    if np.any(gap > rtol):
        row = int(np.argmax(gap))
        raise ValueError(
            f"h and y must have equal total mass in the balanced variant: row {row} has "
            f"sum(h)={mh[row]:.6g}, sum(y)={my[row]:.6g}; pass renormalize=True or use "
            "sinkhorn_relaxed")
    return h, _scaled(go, y, mh / my) if np.any(mh != my) else y


def _scaled(go, x, factor):
    out = cuda.device_array(x.shape, x.dtype)
    go("scale_rows", "flat", x, cuda.to_device(np.asarray(factor, dtype=x.dtype)), out)
    return out
