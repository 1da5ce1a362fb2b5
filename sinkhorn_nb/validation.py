"""Argument checks: one rule and one message per fact, at the public entries only.

Every public function checks its arguments here once; the layers below (the
drivers and kernels of :mod:`sinkhorn_nb.cpu` and :mod:`sinkhorn_nb.cuda`) trust
what they receive.  Measures are checked by one scan that also records what
the plan needs to route each row (masses, support sizes), so a call reads
``h`` and ``y`` once before solving.  The scan itself is a kernel of each
backend (:func:`sinkhorn_nb.cpu.scan.scan_measures`, its CUDA twin in
:mod:`sinkhorn_nb.cuda.scan`); both hand the same per-row summary to
:func:`measures_from_scan`, so host and device inputs fail with the same
messages.

Nothing here modifies its input: arrays are converted with
:func:`numpy.ascontiguousarray` (a copy only when dtype or layout must change),
and rescaled measures are new arrays.
"""
import numbers
import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from numba import njit

from .core import (ACCELERATIONS, BALANCED_MASS_RTOL, DEFAULT_TOL, LAM_M_LIMIT, METHODS, VARIANTS,
                   compute_dtype)
from .cpu.scan import all_finite as _all_finite
from .cpu.scan import scale_rows, scan_measures, scan_sparse_measures

# Bits of the per-row flags of a measure scan (host and device).
H_NOT_FINITE, Y_NOT_FINITE, H_NEGATIVE, Y_NEGATIVE = 1, 2, 4, 8
_FLAG_MESSAGES = ((H_NOT_FINITE, "h contains NaN or infinite values"),
                  (Y_NOT_FINITE, "y contains NaN or infinite values"),
                  (H_NEGATIVE, "h contains negative values"),
                  (Y_NEGATIVE, "y contains negative values"))


# ------------------------------------------------------------------ scalars
#: Largest integer control (``max_iter``, ``check_every``): the kernels count in int64.
INT64_MAX = int(np.iinfo(np.int64).max)


def _scalar(value):
    """A 0-d NumPy array as its element (a NumPy scalar); anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def _kind(value):
    """How a rejected scalar argument is described in a message."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return type(value).__name__


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_bool(value, name):
    """``value`` if it is a real boolean (``True``/``False``, NumPy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive_scalar(value, name):
    """``value`` as a float after checking that it is finite and > 0.

    Python and NumPy real scalars and 0-d real arrays are accepted (booleans are not).
    """
    value = _scalar(value)
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number (a scalar or a 0-d array), got "
                        f"{_kind(value)}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_lam(lam):
    """The regularization ``lam``: finite, > 0 and a normal float64 (its inverse,
    which scales the loss, must be finite)."""
    lam = check_positive_scalar(lam, "lam")
    if lam < np.finfo(np.float64).tiny:
        raise ValueError(f"lam must be finite and > 0 with a finite 1 / lam, got {lam} "
                         "(subnormal)")
    return lam


#: ``lam * max(M)`` outside this range gets a warning: below, the entropic term
#: swamps the metric (the kernel ``exp(-lam M - 1)`` varies by under 10 %); above,
#: far beyond ``lam`` 1-1000 on a metric scaled to ``max M < 1``, the solvers need
#: many more iterations, most often because ``M`` was not scaled.
LAM_M_USEFUL = (0.1, 2000.0)


def caller_stacklevel(also=()):
    """``stacklevel`` for :func:`warnings.warn` that points at the first frame
    outside this package (and outside the modules whose names start with one of
    ``also``, e.g. ``"sklearn."`` for scikit-learn's wrappers)."""
    import sys
    skip = (__name__.rsplit(".", 1)[0] + ".",) + tuple(also)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


def check_lam_times_metric(lam, max_m):
    """Reject ``lam * max(M)`` beyond :data:`~sinkhorn_nb.core.LAM_M_LIMIT`; warn
    outside :data:`LAM_M_USEFUL`."""
    product = lam * max_m
    if not product <= LAM_M_LIMIT:
        raise ValueError(
            f"lam * max(M) = {product:.3g} is above {LAM_M_LIMIT:g}: float64 cannot resolve "
            "exp(-lam * M) at this scale, so no solver can return an accurate loss; use "
            "exact_wasserstein for the unregularized value, or a smaller lam")
    low, high = LAM_M_USEFUL
    if product > high:
        warnings.warn(
            f"lam * max(M) = {product:.3g} (lam={lam:g}, max(M)={max_m:.3g}) is far above the "
            f"useful range (about 1 to {high:g}; lam 1-1000 with max(M) < 1): the solvers need "
            "many more iterations, and the loss is close to the unregularized distance. If "
            "M is not scaled, build it with sinkhorn_nb.ground_metric (ordinal, from_points, "
            "from_embeddings: max(M) < 1) or divide it by M.max(); otherwise pick a smaller "
            "lam (exact_wasserstein gives the unregularized value)",
            UserWarning, stacklevel=caller_stacklevel(("sklearn.",)))
    elif 0 < product < low:
        warnings.warn(
            f"lam * max(M) = {product:.3g} (lam={lam:g}, max(M)={max_m:.3g}) is far below the "
            f"useful range (about 1 to {high:g}): the entropic term swamps the metric, so "
            "the loss hardly depends on it; pick a larger lam (10-100 for a metric scaled "
            "to max(M) < 1 by sinkhorn_nb.ground_metric)",
            UserWarning, stacklevel=caller_stacklevel(("sklearn.",)))


def check_integer(value, name, low, high=INT64_MAX):
    """``value`` as an int after checking that it is an integer in ``[low, high]``
    (by default at most :data:`INT64_MAX`, what the kernels count in).

    Python and NumPy integers and 0-d integer arrays are accepted (booleans are not).
    """
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_kind(value)}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} must be at most {high}" + (" (2**63 - 1: the solvers count "
                         "iterations in int64)" if high == INT64_MAX else "")
                         + f", got {value}; pass a smaller {name}")
    return value


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


