"""The routing plan: which path each row takes, and the one rule for failed rows."""
import numba
import numpy as np
import pytest

import sinkhorn_nb as snb
from plans import engine, plan_of, solve_plan
from sinkhorn_nb import routing
from sinkhorn_nb.core import CONVERGED, FAILED
from sinkhorn_nb.problems import random_metric, random_predictions


def facts(supports, K, mass_h=None, mass_y=None):
    support = np.asarray(supports, np.int64)
    ones = np.ones(support.size)
    return dict(n_labels=K, support=support, mass_h=ones if mass_h is None else mass_h,
                mass_y=ones if mass_y is None else mass_y)


def test_balanced_plan_routes_by_support_and_range():
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method="auto", tol=1e-9,
                             **facts([1, 2, 8, 9, 12, 13, 100], 100))
    assert plan.closed.tolist() == [0]
    assert plan.newton.tolist() == [1, 2]
    assert plan.sparse.tolist() == [3, 4] and plan.sparse_width == 12
    assert plan.dense.tolist() == [5, 6] and plan.log.size == 0
    assert plan.roles == routing.Roles(True, 1.0, 1.0)
    assert plan.multiplicative.tolist() == [1, 2, 3, 4, 5, 6]
    # beyond the multiplicative range (float32's is smaller) every iterated row is log
    for lam_max_m, dtype in ((301.0, np.float64), (31.0, np.float32)):
        plan = routing.make_plan("balanced", None, 10.0, lam_max_m, dtype, method="auto",
                                 tol=1e-9, **facts([1, 2, 9, 100], 100))
        assert plan.log.tolist() == [1, 2, 3] and plan.multiplicative.size == 0


@pytest.mark.parametrize("method,tol,newton", [("auto", 1e-9, True), ("auto", 0.0, False),
                                               ("multiplicative", 1e-9, False)])
def test_newton_only_under_auto_with_a_tolerance(method, tol, newton):
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method=method, tol=tol,
                             **facts([3], 100))
    assert (plan.newton.tolist() == [0]) is newton
    assert (plan.sparse.tolist() == [0]) is not newton


def test_relaxed_plan_closes_empty_rows_and_has_its_roles():
    plan = routing.make_plan("relaxed", (2.0, 0.5), 10.0, 10.0, np.float64, method="auto",
                             tol=1e-9, **facts([1, 3, 0, 50], 100,
                                               mass_h=np.array([1.0, 0.0, 1.0, 1.0]),
                                               mass_y=np.array([1.0, 1.0, 0.0, 1.0])))
    assert plan.closed.tolist() == [1, 2]
    assert plan.newton.size == 0 and plan.sparse.tolist() == [0] and plan.dense.tolist() == [3]
    assert plan.roles == routing.Roles(False, 20.0 / 21.0, 5.0 / 6.0)
    assert plan.roles.exp_first == 20.0 / 21.0


def test_log_method_and_one_hot_division():
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method="log", tol=1e-9,
                             **facts([1, 1, 4], 16))
    assert plan.log.tolist() == [2] and plan.one_hot_divides      # 8 * 2 >= 16
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method="auto", tol=1e-9,
                             scalings=False, **facts([1, 1, 4], 16))
    assert not plan.one_hot_divides                                 # no scalings wanted
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method="auto", tol=1e-9,
                             **facts([1, 4], 160))
    assert not plan.one_hot_divides                                 # 8 * 1 < 160
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method="auto", tol=1e-9,
                             kernel_built=True, **facts([1, 4], 160))
    assert plan.one_hot_divides


def test_hand_on_is_one_rule():
    support = np.array([2, 3, 40, 5], np.int64)
    moved = routing.hand_on("newton", np.array([0, 2]), support, 100)
    assert moved["sparse"].tolist() == [0] and moved["dense"].tolist() == [2]
    assert routing.hand_on("sparse", np.array([1]), support, 100)["log"].tolist() == [1]
    assert routing.hand_on("dense", np.array([2]), support, 100)["log"].tolist() == [2]
    assert routing.hand_on("log", np.array([2]), support, 100) == {}


