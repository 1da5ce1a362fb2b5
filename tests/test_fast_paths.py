"""The sparse-target path, the lazy Gibbs kernel and the fast start, against the
dense path and the log-domain reference."""
import os
import subprocess
import sys

import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from plans import GAMMAS, engine, plan_of, solve_on_path, solve_plan
from reference import plan_from_scalings, reference_balanced, reference_relaxed
from sinkhorn_nb import routing
from sinkhorn_nb.gibbs import GibbsKernel

TIGHT = dict(max_iter=200000, tol=1e-13)


def sparse_targets(n, K, nnz, seed, mass=1.0):
    return random_targets("sparse", n, K, seed, nonzeros=nnz, mass=mass)


def solve(variant, h, y, M, lam, **kw):
    """The Sinkhorn paths (``method="multiplicative"`` keeps balanced rows with small
    supports off Newton's method, which ``tests/test_newton.py`` covers)."""
    kw.setdefault("method", "multiplicative")
    if variant == "balanced":
        return snb.sinkhorn(h, y, M, lam, **kw)
    return snb.sinkhorn_relaxed(h, y, M, lam, gamma_a=0.7, gamma_b=1.3, **kw)


def test_sparse_rows_threshold():
    y = np.zeros((3, 16))
    y[0, :2] = 0.5          # 2 <= 16/8: sparse
    y[1, :3] = 1 / 3        # 3 > 2: dense
    y[2, :] = 1 / 16
    h = np.full((3, 16), 1 / 16)
    _, _, plan = plan_of(engine("relaxed", random_metric(16, 0), 5.0), h, y)
    assert plan.sparse.tolist() == [0] and plan.dense.tolist() == [1, 2]
    assert plan.sparse_width == 2


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_sparse_path_matches_dense_path(variant, dtype, rtol):
    K = 48
    M = random_metric(K, 0).astype(dtype)
    h = random_predictions(9, K, 1).astype(dtype)
    y = sparse_targets(9, K, 4, 2).astype(dtype)
    sparse = solve_on_path("sparse", variant, h, y, M, 8.0)
    dense = solve_on_path("dense", variant, h, y, M, 8.0)
    np.testing.assert_array_equal(sparse.n_iter, dense.n_iter)
    assert sparse.loss.dtype == dtype and sparse.grad.dtype == dtype
    for name in ("loss", "grad", "transport_cost", "u", "v"):
        a, b = getattr(sparse, name), getattr(dense, name)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)),
                                   err_msg=name)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("lam", [1.0, 20.0, 100.0])
def test_sparse_path_matches_reference(variant, lam):
    K = 30
    M = random_metric(K, 3)
    h = random_predictions(4, K, 4)
    h[0, :5] = 0.0                            # zeros in the prediction as well
    h[0] /= h[0].sum()
    y = sparse_targets(4, K, 3, 5, mass=1.0 if variant == "balanced" else 1.7)
    r = solve_on_path("sparse", variant, h, y, M, lam, **TIGHT)
    assert np.all(r.converged)
    for i in range(4):
        if variant == "balanced":
            loss, grad, plan = reference_balanced(h[i], y[i], M, lam)
        else:
            loss, grad, plan = reference_relaxed(h[i], y[i], M, lam, *GAMMAS)
        np.testing.assert_allclose(r.loss[i], loss, rtol=1e-10)
        finite = np.isfinite(grad)
        np.testing.assert_array_equal(np.isfinite(r.grad[i]), finite)
        np.testing.assert_allclose(r.grad[i][finite], grad[finite], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, lam), plan,
                                   rtol=1e-8, atol=1e-13)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_mixed_batch_equals_each_row_alone(variant):
    """Sparse rows (K/8 non-zeros or fewer) and dense rows in one batch take their
    own paths and give what they give alone."""
    K = 40
    M = random_metric(K, 6)
    h = random_predictions(6, K, 7)
    y = np.vstack([sparse_targets(3, K, 3, 8), random_targets("dense", 3, K, 9)])
    _, _, plan = plan_of(engine(variant, M, 10.0, method="multiplicative"), h, y)
    assert plan.sparse.tolist() == [0, 1, 2] and plan.dense.tolist() == [3, 4, 5]
    batch = solve(variant, h, y, M, 10.0)
    for i in range(6):
        alone = solve(variant, h[i], y[i], M, 10.0)
        np.testing.assert_allclose(batch.loss[i], alone.loss, rtol=1e-13)
        np.testing.assert_allclose(batch.grad[i], alone.grad, rtol=1e-12, atol=1e-15)
        assert batch.n_iter[i] == alone.n_iter


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_asymmetric_metric_on_both_paths(variant):
    """G_T is the true transpose when M is not symmetric (not shared with G)."""
    K = 24
    rng = np.random.default_rng(10)
    M = rng.uniform(0.1, 1.0, size=(K, K))
    np.fill_diagonal(M, 0.0)
    h = random_predictions(3, K, 11)
    y = sparse_targets(3, K, 3, 12)
    assert not GibbsKernel(M, 5.0, np.float64).symmetric
    for which in ("sparse", "dense"):
        r = solve_on_path(which, variant, h, y, M, 5.0, **TIGHT)
        for i in range(3):
            if variant == "balanced":
                loss, _, plan = reference_balanced(h[i], y[i], M, 5.0)
            else:
                loss, _, plan = reference_relaxed(h[i], y[i], M, 5.0, *GAMMAS)
            np.testing.assert_allclose(r.loss[i], loss, rtol=1e-10, err_msg=which)
            np.testing.assert_allclose(plan_from_scalings(r.u[i], r.v[i], M, 5.0), plan,
                                       rtol=1e-8, atol=1e-13, err_msg=which)


