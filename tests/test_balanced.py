"""Smoothed (balanced) transport against the log-domain reference, POT, the LP and
finite differences."""
import warnings

import numpy as np
import ot
import pytest
from sklearn.exceptions import ConvergenceWarning

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from reference import plan_from_scalings, reference_balanced

TIGHT = dict(max_iter=200000, tol=1e-13)


@pytest.mark.parametrize("K", [3, 10, 40])
@pytest.mark.parametrize("lam", [1.0, 10.0, 50.0])
@pytest.mark.parametrize("kind", ["dense", "sparse", "onehot"])
def test_batch_matches_reference(K, lam, kind):
    M = random_metric(K, K)
    h = random_predictions(4, K, 1)
    y = random_targets(kind, 4, K, 2)
    r = snb.sinkhorn(h, y, M, lam, **TIGHT)
    assert r.loss.shape == (4,) and r.grad.shape == (4, K) and r.u.shape == (4, K)
    assert np.all(r.converged)
    for i in range(4):
        loss, grad, plan = reference_balanced(h[i], y[i], M, lam)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r.grad[i], grad, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, lam), plan,
                                   rtol=1e-8, atol=1e-13)
        np.testing.assert_allclose(r.transport_cost[i], (plan * M).sum(), rtol=1e-10)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("lam", [2.0, 20.0])
def test_plan_matches_pot(kind, lam):
    K = 12
    M = random_metric(K, 3)
    h = random_predictions(3, K, 4)
    y = random_targets(kind, 3, K, 5)
    r = snb.sinkhorn(h, y, M, lam, **TIGHT)
    for i in range(3):
        plan = ot.sinkhorn(h[i], y[i], M, reg=1.0 / lam, stopThr=1e-14, numItermax=200000)
        np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, lam), plan,
                                   rtol=1e-7, atol=1e-13)
        np.testing.assert_allclose(r.transport_cost[i], (plan * M).sum(), rtol=1e-9)


def _tangent_directions(K, seed, count=4):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(count, K))
    return d - d.mean(axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["dense", "sparse", "onehot"])
@pytest.mark.parametrize("lam", [1.0, 10.0, 30.0])
def test_gradient_matches_central_differences(kind, lam):
    K = 8
    M = random_metric(K, 11)
    h = random_predictions(1, K, 12)[0]
    y = random_targets(kind, 1, K, 13)[0]
    grad = snb.sinkhorn(h, y, M, lam, **TIGHT).grad
    eps = 1e-6
    for d in _tangent_directions(K, 14):
        plus = snb.sinkhorn(h + eps * d, y, M, lam, **TIGHT).loss
        minus = snb.sinkhorn(h - eps * d, y, M, lam, **TIGHT).loss
        fd = (plus - minus) / (2 * eps)
        assert abs(fd - grad @ d) <= 1e-6 * max(abs(fd), np.abs(grad).max() * np.abs(d).max())


@pytest.mark.parametrize("lam_max_m", [0.1, 1.0, 10.0, 100.0, 1e3, 1e4])
def test_float64_lam_range_finite_and_accurate(lam_max_m):
    K = 6
    M = random_metric(K, 21)
    lam = lam_max_m / M.max()
    h = random_predictions(3, K, 22)
    y = random_targets("dense", 3, K, 23)
    y[0, 1] = 0.0
    y[0] /= y[0].sum()
    r = snb.sinkhorn(h, y, M, lam, max_iter=100000, tol=1e-11)
    assert np.all(r.converged)
    for field in ("loss", "grad", "transport_cost"):
        assert np.all(np.isfinite(getattr(r, field))), field
    for i in range(3):
        loss, grad, _ = reference_balanced(h[i], y[i], M, lam, max_iter=100000, tol=1e-11)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(r.grad[i], grad, rtol=1e-6, atol=1e-8 * np.abs(grad).max())