@dataclass(frozen=True)
class Controls:
    """Validated solver controls (see :func:`sinkhorn_nb.sinkhorn`).

    ``tol`` is None for the default of the compute dtype (:meth:`tol_for`).
    """
    max_iter: int
    tol: float
    check_every: int
    method: str
    acceleration: str = "auto"

    def tol_for(self, dtype):
        return DEFAULT_TOL[np.dtype(dtype)] if self.tol is None else self.tol


def check_controls(max_iter, tol, check_every, method, acceleration="auto"):
    """Validate the convergence controls shared by both variants."""
    max_iter = check_integer(max_iter, "max_iter", 1)
    check_every = check_integer(check_every, "check_every", 1)
    if tol is not None:
        tol = _scalar(tol)
        if not _is_real(tol):
            raise TypeError(f"tol must be a real number (a scalar or a 0-d array) or None, "
                            f"got {_kind(tol)}")
        tol = float(tol)
        if not np.isfinite(tol) or tol < 0:
            raise ValueError(f"tol must be finite and >= 0, got {tol}")
    return Controls(max_iter, tol, check_every, check_choice(method, "method", METHODS),
                    check_choice(acceleration, "acceleration", ACCELERATIONS))


def check_variant(variant):
    return check_choice(variant, "variant", VARIANTS)


def check_relaxed_penalties(lam, gamma_a, gamma_b, dtype=np.float64):
    """Reject ``gamma * lam`` beyond :data:`~sinkhorn_nb.core.RELAXED_GAMMA_LAM_LIMIT`
    of the compute ``dtype`` (float64, the larger limit, by default)."""
    from .core import RELAXED_GAMMA_LAM_LIMIT
    dtype = np.dtype(dtype)
    limit = RELAXED_GAMMA_LAM_LIMIT[dtype]
    for name, gamma in (("gamma_a", gamma_a), ("gamma_b", gamma_b)):
        if not gamma * lam <= limit:
            raise ValueError(
                f"{name} * lam = {gamma * lam:.10g} is above {limit:.0e}, the largest for which "
                f"the relaxed loss and its gradient are accurate in {dtype.name}: the scaling "
                "iteration cannot resolve marginal penalties this strong.  For (nearly) "
                "hard marginal constraints use the balanced sinkhorn (the limit of large "
                f"gammas; renormalize=True rescales rows to unit mass), or a smaller {name}")


