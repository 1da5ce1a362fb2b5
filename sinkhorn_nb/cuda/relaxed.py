r"""``@cuda.jit`` kernels of relaxed (unbalanced) transport (twins of
:mod:`sinkhorn_nb.cpu.relaxed`): outputs and empty rows.

The value is the objective at :math:`T = \operatorname{diag}(u) G \operatorname{diag}(v)`,

.. math::
    W_{KL} = \langle T, M\rangle + \tfrac1\lambda\textstyle\sum T\log T
    + \gamma_a \widetilde{KL}(T1\|h) + \gamma_b \widetilde{KL}(T^\top 1\|y),
    \qquad \partial W_{KL}/\partial h = \gamma_a (1 - T1 \oslash h)
    = -\gamma_a \operatorname{expm1}(-\alpha / \gamma_a),

(from the potential :math:`\alpha = \log u / \lambda`, as on the CPU) and
:math:`-\infty` where :math:`h_i = 0`; each entry of the KL terms is
summed as :math:`z\,\varphi(w/z - 1)` (:func:`kl_term`, as on the CPU).  Every
kernel works on the rows ``rows`` (int64 row indices), one block per row.
"""
import math

import numba
from numba import cuda

from ..core import CONVERGED, FAILED
from .jit import MAX_ROW_THREADS, device, kernel
from .kernels import (block_row, block_sum, exp_or_inf, log_or_inf, positive_finite,
                      target_entry)


#: :func:`kl_term` sums a series where ``1/3 <= w / z <= 2`` (as on the CPU).
SERIES_LOW, SERIES_HIGH = 1.0 / 3.0, 2.0


@device
def expm1_or_inf(x):
    """``expm1 x``, overflowing to ``inf`` (the simulator's ``math.expm1`` raises)."""
    return math.expm1(x) if x < 709.0 else math.inf


@device
def kl_term(w, z, log_w):
    r"""One entry :math:`w\log(w/z) - w + z` of :math:`\widetilde{KL}` for
    ``w, z > 0`` (``log_w = log w``), to a few ulps relative, in float64: the
    twin of :func:`sinkhorn_nb.cpu.relaxed.kl_term` (see there for the series)."""
    w = numba.float64(w)
    z = numba.float64(z)
    ratio = w / z
    if ratio >= SERIES_LOW and ratio <= SERIES_HIGH:
        x = (w - z) / z
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
    if ratio > 0 and not math.isinf(ratio):
        return w * math.log(ratio) - w + z
    return w * (numba.float64(log_w) - math.log(z)) - w + z     # w / z over- or underflows


@device
def marginal_terms(mass, marginal, log_scaling, log_marginal):
    """Contributions of one label to ``sum T log T + lam <T, M>`` and to the KL
    term (:func:`kl_term`), from its marginal ``marginal > 0`` and mass ``mass > 0``."""
    return marginal * log_scaling, kl_term(marginal, mass, log_marginal)


@kernel(lambda t: [(t.a2, t.a2, t.i64, t.i64, t.a1, t.a2, t.a2, t.a2, t.a2, t.f, t.f, t.f,
                    t.i64, t.a1, t.a2, t.i64)])
