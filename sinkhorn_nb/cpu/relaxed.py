r"""Kernels of relaxed (unbalanced, KL-penalized) transport: outputs and empty rows.

The value is the objective at :math:`T = \operatorname{diag}(u) G \operatorname{diag}(v)`,

.. math::
    W_{KL} = \langle T, M\rangle + \tfrac1\lambda\textstyle\sum T\log T
    + \gamma_a \widetilde{KL}(T1\|h) + \gamma_b \widetilde{KL}(T^\top 1\|y),
    \qquad \partial W_{KL}/\partial h = \gamma_a (1 - T1 \oslash h)
    = -\gamma_a \operatorname{expm1}(-\alpha / \gamma_a),

the gradient computed from the potential :math:`\alpha = \log u / \lambda` (the
two forms agree at the optimum, where :math:`T1 \oslash h = e^{-\alpha/\gamma_a}`;
away from it, as when a row stops at ``tol``, the marginal form is off by
``gamma_a`` times the marginal's error, the potential's form only by the
potential's), the value computed with :math:`\sum T\log T = \sum_i r_i\log u_i + \sum_j c_j \log v_j
- \lambda\langle T, M\rangle - \sum T` (row and column marginals :math:`r, c`)
and :math:`\widetilde{KL}(w\|z) = w^\top\log(w \oslash z) - 1^\top w + 1^\top z`
(``0 log 0 = 0``), summed entry by entry as :math:`z_i\,\varphi(w_i/z_i - 1)`
with :math:`\varphi(x) = (1+x)\log(1+x) - x` (:func:`kl_term`): as the
penalties grow the marginals approach the measures, the three terms of an entry
cancel, and a penalty times their rounding error would swamp the value.  Where
:math:`h_i = 0` the derivative is its limit :math:`-\infty`.  Every kernel
writes the rows ``rows`` of the caller's arrays.
"""
import numpy as np
from numba import prange

from ..core import CONVERGED, FAILED
from .kernels import compiled, parallel, positive_finite, target_row


#: :func:`kl_term` sums a series where ``1/3 <= w / z <= 2``; the closed form
#: beyond loses at most a few ulps to cancellation.
SERIES_LOW, SERIES_HIGH = 1.0 / 3.0, 2.0


@compiled
def kl_term(w, z, log_w):
    r"""One entry :math:`w\log(w/z) - w + z` of :math:`\widetilde{KL}` for
    ``w, z > 0`` (``log_w = log w``), to a few ulps relative.

    It is :math:`z\,\varphi(x)` with :math:`x = (w - z)/z` and
    :math:`\varphi(x) = (1+x)\log(1+x) - x`.  Near :math:`w = z` the three terms
    cancel; there, with :math:`s = x/(2+x)` (so :math:`\log(1+x) = 2\,
    \mathrm{artanh}\, s`),

    .. math:: \varphi = \frac{2s^2}{1-s}\Bigl(1 + (1+s)\,s\sum_{k\ge0}
              \frac{s^{2k}}{2k+3}\Bigr),

    where the bracket is 1 plus a correction below 0.15 in magnitude for
    :math:`-1/2 \le s \le 1/3` (:math:`1/3 \le w/z \le 2`), so nothing
    cancels.  Computed in float64 whatever the input dtype.
    """
    w = np.float64(w)
    z = np.float64(z)
    ratio = w / z
    if ratio >= SERIES_LOW and ratio <= SERIES_HIGH:
        x = (w - z) / z             # exact difference: x to an ulp even where w ~ z
        s = x / (2.0 + x)
        s2 = s * s
        tail = 0.0
        power = 1.0
        k = 3.0
        while True:
            term = power / k
            tail += term
            if term <= 1e-17 * tail:
                break
            power *= s2
            k += 2.0
        return z * (2.0 * s2 * (1.0 + (1.0 + s) * s * tail) / (1.0 - s))
    if ratio > 0 and ratio < np.inf:
        return w * np.log(ratio) - w + z
    return w * (np.float64(log_w) - np.log(z)) - w + z     # w / z over- or underflows


@compiled
def marginal_terms(mass, marginal, log_scaling, log_marginal):
    """Contributions of one label to ``sum T log T + lam <T, M>`` and to the KL
    term (:func:`kl_term`), from its marginal ``marginal > 0`` and mass ``mass > 0``."""
    return marginal * log_scaling, kl_term(marginal, mass, log_marginal)


