"""WassersteinLoss (the estimator's engine) and the softmax chain rule."""
import pickle

import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_loss_matches_functional_api(variant):
    K = 9
    M = random_metric(K, 1)
    h = random_predictions(5, K, 2)
    y = random_targets("sparse", 5, K, 3)
    gammas = dict(gamma_a=2.0, gamma_b=0.5) if variant == "relaxed" else {}
    loss = snb.WassersteinLoss(M, 8.0, variant=variant, **gammas)
    value, grad = loss(h, y)
    if variant == "balanced":
        ref = snb.sinkhorn(h, y, M, 8.0)
    else:
        ref = snb.sinkhorn_relaxed(h, y, M, 8.0, 2.0, 0.5)
    np.testing.assert_array_equal(value, ref.loss)
    np.testing.assert_array_equal(grad, ref.grad)
    v1, g1 = loss(h[0], y[0])
    assert np.ndim(v1) == 0 and g1.shape == (K,)


def test_kernel_built_once_per_dtype():
    K = 6
    M = random_metric(K, 4)
    loss = snb.WassersteinLoss(M, 5.0)
    h = random_predictions(3, K, 5)
    y = random_targets("dense", 3, K, 6)
    loss(h, y)
    first = loss.kernel(np.float64)
    loss(h, y)
    assert loss.kernel(np.float64) is first
    value32, _ = loss(h.astype(np.float32), y.astype(np.float32))
    assert value32.dtype == np.float32 and len(loss._kernels._host) == 2
    np.testing.assert_allclose(first.G, np.exp(-5.0 * M - 1.0), rtol=1e-15)


def test_loss_is_picklable():
    M = random_metric(5, 7)
    loss = snb.WassersteinLoss(M, 5.0, variant="relaxed")
    h = random_predictions(2, 5, 8)
    y = random_targets("dense", 2, 5, 9)
    clone = pickle.loads(pickle.dumps(loss))
    np.testing.assert_array_equal(clone(h, y)[0], loss(h, y)[0])
    assert "relaxed" in repr(loss)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_softmax_backward_matches_finite_differences(variant):
    K = 7
    M = random_metric(K, 10)
    rng = np.random.default_rng(11)
    z = rng.normal(size=K)
    y = random_targets("sparse", 1, K, 12)[0]
    loss = snb.WassersteinLoss(M, 10.0, variant=variant, max_iter=100000, tol=1e-13)
    h = _softmax(z)
    dz = snb.softmax_backward(h, loss(h, y)[1])
    eps = 1e-6
    for d in rng.normal(size=(3, K)):
        fd = (loss(_softmax(z + eps * d), y)[0] - loss(_softmax(z - eps * d), y)[0]) / (2 * eps)
        assert abs(fd - dz @ d) <= 1e-6 * max(abs(fd), np.abs(dz).max())


def test_softmax_backward_zero_probabilities_contribute_zero():
    h = np.array([[0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
    g = np.array([[1.0, 2.0, -np.inf], [3.0, np.nan, -np.inf]])
    dz = snb.softmax_backward(h, g)
    np.testing.assert_allclose(dz, [[0.6 * (1 - 1.4), 0.4 * (2 - 1.4), 0.0], [0.0, 0.0, 0.0]])
