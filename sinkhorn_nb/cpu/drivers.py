"""CPU driver: route each row to its path and fill one preallocated result.

:func:`solve` receives validated measures (:class:`~sinkhorn_nb.validation.Measures`)
and a :class:`~sinkhorn_nb.gibbs.GibbsKernel`, and every kernel it calls writes
its rows of the caller's :class:`~sinkhorn_nb.SinkhornResult` in place:

1. closed forms: balanced rows whose target has one non-zero
   (:func:`~sinkhorn_nb.cpu.balanced.one_hot_rows`), relaxed rows with an empty
   ``h`` or ``y`` (:func:`~sinkhorn_nb.cpu.relaxed.empty_rows`);
2. the multiplicative path where ``lam * max(M)`` allows it: balanced rows whose
   target has at most ``NEWTON_MAX_SUPPORT`` non-zeros by Newton's method on the
   semi-dual (:func:`~sinkhorn_nb.cpu.balanced.newton_rows`, with ``method="auto"``
   and ``tol > 0``), other targets with at most
   ``SPARSE_FRACTION * K`` non-zeros (:func:`~sinkhorn_nb.core.sparse_rows`) on their support
   (:func:`~sinkhorn_nb.cpu.kernels.sparse_scaling_iterations`), the others by
   BLAS products over the batch (:func:`dense_iterations`);
3. the log-domain path for the rest, and for any row whose multiplicative solve
   over- or underflowed (:func:`~sinkhorn_nb.cpu.kernels.log_scaling_iterations`).

Thread safety: calls from several threads are safe.  Numba's ``workqueue``
threading layer (the fallback when neither OpenMP nor TBB is available) does not
allow concurrent parallel regions, so under it (and before the layer is known)
solves are serialized by a lock; under ``omp`` and ``tbb`` they run concurrently.
"""
import contextlib
import threading

import numba
import numpy as np

from ..core import (FAILED, FUSED_LOG_MIN_LABELS, NEWTON_MAX_SUPPORT, PARALLEL_MIN_ENTRIES,
                    gauge_limit, relaxed_exponents, sparse_rows, uses_newton)
from . import balanced, kernels, relaxed
from .logarithm import float_bits

_PARALLEL_LOCK = threading.Lock()


def parallel_section():
    """A lock when Numba's threading layer does not allow concurrent calls."""
    try:
        layer = numba.threading_layer()
    except ValueError:          # no parallel region has run in this process yet
        layer = None
    return _PARALLEL_LOCK if layer in (None, "workqueue") else contextlib.nullcontext()


@contextlib.contextmanager
def passes_on_one_thread(entries):
    """Run the enclosed single-pass kernels on one thread for batches of fewer than
    :data:`~sinkhorn_nb.core.PARALLEL_MIN_ENTRIES` entries (Numba's thread count
    is per calling thread, so other threads are unaffected)."""
    if entries >= PARALLEL_MIN_ENTRIES:
        yield
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def solve(measures, kernel, gammas, controls, tol, init, result, scalings=True):
    """Solve every row of ``measures`` into ``result``; return the status codes.

    Parameters
    ----------
    measures : Measures
        Validated host measures.
    kernel : GibbsKernel
        In the compute dtype.
    gammas : tuple of float or None
        ``(gamma_a, gamma_b)`` of the relaxed variant; None for the balanced one.
    controls : Controls
    tol : float
        The resolved tolerance.
    init : tuple of ndarray or None
        Warm-start scalings ``(u, v)`` of shape (n, K).
    result : SinkhornResult
        Preallocated host arrays, filled in place.
    scalings : bool, default True
        Fill ``u`` and ``v`` of the closed-form balanced rows too; with False
        those rows of ``result.u`` and ``result.v`` are left unset (for callers
        that keep only the loss and gradient), and ``result.u``, ``result.v``
        may be None when every row is a one-hot balanced row.

    Returns
    -------
    status : ndarray of int64 (n,)
        :mod:`sinkhorn_nb.core` codes; ``result.converged`` is set from them.
    """
    with parallel_section():
        status = np.empty(measures.shape[0], np.int64)
        if init is not None:        # before the closed forms, which overwrite their rows
            np.copyto(result.u, init[0])
            np.copyto(result.v, init[1])
        rows = _closed_forms(measures, kernel, gammas, result, status, scalings)
        if rows.size:
            _iterate(measures, kernel, gammas, controls, tol, init, rows, result, status)
        kernels.final_status(result.loss, result.transport_cost, status, result.converged)
    return status


