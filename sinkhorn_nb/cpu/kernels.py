r"""Sinkhorn iteration kernels (``@njit``), shared by both variants.

Both variants alternate two half-updates of the form

.. math:: s \leftarrow (p \oslash A)^{e_s},\qquad A = \text{(other scaling)}\,K_p

where the balanced variant updates ``v`` from ``y`` then ``u`` from ``h``
(exponents 1) and the relaxed variant updates ``u`` from ``h`` then ``v`` from
``y`` (exponents ``a``, ``b``).  Written once with the roles as arguments:

====================  =======  =======  =======  =======  ======  ======
variant               ``p``    ``s``    ``q``    ``t``    ``K_p``  ``K_q``
====================  =======  =======  =======  =======  ======  ======
balanced (v then u)   ``y``    ``v``    ``h``    ``u``    ``G``   ``G.T``
relaxed  (u then v)   ``h``    ``u``    ``y``    ``v``    ``G.T`` ``G``
====================  =======  =======  =======  =======  ======  ======

Every kernel solves the rows listed in ``rows`` (indices into the batch) and
writes its results into those rows of the caller's arrays.  The batched dense
path is a loop in :mod:`sinkhorn_nb.cpu.drivers` that alternates NumPy's BLAS
products with the element-wise kernels here (:func:`update_working_rows`,
:func:`finish_working_rows`) on compact working arrays (where the CUDA twin
masks finished rows, the CPU moves the rows still iterating to the front, so
every product runs over them only); no kernel calls BLAS itself, so one BLAS thread pool
serves the whole process.  Scalings start at
the warm start (``warm``: the values already in the output rows) or at 1, on
the support of their measure, and at 0 off it.

The error of a row, checked every ``check_every`` iterations before the ``s``
update, is the relative L1 change of the ``p``-side marginal that the update
would make,

.. math:: \mathrm{err} = \frac{\|(s - s^{+}) \odot A\|_1}{\max(\|p\|_1, \|s \odot A\|_1)},

which for the balanced variant is :math:`\|v \odot G^\top u - y\|_1 / \|y\|_1`.
Status codes are those of :mod:`sinkhorn_nb.core`; a non-finite error
(over/underflow) is ``FAILED`` and the driver redoes the row in the log domain.
"""
import numpy as np
from numba import njit, prange

from ..core import CONVERGED, FAILED, MAX_ITER, OMEGA_STATE
from .acceleration import (log_overrelaxed, next_omega, overrelaxed_update, stage_exponent,
                           start_omega, translation)

#: Every kernel uses NumPy's floating-point semantics (``x / 0 = inf``, no
#: ``ZeroDivisionError``), so over/underflow shows up as a non-finite error and
#: the element-wise loops vectorize.
compiled = njit(cache=True, error_model="numpy")
parallel = njit(cache=True, parallel=True, error_model="numpy")
#: Kernels whose reductions over a row must vectorize: sums may be reassociated,
#: products contracted into FMAs and the sign of a zero ignored; infinities and
#: NaN keep their meaning.
reduction = njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz"})


@compiled
def row_status(e, tol):
    return CONVERGED if e < tol else (MAX_ITER if np.isfinite(e) else FAILED)


@compiled
def positive_finite(x):
    return x > 0 and x < np.inf


@compiled
def scaled_ratio(p, a, exponent):
    """``(p / a) ** exponent`` with the convention ``0 / anything = 0``."""
    if p == 0:
        return 0.0
    ratio = p / a
    if exponent == 1.0:
        return ratio
    return ratio ** exponent


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def dot(a, b):
    """``a . b`` (reassociated so that it vectorizes; keeps inf/NaN semantics)."""
    total = a.dtype.type(0)
    for i in range(a.size):
        total += a[i] * b[i]
    return total


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def dot3(a, b, c):
    """``sum(a * b * c)`` (reassociated so that it vectorizes)."""
    total = 0.0
    for i in range(a.size):
        total += a[i] * b[i] * c[i]
    return total


