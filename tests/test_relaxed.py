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


# ------------------------------------------------------------ strong penalties
def _gauge(F, G, h, y, ga, gb):
    """Newton on the common shift ``(F + c, G - c)``, which leaves the plan alone."""
    for _ in range(100):
        pa, pb = h * np.exp(-F / ga), y * np.exp(-G / gb)
        step = (pa.sum() - pb.sum()) / (pa.sum() / ga + pb.sum() / gb)
        F, G = F + step, G - step
        if abs(step) <= 1e-17 * (1 + np.abs(F).max()):
            break
    return F, G


def reference_relaxed_dual(h, y, M, lam, gamma_a, gamma_b, max_iter=200000):
    """``(value, grad, F, G)`` of one pair of positive vectors, accurate for any
    penalty: log-domain iterations with the common shift solved exactly every 50
    iterations (it converges at the rate ``a b``, too slowly to wait for), and the
    value as the dual :math:`-\\gamma_a\\sum h (e^{-F/\\gamma_a} - 1) - \\gamma_b\\sum
    y (e^{-G/\\gamma_b} - 1) - \\frac1\\lambda\\sum T` with ``expm1``: stationary at
    the optimum, and free of the cancellation of the primal KL terms."""
    from scipy.special import logsumexp
    a = gamma_a * lam / (gamma_a * lam + 1)
    b = gamma_b * lam / (gamma_b * lam + 1)
    logG = -lam * np.asarray(M, np.float64) - 1.0
    f, g = np.zeros(h.size), np.zeros(y.size)
    for it in range(max_iter):
        f_new = a * (np.log(h) - logsumexp(g[None, :] + logG, axis=1))
        g = b * (np.log(y) - logsumexp(f_new[:, None] + logG, axis=0))
        done = np.abs(f_new - f).max() <= 1e-14 * max(1.0, np.abs(f).max())
        f = f_new
        if it % 50 == 49 or done:
            F, G = _gauge(f / lam, g / lam, h, y, gamma_a, gamma_b)
            f, g = lam * F, lam * G
        if done:
            break
    F, G = _gauge(f / lam, g / lam, h, y, gamma_a, gamma_b)
    value = (-gamma_a * (h * np.expm1(-F / gamma_a)).sum()
             - gamma_b * (y * np.expm1(-G / gamma_b)).sum()
             - np.exp(lam * (F[:, None] + G[None, :]) + logG).sum() / lam)
    return value, -gamma_a * np.expm1(-F / gamma_a), F, G


def test_kl_term_is_accurate_to_a_few_ulps():
    """Each entry of KL~ against 60-digit decimal arithmetic, near w = z (where the
    three terms cancel), at the edges of the series and far from it."""
    from decimal import Decimal, localcontext

    from sinkhorn_nb.cpu.relaxed import kl_term
    ratios = np.concatenate([1 + np.logspace(-16, -0.01, 60), 1 - np.logspace(-16, -0.01, 60),
                             [1 / 3, np.nextafter(1 / 3, 0), 2.0, np.nextafter(2.0, 3), 0.5,
                              1.5, 1e-12, 1e12, 1e250]])
    worst = 0.0
    with localcontext() as ctx:
        ctx.prec = 60
        for z in (1.0, 3.7e-5, 2.2e-8, 6.1e7):
            for ratio in ratios:
                w = z * ratio
                if w == z or not np.isfinite(w):
                    continue
                W, Z = Decimal(w), Decimal(z)
                exact = float(W * (W / Z).ln() - W + Z)
                worst = max(worst, abs(kl_term(w, z, np.log(w)) - exact) / exact)
    assert worst <= 6 * np.finfo(np.float64).eps, worst / np.finfo(np.float64).eps


