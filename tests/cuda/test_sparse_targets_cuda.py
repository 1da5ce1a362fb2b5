"""CUDA kernels that read targets take them dense or as CSR triplets, like their CPU twins.

The driver uploads dense targets (a SciPy sparse ``y`` is validated in CSR form
on the host, then densified on upload); the kernels' CSR branch (``y`` with no
rows) is checked here against their dense branch, and the public call against
the dense one.  Tiny sizes: the simulator runs every thread in Python.
"""
import numpy as np
import pytest
import scipy.sparse as sp

import sinkhorn_nb as snb
from cuda_modes import TEST_LAUNCH, needs_cuda
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets

pytestmark = needs_cuda
N, K = 4, 9


def _both_forms(y):
    """Device ``(y, y_indptr, y_indices, y_data)``: dense (placeholder triplets) and CSR."""
    from numba import cuda
    csr = sp.csr_array(y)
    dense = (y, np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, y.dtype))
    sparse = (np.empty((0, y.shape[1]), y.dtype), csr.indptr.astype(np.int64),
              csr.indices.astype(np.int64), csr.data)
    return [tuple(cuda.to_device(np.ascontiguousarray(a)) for a in form)
            for form in (dense, sparse)]


def _run_both(launch, y, outputs, arguments):
    """Launch ``launch(targets, outputs)`` with each form of ``y``; returns the host
    copies of the outputs per form."""
    from numba import cuda
    results = []
    for targets in _both_forms(y):
        device_outputs = [cuda.to_device(np.array(a)) for a in outputs]
        launch(targets, device_outputs, arguments)
        results.append([a.copy_to_host() for a in device_outputs])
    return results


def _problem(seed, mass=1.0):
    M = random_metric(K, seed)
    h = random_predictions(N, K, seed + 1)
    y = mass * random_targets("sparse", N, K, seed + 2, nonzeros=[1, 2, 3, 4])
    return M, h, y


def test_newton_rows_read_csr_triplets():
    from numba import cuda

    from sinkhorn_nb.cuda import balanced
    M, h, y = _problem(1)
    G_T = np.ascontiguousarray(np.exp(-5.0 * M - 1.0).T)
    GM_T = np.ascontiguousarray((np.exp(-5.0 * M - 1.0) * M).T)
    rows = np.arange(1, N)
    outputs = [np.zeros((N, K)) for _ in range(4)] + [np.zeros(N, np.int64), np.zeros(N),
                                                      np.zeros(N, np.int64), np.zeros(N)]

    def launch(targets, out, _):
        u, v, gv, gtu, n_iter, err, status, cost = out
        balanced.newton_rows[1, 4](cuda.to_device(h), *targets, cuda.to_device(G_T),
                                   cuda.to_device(GM_T), cuda.to_device(rows), u, v, False,
                                   cuda.to_device(y.sum(axis=1)), 100, 1e-10, n_iter, err,
                                   status, gv, gtu, cost,
                                   cuda.to_device(np.zeros((5, rows.size, K))))

    dense, sparse = _run_both(launch, y, outputs, None)
    for a, b in zip(dense, sparse):
        np.testing.assert_array_equal(a, b)
    assert (dense[6][rows] == 0).all() and (dense[4][rows] > 0).all()     # converged


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_outputs_and_empty_rows_read_csr_triplets(variant):
    from numba import cuda

    from sinkhorn_nb.cuda import balanced, relaxed
    M, h, y = _problem(5, mass=1.0 if variant == "balanced" else 2.0)
    rng = np.random.default_rng(6)
    u, v, Gv, GTu = (rng.random((N, K)) + 0.1 for _ in range(4))
    v[y == 0] = 0
    rows = cuda.to_device(np.arange(N))
    grid, threads = (N,), (TEST_LAUNCH[2],)
    outputs = [np.zeros(N), np.zeros((N, K)), np.zeros(N, np.int64)]

    def launch(targets, out, _):
        loss, grad, status = out
        scalings = [cuda.to_device(a) for a in (u, v, Gv, GTu)]
        if variant == "balanced":
            balanced.outputs_from_scalings[grid, threads](cuda.to_device(h), *targets,
                                                          *scalings, 5.0, rows, loss, grad,
                                                          status)
        else:
            relaxed.outputs_from_scalings[grid, threads](cuda.to_device(h), *targets,
                                                         *scalings, 5.0, 0.7, 1.3, rows, loss,
                                                         grad, status)

    dense, sparse = _run_both(launch, y, outputs, None)
    for a, b in zip(dense, sparse):
        np.testing.assert_array_equal(a, b)
    if variant == "relaxed":     # rows where h has no mass: the value reads y
        h0 = h.copy()
        h0[:] = 0
        outputs = [np.zeros(N), np.zeros((N, K)), np.zeros(N), np.zeros((N, K)),
                   np.zeros((N, K)), np.zeros(N, np.int64), np.zeros(N), np.zeros(N, np.int64)]

        def launch_empty(targets, out, _):
            relaxed.empty_rows[grid, threads](cuda.to_device(h0), *targets, 0.7, 1.3, rows, *out)

        dense, sparse = _run_both(launch_empty, y, outputs, None)
        for a, b in zip(dense, sparse):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(dense[0], 1.3 * y.sum(axis=1), rtol=1e-15)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_sparse_targets_on_the_device_give_the_dense_results(variant):
    from sinkhorn_nb.validation import check_measures
    M, h, y = _problem(9, mass=1.0 if variant == "balanced" else 2.0)
    solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
    ys = sp.csr_array(y)
    assert check_measures(h, ys, K, variant == "balanced", False).sparse   # (densified on upload)
    sparse = solve(h, ys, M, 3.0, device="cuda")
    dense = solve(h, y, M, 3.0, device="cuda")
    for field in ("loss", "grad", "u", "v", "n_iter", "transport_cost"):
        np.testing.assert_array_equal(getattr(sparse, field), getattr(dense, field))