@compiled
def ratio_error(p, a, s, exponent, mass):
    """``||(s - (p / a)^exponent) * a||_1 / max(mass, ||s * a||_1)``."""
    change = 0.0
    marginal = 0.0
    for j in range(p.size):
        change += abs(s[j] - scaled_ratio(p[j], a[j], exponent)) * a[j]
        marginal += s[j] * a[j]
    return change / max(mass, marginal)


@compiled
def start_scaling(q, start, warm, out):
    """``out = start`` (``warm``) or 1 on the support of ``q``, 0 off it; returns
    the number of zeros of ``q``."""
    zero = out.dtype.type(0)
    zeros = 0
    for j in range(q.size):
        out[j] = (start[j] if warm else 1) if q[j] != 0 else zero
        zeros += q[j] == 0
    return zeros


@compiled
def start_working_rows(q, start, warm, working, out):
    """``out[k]``: the starting scaling of row ``working[k]`` (:func:`start_scaling`),
    in the compact working array ``out``.

    Returns True when every row starts at all ones (a cold start where no
    entry of ``q`` is zero): the rows then share their first product.
    """
    zeros = 0
    for k in range(working.size):
        zeros += start_scaling(q[working[k]], start[working[k]], warm, out[k])
    return not warm and zeros == 0


@compiled
def update_working_rows(p, A, exponent, omega_state, working, m, S):
    """``S[k] = (p[working[k]] / A[k]) ** exponent`` for the ``m`` working rows,
    over-relaxed by their factor ``omega_state[k, 0]``
    (:func:`~sinkhorn_nb.cpu.acceleration.overrelaxed_update`)."""
    for k in range(m):
        overrelaxed_update(p[working[k]], A[k], exponent, omega_state[k, 0], S[k])


@compiled
def finish_working_rows(p, q, A, B, S, T, exp_s, exp_t, mass, it, tol, final, check_every,
                        accelerate, omega_state, checkpoint, working, m, s_out, t_out, a_out,
                        b_out, n_iter, err, status):
    """The convergence check of the batched path, on its ``m`` working rows
    (``working[k]`` is the batch row of working row ``k``).

    Rows whose error (:func:`ratio_error`) is below ``tol`` or not finite, and
    every row when ``final``, are written to their row ``working[k]`` of the outputs
    (scalings ``S``, ``T``, products ``A``, ``B``, ``n_iter = it``, error,
    status); the others are moved to the front of the working arrays.  With
    ``accelerate``, a row still iterating updates its over-relaxation state
    ``omega_state[k]`` (:func:`~sinkhorn_nb.cpu.acceleration.next_omega`) and
    either returns to ``checkpoint[:, k]`` when it diverged, or takes the
    optimal common factor of its scalings (the relaxed variant,
    :func:`~sinkhorn_nb.cpu.acceleration.translation`) and saves ``S``, ``T``,
    ``A`` into ``checkpoint[:, k]``.  Returns the number of rows still iterating.
    """
    translate = accelerate and (exp_s != 1.0 or exp_t != 1.0)
    keep = 0
    for k in range(m):
        r = working[k]
        e = ratio_error(p[r], A[k], S[k], exp_s, mass[r])
        back = (accelerate and not final and not e < tol
                and next_omega(omega_state[k], e, check_every))
        if back:                    # diverged while over-relaxed: to the last check
            S[k] = checkpoint[0, k]
            T[k] = checkpoint[1, k]
            A[k] = checkpoint[2, k]
        elif final or e < tol or not np.isfinite(e):
            s_out[r] = S[k]
            t_out[r] = T[k]
            a_out[r] = A[k]
            b_out[r] = B[k]
            n_iter[r] = it
            err[r] = e
            status[r] = row_status(e, tol)
            continue
        elif accelerate:
            if translate:
                shift_scalings(p[r], S[k], q[r], T[k], A[k], exp_s, exp_t)
            checkpoint[0, k] = S[k]
            checkpoint[1, k] = T[k]
            checkpoint[2, k] = A[k]
        if keep != k:
            S[keep] = S[k]
            T[keep] = T[k]
            A[keep] = A[k]
            working[keep] = r
            if accelerate:
                omega_state[keep] = omega_state[k]
                checkpoint[:, keep] = checkpoint[:, k]
        keep += 1
    return keep


