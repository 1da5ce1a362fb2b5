"""CPU driver for smoothed (balanced) transport, DESIGN.md §1.1."""
import numpy as np

from .paths import ScalingState, solve


def one_hot_state(h, y, M, lam):
    """Closed form for targets with a single non-zero entry.

    With ``y = m e_j`` the only feasible plan is ``T = h e_j^T``; taking ``v_j = 1``
    gives ``u_i = h_i / G_ij`` and no iteration is needed.
    """
    n, K = h.shape
    j = np.argmax(y > 0, axis=1)
    Mj = M[:, j].T.astype(np.float64)                   # (n, K): M[i, j_r]
    h64 = h.astype(np.float64)
    state = ScalingState.empty(n, K)
    state.lse_row = -lam * Mj - 1.0                      # log (G v)_i = log G_ij
    with np.errstate(divide="ignore"):
        state.log_u = np.log(h64) - state.lse_row
    state.log_v[np.arange(n), j] = 0.0
    state.lse_col[np.arange(n), j] = np.log(h64.sum(axis=1))
    state.cost = np.einsum("ij,ij->i", h64, Mj)
    return state


def balanced_outputs(h, y, state, lam):
    """Loss, gradient, row/column marginals from a solved state.

    .. math::
        W = \\alpha^\\top h + \\beta^\\top y - \\tfrac{1}{\\lambda} \\textstyle\\sum T,
        \\qquad \\partial W/\\partial h = \\alpha - \\bar\\alpha,
        \\quad \\alpha = \\log(u)/\\lambda

    Where ``h_i = 0`` the true derivative is :math:`-\\infty`; ``alpha_i`` is then the
    finite extension :math:`-\\log(Gv)_i/\\lambda` (the soft c-transform).
    """
    h64 = h.astype(np.float64)
    y64 = y.astype(np.float64)
    pos_h, pos_y = h > 0, y > 0
    with np.errstate(invalid="ignore", over="ignore"):
        row = np.where(pos_h, np.exp(state.log_u + state.lse_row), 0.0)
        total = row.sum(axis=1)
        dual = (np.where(pos_h, h64 * state.log_u, 0.0).sum(axis=1)
                + np.where(pos_y, y64 * state.log_v, 0.0).sum(axis=1))
    loss = (dual - total) / lam
    alpha = np.where(pos_h, state.log_u, -state.lse_row) / lam
    grad = alpha - alpha.mean(axis=1, keepdims=True)
    return loss, grad


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
    state = ScalingState.empty(n, K)
    if np.any(one_hot):
        rows = np.flatnonzero(one_hot)
        state.put(rows, one_hot_state(h[rows], y[rows], kernel.M, kernel.lam))
    if not np.all(one_hot):
        rows = np.flatnonzero(~one_hot)
        sub = solve(h[rows], y[rows], kernel, True, 1.0, 1.0, max_iter, tol,
                    check_every, method,
                    None if u0 is None else u0[rows], None if v0 is None else v0[rows])
        state.put(rows, sub)
    loss, grad = balanced_outputs(h, y, state, kernel.lam)
    return loss, grad, state
