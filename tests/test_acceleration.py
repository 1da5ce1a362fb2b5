"""Over-relaxation, the relaxed variant's translation and lam-continuation:
the same fixed point (loss, gradient) as the plain iteration, in fewer iterations."""
import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import sinkhorn_nb as snb
from plans import solve_on_path
from sinkhorn_nb import overrelaxation, routing
from sinkhorn_nb.cpu import acceleration
from sinkhorn_nb.ground_metric import from_embeddings
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from test_relaxed import reference_relaxed_dual


def dense_problem(K, n, seed=0):
    """The convergence benchmarks' family: dense Dirichlet(1) rows, a 16-D
    unit-sphere embedding metric."""
    rng = np.random.default_rng(seed)
    M = from_embeddings(rng.normal(size=(K, 16)))
    return M, rng.dirichlet(np.ones(K), size=n), rng.dirichlet(np.ones(K), size=n)


def solve(variant, h, y, M, lam, **kw):
    if variant == "balanced":
        return snb.sinkhorn(h, y, M, lam, **kw)
    return snb.sinkhorn_relaxed(h, y, M, lam, 5.0, 5.0, **kw)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("path", ["dense", "sparse", "log"])
def test_accelerated_paths_reach_the_plain_fixed_point(variant, path):
    K = 40
    M = random_metric(K, 5)
    h = random_predictions(6, K, 6)
    y = random_targets("sparse" if path == "sparse" else "dense", 6, K, 7, nonzeros=4)
    runs = {acc: solve_on_path(path, variant, h, y, M, 40.0, tol=1e-11, max_iter=100000,
                               acceleration=acc) for acc in ("none", "auto")}
    plain, fast = runs["none"], runs["auto"]
    assert plain.converged.all() and fast.converged.all()
    np.testing.assert_allclose(fast.loss, plain.loss, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fast.grad, plain.grad, atol=1e-6 * np.abs(plain.grad).max())
    assert np.median(fast.n_iter) < np.median(plain.n_iter)


def test_balanced_iterations_at_the_papers_lam():
    """lam = 50 on dense rows: in all, a fraction of the plain iteration's products."""
    M, h, y = dense_problem(128, 8)
    plain = snb.sinkhorn(h, y, M, 50.0, tol=1e-6, max_iter=20000, acceleration="none")
    fast = snb.sinkhorn(h, y, M, 50.0, tol=1e-6, max_iter=20000)
    assert fast.converged.all()
    assert fast.n_iter.sum() * 4 < plain.n_iter.sum()
    np.testing.assert_allclose(fast.loss, plain.loss, rtol=1e-5)


@pytest.mark.parametrize("gamma_lam", [1e3, 1e5, 1e7])
def test_relaxed_converges_in_tens_of_iterations_whatever_gamma(gamma_lam):
    """The common factor, which the plain iteration corrects at the rate
    1 - 2 / (gamma lam), is set in closed form: loss and gradient match the
    exact dual reference."""
    K, lam = 8, 10.0
    gamma = gamma_lam / lam
    M = random_metric(K, 241)
    h = random_predictions(3, K, 242)
    y = random_targets("dense", 3, K, 243)
    r = snb.sinkhorn_relaxed(h, y, M, lam, gamma, gamma, tol=1e-9, max_iter=2000)
    assert r.converged.all() and r.n_iter.max() <= 100
    for i in range(3):
        loss, grad, _, _ = reference_relaxed_dual(h[i], y[i], M, lam, gamma, gamma)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-9)
        np.testing.assert_allclose(r.grad[i], grad, atol=1e-6 * np.abs(grad).max())