@compiled
def shift_scalings(p, s, q, t, a, exp_s, exp_t):
    """``s *= c``, ``t /= c`` and ``a /= c`` (``a`` is ``t`` times the kernel) for the
    common factor ``c`` of :func:`~sinkhorn_nb.cpu.acceleration.translation`."""
    c = np.exp(translation(p, s, q, t, exp_s, exp_t, False))
    if np.isfinite(c) and c > 0:
        s *= c
        t /= c
        a /= c


@compiled
def final_status(loss, cost, status, converged):
    """``status[r] = FAILED`` where ``loss[r]`` or ``cost[r]`` is not finite, then
    ``converged = status == CONVERGED``."""
    for r in range(status.size):
        if not (np.isfinite(loss[r]) and np.isfinite(cost[r])):
            status[r] = FAILED
        converged[r] = status[r] == CONVERGED


@compiled
def row_dots(u, X, rows, out):
    """``out[r] = u[r] . X[r]`` for ``r`` in ``rows`` (the transport cost
    ``u . (G * M) v``)."""
    for k in range(rows.size):
        r = rows[k]
        out[r] = dot(u[r], X[r])


@compiled
def weighted_row_sum(matrix, weights, out):
    """``out = weights @ matrix`` (a sum of ``len(weights)`` contiguous rows)."""
    out[:] = 0
    for k in range(matrix.shape[0]):
        w = weights[k]
        if w != 0:
            for i in range(out.size):
                out[i] += w * matrix[k, i]


@compiled
def matrix_vector(matrix, x, out):
    """``out[k] = matrix[k] . x`` for every row of ``matrix``."""
    for k in range(matrix.shape[0]):
        out[k] = dot(matrix[k], x)


@compiled
def target_support(y, y_indptr, y_indices, y_data, r):
    """The support of target row ``r`` and its values, ``(index, values)``.

    The targets are ``y`` when it has rows, else the CSR triplets ``(y_indptr,
    y_indices, y_data)`` (row ``r`` holds ``y_data[p]`` at label ``y_indices[p]``
    for ``y_indptr[r] <= p < y_indptr[r + 1]``, labels ascending, no stored
    zeros): the support is then read as it is, in ``O(s)``, without a pass over
    the row's ``K`` labels.  Every kernel that reads targets on the support takes
    them in this form (:attr:`sinkhorn_nb.validation.Measures.kernel_targets`).
    Both are new arrays of ``s`` entries, owned by the thread that solves the row.
    """
    if y.shape[0] > 0:
        index = np.flatnonzero(y[r])
        return index, y[r][index]
    start, end = y_indptr[r], y_indptr[r + 1]
    return y_indices[start:end].copy(), y_data[start:end].copy()


@compiled
def target_row(y, y_indptr, y_indices, y_data, r):
    """Target row ``r`` as a length-``K`` array: ``y[r]`` (a view) when ``y`` has
    rows, else a new array scattered from the CSR triplets (see
    :func:`target_support`), for kernels that read every label of a row."""
    if y.shape[0] > 0:
        return y[r]
    row = np.zeros(y.shape[1], y_data.dtype)
    for p in range(y_indptr[r], y_indptr[r + 1]):
        row[y_indices[p]] = y_data[p]
    return row


