"""CUDA drivers against the CPU path (simulator or real GPU)."""
import numpy as np
import pytest

import sinkhorn_nb as snb
from cuda_modes import TEST_LAUNCH, needs_cuda
from sinkhorn_nb.gibbs import GibbsKernel

pytestmark = needs_cuda


def _problem(kind, n, K, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    M = snb.ground_metric.from_points(rng.normal(size=(K, 2)))
    h = rng.dirichlet(np.ones(K), size=n)
    if kind == "dense":
        y = rng.dirichlet(np.ones(K), size=n)
    else:
        y = np.zeros((n, K))
        for r in range(n):
            s = 1 if (kind == "onehot" or r == 0) else 3
            idx = rng.choice(K, size=s, replace=False)
            y[r, idx] = rng.dirichlet(np.ones(s))
    return h.astype(dtype), y.astype(dtype), M.astype(dtype)


def _run(variant, h, y, M, lam, method="auto", tol=1e-10, max_iter=2000, gammas=(2.0, 0.5)):
    from numba import cuda
    from sinkhorn_nb.cuda import sinkhorn_balanced, sinkhorn_relaxed
    from sinkhorn_nb.cuda.results import to_host
    kernel = GibbsKernel(M, lam, h.dtype).on_device()
    hd, yd = cuda.to_device(h), cuda.to_device(y)
    if variant == "balanced":
        out = sinkhorn_balanced(hd, yd, kernel, max_iter, tol, 5, method, launch=TEST_LAUNCH)
    else:
        out = sinkhorn_relaxed(hd, yd, kernel, *gammas, max_iter, tol, 5, method,
                               launch=TEST_LAUNCH)
    return to_host(out)


def _cpu(variant, h, y, M, lam, method="auto", tol=1e-10, max_iter=2000, gammas=(2.0, 0.5)):
    if variant == "balanced":
        return snb.sinkhorn(h, y, M, lam, method=method, tol=tol, max_iter=max_iter,
                            check_every=5)
    return snb.sinkhorn_relaxed(h, y, M, lam, *gammas, method=method, tol=tol,
                                max_iter=max_iter, check_every=5)


# Sizes are tiny because the simulator runs every thread in Python: 5 rows, 7
# labels and lam=2 converge in 10-30 iterations, at different checks per row, and
# with TEST_LAUNCH still spread over several blocks.
PARITY_CASES = [(v, k, "auto") for v in ("balanced", "relaxed")
                for k in ("dense", "sparse", "onehot")] + [("balanced", "dense", "log"),
                                                          ("relaxed", "sparse", "log")]


@pytest.mark.parametrize("variant, kind, method", PARITY_CASES)
def test_float64_parity(variant, kind, method):
    h, y, M = _problem(kind, 5, 7, 1)
    gpu = _run(variant, h, y, M, 2.0, method)
    cpu = _cpu(variant, h, y, M, 2.0, method)
    assert np.all(cpu.converged)
    if (variant, kind) == ("balanced", "dense"):   # rows stop at different checks
        assert len(set(cpu.n_iter.tolist())) > 1
    np.testing.assert_array_equal(gpu.n_iter, cpu.n_iter)
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-10, atol=1e-13)
    g = np.isfinite(cpu.grad)
    np.testing.assert_array_equal(np.isfinite(gpu.grad), g)
    np.testing.assert_allclose(gpu.grad[g], cpu.grad[g], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gpu.transport_cost, cpu.transport_cost, rtol=1e-10, atol=1e-13)
    if variant == "relaxed":   # (u, v) of the balanced variant is defined up to a gauge
        np.testing.assert_allclose(gpu.u, cpu.u, rtol=1e-9)
        np.testing.assert_allclose(gpu.v, cpu.v, rtol=1e-9)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_float32_parity(variant, kind):
    h, y, M = _problem(kind, 5, 7, 2, np.float32)
    gpu = _run(variant, h, y, M, 2.0, tol=1e-5)
    cpu = _cpu(variant, h, y, M, 2.0, tol=1e-5)
    for name in ("loss", "grad", "transport_cost", "err", "u", "v"):
        assert getattr(gpu, name).dtype == np.float32, name
    assert gpu.converged.dtype == np.bool_ and gpu.n_iter.dtype == np.int64
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-5, atol=1e-6)
    g = np.isfinite(cpu.grad)
    np.testing.assert_allclose(gpu.grad[g], cpu.grad[g], rtol=1e-5, atol=1e-5)