def test_sparse_path_falls_back_to_log_domain():
    """At lam*max(M) = 2000 the sparse path over/underflows; the plan hands those
    rows to the log domain, which gives what a plan of log rows gives (the same
    iterations too: the rows were redone there, cold)."""
    K = 20
    M = random_metric(K, 13)
    h = random_predictions(3, K, 14)
    y = sparse_targets(3, K, 2, 15)
    loss = engine("balanced", M, 2000.0, method="multiplicative", max_iter=50000)
    measures, kernel, plan = plan_of(loss, h, y)
    sparse = routing.force(plan, "sparse", measures.support)
    log = routing.force(plan, "log", measures.support)
    forced, status = solve_plan(loss, measures, kernel, sparse)
    reference = solve_plan(loss, measures, kernel, log)[0]
    assert status.tolist() == [0, 0, 0]
    assert np.all(np.isfinite(forced.loss)) and np.all(np.isfinite(forced.grad))
    np.testing.assert_array_equal(forced.n_iter, reference.n_iter)
    np.testing.assert_allclose(forced.loss, reference.loss, rtol=1e-12)
    np.testing.assert_allclose(forced.grad, reference.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_sparse_path_warm_start(variant):
    K = 32
    M = random_metric(K, 16)
    h = random_predictions(5, K, 17)
    y = sparse_targets(5, K, 3, 18)
    loss = engine(variant, M, 15.0, max_iter=5000, method="multiplicative")
    cold = loss.solve(h, y)
    warm = loss.solve(h, y, init=(cold.u, cold.v))
    assert np.all(warm.n_iter < cold.n_iter)
    np.testing.assert_allclose(warm.loss, cold.loss, rtol=1e-8)


def test_gibbs_kernel_builds_arrays_on_demand_and_shares_symmetric_ones():
    M = random_metric(6, 19)
    kernel = GibbsKernel(M, 3.0, np.float32)
    assert "G" not in vars(kernel) and "GM_T" not in vars(kernel)
    G64 = np.exp(-3.0 * M - 1.0)
    np.testing.assert_array_equal(kernel.G, G64.astype(np.float32))   # correctly rounded
    np.testing.assert_array_equal(kernel.GM_T, (G64 * M).T.astype(np.float32))
    assert kernel.symmetric and kernel.G_T is kernel.G and kernel.M_T is kernel.M
    asym = M.copy()
    asym[0, 1] += 0.01
    kernel = GibbsKernel(asym, 3.0, np.float64)
    assert not kernel.symmetric
    np.testing.assert_array_equal(kernel.G_T, np.exp(-3.0 * asym - 1.0).T)
    np.testing.assert_array_equal(kernel.GM_T, (np.exp(-3.0 * asym - 1.0) * asym).T)
    assert kernel.G_T.flags.c_contiguous and kernel.GM_T.flags.c_contiguous


def test_kernels_import_without_scikit_learn_or_scipy_optimize():
    """The first loss needs neither (they cost over a second to import);
    ``snb.WassersteinClassifier`` still resolves, on first use."""
    code = ("import sys, numpy as np, sinkhorn_nb as snb; "
            "snb.sinkhorn(np.ones(3) / 3, np.ones(3) / 3, snb.ground_metric.ordinal(3), 5.0); "
            "print(sorted(m for m in ('sklearn', 'scipy.optimize') if m in sys.modules)); "
            "print(snb.WassersteinClassifier.__name__)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.split() == ["[]", "WassersteinClassifier"], out.stdout + out.stderr
