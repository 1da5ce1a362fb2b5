"""The CUDA backend against the CPU backend (simulator or real GPU).

Sizes are tiny because the simulator runs every thread in Python: 5 rows, 7
labels and lam=2 converge in 10-30 iterations, at different checks per row,
and the simulator's launch shape (:data:`sinkhorn_nb.cuda.drivers.DEFAULT_LAUNCH`)
still spreads them over several blocks.
"""
from dataclasses import replace

import numpy as np
import pytest

import sinkhorn_nb as snb
from cuda_modes import needs_cuda
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets

pytestmark = needs_cuda


def _problem(kind, n, K, seed, dtype=np.float64):
    """A points-in-the-plane metric, Dirichlet predictions and targets of ``kind``
    (see :func:`sinkhorn_nb.problems.random_targets`)."""
    M = random_metric(K, seed)
    h = random_predictions(n, K, seed + 1)
    y = random_targets(kind, n, K, seed + 2)
    return h.astype(dtype), y.astype(dtype), M.astype(dtype)


def _solve(variant, h, y, M, lam, device, gammas=(2.0, 0.5), **kw):
    kw = dict(dict(tol=1e-10, max_iter=2000, check_every=5), **kw)
    if variant == "balanced":
        return snb.sinkhorn(h, y, M, lam, device=device, **kw)
    return snb.sinkhorn_relaxed(h, y, M, lam, *gammas, device=device, **kw)


def _assert_parity(gpu, cpu, rtol):
    """n_iter, converged, loss, grad, cost, u and v agree (the balanced gauge too)."""
    np.testing.assert_array_equal(gpu.n_iter, cpu.n_iter)
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=rtol, atol=rtol / 100)
    finite = np.isfinite(cpu.grad)
    np.testing.assert_array_equal(np.isfinite(gpu.grad), finite)
    scale = np.abs(cpu.grad[finite]).max()
    np.testing.assert_allclose(gpu.grad[finite], cpu.grad[finite], rtol=rtol,
                               atol=rtol * scale)
    np.testing.assert_allclose(gpu.transport_cost, cpu.transport_cost, rtol=rtol,
                               atol=rtol / 100)
    for name in ("u", "v"):        # inf where the log-domain scalings overflow, alike
        a, b = getattr(gpu, name), getattr(cpu, name)
        finite = np.isfinite(b)
        np.testing.assert_array_equal(a[~finite], b[~finite], err_msg=name)
        np.testing.assert_allclose(a[finite], b[finite], rtol=rtol,
                                   atol=rtol * np.abs(b[finite]).max(), err_msg=name)


# (the relaxed variant takes the same paths with "auto" and "multiplicative": no Newton)
PARITY_CASES = ([("balanced", k, m) for k in ("dense", "sparse", "onehot", "mixed")
                 for m in ("auto", "multiplicative")]
                + [("relaxed", k, "auto") for k in ("dense", "sparse", "onehot", "mixed")]
                + [("balanced", "dense", "log"), ("relaxed", "sparse", "log"),
                   ("balanced", "mixed", "log")])


@pytest.mark.parametrize("variant, kind, method", PARITY_CASES)
def test_float64_parity(variant, kind, method):
    h, y, M = _problem(kind, 5, 7, 1)
    gpu = _solve(variant, h, y, M, 2.0, "cuda", method=method)
    cpu = _solve(variant, h, y, M, 2.0, "cpu", method=method)
    assert np.all(cpu.converged)
    if (variant, kind, method) == ("balanced", "dense", "multiplicative"):
        assert len(set(cpu.n_iter.tolist())) > 1       # rows stop at different checks
    _assert_parity(gpu, cpu, 1e-10)


def test_one_hot_scalings_are_positive_zero_where_h_is_negative_zero():
    h, y, M = _problem("onehot", 3, 7, 4)
    h[:, 2] = 0.0
    h /= h.sum(axis=1, keepdims=True)
    h[:, 2] = -0.0                 # not negative for validation: read as 0
    gpu = _solve("balanced", h, y, M, 2.0, "cuda")
    cpu = _solve("balanced", h, y, M, 2.0, "cpu")
    _assert_parity(gpu, cpu, 1e-10)
    for result in (gpu, cpu):
        assert result.u[:, 2].tolist() == [0.0] * 3 and not np.signbit(result.u).any()


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("kind, method", [("dense", "auto"), ("sparse", "auto"),
                                          ("onehot", "auto"), ("mixed", "auto"),
                                          ("mixed", "log")])
