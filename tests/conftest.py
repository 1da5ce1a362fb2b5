"""Shared problem generators (seeds are local to each call)."""
import numpy as np
import pytest

import sinkhorn_nb as snb


def random_metric(K, seed, p=1.0):
    """A metric from random points in the plane, scaled to max 0.999."""
    rng = np.random.default_rng(seed)
    return snb.ground_metric.from_points(rng.normal(size=(K, 2)), p=p)


def random_targets(kind, n, K, seed):
    """Balanced targets of unit mass: 'dense', 'sparse' (<=3 non-zeros) or 'onehot'."""
    rng = np.random.default_rng(seed)
    if kind == "dense":
        return rng.dirichlet(np.ones(K), size=n)
    y = np.zeros((n, K))
    for r in range(n):
        s = 1 if kind == "onehot" else rng.integers(2, min(3, K) + 1)
        support = rng.choice(K, size=s, replace=False)
        y[r, support] = rng.dirichlet(np.ones(s))
    return y


def random_predictions(n, K, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(K), size=n)


@pytest.fixture
def small_problem():
    K = 7
    M = random_metric(K, 0)
    h = random_predictions(5, K, 1)
    y = random_targets("dense", 5, K, 2)
    return h, y, M
