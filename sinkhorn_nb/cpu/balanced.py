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
import numba
import numpy as np
from numba import prange

from ..core import CONVERGED, FAILED, FUSED_LOG_MIN_LABELS
from .kernels import (compiled, dot, dot3, parallel, positive_finite, reduction, row_status,
                      start_scaling, target_row, target_support)
from .logarithm import float_bits, is_subnormal_bits, log_of_bits


@compiled
def centre(grad, r, alpha_sum, lam):
    """``grad[r] = (grad[r] - mean(grad[r])) / lam`` given ``alpha_sum = sum(grad[r])``."""
    K = grad.shape[1]
    mean = alpha_sum / K
    scale = 1.0 / lam
    for i in range(K):
        grad[r, i] = (grad[r, i] - mean) * scale


def outputs_from_scalings(h, y, y_indptr, y_indices, y_data, u, v, Gv, GTu, lam, rows, loss,
                          grad, status):
    """Loss and gradient of a multiplicative solve; ``status[r] = FAILED`` where a
    scaling or marginal over/underflowed on the support of its mass.

    The targets are ``y``, or the CSR triplets when ``y`` has no rows
    (:func:`~sinkhorn_nb.cpu.kernels.target_support`).  ``log u`` (into
    ``grad``) and ``log v`` are taken by NumPy's vectorized logarithm, then
    :func:`outputs_from_log_scalings` forms the outputs.
    """
    log_u = log_on_rows(u, rows, grad)
    log_v = log_on_rows(v, rows, np.empty_like(v))
    outputs_from_log_scalings(h, y, y_indptr, y_indices, y_data, u, log_u, log_v, Gv, GTu, lam,
                              rows, loss, grad, status)


def log_on_rows(x, rows, out):
    """``out[rows] = log x[rows]`` (NumPy's vectorized logarithm); returns ``out``."""
    with np.errstate(divide="ignore"):
        if rows.size == x.shape[0]:
            np.log(x, out=out)
        else:
            out[rows] = np.log(x[rows])
    return out


