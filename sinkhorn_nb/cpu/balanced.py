"""CPU driver for smoothed (balanced) transport, DESIGN.md §1.1."""
import numpy as np
from numba import njit, prange

from .paths import ScalingState, solve


def one_hot_state(h, y, M, lam):
    """Closed form for targets with a single non-zero entry.

    With ``y = m e_j`` the only feasible plan is ``T = h e_j^T``; taking ``v_j = 1``
    gives ``u_i = h_i / G_ij`` and no iteration is needed:
    ``log(G v)_i = -lam M_ij - 1``, ``log(G^T u)_j = log sum(h)`` and
    ``<T, M> = h . M[:, j]``.
    """
    n, K = h.shape
    state = ScalingState(*(np.empty((n, K)) for _ in range(4)), np.empty(n),
                         np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64))
    _one_hot_rows(h, y, M, lam, state.log_u, state.log_v, state.lse_row, state.lse_col,
                  state.cost)
    return state


@njit(cache=True, parallel=True, error_model="numpy")
def _one_hot_rows(h, y, M, lam, log_u, log_v, lse_row, lse_col, cost):
    n, K = h.shape
    for r in prange(n):
        j = 0
        while y[r, j] == 0:
            j += 1
        mass = 0.0
        total = 0.0
        for i in range(K):
            lse_row[r, i] = -lam * M[i, j] - 1.0
            log_u[r, i] = np.log(np.float64(h[r, i])) - lse_row[r, i]
            log_v[r, i] = -np.inf
            lse_col[r, i] = np.nan            # read on the support of y only
            mass += h[r, i]
            total += h[r, i] * M[i, j]
        log_v[r, j] = 0.0
        lse_col[r, j] = np.log(mass)
        cost[r] = total


def balanced_outputs(h, y, state, lam):
    """Loss and gradient from a solved state.

    .. math::
        W = \\alpha^\\top h + \\beta^\\top y - \\tfrac{1}{\\lambda} \\textstyle\\sum T,
        \\qquad \\partial W/\\partial h = \\alpha - \\bar\\alpha,
        \\quad \\alpha = \\log(u)/\\lambda

    Where ``h_i = 0`` the true derivative is :math:`-\\infty`; ``alpha_i`` is then the
    finite extension :math:`-\\log(Gv)_i/\\lambda` (the soft c-transform).
    """
    n, K = h.shape
    loss = np.empty(n)
    grad = np.empty((n, K))
    _balanced_rows(h, y, state.log_u, state.log_v, state.lse_row, lam, loss, grad)
    return loss, grad


@njit(cache=True, parallel=True, error_model="numpy")
def _balanced_rows(h, y, log_u, log_v, lse_row, lam, loss, grad):
    n, K = h.shape
    for r in prange(n):
        total = 0.0       # sum T = sum_i u_i (G v)_i
        dual = 0.0
        alpha_sum = 0.0
        for j in range(K):
            if h[r, j] > 0:
                total += np.exp(log_u[r, j] + lse_row[r, j])
                dual += h[r, j] * log_u[r, j]
                alpha_sum += log_u[r, j]
            else:
                alpha_sum -= lse_row[r, j]
            if y[r, j] > 0:
                dual += y[r, j] * log_v[r, j]
        mean = alpha_sum / K
        for j in range(K):
            alpha = log_u[r, j] if h[r, j] > 0 else -lse_row[r, j]
            grad[r, j] = (alpha - mean) / lam
        loss[r] = (dual - total) / lam


def sinkhorn_balanced(h, y, kernel, max_iter, tol, check_every, method,
                      u0=None, v0=None):
    """Solve the balanced problem for every row.

    Rows whose target has one non-zero use :func:`one_hot_state`; the others
    iterate (see :func:`sinkhorn_nb.cpu.paths.solve`).

    Returns
    -------
    loss, grad, state
    """
    n, K = h.shape
    one_hot = np.count_nonzero(y, axis=1) == 1
    if np.all(one_hot):
        state = one_hot_state(h, y, kernel.M, kernel.lam)
    elif not np.any(one_hot):
        state = solve(h, y, kernel, True, 1.0, 1.0, max_iter, tol, check_every, method,
                      u0, v0)
    else:
        state = ScalingState.empty(n, K)
        rows = np.flatnonzero(one_hot)
        state.put(rows, one_hot_state(h[rows], y[rows], kernel.M, kernel.lam))
        rows = np.flatnonzero(~one_hot)
        sub = solve(h[rows], y[rows], kernel, True, 1.0, 1.0, max_iter, tol,
                    check_every, method,
                    None if u0 is None else u0[rows], None if v0 is None else v0[rows])
        state.put(rows, sub)
    loss, grad = balanced_outputs(h, y, state, kernel.lam)
    return loss, grad, state