def check_gammas(variant, gamma_a, gamma_b, lam):
    """The marginal penalties ``(gamma_a, gamma_b)`` of ``variant``.

    ``(None, None)`` for the balanced variant, which has none: passing either
    raises.  For the relaxed variant None means 1.0; each must be finite and > 0,
    with ``gamma * lam`` within the float64 limit (:func:`check_relaxed_penalties`;
    the float32 limit is checked per call, once the compute dtype is known).
    """
    if variant == "balanced":
        given = [name for name, gamma in (("gamma_a", gamma_a), ("gamma_b", gamma_b))
                 if gamma is not None]
        if given:
            names = " and ".join(given)
            raise ValueError(f"{names} {'applies' if len(given) == 1 else 'apply'} only to "
                             "variant='relaxed' (the balanced variant has no marginal "
                             f"penalties): leave {names} unset, or pass variant='relaxed'")
        return None, None
    gamma_a = 1.0 if gamma_a is None else check_positive_scalar(gamma_a, "gamma_a")
    gamma_b = 1.0 if gamma_b is None else check_positive_scalar(gamma_b, "gamma_b")
    check_relaxed_penalties(lam, gamma_a, gamma_b)
    return gamma_a, gamma_b


def check_renormalize(variant, renormalize):
    """``renormalize`` as a bool; True only with the balanced variant."""
    renormalize = check_bool(renormalize, "renormalize")
    if renormalize and variant != "balanced":
        raise ValueError("renormalize=True applies only to variant='balanced': the relaxed "
                         "variant takes measures of any mass as they are; rescale h and y "
                         "yourself, or pass variant='balanced'")
    return renormalize


# ------------------------------------------------------------------- arrays
def is_device_array(x):
    """CUDA array interface objects (CuPy, ...) and Numba device arrays (also the
    simulator's, which have ``copy_to_host`` but no interface)."""
    return not isinstance(x, np.ndarray) and (hasattr(x, "__cuda_array_interface__")
                                              or hasattr(x, "copy_to_host"))


def as_real_array(x, name):
    """``x`` as a NumPy array of a real numeric dtype.

    Raises
    ------
    TypeError
        If ``x`` is a device array, or not numeric (strings, objects, complex).
    """
    if is_device_array(x):
        raise TypeError(f"{name} is a device array; pass device='cuda' to keep it on the "
                        "GPU or copy it to the host first")
    if _is_sparse(x):       # (targets take sparse input through as_target_array)
        raise TypeError(f"{name} is a SciPy sparse {type(x).__name__}; pass a dense array "
                        f"({name}.toarray())")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _is_sparse(x):
    """A SciPy sparse array or matrix (SciPy is imported only when one is passed)."""
    if not type(x).__module__.startswith("scipy.sparse"):
        return False
    import scipy.sparse
    return scipy.sparse.issparse(x)


def as_target_array(x, name):
    """``x`` as a NumPy array of a real dtype (:func:`as_real_array`), densifying
    SciPy sparse arrays and matrices of any format (CSR, CSC, COO, ...).

    For arguments that the solvers read dense (the predictions ``h``); targets
    go through :func:`as_targets`, which keeps them sparse.
    """
    if _is_sparse(x):
        return _canonical_csr(x, name).toarray()
    return as_real_array(x, name)


def _canonical_csr(x, name):
    """A SciPy sparse ``x`` as a new CSR of the same dtype with sorted indices,
    duplicates summed and stored zeros dropped, its values checked like a dense
    array's (same messages)."""
    csr = x.tocsr(copy=True)
    csr.sum_duplicates()                # (also sorts the indices of every row)
    check_finite_nonnegative(as_real_array(csr.data, name), name)
    csr.eliminate_zeros()
    return csr


def as_targets(x, name):
    """Targets as the measure checks take them: a 2-D SciPy sparse ``x`` of any
    format (CSR, CSC, COO, ...) as a canonical CSR copy (sorted indices,
    duplicates summed, no stored zeros; its values checked like a dense array's,
    with the same messages), anything else as :func:`as_target_array` gives it.

    The CSR is never densified here: :func:`check_measures` scans it as it is
    and hands it to the solvers as :class:`SparseTargets`.
    """
    if _is_sparse(x) and len(x.shape) == 2:
        return _canonical_csr(x, name)
    return as_target_array(x, name)