@parallel
def sparse_scaling_iterations(h, y, y_indptr, y_indices, y_data, G_T, GM_T, rows, u_out,
                              v_out, warm, exp_a, exp_b, first_is_v, mass, max_iter, tol,
                              check_every, accelerate, n_iter, err, status, gv_out, gtu_out,
                              cost):
    r"""Multiplicative Sinkhorn on ``rows``, restricted to each target's support.

    ``v_j = 0`` wherever ``y_j = 0`` (both variants), so with ``S = supp(y)``

    .. math:: (G v)_i = \sum_{j \in S} G_{ij} v_j, \qquad
              (G^\top u)_j = \sum_i G_{ij} u_i \quad (j \in S)

    cost ``O(K |S|)`` per row and iteration instead of ``O(K^2)``: the rows
    ``G_T[S]`` are gathered once per row and every product is a short sum of
    contiguous rows.  Rows run in parallel (``prange``) and stop independently.
    The targets are ``y`` or, when ``y`` has no rows, the CSR triplets
    (:func:`target_support`): sparse targets are never densified.

    Update order, exponents, start, error and status are those of the dense
    path (:func:`sinkhorn_nb.cpu.drivers.dense_iterations`; ``first_is_v``: the
    balanced order, ``v`` then ``u``; ``mass`` is the mass of the side updated
    first; ``accelerate``: over-relaxed, with the relaxed variant's common
    factor set at every check, :mod:`sinkhorn_nb.cpu.acceleration`).  Writes the
    scalings, ``gv_out = G v``, ``gtu_out = G^T u`` on ``S`` (other entries are
    left untouched) and ``cost = <T, M>``.
    """
    K = h.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        support, ys = target_support(y, y_indptr, y_indices, y_data, r)
        Gs = G_T[support]                    # (s, K): G[:, j] for j in S, contiguous
        hr = h[r]
        u = np.empty(K, dtype=u_out.dtype)
        start_scaling(hr, u_out[r], warm, u)
        vs = np.empty(support.size, dtype=v_out.dtype)
        start_scaling(ys, v_out[r][support], warm, vs)
        gv = np.empty(K, dtype=h.dtype)
        gtu = np.empty(support.size, dtype=h.dtype)
        state = np.empty(OMEGA_STATE)
        start_omega(state)
        kept = K if accelerate else 0      # the checkpoint, only when it can be used
        saved_u, saved_gv = np.empty(kept, u.dtype), np.empty(kept, gv.dtype)
        saved_vs = np.empty(vs.size if accelerate else 0, vs.dtype)
        saved_gtu = np.empty(saved_vs.size, gtu.dtype)
        it = 0
        e = np.inf
        while True:
            if first_is_v:               # A: the product the first update divides by
                matrix_vector(Gs, u, gtu)
            else:
                weighted_row_sum(Gs, vs, gv)
            if it == max_iter or (tol > 0 and it > 0 and it % check_every == 0):
                if first_is_v:
                    e = ratio_error(ys, gtu, vs, exp_b, mass[r])
                else:
                    e = ratio_error(hr, gv, u, exp_a, mass[r])
                if it == max_iter or e < tol:
                    break
                if accelerate and next_omega(state, e, check_every):
                    u[:] = saved_u      # diverged while over-relaxed: to the last check
                    vs[:] = saved_vs
                    gv[:] = saved_gv
                    gtu[:] = saved_gtu
                elif not np.isfinite(e):
                    break
                elif accelerate:
                    if first_is_v:
                        shift_scalings(ys, vs, hr, u, gtu, exp_b, exp_a)
                    else:
                        shift_scalings(hr, u, ys, vs, gv, exp_a, exp_b)
                    saved_u[:] = u
                    saved_vs[:] = vs
                    saved_gv[:] = gv
                    saved_gtu[:] = gtu
            omega = state[0]
            if first_is_v:
                overrelaxed_update(ys, gtu, exp_b, omega, vs)
                weighted_row_sum(Gs, vs, gv)
                overrelaxed_update(hr, gv, exp_a, omega, u)
            else:
                overrelaxed_update(hr, gv, exp_a, omega, u)
                matrix_vector(Gs, u, gtu)
                overrelaxed_update(ys, gtu, exp_b, omega, vs)
            it += 1
        weighted_row_sum(Gs, vs, gv)
        matrix_vector(Gs, u, gtu)
        total = 0.0
        for j in range(support.size):
            total += vs[j] * dot(GM_T[support[j]], u)
        u_out[r] = u
        v_out[r] = 0
        gv_out[r] = gv
        for j in range(support.size):
            v_out[r, support[j]] = vs[j]
            gtu_out[r, support[j]] = gtu[j]
        cost[r] = total
        n_iter[r] = it
        err[r] = e
        status[r] = row_status(e, tol)