def test_execute_hands_failed_rows_on_cold_and_runs_outputs_once():
    """Rows failing on Newton go to the scaling iteration (cold), rows failing there
    or in the outputs go to the log domain (cold); the order is the plan's."""
    support = np.array([2, 2, 30, 3, 3], np.int64)
    plan = routing.make_plan("balanced", None, 10.0, 10.0, np.float64, method="auto",
                             tol=1e-9, **facts(support, 100))
    assert plan.newton.tolist() == [0, 1, 3, 4] and plan.dense.tolist() == [2]
    status = np.zeros(5, np.int64)
    calls = []
    fails = {"newton": {0, 3}, "sparse": {3}, "outputs": {1}}

    def iterate(path, rows, warm, width):
        calls.append((path, rows.tolist(), warm, width))
        status[rows] = [FAILED if r in fails.get(path, ()) else CONVERGED for r in rows]

    def outputs(rows):
        calls.append(("outputs", rows.tolist()))
        status[rows] = [FAILED if r in fails["outputs"] else CONVERGED for r in rows]

    routing.execute(plan, True, iterate, outputs, lambda rows: rows[status[rows] == FAILED],
                    support, 100)
    assert calls == [("newton", [0, 1, 3, 4], True, 3), ("sparse", [0, 3], False, 3),
                     ("dense", [2], True, 30), ("outputs", [0, 1, 2, 4]),
                     ("log", [1, 3], False, 3)]


@pytest.mark.parametrize("mass", [1e150, 1e155, 1e200, 1e300])
def test_rows_of_huge_mass_are_handed_on_not_left_unsolved(mass):
    """Newton's first step overflows at these masses; the row is handed to the
    scaling iteration and converges to the loss of the unit-mass problem, rescaled:
    ``W(m h, m y) = m (W(h, y) + log(m) / lam)``."""
    K = 30
    M = random_metric(K, 1)
    h = random_predictions(4, K, 2)
    y = np.zeros((4, K))
    y[:, [3, 7, 11]] = [0.5, 0.3, 0.2]
    unit = snb.sinkhorn(h, y, M, 20.0)
    big = snb.sinkhorn(h * mass, y * mass, M, 20.0)
    assert big.converged.all() and (big.n_iter > 0).all()
    np.testing.assert_allclose(big.loss / mass - np.log(mass) / 20.0, unit.loss, rtol=1e-9)
    np.testing.assert_allclose(big.grad, unit.grad, rtol=1e-7, atol=1e-9)


def test_a_newton_row_that_cannot_progress_is_failed_then_solved_elsewhere():
    K = 30
    M = random_metric(K, 1)
    h = random_predictions(2, K, 3) * 1e200
    y = np.zeros((2, K))
    y[:, [1, 2]] = 0.5e200
    loss = engine("balanced", M, 20.0)
    measures, kernel, plan = plan_of(loss, h, y)
    assert plan.newton.tolist() == [0, 1]
    result, status = solve_plan(loss, measures, kernel, plan)
    assert status.tolist() == [CONVERGED, CONVERGED] and (result.n_iter > 0).all()
    # the Newton kernel alone reports the rows it could not solve as FAILED
    from sinkhorn_nb.cpu import balanced
    n = 2
    out = [np.zeros((n, K)) for _ in range(4)]
    n_iter, err, st, cost = (np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64),
                             np.zeros(n))
    balanced.newton_rows(measures.h, *measures.kernel_targets, kernel.G_T, kernel.GM_T,
                         plan.newton, out[0], out[1], False, measures.mass_y, 1000, 1e-9, n_iter,
                         err, st, out[2], out[3], cost,
                         np.empty((5, numba.config.NUMBA_NUM_THREADS, K)))
    assert st.tolist() == [FAILED, FAILED]


def test_make_plan_needs_no_solver():
    """The plan is a pure function of the facts: the same facts, the same plan."""
    K = 40
    h = random_predictions(3, K, 4)
    loss = engine("balanced", random_metric(K, 5), 10.0)
    a = plan_of(loss, h, h)[2]
    b = plan_of(loss, h, h)[2]
    for path in routing.PATHS:
        np.testing.assert_array_equal(a.rows(path), b.rows(path))


def test_force_refuses_paths_that_cannot_solve_the_rows():
    K = 40
    h = random_predictions(3, K, 6)
    y = np.zeros((3, K))
    y[:, :10] = 0.1                                 # 10 labels: more than Newton takes
    for variant, path in (("balanced", "closed"), ("balanced", "newton"),
                          ("relaxed", "newton"), ("balanced", "Sparse")):
        loss = engine(variant, random_metric(K, 7), 10.0)
        measures, _, plan = plan_of(loss, h, y)
        with pytest.raises(ValueError):
            routing.force(plan, path, measures.support)