@parallel
def outputs_from_log_scalings(h, y, y_indptr, y_indices, y_data, u, log_u, log_v, Gv, GTu, lam,
                              rows, loss, grad, status):
    """:func:`outputs_from_scalings` given ``log_u`` and ``log_v`` (``log_u`` may be
    ``grad`` itself: each entry is read before it is written)."""
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        yr = target_row(y, y_indptr, y_indices, y_data, r)
        dual = 0.0
        plan_mass = 0.0
        alpha_sum = 0.0
        ok = True
        for i in range(K):
            ok &= positive_finite(Gv[r, i])
            if h[r, i] > 0:
                alpha = np.float64(log_u[r, i])
                ok &= np.isfinite(alpha)
                dual += h[r, i] * alpha
                plan_mass += np.float64(u[r, i]) * Gv[r, i]
            else:
                alpha = -np.log(np.float64(Gv[r, i]))
            if yr[i] > 0:
                ok &= np.isfinite(log_v[r, i]) and positive_finite(GTu[r, i])
                dual += yr[i] * np.float64(log_v[r, i])
            grad[r, i] = alpha
            alpha_sum += alpha
        centre(grad, r, alpha_sum, lam)
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
    """Loss, gradient and scalings from a log-domain solve (``(n, K)`` float64
    ``log_u``, ``log_v``, ``lse_row``, read on ``rows``); ``limit`` bounds the
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
                alpha = log_u[r, i]
                dual += h[r, i] * alpha
                plan_mass += np.exp(alpha + lse_row[r, i])
                top_u = max(top_u, alpha)
            else:
                alpha = -lse_row[r, i]
            if y[r, i] > 0:
                dual += y[r, i] * log_v[r, i]
                top_v = max(top_v, log_v[r, i])
            grad[r, i] = alpha
            alpha_sum += alpha
        centre(grad, r, alpha_sum, lam)
        loss[r] = (dual - plan_mass) / lam
        shift = gauge_shift(top_u, top_v, limit)
        for i in range(K):
            u[r, i] = np.exp(log_u[r, i] - shift)
            v[r, i] = np.exp(log_v[r, i] + shift)


@reduction
def log_row(bits, mantissa_bits, bias, r, out):
    """``out[r] = log h[r]`` by :func:`~sinkhorn_nb.cpu.logarithm.log_of_bits`
    (vectorized) from the bits of ``h``; returns the sum of the row's
    logarithms and the row's smallest bit pattern, read as a signed integer.

    The row is right (each logarithm within 1 ulp) when that pattern is at least
    ``1 << mantissa_bits``: every entry is then a positive normal number.  A
    zero, a subnormal entry or ``-0.0`` (whose sign bit makes its pattern the
    most negative integer) falls below it, and :func:`correct_log_row` must
    correct the row."""
    total = 0.0
    smallest_bits = bits[r, 0]
    for i in range(bits.shape[1]):
        value = log_of_bits(bits[r, i], mantissa_bits, bias)
        out[r, i] = value
        total += value
        smallest_bits = min(smallest_bits, bits[r, i])
    return total, smallest_bits


@compiled
def correct_log_row(h, bits, mantissa_bits, r, log_h):
    """Make ``log_h[r]`` the logarithm of ``h[r]`` read as 0 where ``h_ri = 0``
    (``log_h[r]`` holds ``log h[r]`` where ``h[r]`` is positive and normal; the
    rare subnormal entries are recomputed by ``np.log``); returns its sum."""
    total = 0.0
    for i in range(h.shape[1]):
        value = 0.0
        if h[r, i] > 0:
            value = (np.log(np.float64(h[r, i])) if is_subnormal_bits(bits[r, i], mantissa_bits)
                     else np.float64(log_h[r, i]))
        log_h[r, i] = value
        total += value
    return total


@reduction
def one_hot_gradient(h, M_T, r, j, column_sum, log_sum, lam, grad):
    r"""The centred gradient of row ``r`` with label ``j`` from ``grad[r] = log h[r]``
    (0 where ``h_ri = 0``), in place; returns ``<h[r], M[:, j]>`` and
    ``sum_i h_ri log h_ri``.

    With :math:`\alpha_i = \lambda M_{ij} + 1 + \log h_i`, the centred gradient is
    :math:`(\alpha_i - \bar\alpha)/\lambda = M_{ij} + \log h_i / \lambda - c`
    with :math:`c = \sum_i M_{ij} / K + \sum_i \log h_i / (\lambda K)`: one pass,
    given ``column_sum`` :math:`= \sum_i M_{ij}` and ``log_sum``
    :math:`= \sum_i \log h_i`.
    """
    K = h.shape[1]
    scale = 1.0 / lam
    c = column_sum / K + log_sum / K * scale
    transport = 0.0
    entropy = 0.0
    for i in range(K):
        log_h = np.float64(grad[r, i])
        transport += h[r, i] * M_T[j, i]
        entropy += h[r, i] * log_h
        grad[r, i] = M_T[j, i] + log_h * scale - c
    return transport, entropy


@compiled
def one_hot_scalings(h, log_h, M_T, G_T, r, j, divide, direct, lam, limit, top_bound, u, v):
    """Scalings of row ``r`` with label ``j`` from ``log_h[r] = log h[r]``:
    ``u = h / G[:, j]`` with ``divide``, else ``h e^{lam M[:, j] + 1}`` when
    ``direct`` (it cannot overflow), else ``e^alpha`` with
    ``alpha = log u = lam M[:, j] + 1 + log h``; ``v = e_j``.  The gauge is
    shifted when ``log u`` would overflow, which ``top_bound >= max(alpha)``
    rules out below ``limit``."""
    K = h.shape[1]
    shift = 0.0
    if top_bound > limit:
        top_u = -np.inf
        for i in range(K):
            if h[r, i] > 0:
                top_u = max(top_u, lam * M_T[j, i] + 1.0 + log_h[r, i])
        shift = gauge_shift(top_u, 0.0, limit)
    if shift == 0.0 and divide:
        for i in range(K):
            u[r, i] = h[r, i] / G_T[j, i] if h[r, i] > 0 else 0.0
    elif shift == 0.0 and direct:
        for i in range(K):
            u[r, i] = h[r, i] * np.exp(lam * M_T[j, i] + 1.0) if h[r, i] > 0 else 0.0
    else:
        for i in range(K):
            alpha = lam * M_T[j, i] + 1.0 + log_h[r, i]
            u[r, i] = np.exp(alpha - shift) if h[r, i] > 0 else 0.0
    for i in range(K):
        v[r, i] = 0
    v[r, j] = np.exp(shift) if shift != 0.0 else 1.0


def one_hot_rows(h, label, mass, M_T, M_column_sums, G_T, divide, lam, lam_max_m, limit,
                 scalings, rows, loss, grad, cost, u, v, n_iter, err, status):
    r"""Closed form for targets with a single non-zero entry ``j = label[r]``.

    Rows of at least ``FUSED_LOG_MIN_LABELS`` labels take their logarithm inside
    :func:`one_hot_closed_form`; shorter rows take it from one NumPy pass over
    the batch first.  See :func:`one_hot_closed_form` for the arguments.
    """
    fused = h.shape[1] >= FUSED_LOG_MIN_LABELS
    if not fused:
        log_on_rows(h, rows, grad)
    one_hot_closed_form(h, *float_bits(h), fused, label, mass, M_T, M_column_sums, G_T, divide,
                        lam, lam_max_m, limit, scalings, rows, loss, grad, cost, u, v, n_iter,
                        err, status)


@parallel
def one_hot_closed_form(h, bits, mantissa_bits, bias, fused, label, mass, M_T, M_column_sums,
                        G_T, divide, lam, lam_max_m, limit, scalings, rows, loss, grad, cost, u,
                        v, n_iter, err, status):
    r"""Closed form for targets with a single non-zero entry ``j = label[r]``.

    The only feasible plan is ``T = h e_j^T``; with ``v_j = 1``,
    ``u_i = h_i / G_ij``, so ``log u_i = log h_i + lam M_ij + 1``,
    ``W = <h, M[:, j]> + (1/lam) sum h log h`` and no iteration is needed.

    With ``fused`` the logarithm is computed row by row into ``grad``
    (:func:`log_row`, with ``bits``, ``mantissa_bits``, ``bias`` from
    :func:`~sinkhorn_nb.cpu.logarithm.float_bits`), so that each row is read
    from memory once; otherwise ``grad`` holds ``log h`` on ``rows`` already
    (one NumPy pass over the batch, faster for short rows).  Rows with a zero,
    ``-0.0`` or subnormal entry, and every row whose logarithms came from NumPy,
    are then corrected (:func:`correct_log_row`), and
    :func:`one_hot_gradient` turns the logarithms into the centred gradient
    (``M_column_sums[j]`` is :math:`\sum_i M_{ij}`).  With ``scalings``, ``u`` and
    ``v`` are formed first (:func:`one_hot_scalings`; ``divide``: ``G_T`` is
    built and accurate; ``lam_max_m`` is ``lam * max(M)``; ``mass`` holds the
    row masses, and ``h_i <= mass`` bounds ``log u``); without, those rows are
    left untouched.
    """
    direct = lam_max_m + 1.0 <= limit
    smallest_normal = 1 << mantissa_bits        # bits of the smallest positive normal
    for k in prange(rows.size):
        r = rows[k]
        j = label[r]
        # (in float32, log_sum adds the logarithms before they are rounded into
        # grad: the gradient's sum is off by float32 rounding, as it would be anyway)
        log_sum, smallest_bits = 0.0, 0
        if fused:
            log_sum, smallest_bits = log_row(bits, mantissa_bits, bias, r, grad)
        if not smallest_bits >= smallest_normal:    # NumPy's logs, zeros or subnormals
            log_sum = correct_log_row(h, bits, mantissa_bits, r, grad)
        if scalings:
            top_bound = lam_max_m + 1.0 + np.log(mass[r])
            one_hot_scalings(h, grad, M_T, G_T, r, j, divide, direct, lam, limit, top_bound,
                             u, v)
        transport, entropy = one_hot_gradient(h, M_T, r, j, M_column_sums[j], log_sum,
                                              lam, grad)
        loss[r] = transport + entropy / lam
        cost[r] = transport
        n_iter[r] = 0
        err[r] = 0
        status[r] = CONVERGED


@compiled
def laplacian_solve(W, b, x, pivot, s):
    """Solve the grounded Laplacian system ``(D - W) x = b`` with ``x[0] = 0``.

    ``W`` (s x s, symmetric, non-negative; overwritten) holds the edge weights
    of a graph whose node 0 is grounded, ``D`` its weighted degrees.  Gaussian
    elimination of nodes ``s - 1 .. 1`` keeps every Schur complement a
    Laplacian and recomputes each pivot as a sum of non-negative weights, so
    no subtraction loses precision however unequal the weights (the
    Grassmann-Taksar-Heyman idea).  Works on the first ``s`` nodes; ``pivot``
    is scratch.  ``b[0]`` is not read; ``b`` is overwritten.  False when a node
    is cut off (a zero pivot).
    """
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


@compiled
def semi_dual_state(h, G_T, index, s, ys, f, v, gv, u, col, gap):
    """At ``v = exp(f)`` on the support ``index[:s]``: ``gv = G v``, ``u = h / G v``
    (exact row marginal), ``col = v * G^T u`` and ``gap = y_S - col``; returns
    ``||gap||_2^2 / ||y_S||_1^2`` (relative, so that it neither underflows nor
    overflows at extreme masses)."""
    for k in range(s):
        v[k] = np.exp(f[k])
    gv[:] = 0
    for k in range(s):
        if v[k] != 0:
            G_k = G_T[index[k]]
            for i in range(h.size):
                gv[i] += v[k] * G_k[i]
    for i in range(h.size):
        u[i] = h[i] / gv[i] if h[i] != 0 else 0.0
    norm = 0.0
    for k in range(s):
        col[k] = v[k] * dot(G_T[index[k]], u)
        gap[k] = ys[k] - col[k]
        norm += gap[k] * gap[k]
    mass = 0.0
    for k in range(s):
        mass += ys[k]
    return norm / (mass * mass)


@compiled
def semi_dual_value(h, s, ys, f, gv):
    """The semi-dual ``F(f) = y_S . f - h . log(G v)`` (``gv = G v``)."""
    value = 0.0
    for k in range(s):
        value += ys[k] * f[k]
    for i in range(h.size):
        if h[i] != 0:
            value -= h[i] * np.log(gv[i])
    return value


@compiled
def newton_step(G_T, index, s, v, u, gv, gap, weight, W, rhs, step, pivot, max_step):
    """Newton direction ``step`` of the semi-dual at ``v``: solves ``L step = gap``.

    ``L = diag(col) - C`` (minus the Hessian) is the Laplacian of the graph on the
    support whose edge weights :math:`C_{kl} = \\sum_i h_i P_{ik} P_{il}`
    (:math:`P_{ik} = G_{ik} v_k / (Gv)_i`, the share of label ``i``'s mass sent to
    ``k``) are formed directly and solved without cancellation
    (:func:`laplacian_solve`), however weakly the labels are coupled.  The gauge
    ``f + t 1`` is fixed by holding the first label's ``f``.  The step is scaled
    to at most ``max_step`` in every coordinate (a factor ``e^max_step`` on
    ``v``).  False when the system is singular.
    """
    K = u.shape[0]
    for i in range(K):
        weight[i] = u[i] / gv[i] if u[i] > 0 else 0.0      # h_i / (Gv)_i^2
    for a in range(s):
        W[a, a] = 0.0
        for b in range(a + 1, s):
            W[a, b] = v[a] * v[b] * dot3(G_T[index[a]], G_T[index[b]], weight)
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


@parallel
def newton_rows(h, y, y_indptr, y_indices, y_data, G_T, GM_T, rows, u_out, v_out, warm, mass,
                max_iter, tol, n_iter, err, status, gv_out, gtu_out, cost, work):
    r"""Balanced rows with small target supports, by Newton's method on the semi-dual.

    With ``S = supp(y)`` (``s`` labels) and :math:`f = \log v_S`, the balanced
    problem is the maximum of the concave function

    .. math:: F(f) = \sum_{k} y_k f_k - \sum_i h_i \log \sum_{k} G_{ik} e^{f_k},

    whose gradient is the column-marginal gap ``y_S - v_S * G^T u`` (with
    ``u = h / G v``, the row marginal exact) and whose Hessian is minus a graph
    Laplacian (:func:`newton_step`).  A full step that halves the gap's norm is
    taken as it is; otherwise the step is halved until ``F`` rises by Armijo's
    rule (or, where ``F`` no longer moves beyond rounding, until the gap's norm
    falls).  The stopping test is Sinkhorn's (``err = ||y - col||_1 /
    max(||y||_1, ||col||_1)``), checked at every step; ``n_iter`` counts Newton
    steps.  A row where no step makes progress before it converges (a singular
    system, an overflow, a line search that fails) is ``FAILED``, for the plan
    to hand on (:func:`sinkhorn_nb.routing.hand_on`).  ``work`` is float64
    scratch of shape ``(5, slots, K)``, one slot per thread solving rows at once
    (here the slot of Numba's thread ``numba.get_thread_id()``, so there are at
    least as many as its thread pool; on the GPU one per row of ``rows``): a
    thread reuses its slot, which stays in cache, row after row.  Outputs as in
    :func:`~sinkhorn_nb.cpu.kernels.sparse_scaling_iterations`, and so is the
    reading of the targets (``y``, or the CSR triplets when ``y`` has no rows).
    """
    for k in prange(rows.size):
        r = rows[k]
        index, ys = target_support(y, y_indptr, y_indices, y_data, r)
        s = index.size
        hr = h[r]
        start = np.empty(s, dtype=v_out.dtype)
        start_scaling(ys, v_out[r][index], warm, start)
        f = np.empty(s)
        for j in range(s):
            f[j] = np.log(start[j]) if start[j] > 0 and np.isfinite(start[j]) else 0.0
        v, col, gap = np.empty(s), np.empty(s), np.empty(s)
        f_try, v_try, col_try, gap_try = np.empty(s), np.empty(s), np.empty(s), np.empty(s)
        rhs, step, pivot = np.empty(s), np.empty(s), np.empty(s)
        W = np.empty((s, s))
        slot = numba.get_thread_id()     # this thread's scratch, reused row after row
        u, gv = work[0, slot], work[1, slot]
        u_try, gv_try, weight = work[2, slot], work[3, slot], work[4, slot]
        norm = semi_dual_state(hr, G_T, index, s, ys, f, v, gv, u, col, gap)
        value = np.nan                     # F(f), computed when a step needs it
        it = 0
        stuck = False
        while True:
            marginal = 0.0
            change = 0.0
            for j in range(s):
                marginal += col[j]
                change += abs(gap[j])
            e = change / max(mass[r], marginal)
            if it == max_iter or e < tol or not np.isfinite(e):
                break
            if not newton_step(G_T, index, s, v, u, gv, gap, weight, W, rhs, step, pivot, 10.0):
                stuck = True
                break
            slope = 0.0                    # F'(f) . step = gap . L^-1 gap > 0
            for j in range(s):
                slope += gap[j] * step[j]
            t = 1.0
            accepted = False
            for _ in range(60):
                for j in range(s):
                    f_try[j] = f[j] + t * step[j]
                trial_norm = semi_dual_state(hr, G_T, index, s, ys, f_try, v_try, gv_try, u_try,
                                             col_try, gap_try)
                if np.isfinite(trial_norm):
                    if t == 1.0 and trial_norm <= 0.25 * norm:
                        accepted = True
                        value = np.nan
                        break
                    if np.isnan(value):
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
            f, f_try = f_try, f
            v, v_try = v_try, v
            col, col_try = col_try, col
            gap, gap_try = gap_try, gap
            gv, gv_try = gv_try, gv
            u, u_try = u_try, u
            it += 1
        total = 0.0
        for j in range(s):
            total += v[j] * dot(GM_T[index[j]], u)
        u_out[r] = u
        gv_out[r] = gv
        v_out[r] = 0
        for j in range(s):
            v_out[r, index[j]] = v[j]
            gtu_out[r, index[j]] = col[j] / v[j]
        cost[r] = total
        n_iter[r] = it
        err[r] = e
        status[r] = FAILED if stuck else row_status(e, tol)
