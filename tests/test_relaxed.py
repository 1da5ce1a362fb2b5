"""Relaxed (unbalanced) transport against the reference, POT, finite differences and its limits."""
import numpy as np
import ot
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from reference import plan_from_scalings, reference_relaxed

TIGHT = dict(max_iter=200000, tol=1e-13)


def _unnormalized(n, K, seed, scale=1.0, zeros=True):
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, scale, size=(n, K))
    if zeros:
        x[rng.random((n, K)) < 0.3] = 0.0
        x[:, 0] = rng.gamma(1.0, scale, size=n)   # keep every row non-empty
    return x


@pytest.mark.parametrize("K", [3, 10, 40])
@pytest.mark.parametrize("lam", [1.0, 10.0, 50.0])
@pytest.mark.parametrize("gammas", [(1.0, 1.0), (5.0, 0.3)])
def test_batch_matches_reference(K, lam, gammas):
    M = random_metric(K, K + 100)
    h = _unnormalized(4, K, 1, zeros=False)
    y = _unnormalized(4, K, 2)
    r = snb.sinkhorn_relaxed(h, y, M, lam, *gammas, **TIGHT)
    assert np.all(r.converged)
    for i in range(4):
        loss, grad, plan = reference_relaxed(h[i], y[i], M, lam, *gammas)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r.grad[i], grad, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, lam), plan,
                                   rtol=1e-8, atol=1e-13)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_plan_matches_pot_with_constant_reference_measure(kind):
    """POT's reg_type='kl' with c = e^-1 reproduces the paper's plan."""
    K, lam, gammas = 10, 10.0, (2.0, 0.5)
    M = random_metric(K, 201)
    h = random_predictions(3, K, 202) * 2.0
    y = random_targets(kind, 3, K, 203)
    r = snb.sinkhorn_relaxed(h, y, M, lam, *gammas, **TIGHT)
    c = np.full((K, K), np.exp(-1.0))
    for i in range(3):
        plan = ot.unbalanced.sinkhorn_unbalanced(h[i], y[i], M, 1.0 / lam, gammas,
                                                 reg_type="kl", c=c, stopThr=1e-15,
                                                 numItermax=200000)
        np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, lam), plan,
                                   rtol=1e-7, atol=1e-13)


@pytest.mark.parametrize("lam", [1.0, 10.0, 30.0])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_gradient_matches_central_differences(lam, scale):
    K = 7
    M = random_metric(K, 211)
    h = _unnormalized(1, K, 212, scale, zeros=False)[0]
    y = _unnormalized(1, K, 213, scale)[0]
    grad = snb.sinkhorn_relaxed(h, y, M, lam, 1.5, 0.7, **TIGHT).grad
    rng = np.random.default_rng(214)
    eps = 1e-6 * scale
    for d in rng.normal(size=(4, K)):
        plus = snb.sinkhorn_relaxed(h + eps * d, y, M, lam, 1.5, 0.7, **TIGHT).loss
        minus = snb.sinkhorn_relaxed(h - eps * d, y, M, lam, 1.5, 0.7, **TIGHT).loss
        fd = (plus - minus) / (2 * eps)
        assert abs(fd - grad @ d) <= 1e-6 * max(abs(fd), np.abs(grad).max() * np.abs(d).max())


@pytest.mark.parametrize("scale", [1e-8, 1e-4, 1.0, 1e3, 1e6])
@pytest.mark.parametrize("lam_max_m", [0.1, 10.0, 1e3, 1e4])
def test_masses_and_lam_range(scale, lam_max_m):
    K = 5
    M = random_metric(K, 221)
    lam = lam_max_m / M.max()
    h = _unnormalized(2, K, 222, scale, zeros=False)
    y = _unnormalized(2, K, 223, scale)
    # a fixed iteration count on both sides: at lam*max(M) = 1e4 the exponents
    # a, b are 1 - 1e-4 and convergence takes ~1e5 iterations, so compare iterates
    r = snb.sinkhorn_relaxed(h, y, M, lam, max_iter=3000, tol=0.0)
    for field in ("loss", "grad", "transport_cost"):
        assert np.all(np.isfinite(getattr(r, field))), field
    for i in range(2):
        loss, grad, _ = reference_relaxed(h[i], y[i], M, lam, 1.0, 1.0, max_iter=3000,
                                          tol=0.0)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-7)
        np.testing.assert_allclose(r.grad[i], grad, rtol=1e-6, atol=1e-7)


