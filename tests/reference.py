"""Slow, independent log-domain NumPy references for the tests.

Written from the math of ``docs/math.rst`` without sharing code with the package:
plain loops over rows, ``scipy.special.logsumexp`` over the supports, the value
computed from the primal objective at the final plan (the package reports the dual
value).  Convergence is checked every ``CHECK_EVERY`` iterations.
"""
import numpy as np
from scipy.special import logsumexp


CHECK_EVERY = 10


def _log_kernel(M, lam):
    return -lam * np.asarray(M, np.float64) - 1.0


def reference_balanced(h, y, M, lam, max_iter=200000, tol=1e-14):
    """Return ``(loss, grad, plan)`` for one pair of equal-mass vectors."""
    h = np.asarray(h, np.float64)
    y = np.asarray(y, np.float64)
    logG = _log_kernel(M, lam)
    I, J = np.flatnonzero(h > 0), np.flatnonzero(y > 0)
    sub = logG[np.ix_(I, J)]
    f = np.zeros(I.size)
    g = np.zeros(J.size)
    for it in range(max_iter):
        g = np.log(y[J]) - logsumexp(f[:, None] + sub, axis=0)
        f = np.log(h[I]) - logsumexp(g[None, :] + sub, axis=1)
        if it % CHECK_EVERY == 0:
            col = np.exp(g + logsumexp(f[:, None] + sub, axis=0))
            if np.abs(col - y[J]).sum() <= tol * y.sum():
                break
    log_plan = f[:, None] + g[None, :] + sub
    plan = np.zeros((h.size, y.size))
    plan[np.ix_(I, J)] = np.exp(log_plan)
    M = np.asarray(M, np.float64)
    loss = (plan * M).sum() + (np.exp(log_plan) * log_plan).sum() / lam
    alpha = -logsumexp(g[None, :] + logG[:, J], axis=1)     # extension for h_i = 0
    alpha[I] = f
    alpha /= lam
    return loss, alpha - alpha.mean(), plan


def reference_relaxed(h, y, M, lam, gamma_a, gamma_b, max_iter=200000, tol=1e-15):
    """Return ``(loss, grad, plan)`` for one pair of non-negative vectors."""
    h = np.asarray(h, np.float64)
    y = np.asarray(y, np.float64)
    M = np.asarray(M, np.float64)
    a = gamma_a * lam / (gamma_a * lam + 1)
    b = gamma_b * lam / (gamma_b * lam + 1)
    logG = _log_kernel(M, lam)
    I, J = np.flatnonzero(h > 0), np.flatnonzero(y > 0)
    sub = logG[np.ix_(I, J)]
    f = np.zeros(I.size)
    g = np.zeros(J.size)
    for it in range(max_iter):
        f_new = a * (np.log(h[I]) - logsumexp(g[None, :] + sub, axis=1))
        g = b * (np.log(y[J]) - logsumexp(f_new[:, None] + sub, axis=0))
        done = tol > 0 and it % CHECK_EVERY == 0 and np.max(np.abs(f_new - f)) <= tol
        f = f_new
        if done:
            break
    plan = np.zeros((h.size, y.size))
    plan[np.ix_(I, J)] = np.exp(f[:, None] + g[None, :] + sub)
    row, col = plan.sum(axis=1), plan.sum(axis=0)

    def kl(w, z):
        pos = w > 0
        return (w[pos] * np.log(w[pos] / z[pos])).sum() - w.sum() + z.sum()

    pos = plan > 0
    loss = ((plan * M).sum() + (plan[pos] * np.log(plan[pos])).sum() / lam
            + gamma_a * kl(row, h) + gamma_b * kl(col, y))
    # the gradient from the potential alpha = log u / lam (equal to
    # gamma_a (1 - row / h) at the optimum, and the accurate form before it)
    grad = np.full(h.size, -np.inf)
    grad[I] = -gamma_a * np.expm1(-f / (lam * gamma_a))
    return loss, grad, plan


def plan_from_scalings(u, v, M, lam):
    """``diag(u) exp(-lam M - 1) diag(v)``."""
    return u[:, None] * np.exp(-lam * np.asarray(M, np.float64) - 1.0) * v[None, :]
