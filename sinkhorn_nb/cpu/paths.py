"""Path selection for the CPU drivers: multiplicative first, log-domain fallback.

Both variants reach a :class:`ScalingState`: log-scalings plus the log-domain
pieces (``log G v``, ``log G^T u``, ``<T, M>``) from which the variant's loss and
gradient follow in closed form.
"""
from dataclasses import dataclass

import numpy as np

from .scaling import (FAILED, log_marginal_terms, log_scaling_iterations,
                      scaling_iterations)


@dataclass
class ScalingState:
    """Per-row solver state, every array of shape (n, K) or (n,).

    ``log_u``/``log_v`` are ``-inf`` where the mass is zero; ``lse_row`` is
    ``log(G v)``, ``lse_col`` is ``log(G^T u)`` for every label; ``cost`` is
    ``<T, M>``.  ``status`` follows :mod:`sinkhorn_nb.cpu.scaling`.
    """
    log_u: np.ndarray
    log_v: np.ndarray
    lse_row: np.ndarray
    lse_col: np.ndarray
    cost: np.ndarray
    n_iter: np.ndarray
    err: np.ndarray
    status: np.ndarray

    @classmethod
    def empty(cls, n, K):
        f = np.float64
        return cls(np.full((n, K), -np.inf, f), np.full((n, K), -np.inf, f),
                   np.zeros((n, K), f), np.zeros((n, K), f), np.zeros(n, f),
                   np.zeros(n, np.int64), np.zeros(n, f), np.zeros(n, np.int64))

    def put(self, rows, other):
        """Write ``other`` (a state over ``len(rows)`` rows) into ``rows``."""
        for name in self.__dataclass_fields__:
            getattr(self, name)[rows] = getattr(other, name)


def _safe_log(x):
    with np.errstate(divide="ignore"):
        return np.log(x.astype(np.float64))


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
    if first_is_v:   # balanced: v from y, then u from h
        scaling_iterations(y, h, kernel.G, kernel.G_T, v, u, exp_b, exp_a,
                           max_iter, tol, check_every, n_iter, err, status)
    else:            # relaxed: u from h, then v from y
        scaling_iterations(h, y, kernel.G_T, kernel.G, u, v, exp_a, exp_b,
                           max_iter, tol, check_every, n_iter, err, status)
    Gv = v @ kernel.G_T
    GTu = u @ kernel.G
    cost = np.einsum("ij,ij->i", u, v @ kernel.GM_T, dtype=np.float64)
    with np.errstate(all="ignore"):
        state = ScalingState(_safe_log(u), _safe_log(v), _safe_log(Gv), _safe_log(GTu),
                             cost, n_iter, err, status)
        bad = (status == FAILED) | ~np.isfinite(cost)
        bad |= np.any((h > 0) & ~np.isfinite(state.log_u), axis=1)
        bad |= np.any((y > 0) & ~np.isfinite(state.log_v), axis=1)
        bad |= np.any(~np.isfinite(state.lse_row), axis=1)
        bad |= np.any((y > 0) & ~np.isfinite(state.lse_col), axis=1)
    return state, bad


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
    M = kernel.M.astype(np.float64)
    M_T = kernel.M_T.astype(np.float64)
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
    state, bad = multiplicative(h, y, kernel, first_is_v, exp_a, exp_b, max_iter, tol,
                                check_every, u0, v0)
    if np.any(bad):
        rows = np.flatnonzero(bad)
        redo = log_domain(h[rows], y[rows], kernel, first_is_v, exp_a, exp_b,
                          max_iter, tol, check_every)
        state.put(rows, redo)
    return state
