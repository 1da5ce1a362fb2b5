"""Baselines shared by the benchmark suites; the problems come from
:mod:`sinkhorn_nb.problems`."""
import numpy as np

from sinkhorn_nb.problems import (measures, noisy_digits, random_metric,  # noqa: F401
                                  tag_problem)


def metric(K, seed=0):
    return random_metric(K, seed)


def numpy_batched_sinkhorn(h, y, G, n_iter, exponents=(1.0, 1.0)):
    """Plain NumPy batched Sinkhorn with one shared kernel (the NumPy baseline).

    ``exponents=(1, 1)`` is the balanced iteration (``v`` then ``u``); the relaxed
    one updates ``u = (h / G v)^a`` then ``v = (y / G^T u)^b``.
    """
    a, b = exponents
    u = np.ones_like(h)
    v = np.where(y > 0, 1.0, 0.0)
    GT = np.ascontiguousarray(G.T)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(n_iter):
            if a == b == 1.0:
                v = np.where(y > 0, y / (u @ G), 0.0)
                u = np.where(h > 0, h / (v @ GT), 0.0)
            else:
                u = np.where(h > 0, (h / (v @ GT)) ** a, 0.0)
                v = np.where(y > 0, (y / (u @ G)) ** b, 0.0)
    return u, v


def pot_looped(h, y, M, lam, n_iter=None, variant="balanced", gamma=1.0):
    """POT called row by row, what users do today.  ``n_iter`` fixes the iteration
    count (``stopThr=0``); ``None`` uses POT's defaults."""
    import ot
    import warnings
    K = M.shape[0]
    c = np.full((K, K), np.exp(-1.0))
    kw = {} if n_iter is None else dict(numItermax=n_iter, stopThr=0.0)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(h.shape[0]):
            if variant == "balanced":
                out.append(ot.sinkhorn2(h[r], y[r], M, 1.0 / lam, **kw))
            else:
                out.append(ot.unbalanced.sinkhorn_unbalanced2(
                    h[r], y[r], M, 1.0 / lam, (gamma, gamma), reg_type="kl", c=c, **kw))
    return out


def cross_entropy_lbfgs(X, T, alpha, max_iter):
    """SciPy's L-BFGS on the softmax cross-entropy (mean over samples) of a
    linear model with intercept and L2 penalty ``alpha / 2 ||W||^2``: the KL-only
    baseline of the estimator, written as a user would."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax
    n, d = X.shape
    K = T.shape[1]

    def fun(theta):
        W, b = theta[:K * d].reshape(K, d), theta[K * d:]
        log_h = log_softmax(X @ W.T + b, axis=1)
        value = -np.sum(T * log_h) / n + 0.5 * alpha * np.sum(W * W)
        dZ = (np.exp(log_h) - T) / n
        return value, np.concatenate([(dZ.T @ X + alpha * W).ravel(), dZ.sum(axis=0)])
    theta0 = np.concatenate([0.01 * np.random.default_rng(0).standard_normal(K * d),
                             np.zeros(K)])
    return minimize(fun, theta0, jac=True, method="L-BFGS-B",
                    options=dict(maxiter=max_iter, gtol=0.0, ftol=0.0))
