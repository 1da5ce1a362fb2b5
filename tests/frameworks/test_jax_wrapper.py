"""sinkhorn_nb.jax, and JAX arrays through the public functions.

Run with the jax extra installed (``pip install ".[jax]"``); skipped without it.
float64 is switched on for this module's process (``jax_enable_x64``), as
gradient checks need it; one test checks JAX's default float32.
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import sinkhorn_nb as snb  # noqa: E402
from sinkhorn_nb.jax import kl_divergence, wasserstein_loss  # noqa: E402

TIGHT = dict(tol=1e-13, max_iter=100_000)


def _problem(n=4, K=6, seed=0):
    rng = np.random.default_rng(seed)
    M = snb.ground_metric.ordinal(K)
    z = jnp.asarray(rng.normal(size=(n, K)))
    y = jnp.asarray(rng.dirichlet(np.ones(K), size=n))
    return M, z, y


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("kl_weight", [0.0, 0.1])
def test_check_grads_from_logits(variant, kl_weight):
    M, z, y = _problem()

    def f(z):
        return wasserstein_loss(z, y, M, 5.0, from_logits=True, kl_weight=kl_weight,
                                variant=variant, **TIGHT)

    check_grads(f, (z,), order=1, modes=["rev"])


def test_check_grads_relaxed_from_probabilities():
    M, _, y = _problem(seed=1)
    h = jnp.asarray(np.random.default_rng(2).uniform(0.1, 1.0, size=(4, 6)))
    check_grads(lambda h: wasserstein_loss(h, 2 * y, M, 5.0, kl_weight=0.1, variant="relaxed",
                                           **TIGHT), (h,), order=1, modes=["rev"])


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_jit_vmap_and_eager_agree_with_the_numpy_solver(variant):
    M, z, y = _problem(seed=3)

    def rows(z, y):
        return wasserstein_loss(z, y, M, 5.0, from_logits=True, variant=variant)

    eager = rows(z, y)
    h = np.asarray(jax.nn.softmax(z, -1))
    solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
    reference = solve(h, np.asarray(y), M, 5.0)
    np.testing.assert_allclose(eager, reference.loss, rtol=1e-13)
    np.testing.assert_allclose(jax.jit(rows)(z, y), eager, rtol=1e-13)
    np.testing.assert_allclose(jax.vmap(rows)(z, y), eager, rtol=1e-13)     # rows one by one
    batches = jax.vmap(rows)(jnp.stack([z, z[::-1]]), jnp.stack([y, y[::-1]]))
    np.testing.assert_allclose(batches, np.stack([eager, eager[::-1]]), rtol=1e-13)
    grad = jax.jit(jax.grad(lambda z: rows(z, y).sum()))(z)
    np.testing.assert_allclose(grad, snb.softmax_backward(h, reference.grad), rtol=1e-10,
                               atol=1e-15)
    per_row = jax.vmap(jax.grad(rows))(z, y)
    np.testing.assert_allclose(per_row, grad, rtol=1e-10, atol=1e-15)


def test_kl_term_and_one_row():
    M, z, y = _problem(seed=4)
    both = wasserstein_loss(z, y, M, 5.0, from_logits=True, kl_weight=0.1)
    alone = wasserstein_loss(z, y, M, 5.0, from_logits=True)
    np.testing.assert_allclose(both, alone + 0.1 * kl_divergence(z, y, from_logits=True),
                               rtol=1e-13)
    np.testing.assert_allclose(kl_divergence(z, y, from_logits=True),
                               kl_divergence(jax.nn.softmax(z, -1), y), rtol=1e-12)
    one = wasserstein_loss(z[2], y[2], M, 5.0, from_logits=True, kl_weight=0.1)
    assert one.shape == ()
    np.testing.assert_allclose(one, both[2], rtol=1e-13)


def test_traced_metric_under_jit():
    M, z, y = _problem(seed=5)
    f = jax.jit(lambda z, M: wasserstein_loss(z, y, M, 5.0, from_logits=True).sum())
    np.testing.assert_allclose(f(z, jnp.asarray(M)),
                               wasserstein_loss(z, y, M, 5.0, from_logits=True).sum(),
                               rtol=1e-13)
    dz, dM = jax.grad(f, argnums=(0, 1))(z, jnp.asarray(M))
    assert jnp.all(dM == 0) and jnp.all(jnp.isfinite(dz)) and jnp.any(dz != 0)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_from_logits_is_stable_where_the_softmax_underflows(variant):
    M = snb.ground_metric.ordinal(5)
    z = jnp.array([[0.0, 1.0, -2000.0, 0.5, -1e4], [3.0, -800.0, 0.0, 0.0, 1.0]])
    y = jnp.array([[0.0, 1.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.3, 0.5, 0.0]])
    f = jax.jit(jax.value_and_grad(lambda z: wasserstein_loss(
        z, y, M, 20.0, from_logits=True, kl_weight=0.1, variant=variant).mean()))
    value, grad = f(z)
    assert jnp.isfinite(value) and jnp.all(jnp.isfinite(grad))
    underflowed = jax.nn.softmax(z, -1) == 0
    assert int(underflowed.sum()) == 3 and jnp.all(grad[underflowed] == 0)


def test_float32_by_default():
    M, z, y = _problem(seed=6)
    with jax.enable_x64(False) if hasattr(jax, "enable_x64") else _x64_off():
        z32, y32 = jnp.asarray(np.asarray(z), jnp.float32), jnp.asarray(np.asarray(y), jnp.float32)
        value, grad = jax.value_and_grad(
            lambda z: wasserstein_loss(z, y32, M, 5.0, from_logits=True).sum())(z32)
        assert value.dtype == jnp.float32 and grad.dtype == jnp.float32
    grad64 = jax.grad(lambda z: wasserstein_loss(z, y, M, 5.0, from_logits=True).sum())(z)
    np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-6)


def _x64_off():
    from jax.experimental import disable_x64
    return disable_x64()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(kl_weight=-0.5), ValueError, "kl_weight must be finite and >= 0"),
    (dict(from_logits="yes"), TypeError, "from_logits must be a bool"),
    (dict(device="cuda"), TypeError, "device is not an option"),
    (dict(variant="exact"), ValueError, "variant"),
    (dict(lam=0.0), ValueError, "lam"),
])
def test_option_errors_name_the_argument(kwargs, exc, match):
    M, z, y = _problem(seed=7)
    lam = kwargs.pop("lam", 5.0)
    with pytest.raises(exc, match=match):
        wasserstein_loss(z, y, M, lam, **kwargs)


def test_input_errors_name_the_argument():
    M, z, y = _problem(seed=8)
    with pytest.raises(ValueError, match="same shape"):
        wasserstein_loss(z, y[:2], M, 5.0)
    with pytest.raises(TypeError, match="h must hold floating-point"):
        wasserstein_loss(jnp.ones((4, 6), jnp.int32), y, M, 5.0)
    with pytest.raises(TypeError, match="lam must be a concrete number"):
        jax.jit(lambda lam: wasserstein_loss(z, y, M, lam))(5.0)
    with pytest.raises(Exception, match="h contains negative values"):
        wasserstein_loss(-jax.nn.softmax(z, -1), y, M, 5.0)


# --------------------------------------------------- JAX arrays through the core functions
def test_public_functions_return_jax_arrays():
    M, z, y = _problem(seed=9)
    h = jax.nn.softmax(z, -1)
    reference = snb.sinkhorn(np.asarray(h), np.asarray(y), M, 5.0)
    r = snb.sinkhorn(h, y, jnp.asarray(M), 5.0)
    assert isinstance(r.loss, jax.Array) and isinstance(r.grad, jax.Array)
    np.testing.assert_array_equal(np.asarray(r.grad), reference.grad)
    value, grad = snb.WassersteinLoss(M, 5.0, "relaxed")(h, 2 * y)
    assert isinstance(value, jax.Array) and isinstance(grad, jax.Array)
    mixed = snb.sinkhorn(np.asarray(h), y, M, 5.0)      # NumPy h: NumPy out
    assert isinstance(mixed.loss, np.ndarray)


def test_a_metric_changed_in_place_gets_its_own_solver():
    M, z, y = _problem(seed=10)
    M = M.copy()
    before = wasserstein_loss(z, y, M, 5.0, from_logits=True)
    M *= 0.5
    after = wasserstein_loss(z, y, M, 5.0, from_logits=True)
    assert not np.allclose(before, after)
    h = np.asarray(jax.nn.softmax(z, -1))
    np.testing.assert_allclose(after, snb.sinkhorn(h, np.asarray(y), M, 5.0).loss, rtol=1e-13)