@dataclass(frozen=True)
class SparseTargets:
    """Validated targets in CSR form, in the compute dtype.

    Row ``r`` holds ``data[p]`` at label ``indices[p]`` for ``indptr[r] <= p <
    indptr[r + 1]``: labels ascending within a row, no duplicates and no stored
    zeros, so the entries of a row are exactly its support.

    Attributes
    ----------
    indptr : ndarray of int64 (n + 1,)
    indices : ndarray of int64 (nnz,)
    data : ndarray (nnz,)
        Positive, finite, in the compute dtype.
    shape : tuple of int
        ``(n, K)``.
    """
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple

    @property
    def dtype(self):
        return self.data.dtype

    def toarray(self):
        """The dense ``(n, K)`` array (a new one)."""
        out = np.zeros(self.shape, self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def scaled(self, factor):
        """The targets with row ``r`` multiplied by ``factor[r]`` (entry by entry
        as :func:`~sinkhorn_nb.cpu.scan.scale_rows` scales a dense row; entries
        that underflow to 0 are dropped)."""
        data = np.empty_like(self.data)
        np.multiply(self.data, np.repeat(factor, np.diff(self.indptr)), out=data,
                    casting="unsafe")
        return replace(self, data=data).without_zeros()

    def without_zeros(self):
        """The targets without stored zeros (``self`` when there are none): values
        that underflowed in a conversion or rescaling are off the support, as
        they are in a dense array."""
        if self.data.all():
            return self
        keep = self.data != 0
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        indptr = np.zeros(self.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=self.shape[0]), out=indptr[1:])
        return replace(self, indptr=indptr, indices=self.indices[keep], data=self.data[keep])


def as_float_array(arr, dtype, name):
    """``arr`` as a C-contiguous array of ``dtype`` (float32 or float64); a copy
    only when dtype or layout differ.

    Every real dtype converts (booleans, integers, float16, longdouble), so
    compiled code only ever reads float32 and float64.  Values of a wider dtype
    (longdouble) beyond the range of ``dtype`` raise ``ValueError`` instead of
    becoming infinite.
    """
    arr = np.asarray(arr)
    dtype = np.dtype(dtype)
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= dtype.itemsize:
        return np.ascontiguousarray(arr, dtype=dtype)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(out).all() and (np.isfinite(arr) & ~np.isfinite(out)).any():
        raise ValueError(f"{name} has values beyond the {dtype.name} range (the solvers "
                         f"compute in float32 or float64); rescale {name}")
    return out


def check_finite_nonnegative(arr, name):
    """Raise ``ValueError`` if ``arr`` has NaN, inf or negative entries (one pass).

    Any real dtype: arrays other than float32 and float64 are read through a
    float64 copy (:func:`as_float_array`)."""
    flat = np.asarray(arr).reshape(-1)
    if flat.dtype not in (np.float32, np.float64):
        flat = as_float_array(flat, np.float64, name)
    flat = np.ascontiguousarray(flat)
    total, negative = _row_summary(flat)
    if not np.isfinite(total) and not _all_finite(flat):
        raise ValueError(f"{name} contains NaN or infinite values")
    if negative:
        raise ValueError(f"{name} contains negative values")


def check_sample_weight(sample_weight, n, name="sample_weight", positive_sum=False):
    """Weights as float64 of shape (n,): finite, non-negative, and with
    ``positive_sum`` not all zero; ones when ``sample_weight`` is None."""
    if sample_weight is None:
        return np.ones(n)
    w = as_float_array(as_real_array(sample_weight, name), np.float64, name)
    if np.may_share_memory(w, sample_weight):
        w = w.copy()
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {w.shape}")
    check_finite_nonnegative(w, name)
    if positive_sum and not w.sum() > 0:
        raise ValueError(f"{name} must not be all zero")
    return w


def check_ground_metric(M, name="M", copy=False):
    """A ground metric as a C-contiguous float64 array: square, finite, non-negative,
    at least one label.

    Any real dtype is accepted (booleans, integers, float16 to longdouble) and
    converted to float64 before anything compiled reads it.  Copies only when
    dtype or layout differ, or always with ``copy=True`` (the result then never
    shares memory with ``M``).
    """
    source = as_real_array(M, name)
    if source.ndim != 2 or source.shape[0] != source.shape[1]:
        raise ValueError(f"{name} must be a square 2-D array, got shape {source.shape}")
    if source.shape[0] == 0:
        raise ValueError(f"{name} must have at least one label, got shape {source.shape}")
    M = as_float_array(source, np.float64, name)
    if copy and np.may_share_memory(M, source):
        M = M.copy()
    check_finite_nonnegative(M, name)
    if np.diagonal(M).any():
        warnings.warn(
            f"{name} has non-zero diagonal entries (largest {np.diagonal(M).max():.3g}): a "
            "ground metric costs nothing to keep mass on its label, M[i, i] = 0, so the loss "
            "would penalize even a perfect prediction; build the metric with "
            "sinkhorn_nb.ground_metric (ordinal, zero_one, from_points, from_embeddings)",
            UserWarning, stacklevel=3)
    return M


