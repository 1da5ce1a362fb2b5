"""SciPy sparse (CSR) targets: scanned and solved on the support path without densifying.

The results of a sparse ``y`` are those of the same ``y`` dense, bit for bit, on
every path; only the paths that read every entry of a row (``dense``, ``log``)
densify the targets, once.
"""
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import sinkhorn_nb as snb
from plans import engine, plan_of, solve_plan
from sinkhorn_nb import routing
from sinkhorn_nb.cpu import kernels
from sinkhorn_nb.cpu.scan import scan_measures, scan_sparse_measures
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from sinkhorn_nb.validation import SparseTargets, check_measures

K = 40
M = random_metric(K, 0)
H = random_predictions(24, K, 1)
# supports 1 (closed form), 2-5 (Newton; sparse for the relaxed variant and
# method="multiplicative"), 8 (Newton / dense) and K (dense): every path
Y = random_targets("sparse", 24, K, 2, nonzeros=[1, 2, 3, 5, 8, K])
FIELDS = ("loss", "grad", "transport_cost", "u", "v", "n_iter", "err", "converged")


def _assert_same(a, b):
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def _kept_sparse(h, ys, balanced=True, renormalize=False):
    """Validation keeps ``ys`` in CSR form (the solvers then read it as it is)."""
    measures = check_measures(h, ys, K, balanced, renormalize)
    assert measures.sparse and "y" not in vars(measures)
    return ys


def _solve(variant, h, y, **kw):
    if variant == "balanced":
        return snb.sinkhorn(h, y, M, 5.0, **kw)
    return snb.sinkhorn_relaxed(h, y, M, 5.0, 0.7, 1.3, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["auto", "multiplicative", "log"])