def test_translation_is_the_dual_optimum_along_the_common_factor():
    """The closed form maximizes the relaxed dual along (c s, t / c)."""
    rng = np.random.default_rng(3)
    K, lam, ga, gb = 6, 7.0, 2.0, 0.5
    a, b = ga * lam / (ga * lam + 1), gb * lam / (gb * lam + 1)
    h, y = rng.random(K), rng.random(K)
    s, t = rng.random(K) + 0.1, rng.random(K) + 0.1
    G = np.exp(-lam * random_metric(K, 4) - 1)

    def dual(log_c):     # -ga <h, e^{-F/ga}> - gb <y, e^{-G/gb}> - <T, 1> / lam, up to constants
        sc, tc = s * np.exp(log_c), t * np.exp(-log_c)
        return (-ga * h @ sc ** (-1 / (lam * ga)) - gb * y @ tc ** (-1 / (lam * gb))
                - sc @ G @ tc / lam)

    best = acceleration.translation(h, s, y, t, a, b, False)
    grid = best + np.linspace(-1e-3, 1e-3, 21)
    assert np.argmax([dual(c) for c in grid]) == 10
    assert acceleration.translation(h, np.log(s), y, np.log(t), a, b, True) == pytest.approx(best)
    assert acceleration.translation(h, s, y, t, 1.0, 1.0, False) == 0.0      # balanced


def test_the_factor_rises_towards_youngs_optimum_and_backs_off():
    state = np.empty(6)
    acceleration.start_omega(state)
    assert state[0] == 1.0
    e = 0.1
    assert not acceleration.next_omega(state, e, 10)
    e *= 0.98 ** 10                       # the plain rate: 0.98 per iteration
    assert not acceleration.next_omega(state, e, 10)
    optimum = 2 / (1 + math.sqrt(1 - 0.98))
    assert state[0] == pytest.approx(optimum, rel=1e-6)
    for _ in range(3):                    # at the optimum the rate is omega - 1: it stays
        e *= (optimum - 1) ** 10
        assert not acceleration.next_omega(state, e, 10)
    assert state[0] == pytest.approx(optimum, rel=1e-6)
    omega = state[0]
    assert acceleration.next_omega(state, 1e3, 10)           # grew: back to the last check
    assert state[0] == pytest.approx(1 + 0.5 * (omega - 1))
    assert state[4] == pytest.approx(1 + 0.8 * (omega - 1))  # ceiling until it halves
    crawl = np.empty(6)
    acceleration.start_omega(crawl)
    crawl[0] = 1.9
    for k in range(60):                                      # never halves: crawls
        acceleration.next_omega(crawl, 1e-3 * (1 - 1e-6 * k), 10)
    assert crawl[0] < 1.9 and crawl[5] < 2.0


def test_a_row_that_diverges_when_overrelaxed_returns_and_converges():
    """lam * max(M) = 200: large factors overflow the scalings early on; those rows
    go back to their last check and still converge, to the plain fixed point."""
    M, h, y = dense_problem(64, 16, seed=4)
    fast = snb.sinkhorn(h, y, M, 200.0, tol=1e-7, max_iter=50000)
    plain = snb.sinkhorn(h, y, M, 200.0, tol=1e-7, max_iter=50000, acceleration="none")
    assert fast.converged.all() and np.isfinite(fast.loss).all()
    np.testing.assert_allclose(fast.loss, plain.loss, rtol=1e-5)


def test_identical_measures_do_not_crawl():
    """h == y at lam = 30: the plain iteration is slow, and over-relaxation must
    not be slower (it crawls at large factors unless it backs off)."""
    M = random_metric(10, 81)
    h = random_predictions(1, 10, 82)
    plain = snb.sinkhorn(h, h, M, 30.0, tol=1e-8, max_iter=100000, acceleration="none")
    fast = snb.sinkhorn(h, h, M, 30.0, tol=1e-8, max_iter=100000)
    assert fast.converged.all() and fast.n_iter[0] < plain.n_iter[0]