def check_shapes(h_shape, y_shape, n_labels):
    """Shape rules for ``h`` and ``y``; returns True for a single (1-D) problem."""
    h_shape, y_shape = tuple(h_shape), tuple(y_shape)
    for name, shape in (("h", h_shape), ("y", y_shape)):
        if len(shape) not in (1, 2):
            raise ValueError(f"{name} must be 1-D (K,) or 2-D (n, K), got {len(shape)} "
                             "dimensions")
    if h_shape != y_shape:
        hint = ""
        if len(h_shape) == 2 and y_shape == h_shape[:1]:
            hint = ("; y looks like class labels: pass target measures of shape (n, K), for "
                    "instance one-hot rows np.eye(K)[labels], or train a "
                    "WassersteinClassifier on the labels")
        raise ValueError(f"h and y must have the same shape, got {h_shape} and {y_shape}"
                         + hint)
    if len(h_shape) == 2 and h_shape[0] == 0:
        raise ValueError("h and y are an empty batch (0 rows)")
    if h_shape[-1] != n_labels:
        raise ValueError(f"M has shape {(n_labels, n_labels)} but h and y have "
                         f"K={h_shape[-1]} labels")
    return len(h_shape) == 1


@dataclass(frozen=True)
class Measures:
    """A validated batch ``(h, y)``, trusted by the drivers.

    Attributes
    ----------
    h : array of shape (n, K)
        C-contiguous, in the compute dtype; a NumPy array, or a device array for
        the CUDA backend.
    targets : array of shape (n, K) or SparseTargets
        The targets ``y`` as validated: like ``h``, or, for SciPy sparse input
        on the host, :class:`SparseTargets` (never densified by validation).
        For the balanced variant the rows of ``h`` and ``y`` have equal masses
        (rescaled copies where the caller's differed by rounding, or with
        ``renormalize``).
    mass_h, mass_y : ndarray of shape (n,), float64
        Row masses (after any rescaling).
    support : ndarray of shape (n,), int64
        Number of non-zeros of each row of ``y``.
    last_nonzero : ndarray of shape (n,), int64
        Index of the last non-zero of each row of ``y`` (-1 for an empty row):
        the label of a one-hot target.
    was_1d : bool
        The caller passed vectors; results are squeezed back.
    """
    h: object
    targets: object
    mass_h: np.ndarray
    mass_y: np.ndarray
    support: np.ndarray
    last_nonzero: np.ndarray
    was_1d: bool

    @classmethod
    def of_softmax(cls, H, y, mass_y, support, last_nonzero):
        """Measures of softmax predictions ``H`` (rows of unit mass, computed by the
        caller) against targets ``y`` summarized once by :func:`summarize_targets`;
        trusted, not checked."""
        return cls(H, y, np.ones(H.shape[0]), mass_y, support, last_nonzero, False)

    @property
    def dtype(self):
        return np.dtype(self.h.dtype)

    @property
    def shape(self):
        return tuple(self.h.shape)

    @property
    def sparse(self):
        """The targets are :class:`SparseTargets`."""
        return isinstance(self.targets, SparseTargets)

    @cached_property
    def y(self):
        """The targets as an ``(n, K)`` array: ``targets`` itself, or sparse targets
        densified on first use (once; for the paths that read every entry)."""
        return self.targets.toarray() if self.sparse else self.targets

    @cached_property
    def kernel_targets(self):
        """The targets as the support-path kernels take them, ``(y, y_indptr,
        y_indices, y_data)``: dense ``y`` with empty triplets, or, for sparse
        targets, an ``(0, K)`` ``y`` with the CSR triplets (the kernels read
        the triplets when ``y`` has no rows)."""
        if self.sparse:
            t = self.targets
            return np.empty((0, t.shape[1]), t.dtype), t.indptr, t.indices, t.data
        return (self.targets, np.zeros(1, np.int64), np.zeros(0, np.int64),
                np.zeros(0, self.dtype))


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _row_summary(x):
    """Sum and number of negative entries of a 1-D array (vectorized)."""
    total = 0.0
    negative = 0
    for j in range(x.size):
        value = x[j]
        total += value
        negative += value < 0
    return total, negative