@compiled
def log_sum_exp(values, index, cost_row, lam):
    """``log sum_{i in index} exp(values[i] - lam * cost_row[i] - 1)``."""
    top = -np.inf
    for i in index:
        x = values[i] - lam * cost_row[i]
        if x > top:
            top = x
    if top == -np.inf:
        return -np.inf
    total = 0.0
    for i in index:
        total += np.exp(values[i] - lam * cost_row[i] - top)
    return top + np.log(total) - 1.0


@parallel
def log_scaling_iterations(p, q, C_p, C_q, lam, rows, log_s, log_t, warm, exp_s, exp_t,
                           mass, max_iter, tol, check_every, accelerate, n_iter, err, status,
                           lam_start, stage_tol):
    r"""Log-domain Sinkhorn on ``rows``, row by row over the supports of ``p`` and ``q``.

    Works on the log-scalings (``lam`` times the dual potentials) and never forms
    the kernel, so it stays finite for any ``lam * max(M)``:

    .. math:: \log s_j \leftarrow e_s\,(\log p_j -
              \operatorname{LSE}_{i}(\log t_i - \lambda C_{p,ji} - 1))

    Each row costs ``O(|supp p| |supp q|)`` exponentials per iteration; rows run in
    parallel (``prange``).  ``C_p[j, i]`` is the cost between ``p``-label ``j``
    and ``q``-label ``i`` (``M.T`` for balanced, ``M`` for relaxed) and
    ``C_q = C_p.T``.  ``log_s`` and ``log_t`` are ``(n, K)`` float64 arrays, written
    on ``rows`` (``-inf`` off the supports); with ``warm``, ``log_t`` holds the
    starting point on entry (non-finite entries start at 0).  The error, status
    and start are those of the dense path; with ``accelerate`` the updates are
    over-relaxed, ``log s <- log s + omega (log s+ - log s)``
    (:mod:`sinkhorn_nb.cpu.acceleration`).

    lam-continuation: a cold start with ``lam_start < lam`` solves at
    ``lam_start``, ``2 lam_start``, ... up to ``lam``, each stage to
    ``max(tol, stage_tol)`` from the potentials of the one before (the
    log-scalings are ``lam`` times the potentials, so they are scaled with
    ``lam``; relaxed exponents follow :func:`~sinkhorn_nb.overrelaxation.stage_exponent`),
    the last to ``tol``.  ``n_iter`` counts every stage's iterations.
    """
    K = p.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        sup_p = np.flatnonzero(p[r])
        sup_q = np.flatnonzero(q[r])
        ls = np.full(K, -np.inf)
        lt = np.full(K, -np.inf)
        for i in sup_q:
            lt[i] = log_t[r, i] if warm and np.isfinite(log_t[r, i]) else 0.0
        lse = np.empty(K)
        state = np.empty(OMEGA_STATE)
        start_omega(state)
        kept = K if accelerate else 0      # the checkpoint, only when it can be used
        saved_s, saved_t, saved_lse = np.empty(kept), np.empty(kept), np.empty(kept)
        lam_k = lam if warm else min(lam_start, lam)      # the stage's lam
        es, et = stage_exponent(exp_s, lam_k / lam), stage_exponent(exp_t, lam_k / lam)
        it = 0
        it_stage = 0
        e = np.inf
        while True:
            last = lam_k >= lam
            for j in sup_p:
                lse[j] = log_sum_exp(lt, sup_q, C_p[j], lam_k)
            if it == max_iter or (tol > 0 and it_stage > 0 and it_stage % check_every == 0):
                e = log_error(p[r], ls, lse, sup_p, es, mass[r])
                if it == max_iter or (last and e < tol):
                    break
                if not last and e < max(tol, stage_tol):    # the next stage
                    lam_k = next_stage(ls, lt, sup_p, sup_q, es, et, lam_k, lam)
                    es = stage_exponent(exp_s, lam_k / lam)
                    et = stage_exponent(exp_t, lam_k / lam)
                    start_omega(state)
                    it_stage = 0
                    continue
                if accelerate and next_omega(state, e, check_every):
                    ls[:] = saved_s         # diverged while over-relaxed: to the last check
                    lt[:] = saved_t
                    lse[:] = saved_lse
                elif not np.isfinite(e):
                    break
                elif accelerate:
                    shift = translation(p[r], ls, q[r], lt, es, et, True)
                    if np.isfinite(shift):     # the relaxed variant's common factor
                        for j in sup_p:
                            ls[j] += shift
                            lse[j] -= shift
                        for i in sup_q:
                            lt[i] -= shift
                    saved_s[:] = ls
                    saved_t[:] = lt
                    saved_lse[:] = lse
            omega = state[0]
            for j in sup_p:
                ls[j] = log_overrelaxed(ls[j], es * (np.log(p[r, j]) - lse[j]), omega)
            for i in sup_q:
                plain = et * (np.log(q[r, i]) - log_sum_exp(ls, sup_p, C_q[i], lam_k))
                lt[i] = log_overrelaxed(lt[i], plain, omega)
            it += 1
            it_stage += 1
        while lam_k < lam:      # max_iter before the last stage: the error is at lam
            lam_k = next_stage(ls, lt, sup_p, sup_q, es, et, lam_k, lam)
            es = stage_exponent(exp_s, lam_k / lam)
            et = stage_exponent(exp_t, lam_k / lam)
            for j in sup_p:
                lse[j] = log_sum_exp(lt, sup_q, C_p[j], lam)
            e = log_error(p[r], ls, lse, sup_p, es, mass[r])
        log_s[r] = ls
        log_t[r] = lt
        n_iter[r] = it
        err[r] = e
        status[r] = row_status(e, tol)


