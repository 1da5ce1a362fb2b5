"""Path selection for the CPU drivers: multiplicative first, log-domain fallback.

Both variants reach a :class:`ScalingState`: log-scalings plus the log-domain
pieces (``log G v``, ``log G^T u``, ``<T, M>``) from which the variant's loss and
gradient follow in closed form.
"""
from dataclasses import dataclass

import numpy as np

from .scaling import (FAILED, log_marginal_terms, log_scaling_iterations,
                      log_state_terms, scaling_iterations, sparse_scaling_iterations,
                      transport_costs)


@dataclass
class ScalingState:
    """Per-row solver state, every array of shape (n, K) or (n,).

    ``log_u``/``log_v`` are ``-inf`` where the mass is zero; ``lse_row`` is
    ``log(G v)`` for every label, ``lse_col`` is ``log(G^T u)`` (read only
    on the support of ``y``; the sparse path leaves NaN elsewhere); ``cost`` is
    ``<T, M>``.  ``status`` follows :mod:`sinkhorn_nb.cpu.scaling`.
    ``scalings`` is ``(u, v)`` in the compute dtype when a multiplicative path
    produced every row (saves exponentiating the logs back), else None.
    """
    log_u: np.ndarray
    log_v: np.ndarray
    lse_row: np.ndarray
    lse_col: np.ndarray
    cost: np.ndarray
    n_iter: np.ndarray
    err: np.ndarray
    status: np.ndarray
    scalings: tuple = None

    @classmethod
    def empty(cls, n, K):
        f = np.float64
        return cls(np.full((n, K), -np.inf, f), np.full((n, K), -np.inf, f),
                   np.zeros((n, K), f), np.zeros((n, K), f), np.zeros(n, f),
                   np.zeros(n, np.int64), np.zeros(n, f), np.zeros(n, np.int64))

    def put(self, rows, other):
        """Write ``other`` (a state over ``len(rows)`` rows) into ``rows``."""
        for name in self.__dataclass_fields__:
            if name != "scalings":
                getattr(self, name)[rows] = getattr(other, name)
        self.scalings = None


def _safe_log(x):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, np.float64))


#: A target row takes the sparse path when it has at most this fraction of ``K``
#: non-zeros: the gathered products cost ``2 K s`` per iteration against the
#: ``2 K^2`` of the dense BLAS path, which runs a few times more flops per second.
SPARSE_FRACTION = 0.125


def sparse_rows(y):
    """Mask of the rows of ``y`` that the multiplicative path solves on their support."""
    return np.count_nonzero(y, axis=1) <= SPARSE_FRACTION * y.shape[1]


def _checked_state(h, y, u, v, Gv, GTu, cost, n_iter, err, status):
    """The :class:`ScalingState` of a multiplicative solve, and the mask of rows
    whose scalings or marginals over/underflowed where a mass is positive."""
    n, K = h.shape
    state = ScalingState(*(np.empty((n, K)) for _ in range(4)), cost, n_iter, err, status)
    bad = np.empty(n, bool)
    log_state_terms(h, y, u, v, Gv, GTu, state.log_u, state.log_v, state.lse_row,
                    state.lse_col, bad)
    bad |= (status == FAILED) | ~np.isfinite(cost)
    state.scalings = (u, v)
    return state, bad


def multiplicative(h, y, kernel, first_is_v, exp_a, exp_b, max_iter, tol,
                   check_every, u0, v0):
    """Run the BLAS path; return the state and a mask of rows that must be redone.

    A row is redone in the log domain when its error became non-finite, or when
    a scaling, ``G v`` or ``G^T u`` over/underflowed where a mass is positive.
    """
    n, K = h.shape
    u = np.array(u0, dtype=h.dtype, order="C")
    v = np.array(v0, dtype=h.dtype, order="C")
    n_iter = np.zeros(n, np.int64)
    err = np.zeros(n, np.float64)
    status = np.zeros(n, np.int64)
    Gv = np.empty((n, K), h.dtype)
    GTu = np.empty((n, K), h.dtype)
    if first_is_v:   # balanced: v from y, then u from h
        scaling_iterations(y, h, kernel.G, kernel.G_T, v, u, exp_b, exp_a,
                           max_iter, tol, check_every, n_iter, err, status, GTu, Gv)
    else:            # relaxed: u from h, then v from y
        scaling_iterations(h, y, kernel.G_T, kernel.G, u, v, exp_a, exp_b,
                           max_iter, tol, check_every, n_iter, err, status, Gv, GTu)
    cost = np.empty(n, np.float64)
    transport_costs(u, v, kernel.GM_T, cost)
    return _checked_state(h, y, u, v, Gv, GTu, cost, n_iter, err, status)