def test_float32_parity(variant, kind, method):
    h, y, M = _problem(kind, 5, 7, 2, np.float32)
    gpu = _solve(variant, h, y, M, 2.0, "cuda", tol=1e-5, method=method)
    cpu = _solve(variant, h, y, M, 2.0, "cpu", tol=1e-5, method=method)
    for name in ("loss", "grad", "transport_cost", "err", "u", "v"):
        assert getattr(gpu, name).dtype == np.float32, name
    assert gpu.converged.dtype == np.bool_ and gpu.n_iter.dtype == np.int64
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    np.testing.assert_array_equal(gpu.n_iter, cpu.n_iter)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.transport_cost, cpu.transport_cost, rtol=1e-5, atol=1e-6)
    g = np.isfinite(cpu.grad)
    np.testing.assert_allclose(gpu.grad[g], cpu.grad[g], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gpu.u, cpu.u, rtol=1e-5, atol=1e-5 * np.abs(cpu.u).max())
    np.testing.assert_allclose(gpu.v, cpu.v, rtol=1e-5, atol=1e-5 * np.abs(cpu.v).max())


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_large_lam_uses_log_domain_and_stays_finite(variant):
    """lam * max(M) = 2000: the log domain, with the balanced gauge shifted where
    the scalings would overflow, on both devices alike."""
    h, y, M = _problem("mixed", 4, 6, 3)
    lam = 2000.0 / M.max()
    gpu = _solve(variant, h, y, M, lam, "cuda", max_iter=20, tol=0.0)
    cpu = _solve(variant, h, y, M, lam, "cpu", max_iter=20, tol=0.0)
    assert np.all(np.isfinite(gpu.loss)) and np.all(np.isfinite(gpu.grad[y > 0]))
    _assert_parity(gpu, cpu, 1e-10)


def _planned(variant, h, y, M, lam, path=None, gammas=(2.0, 0.5), **controls):
    """Solve ``(h, y)`` on both backends along the same plan (every iterated row
    on ``path`` when given); returns ``(plan, gpu result, cpu result)``."""
    from numba import cuda

    from sinkhorn_nb import routing
    from sinkhorn_nb.cpu import drivers as cpu_drivers
    from sinkhorn_nb.cuda import drivers as cuda_drivers
    from sinkhorn_nb.result import SinkhornResult
    from sinkhorn_nb.validation import check_measures
    options = dict(gamma_a=gammas[0], gamma_b=gammas[1]) if variant == "relaxed" else {}
    controls = dict(dict(tol=1e-10, max_iter=2000, check_every=5), **controls)   # as _solve
    loss = snb.WassersteinLoss(M, lam, variant, **options, **controls)
    measures = check_measures(h, y, M.shape[0], variant == "balanced", False, loss.controls)
    tol = loss.controls.tol_for(measures.dtype)
    kernel = loss.kernel(measures.dtype)
    plan = routing.plan_for(measures, kernel, variant, loss.gammas, loss.controls.method, tol)
    if path is not None:
        plan = routing.force(plan, path, measures.support)
    cpu = SinkhornResult.empty(*measures.shape, measures.dtype)
    cpu_drivers.solve(measures, kernel, plan, loss.controls, tol, None, cpu)
    device = cuda_drivers.device_kernel(loss._kernels, measures.dtype)
    on_device = replace(measures, h=cuda.to_device(measures.h), targets=cuda.to_device(measures.y))
    gpu = SinkhornResult.empty(*measures.shape, measures.dtype, alloc=cuda.device_array)
    cuda_drivers.solve(on_device, device, plan, loss.controls, tol, None, gpu)
    return plan, gpu.map(lambda a: a.copy_to_host()), cpu