def test_lam_continuation_in_the_log_domain():
    K = 24
    M = random_metric(K, 11)
    h, y = random_predictions(3, K, 12), random_targets("dense", 3, K, 13)
    lam = 1000.0 / M.max()
    loss = snb.WassersteinLoss(M, lam, tol=1e-8, max_iter=50000)
    from plans import plan_of
    measures, kernel, plan = plan_of(loss, h, y)
    assert plan.log.size == 3 and plan.log_lam_start == pytest.approx(lam / 16)
    fast = snb.sinkhorn(h, y, M, lam, tol=1e-8, max_iter=50000)
    with pytest.warns(ConvergenceWarning):   # the plain iteration leaves a row unconverged
        plain = snb.sinkhorn(h, y, M, lam, tol=1e-8, max_iter=50000, acceleration="none")
    assert fast.converged.all() and plain.converged.sum() == 2
    done = plain.converged
    np.testing.assert_allclose(fast.loss[done], plain.loss[done], rtol=1e-6)
    exact = np.array([snb.exact_wasserstein(h[i], y[i], M) for i in range(3)])
    assert np.all(np.abs(fast.loss - exact) <= 2 * np.log(K) / lam)     # the entropic bias
    assert np.median(fast.n_iter) * 5 < np.median(plain.n_iter)


def test_no_checks_no_acceleration():
    """tol = 0 runs exactly max_iter plain iterations (the plan says so)."""
    M, h, y = dense_problem(16, 3)
    a = snb.sinkhorn(h, y, M, 20.0, tol=0.0, max_iter=37)
    b = snb.sinkhorn(h, y, M, 20.0, tol=0.0, max_iter=37, acceleration="none")
    np.testing.assert_array_equal(a.u, b.u)
    assert (a.n_iter == 37).all()
    plan = routing.make_plan("balanced", None, 20.0, 20.0, np.float64, 16, np.full(3, 16),
                             np.ones(3), np.ones(3), "auto", 0.0)
    assert not plan.accelerate


def test_acceleration_is_validated():
    M = random_metric(4, 1)
    with pytest.raises(ValueError, match="acceleration must be one of"):
        snb.sinkhorn(np.full(4, 0.25), np.full(4, 0.25), M, 10.0, acceleration="anderson")
    assert snb.WassersteinLoss(M, 10.0, acceleration="none").acceleration == "none"


def test_stage_exponents():
    assert overrelaxation.stage_exponent(1.0, 0.25) == 1.0
    gl = 40.0
    e = gl / (gl + 1)
    assert overrelaxation.stage_exponent(e, 0.25) == pytest.approx(10.0 / 11.0)


@pytest.mark.parametrize("max_iter", [30, 70, 150, 310])
def test_max_iter_within_the_continuation_never_reports_an_earlier_stage(max_iter):
    """A row stopped by max_iter before the last stage is scaled to lam and reports
    its error there: converged only if its loss is that of the full solve."""
    rng = np.random.default_rng(9)
    K = 40
    M = from_embeddings(rng.normal(size=(K, 16)))
    h, y = rng.dirichlet(np.ones(K), size=3), rng.dirichlet(np.ones(K), size=3)
    full = snb.sinkhorn(h, y, M, 1500.0, tol=1e-2, max_iter=100000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cut = snb.sinkhorn(h, y, M, 1500.0, tol=1e-2, max_iter=max_iter)
    assert np.all(cut.n_iter <= max_iter)
    ok = cut.converged
    np.testing.assert_allclose(cut.loss[ok], full.loss[ok], rtol=5e-2)
    assert np.all(cut.err[~ok] >= 1e-2)


def test_overrelax_runs_no_continuation():
    K = 24
    M = random_metric(K, 11)
    h, y = random_predictions(3, K, 12), random_targets("dense", 3, K, 13)
    from plans import plan_of
    lam = 1000.0 / M.max()
    for choice, start in (("auto", lam / 16), ("overrelax", lam), ("none", lam)):
        loss = snb.WassersteinLoss(M, lam, acceleration=choice)
        assert plan_of(loss, h, y)[2].log_lam_start == pytest.approx(start)
