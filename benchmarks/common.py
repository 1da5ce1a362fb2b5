"""Problem generators and baselines shared by the benchmark suites."""
import numpy as np


def metric(K, seed=0):
    import sinkhorn_nb as snb
    rng = np.random.default_rng(seed)
    return snb.ground_metric.from_points(rng.normal(size=(K, 2)))


def measures(n, K, kind, dtype=np.float64, seed=1):
    """Predictions and balanced targets: 'dense', 'sparse' (5 non-zeros, a
    different support per row) or 'onehot'."""
    rng = np.random.default_rng(seed)
    h = rng.dirichlet(np.ones(K), size=n)
    if kind == "dense":
        y = rng.dirichlet(np.ones(K), size=n)
    else:
        s = 1 if kind == "onehot" else min(5, K)
        y = np.zeros((n, K))
        for r in range(n):
            idx = rng.choice(K, size=s, replace=False)
            y[r, idx] = rng.dirichlet(np.ones(s))
    return h.astype(dtype), y.astype(dtype)


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


def noisy_digits(n=20000, noise=0.1, seed=0):
    """``n`` noisy copies of scikit-learn's 8x8 digits (pixels scaled to [0, 1])."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(y), n)
    return X[pick] / 16.0 + rng.normal(scale=noise, size=(n, X.shape[1])), y[pick]


def tag_problem(n=2000, d=1024, K=1000, seed=0):
    """A multi-label problem shaped like the paper's tag experiment: features
    ``(n, d)``, 2-7 labels per sample out of ``K`` (the top scores of a random
    linear model), and the unit-vector embedding metric of random 50-d words."""
    import sinkhorn_nb as snb
    rng = np.random.default_rng(seed)
    M = snb.ground_metric.from_embeddings(rng.normal(size=(K, 50)))
    X = rng.normal(size=(n, d))
    scores = X @ rng.normal(size=(K, d)).T
    Y = np.zeros((n, K))
    for r in range(n):
        Y[r, np.argsort(-scores[r])[:rng.integers(2, 8)]] = 1.0
    return X, Y, M


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
