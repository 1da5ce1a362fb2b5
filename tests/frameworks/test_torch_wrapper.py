"""sinkhorn_nb.torch, and PyTorch tensors through the public functions.

Run with the torch extra installed (``pip install ".[torch]"``); skipped without it.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sinkhorn_nb as snb  # noqa: E402
from sinkhorn_nb.torch import WassersteinFunction, WassersteinLoss, kl_divergence  # noqa: E402

TIGHT = dict(tol=1e-13, max_iter=100_000)


def _problem(n=4, K=6, seed=0):
    rng = np.random.default_rng(seed)
    M = snb.ground_metric.ordinal(K)
    z = torch.tensor(rng.normal(size=(n, K)), requires_grad=True)
    y = torch.tensor(rng.dirichlet(np.ones(K), size=n))
    return M, z, y


def _generalized_kl(y, h):
    y, h = np.asarray(y), np.asarray(h)
    safe = np.where(y > 0, y, 1.0)
    return (np.where(y > 0, y * np.log(safe / np.where(y > 0, h, 1.0)), 0.0).sum(-1)
            - y.sum(-1) + h.sum(-1))


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("kl_weight", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_from_logits(variant, kl_weight, reduction):
    M, z, y = _problem()
    loss = WassersteinLoss(M, 5.0, reduction, from_logits=True, kl_weight=kl_weight,
                           variant=variant, **TIGHT)
    assert torch.autograd.gradcheck(lambda z: loss(z, y), (z,))


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_gradcheck_relaxed_from_probabilities_with_kl(reduction):
    M, _, y = _problem(seed=1)
    h = torch.tensor(np.random.default_rng(2).uniform(0.1, 1.0, size=(4, 6)), requires_grad=True)
    loss = WassersteinLoss(M, 5.0, reduction, kl_weight=0.1, variant="relaxed", **TIGHT)
    assert torch.autograd.gradcheck(lambda h: loss(h, 2 * y), (h,))


def test_balanced_gradient_from_probabilities_along_the_simplex():
    # the balanced loss is defined on the simplex: check directions that keep the mass
    M, z, y = _problem(seed=3)
    h = torch.softmax(z.detach(), -1).requires_grad_()
    loss = WassersteinLoss(M, 5.0, "sum", **TIGHT)
    loss(h, y).backward()
    rng = np.random.default_rng(4)
    d = torch.tensor(rng.normal(size=h.shape))
    d -= d.mean(-1, keepdim=True)
    eps = 1e-6
    with torch.no_grad():
        fd = (loss(h + eps * d, y) - loss(h - eps * d, y)) / (2 * eps)
    np.testing.assert_allclose(float((h.grad * d).sum()), float(fd), rtol=1e-7)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_values_and_gradients_match_the_numpy_solvers(variant):
    M, z, y = _problem(seed=5)
    loss = WassersteinLoss(M, 5.0, "none", from_logits=True, kl_weight=0.1, variant=variant)
    rows = loss(z, y)
    rows.sum().backward()
    h = torch.softmax(z.detach(), -1).numpy()
    solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
    r = solve(h, y.numpy(), M, 5.0)
    np.testing.assert_allclose(rows.detach().numpy(), r.loss + 0.1 * _generalized_kl(y, h),
                               rtol=1e-12)
    t = y.numpy()
    expected = snb.softmax_backward(h, r.grad) + 0.1 * (h * t.sum(-1, keepdims=True) - t)
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_from_logits_is_stable_where_the_softmax_underflows(variant):
    M = snb.ground_metric.ordinal(5)
    z = torch.tensor([[0.0, 1.0, -2000.0, 0.5, -1e4], [3.0, -800.0, 0.0, 0.0, 1.0]],
                     dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.3, 0.5, 0.0]], dtype=torch.float64)
    loss = WassersteinLoss(M, 20.0, from_logits=True, kl_weight=0.1, variant=variant)
    value = loss(z, y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(z.grad).all()
    underflowed = torch.softmax(z.detach(), -1) == 0
    assert underflowed.sum() == 3
    assert (z.grad[underflowed] == 0).all()     # the limit, never NaN


def test_reductions_and_one_row():
    M, z, y = _problem(seed=6)
    rows = WassersteinLoss(M, 5.0, "none", from_logits=True)(z, y)
    assert rows.shape == (4,)
    torch.testing.assert_close(WassersteinLoss(M, 5.0, from_logits=True)(z, y), rows.mean())
    torch.testing.assert_close(WassersteinLoss(M, 5.0, "sum", from_logits=True)(z, y),
                               rows.sum())
    one = WassersteinLoss(M, 5.0, "none", from_logits=True)(z[1], y[1])
    assert one.shape == ()
    torch.testing.assert_close(one, rows[1])


def test_float32_in_float32_out():
    M, z, y = _problem(seed=7)
    z32 = z.detach().float().requires_grad_()
    value = WassersteinLoss(M, 5.0, from_logits=True, kl_weight=0.1)(z32, y.float())
    value.backward()
    assert value.dtype == torch.float32 and z32.grad.dtype == torch.float32
    z64 = z.detach().requires_grad_()
    WassersteinLoss(M, 5.0, from_logits=True, kl_weight=0.1)(z64, y).backward()
    np.testing.assert_allclose(z32.grad.numpy(), z64.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_a_few_gradient_steps_lower_the_loss():
    M, z, y = _problem(n=8, K=6, seed=8)
    loss = WassersteinLoss(M, 10.0, from_logits=True, kl_weight=0.1)
    z = z.detach().requires_grad_()
    optimizer = torch.optim.SGD([z], lr=1.0)
    values = []
    for _ in range(20):
        optimizer.zero_grad()
        value = loss(z, y)
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.9 * values[0]


def test_second_derivatives_are_refused():
    M, z, y = _problem(seed=9)
    value = WassersteinLoss(M, 5.0, from_logits=True)(z, y)
    weight = torch.ones((), dtype=value.dtype, requires_grad=True)
    (grad,) = torch.autograd.grad(value, z, grad_outputs=weight, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|twice"):
        grad.sum().backward()


def test_function_apply_gives_per_row_values():
    M, z, y = _problem(seed=10)
    engine = snb.WassersteinLoss(M, 5.0)
    rows = WassersteinFunction.apply(z, y, engine, True)  # kl_weight defaults to 0
    assert rows.shape == (4,) and rows.requires_grad
    h = torch.softmax(z.detach(), -1)
    np.testing.assert_allclose(rows.detach().numpy(), engine(h.numpy(), y.numpy())[0],
                               rtol=1e-13)


def test_kl_divergence_from_probabilities_and_logits_agree():
    M, z, y = _problem(seed=11)
    h = torch.softmax(z.detach(), -1)
    torch.testing.assert_close(kl_divergence(z.detach(), y, from_logits=True),
                               kl_divergence(h, y))
    np.testing.assert_allclose(kl_divergence(h, y).numpy(), _generalized_kl(y, h), rtol=1e-12)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(reduction="average"), ValueError, "reduction must be one of"),
    (dict(kl_weight=-1.0), ValueError, "kl_weight must be finite and >= 0"),
    (dict(kl_weight="a"), TypeError, "kl_weight must be a real number"),
    (dict(from_logits=1), TypeError, "from_logits must be a bool"),
    (dict(device="cuda"), TypeError, "device is not an option"),
    (dict(variant="exact"), ValueError, "variant"),
    (dict(lam=-1.0), ValueError, "lam"),
])
def test_constructor_errors_name_the_argument(kwargs, exc, match):
    M = snb.ground_metric.ordinal(4)
    args = dict(M=M, lam=kwargs.pop("lam", 5.0))
    with pytest.raises(exc, match=match):
        WassersteinLoss(**args, **kwargs)


def test_call_errors_name_the_argument():
    M, z, y = _problem(seed=12)
    loss = WassersteinLoss(M, 5.0, from_logits=True)
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        loss(z.detach().numpy(), y)
    with pytest.raises(TypeError, match="input must be a floating tensor"):
        loss(torch.ones(4, 6, dtype=torch.int64), y)
    with pytest.raises(ValueError, match="target requires grad"):
        loss(z, y.clone().requires_grad_())
    with pytest.raises(ValueError, match="h and y must have the same shape"):
        loss(z, y[:2])
    with pytest.raises(TypeError, match="h .*bfloat16.*could not be read"):
        WassersteinLoss(M, 5.0)(torch.softmax(z.detach(), -1).bfloat16(), y)


# --------------------------------------------------- tensors through the core functions
def test_zero_copy_on_the_host(monkeypatch):
    """The solver reads the tensors' memory, and the outputs are views of its arrays."""
    M, z, y = _problem(n=5, K=7, seed=13)
    h = torch.softmax(z.detach(), -1)
    seen = {}
    solve_measures = snb.WassersteinLoss.solve_measures

    def spy(self, measures, init=None, scalings=True):
        seen["h"], seen["y"] = measures.h.ctypes.data, measures.y.ctypes.data
        result, status = solve_measures(self, measures, init, scalings)
        seen["loss"], seen["grad"] = result.loss.ctypes.data, result.grad.ctypes.data
        return result, status

    monkeypatch.setattr(snb.WassersteinLoss, "solve_measures", spy)
    value, grad = snb.WassersteinLoss(M, 5.0)(h, y)
    assert (seen["h"], seen["y"]) == (h.data_ptr(), y.data_ptr())
    assert (seen["loss"], seen["grad"]) == (value.data_ptr(), grad.data_ptr())
    # through the torch module too: the solver reads the input tensor itself
    h_in = h.clone().requires_grad_()
    WassersteinLoss(M, 5.0)(h_in, y).backward()
    assert (seen["h"], seen["y"]) == (h_in.data_ptr(), y.data_ptr())


