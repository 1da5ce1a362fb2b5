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


@njit(cache=True)
def _scaled_ratio(p, a, exponent):
    """``(p / a) ** exponent`` with the convention ``0 / anything = 0``."""
    if p == 0:
        return 0.0
    ratio = p / a
    if exponent == 1.0:
        return ratio
    return ratio ** exponent


@njit(cache=True)
def _move_row(src, dst, arrays2d):
    for arr in arrays2d:
        arr[dst, :] = arr[src, :]


@njit(cache=True)
def scaling_iterations(p, q, K_p, K_q, s_out, t_out, exp_s, exp_t,
                       max_iter, tol, check_every, n_iter, err, status):
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
        Convergence controls; ``tol = 0`` runs exactly ``max_iter`` iterations.
    n_iter, err, status : ndarray (n,)
        Written per row.
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
                e = 0.0
                for j in range(K):
                    e += abs(S[k, j] - _scaled_ratio(P[k, j], A[k, j], exp_s)) * A[k, j]
                e = e / mass[k]
                finite = np.isfinite(e)
                if it == max_iter or e < tol or not finite:
                    r = rows[k]
                    s_out[r, :] = S[k, :]
                    t_out[r, :] = T[k, :]
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
            for j in range(K):
                S[k, j] = _scaled_ratio(P[k, j], A[k, j], exp_s)
        np.dot(S[:m], K_q, B[:m])
        for k in range(m):
            for j in range(K):
                T[k, j] = _scaled_ratio(Q[k, j], B[k, j], exp_t)
        it += 1


@njit(cache=True)
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


@njit(cache=True, parallel=True)
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


@njit(cache=True, parallel=True)
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
