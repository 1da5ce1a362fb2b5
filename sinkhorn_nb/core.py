"""Settings, status codes and small formulas shared by the CPU and CUDA backends.

Everything here is plain Python and NumPy: both :mod:`sinkhorn_nb.cpu` and
:mod:`sinkhorn_nb.cuda` import it, and neither backend imports the other.
Which path each row takes is decided in :mod:`sinkhorn_nb.routing` alone.
Numba freezes module globals into compiled code, so kernels receive these
values as arguments instead of reading them.
"""
import numpy as np

#: Per-row status codes written by every solver kernel.
CONVERGED, MAX_ITER, FAILED = 0, 1, 2

VARIANTS = ("balanced", "relaxed")
METHODS = ("auto", "multiplicative", "log")
ACCELERATIONS = ("auto", "overrelax", "none")

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

#: Default per-row tolerance on the relative marginal error, per compute dtype.
DEFAULT_TOL = {F64: 1e-9, F32: 1e-5}

#: Largest ``lam * max(M)`` accepted at all.  The plan's entries are
#: ``exp(log u_i + log v_j - lam M_ij - 1)``; float64 resolves ``lam M_ij`` only
#: to ``2.2e-16 * lam * max(M)``, so beyond ``1e8`` the exponents (hence the
#: plan, the loss and the stopping test) lose precision that no iteration can
#: recover.  Use :func:`sinkhorn_nb.exact_wasserstein` for the unregularized value.
LAM_M_LIMIT = 1e8

#: Batches with fewer entries ``n * K`` run the CPU's single-pass kernels (closed
#: forms, outputs) on one thread: a pass over a million entries takes about a
#: millisecond, while waking an idle thread pool can cost several (OpenMP on a
#: virtual machine).  The iterative paths have their own threshold, in rows
#: (:data:`sinkhorn_nb.threads.ITERATION_PARALLEL_MIN_ROWS`).
PARALLEL_MIN_ENTRIES = 2 ** 21

#: Rows of at least this many labels take ``log h`` inside the CPU's fused
#: closed-form pass (a vectorized loop per row); shorter rows leave too little for
#: the vector loop, and take it from one NumPy pass over the batch instead.
FUSED_LOG_MIN_LABELS = 64

#: Relative tolerance on ``|sum(h) - sum(y)| / max(sum(h), sum(y))`` accepted by
#: the balanced variant (rounding of the caller's normalization).
BALANCED_MASS_RTOL = {F64: 1e-6, F32: 1e-4}


def compute_dtype(*dtypes):
    """The dtype the solvers compute in, from the dtypes of ``h`` and ``y``.

    float32 when every one is float32 or float16; float64 otherwise: booleans,
    integers of any width (``np.result_type`` would give float32 for 8- and
    16-bit ones), float64, longdouble (computed in float64) and mixed pairs such
    as float32 with float64 or with an integer.  The ground metric never decides
    it: it is cast to the compute dtype.
    """
    single = (np.dtype(np.float16), F32)
    return F32 if all(np.dtype(d) in single for d in dtypes) else F64


_GAUGE_LIMITS = {np.dtype(t): 0.9 * float(np.log(np.finfo(t).max))
                 for t in (np.float32, np.float64)}


def gauge_limit(dtype):
    """Largest log-scaling reported before the balanced gauge ``(c u, v / c)`` is
    shifted to balance the two (0.9 of the log of the dtype's largest number)."""
    return _GAUGE_LIMITS[np.dtype(dtype)]


#: Largest ``gamma * lam`` (each of ``gamma_a``, ``gamma_b``) accepted by the
#: relaxed variant, per compute dtype.  The common factor of the scalings
#: (``(c u, v / c)`` leaves the plan unchanged) converges at the rate
#: ``a b = 1 - O(1 / (gamma lam))`` per iteration, so past this scale the
#: stopping test, at the default tolerance, stops before it has settled and the
#: gradient is off by a constant; the loss is then still accurate, but
#: ``gamma`` times the rounding of the marginals soon dominates it too.
#: Measured against a high-precision dual reference at the default controls: at
#: or below the limit, rows reported converged have a loss within 1e-9 (float64)
#: / 1e-5 (float32) relative and a gradient within 1e-2 of its largest entry
#: (in general about ``gamma * tol``).
RELAXED_GAMMA_LAM_LIMIT = {F64: 1e7, F32: 1e4}

#: Over-relaxation of the scaling iterations (:mod:`sinkhorn_nb.cpu.acceleration`
#: and its CUDA twin).  Each row keeps ``OMEGA_STATE`` numbers: its factor
#: ``omega``, its error at the previous check, a reference error, the iterations
#: since that reference was set and two ceilings on ``omega``.  ``omega`` starts at
#: 1 and is raised towards the optimum ``2 / (1 + sqrt(1 - eta))`` for the
#: contraction rate ``eta`` of the plain iteration, estimated at most
#: ``OMEGA_ETA_MAX`` (so ``omega <= 1.998``).  A row whose error grows past
#: ``OMEGA_GROWTH`` times the reference (or is not finite) returns to its last
#: check; one whose error has not halved from the reference in
#: ``OMEGA_STALL_ITERATIONS`` iterations is crawling and carries on from where it
#: is; both halve ``omega - 1`` and lower a ceiling.
OMEGA_STATE = 6
OMEGA_ETA_MAX = 0.999999
OMEGA_GROWTH = 10.0
OMEGA_STALL_ITERATIONS = 500