def outputs_from_scalings(h, y, y_indptr, y_indices, y_data, u, v, Gv, GTu, lam, gamma_a,
                          gamma_b, rows, loss, grad, status):
    """Objective and gradient of a multiplicative solve; ``status[r] = FAILED``
    where a scaling or marginal over/underflowed on the support of its mass.
    The targets are ``y``, or the CSR triplets when ``y`` has no rows
    (:func:`~sinkhorn_nb.cuda.kernels.target_entry`)."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    entropic = 0.0
    kl_a = 0.0
    kl_b = 0.0
    bad = 0.0
    for i in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        if not positive_finite(Gv[r, i]):
            bad = 1.0
        row = 0.0
        if h[r, i] > 0:
            if not positive_finite(u[r, i]):
                bad = 1.0
            row = u[r, i] * Gv[r, i]
            if row > 0 and positive_finite(u[r, i]):
                e, kl = marginal_terms(h[r, i], row, math.log(u[r, i]), math.log(row))
                entropic += e - row
                kl_a += kl
            else:
                kl_a += h[r, i] - row
            grad[r, i] = -gamma_a * expm1_or_inf(-log_or_inf(u[r, i]) / (lam * gamma_a))
        else:
            grad[r, i] = -math.inf
        col = 0.0
        y_ri = target_entry(y, y_indptr, y_indices, y_data, r, i)
        if y_ri > 0:
            if not (positive_finite(v[r, i]) and positive_finite(GTu[r, i])):
                bad = 1.0
            col = v[r, i] * GTu[r, i]
            if col > 0 and positive_finite(v[r, i]):
                e, kl = marginal_terms(y_ri, col, math.log(v[r, i]), math.log(col))
                entropic += e
                kl_b += kl
            else:
                kl_b += y_ri - col
    entropic = block_sum(buf, entropic)
    kl_a = block_sum(buf, kl_a)
    kl_b = block_sum(buf, kl_b)
    bad = block_sum(buf, bad)
    if cuda.threadIdx.x == 0:
        loss[r] = entropic / lam + gamma_a * kl_a + gamma_b * kl_b
        if bad > 0:
            status[r] = FAILED


@kernel(lambda t: [(t.a2, t.a2, t.f2, t.f2, t.f2, t.f2, t.f, t.f, t.f, t.i64, t.a1, t.a2,
                    t.a2, t.a2)])
def outputs_from_logs(h, y, log_u, log_v, lse_row, lse_col, lam, gamma_a, gamma_b, rows,
                      loss, grad, u, v):
    """Objective, gradient and scalings from a log-domain solve."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    entropic = 0.0
    kl_a = 0.0
    kl_b = 0.0
    for i in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        row = 0.0
        if h[r, i] > 0:
            log_row = log_u[r, i] + lse_row[r, i]
            row = exp_or_inf(log_row)
            if row > 0:
                e, kl = marginal_terms(h[r, i], row, log_u[r, i], log_row)
                entropic += e - row
                kl_a += kl
            else:
                kl_a += h[r, i]
            grad[r, i] = -gamma_a * expm1_or_inf(-log_u[r, i] / (lam * gamma_a))
        else:
            grad[r, i] = -math.inf
        col = 0.0
        if y[r, i] > 0:
            log_col = log_v[r, i] + lse_col[r, i]
            col = exp_or_inf(log_col)
            if col > 0:
                e, kl = marginal_terms(y[r, i], col, log_v[r, i], log_col)
                entropic += e
                kl_b += kl
            else:
                kl_b += y[r, i]
        u[r, i] = exp_or_inf(log_u[r, i])
        v[r, i] = exp_or_inf(log_v[r, i])
    entropic = block_sum(buf, entropic)
    kl_a = block_sum(buf, kl_a)
    kl_b = block_sum(buf, kl_b)
    if cuda.threadIdx.x == 0:
        loss[r] = entropic / lam + gamma_a * kl_a + gamma_b * kl_b


@kernel(lambda t: [(t.a2, t.a2, t.i64, t.i64, t.a1, t.f, t.f, t.i64, t.a1, t.a2, t.a1, t.a2,
                    t.a2, t.i64, t.a1, t.i64)])
def empty_rows(h, y, y_indptr, y_indices, y_data, gamma_a, gamma_b, rows, loss, grad, cost, u,
               v, n_iter, err, status):
    """Rows where ``h`` or ``y`` has zero mass: ``T = 0``, value
    ``gamma_a sum(h) + gamma_b sum(y)`` (the targets are ``y``, or the CSR
    triplets when ``y`` has no rows:
    :func:`~sinkhorn_nb.cuda.kernels.target_entry`)."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    total = 0.0
    for i in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        total += gamma_a * h[r, i] + gamma_b * target_entry(y, y_indptr, y_indices, y_data,
                                                            r, i)
        grad[r, i] = gamma_a if h[r, i] > 0 else -math.inf
        u[r, i] = 0.0
        v[r, i] = 0.0
    total = block_sum(buf, total)
    if cuda.threadIdx.x == 0:
        loss[r] = total
        cost[r] = 0.0
        n_iter[r] = 0
        err[r] = 0.0
        status[r] = CONVERGED
