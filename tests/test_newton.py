"""Newton's method on the semi-dual (balanced rows with small target supports)."""
import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from reference import plan_from_scalings, reference_balanced
from sinkhorn_nb.routing import NEWTON_MAX_SUPPORT
from sinkhorn_nb.cpu.balanced import laplacian_solve

TIGHT = dict(max_iter=200000, tol=1e-13)


def targets(n, K, sizes, seed):
    return random_targets("sparse", n, K, seed, nonzeros=sizes)


@pytest.mark.parametrize("K", [5, 30, 200])
@pytest.mark.parametrize("lam", [1.0, 30.0, 200.0])
def test_newton_rows_match_the_reference(K, lam):
    M = random_metric(K, K)
    sizes = [s for s in (2, 3, 5, NEWTON_MAX_SUPPORT) if s <= K]
    y = targets(6, K, sizes, 1)
    h = random_predictions(6, K, 2)
    h[0, :2] = 0.0                           # zeros in the prediction as well
    h[0] /= h[0].sum()
    r = snb.sinkhorn(h, y, M, lam, **TIGHT)
    assert np.all(r.converged) and np.all(r.n_iter < 60)
    for i in range(6):
        loss, grad, plan = reference_balanced(h[i], y[i], M, lam)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r.grad[i], grad, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, lam), plan,
                                   rtol=1e-8, atol=1e-13)
        np.testing.assert_allclose(r.transport_cost[i], (plan * M).sum(), rtol=1e-10,
                                   atol=1e-14)
    assert np.all(r.v[y == 0] == 0)


def test_newton_needs_few_steps_where_sinkhorn_needs_many():
    """Predictions close to their targets: the same fixed point, Newton in a
    handful of steps, Sinkhorn in hundreds of iterations."""
    K = 300
    M = snb.ground_metric.from_embeddings(np.random.default_rng(3).normal(size=(K, 50)))
    y = targets(8, K, [2, 3, 5, 7], 4)
    h = 0.01 * random_predictions(8, K, 5) + 0.99 * y
    newton = snb.sinkhorn(h, y, M, 30.0, tol=1e-12)
    sinkhorn = snb.sinkhorn(h, y, M, 30.0, tol=1e-12, method="multiplicative",
                            max_iter=100000)
    assert np.all(newton.converged) and np.all(sinkhorn.converged)
    assert newton.n_iter.max() <= 15 and np.median(sinkhorn.n_iter) >= 100
    np.testing.assert_allclose(newton.loss, sinkhorn.loss, rtol=1e-9)
    np.testing.assert_allclose(newton.grad, sinkhorn.grad, rtol=1e-7, atol=1e-9)


def test_routing_rules():
    """Newton with method="auto" and tol > 0 only; larger supports, tol = 0 and
    method="multiplicative" run Sinkhorn."""
    K = 64
    M = random_metric(K, 6)
    y = targets(4, K, [3, NEWTON_MAX_SUPPORT + 1], 7)        # rows 1, 3: above the cap
    h = random_predictions(4, K, 8)
    auto = snb.sinkhorn(h, y, M, 20.0, tol=1e-10, check_every=1)
    sinkhorn = snb.sinkhorn(h, y, M, 20.0, tol=1e-10, check_every=1,
                            method="multiplicative")
    assert np.all(auto.n_iter[[0, 2]] < sinkhorn.n_iter[[0, 2]])
    np.testing.assert_array_equal(auto.n_iter[[1, 3]], sinkhorn.n_iter[[1, 3]])
    exact = snb.sinkhorn(h, y, M, 20.0, tol=0.0, max_iter=17)
    np.testing.assert_array_equal(exact.n_iter, 17)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_newton_in_both_dtypes_and_warm_start(dtype, rtol):
    K = 40
    M = random_metric(K, 9).astype(dtype)
    y = targets(5, K, [2, 4, 6], 10).astype(dtype)
    h = random_predictions(5, K, 11).astype(dtype)
    loss = snb.WassersteinLoss(M, 25.0)
    cold = loss.solve(h, y)
    assert cold.loss.dtype == dtype and np.all(cold.converged)
    warm = loss.solve(h, y, init=(cold.u, cold.v))
    assert np.all(warm.n_iter <= 1)
    np.testing.assert_allclose(warm.loss, cold.loss, rtol=rtol)
    reference = snb.sinkhorn(h.astype(np.float64), y.astype(np.float64),
                             M.astype(np.float64), 25.0, tol=1e-12)
    np.testing.assert_allclose(cold.loss, reference.loss, rtol=10 * rtol, atol=rtol)


def test_newton_at_the_edge_of_the_multiplicative_range():
    """lam * max(M) = 300: tiny kernel entries, labels coupled across 1e-130;
    every row converges (through the log domain where it must)."""
    rng = np.random.default_rng(12)
    for trial in range(20):
        K = int(rng.integers(3, 40))
        M = random_metric(K, 100 + trial)
        s = int(rng.integers(2, min(NEWTON_MAX_SUPPORT, K) + 1))
        y = np.zeros(K)
        y[rng.choice(K, size=s, replace=False)] = rng.dirichlet(np.ones(s))
        h = rng.dirichlet(np.ones(K) * rng.choice([0.1, 1.0, 10.0]))
        r = snb.sinkhorn(h, y, M, 300.0 / M.max(), tol=1e-11, max_iter=100000)
        assert r.converged and np.isfinite(r.loss), (trial, r.err)
        loss, _, _ = reference_balanced(h, y, M, 300.0 / M.max(), max_iter=100000, tol=1e-12)
        np.testing.assert_allclose(r.loss, loss, rtol=1e-8, atol=1e-12)


def test_laplacian_solve_handles_weights_of_every_scale():
    """Weights from 1 down to 1e-200 in one graph: the grounded system is solved
    to full relative accuracy, where Cholesky on D - W loses the small ones."""
    rng = np.random.default_rng(13)
    for s in (2, 3, 5, 8):
        for _ in range(20):
            W = np.triu(10.0 ** -rng.uniform(0, 200, size=(s, s)), 1)
            W = W + W.T
            L = np.diag(W.sum(axis=1)) - W
            x_true = np.concatenate([[0.0], rng.normal(size=s - 1)])
            b = L @ x_true
            x = np.empty(s)
            assert laplacian_solve(W.copy(), b.copy(), x, np.empty(s), s)
            residual = L[1:, 1:] @ x[1:] - b[1:]
            scale = np.abs(L[1:, 1:]) @ np.abs(x[1:]) + np.abs(b[1:])
            assert np.all(np.abs(residual) <= 1e-12 * scale)
    W = np.zeros((3, 3))
    W[1, 2] = W[2, 1] = 1.0                  # nodes 1, 2 cut off from the ground
    assert not laplacian_solve(W, np.ones(3), np.empty(3), np.empty(3), 3)
