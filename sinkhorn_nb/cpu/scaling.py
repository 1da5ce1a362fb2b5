"""Generic Sinkhorn scaling kernels (``@njit``), shared by both variants.

Both variants alternate two half-updates of the form

.. math:: s \\leftarrow (p \\oslash (A))^{e_s},\\qquad A = \\text{(other scaling)}\\,K_p

where the balanced variant updates ``v`` from ``y`` then ``u`` from ``h``
(exponents 1) and the relaxed variant updates ``u`` from ``h`` then ``v`` from
``y`` (exponents ``a``, ``b``).  Written once with the roles as arguments:

====================  =======  =======  =======  =======  ======  ======
variant               ``p``    ``s``    ``q``    ``t``    ``K_p``  ``K_q``
====================  =======  =======  =======  =======  ======  ======
balanced (v then u)   ``y``    ``v``    ``h``    ``u``    ``G``   ``G.T``
relaxed  (u then v)   ``h``    ``u``    ``y``    ``v``    ``G.T`` ``G``
====================  =======  =======  =======  =======  ======  ======

Rows are batched: ``A = T @ K_p`` is one matrix-matrix product (BLAS) over the
rows still iterating, so each iteration costs two products plus element-wise
work.  Converged rows are compacted out of the working buffers.

The error of a row, checked every ``check_every`` iterations before the
``s`` update, is the relative L1 gap of the ``p``-side marginal,

.. math:: \\mathrm{err} = \\|(s - s^{+}) \\odot A\\|_1 / \\|p\\|_1 ,

which for the balanced variant is :math:`\\|v \\odot G^\\top u - y\\|_1 / \\|y\\|_1`.

Status codes written per row: 0 converged, 1 reached ``max_iter``, 2 failed
(a non-finite error: over/underflow, handled by the log-domain kernel).
"""
import numpy as np
from numba import njit, prange

CONVERGED, MAX_ITER, FAILED = 0, 1, 2


#: Every kernel uses NumPy's floating-point semantics (``x / 0 = inf``, no
#: ``ZeroDivisionError``), so over/underflow shows up as a non-finite error and the
#: element-wise loops vectorize.
compiled = njit(cache=True, error_model="numpy")


@compiled
def _scaled_ratio(p, a, exponent):
    """``(p / a) ** exponent`` with the convention ``0 / anything = 0``."""
    if p == 0:
        return 0.0
    ratio = p / a
    if exponent == 1.0:
        return ratio
    return ratio ** exponent


@compiled
def _move_row(src, dst, arrays2d):
    for arr in arrays2d:
        arr[dst, :] = arr[src, :]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot(a, b):
    """``a . b`` (reassociated so that it vectorizes; keeps inf/NaN semantics)."""
    total = a.dtype.type(0)
    for i in range(a.size):
        total += a[i] * b[i]
    return total


@compiled
def _gather_dots(rows, x, out):
    """``out[k] = rows[k] . x`` for every row of ``rows``."""
    for k in range(rows.shape[0]):
        out[k] = _dot(rows[k], x)


@compiled
def _combine_rows(rows, weights, out):
    """``out = weights @ rows`` (a sum of ``len(weights)`` contiguous rows)."""
    out[:] = 0
    for k in range(rows.shape[0]):
        w = weights[k]
        if w != 0:
            for i in range(out.size):
                out[i] += w * rows[k, i]


@compiled
def _ratio_error(p, a, s, exponent, mass):
    """``||(s - (p / a)^exponent) * a||_1 / mass`` (the error before an update)."""
    e = 0.0
    for j in range(p.size):
        e += abs(s[j] - _scaled_ratio(p[j], a[j], exponent)) * a[j]
    return e / mass


@compiled
def _ratio_update(p, a, exponent, out):
    """``out = (p / a) ** exponent`` with ``0 / anything = 0``; branch-free loops
    (one per case) so that they vectorize."""
    zero = out.dtype.type(0)
    if exponent == 1.0:
        for j in range(p.size):
            out[j] = p[j] / a[j] if p[j] != 0 else zero
    else:
        e = out.dtype.type(exponent)
        for j in range(p.size):
            out[j] = (p[j] / a[j]) ** e if p[j] != 0 else zero