def test_large_lam_uses_log_domain_and_stays_finite():
    h, y, M = _problem("dense", 3, 6, 3)
    lam = 2000.0 / M.max()
    gpu = _run("balanced", h, y, M, lam, max_iter=20, tol=0.0)
    cpu = _cpu("balanced", h, y, M, lam, max_iter=20, tol=0.0)
    assert np.all(np.isfinite(gpu.loss)) and np.all(np.isfinite(gpu.grad))
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-10)
    np.testing.assert_allclose(gpu.grad, cpu.grad, rtol=1e-9, atol=1e-12)


def test_multiplicative_failure_falls_back_to_log_domain():
    h, y, M = _problem("dense", 3, 6, 4)
    lam = 3000.0 / M.max()          # the forced multiplicative path overflows
    gpu = _run("balanced", h, y, M, lam, method="multiplicative", max_iter=20, tol=0.0)
    cpu = _cpu("balanced", h, y, M, lam, method="log", max_iter=20, tol=0.0)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-10)


def test_public_api_with_host_and_device_arrays():
    from numba import cuda
    h, y, M = _problem("sparse", 3, 5, 5)
    cpu = snb.sinkhorn(h, y, M, 2.0)
    host = snb.sinkhorn(h, y, M, 2.0, device="cuda")
    assert isinstance(host.loss, np.ndarray)
    np.testing.assert_allclose(host.loss, cpu.loss, rtol=1e-10)
    hd, yd = cuda.to_device(h), cuda.to_device(y)
    dev = snb.sinkhorn(hd, yd, M, 2.0, device="cuda")
    assert hasattr(dev.loss, "copy_to_host") and hasattr(dev.grad, "copy_to_host")
    np.testing.assert_allclose(dev.loss.copy_to_host(), cpu.loss, rtol=1e-10)
    np.testing.assert_array_equal(hd.copy_to_host(), h)           # not modified
    rel = snb.sinkhorn_relaxed(hd, yd, M, 2.0, device="cuda")
    np.testing.assert_allclose(rel.loss.copy_to_host(), snb.sinkhorn_relaxed(h, y, M, 2.0).loss,
                               rtol=1e-10)


def test_device_input_validation():
    from numba import cuda
    h, y, M = _problem("dense", 3, 5, 6)
    bad = h.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="h contains NaN"):
        snb.sinkhorn(cuda.to_device(bad), cuda.to_device(y), M, 5.0, device="cuda")
    with pytest.raises(ValueError, match="equal total mass"):
        snb.sinkhorn(cuda.to_device(h), cuda.to_device(2 * y), M, 5.0, device="cuda")
    with pytest.raises(ValueError, match="M has shape"):
        snb.sinkhorn(cuda.to_device(h), cuda.to_device(y), M[:4, :4], 5.0, device="cuda")
    with pytest.raises(TypeError, match="device array"):
        snb.sinkhorn(cuda.to_device(h), cuda.to_device(y), M, 5.0, device="cpu")


def test_wasserstein_loss_keeps_kernel_on_device():
    h, y, M = _problem("dense", 3, 5, 7)
    loss = snb.WassersteinLoss(M, 2.0, variant="relaxed", device="cuda")
    v1, g1 = loss(h, y)
    device_kernel = loss.kernel(np.float64).on_device()
    v2, _ = loss(h, y)
    assert loss.kernel(np.float64).on_device() is device_kernel
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_allclose(v1, snb.sinkhorn_relaxed(h, y, M, 2.0).loss, rtol=1e-10)


