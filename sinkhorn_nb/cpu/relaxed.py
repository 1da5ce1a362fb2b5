"""CPU driver for relaxed (unbalanced, KL-penalized) transport, DESIGN.md §1.2."""
import numpy as np

from .paths import ScalingState, solve


def generalized_kl(w, z):
    """Row-wise :math:`\\widetilde{KL}(w\\|z) = w^\\top\\log(w \\oslash z) - 1^\\top w + 1^\\top z`
    with ``0 log 0 = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(w > 0, w * (np.log(w) - np.log(z)), 0.0)
    return terms.sum(axis=1) - w.sum(axis=1) + z.sum(axis=1)


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
    - \\lambda\\langle T, M\\rangle - \\sum T`.  Where ``h_i = 0`` the derivative
    is its limit :math:`-\\infty`.
    """
    h64 = h.astype(np.float64)
    y64 = y.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        row = np.where(h > 0, np.exp(state.log_u + state.lse_row), 0.0)
        col = np.where(y > 0, np.exp(state.log_v + state.lse_col), 0.0)
        entropic = (np.where(row > 0, row * state.log_u, 0.0).sum(axis=1)
                    + np.where(col > 0, col * state.log_v, 0.0).sum(axis=1)
                    - row.sum(axis=1)) / lam
        loss = entropic + gamma_a * generalized_kl(row, h64) + gamma_b * generalized_kl(col, y64)
        grad = np.where(h > 0, gamma_a * (1.0 - row / h64), -np.inf)
    return loss, grad


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
    state = zero_mass_state(n, K)
    if not np.all(empty):
        rows = np.flatnonzero(~empty)
        sub = solve(h[rows], y[rows], kernel, False, a, b, max_iter, tol, check_every,
                    method,
                    None if u0 is None else u0[rows], None if v0 is None else v0[rows])
        state.put(rows, sub)
    loss, grad = relaxed_outputs(h, y, state, kernel.lam, gamma_a, gamma_b)
    return loss, grad, state
