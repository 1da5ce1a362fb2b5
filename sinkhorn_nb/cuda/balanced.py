r"""``@cuda.jit`` kernels of smoothed (balanced) transport (twins of
:mod:`sinkhorn_nb.cpu.balanced`): outputs, the one-hot closed form, and Newton's
method on the semi-dual for small target supports.

With :math:`\alpha = \log u / \lambda`, :math:`\beta = \log v / \lambda`,

.. math::
    W = \alpha^\top h + \beta^\top y - \tfrac{1}{\lambda} \textstyle\sum T,
    \qquad \partial W/\partial h = \alpha - \bar\alpha,

with :math:`\alpha_i = -\log(Gv)_i/\lambda` where :math:`h_i = 0`.  Every kernel
works on the rows ``rows`` (int64 row indices).
"""
import math

import numba
from numba import cuda

from ..core import CONVERGED, FAILED
from ..routing import NEWTON_MAX_SUPPORT
from .jit import MAX_ROW_THREADS, device, kernel
from .kernels import (block_max, block_row, block_sum, exp_or_inf, is_finite, log_or_inf,
                      positive_finite, row_status, target_entry)


@device
def gauge_shift(top_u, top_v, limit):
    """Shift ``c`` of the gauge ``(u e^{-c}, v e^{c})`` that balances the largest
    log-scalings when one exceeds ``limit`` (else 0)."""
    if max(top_u, top_v) > limit and is_finite(top_u) and is_finite(top_v):
        return (top_u - top_v) / 2.0
    return 0.0


@device
def centre(grad, r, alpha_sum, lam):
    """``grad[r] = (grad[r] - mean) / lam`` for this thread's entries."""
    K = grad.shape[1]
    mean = alpha_sum / K
    scale = 1.0 / lam
    for i in range(cuda.threadIdx.x, K, cuda.blockDim.x):
        grad[r, i] = (grad[r, i] - mean) * scale


@kernel(lambda t: [(t.a2, t.a2, t.i64, t.i64, t.a1, t.a2, t.a2, t.a2, t.a2, t.f, t.i64, t.a1,
                    t.a2, t.i64)])
def outputs_from_scalings(h, y, y_indptr, y_indices, y_data, u, v, Gv, GTu, lam, rows, loss,
                          grad, status):
    """Loss and gradient of a multiplicative solve; ``status[r] = FAILED`` where a
    scaling or marginal over/underflowed on the support of its mass.  One block
    per row.  The targets are ``y``, or the CSR triplets when ``y`` has no rows
    (:func:`~sinkhorn_nb.cuda.kernels.target_entry`)."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    dual = 0.0
    plan_mass = 0.0
    alpha_sum = 0.0
    bad = 0.0
    for i in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        if not positive_finite(Gv[r, i]):
            bad = 1.0
        if h[r, i] > 0:
            alpha = log_or_inf(u[r, i])
            if not is_finite(alpha):
                bad = 1.0
            dual += h[r, i] * alpha
            plan_mass += u[r, i] * Gv[r, i]
        else:
            alpha = -log_or_inf(Gv[r, i])
        y_ri = target_entry(y, y_indptr, y_indices, y_data, r, i)
        if y_ri > 0:
            beta = log_or_inf(v[r, i])
            if not (is_finite(beta) and positive_finite(GTu[r, i])):
                bad = 1.0
            dual += y_ri * beta
        grad[r, i] = alpha
        alpha_sum += alpha
    dual = block_sum(buf, dual)
    plan_mass = block_sum(buf, plan_mass)
    alpha_sum = block_sum(buf, alpha_sum)
    bad = block_sum(buf, bad)
    centre(grad, r, alpha_sum, lam)
    if cuda.threadIdx.x == 0:
        loss[r] = (dual - plan_mass) / lam
        if bad > 0:
            status[r] = FAILED


@kernel(lambda t: [(t.a2, t.a2, t.f2, t.f2, t.f2, t.f, t.f, t.i64, t.a1, t.a2, t.a2, t.a2)])
def outputs_from_logs(h, y, log_u, log_v, lse_row, lam, limit, rows, loss, grad, u, v):
    """Loss, gradient and scalings from a log-domain solve; ``limit`` bounds the
    log-scalings before the gauge is shifted (:func:`gauge_shift`).  One block
    per row."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    dual = 0.0
    plan_mass = 0.0
    alpha_sum = 0.0
    top_u = -math.inf
    top_v = -math.inf
    for i in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        if h[r, i] > 0:
            alpha = log_u[r, i]
            dual += h[r, i] * alpha
            plan_mass += exp_or_inf(alpha + lse_row[r, i])
            top_u = max(top_u, alpha)
        else:
            alpha = -lse_row[r, i]
        if y[r, i] > 0:
            dual += y[r, i] * log_v[r, i]
            top_v = max(top_v, log_v[r, i])
        grad[r, i] = alpha
        alpha_sum += alpha
    dual = block_sum(buf, dual)
    plan_mass = block_sum(buf, plan_mass)
    alpha_sum = block_sum(buf, alpha_sum)
    top_u = block_max(buf, top_u)
    top_v = block_max(buf, top_v)
    centre(grad, r, alpha_sum, lam)
    shift = gauge_shift(top_u, top_v, limit)
    for i in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        u[r, i] = exp_or_inf(log_u[r, i] - shift)
        v[r, i] = exp_or_inf(log_v[r, i] + shift)
    if cuda.threadIdx.x == 0:
        loss[r] = (dual - plan_mass) / lam


