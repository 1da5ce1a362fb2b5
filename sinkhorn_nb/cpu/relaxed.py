"""CPU driver for relaxed (unbalanced, KL-penalized) transport, DESIGN.md §1.2."""
import numpy as np
from numba import njit, prange

from .paths import ScalingState, solve


def relaxed_exponents(lam, gamma_a, gamma_b):
    """``a = gamma_a lam / (gamma_a lam + 1)`` and the same for ``b`` (Prop. 4.2)."""
    return gamma_a * lam / (gamma_a * lam + 1.0), gamma_b * lam / (gamma_b * lam + 1.0)


def relaxed_outputs(h, y, state, lam, gamma_a, gamma_b):
    """Objective and gradient at ``T = diag(u) G diag(v)``.

    .. math::
        W_{KL} = \\langle T, M\\rangle + \\tfrac1\\lambda\\textstyle\\sum T\\log T
        + \\gamma_a \\widetilde{KL}(T1\\|h) + \\gamma_b \\widetilde{KL}(T^\\top 1\\|y),
        \\qquad \\partial W_{KL}/\\partial h = \\gamma_a (1 - T1 \\oslash h)

    using :math:`\\sum T\\log T = \\sum_i r_i\\log u_i + \\sum_j c_j \\log v_j
    - \\lambda\\langle T, M\\rangle - \\sum T` and
    :math:`\\widetilde{KL}(w\\|z) = w^\\top\\log(w \\oslash z) - 1^\\top w + 1^\\top z`
    (``0 log 0 = 0``).  Where
    ``h_i = 0`` the derivative is its limit :math:`-\\infty`.
    """
    n, K = h.shape
    loss = np.empty(n)
    grad = np.empty((n, K))
    _relaxed_rows(h, y, state.log_u, state.log_v, state.lse_row, state.lse_col, lam,
                  gamma_a, gamma_b, loss, grad)
    return loss, grad


@njit(cache=True, parallel=True, error_model="numpy")
def _relaxed_rows(h, y, log_u, log_v, lse_row, lse_col, lam, gamma_a, gamma_b, loss, grad):
    n, K = h.shape
    for r in prange(n):
        entropic = 0.0    # sum T log T + lam <T, M>
        kl_a = 0.0
        kl_b = 0.0
        for j in range(K):
            row = np.exp(log_u[r, j] + lse_row[r, j]) if h[r, j] > 0 else 0.0
            col = np.exp(log_v[r, j] + lse_col[r, j]) if y[r, j] > 0 else 0.0
            if row > 0:
                entropic += row * log_u[r, j] - row
                kl_a += row * (np.log(row) - np.log(np.float64(h[r, j])))
            if col > 0:
                entropic += col * log_v[r, j]
                kl_b += col * (np.log(col) - np.log(np.float64(y[r, j])))
            kl_a += h[r, j] - row
            kl_b += y[r, j] - col
            grad[r, j] = gamma_a * (1.0 - row / h[r, j]) if h[r, j] > 0 else -np.inf
        loss[r] = entropic / lam + gamma_a * kl_a + gamma_b * kl_b


def zero_mass_state(n, K):
    """State of rows where ``h`` or ``y`` is all zero: the optimal plan is ``T = 0``."""
    state = ScalingState.empty(n, K)
    state.lse_row[:] = -np.inf
    state.lse_col[:] = -np.inf
    return state


def sinkhorn_relaxed(h, y, kernel, gamma_a, gamma_b, max_iter, tol, check_every,
                     method, u0=None, v0=None):
    """Solve the relaxed problem for every row.

    Rows where ``h`` or ``y`` has zero total mass have the closed form ``T = 0``
    (value ``gamma_a sum(h) + gamma_b sum(y)``); the others iterate.

    Returns
    -------
    loss, grad, state
    """
    n, K = h.shape
    a, b = relaxed_exponents(kernel.lam, gamma_a, gamma_b)
    empty = (h.sum(axis=1) == 0) | (y.sum(axis=1) == 0)
    if not np.any(empty):
        state = solve(h, y, kernel, False, a, b, max_iter, tol, check_every, method, u0, v0)
    else:
        state = zero_mass_state(n, K)
    if np.any(empty) and not np.all(empty):
        rows = np.flatnonzero(~empty)
        sub = solve(h[rows], y[rows], kernel, False, a, b, max_iter, tol, check_every,
                    method,
                    None if u0 is None else u0[rows], None if v0 is None else v0[rows])
        state.put(rows, sub)
    loss, grad = relaxed_outputs(h, y, state, kernel.lam, gamma_a, gamma_b)
    return loss, grad, state