def _mixed_problem(n, K, seed, dtype=np.float64):
    """Targets with 1 or 2 non-zeros (the sparse path for K=16: at most K/8) and
    dense targets, interleaved."""
    rng = np.random.default_rng(seed)
    M = snb.ground_metric.from_points(rng.normal(size=(K, 2)))
    h = rng.dirichlet(np.ones(K), size=n)
    y = rng.dirichlet(np.ones(K), size=n)
    for r in range(0, n, 2):
        s = 1 + (r // 2) % 2
        y[r] = 0
        y[r, rng.choice(K, size=s, replace=False)] = rng.dirichlet(np.ones(s))
    return h.astype(dtype), y.astype(dtype), M.astype(dtype)


@pytest.fixture
def routed_rows(monkeypatch):
    """Record which rows each multiplicative driver iterates."""
    from sinkhorn_nb.cuda import paths
    seen = {}
    for name in ("multiplicative", "multiplicative_sparse"):
        original = getattr(paths, name)

        def spy(go, h, y, kernel, state, active, *args, _name=name, _original=original):
            seen[_name] = np.flatnonzero(active.copy_to_host())
            return _original(go, h, y, kernel, state, active, *args)
        monkeypatch.setattr(paths, name, spy)
    return seen


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_sparse_targets_take_the_support_path(variant, dtype, routed_rows):
    h, y, M = _mixed_problem(6, 16, 8, dtype)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    gpu = _run(variant, h, y, M, 2.0, tol=tol)
    cpu = _cpu(variant, h, y, M, 2.0, tol=tol)
    nnz = np.count_nonzero(y, axis=1)
    sparse = nnz <= 2
    sparse_iterated = sparse if variant == "relaxed" else sparse & (nnz > 1)   # one-hot: closed form
    assert np.any(sparse_iterated) and not np.all(sparse)
    np.testing.assert_array_equal(routed_rows["multiplicative_sparse"],
                                  np.flatnonzero(sparse_iterated))
    np.testing.assert_array_equal(routed_rows["multiplicative"], np.flatnonzero(~sparse))
    assert np.all(cpu.converged)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    if dtype == np.float64:
        np.testing.assert_array_equal(gpu.n_iter, cpu.n_iter)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=rtol, atol=rtol / 100)
    g = np.isfinite(cpu.grad)
    np.testing.assert_array_equal(np.isfinite(gpu.grad), g)
    np.testing.assert_allclose(gpu.grad[g], cpu.grad[g], rtol=rtol, atol=rtol / 10)
    np.testing.assert_allclose(gpu.transport_cost, cpu.transport_cost, rtol=rtol,
                               atol=rtol / 100)
    if variant == "relaxed":
        np.testing.assert_allclose(gpu.v, cpu.v, rtol=100 * rtol)
        assert np.all(gpu.v[y == 0] == 0)


# G underflows, so the scalings overflow (p / 0, then 0 * inf): silent IEEE inf
# and NaN on a GPU, the same values with NumPy warnings under the simulator.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sparse_multiplicative_failure_falls_back_to_log_domain(routed_rows):
    h, y, M = _mixed_problem(4, 16, 9)
    lam = 3000.0 / M.max()          # the forced multiplicative path overflows
    gpu = _run("relaxed", h, y, M, lam, method="multiplicative", max_iter=20, tol=0.0)
    cpu = _cpu("relaxed", h, y, M, lam, method="log", max_iter=20, tol=0.0)
    assert len(routed_rows["multiplicative_sparse"]) == 2
    assert np.all(np.isfinite(gpu.loss))
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-10)