@njit(cache=True, error_model="numpy")
def _scan_facts(flags, mass_h, mass_y):
    """What :func:`measures_from_scan` checks, in one pass over the per-row
    summary: the OR of the flags, the first row whose mass of ``h`` (``y``) is not
    finite, the first whose mass is not positive (-1 when none), and the largest
    relative mass gap ``|m_h - m_y| / max(m_h, m_y)`` over the rows where both
    masses are positive and finite, with its row."""
    any_flag = 0
    bad_h = bad_y = empty_h = empty_y = gap_row = -1
    gap = 0.0
    for r in range(flags.size):
        any_flag |= flags[r]
        finite_h, finite_y = np.isfinite(mass_h[r]), np.isfinite(mass_y[r])
        if not finite_h and bad_h < 0:
            bad_h = r
        if not finite_y and bad_y < 0:
            bad_y = r
        if not mass_h[r] > 0 and empty_h < 0:
            empty_h = r
        if not mass_y[r] > 0 and empty_y < 0:
            empty_y = r
        if finite_h and finite_y and mass_h[r] > 0 and mass_y[r] > 0:
            row_gap = abs(mass_h[r] - mass_y[r]) / max(mass_h[r], mass_y[r])
            if row_gap > gap:
                gap, gap_row = row_gap, r
    return any_flag, bad_h, bad_y, empty_h, empty_y, gap, gap_row


def measures_from_scan(h, y, mass_h, mass_y, support, last_nonzero, flags, balanced,
                       renormalize, tol, was_1d, mass_rtol=None):
    """Raise for what a scan found, then return the :class:`Measures` and the
    factors ``(factor_h, factor_y)`` by which the caller rescales the rows of ``h``
    and ``y`` into new arrays (each None when that side keeps its rows; the
    masses of the returned measures are those after rescaling).

    Shared by the host and device checks.  For the balanced variant masses must
    be positive and equal to a relative :data:`~sinkhorn_nb.core.BALANCED_MASS_RTOL`
    (or ``mass_rtol``, for inputs coarser than the compute dtype);
    with ``renormalize`` both rows are rescaled to unit mass instead, and a gap
    within the tolerance but above
    ``tol / 100`` (where it would put a floor under the stopping test) is closed
    by rescaling ``y`` to the mass of ``h``.
    """
    any_flag, bad_h, bad_y, empty_h, empty_y, gap, gap_row = _scan_facts(flags, mass_h, mass_y)
    factor_h = factor_y = None
    if any_flag:
        for bit, message in _FLAG_MESSAGES:
            if any_flag & bit:
                raise ValueError(message)
    for name, row in (("h", bad_h), ("y", bad_y)):
        if row >= 0:
            raise ValueError(f"{name} row {row} has a total mass that overflows float64")
    if balanced:
        for name, row in (("h", empty_h), ("y", empty_y)):
            if row >= 0:
                raise ValueError(f"{name} row {row} has zero total mass; the balanced "
                                 "variant needs positive masses")
        if renormalize:
            with np.errstate(divide="ignore", over="ignore"):
                factors = 1.0 / mass_h, 1.0 / mass_y
            for name, mass, factor in (("h", mass_h, factors[0]), ("y", mass_y, factors[1])):
                if not np.isfinite(factor).all():
                    row = int(np.argmin(np.isfinite(factor)))
                    raise ValueError(f"{name} row {row} has total mass {mass[row]:.3g}, too small "
                                     "to renormalize (1 / mass overflows float64)")
            factor_h, factor_y = factors
            mass_h = mass_y = np.ones_like(mass_h)
        else:
            rtol = BALANCED_MASS_RTOL[np.dtype(h.dtype)] if mass_rtol is None else mass_rtol
            if gap > rtol:
                raise ValueError(
                    f"h and y must have equal total mass in the balanced variant: row "
                    f"{gap_row} has sum(h)={mass_h[gap_row]:.6g}, sum(y)={mass_y[gap_row]:.6g} "
                    f"(relative gap {gap:.2g} > {rtol:g}); pass renormalize=True to rescale "
                    "both to 1, or use sinkhorn_relaxed for unnormalized measures")
            if tol > 0 and gap > 0.01 * tol:
                factor_y = mass_h / mass_y
                mass_y = mass_h
    return (Measures(h, y, mass_h, mass_y, support, last_nonzero, was_1d),
            (factor_h, factor_y))


