"""Input checks shared by every public function.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the
argument and the problem.  Nothing here modifies its input: arrays are
converted with :func:`numpy.ascontiguousarray`, which copies only when the
dtype or layout must change, and the solvers never write into them.
"""
import numbers

import numpy as np

#: Relative tolerance on ``|sum(h) - sum(y)|`` accepted by the balanced variant.
BALANCED_MASS_RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}


def is_device_array(x):
    """CUDA array interface objects (CuPy, ...) and Numba device arrays (also the
    simulator's, which have ``copy_to_host`` but no interface)."""
    return not isinstance(x, np.ndarray) and (hasattr(x, "__cuda_array_interface__")
                                              or hasattr(x, "copy_to_host"))


def as_real_array(x, name):
    """Return ``x`` as a NumPy array of a real numeric dtype.

    Raises
    ------
    TypeError
        If ``x`` is not numeric (strings, objects, complex numbers).
    """
    if is_device_array(x):
        raise TypeError(
            f"{name} is a device array; pass device='cuda' to keep it on the GPU "
            "or copy it to the host first")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def compute_dtype(*arrays):
    """Floating dtype the solvers compute in.

    ``np.result_type`` of the inputs, raised to at least float32: three float32
    arrays compute in float32; any float64 or integer array makes it float64
    (NumPy's promotion of integers with float32); float16 computes in float32.
    """
    dtype = np.result_type(*[a.dtype for a in arrays], np.float32)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    return np.dtype(dtype)


def check_finite_nonnegative(arr, name):
    """Raise ``ValueError`` if ``arr`` has NaN, inf or negative entries."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} contains negative values")


def check_positive_scalar(value, name):
    """Return ``value`` as a float after checking it is finite and > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_iteration_args(max_iter, tol, check_every):
    """Validate the convergence controls shared by both variants."""
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, numbers.Integral):
        raise TypeError(f"max_iter must be an integer, got {type(max_iter).__name__}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if isinstance(check_every, (bool, np.bool_)) or not isinstance(check_every, numbers.Integral):
        raise TypeError(f"check_every must be an integer, got {type(check_every).__name__}")
    if check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    if tol is not None:
        if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
            raise TypeError(f"tol must be a real number, got {type(tol).__name__}")
        if not np.isfinite(tol) or tol < 0:
            raise ValueError(f"tol must be finite and >= 0, got {tol}")
    return int(max_iter), tol, int(check_every)


def check_ground_metric(M, name="M"):
    """Validate a ground metric: square, finite, non-negative, 2-D."""
    M = as_real_array(M, name)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be a square 2-D array, got shape {M.shape}")
    if M.shape[0] == 0:
        raise ValueError(f"{name} must have at least one label, got shape {M.shape}")
    check_finite_nonnegative(M, name)
    return M


def check_pair(h, y, metric_shape, dtype=None):
    """Validate predictions and targets against an already validated metric.

    Returns ``(h2, y2, was_1d)``: 2-D, C-contiguous, in ``dtype`` (default: the
    compute dtype of ``h`` and ``y``), copies only when needed.
    """
    h = as_real_array(h, "h")
    y = as_real_array(y, "y")
    if h.ndim not in (1, 2):
        raise ValueError(f"h must be 1-D (K,) or 2-D (n, K), got {h.ndim} dimensions")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D (K,) or 2-D (n, K), got {y.ndim} dimensions")
    if h.shape != y.shape:
        raise ValueError(f"h and y must have the same shape, got {h.shape} and {y.shape}")
    was_1d = h.ndim == 1
    if was_1d:
        h, y = h[None, :], y[None, :]
    if h.shape[0] == 0:
        raise ValueError("h and y are an empty batch (0 rows)")
    if h.shape[1] != metric_shape[0]:
        raise ValueError(
            f"M has shape {metric_shape} but h and y have K={h.shape[1]} labels")
    check_finite_nonnegative(h, "h")
    check_finite_nonnegative(y, "y")
    dtype = compute_dtype(h, y) if dtype is None else dtype
    return np.ascontiguousarray(h, dtype=dtype), np.ascontiguousarray(y, dtype=dtype), was_1d


def check_measures(h, y, M):
    """Validate a (prediction, target, ground metric) triple.

    Returns
    -------
    h2, y2 : ndarray of shape (n, K)
        C-contiguous in the compute dtype (copies only when needed).
    M2 : ndarray of shape (K, K)
        The ground metric in the compute dtype.
    was_1d : bool
        True when ``h`` and ``y`` were vectors.
    """
    M = check_ground_metric(M)
    dtype = compute_dtype(as_real_array(h, "h"), as_real_array(y, "y"), M)
    h2, y2, was_1d = check_pair(h, y, M.shape, dtype)
    return h2, y2, np.ascontiguousarray(M, dtype=dtype), was_1d


def check_balanced_masses(h, y, renormalize):
    """Check (or, on request, restore) equal row masses for the balanced variant.

    Masses may differ by a relative ``BALANCED_MASS_RTOL`` (rounding); ``y`` is then
    rescaled to the mass of ``h`` so the iteration can converge.  Returns the
    (possibly rescaled) ``h`` and ``y``; rescaling works on copies.
    """
    mass_h = h.sum(axis=1, dtype=np.float64)
    mass_y = y.sum(axis=1, dtype=np.float64)
    if np.any(mass_h <= 0):
        raise ValueError(f"h row {int(np.argmax(mass_h <= 0))} has zero total mass; "
                         "the balanced variant needs positive masses")
    if np.any(mass_y <= 0):
        raise ValueError(f"y row {int(np.argmax(mass_y <= 0))} has zero total mass; "
                         "the balanced variant needs positive masses")
    if renormalize:
        return ((h / mass_h[:, None]).astype(h.dtype, copy=False),
                (y / mass_y[:, None]).astype(y.dtype, copy=False))
    rtol = BALANCED_MASS_RTOL[h.dtype]
    gap = np.abs(mass_h - mass_y) / np.maximum(mass_h, mass_y)
    if np.any(gap > rtol):
        row = int(np.argmax(gap))
        raise ValueError(
            f"h and y must have equal total mass in the balanced variant: row {row} has "
            f"sum(h)={mass_h[row]:.6g}, sum(y)={mass_y[row]:.6g} (relative gap "
            f"{gap[row]:.2g} > {rtol:g}); pass renormalize=True to rescale both to 1, "
            "or use sinkhorn_relaxed for unnormalized measures")
    if np.any(mass_h != mass_y):
        # a gap within the tolerance (rounding) would put a floor under the marginal
        # error: match y's mass to h's on a copy, a change below rtol
        y = (y * (mass_h / mass_y)[:, None]).astype(y.dtype, copy=False)
    return h, y