@parallel
def outputs_from_scalings(h, y, y_indptr, y_indices, y_data, u, v, Gv, GTu, lam, gamma_a,
                          gamma_b, rows, loss, grad, status):
    """Objective and gradient of a multiplicative solve; ``status[r] = FAILED``
    where a scaling or marginal over/underflowed on the support of its mass.
    The targets are ``y``, or the CSR triplets when ``y`` has no rows
    (:func:`~sinkhorn_nb.cpu.kernels.target_row`)."""
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        yr = target_row(y, y_indptr, y_indices, y_data, r)
        entropic = 0.0       # sum T log T + lam <T, M>
        kl_a = 0.0
        kl_b = 0.0
        ok = True
        for i in range(K):
            ok &= positive_finite(Gv[r, i])
            row = 0.0
            if h[r, i] > 0:
                ok &= positive_finite(u[r, i])
                row = np.float64(u[r, i]) * Gv[r, i]
                if row > 0:
                    e, kl = marginal_terms(h[r, i], row, np.log(np.float64(u[r, i])),
                                           np.log(row))
                    entropic += e - row
                    kl_a += kl
                else:
                    kl_a += h[r, i]
                grad[r, i] = -gamma_a * np.expm1(-np.log(np.float64(u[r, i])) / (lam * gamma_a))
            else:
                grad[r, i] = -np.inf
            col = 0.0
            if yr[i] > 0:
                ok &= positive_finite(v[r, i]) and positive_finite(GTu[r, i])
                col = np.float64(v[r, i]) * GTu[r, i]
                if col > 0:
                    e, kl = marginal_terms(yr[i], col, np.log(np.float64(v[r, i])),
                                           np.log(col))
                    entropic += e
                    kl_b += kl
                else:
                    kl_b += yr[i]
        loss[r] = entropic / lam + gamma_a * kl_a + gamma_b * kl_b
        if not ok:
            status[r] = FAILED


@parallel
def outputs_from_logs(h, y, log_u, log_v, lse_row, lse_col, lam, gamma_a, gamma_b, rows,
                      loss, grad, u, v):
    """Objective, gradient and scalings from a log-domain solve (``(n, K)``
    float64 ``log_u``, ``log_v``, ``lse_row``, ``lse_col``, read on ``rows``)."""
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        entropic = 0.0
        kl_a = 0.0
        kl_b = 0.0
        for i in range(K):
            row = 0.0
            if h[r, i] > 0:
                log_row = log_u[r, i] + lse_row[r, i]
                row = np.exp(log_row)
                if row > 0:
                    e, kl = marginal_terms(h[r, i], row, log_u[r, i], log_row)
                    entropic += e - row
                    kl_a += kl
                else:
                    kl_a += h[r, i]
                grad[r, i] = -gamma_a * np.expm1(-log_u[r, i] / (lam * gamma_a))
            else:
                grad[r, i] = -np.inf
            col = 0.0
            if y[r, i] > 0:
                log_col = log_v[r, i] + lse_col[r, i]
                col = np.exp(log_col)
                if col > 0:
                    e, kl = marginal_terms(y[r, i], col, log_v[r, i], log_col)
                    entropic += e
                    kl_b += kl
                else:
                    kl_b += y[r, i]
            u[r, i] = np.exp(log_u[r, i])
            v[r, i] = np.exp(log_v[r, i])
        loss[r] = entropic / lam + gamma_a * kl_a + gamma_b * kl_b


@parallel
def empty_rows(h, y, y_indptr, y_indices, y_data, gamma_a, gamma_b, rows, loss, grad, cost, u,
               v, n_iter, err, status):
    """Rows where ``h`` or ``y`` has zero mass: the optimal plan is ``T = 0``, with
    value ``gamma_a sum(h) + gamma_b sum(y)`` (the targets are ``y``, or the CSR
    triplets when ``y`` has no rows: :func:`~sinkhorn_nb.cpu.kernels.target_row`)."""
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        yr = target_row(y, y_indptr, y_indices, y_data, r)
        total = 0.0
        for i in range(K):
            total += gamma_a * h[r, i] + gamma_b * yr[i]
            grad[r, i] = gamma_a if h[r, i] > 0 else -np.inf
            u[r, i] = 0
            v[r, i] = 0
        loss[r] = total
        cost[r] = 0
        n_iter[r] = 0
        err[r] = 0
        status[r] = CONVERGED