def _rescaled(x, factor):
    if factor is None:
        return x
    if isinstance(x, SparseTargets):
        return x.scaled(factor)
    out = np.empty_like(x)
    scale_rows(x, factor, out)
    return out


def check_measures(h, y, n_labels, balanced, renormalize, controls=None):
    """Validate host measures into :class:`Measures` (one scan of ``h`` and ``y``).

    ``h`` and ``y`` may be SciPy sparse arrays or matrices: a sparse ``h`` is
    densified (:func:`as_target_array`); a 2-D sparse ``y`` is checked and kept
    in CSR form (:func:`as_targets`, :class:`SparseTargets`), scanned by
    :func:`~sinkhorn_nb.cpu.scan.scan_sparse_measures` without densifying it.
    The compute dtype is :func:`~sinkhorn_nb.core.compute_dtype` of ``h`` and
    ``y``; the tolerance of ``controls`` in that dtype (0 without controls)
    decides whether rounding-level mass gaps are closed (see
    :func:`measures_from_scan`).
    """
    h = as_target_array(h, "h")
    y = as_targets(y, "y")
    was_1d = check_shapes(h.shape, y.shape, n_labels)
    dtype = compute_dtype(h.dtype, y.dtype)
    # masses normalized in a coarser dtype (float16) agree only to its rounding
    coarsest = max((np.finfo(x.dtype).eps for x in (h, y) if x.dtype.kind == "f"),
                   default=0.0)
    mass_rtol = max(BALANCED_MASS_RTOL[dtype], 4 * float(coarsest))
    h = as_float_array(h.reshape(-1, n_labels), dtype, "h")
    n = h.shape[0]
    mass_h, mass_y = np.empty(n), np.empty(n)
    support, last_nonzero, flags = (np.empty(n, np.int64) for _ in range(3))
    if isinstance(y, np.ndarray):
        y = as_float_array(y.reshape(-1, n_labels), dtype, "y")
        scan_measures(h, y, mass_h, mass_y, support, last_nonzero, flags)
    else:
        y = SparseTargets(np.ascontiguousarray(y.indptr, np.int64),
                          np.ascontiguousarray(y.indices, np.int64),
                          as_float_array(y.data, dtype, "y"), y.shape).without_zeros()
        scan_sparse_measures(h, y.indptr, y.indices, y.data, mass_h, mass_y, support,
                             last_nonzero, flags)
    measures, (factor_h, factor_y) = measures_from_scan(
        h, y, mass_h, mass_y, support, last_nonzero, flags, balanced, renormalize,
        0.0 if controls is None else controls.tol_for(dtype), was_1d, mass_rtol)
    return replace(measures, h=_rescaled(h, factor_h), targets=_rescaled(y, factor_y))


def summarize_targets(T):
    """Row masses, support sizes and last non-zeros of finite, non-negative float64
    targets ``T`` (n, K), by the scan that validates the solvers' measures."""
    n = T.shape[0]
    mass, other_mass = np.empty(n), np.empty(n)
    support, last_nonzero, flags = (np.empty(n, np.int64) for _ in range(3))
    scan_measures(T, T, other_mass, mass, support, last_nonzero, flags)
    return mass, support, last_nonzero


def check_init(init, measures):
    """Warm-start scalings ``init = (u, v)``, each shaped like ``h`` as the caller
    passed it (so a result's own ``u`` and ``v`` fit), finite and non-negative.
    Returns host arrays of shape (n, K) in the compute dtype, or None."""
    if init is None:
        return None
    if not isinstance(init, (tuple, list)) or len(init) != 2:
        raise ValueError("init must be a pair (u, v) of arrays shaped like h, got "
                         f"{type(init).__name__}"
                         + (f" of length {len(init)}" if isinstance(init, (tuple, list)) else ""))
    n, K = measures.shape
    expected = (K,) if measures.was_1d else (n, K)
    arrays = []
    for name, x in zip(("u", "v"), init):
        if is_device_array(x):
            x = x.copy_to_host() if hasattr(x, "copy_to_host") else np.asarray(x.get())
        x = as_real_array(x, f"init {name}")
        if x.shape != expected:
            raise ValueError(f"init {name} must have the shape of h {expected}, got {x.shape}")
        check_finite_nonnegative(x, f"init {name}")
        arrays.append(as_float_array(x.reshape(n, K), measures.dtype, f"init {name}"))
    return tuple(arrays)