def _closed_forms(measures, kernel, gammas, result, status, scalings):
    """Fill the closed-form rows; return the rows left to iterate."""
    h, y, r = measures.h, measures.y, result
    if gammas is None:
        closed = measures.support == 1
    else:
        closed = (measures.mass_h == 0) | (measures.mass_y == 0)
    rows = np.flatnonzero(closed)
    if not rows.size:
        return np.arange(h.shape[0])
    with passes_on_one_thread(rows.size * h.shape[1]):
        if gammas is None:
            # u = h / G: worth building G (K^2 vectorized exponentials) for a batch
            # of at least K/8 rows, and free once an engine has it
            divide = scalings and kernel.multiplicative_is_safe() and (
                kernel.built("G") or 8 * rows.size >= h.shape[1])
            G_T = kernel.G_T if divide else np.empty((0, 0), h.dtype)
            fused = h.shape[1] >= FUSED_LOG_MIN_LABELS
            if not fused:
                _log_on_rows(h, rows, r.grad)
            u, v = (r.u, r.v) if scalings else (G_T, G_T)      # (not touched then)
            balanced.one_hot_rows(h, *float_bits(h), fused, measures.last_nonzero,
                                  measures.mass_h, kernel.M_T, kernel.M_column_sums, G_T, divide,
                                  kernel.lam, kernel.lam_max_m, gauge_limit(h.dtype), scalings,
                                  rows, r.loss, r.grad, r.transport_cost, u, v, r.n_iter,
                                  r.err, status)
        else:
            relaxed.empty_rows(h, y, *gammas, rows, r.loss, r.grad, r.transport_cost, r.u,
                               r.v, r.n_iter, r.err, status)
    return rows[:0] if rows.size == h.shape[0] else np.flatnonzero(~closed)


def _iterate(measures, kernel, gammas, controls, tol, init, rows, result, status):
    """The multiplicative path where it is safe, the log-domain path elsewhere."""
    warm = init is not None      # the start is in result.u, result.v (see solve)
    method = controls.method
    if method == "log" or (method == "auto" and not kernel.multiplicative_is_safe()):
        _log_domain(measures, kernel, gammas, controls, tol, warm, rows, result, status)
        return
    _multiplicative(measures, kernel, gammas, controls, tol, warm, rows, result, status)
    failed = rows[status[rows] == FAILED]
    if failed.size:      # over/underflow: redo those rows in the log domain, cold
        _log_domain(measures, kernel, gammas, controls, tol, False, failed, result, status)


def _multiplicative(measures, kernel, gammas, controls, tol, warm, rows, result, status):
    h, y, r = measures.h, measures.y, result
    n, K = h.shape
    balanced_variant = gammas is None
    exp_a, exp_b = (1.0, 1.0) if balanced_variant else relaxed_exponents(kernel.lam, *gammas)
    loop = (controls.max_iter, tol, controls.check_every, r.n_iter, r.err, status)
    Gv = np.empty((n, K), h.dtype)
    GTu = np.empty((n, K), h.dtype)
    support = measures.support[rows]
    newton = (support <= NEWTON_MAX_SUPPORT) & uses_newton(balanced_variant, controls.method,
                                                           tol)
    sparse = sparse_rows(support, K) & ~newton
    newton_rows, support_rows, dense_rows = rows[newton], rows[sparse], rows[~(sparse | newton)]
    if newton_rows.size:
        balanced.newton_rows(h, y, kernel.G_T, kernel.GM_T, newton_rows, r.u, r.v, warm,
                             measures.mass_y, controls.max_iter, tol, r.n_iter, r.err, status,
                             Gv, GTu, r.transport_cost)
    if support_rows.size:
        mass = measures.mass_y if balanced_variant else measures.mass_h
        kernels.sparse_scaling_iterations(h, y, kernel.G_T, kernel.GM_T, support_rows, r.u, r.v,
                                          warm, exp_a, exp_b, balanced_variant, mass, *loop,
                                          Gv, GTu, r.transport_cost)
    if dense_rows.size:
        if balanced_variant:    # v from y, then u from h
            dense_iterations(y, h, kernel.G, kernel.G_T, dense_rows, r.v, r.u, warm, exp_b,
                             exp_a, measures.mass_y, *loop, GTu, Gv)
        else:                   # u from h, then v from y
            dense_iterations(h, y, kernel.G_T, kernel.G, dense_rows, r.u, r.v, warm, exp_a,
                             exp_b, measures.mass_h, *loop, Gv, GTu)
        V = r.v if dense_rows.size == n else r.v[dense_rows]
        kernels.row_dots(r.u, dense_rows, np.dot(V, kernel.GM_T), r.transport_cost)
    with passes_on_one_thread(rows.size * K):
        if balanced_variant:
            log_u = _log_on_rows(r.u, rows, r.grad)
            log_v = _log_on_rows(r.v, rows, np.empty_like(r.v))
            balanced.outputs_from_scalings(h, y, r.u, log_u, log_v, Gv, GTu, kernel.lam, rows,
                                           r.loss, r.grad, status)
        else:
            relaxed.outputs_from_scalings(h, y, r.u, r.v, Gv, GTu, kernel.lam, *gammas, rows,
                                          r.loss, r.grad, status)