def multiplicative_sparse(h, y, kernel, first_is_v, exp_a, exp_b, max_iter, tol,
                          check_every, u0, v0):
    """:func:`multiplicative` restricted to each row's target support
    (:func:`~sinkhorn_nb.cpu.scaling.sparse_scaling_iterations`).

    ``G^T u`` is computed on the support of ``y`` only (the outputs never read
    it elsewhere); :func:`_checked_state` writes NaN into ``lse_col`` off it.
    """
    n, K = h.shape
    u = np.array(u0, dtype=h.dtype, order="C")
    v = np.array(v0, dtype=h.dtype, order="C")
    Gv = np.empty((n, K), h.dtype)
    GTu = np.empty((n, K), h.dtype)      # read on supp(y) only
    cost = np.zeros(n, np.float64)
    n_iter = np.zeros(n, np.int64)
    err = np.zeros(n, np.float64)
    status = np.zeros(n, np.int64)
    sparse_scaling_iterations(h, y, kernel.G_T, kernel.GM_T, u, v, exp_a, exp_b,
                              first_is_v, max_iter, tol, check_every, n_iter, err,
                              status, Gv, GTu, cost)
    return _checked_state(h, y, u, v, Gv, GTu, cost, n_iter, err, status)


def log_domain(h, y, kernel, first_is_v, exp_a, exp_b, max_iter, tol, check_every,
               log_u0=None, log_v0=None):
    """Run the log-domain path on every row; return the state."""
    n, K = h.shape
    log_u = np.zeros((n, K)) if log_u0 is None else np.array(log_u0, np.float64)
    log_v = np.zeros((n, K)) if log_v0 is None else np.array(log_v0, np.float64)
    for arr in (log_u, log_v):
        arr[~np.isfinite(arr)] = 0.0
    n_iter = np.zeros(n, np.int64)
    err = np.zeros(n, np.float64)
    status = np.zeros(n, np.int64)
    lam = kernel.lam
    M = np.asarray(kernel.M, np.float64)
    M_T = np.asarray(kernel.M_T, np.float64)
    if first_is_v:
        log_scaling_iterations(y, h, M_T, M, lam, log_v, log_u, exp_b, exp_a,
                               max_iter, tol, check_every, n_iter, err, status)
    else:
        log_scaling_iterations(h, y, M, M_T, lam, log_u, log_v, exp_a, exp_b,
                               max_iter, tol, check_every, n_iter, err, status)
    state = ScalingState(log_u, log_v, np.empty((n, K)), np.empty((n, K)),
                         np.empty(n), n_iter, err, status)
    log_marginal_terms(log_u, log_v, M, M_T, lam, state.lse_row, state.lse_col,
                       state.cost)
    return state


def solve(h, y, kernel, first_is_v, exp_a, exp_b, max_iter, tol, check_every,
          method, u0=None, v0=None):
    """Solve every row of ``(h, y)``: the multiplicative path where it is safe
    (``method="auto"``: ``lam * max(M)`` under the dtype's limit), the log-domain
    path for the rest and for any row where the multiplicative path failed."""
    n, K = h.shape
    use_mult = method == "multiplicative" or (method == "auto"
                                              and kernel.multiplicative_is_safe())
    if not use_mult:
        lu0 = None if u0 is None else _safe_log(u0)
        lv0 = None if v0 is None else _safe_log(v0)
        return log_domain(h, y, kernel, first_is_v, exp_a, exp_b, max_iter, tol,
                          check_every, lu0, lv0)
    u0 = np.ones((n, K), h.dtype) if u0 is None else u0
    v0 = np.ones((n, K), h.dtype) if v0 is None else v0
    v0 = np.where(y > 0, v0, 0).astype(h.dtype)   # v vanishes off supp(y); all paths start so
    args = (kernel, first_is_v, exp_a, exp_b, max_iter, tol, check_every)
    sparse = sparse_rows(y)
    if np.all(sparse) or not np.any(sparse):
        path = multiplicative_sparse if np.all(sparse) else multiplicative
        state, bad = path(h, y, *args, u0, v0)
    else:
        state = ScalingState.empty(n, K)
        bad = np.zeros(n, bool)
        for mask, path in ((sparse, multiplicative_sparse), (~sparse, multiplicative)):
            rows = np.flatnonzero(mask)
            state_rows, bad[rows] = path(h[rows], y[rows], *args, u0[rows], v0[rows])
            state.put(rows, state_rows)
    if np.any(bad):
        rows = np.flatnonzero(bad)
        redo = log_domain(h[rows], y[rows], kernel, first_is_v, exp_a, exp_b,
                          max_iter, tol, check_every)
        state.put(rows, redo)
    return state