def test_wasserstein_loss_reuses_device_scratch_across_calls():
    h, y, M = _mixed_problem(6, 16, 10)      # sparse and dense rows: both paths' buffers
    loss = snb.WassersteinLoss(M, 2.0, device="cuda", tol=1e-6)
    v1, g1 = loss(h, y)
    scratch = loss.kernel(np.float64).on_device()._scratch.__dict__
    held = {name: array for name, (_, array) in scratch.items()}
    assert {"u", "v", "A", "B", "Gv", "GTu", "GMv", "index", "v_s", "log_u"} <= set(held)
    v2, g2 = loss(h, y)
    assert all(scratch[name][1] is array for name, array in held.items())
    np.testing.assert_array_equal(v1, v2)          # stale scratch changes nothing
    np.testing.assert_array_equal(g1, g2)
    v3, g3 = loss(h[1:4], y[1:4])                  # another batch size: new buffers
    assert scratch["u"][1] is not held["u"]
    np.testing.assert_allclose(v3, v1[1:4], rtol=1e-12)
    cpu, _ = snb.WassersteinLoss(M, 2.0, tol=1e-6)(h[1:4], y[1:4])
    np.testing.assert_allclose(v3, cpu, rtol=1e-10)


def test_warm_start_on_device_matches_cpu():
    h, y, M = _mixed_problem(4, 16, 11)
    first = snb.sinkhorn_relaxed(h, y, M, 2.0, 2.0, 0.5, tol=1e-4)
    init = (first.u, first.v)
    gpu = snb.WassersteinLoss(M, 2.0, "relaxed", 2.0, 0.5, device="cuda", tol=1e-10)
    cpu = snb.WassersteinLoss(M, 2.0, "relaxed", 2.0, 0.5, tol=1e-10)
    g, c = gpu.solve(h, y, init=init), cpu.solve(h, y, init=init)
    np.testing.assert_array_equal(g.n_iter, c.n_iter)
    cold = snb.sinkhorn_relaxed(h, y, M, 2.0, 2.0, 0.5, tol=1e-10)
    assert c.n_iter.sum() < cold.n_iter.sum()
    np.testing.assert_allclose(g.loss, c.loss, rtol=1e-10)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_warm_start_in_the_log_domain_matches_cpu(variant):
    h, y, M = _problem("onehot", 4, 6, 12)
    y[1:3] = _problem("dense", 2, 6, 13)[1][:2]     # rows 0 and 3 closed-form (balanced)
    lam = 2.0
    gammas = (2.0, 0.5)
    cold = _cpu(variant, h, y, M, lam, method="log", tol=1e-4)
    init = (cold.u, cold.v)
    opts = dict(method="log", tol=1e-10, max_iter=2000, check_every=5, device="cuda")
    if variant == "balanced":
        warm_gpu = snb.WassersteinLoss(M, lam, **opts).solve(h, y, init=init)
    else:
        warm_gpu = snb.WassersteinLoss(M, lam, variant, *gammas, **opts).solve(h, y, init=init)
    opts["device"] = "cpu"
    if variant == "balanced":
        warm_cpu = snb.WassersteinLoss(M, lam, **opts).solve(h, y, init=init)
    else:
        warm_cpu = snb.WassersteinLoss(M, lam, variant, *gammas, **opts).solve(h, y, init=init)
    np.testing.assert_array_equal(warm_gpu.n_iter, warm_cpu.n_iter)
    assert warm_cpu.n_iter.sum() < _cpu(variant, h, y, M, lam, method="log").n_iter.sum()
    np.testing.assert_allclose(warm_gpu.loss, warm_cpu.loss, rtol=1e-10)
    g = np.isfinite(warm_cpu.grad)
    np.testing.assert_allclose(warm_gpu.grad[g], warm_cpu.grad[g], rtol=1e-9, atol=1e-12)


def test_device_renormalize_rescales_without_touching_inputs():
    from numba import cuda
    h, y, M = _problem("dense", 3, 5, 14)
    hd, yd = cuda.to_device(3.0 * h), cuda.to_device(0.5 * y)
    dev = snb.sinkhorn(hd, yd, M, 2.0, renormalize=True, device="cuda")
    np.testing.assert_allclose(dev.loss.copy_to_host(), snb.sinkhorn(h, y, M, 2.0).loss,
                               rtol=1e-10)
    np.testing.assert_array_equal(hd.copy_to_host(), 3.0 * h)      # scaled copies only
    np.testing.assert_array_equal(yd.copy_to_host(), 0.5 * y)