@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_sparse_targets_give_the_dense_results_bitwise(variant, method, dtype):
    h, y = H.astype(dtype), (Y if variant == "balanced" else 2.0 * Y).astype(dtype)
    ys = _kept_sparse(h, sp.csr_array(y), variant == "balanced")
    _assert_same(_solve(variant, h, ys, method=method), _solve(variant, h, y, method=method))


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("path", ["newton", "sparse", "dense", "log"])
def test_every_path_reads_sparse_targets_like_dense_ones(variant, path):
    if variant == "relaxed" and path == "newton":
        pytest.skip("Newton's method solves balanced rows only")
    y = Y[:, :] if variant == "balanced" else 2.0 * Y
    y = y.copy()
    y[np.count_nonzero(y, axis=1) > routing.NEWTON_MAX_SUPPORT] = 0     # (no dense rows)
    keep = y.any(axis=1)
    h, y = H[keep], y[keep] / (y[keep].sum(axis=1, keepdims=True)
                               if variant == "balanced" else 1.0)
    results = []
    for targets in (y, sp.csr_array(y)):
        loss = engine(variant, M, 5.0)      # (a fresh kernel: the same one-hot closed form)
        measures, kernel, plan = plan_of(loss, h, targets)
        plan = routing.force(plan, path, measures.support)
        results.append(solve_plan(loss, measures, kernel, plan))
        if sp.issparse(targets):
            assert measures.sparse
            densified = "y" in vars(measures)
            assert densified == (path in ("dense", "log")), "densified on the support path"
    _assert_same(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_the_support_path_never_densifies_sparse_targets():
    """Measured: a call with CSR one-hot and 3-non-zero targets allocates about
    what the dense call does (whose ``y`` the caller holds), not a dense ``y``
    more, as it did when sparse targets were densified first."""
    n, K = 400, 512
    M = random_metric(K, 3)
    h = random_predictions(n, K, 4)
    loss = snb.WassersteinLoss(M, 5.0)
    for nonzeros in (1, 3):
        y = random_targets("sparse", n, K, 5, nonzeros=nonzeros)
        ys = sp.csr_array(y)
        peaks = []
        for targets in (y, ys, y, ys):       # (the first two compile and warm up)
            tracemalloc.start()
            result = loss(h, targets)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        np.testing.assert_array_equal(loss(h, ys)[0], loss(h, y)[0])
        assert result[1].shape == (n, K)
        assert peaks[3] < peaks[2] + y.nbytes / 2, (nonzeros, peaks, y.nbytes)


def test_rows_on_dense_paths_densify_the_targets_once():
    measures = check_measures(H, sp.csr_array(Y), K, True, False)
    assert measures.sparse and "y" not in vars(measures)
    dense = measures.y
    assert measures.y is dense
    np.testing.assert_array_equal(dense, Y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_sparse_scan_gives_the_dense_summary_bitwise(dtype):
    rng = np.random.default_rng(7)
    h = rng.random((50, 300)).astype(dtype)
    y = np.where(rng.random((50, 300)) < 0.05, rng.random((50, 300)), 0).astype(dtype)
    y[3] = 0
    y[4, -1] = np.inf
    y[5, 7] = -1.0
    csr = sp.csr_array(y)
    dense_out = [np.empty(50), np.empty(50)] + [np.empty(50, np.int64) for _ in range(3)]
    sparse_out = [np.empty(50), np.empty(50)] + [np.empty(50, np.int64) for _ in range(3)]
    scan_measures(h, y, *dense_out)
    scan_sparse_measures(h, csr.indptr.astype(np.int64), csr.indices.astype(np.int64),
                         csr.data, *sparse_out)
    for a, b in zip(dense_out, sparse_out):
        np.testing.assert_array_equal(a, b)


def test_the_sparse_kernel_reads_csr_triplets():
    """The kernel reads a row's support from the triplets when ``y`` has no rows."""
    y = random_targets("sparse", 6, K, 8, nonzeros=3)
    h = H[:6]
    kernel = snb.WassersteinLoss(M, 5.0).kernel(np.dtype(np.float64))
    csr = sp.csr_array(y)
    outputs = []
    for targets in ((y, np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)),
                    (np.empty((0, K)), csr.indptr.astype(np.int64),
                     csr.indices.astype(np.int64), csr.data)):
        u, v, gv, gtu = (np.zeros((6, K)) for _ in range(4))
        n_iter, status = np.empty(6, np.int64), np.empty(6, np.int64)
        err, cost = np.empty(6), np.empty(6)
        kernels.sparse_scaling_iterations(h, *targets, kernel.G_T, kernel.GM_T,
                                          np.arange(6), u, v, False, 1.0, 1.0, True,
                                          y.sum(axis=1), 500, 1e-12, 1, False, n_iter, err,
                                          status, gv, gtu, cost)
        outputs.append((u, v, gv, gtu, n_iter, err, cost, status))
    for a, b in zip(*outputs):
        np.testing.assert_array_equal(a, b)
    assert (outputs[1][-1] == 0).all()


def test_canonical_form_duplicates_stored_zeros_and_unsorted_indices():
    rows, cols = np.nonzero(Y)
    values = Y[rows, cols]
    order = np.random.default_rng(3).permutation(rows.size)
    coo = sp.coo_array((np.concatenate([values[order] / 2, values[order] / 2, [0.0, 0.0]]),
                        (np.concatenate([rows[order], rows[order], [0, 5]]),
                         np.concatenate([cols[order], cols[order], [K - 1, 0]]))),
                       shape=Y.shape)
    expected = snb.sinkhorn(H, coo.toarray(), M, 5.0)
    for fmt in ("coo", "csr", "csc"):
        x = coo.asformat(fmt)
        stored = x.nnz
        _assert_same(snb.sinkhorn(H, x, M, 5.0), expected)
        assert x.nnz == stored          # the caller's matrix is not modified
    measures = check_measures(H, coo, K, True, False)
    assert isinstance(measures.targets, SparseTargets)
    assert measures.targets.data.all()
    np.testing.assert_array_equal(measures.support, np.count_nonzero(Y, axis=1))


def test_rescaled_sparse_targets_drop_entries_that_underflow():
    """renormalize rescales the stored values as a dense row is rescaled; a value
    that underflows to 0 leaves the support, as it does in a dense row."""
    h = np.full((2, K), 1.0 / K)
    y = np.zeros((2, K))
    y[0, [3, 9]] = [5e-324, 4.0]
    y[1, [1, 2, 30]] = [1.0, 2.0, 3.0]
    measures = check_measures(h, sp.csr_array(y), K, True, True)
    assert measures.targets.indices.tolist() == [9, 1, 2, 30]
    _assert_same(snb.sinkhorn(h, sp.csr_array(y), M, 5.0, renormalize=True),
                 snb.sinkhorn(h, y, M, 5.0, renormalize=True))


def test_relaxed_rows_with_zero_mass_read_sparse_targets():
    h = H[:4].copy()
    h[1] = 0
    y = 2.0 * Y[:4]
    y[2] = 0
    ys = _kept_sparse(h, sp.csr_array(y), balanced=False)
    _assert_same(snb.sinkhorn_relaxed(h, ys, M, 5.0, 0.7, 1.3),
                 snb.sinkhorn_relaxed(h, y, M, 5.0, 0.7, 1.3))


def test_warm_start_and_loss_object_take_sparse_targets():
    loss = snb.WassersteinLoss(M, 5.0)
    first = loss.solve(H, Y)
    _assert_same(loss.solve(H, _kept_sparse(H, sp.csr_array(Y)), init=(first.u, first.v)),
                 loss.solve(H, Y, init=(first.u, first.v)))
    for a, b in zip(loss(H, _kept_sparse(H, sp.csr_matrix(Y))), loss(H, Y)):
        np.testing.assert_array_equal(a, b)


def test_the_estimator_takes_sparse_target_measures():
    """fit with a SciPy sparse indicator matrix gives the model of the dense one."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3))
    Y = np.zeros((40, 4))
    Y[np.arange(40), rng.integers(0, 4, 40)] = 1.0
    Y[::3, 0] = 1.0
    M = snb.ground_metric.ordinal(4)
    dense = snb.WassersteinClassifier(M, max_iter=20).fit(X, Y)
    sparse = snb.WassersteinClassifier(M, max_iter=20).fit(X, sp.csr_matrix(Y))
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-12, atol=1e-14)