def test_public_functions_return_tensors_of_the_callers_kind():
    M, z, y = _problem(seed=14)
    h = torch.softmax(z.detach(), -1)
    reference = snb.sinkhorn(h.numpy(), y.numpy(), M, 5.0)
    r = snb.sinkhorn(h, y, M, 5.0)
    for name in ("loss", "grad", "transport_cost", "n_iter", "err", "converged", "u", "v"):
        value = getattr(r, name)
        assert isinstance(value, torch.Tensor), name
        np.testing.assert_array_equal(value.numpy(), getattr(reference, name))
    relaxed = snb.sinkhorn_relaxed(h, 2 * y, M, 5.0)
    assert isinstance(relaxed.grad, torch.Tensor)
    one = snb.sinkhorn(h[0], y[0], M, 5.0)
    assert isinstance(one.loss, torch.Tensor) and one.loss.shape == ()
    assert float(one.loss) == pytest.approx(reference.loss[0], rel=1e-13)
    g = snb.softmax_backward(h, r.grad)
    assert isinstance(g, torch.Tensor)
    np.testing.assert_allclose(g.numpy(), snb.softmax_backward(h.numpy(), reference.grad))


def test_mixed_kinds_follow_h():
    M, z, y = _problem(seed=15)
    h = torch.softmax(z.detach(), -1)
    reference = snb.sinkhorn(h.numpy(), y.numpy(), M, 5.0).loss
    out = snb.sinkhorn(h, y.numpy(), torch.tensor(M), 5.0)        # tensor h, NumPy y
    assert isinstance(out.loss, torch.Tensor)
    np.testing.assert_array_equal(out.loss.numpy(), reference)
    out = snb.sinkhorn(h.numpy(), y, M, 5.0)                      # NumPy h, tensor y
    assert isinstance(out.loss, np.ndarray)
    np.testing.assert_array_equal(out.loss, reference)
    loss = snb.WassersteinLoss(torch.tensor(M), 5.0)               # tensor metric, own copy
    assert isinstance(loss.M, np.ndarray)
    value, _ = loss(h.tolist(), y)                                # a list h gives NumPy
    assert isinstance(value, np.ndarray)


def test_tensors_that_require_grad_are_read_detached():
    M, z, y = _problem(seed=16)
    h = torch.softmax(z, -1)            # requires grad
    r = snb.sinkhorn(h, y, M, 5.0)
    assert not r.loss.requires_grad
    np.testing.assert_array_equal(r.loss.numpy(), snb.sinkhorn(h.detach().numpy(),
                                                               y.numpy(), M, 5.0).loss)