@compiled
def scaling_iterations(p, q, K_p, K_q, s_out, t_out, exp_s, exp_t,
                       max_iter, tol, check_every, n_iter, err, status, a_out, b_out):
    """Multiplicative Sinkhorn on a batch, one BLAS product per half-update.

    Parameters
    ----------
    p, q : ndarray (n, K)
        Masses of the side updated first / second.
    K_p, K_q : ndarray (K, K)
        Kernels with ``A = t @ K_p`` and ``B = s @ K_q``.
    s_out, t_out : ndarray (n, K)
        Initial scalings on entry (only ``t_out`` is read), final on exit.
    exp_s, exp_t : float
        Exponents of the two updates (1 for the balanced variant).
    max_iter, tol, check_every
        Convergence controls; ``tol = 0`` runs exactly ``max_iter >= 1`` iterations.
    n_iter, err, status : ndarray (n,)
        Written per row.
    a_out, b_out : ndarray (n, K)
        Written per row: the products ``A = t @ K_p`` and ``B = s @ K_q`` at the
        final scalings (the marginal terms the outputs need, so that no product
        is recomputed).
    """
    n, K = p.shape
    P = p.copy()
    Q = q.copy()
    S = s_out.copy()
    T = t_out.copy()
    A = np.empty_like(P)
    B = np.empty_like(P)
    rows = np.arange(n)
    mass = np.empty(n, dtype=np.float64)
    for k in range(n):
        mass[k] = P[k].sum()
    m = n
    it = 0
    while True:
        np.dot(T[:m], K_p, A[:m])
        if it == max_iter or (tol > 0 and it > 0 and it % check_every == 0):
            keep = 0
            for k in range(m):
                e = _ratio_error(P[k], A[k], S[k], exp_s, mass[k])
                finite = np.isfinite(e)
                if it == max_iter or e < tol or not finite:
                    r = rows[k]
                    s_out[r, :] = S[k, :]
                    t_out[r, :] = T[k, :]
                    a_out[r, :] = A[k, :]
                    b_out[r, :] = B[k, :]
                    n_iter[r] = it
                    err[r] = e
                    status[r] = CONVERGED if e < tol else (MAX_ITER if finite else FAILED)
                else:
                    if keep != k:
                        _move_row(k, keep, (P, Q, S, T, A))
                        rows[keep] = rows[k]
                        mass[keep] = mass[k]
                    keep += 1
            m = keep
            if m == 0:
                break
        for k in range(m):
            _ratio_update(P[k], A[k], exp_s, S[k])
        np.dot(S[:m], K_q, B[:m])
        for k in range(m):
            _ratio_update(Q[k], B[k], exp_t, T[k])
        it += 1


@compiled
def transport_costs(u, v, GM_T, cost):
    """``cost[r] = <T_r, M> = u_r . ((G * M) v_r)`` for every row (one product)."""
    GMv = np.dot(v, GM_T)
    for r in range(u.shape[0]):
        total = 0.0
        for i in range(u.shape[1]):
            total += u[r, i] * GMv[r, i]
        cost[r] = total


@compiled
def _log_sum_exp_row(values, index, cost_row, lam):
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


