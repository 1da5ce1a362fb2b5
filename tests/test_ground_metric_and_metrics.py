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


def test_large_p_neither_overflows_nor_underflows_the_whole_metric():
    """Distances are divided by their largest before the power.  Before the fix
    ordinal(100, 155) held NaN (99 ** 155 overflows), and from_points and
    from_embeddings gave NaN or an all-zero metric."""
    M = snb.ground_metric.ordinal(100, p=155)
    j = np.arange(1, 100)
    assert np.all(np.isfinite(M)) and M.max() == 0.999 and np.all(M[0, 1:] > 0)
    np.testing.assert_allclose(M[0, 1:], 0.999 * np.exp(155 * np.log(j / 99)), rtol=1e-9)
    M3 = snb.ground_metric.ordinal(3, p=1030)                    # 2 ** 1030 overflows
    np.testing.assert_allclose(M3[0], [0.0, 0.999 * 2.0 ** -1030, 0.999], rtol=1e-9)
    triangle = [[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]]   # was all zero
    P = snb.ground_metric.from_points(triangle, p=1100)
    np.testing.assert_allclose(P, 0.999 * (1 - np.eye(3)), rtol=1e-9)
    E = snb.ground_metric.from_embeddings([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]], p=1100)
    np.testing.assert_allclose(E[0], [0.0, 0.999 * 2.0 ** -550, 0.999], rtol=1e-9)
    # ordinary p: the same values as before, up to rounding
    D = np.abs(np.arange(7)[:, None] - np.arange(7)[None, :]) ** 1.7
    np.testing.assert_allclose(snb.ground_metric.ordinal(7, p=1.7), 0.999 * D / D.max(),
                               rtol=1e-14)


@pytest.mark.parametrize("call", [
    lambda: snb.ground_metric.ordinal(100, p=163),
    lambda: snb.ground_metric.from_points([[0.0], [1.0], [100.0]], p=200),
    lambda: snb.ground_metric.from_embeddings([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]], p=300),
])
def test_p_too_large_for_the_distances_is_an_error(call):
    """A positive distance that underflows to 0 would merge two labels: raise."""
    with pytest.raises(ValueError, match=r"p=\d+ is too large for these distances.*use p <="):
        call()


def test_duplicate_points_keep_their_zero_distance_at_large_p():
    M = snb.ground_metric.from_points([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], p=3000)
    np.testing.assert_array_equal(M, 0.999 * np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]]))


@pytest.mark.parametrize("average", ["no", "False", 0, 1, None, [True]])
def test_top_k_cost_average_must_be_a_bool(average):
    """Before the fix any truthy value (the string "no" included) meant True."""
    M = snb.ground_metric.ordinal(3)
    with pytest.raises(TypeError, match="average must be True or False"):
        snb.metrics.top_k_cost([0, 1], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], M, 1,
                               average=average)
    costs = snb.metrics.top_k_cost([0, 1], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], M, 1,
                                   average=np.False_)
    np.testing.assert_allclose(costs, [0.0, M[2, 1]])


def test_semantic_distance_looks_labels_up_in_classes():
    """Labels 3, 7, 9 or strings, as in a classifier's classes_, with classes=."""
    M = snb.ground_metric.ordinal(3, max_value=2.0)
    sd = snb.metrics.semantic_distance
    assert sd([3, 7, 9], [9, 7, 3], M, classes=[3, 7, 9]) == pytest.approx(4 / 3)
    assert sd(["b", "a"], ["a", "a"], M, classes=np.array(["c", "b", "a"])) == 0.5  # rows c, b, a
    assert sd([1, 0, 2], [1, 2, 2], M) == sd([7, 3, 9], [7, 9, 9], M, classes=[3, 7, 9])
    with pytest.raises(ValueError, match=r"y_pred contains labels not in classes: \[8\]"):
        sd([3, 7], [3, 8], M, classes=[3, 7, 9])
    with pytest.raises(ValueError, match="y_true contains labels not in classes"):
        sd(["x"], ["a"], M, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"integer label indices in \[0, 3\).*classes=clf"):
        sd([3, 7], [7, 9], M)
    with pytest.raises(TypeError, match="pass classes=clf.classes_"):
        sd(["a"], ["b"], M)
    with pytest.raises(ValueError, match=r"classes must hold one label per row of M"):
        sd([3], [7], M, classes=[3, 7])
    with pytest.raises(ValueError, match="classes must not repeat a label"):
        sd([3], [7], M, classes=[3, 7, 7])
    assert snb.metrics.top_k_cost(["b", "a"], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], M, 1,
                                  classes=["a", "b", "c"]) == 1.0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_semantic_distance_of_a_classifier_with_string_labels():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, 90)
    X = rng.normal(size=(90, 2)) + labels[:, None] * 2.0
    names = np.array(["low", "mid", "top"])[labels]
    clf = snb.WassersteinClassifier("ordinal", max_iter=30).fit(X, names)
    got = snb.metrics.semantic_distance(names, clf.predict(X), clf.ground_metric_,
                                        classes=clf.classes_)
    index = {name: i for i, name in enumerate(clf.classes_)}
    expected = np.mean([clf.ground_metric_[index[t], index[p]]
                        for t, p in zip(names, clf.predict(X))])
    assert got == pytest.approx(expected)