def test_float32_close_to_float64():
    K = 8
    M = random_metric(K, 231)
    h = _unnormalized(3, K, 232, zeros=False)
    y = _unnormalized(3, K, 233)
    r64 = snb.sinkhorn_relaxed(h, y, M, 10.0, tol=1e-7)
    r32 = snb.sinkhorn_relaxed(h.astype(np.float32), y.astype(np.float32),
                               M.astype(np.float32), 10.0, tol=1e-6)
    assert r32.loss.dtype == np.float32
    np.testing.assert_allclose(r32.loss, r64.loss, rtol=1e-4)
    np.testing.assert_allclose(r32.grad, r64.grad, atol=1e-4 * np.abs(r64.grad).max())


def test_approaches_smoothed_loss_as_gamma_grows():
    """Paper Fig. 3a: on normalized inputs the relaxed value tends to the smoothed one."""
    K = 8
    M = random_metric(K, 241)
    h = random_predictions(3, K, 242)
    y = random_targets("dense", 3, K, 243)
    smoothed = snb.sinkhorn(h, y, M, 20.0, **TIGHT).loss
    gaps = []
    for gamma in (0.1, 1.0, 10.0, 100.0, 1000.0):
        relaxed = snb.sinkhorn_relaxed(h, y, M, 20.0, gamma, gamma, max_iter=500000,
                                       tol=1e-12).loss
        gaps.append(np.max(np.abs(relaxed - smoothed) / np.abs(smoothed)))
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-2


def test_zero_mass_rows_have_closed_form():
    K = 4
    M = random_metric(K, 251)
    h = np.array([[0.5, 0.2, 0.0, 0.3], [0.0, 0.0, 0.0, 0.0]])
    y = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0]])
    r = snb.sinkhorn_relaxed(h, y, M, 10.0, 2.0, 3.0)
    np.testing.assert_allclose(r.loss, [2.0 * 1.0, 3.0 * 3.0])
    np.testing.assert_allclose(r.grad[0], [2.0, 2.0, -np.inf, 2.0])
    assert np.all(r.transport_cost == 0) and np.all(r.converged)


def test_zeros_in_h_give_minus_infinity_limit_only_there():
    K = 5
    M = random_metric(K, 261)
    h = np.array([0.4, 0.0, 0.3, 0.3, 0.0])
    y = np.array([0.1, 0.5, 0.0, 0.4, 0.2])
    r = snb.sinkhorn_relaxed(h, y, M, 10.0)
    assert np.all(np.isneginf(r.grad[[1, 4]]))
    assert np.all(np.isfinite(r.grad[[0, 2, 3]])) and np.isfinite(r.loss)
    dz = snb.softmax_backward(h, r.grad)
    assert np.all(np.isfinite(dz)) and dz[1] == 0 and dz[4] == 0


def test_log_domain_path_converges_and_matches_multiplicative():
    """The log-domain error measures the same quantity as the multiplicative one,
    so rows converge (not only run to max_iter) with tol > 0."""
    K = 9
    M = random_metric(K, 271)
    h = _unnormalized(3, K, 272, zeros=False)
    y = _unnormalized(3, K, 273)
    mult = snb.sinkhorn_relaxed(h, y, M, 20.0, 2.0, 0.5, method="multiplicative", tol=1e-11)
    log = snb.sinkhorn_relaxed(h, y, M, 20.0, 2.0, 0.5, method="log", tol=1e-11)
    assert np.all(log.converged) and np.all(mult.converged)
    np.testing.assert_array_equal(log.n_iter, mult.n_iter)
    np.testing.assert_allclose(log.loss, mult.loss, rtol=1e-10)
    np.testing.assert_allclose(log.grad, mult.grad, rtol=1e-8, atol=1e-10)