@kernel(lambda t: [(t.a2, t.i64, t.f1, t.a2, t.f1, t.a2, t.b, t.f, t.f, t.f, t.b, t.i64,
                    t.a1, t.a2, t.a1, t.a2, t.a2, t.i64, t.a1, t.i64)])
def one_hot_rows(h, label, mass, M_T, M_column_sums, G_T, divide, lam, lam_max_m, limit,
                 scalings, rows, loss, grad, cost, u, v, n_iter, err, status):
    """Closed form for targets with a single non-zero entry ``j = label[r]``
    (the scan's last non-zero of the row): ``T = h e_j^T``,
    ``log u_i = log h_i + lam M_ij + 1``, ``v_j = 1``; the arguments and choices
    are those of :func:`sinkhorn_nb.cpu.balanced.one_hot_rows`: the gradient is
    centred with ``M_column_sums[j]``; with ``scalings``, ``u`` is ``h / G``
    (``divide``), ``h e^{lam M + 1}`` or the exponential of the logarithm, with
    the gauge shifted only where ``log u`` could exceed ``limit`` (bounded by
    ``lam_max_m + 1 + log mass[r]``).  One block per row."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    K = h.shape[1]
    j = label[r]
    transport = 0.0
    entropy = 0.0
    log_sum = 0.0
    top_u = -math.inf
    for i in range(cuda.threadIdx.x, K, cuda.blockDim.x):
        alpha = lam * M_T[j, i] + 1.0
        if h[r, i] > 0:
            log_h = math.log(h[r, i])
            alpha += log_h
            log_sum += log_h
            entropy += h[r, i] * log_h
            transport += h[r, i] * M_T[j, i]
            top_u = max(top_u, alpha)
        grad[r, i] = alpha
    transport = block_sum(buf, transport)
    entropy = block_sum(buf, entropy)
    log_sum = block_sum(buf, log_sum)
    if scalings:
        shift = 0.0
        if lam_max_m + 1.0 + math.log(mass[r]) > limit:
            shift = gauge_shift(block_max(buf, top_u), 0.0, limit)
        direct = lam_max_m + 1.0 <= limit
        for i in range(cuda.threadIdx.x, K, cuda.blockDim.x):
            if shift == 0.0 and divide:
                u[r, i] = h[r, i] / G_T[j, i] if h[r, i] > 0 else 0.0
            elif shift == 0.0 and direct:
                u[r, i] = h[r, i] * math.exp(lam * M_T[j, i] + 1.0) if h[r, i] > 0 else 0.0
            elif h[r, i] > 0:     # alpha in float64 (grad holds it in the compute dtype)
                u[r, i] = exp_or_inf(lam * M_T[j, i] + 1.0 + math.log(h[r, i]) - shift)
            else:
                u[r, i] = 0.0
            v[r, i] = 0.0
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            v[r, j] = exp_or_inf(shift)
    # sum of alpha = lam * (column sum of M) + K + sum of log h over h > 0
    alpha_sum = lam * M_column_sums[j] + K + log_sum
    centre(grad, r, alpha_sum, lam)
    if cuda.threadIdx.x == 0:
        loss[r] = transport + entropy / lam
        cost[r] = transport
        n_iter[r] = 0
        err[r] = 0.0
        status[r] = CONVERGED


# --------------------------------------------------------------- Newton's method
@device
def laplacian_solve(W, b, x, pivot, s):
    """Grounded Laplacian solve on the first ``s`` nodes (see
    :func:`sinkhorn_nb.cpu.balanced.laplacian_solve`); False for a zero pivot."""
    for m in range(s - 1, 0, -1):
        degree = 0.0
        for j in range(m):
            degree += W[m, j]
        if not degree > 0:
            return False
        pivot[m] = degree
        for j in range(1, m):
            share = W[j, m] / degree
            if share != 0:
                b[j] += share * b[m]
                for i in range(m):
                    if i != j:
                        W[j, i] += share * W[m, i]
    x[0] = 0.0
    for m in range(1, s):
        total = b[m]
        for j in range(1, m):
            total += W[m, j] * x[j]
        x[m] = total / pivot[m]
    return True


@device
def semi_dual_state(h, G_T, index, s, ys, f, v, gv, u, col, gap):
    """At ``v = exp(f)``: ``gv = G v``, ``u = h / G v``, ``col = v * G^T u``,
    ``gap = y_S - col``; returns ``||gap||_2^2 / ||y_S||_1^2`` (see
    :func:`sinkhorn_nb.cpu.balanced.semi_dual_state`)."""
    K = h.shape[0]
    for k in range(s):
        v[k] = exp_or_inf(f[k])
    for i in range(K):
        total = 0.0
        for k in range(s):
            total += G_T[index[k], i] * v[k]
        gv[i] = total
        if h[i] == 0:
            u[i] = 0.0
        else:
            u[i] = h[i] / total if total > 0 else math.inf
    norm = 0.0
    for k in range(s):
        total = 0.0
        for i in range(K):
            total += G_T[index[k], i] * u[i]
        col[k] = v[k] * total
        gap[k] = ys[k] - col[k]
        norm += gap[k] * gap[k]
    mass = 0.0
    for k in range(s):
        mass += ys[k]
    return norm / (mass * mass)


@device
def semi_dual_value(h, s, ys, f, gv):
    """The semi-dual ``F(f) = y_S . f - h . log(G v)``."""
    value = 0.0
    for k in range(s):
        value += ys[k] * f[k]
    for i in range(h.shape[0]):
        if h[i] != 0:
            value -= h[i] * log_or_inf(gv[i])
    return value


@device
def newton_step(G_T, index, s, v, u, gv, gap, weight, W, rhs, step, pivot, max_step):
    """Newton direction of the semi-dual (see
    :func:`sinkhorn_nb.cpu.balanced.newton_step`); False when singular."""
    K = u.shape[0]
    for i in range(K):
        weight[i] = u[i] / gv[i] if u[i] > 0 else 0.0
    for a in range(s):
        W[a, a] = 0.0
        for b in range(a + 1, s):
            total = 0.0
            for i in range(K):
                total += G_T[index[a], i] * G_T[index[b], i] * weight[i]
            W[a, b] = v[a] * v[b] * total
            W[b, a] = W[a, b]
    for k in range(s):
        rhs[k] = gap[k]
    if not laplacian_solve(W, rhs, step, pivot, s):
        return False
    largest = 0.0
    for k in range(s):
        largest = max(largest, abs(step[k]))
    if largest > max_step:
        for k in range(s):
            step[k] *= max_step / largest
    return True


@kernel(lambda t: [(t.a2, t.a2, t.i64, t.i64, t.a1, t.a2, t.a2, t.i64, t.a2, t.a2, t.b, t.f1,
                    t.i, t.f, t.i64, t.a1, t.i64, t.a2, t.a2, t.a1, t.f3)])
def newton_rows(h, y, y_indptr, y_indices, y_data, G_T, GM_T, rows, u_out, v_out, warm, mass,
                max_iter, tol, n_iter, err, status, gv_out, gtu_out, cost, work):
    """Balanced rows with at most ``NEWTON_MAX_SUPPORT`` target labels, by Newton's
    method on the semi-dual (the algorithm, stopping test, ``FAILED`` rows and
    outputs of :func:`sinkhorn_nb.cpu.balanced.newton_rows`; a row with more
    labels than its local arrays hold is ``FAILED`` at once).  One thread per
    row; ``work`` is float64 scratch of shape ``(5, slots, K)`` with one slot per
    thread, the row's position in ``rows`` (work in float64 as the CPU does).
    The targets are ``y``, or the CSR triplets when ``y`` has no rows (whose
    entries are then read as they are, without a pass over the ``K`` labels)."""
    k = cuda.grid(1)
    if k >= rows.shape[0]:
        return
    r = rows[k]
    K = h.shape[1]
    index = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.int32)
    ys = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    f = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    v = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    col = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    gap = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    f_try = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    v_try = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    col_try = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    gap_try = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    step = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    rhs = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    pivot = cuda.local.array(NEWTON_MAX_SUPPORT, dtype=numba.float64)
    W = cuda.local.array((NEWTON_MAX_SUPPORT, NEWTON_MAX_SUPPORT), dtype=numba.float64)
    s = 0
    dense = y.shape[0] > 0
    first = 0 if dense else y_indptr[r]
    for p in range(first, K if dense else y_indptr[r + 1]):
        j = p if dense else y_indices[p]
        y_rj = y[r, j] if dense else y_data[p]
        if y_rj > 0 and s == NEWTON_MAX_SUPPORT:     # beyond the local arrays
            status[r] = FAILED
            n_iter[r] = 0
            return
        if y_rj > 0:
            index[s] = j
            ys[s] = y_rj
            start = v_out[r, j] if warm else 1.0
            f[s] = math.log(start) if start > 0 and is_finite(start) else 0.0
            s += 1
    hr = h[r]
    u, gv, u_try, gv_try, weight = work[0, k], work[1, k], work[2, k], work[3, k], work[4, k]
    norm = semi_dual_state(hr, G_T, index, s, ys, f, v, gv, u, col, gap)
    value = math.nan
    it = 0
    stuck = False
    while True:
        marginal = 0.0
        change = 0.0
        for j in range(s):
            marginal += col[j]
            change += abs(gap[j])
        e = change / max(mass[r], marginal)
        if it == max_iter or e < tol or not is_finite(e):
            break
        if not newton_step(G_T, index, s, v, u, gv, gap, weight, W, rhs, step, pivot, 10.0):
            stuck = True
            break
        slope = 0.0
        for j in range(s):
            slope += gap[j] * step[j]
        t = 1.0
        accepted = False
        for _ in range(60):
            for j in range(s):
                f_try[j] = f[j] + t * step[j]
            trial_norm = semi_dual_state(hr, G_T, index, s, ys, f_try, v_try, gv_try, u_try,
                                         col_try, gap_try)
            if is_finite(trial_norm):
                if t == 1.0 and trial_norm <= 0.25 * norm:
                    accepted = True
                    value = math.nan
                    break
                if math.isnan(value):
                    value = semi_dual_value(hr, s, ys, f, gv)
                trial_value = semi_dual_value(hr, s, ys, f_try, gv_try)
                if (trial_value >= value + 1e-4 * t * slope
                        or (abs(trial_value - value) <= 1e-13 * (abs(value) + mass[r])
                            and trial_norm < norm)):
                    accepted = True
                    value = trial_value
                    break
            t *= 0.5
        if not accepted:
            stuck = True
            break
        norm = trial_norm
        for j in range(s):
            f[j] = f_try[j]
            v[j] = v_try[j]
            col[j] = col_try[j]
            gap[j] = gap_try[j]
        for i in range(K):
            gv[i] = gv_try[i]
            u[i] = u_try[i]
        it += 1
    total = 0.0
    for k in range(s):
        dot = 0.0
        for i in range(K):
            dot += GM_T[index[k], i] * u[i]
        total += v[k] * dot
    for j in range(K):
        u_out[r, j] = u[j]
        gv_out[r, j] = gv[j]
        v_out[r, j] = 0.0
    for k in range(s):
        v_out[r, index[k]] = v[k]
        gtu_out[r, index[k]] = col[k] / v[k]
    cost[r] = total
    n_iter[r] = it
    err[r] = e
    status[r] = FAILED if stuck else row_status(e, tol)