@compiled
def log_error(p, ls, lse, sup_p, exponent, mass):
    """The error of :func:`ratio_error` in the log domain: ``|s - s+| (K_p t)`` summed
    over the support of ``p``, with ``log s = ls`` and ``log (K_p t) = lse``."""
    change = 0.0
    marginal = 0.0
    for j in sup_p:
        now = np.exp(ls[j] + lse[j])
        change += abs(now - np.exp(exponent * np.log(p[j]) + (1.0 - exponent) * lse[j]))
        marginal += now
    return change / max(mass, marginal)


@compiled
def next_stage(ls, lt, sup_p, sup_q, exp_s, exp_t, lam_k, lam):
    """Move the log-scalings of a lam-continuation stage at ``lam_k`` to the next
    stage, ``min(2 lam_k, lam)`` (returned): the potentials are kept, so the logs
    scale with ``lam``.  Balanced rows (exponents 1) first centre the free gauge
    ``(ls + c, lt - c)``, so that doubling does not grow it (large logs lose
    absolute precision)."""
    following = min(2.0 * lam_k, lam)
    ratio = following / lam_k
    c = 0.0
    if exp_s == 1.0 and exp_t == 1.0:
        c = 0.5 * (ls[sup_p].max() - lt[sup_q].max())
    for j in sup_p:
        ls[j] = (ls[j] - c) * ratio
    for i in sup_q:
        lt[i] = (lt[i] + c) * ratio
    return following


@parallel
def log_marginal_terms(log_u, log_v, M, M_T, lam, lse_row, lse_col, rows, cost):
    """Log-domain pieces of the outputs on ``rows`` (``(n, K)`` float64 arrays).

    ``lse_row[r, i] = log (G v)_i`` and ``lse_col[r, j] = log (G^T u)_j`` (sums
    over the supports of ``v`` and ``u``), and ``cost[r] = <T, M>``.
    """
    K = log_u.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        sup_u = np.flatnonzero(log_u[r] > -np.inf)
        sup_v = np.flatnonzero(log_v[r] > -np.inf)
        for i in range(K):
            lse_row[r, i] = log_sum_exp(log_v[r], sup_v, M[i], lam)
            lse_col[r, i] = log_sum_exp(log_u[r], sup_u, M_T[i], lam)
        total = 0.0
        for i in sup_u:
            for j in sup_v:
                total += np.exp(log_u[r, i] + log_v[r, j] - lam * M[i, j] - 1.0) * M[i, j]
        cost[r] = total
