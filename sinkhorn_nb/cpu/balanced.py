r"""Kernels of smoothed (balanced) transport: outputs and the one-hot closed form.

With :math:`\alpha = \log u / \lambda` and :math:`\beta = \log v / \lambda` the
value is the dual value and the gradient the centred potential,

.. math::
    W = \alpha^\top h + \beta^\top y - \tfrac{1}{\lambda} \textstyle\sum T,
    \qquad \partial W/\partial h = \alpha - \bar\alpha .

Where :math:`h_i = 0` the true derivative is :math:`-\infty`; :math:`\alpha_i`
is then the finite extension :math:`-\log(Gv)_i/\lambda` (the soft
c-transform), so that the centring stays defined.  Every kernel writes the rows
``rows`` of the caller's result arrays.
"""
import numpy as np
from numba import prange

from ..core import CONVERGED, FAILED
from .kernels import compiled, parallel


@compiled
def _positive_finite(x):
    return x > 0 and x < np.inf


@compiled
def _centre(grad, alpha_sum, lam):
    """``grad = (grad - mean(grad)) / lam`` given ``alpha_sum = sum(grad)``."""
    mean = alpha_sum / grad.size
    for i in range(grad.size):
        grad[i] = (grad[i] - mean) / lam


@parallel
def outputs_from_scalings(h, y, u, v, Gv, GTu, lam, rows, loss, grad, status):
    """Loss and gradient of a multiplicative solve; ``status[r] = FAILED`` where a
    scaling or marginal over/underflowed on the support of its mass."""
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        dual = 0.0
        plan_mass = 0.0
        alpha_sum = 0.0
        ok = True
        for i in range(K):
            ok &= _positive_finite(Gv[r, i])
            if h[r, i] > 0:
                alpha = np.log(np.float64(u[r, i]))
                ok &= np.isfinite(alpha)
                dual += h[r, i] * alpha
                plan_mass += u[r, i] * Gv[r, i]
            else:
                alpha = -np.log(np.float64(Gv[r, i]))
            if y[r, i] > 0:
                beta = np.log(np.float64(v[r, i]))
                ok &= np.isfinite(beta) and _positive_finite(GTu[r, i])
                dual += y[r, i] * beta
            grad[r, i] = alpha
            alpha_sum += alpha
        _centre(grad[r], alpha_sum, lam)
        loss[r] = (dual - plan_mass) / lam
        if not ok:
            status[r] = FAILED


@compiled
def gauge_shift(top_u, top_v, limit):
    """Shift ``c`` of the gauge ``(u e^{-c}, v e^{c})`` that balances the largest
    log-scalings when one exceeds ``limit`` (else 0)."""
    if max(top_u, top_v) > limit and np.isfinite(top_u) and np.isfinite(top_v):
        return (top_u - top_v) / 2.0
    return 0.0


@parallel
def outputs_from_logs(h, y, log_u, log_v, lse_row, lam, limit, rows, loss, grad, u, v):
    """Loss, gradient and scalings from a log-domain solve (one row of ``log_u``,
    ``log_v``, ``lse_row`` per entry of ``rows``); ``limit`` bounds the
    log-scalings before the gauge is shifted (:func:`gauge_shift`)."""
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        dual = 0.0
        plan_mass = 0.0
        alpha_sum = 0.0
        top_u = -np.inf
        top_v = -np.inf
        for i in range(K):
            if h[r, i] > 0:
                alpha = log_u[k, i]
                dual += h[r, i] * alpha
                plan_mass += np.exp(alpha + lse_row[k, i])
                top_u = max(top_u, alpha)
            else:
                alpha = -lse_row[k, i]
            if y[r, i] > 0:
                dual += y[r, i] * log_v[k, i]
                top_v = max(top_v, log_v[k, i])
            grad[r, i] = alpha
            alpha_sum += alpha
        _centre(grad[r], alpha_sum, lam)
        loss[r] = (dual - plan_mass) / lam
        shift = gauge_shift(top_u, top_v, limit)
        for i in range(K):
            u[r, i] = np.exp(log_u[k, i] - shift)
            v[r, i] = np.exp(log_v[k, i] + shift)


@parallel
def one_hot_rows(h, y, M_T, lam, max_m, limit, rows, loss, grad, cost, u, v, n_iter, err, status):
    """Closed form for targets with a single non-zero entry ``j``.

    The only feasible plan is ``T = h e_j^T``; with ``v_j = 1``,
    ``u_i = h_i / G_ij``, so ``log u_i = log h_i + lam M_ij + 1``,
    ``W = <h, M[:, j]> + (1/lam) sum h log h`` and no iteration is needed.
    ``u_i`` is formed as ``h_i e^{lam M_ij + 1}`` when that cannot overflow
    (``lam max(M) + 1 <= limit``), else from its logarithm.
    """
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        j = 0
        while y[r, j] == 0:
            j += 1
        transport = 0.0
        entropy = 0.0
        alpha_sum = 0.0
        top_u = -np.inf
        for i in range(K):
            c = lam * M_T[j, i] + 1.0           # -log G_ij
            alpha = c
            if h[r, i] > 0:
                log_h = np.log(np.float64(h[r, i]))
                alpha += log_h
                entropy += h[r, i] * log_h
                transport += h[r, i] * M_T[j, i]
                top_u = max(top_u, alpha)
            grad[r, i] = alpha
            alpha_sum += alpha
        _centre(grad[r], alpha_sum, lam)
        loss[r] = transport + entropy / lam
        cost[r] = transport
        shift = gauge_shift(top_u, 0.0, limit)
        direct = lam * max_m + 1.0 <= limit
        for i in range(K):
            c = lam * M_T[j, i] + 1.0 - shift
            if direct:
                u[r, i] = h[r, i] * np.exp(c)
            else:
                u[r, i] = np.exp(np.log(np.float64(h[r, i])) + c) if h[r, i] > 0 else 0
            v[r, i] = 0
        v[r, j] = np.exp(shift)
        n_iter[r] = 0
        err[r] = 0
        status[r] = CONVERGED