@njit(cache=True, parallel=True, error_model="numpy")
def log_scaling_iterations(p, q, C_p, C_q, lam, log_s, log_t, exp_s, exp_t,
                           max_iter, tol, check_every, n_iter, err, status):
    """Log-domain Sinkhorn, row by row over the supports of ``p`` and ``q``.

    Works on the log-scalings ``log_s = log s`` and ``log_t = log t``
    (``lam`` times the dual potentials) and never forms the kernel, so it stays
    finite for any ``lam * max(M)``:

    .. math:: \\log s_j \\leftarrow e_s\\,(\\log p_j -
              \\operatorname{LSE}_{i}(\\log t_i - \\lambda C_{p,ji} - 1))

    Each row costs ``O(|supp p| |supp q|)`` exponentials per iteration; rows run in
    parallel (``prange``).  ``C_p[j, i]`` is the cost between ``p``-label ``j``
    and ``q``-label ``i`` (``M.T`` for balanced, ``M`` for relaxed) and
    ``C_q = C_p.T``.  ``log_t`` is read as the starting point; entries off the
    support of the corresponding mass are set to ``-inf``.
    """
    n, K = p.shape
    for r in prange(n):
        sup_p = np.flatnonzero(p[r] > 0)
        sup_q = np.flatnonzero(q[r] > 0)
        ls = np.full(K, -np.inf, dtype=np.float64)
        lt = np.full(K, -np.inf, dtype=np.float64)
        for i in sup_q:
            lt[i] = log_t[r, i]
        lse = np.empty(K, dtype=np.float64)
        mass = 0.0
        for j in sup_p:
            mass += p[r, j]
        it = 0
        e = np.inf
        while True:
            for j in sup_p:
                lse[j] = _log_sum_exp_row(lt, sup_q, C_p[j], lam)
            if it == max_iter or (tol > 0 and it > 0 and it % check_every == 0):
                e = 0.0
                for j in sup_p:   # |s - s+| (G t)_j in the log domain
                    e += abs(np.exp(ls[j] + lse[j])
                             - np.exp(exp_s * np.log(p[r, j]) + (1.0 - exp_s) * lse[j]))
                e = e / mass
                if it == max_iter or e < tol or not np.isfinite(e):
                    break
            for j in sup_p:
                ls[j] = exp_s * (np.log(p[r, j]) - lse[j])
            for i in sup_q:
                lt[i] = exp_t * (np.log(q[r, i]) - _log_sum_exp_row(ls, sup_p, C_q[i], lam))
            it += 1
        for k in range(K):
            log_s[r, k] = ls[k]
            log_t[r, k] = lt[k]
        n_iter[r] = it
        err[r] = e
        status[r] = CONVERGED if e < tol else (MAX_ITER if np.isfinite(e) else FAILED)


@njit(cache=True, parallel=True, error_model="numpy")
def log_marginal_terms(log_u, log_v, M, M_T, lam, lse_row, lse_col, cost):
    """Log-domain pieces of the outputs, for every label.

    ``lse_row[r, i] = log (G v)_i`` and ``lse_col[r, j] = log (G^T u)_j`` (sums
    over the supports of ``v`` and ``u``), and ``cost[r] = <T, M>``.
    """
    n, K = log_u.shape
    for r in prange(n):
        sup_u = np.flatnonzero(log_u[r] > -np.inf)
        sup_v = np.flatnonzero(log_v[r] > -np.inf)
        lu = log_u[r].astype(np.float64)
        lv = log_v[r].astype(np.float64)
        for i in range(K):
            lse_row[r, i] = _log_sum_exp_row(lv, sup_v, M[i], lam)
        for j in range(K):
            lse_col[r, j] = _log_sum_exp_row(lu, sup_u, M_T[j], lam)
        total = 0.0
        for i in sup_u:
            for j in sup_v:
                total += np.exp(lu[i] + lv[j] - lam * M[i, j] - 1.0) * M[i, j]
        cost[r] = total


