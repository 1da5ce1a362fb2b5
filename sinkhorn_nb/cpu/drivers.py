"""CPU driver: execute a plan and fill one preallocated result.

:func:`solve` receives validated measures (:class:`~sinkhorn_nb.validation.Measures`),
a :class:`~sinkhorn_nb.gibbs.GibbsKernel` and the :class:`~sinkhorn_nb.routing.Plan`
that says which path each row takes; :func:`sinkhorn_nb.routing.execute` runs
the iterative paths in order and hands failed rows on.  Every kernel writes its
rows of the caller's :class:`~sinkhorn_nb.SinkhornResult` in place:

* ``closed``: :func:`~sinkhorn_nb.cpu.balanced.one_hot_rows` (balanced),
  :func:`~sinkhorn_nb.cpu.relaxed.empty_rows` (relaxed);
* ``newton``: :func:`~sinkhorn_nb.cpu.balanced.newton_rows`;
* ``sparse``: :func:`~sinkhorn_nb.cpu.kernels.sparse_scaling_iterations`;
* ``dense``: :func:`dense_iterations`, BLAS products over the batch;
* ``log``: :func:`~sinkhorn_nb.cpu.kernels.log_scaling_iterations`.

Thread safety: calls from several threads are safe (see
:func:`sinkhorn_nb.threads.parallel_section`).
"""
import numba
import numpy as np

from .. import routing
from ..core import FAILED, OMEGA_STATE, gauge_limit
from ..threads import (BLAS_PARALLEL_MIN_PRODUCT, blas_on_one_thread,
                       iterations_on_one_thread, parallel_section, passes_on_one_thread)
from . import acceleration, balanced, kernels, relaxed