# G underflows, so the scalings overflow (p / 0, then 0 * inf): silent IEEE inf and
# NaN on a GPU, the same values with NumPy warnings under the simulator.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_multiplicative_failure_falls_back_to_log_domain(variant):
    """Every row on the dense path at lam * max(M) = 1e5: off the diagonal G
    underflows to 0, so ``G v = 0`` wherever the target is 0 and ``u = h / 0``.
    The plan hands exactly those rows to the log domain on both backends: they
    end with the iterations and values of a plan that runs them there."""
    h, y, M = _problem("mixed", 4, 6, 4)
    lam = 1e5 / M.max()
    controls = dict(method="multiplicative", max_iter=20, tol=0.0)
    plan, gpu, cpu = _planned(variant, h, y, M, lam, "dense", **controls)
    _, log_gpu, log_cpu = _planned(variant, h, y, M, lam, "log", **controls)
    nnz = np.count_nonzero(y, axis=1)
    failing = np.flatnonzero((nnz < y.shape[1]) & (nnz > (variant == "balanced")))
    assert failing.size and np.isin(failing, plan.dense).all()
    for result, log in ((gpu, log_gpu), (cpu, log_cpu)):
        assert np.all(np.isfinite(result.loss))
        np.testing.assert_array_equal(result.n_iter[failing], log.n_iter[failing])
        np.testing.assert_allclose(result.loss[failing], log.loss[failing], rtol=1e-10)
    _assert_parity(gpu, cpu, 1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant, method", [("balanced", "auto"), ("balanced", "multiplicative"),
                                             ("relaxed", "auto")])
def test_rows_take_their_paths(variant, dtype, method):
    """One-hot balanced rows: closed form; small supports: Newton (balanced,
    method="auto") or the support path (K/8 non-zeros or fewer); dense rows: the
    batched products.  Both backends execute the one plan alike."""
    h, y, M = _problem("mixed", 6, 16, 8, dtype)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    plan, gpu, cpu = _planned(variant, h, y, M, 2.0, tol=tol, method=method)
    nnz = np.count_nonzero(y, axis=1)
    small = np.flatnonzero(nnz <= 2 if variant == "relaxed" else nnz == 2)
    newton = variant == "balanced" and method == "auto"
    assert small.size and plan.dense.tolist() == np.flatnonzero(nnz > 2).tolist()
    assert (plan.newton if newton else plan.sparse).tolist() == small.tolist()
    assert (plan.sparse.size == 0) == newton
    assert np.all(cpu.converged)
    np.testing.assert_array_equal(cpu.n_iter, _solve(variant, h, y, M, 2.0, "cpu", tol=tol,
                                                     method=method).n_iter)
    if dtype == np.float64:
        _assert_parity(gpu, cpu, 1e-10)
    else:
        np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-5, atol=1e-7)
    if variant == "relaxed":
        assert np.all(gpu.v[y == 0] == 0)


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
    one = snb.sinkhorn(cuda.to_device(h[1]), cuda.to_device(y[1]), M, 2.0, device="cuda")
    np.testing.assert_allclose(one.loss, cpu.loss[1], rtol=1e-10)


@pytest.mark.parametrize("make, exc, match", [
    (lambda h, y, M: (np.where(np.arange(5) == 2, np.nan, h), y, M), ValueError,
     "h contains NaN or infinite values"),
    (lambda h, y, M: (h, -y, M), ValueError, "y contains negative values"),
    (lambda h, y, M: (h, 2 * y, M), ValueError, "equal total mass.*renormalize=True"),
    (lambda h, y, M: (h, y, M[:4, :4]), ValueError, "M has shape"),
    (lambda h, y, M: (h, y[:2], M), ValueError, "h and y must have the same shape"),
])
def test_device_input_validation_matches_the_host_messages(make, exc, match):
    from numba import cuda
    h, y, M = make(*_problem("dense", 3, 5, 6))
    with pytest.raises(exc, match=match):
        snb.sinkhorn(h, y, M, 5.0)
    with pytest.raises(exc, match=match):
        snb.sinkhorn(cuda.to_device(h), cuda.to_device(y), M, 5.0, device="cuda")


def test_device_arrays_need_the_cuda_device_and_one_dtype():
    from numba import cuda
    h, y, M = _problem("dense", 3, 5, 6)
    with pytest.raises(TypeError, match="device array"):
        snb.sinkhorn(cuda.to_device(h), cuda.to_device(y), M, 5.0, device="cpu")
    with pytest.raises(TypeError, match="share a dtype"):
        snb.sinkhorn(cuda.to_device(h), cuda.to_device(y.astype(np.float32)), M, 5.0,
                     device="cuda")


