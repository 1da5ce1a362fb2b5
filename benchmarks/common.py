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