def solve(measures, kernel, plan, controls, tol, init, result, scalings=True):
    """Solve every row of ``measures`` into ``result`` along ``plan``; return the
    status codes.

    Parameters
    ----------
    measures : Measures
        Validated host measures.
    kernel : GibbsKernel
        In the compute dtype.
    plan : Plan
        From :func:`sinkhorn_nb.routing.make_plan`.
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
    plan.check_covers(measures.shape[0])
    with parallel_section():
        status = np.empty(measures.shape[0], np.int64)
        if init is not None:        # before the closed forms, which overwrite their rows
            np.copyto(result.u, init[0])
            np.copyto(result.v, init[1])
        if plan.closed.size:
            _closed_forms(measures, kernel, plan, result, status, scalings)
        if not plan.all_closed:
            run = _Run(measures, kernel, plan, controls, tol, result, status)
            routing.execute(plan, init is not None, run.iterate, run.scalings_outputs,
                            run.failed, measures.support, measures.shape[1])
        kernels.final_status(result.loss, result.transport_cost, status, result.converged)
    return status


def _closed_forms(measures, kernel, plan, result, status, scalings):
    h, r, rows = measures.h, result, plan.closed
    with passes_on_one_thread(rows.size * h.shape[1]):
        if plan.balanced:
            none = np.empty((0, 0), h.dtype)
            G_T = kernel.G_T if plan.one_hot_divides else none
            u, v = (r.u, r.v) if scalings else (none, none)
            balanced.one_hot_rows(h, measures.last_nonzero, measures.mass_h, kernel.M_T,
                                  kernel.M_column_sums, G_T, plan.one_hot_divides, kernel.lam,
                                  kernel.lam_max_m, gauge_limit(h.dtype), scalings, rows, r.loss,
                                  r.grad, r.transport_cost, u, v, r.n_iter, r.err, status)
        else:
            relaxed.empty_rows(h, *measures.kernel_targets, *plan.gammas, rows, r.loss, r.grad,
                               r.transport_cost, r.u, r.v, r.n_iter, r.err, status)


class _Run:
    """The iterative paths of one solve, for :func:`sinkhorn_nb.routing.execute`."""

    def __init__(self, measures, kernel, plan, controls, tol, result, status):
        self.measures, self.kernel, self.plan = measures, kernel, plan
        self.result, self.status = result, status
        self.controls, self.tol = controls, tol
        n, K = measures.shape
        self.loop = (controls.max_iter, tol, controls.check_every, plan.accelerate,
                     result.n_iter, result.err, status)
        self.mass = measures.mass_y if plan.roles.first_is_v else measures.mass_h
        dtype = measures.dtype
        # the support paths and the outputs read sparse targets as CSR triplets;
        # the dense and log paths read measures.y (sparse targets densified once)
        self.targets = measures.kernel_targets
        self.Gv = np.empty((n, K), dtype)      # G v and G^T u at the final scalings
        self.GTu = np.empty((n, K), dtype)

    def failed(self, rows):
        return rows[self.status[rows] == FAILED]

    def iterate(self, path, rows, warm, width):
        # over- and underflow of the multiplicative paths show up as non-finite
        # errors and statuses (the plan hands such rows on), not as NumPy warnings;
        # a few rows run on one thread, small dense products on one BLAS thread
        # (sinkhorn_nb.threads)
        K = self.measures.shape[1]
        small_products = path == "dense" and rows.size * K * K < BLAS_PARALLEL_MIN_PRODUCT
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                iterations_on_one_thread(rows.size), blas_on_one_thread(small_products):
            getattr(self, path)(rows, warm)

    def newton(self, rows, warm):
        m, k, r = self.measures, self.kernel, self.result
        # one scratch slot per thread of Numba's pool (newton_rows picks its own)
        work = k.scratch("newton_work", (5, numba.config.NUMBA_NUM_THREADS, m.shape[1]),
                         np.float64)
        balanced.newton_rows(m.h, *self.targets, k.G_T, k.GM_T, rows, r.u, r.v, warm, m.mass_y,
                             self.controls.max_iter, self.tol, r.n_iter, r.err, self.status,
                             self.Gv, self.GTu, r.transport_cost, work)

    def sparse(self, rows, warm):
        m, k, r, roles = self.measures, self.kernel, self.result, self.plan.roles
        kernels.sparse_scaling_iterations(m.h, *self.targets, k.G_T, k.GM_T, rows, r.u, r.v,
                                          warm, roles.exp_a, roles.exp_b, roles.first_is_v,
                                          self.mass, *self.loop, self.Gv, self.GTu,
                                          r.transport_cost)

    def dense(self, rows, warm):
        m, k, r, roles = self.measures, self.kernel, self.result, self.plan.roles
        if roles.first_is_v:    # v from y, then u from h
            dense_iterations(m.y, m.h, k.G, k.G_T, rows, r.v, r.u, warm, roles.exp_b,
                             roles.exp_a, self.mass, *self.loop, self.GTu, self.Gv)
        else:                   # u from h, then v from y
            dense_iterations(m.h, m.y, k.G_T, k.G, rows, r.u, r.v, warm, roles.exp_a,
                             roles.exp_b, self.mass, *self.loop, self.Gv, self.GTu)
        n, K = m.shape
        if rows.size == n:
            GMv = np.dot(r.v, k.GM_T)
        else:
            GMv = np.empty((n, K), m.dtype)
            GMv[rows] = np.dot(r.v[rows], k.GM_T)
        kernels.row_dots(r.u, GMv, rows, r.transport_cost)

    def scalings_outputs(self, rows):
        m, r = self.measures, self.result
        with passes_on_one_thread(rows.size * m.shape[1]), np.errstate(
                over="ignore", invalid="ignore", divide="ignore"):
            if self.plan.balanced:
                balanced.outputs_from_scalings(m.h, *self.targets, r.u, r.v, self.Gv, self.GTu,
                                               self.kernel.lam, rows, r.loss, r.grad,
                                               self.status)
            else:
                relaxed.outputs_from_scalings(m.h, *self.targets, r.u, r.v, self.Gv, self.GTu,
                                              self.kernel.lam, *self.plan.gammas, rows, r.loss,
                                              r.grad, self.status)

    def log(self, rows, warm):
        m, k, r, plan, roles = self.measures, self.kernel, self.result, self.plan, self.plan.roles
        n, K = m.shape
        lam = k.lam
        log_u, log_v = np.empty((n, K)), np.empty((n, K))
        if roles.first_is_v:    # v from y, then u from h
            if warm:
                _log_of_rows(r.u, rows, log_u)
            kernels.log_scaling_iterations(m.y, m.h, k.M64_T, k.M64, lam, rows, log_v, log_u,
                                           warm, roles.exp_b, roles.exp_a, self.mass,
                                           *self.loop, plan.log_lam_start, plan.stage_tol)
        else:                   # u from h, then v from y
            if warm:
                _log_of_rows(r.v, rows, log_v)
            kernels.log_scaling_iterations(m.h, m.y, k.M64, k.M64_T, lam, rows, log_u, log_v,
                                           warm, roles.exp_a, roles.exp_b, self.mass,
                                           *self.loop, plan.log_lam_start, plan.stage_tol)
        lse_row, lse_col = np.empty((n, K)), np.empty((n, K))
        kernels.log_marginal_terms(log_u, log_v, k.M64, k.M64_T, lam, lse_row, lse_col, rows,
                                   r.transport_cost)
        if self.plan.balanced:
            balanced.outputs_from_logs(m.h, m.y, log_u, log_v, lse_row, lam,
                                       gauge_limit(m.dtype), rows, r.loss, r.grad, r.u, r.v)
        else:
            relaxed.outputs_from_logs(m.h, m.y, log_u, log_v, lse_row, lse_col, lam,
                                      *self.plan.gammas, rows, r.loss, r.grad, r.u, r.v)


def dense_iterations(p, q, K_p, K_q, rows, s_out, t_out, warm, exp_s, exp_t, mass, max_iter,
                     tol, check_every, accelerate, n_iter, err, status, a_out, b_out):
    """Multiplicative Sinkhorn on ``rows``, one BLAS product per half-update.

    The roles ``p, q, s, t`` and the error are those of :mod:`sinkhorn_nb.cpu.kernels`:
    ``A = t @ K_p``, ``s = (p / A)^exp_s``, ``B = s @ K_q``, ``t = (q / B)^exp_t``.
    The rows still iterating are kept compact in working arrays, so every product
    runs over them only; a row leaves at its first check below ``tol`` (every
    ``check_every`` iterations; ``tol = 0`` runs exactly ``max_iter``).  Final
    scalings go to ``s_out``, ``t_out`` (with ``warm``, ``t_out`` holds the start),
    and the products at the final scalings to ``a_out``, ``b_out``, on ``rows``.
    A cold start where ``q`` has no zero starts every row at ``t = 1``, so the
    first product is one vector-matrix product shared by all rows.  With
    ``accelerate`` both updates are over-relaxed, each row with its own factor
    (:mod:`sinkhorn_nb.cpu.acceleration`).
    """
    m = rows.size
    working = rows.copy()
    S, T, A, B = (np.empty((m, p.shape[1]), s_out.dtype) for _ in range(4))
    omega_state = np.empty((m, OMEGA_STATE))
    acceleration.start_omegas(omega_state)
    checkpoint = np.empty((3, m if accelerate else 0, p.shape[1]), s_out.dtype)
    shared_start = kernels.start_working_rows(q, t_out, warm, working, T)
    it = 0
    while True:
        if it == 0 and shared_start:    # every row starts at t = 1: one product for all
            np.dot(T[0], K_p, out=A[0])
            A[1:m] = A[0]
        else:
            np.dot(T[:m], K_p, out=A[:m])
        final = it == max_iter
        if final or (tol > 0 and it > 0 and it % check_every == 0):
            m = kernels.finish_working_rows(p, q, A, B, S, T, exp_s, exp_t, mass, it, tol, final,
                                            check_every, accelerate, omega_state, checkpoint,
                                            working, m, s_out, t_out, a_out, b_out, n_iter, err,
                                            status)
            if m == 0:
                return
        kernels.update_working_rows(p, A, exp_s, omega_state, working, m, S)
        np.dot(S[:m], K_q, out=B[:m])
        kernels.update_working_rows(q, B, exp_t, omega_state, working, m, T)
        it += 1


def _log_of_rows(x, rows, out):
    with np.errstate(divide="ignore"):
        out[rows] = np.log(x[rows], dtype=np.float64)