def test_wasserstein_loss_keeps_kernel_and_scratch_on_device():
    from sinkhorn_nb.cuda.drivers import device_kernel as device_kernel_of
    h, y, M = _problem("mixed", 6, 16, 10)      # Newton, sparse-free and dense rows
    loss = snb.WassersteinLoss(M, 2.0, device="cuda", tol=1e-6, method="multiplicative")
    v1, g1 = loss(h, y)
    device_kernel = device_kernel_of(loss._kernels, np.float64)
    scratch = device_kernel._scratch.__dict__
    held = {name: array for name, (_, array) in scratch.items()}
    assert {"Gv", "GTu", "GMv", "index", "size", "y_s", "v_s", "gtu_s"} <= set(held)
    v2, g2 = loss(h, y)
    assert device_kernel_of(loss._kernels, np.float64) is device_kernel
    assert all(scratch[name][1] is array for name, array in held.items())
    np.testing.assert_array_equal(v1, v2)          # stale scratch changes nothing
    np.testing.assert_array_equal(g1, g2)
    v3, _ = loss(h[1:4], y[1:4])                   # another batch size: new buffers
    assert scratch["Gv"][1] is not held["Gv"]
    np.testing.assert_allclose(v3, v1[1:4], rtol=1e-12)
    cpu, _ = snb.WassersteinLoss(M, 2.0, tol=1e-6, method="multiplicative")(h[1:4], y[1:4])
    np.testing.assert_allclose(v3, cpu, rtol=1e-10)


@pytest.mark.parametrize("variant, method", [("balanced", "auto"),
                                             ("balanced", "multiplicative"),
                                             ("balanced", "log"), ("relaxed", "auto"),
                                             ("relaxed", "log")])
def test_warm_start_matches_cpu(variant, method):
    h, y, M = _problem("mixed", 4, 16, 11)
    first = _solve(variant, h, y, M, 2.0, "cpu", method=method, tol=1e-4)
    init = (first.u.copy(), first.v.copy())
    one_hot = np.count_nonzero(y, axis=1) == 1
    assert one_hot.any() and not one_hot.all()
    init[0][one_hot] = 7.0          # rows in closed form must ignore their warm start
    opts = dict(method=method, tol=1e-10, check_every=5)
    gammas = dict(gamma_a=2.0, gamma_b=0.5) if variant == "relaxed" else {}
    gpu = snb.WassersteinLoss(M, 2.0, variant, **gammas, device="cuda", **opts)
    cpu = snb.WassersteinLoss(M, 2.0, variant, **gammas, **opts)
    warm_gpu, warm_cpu = gpu.solve(h, y, init=init), cpu.solve(h, y, init=init)
    cold = cpu.solve(h, y)
    assert warm_cpu.n_iter.sum() < cold.n_iter.sum()
    if variant == "balanced":
        np.testing.assert_allclose(warm_cpu.u[one_hot], cold.u[one_hot], rtol=1e-14)
    _assert_parity(warm_gpu, warm_cpu, 1e-10)


def test_device_renormalize_rescales_without_touching_inputs():
    from numba import cuda
    h, y, M = _problem("dense", 3, 5, 14)
    hd, yd = cuda.to_device(3.0 * h), cuda.to_device(0.5 * y)
    dev = snb.sinkhorn(hd, yd, M, 2.0, renormalize=True, device="cuda")
    np.testing.assert_allclose(dev.loss.copy_to_host(), snb.sinkhorn(h, y, M, 2.0).loss,
                               rtol=1e-10)
    np.testing.assert_array_equal(hd.copy_to_host(), 3.0 * h)      # scaled copies only
    np.testing.assert_array_equal(yd.copy_to_host(), 0.5 * y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_kernel_uploads_only_what_a_solve_reads_in_the_compute_dtype(dtype):
    """One-hot rows read M_T and the column sums; dense rows G, G_T and GM_T; only
    the log domain reads the float64 metric.  Each copy is in the compute dtype."""
    from sinkhorn_nb.cuda.drivers import device_kernel
    h, y, M = _problem("onehot", 3, 12, 15, dtype)
    loss = snb.WassersteinLoss(M, 2.0, device="cuda")
    loss(h, y)
    kernel = device_kernel(loss._kernels, dtype)
    uploaded = {name for name in ("G", "G_T", "GM_T", "M_T", "M_column_sums", "M64", "M64_T")
                if kernel.built(name)}
    assert uploaded == {"M_T", "M_column_sums"}
    assert kernel.M_T.dtype == dtype
    dense_h, dense_y, _ = _problem("dense", 3, 12, 16, dtype)     # 12 > 8 labels: no Newton
    loss(dense_h, dense_y)
    assert {name for name in ("G", "G_T", "GM_T", "M64", "M64_T") if kernel.built(name)} == {
        "G", "G_T", "GM_T"}
    assert kernel.G.dtype == dtype and kernel.GM_T.dtype == dtype