def test_output_kernels_are_exact_at_strong_penalties():
    """At gamma = 1e12 the KL terms of the optimal plan nearly cancel: summed as
    w log(w / z) - w + z they were off by gamma * eps (1e-3 relative), once
    flagged converged with a loss wrong in the first digit at gamma = 1e16."""
    from sinkhorn_nb.cpu import relaxed
    K, lam, gamma = 6, 10.0, 1e12
    M = random_metric(K, 301)
    h = random_predictions(2, K, 302)
    y = random_targets("dense", 2, K, 303) + 0.01
    y /= y.sum(axis=1, keepdims=True)
    G = np.exp(-lam * M - 1.0)
    u, v, expected = np.empty((2, K)), np.empty((2, K)), np.empty(2)
    for i in range(2):
        expected[i], _, F, Gp = reference_relaxed_dual(h[i], y[i], M, lam, gamma, gamma)
        u[i], v[i] = np.exp(lam * F), np.exp(lam * Gp)
    Gv, GTu = v @ G.T, u @ G
    rows = np.arange(2)
    loss, grad, status = np.empty(2), np.empty((2, K)), np.zeros(2, np.int64)
    no_triplets = np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)    # (y is dense)
    relaxed.outputs_from_scalings(h, y, *no_triplets, u, v, Gv, GTu, lam, gamma, gamma, rows,
                                  loss, grad, status)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    loss_log, u2, v2 = np.empty(2), np.empty((2, K)), np.empty((2, K))
    relaxed.outputs_from_logs(h, y, np.log(u), np.log(v), np.log(Gv), np.log(GTu), lam, gamma,
                              gamma, rows, loss_log, grad, u2, v2)
    np.testing.assert_allclose(loss_log, expected, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("gamma, lam, dtype", [(1e2, 10.0, np.float64), (1e6, 10.0, np.float64),
                                               (1e10, 1e-3, np.float64),
                                               (1e2, 10.0, np.float32), (1e3, 10.0, np.float32)])
def test_strong_penalties_up_to_the_limit_match_the_dual_reference(gamma, lam, dtype):
    """Up to gamma * lam = 1e7 (float64) and 1e4 (float32).  Rows may stop at
    max_iter (the common factor of the scalings settles at the rate
    1 - O(1 / (gamma lam))); the loss does not depend on it, and the gradient of a
    converged row is accurate to about gamma * tol."""
    K = 8
    M = random_metric(K, 241)
    h = random_predictions(3, K, 242)
    y = random_targets("dense", 3, K, 243)
    r = snb.sinkhorn_relaxed(h.astype(dtype), y.astype(dtype), M, lam, gamma, gamma,
                             max_iter=20000)
    tol = 1e-9 if dtype == np.float64 else 1e-5
    for i in range(3):
        loss, grad, _, _ = reference_relaxed_dual(h[i], y[i], M, lam, gamma, gamma)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-6 if dtype == np.float64 else 1e-5)
        if r.converged[i]:
            assert np.abs(r.grad[i] - grad).max() <= 2 * gamma * tol * np.abs(grad).max()


@pytest.mark.parametrize("name", ["gamma_a", "gamma_b"])
def test_penalties_beyond_the_limit_are_refused(name):
    K = 4
    M = random_metric(K, 311)
    h = random_predictions(2, K, 312)
    message = (f"{name} \\* lam = 11000000 is above 1e\\+07, the largest for which the "
               "relaxed loss and its gradient are accurate in float64.*balanced sinkhorn")
    with pytest.raises(ValueError, match=message):
        snb.sinkhorn_relaxed(h, h, M, 10.0, **{name: 1.1e6})
    with pytest.raises(ValueError, match=message):
        snb.WassersteinLoss(M, 1e-3, "relaxed", **{name: 1.1e10})
    snb.WassersteinLoss(M, 10.0, "relaxed", **{name: 1e6})          # the limit itself
    from sinkhorn_nb.validation import check_relaxed_penalties
    check_relaxed_penalties(10.0, 1e3, 1e3, np.float32)
    with pytest.raises(ValueError, match=f"{name} \\* lam = 20000 is above 1e\\+04.*float32"):
        check_relaxed_penalties(10.0, *((2e3, 1.0) if name == "gamma_a" else (1.0, 2e3)),
                                np.float32)


def test_float32_penalties_beyond_their_limit_are_refused_per_call():
    K = 4
    M = random_metric(K, 311)
    h = random_predictions(2, K, 312).astype(np.float32)
    loss = snb.WassersteinLoss(M, 10.0, "relaxed", gamma_a=2e3)      # fine in float64
    loss(h.astype(np.float64), h.astype(np.float64))
    with pytest.raises(ValueError, match=r"gamma_a \* lam = 20000 is above 1e\+04.*float32"):
        loss(h, h)
