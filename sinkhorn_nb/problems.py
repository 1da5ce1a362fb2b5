"""Random problems for the tests, the benchmarks and the examples.

Every generator takes its own seed (``numpy.random.default_rng``), so a problem
is the same wherever it is drawn.

Examples
--------
>>> import sinkhorn_nb as snb
>>> from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
>>> M = random_metric(6, seed=0)
>>> h, y = random_predictions(4, 6, seed=1), random_targets("sparse", 4, 6, seed=2)
>>> snb.sinkhorn(h, y, M, lam=10.0).loss.shape
(4,)
"""
import numpy as np

from .ground_metric import from_embeddings, from_points


def random_metric(K, seed=0, p=1.0):
    """Euclidean metric (to the power ``p``) between ``K`` random points of the
    plane, scaled to max 0.999."""
    rng = np.random.default_rng(seed)
    return from_points(rng.normal(size=(K, 2)), p=p)


def random_predictions(n, K, seed=1):
    """``n`` predictions drawn uniformly from the simplex (Dirichlet(1))."""
    return np.random.default_rng(seed).dirichlet(np.ones(K), size=n)


def random_targets(kind, n, K, seed=2, nonzeros=None, mass=1.0):
    """``n`` targets of total ``mass``, a different random support per row.

    ``kind`` is ``"dense"`` (Dirichlet over every label), ``"onehot"`` (one
    label), ``"sparse"`` (``nonzeros`` labels per row: an int, a sequence cycled
    over the rows, or by default 2 or 3 drawn per row) or ``"mixed"`` (1 or 2
    non-zeros on even rows, dense odd rows).
    """
    rng = np.random.default_rng(seed)
    if kind == "dense":
        return mass * rng.dirichlet(np.ones(K), size=n)
    if kind == "mixed":
        y = rng.dirichlet(np.ones(K), size=n)
        for r in range(0, n, 2):
            s = 1 + (r // 2) % 2
            y[r] = 0
            y[r, rng.choice(K, size=s, replace=False)] = rng.dirichlet(np.ones(s))
        return mass * y
    if kind not in ("onehot", "sparse"):
        raise ValueError(f"kind must be 'dense', 'sparse', 'onehot' or 'mixed', got {kind!r}")
    y = np.zeros((n, K))
    for r in range(n):
        if kind == "onehot":
            s = 1
        elif nonzeros is None:
            s = rng.integers(2, min(3, K) + 1)
        else:
            s = min(np.atleast_1d(nonzeros)[r % np.size(nonzeros)], K)
        support = rng.choice(K, size=s, replace=False)
        y[r, support] = mass * rng.dirichlet(np.ones(s))
    return y


def measures(n, K, kind, dtype=np.float64, seed=1, nonzeros=5):
    """Predictions and balanced targets of one kind (sparse: ``nonzeros`` per row),
    in ``dtype``: the benchmarks' problems."""
    h = random_predictions(n, K, seed)
    y = random_targets(kind, n, K, seed + 1, nonzeros=nonzeros)
    return h.astype(dtype), y.astype(dtype)


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
    rng = np.random.default_rng(seed)
    M = from_embeddings(rng.normal(size=(K, 50)))
    X = rng.normal(size=(n, d))
    scores = X @ rng.normal(size=(K, d)).T
    Y = np.zeros((n, K))
    for r in range(n):
        Y[r, np.argsort(-scores[r])[:rng.integers(2, 8)]] = 1.0
    return X, Y, M