def test_a_plan_that_misses_rows_is_an_error_not_a_result():
    K = 20
    h = random_predictions(3, K, 8)
    loss = engine("balanced", random_metric(K, 9), 10.0)
    measures, kernel, plan = plan_of(loss, h, h)
    missing = routing.replace(plan, dense=plan.dense[:1])
    with pytest.raises(RuntimeError, match="routes 1 rows, the batch has 3"):
        solve_plan(loss, measures, kernel, missing)


@pytest.mark.parametrize("lam", [5.0, 50.0])
def test_relaxed_log_domain_rows_after_closed_rows(lam):
    """Rows of the log domain that are not the first rows of the batch (a closed
    row before them) give what each gives alone."""
    K = 6
    M = random_metric(K, 10)
    h = random_predictions(4, K, 11)
    y = 1.5 * random_predictions(4, K, 12)
    h[0] = 0.0                                       # closed form (empty h)
    batch = snb.sinkhorn_relaxed(h, y, M, lam, method="log", max_iter=20000)
    for i in range(4):
        alone = snb.sinkhorn_relaxed(h[i], y[i], M, lam, method="log", max_iter=20000)
        np.testing.assert_allclose(batch.loss[i], alone.loss, rtol=1e-12)
        np.testing.assert_allclose(batch.grad[i], alone.grad, rtol=1e-10)


def test_overflow_in_the_multiplicative_paths_raises_no_numpy_warning():
    """Over- and underflow of the scaling iteration is detected per row and handed
    on; it does not leak NumPy RuntimeWarnings (errors in this test suite)."""
    M = snb.ground_metric.ordinal(5)
    r = snb.sinkhorn_relaxed(np.float32([0.35, 1e-4, 0, 2e-8, 0]),
                             np.float32([0.4, 0, 0.3, 0.7, 0]), M, lam=15.0, gamma_a=10.0,
                             gamma_b=10.0)
    log = snb.sinkhorn_relaxed(np.float32([0.35, 1e-4, 0, 2e-8, 0]),
                               np.float32([0.4, 0, 0.3, 0.7, 0]), M, lam=15.0, gamma_a=10.0,
                               gamma_b=10.0, method="log")
    np.testing.assert_allclose(r.loss, log.loss, rtol=1e-5)
    M = snb.ground_metric.ordinal(10)
    h = np.full((3, 10), 0.1)
    forced = snb.sinkhorn(h, h, M, 1e4, method="multiplicative", max_iter=50, tol=0.0)
    assert np.isfinite(forced.loss).all()


@pytest.mark.parametrize("scale", [1e-170, 1e-250, 1e250])
def test_newton_at_extreme_masses(scale):
    """The Newton gap is measured relative to the mass: it neither underflows
    (every step would look like progress) nor overflows."""
    M = snb.ground_metric.ordinal(5)
    h = np.full(5, 0.2)
    y = np.array([0, 0, 0.5, 0.5, 0])
    unit = snb.sinkhorn(h, y, M, lam=20.0)
    r = snb.sinkhorn(h * scale, y * scale, M, lam=20.0)
    assert r.converged
    np.testing.assert_allclose(r.transport_cost / scale, unit.transport_cost, rtol=1e-8)


def test_rows_too_light_for_the_multiplicative_path_take_the_log_domain():
    """At lam * max(M) = 299, rows of mass 1e-300 would have subnormal products
    (wrong by a few percent, never non-finite): the plan routes them to the log
    domain, and the cost is the unit-mass cost."""
    K = 30
    M = snb.ground_metric.ordinal(K)
    lam = 299.0 / M.max()
    rng = np.random.default_rng(0)
    h, y = rng.dirichlet(np.ones(K), 3), rng.dirichlet(np.ones(K), 3)
    scale = np.array([1.0, 1e-150, 1e-300])[:, None]
    loss = engine("balanced", M, lam, max_iter=30000)
    _, _, plan = plan_of(loss, h * scale, y * scale)
    assert plan.dense.tolist() == [0, 1] and plan.log.tolist() == [2]
    r = snb.sinkhorn(h * scale, y * scale, M, lam, max_iter=30000)
    unit = snb.sinkhorn(h, y, M, lam, max_iter=30000)
    np.testing.assert_allclose(r.transport_cost / scale[:, 0], unit.transport_cost, rtol=1e-8)