@pytest.mark.parametrize("lam_max_m", [0.1, 1.0, 10.0, 29.0, 100.0, 1e3, 1e4])
def test_float32_lam_range_close_to_float64(lam_max_m):
    """float32 covers the same range: the multiplicative path up to
    lam*max(M) = 30, the log-domain path (accumulating in float64) beyond."""
    K = 6
    M = random_metric(K, 31)
    lam = lam_max_m / M.max()
    h = random_predictions(3, K, 32)
    y = random_targets("dense", 3, K, 33)
    r64 = snb.sinkhorn(h, y, M, lam, max_iter=200000, tol=1e-6)
    r32 = snb.sinkhorn(h.astype(np.float32), y.astype(np.float32), M.astype(np.float32),
                       np.float32(lam), max_iter=200000, tol=1e-6)
    assert r32.loss.dtype == np.float32 and r32.grad.dtype == np.float32
    assert np.all(np.isfinite(r32.loss)) and np.all(np.isfinite(r32.grad))
    scale = np.abs(r64.grad).max()
    np.testing.assert_allclose(r32.loss, r64.loss, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(r32.grad, r64.grad, atol=1e-3 * scale)


def test_transport_cost_approaches_exact_as_lam_grows():
    """Paper Fig. 3b: the smoothed plan's <T, M> tends to the exact W."""
    K = 6
    M = random_metric(K, 41)
    h = random_predictions(3, K, 42)
    y = random_targets("dense", 3, K, 43)
    exact = snb.exact_wasserstein(h, y, M)
    gaps = [np.abs(snb.sinkhorn(h, y, M, lam, max_iter=500000, tol=1e-11).transport_cost
                   - exact).max() for lam in (1.0, 10.0, 100.0, 1000.0)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-3


def test_one_hot_rows_use_the_closed_form():
    K = 9
    M = random_metric(K, 51)
    h = random_predictions(3, K, 52)
    y = random_targets("onehot", 3, K, 53)
    r = snb.sinkhorn(h, y, M, 7.0)
    assert np.all(r.n_iter == 0) and np.all(r.converged)
    j = y.argmax(axis=1)
    expected = (h * M[:, j].T).sum(axis=1) + (h * np.log(h)).sum(axis=1) / 7.0
    np.testing.assert_allclose(r.loss, expected, rtol=1e-13)


def one_hot_reference(h, j, M, lam):
    """Closed form of a one-hot target ``e_j`` in float64 with NumPy's logarithm."""
    h = h.astype(np.float64)
    log_h = np.log(h, out=np.zeros_like(h), where=h > 0)
    alpha = lam * M[:, j] + 1.0 + log_h
    return h @ M[:, j] + (h * log_h).sum() / lam, (alpha - alpha.mean()) / lam


@pytest.mark.parametrize("K", [12, 80])      # log from NumPy / fused into the row pass
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_hot_closed_form_with_zero_and_subnormal_entries(dtype, K):
    from sinkhorn_nb.core import FUSED_LOG_MIN_LABELS
    assert (K >= FUSED_LOG_MIN_LABELS) == (K == 80)
    lam = 5.0
    M = random_metric(K, 54)
    h = random_predictions(4, K, 55).astype(dtype)
    h[0, 3] = 0.0
    h[1, 2] = np.finfo(dtype).tiny / 8           # subnormal
    h[2, [1, 5]] = np.finfo(dtype).tiny / 1000, 0.0
    h /= h.sum(axis=1, keepdims=True)
    assert 0 < h[1, 2] < np.finfo(dtype).tiny
    y = random_targets("onehot", 4, K, 56).astype(dtype)
    value, grad = snb.WassersteinLoss(M, lam)(h, y)
    result = snb.WassersteinLoss(M, lam).solve(h, y)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for r, j in enumerate(y.argmax(axis=1)):
        loss, expected = one_hot_reference(h[r], j, M, lam)
        np.testing.assert_allclose(value[r], loss, rtol=rtol)
        np.testing.assert_allclose(grad[r], expected, rtol=rtol, atol=rtol)
    # loss-and-gradient calls skip the scalings but not the values
    np.testing.assert_array_equal(grad, result.grad)
    np.testing.assert_array_equal(value, result.loss)
    plan_rows = result.u * snb.gibbs.GibbsKernel(M, lam, dtype).G[:, y.argmax(axis=1)].T
    np.testing.assert_allclose(plan_rows, h, rtol=rtol, atol=0)


@pytest.mark.parametrize("K", [12, 80])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_hot_closed_form_reads_negative_zero_as_zero(dtype, K):
    # -0.0 passes validation (it is not negative); its bits are the smallest
    # integer, so a row holding one must take the corrected path like +0.0
    M = random_metric(K, 70)
    h = random_predictions(2, K, 71).astype(dtype)
    h[:, 4] = 0.0
    h /= h.sum(axis=1, keepdims=True)
    y = random_targets("onehot", 2, K, 72).astype(dtype)
    loss = snb.WassersteinLoss(M, 3.0)
    value, grad = loss(h, y)
    negative = h.copy()
    negative[:, 4] = -0.0
    assert np.signbit(negative[:, 4]).all()
    value_neg, grad_neg = loss(negative, y)
    np.testing.assert_array_equal(value_neg, value)
    np.testing.assert_array_equal(grad_neg, grad)
    assert np.isfinite(grad).all()
    u = loss.solve(negative, y).u           # u = h / G[:, j] (K=12), h e^{lam M + 1} (K=80)
    assert u[:, 4].tolist() == [0.0, 0.0] and not np.signbit(u).any()
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for r, j in enumerate(y.argmax(axis=1)):
        expected_loss, expected_grad = one_hot_reference(h[r], j, M, 3.0)
        np.testing.assert_allclose(value[r], expected_loss, rtol=rtol)
        np.testing.assert_allclose(grad[r], expected_grad, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("K", [12, 80])
@pytest.mark.parametrize("lam", [0.5, 50.0])
@pytest.mark.parametrize("lam_max_m", [10.0, 1e3])      # 1e3: the gauge is shifted
def test_one_hot_scalings_reproduce_the_plan(K, lam, lam_max_m):
    M = random_metric(K, 57)
    M *= lam_max_m / lam / M.max()
    h = random_predictions(3, K, 58)
    y = random_targets("onehot", 3, K, 59)
    r = snb.WassersteinLoss(M, lam).solve(h, y)
    assert np.all(np.isfinite(r.u)) and np.all(np.isfinite(r.v))
    for row, j in enumerate(y.argmax(axis=1)):
        assert np.count_nonzero(r.v[row]) == 1 and r.v[row, j] > 0
        # log T_ij = log u_i - lam M_ij - 1 + log v_j must be log h_i
        log_plan = np.log(r.u[row]) - lam * M[:, j] - 1.0 + np.log(r.v[row, j])
        np.testing.assert_allclose(log_plan, np.log(h[row]), rtol=0, atol=1e-12 * lam_max_m)
        assert np.log(r.u[row]).max() < 0.9 * np.log(np.finfo(float).max)


@pytest.mark.parametrize("K", [12, 80])
def test_one_hot_rows_in_a_mixed_batch_and_with_a_warm_start(K):
    M = random_metric(K, 60)
    lam = 5.0
    h = random_predictions(6, K, 61)
    y = np.vstack([random_targets("onehot", 2, K, 62), random_targets("dense", 2, K, 63),
                   random_targets("onehot", 1, K, 64), random_targets("sparse", 1, K, 65)])
    loss = snb.WassersteinLoss(M, lam, max_iter=100000, tol=1e-12)
    value, grad = loss(h, y)
    result = loss.solve(h, y)
    np.testing.assert_array_equal(value, result.loss)
    np.testing.assert_array_equal(grad, result.grad)
    one_hot = [0, 1, 4]
    assert np.all(result.n_iter[one_hot] == 0) and np.all(result.n_iter[[2, 3, 5]] > 0)
    for r in one_hot:
        expected_loss, expected_grad = one_hot_reference(h[r], y[r].argmax(), M, lam)
        np.testing.assert_allclose(value[r], expected_loss, rtol=1e-12)
        np.testing.assert_allclose(grad[r], expected_grad, rtol=1e-12, atol=1e-12)
    # a warm start moves the iterating rows only, never the closed-form ones
    rng = np.random.default_rng(66)
    init = (rng.uniform(0.5, 2.0, h.shape), rng.uniform(0.5, 2.0, h.shape))
    warm = loss.solve(h, y, init=init)
    np.testing.assert_array_equal(warm.u[one_hot], result.u[one_hot])
    np.testing.assert_array_equal(warm.v[one_hot], result.v[one_hot])
    np.testing.assert_allclose(warm.loss, result.loss, rtol=1e-9)


def test_loss_and_gradient_only_results_carry_no_scalings():
    from sinkhorn_nb.validation import check_measures
    K = 7
    loss = snb.WassersteinLoss(random_metric(K, 67), 3.0)
    h = random_predictions(2, K, 68)
    y = np.vstack([random_targets("onehot", 1, K, 69), random_targets("dense", 1, K, 70)])
    measures = check_measures(h, y, K, balanced=True, renormalize=False)
    result, _ = loss.solve_measures(measures, scalings=False)
    assert result.u is None and result.v is None
    full, _ = loss.solve_measures(measures)
    np.testing.assert_array_equal(result.grad, full.grad)
    assert snb.WassersteinLoss(random_metric(K, 67), 3.0)(h[0], y[0])[1].shape == (K,)


def test_zeros_in_h_give_finite_gradient():
    K = 6
    M = random_metric(K, 61)
    h = random_predictions(2, K, 62)
    h[:, [1, 4]] = 0.0
    h /= h.sum(axis=1, keepdims=True)
    y = random_targets("dense", 2, K, 63)
    r = snb.sinkhorn(h, y, M, 10.0, **TIGHT)
    assert np.all(np.isfinite(r.grad)) and np.all(np.isfinite(r.loss))
    assert np.all(r.u[:, [1, 4]] == 0)
    for i in range(2):
        loss, grad, _ = reference_balanced(h[i], y[i], M, 10.0)
        np.testing.assert_allclose(r.grad[i], grad, rtol=1e-8, atol=1e-10)


def test_tol_zero_runs_exactly_max_iter_without_warning():
    M = random_metric(8, 71)
    h = random_predictions(3, 8, 72)
    y = random_targets("dense", 3, 8, 73)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = snb.sinkhorn(h, y, M, 10.0, max_iter=37, tol=0.0)
    assert np.all(r.n_iter == 37) and not np.any(r.converged)


def test_rows_converge_independently():
    K = 10
    M = random_metric(K, 81)
    h = random_predictions(3, K, 82)
    y = np.vstack([h[0], random_targets("dense", 2, K, 83)])   # row 0: h == y, slow
    r = snb.sinkhorn(h, y, M, 30.0, tol=1e-8, max_iter=100000, check_every=5)
    assert np.all(r.converged) and np.all(r.err < 1e-8)
    assert len(set(r.n_iter.tolist())) == 3
    for i in range(3):   # each row stops at its own first check below tol
        alone = snb.sinkhorn(h[i], y[i], M, 30.0, tol=1e-8, max_iter=100000, check_every=5)
        assert alone.n_iter == r.n_iter[i]
        np.testing.assert_allclose(alone.loss, r.loss[i], rtol=1e-13)


def test_non_convergence_warns_once_and_reports():
    M = random_metric(8, 91)
    h = random_predictions(4, 8, 92)
    y = random_targets("dense", 4, 8, 93)
    with pytest.warns(ConvergenceWarning) as record:
        r = snb.sinkhorn(h, y, M, 50.0, max_iter=3, tol=1e-12)
    assert len([w for w in record if w.category is ConvergenceWarning]) == 1
    assert not np.any(r.converged) and np.all(r.n_iter == 3) and np.all(r.err > 1e-12)


@pytest.mark.parametrize("method", ["multiplicative", "log"])
def test_paths_agree(method):
    M = random_metric(15, 101)
    h = random_predictions(5, 15, 102)
    y = random_targets("sparse", 5, 15, 103)
    auto = snb.sinkhorn(h, y, M, 20.0, **TIGHT)
    other = snb.sinkhorn(h, y, M, 20.0, method=method, **TIGHT)
    np.testing.assert_allclose(other.loss, auto.loss, rtol=1e-11)
    np.testing.assert_allclose(other.grad, auto.grad, rtol=1e-8, atol=1e-11)


def test_single_pair_gives_scalars():
    M = random_metric(5, 111)
    h = random_predictions(1, 5, 112)[0]
    y = random_targets("dense", 1, 5, 113)[0]
    r = snb.sinkhorn(h, y, M, 5.0)
    assert isinstance(r.loss, float) and isinstance(r.n_iter, int)
    assert isinstance(r.converged, bool) and r.grad.shape == (5,)
    batch = snb.sinkhorn(h[None], y[None], M, 5.0)
    assert r.loss == batch.loss[0]


def test_dtype_promotion():
    M = random_metric(5, 121)
    h = random_predictions(2, 5, 122)
    y = random_targets("dense", 2, 5, 123)
    f32 = snb.sinkhorn(h.astype(np.float32), y.astype(np.float32), M.astype(np.float32), 5.0,
                       tol=1e-4)
    mixed = snb.sinkhorn(h.astype(np.float32), y, M.astype(np.float32), 5.0, tol=1e-6)
    assert f32.loss.dtype == np.float32 and f32.u.dtype == np.float32
    assert mixed.loss.dtype == np.float64


def test_renormalize_opt_in():
    M = random_metric(5, 131)
    h = random_predictions(2, 5, 132)
    y = random_targets("dense", 2, 5, 133)
    scaled = snb.sinkhorn(3 * h, 0.5 * y, M, 5.0, renormalize=True)
    plain = snb.sinkhorn(h, y, M, 5.0)
    np.testing.assert_allclose(scaled.loss, plain.loss, rtol=1e-12)


def test_equal_nonunit_masses_allowed():
    M = random_metric(5, 141)
    h = random_predictions(1, 5, 142)[0]
    y = random_targets("dense", 1, 5, 143)[0]
    r1 = snb.sinkhorn(h, y, M, 5.0, **TIGHT)
    r3 = snb.sinkhorn(3 * h, 3 * y, M, 5.0, **TIGHT)
    np.testing.assert_allclose(r3.transport_cost, 3 * r1.transport_cost, rtol=1e-9)


def test_loss_and_gradient_only_accepts_a_warm_start_on_one_hot_rows():
    from sinkhorn_nb.validation import check_measures
    K = 6
    loss = snb.WassersteinLoss(random_metric(K, 71), 3.0)
    h = random_predictions(3, K, 72)
    y = random_targets("onehot", 3, K, 73)
    measures = check_measures(h, y, K, balanced=True, renormalize=False)
    init = (np.ones_like(h), np.ones_like(h))
    result, _ = loss.solve_measures(measures, init, scalings=False)
    assert result.u is None
    np.testing.assert_array_equal(result.grad, loss(h, y)[1])


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_cold_start_shares_its_first_product(variant, dtype, monkeypatch):
    from sinkhorn_nb.cpu import drivers
    K = 40
    M = random_metric(K, 70)
    h = random_predictions(5, K, 71).astype(dtype)
    y = random_targets("dense", 5, K, 72).astype(dtype)
    engine = snb.WassersteinLoss(M, 5.0, variant, max_iter=7, tol=0.0, method="multiplicative")
    shared, products = [], []
    start_rows, dot = drivers.kernels.start_working_rows, drivers.np.dot

    def recording_start(*args):
        shared.append(start_rows(*args))
        return shared[-1]

    def recording_dot(a, b, *args, **kwargs):       # the operands of each product
        products.append((np.ndim(a), np.shape(b)))
        return dot(a, b, *args, **kwargs)
    monkeypatch.setattr(drivers.kernels, "start_working_rows", recording_start)
    monkeypatch.setattr(drivers.np, "dot", recording_dot)
    cold = engine.solve(h, y)
    first_cold = products[0]
    # a warm start at the same all-ones scalings takes the per-row product
    ones = np.ones_like(h)
    products.clear()
    warm = engine.solve(h, y, init=(ones, ones))
    assert shared == [True, False]
    assert first_cold == (1, (K, K)) and products[0] == (2, (K, K))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for name in ("loss", "grad", "transport_cost", "u", "v"):
        np.testing.assert_allclose(getattr(cold, name), getattr(warm, name), rtol=rtol,
                                   atol=rtol * np.abs(getattr(warm, name)).max(), err_msg=name)
    # the error is a difference of marginals of mass 1: rounding of order eps, not eps * err
    np.testing.assert_allclose(cold.err, warm.err, rtol=rtol, atol=10 * np.finfo(dtype).eps)
    # a zero where the start is taken (h for balanced, y for relaxed): no sharing
    h0, y0 = h.copy(), y.copy()
    (h0 if variant == "balanced" else y0)[2, 3] = 0
    h0[2] /= h0[2].sum()
    y0[2] *= h0[2].sum() / y0[2].sum()
    engine.solve(h0, y0)
    assert shared[-1] is False