@njit(cache=True, parallel=True, error_model="numpy")
def sparse_scaling_iterations(h, y, G_T, GM_T, u_out, v_out, exp_a, exp_b, first_is_v,
                              max_iter, tol, check_every, n_iter, err, status,
                              gv_out, gtu_out, cost):
    """Multiplicative Sinkhorn restricted to the support of each target row.

    ``v_j = 0`` wherever ``y_j = 0`` (both variants), so with ``S = supp(y)``

    .. math:: (G v)_i = \\sum_{j \\in S} G_{ij} v_j, \\qquad
              (G^\\top u)_j = \\sum_i G_{ij} u_i \\quad (j \\in S)

    cost ``O(K |S|)`` per row and iteration instead of ``O(K^2)``: the rows
    ``G_T[S]`` are gathered once per row and every product is a short sum of
    contiguous rows.  Rows run in parallel (``prange``) and stop independently.

    The update order, exponents, error and status codes are those of
    :func:`scaling_iterations` (``first_is_v``: balanced order, ``v`` then
    ``u``).  Besides the scalings, the kernel writes what the outputs need:
    ``gv_out = G v`` (every label), ``gtu_out = G^T u`` on ``S`` (other entries
    are left untouched) and ``cost = <T, M>``.
    """
    n, K = h.shape
    for r in prange(n):
        support = np.flatnonzero(y[r] > 0)
        Gs = G_T[support]                    # (s, K): G[:, j] for j in S, contiguous
        ys = y[r][support]
        hr = h[r]
        u = u_out[r].copy()
        vs = v_out[r][support].copy()
        gv = np.empty(K, dtype=h.dtype)
        gtu = np.empty(support.size, dtype=h.dtype)
        mass = 0.0
        for value in (ys if first_is_v else hr):
            mass += value
        it = 0
        e = np.inf
        while True:
            # A: the product the first update divides by
            if first_is_v:
                _gather_dots(Gs, u, gtu)
            else:
                _combine_rows(Gs, vs, gv)
            if it == max_iter or (tol > 0 and it > 0 and it % check_every == 0):
                if first_is_v:
                    e = _ratio_error(ys, gtu, vs, exp_b, mass)
                else:
                    e = _ratio_error(hr, gv, u, exp_a, mass)
                if it == max_iter or e < tol or not np.isfinite(e):
                    break
            if first_is_v:
                _ratio_update(ys, gtu, exp_b, vs)
                _combine_rows(Gs, vs, gv)
                _ratio_update(hr, gv, exp_a, u)
            else:
                _ratio_update(hr, gv, exp_a, u)
                _gather_dots(Gs, u, gtu)
                _ratio_update(ys, gtu, exp_b, vs)
            it += 1
        _combine_rows(Gs, vs, gv)
        _gather_dots(Gs, u, gtu)
        total = 0.0
        for k in range(support.size):
            total += vs[k] * _dot(GM_T[support[k]], u)
        u_out[r, :] = u
        v_out[r, :] = 0
        gv_out[r, :] = gv
        for k in range(support.size):
            v_out[r, support[k]] = vs[k]
            gtu_out[r, support[k]] = gtu[k]
        cost[r] = total
        n_iter[r] = it
        err[r] = e
        status[r] = CONVERGED if e < tol else (MAX_ITER if np.isfinite(e) else FAILED)


@njit(cache=True, parallel=True, error_model="numpy")
def log_state_terms(h, y, u, v, Gv, GTu, log_u, log_v, lse_row, lse_col, bad):
    """Logs of a multiplicative solve's scalings and marginal terms, in one pass.

    Writes ``log u``, ``log v``, ``log(G v)``, ``log(G^T u)`` (float64; the last
    on the support of ``y`` only, NaN elsewhere, where nothing reads it) and sets
    ``bad[r]`` when row ``r`` over/underflowed: a non-finite ``log u_i`` where
    ``h_i > 0``, ``log v_j`` or ``log(G^T u)_j`` where ``y_j > 0``, or
    ``log(G v)_i`` anywhere.
    """
    n, K = h.shape
    for r in prange(n):
        failed = False
        for j in range(K):
            lu = np.log(np.float64(u[r, j]))
            lr = np.log(np.float64(Gv[r, j]))
            log_u[r, j] = lu
            lse_row[r, j] = lr
            if not np.isfinite(lr) or (h[r, j] > 0 and not np.isfinite(lu)):
                failed = True
            if y[r, j] > 0:
                lv = np.log(np.float64(v[r, j]))
                lc = np.log(np.float64(GTu[r, j]))
                failed |= not (np.isfinite(lv) and np.isfinite(lc))
            else:
                lv = -np.inf
                lc = np.nan
            log_v[r, j] = lv
            lse_col[r, j] = lc
        bad[r] = failed


@njit(cache=True, parallel=True, error_model="numpy")
def scalings_from_logs(log_u, log_v, limit, balance_gauge, u, v):
    """``u, v = exp(log_u), exp(log_v)`` in the dtype of ``u`` and ``v``.

    For the balanced variant ``(u, v)`` is defined up to ``(c u, v / c)``; with
    ``balance_gauge``, a row whose largest finite log-scaling exceeds ``limit``
    is shifted so that both share the range (a no-op on the multiplicative path).
    """
    n, K = log_u.shape
    for r in prange(n):
        top_u = -np.inf
        top_v = -np.inf
        for j in range(K):
            if np.isfinite(log_u[r, j]):
                top_u = max(top_u, log_u[r, j])
            if np.isfinite(log_v[r, j]):
                top_v = max(top_v, log_v[r, j])
        shift = 0.0
        if (balance_gauge and max(top_u, top_v) > limit and np.isfinite(top_u)
                and np.isfinite(top_v)):
            shift = (top_u - top_v) / 2.0
        for j in range(K):
            u[r, j] = np.exp(log_u[r, j] - shift)
            v[r, j] = np.exp(log_v[r, j] + shift)