def dense_iterations(p, q, K_p, K_q, rows, s_out, t_out, warm, exp_s, exp_t, mass, max_iter,
                     tol, check_every, n_iter, err, status, a_out, b_out):
    """Multiplicative Sinkhorn on ``rows``, one BLAS product per half-update.

    The roles ``p, q, s, t`` and the error are those of :mod:`sinkhorn_nb.cpu.kernels`:
    ``A = t @ K_p``, ``s = (p / A)^exp_s``, ``B = s @ K_q``, ``t = (q / B)^exp_t``.
    The rows still iterating are kept compact in working arrays, so every product
    runs over them only; a row leaves at its first check below ``tol`` (every
    ``check_every`` iterations; ``tol = 0`` runs exactly ``max_iter``).  Final
    scalings go to ``s_out``, ``t_out`` (with ``warm``, ``t_out`` holds the start),
    and the products at the final scalings to ``a_out``, ``b_out``, on ``rows``.
    A cold start where ``q`` has no zero starts every row at ``t = 1``, so the
    first product is one vector-matrix product shared by all rows.
    """
    m = rows.size
    active = rows.copy()
    S, T, A, B = (np.empty((m, p.shape[1]), s_out.dtype) for _ in range(4))
    shared_start = kernels.start_rows(q, t_out, active, warm, T)
    it = 0
    while True:
        if it == 0 and shared_start:    # every row starts at t = 1: one product for all
            np.dot(T[0], K_p, out=A[0])
            A[1:m] = A[0]
        else:
            np.dot(T[:m], K_p, out=A[:m])
        final = it == max_iter
        if final or (tol > 0 and it > 0 and it % check_every == 0):
            m = kernels.finish_rows(p, A, B, S, T, active, m, exp_s, mass, it, final, tol,
                                    s_out, t_out, a_out, b_out, n_iter, err, status)
            if m == 0:
                return
        kernels.update_rows(p, A, active, m, exp_s, S)
        np.dot(S[:m], K_q, out=B[:m])
        kernels.update_rows(q, B, active, m, exp_t, T)
        it += 1


def _log_domain(measures, kernel, gammas, controls, tol, warm, rows, result, status):
    h, y, r = measures.h, measures.y, result
    K = h.shape[1]
    lam = kernel.lam
    balanced_variant = gammas is None
    log_u = np.empty((rows.size, K))
    log_v = np.empty((rows.size, K))
    loop = (controls.max_iter, tol, controls.check_every, r.n_iter, r.err, status)
    if balanced_variant:    # v from y, then u from h
        if warm:
            _log_of_rows(r.u, rows, log_u)
        kernels.log_scaling_iterations(y, h, kernel.M64_T, kernel.M64, lam, rows, log_v, log_u,
                                       warm, 1.0, 1.0, measures.mass_y, *loop)
    else:                   # u from h, then v from y
        if warm:
            _log_of_rows(r.v, rows, log_v)
        a, b = relaxed_exponents(lam, *gammas)
        kernels.log_scaling_iterations(h, y, kernel.M64, kernel.M64_T, lam, rows, log_u, log_v,
                                       warm, a, b, measures.mass_h, *loop)
    lse_row = np.empty((rows.size, K))
    lse_col = np.empty((rows.size, K))
    kernels.log_marginal_terms(log_u, log_v, kernel.M64, kernel.M64_T, lam, lse_row, lse_col,
                               rows, r.transport_cost)
    if balanced_variant:
        balanced.outputs_from_logs(h, y, log_u, log_v, lse_row, lam, gauge_limit(h.dtype),
                                   rows, r.loss, r.grad, r.u, r.v)
    else:
        relaxed.outputs_from_logs(h, y, log_u, log_v, lse_row, lse_col, lam, *gammas, rows,
                                  r.loss, r.grad, r.u, r.v)


def _log_on_rows(x, rows, out):
    """``out[rows] = log x[rows]`` (NumPy's vectorized logarithm); returns ``out``."""
    with np.errstate(divide="ignore"):
        if rows.size == x.shape[0]:
            np.log(x, out=out)
        else:
            out[rows] = np.log(x[rows])
    return out


def _log_of_rows(x, rows, out):
    with np.errstate(divide="ignore"):
        np.log(x[rows], out=out, dtype=np.float64)
