"""Ground metrics, evaluation metrics and the exact LP."""
import numpy as np
import ot
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets


def test_ordinal_metric():
    M = snb.ground_metric.ordinal(5, p=2.0)
    k = np.arange(5)
    expected = np.abs(k[:, None] - k[None, :]) ** 2.0
    np.testing.assert_allclose(M, 0.999 * expected / 16.0)
    assert M.max() < 1 and np.all(np.diag(M) == 0)
    np.testing.assert_array_equal(snb.ground_metric.ordinal(1), [[0.0]])


def test_from_points_and_embeddings():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(6, 3))
    D = np.linalg.norm(P[:, None] - P[None], axis=2)
    np.testing.assert_allclose(snb.ground_metric.from_points(P, p=1.5),
                               0.999 * D ** 1.5 / (D ** 1.5).max(), atol=1e-12)
    E = P * rng.uniform(0.5, 5.0, size=(6, 1))       # row scale must not matter
    U = P / np.linalg.norm(P, axis=1, keepdims=True)
    DU = np.linalg.norm(U[:, None] - U[None], axis=2)
    np.testing.assert_allclose(snb.ground_metric.from_embeddings(E), 0.999 * DU / DU.max(),
                               atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: snb.ground_metric.ordinal(0), "n_classes must be >= 1"),
    (lambda: snb.ground_metric.ordinal(3, p=0), "p must be finite and > 0"),
    (lambda: snb.ground_metric.from_points(np.ones(3)), "P must be a non-empty 2-D"),
    (lambda: snb.ground_metric.from_points([[0.0, np.nan]]), "P contains NaN"),
    (lambda: snb.ground_metric.from_embeddings([[1.0, 0.0], [0.0, 0.0]]), "E row 1 is all zero"),
])
def test_ground_metric_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_exact_wasserstein_matches_pot_emd():
    K = 7
    M = random_metric(K, 1)
    h = random_predictions(3, K, 2)
    y = random_targets("sparse", 3, K, 3)
    values = snb.exact_wasserstein(h, y, M)
    for i in range(3):
        assert values[i] == pytest.approx(ot.emd2(h[i], y[i], M), rel=1e-9, abs=1e-12)
    assert isinstance(snb.exact_wasserstein(h[0], y[0], M), float)


def test_semantic_distance():
    M = snb.ground_metric.ordinal(10, max_value=9.0)
    assert snb.metrics.semantic_distance([1, 5, 9], [1, 7, 0], M) == pytest.approx(11 / 3)
    assert snb.metrics.semantic_distance([1, 5], [2, 7], M, sample_weight=[3, 1]) == \
        pytest.approx((3 * 1 + 2) / 4)
    with pytest.raises(ValueError, match="y_pred must hold integer label indices"):
        snb.metrics.semantic_distance([1], [10], M)


def test_top_k_cost_by_brute_force():
    rng = np.random.default_rng(4)
    K = 6
    M = random_metric(K, 5)
    Y = (rng.random((8, K)) < 0.4)
    Y[:, 0] |= ~Y.any(axis=1)
    S = rng.normal(size=(8, K))
    for k in (1, 3, K):
        expected = []
        for s in range(8):
            top = np.argsort(-S[s])[:k]
            expected.append(np.mean([M[t, Y[s]].min() for t in top]))
        assert snb.metrics.top_k_cost(Y, S, M, k) == pytest.approx(np.mean(expected))
        np.testing.assert_allclose(snb.metrics.top_k_cost(Y, S, M, k, average=False), expected)
    labels = rng.integers(0, K, 8)
    onehot = np.eye(K)[labels]
    assert snb.metrics.top_k_cost(labels, S, M, 2) == snb.metrics.top_k_cost(onehot, S, M, 2)
    with pytest.raises(ValueError, match="k must be an integer in"):
        snb.metrics.top_k_cost(Y, S, M, 0)
    with pytest.raises(ValueError, match="has no true label"):
        snb.metrics.top_k_cost(np.zeros((8, K)), S, M, 1)
