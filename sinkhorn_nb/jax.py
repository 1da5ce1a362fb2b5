r"""The Wasserstein loss as a JAX function, with its closed-form gradient.

:func:`wasserstein_loss` is a :func:`jax.custom_vjp` function: the forward pass
calls the CPU solvers through :func:`jax.pure_callback` (so it works under
:func:`jax.jit`, :func:`jax.vmap` and :func:`jax.grad`), and computes the
gradient in closed form (:func:`sinkhorn_nb.sinkhorn`,
:func:`sinkhorn_nb.sinkhorn_relaxed`); the backward pass scales it.  Nothing
differentiates through the Sinkhorn iterations.

Install with ``pip install "sinkhorn_nb[jax]"``.
"""
import functools
import math
import threading

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:      # the core package never imports JAX
    raise ImportError('sinkhorn_nb.jax needs JAX, which is not installed: '
                      'pip install "sinkhorn_nb[jax]"') from exc

from . import loss as _loss

_ENGINES_LOCK = threading.Lock()
_ENGINES = []           # [(lam and options, engine)], most recent first
_ENGINES_KEPT = 8


def _engine(M, lam, options):
    """The CPU solver for ``(M, lam, options)``: kept across calls (it holds the
    Gibbs kernel) and found again by the values of ``M`` (so that a metric
    changed in place gets a new solver)."""
    key = (float(lam), tuple(sorted(options.items())))
    M = np.asarray(M)
    with _ENGINES_LOCK:
        for i, (k, engine) in enumerate(_ENGINES):
            if k == key and engine.M.shape == M.shape and np.array_equal(engine.M, M):
                _ENGINES.insert(0, _ENGINES.pop(i))
                return engine
    engine = _loss.WassersteinLoss(M, lam, **options)
    with _ENGINES_LOCK:
        _ENGINES.insert(0, (key, engine))
        del _ENGINES[_ENGINES_KEPT:]
    return engine


def _solve_on_host(engine, h, y):
    """The callback: per-row values and gradients of any batch shape ``(..., K)``."""
    h, y = np.asarray(h), np.asarray(y)
    K = h.shape[-1]
    value, grad = engine(h.reshape(-1, K), y.reshape(-1, K))
    return (np.asarray(value, h.dtype).reshape(h.shape[:-1]),
            np.asarray(grad, h.dtype).reshape(h.shape))


def _closed_form_vjp(callback, from_logits, kl_weight, vmap_method):
    """The :func:`jax.custom_vjp` function ``(x, y, *constants) -> W(h, y) + a KL(y||h)``
    whose transport values and gradients come from ``callback(h, y, *constants)``
    on the host; the KL term and the softmax chain rule are applied in closed
    form.  No gradient flows to ``y`` nor to the constants."""

    def solve(x, y, *constants):
        y = y.astype(x.dtype)
        if from_logits:
            log_h = jax.nn.log_softmax(x, axis=-1)
            h = jnp.exp(log_h)
        else:
            h = x
        shapes = (jax.ShapeDtypeStruct(x.shape[:-1], x.dtype),
                  jax.ShapeDtypeStruct(x.shape, x.dtype))
        value, g = jax.pure_callback(callback, shapes, h, y, *constants,
                                     vmap_method=vmap_method)
        if from_logits:     # h (g - <h, g>) with h g = 0 where h = 0, and the KL term
            hg = jnp.where(h > 0, h * g, 0.0)
            shift = jnp.sum(hg, axis=-1, keepdims=True)
            if kl_weight:
                mass_y = jnp.sum(y, axis=-1, keepdims=True)
                value = value + kl_weight * (jnp.sum(_x_log_x(y) - y * log_h, axis=-1)
                                             - mass_y[..., 0] + 1.0)
                shift = shift - kl_weight * mass_y
                hg = hg - kl_weight * y
            return value, hg - h * shift
        if kl_weight:
            value = value + kl_weight * kl_divergence(h, y)
            g = g + kl_weight * (1.0 - jnp.where(y > 0, y / jnp.where(y > 0, h, 1.0), 0.0))
        return value, g

    @jax.custom_vjp
    def transport(x, y, *constants):
        return solve(x, y, *constants)[0]

    def forward(x, y, *constants):
        value, grad = solve(x, y, *constants)
        return value, (grad, y, constants)

    def backward(residuals, cotangent):
        grad, y, constants = residuals
        return (cotangent[..., None] * grad, jnp.zeros_like(y),
                *(jnp.zeros_like(c) for c in constants))

    transport.defvjp(forward, backward)
    return transport


@functools.lru_cache(maxsize=64)
def _transport_loss(engine, from_logits, kl_weight):
    """The differentiable loss of a kept solver (every batch dimension of ``vmap``
    goes to one batched solve)."""
    return _closed_form_vjp(functools.partial(_solve_on_host, engine), from_logits, kl_weight,
                            "broadcast_all")


def _x_log_x(y):
    return jnp.where(y > 0, y * jnp.log(jnp.where(y > 0, y, 1.0)), 0.0)


def _check_kl_weight(kl_weight):
    try:
        kl_weight = float(kl_weight)
    except (TypeError, ValueError):
        raise TypeError(f"kl_weight must be a real number, got {kl_weight!r}") from None
    if not (math.isfinite(kl_weight) and kl_weight >= 0):
        raise ValueError(f"kl_weight must be finite and >= 0, got {kl_weight!r}")
    return kl_weight


def kl_divergence(x, y, from_logits=False):
    r"""Per-row generalized KL divergence :math:`\widetilde{KL}(y \| h)`.

    .. math::
        \widetilde{KL}(y\|h) = \sum_i y_i \log\frac{y_i}{h_i} - \sum_i y_i + \sum_i h_i

    with :math:`0 \log 0 = 0`; :math:`h = \operatorname{softmax}(x)` with
    ``from_logits=True`` (through ``log_softmax``, finite for finite logits),
    else :math:`h = x`.  Differentiable by JAX in ``x``.

    Parameters
    ----------
    x : jax.Array of shape (..., K)
    y : array of the same shape
    from_logits : bool, default False

    Returns
    -------
    jax.Array of shape (...)
    """
    y = jnp.asarray(y, dtype=x.dtype)
    y_log_y = _x_log_x(y)
    if from_logits:
        y_log_h = y * jax.nn.log_softmax(x, axis=-1)
        mass_h = 1.0
    else:       # log taken only where y > 0, so that y = h = 0 gives 0 and no NaN gradient
        y_log_h = y * jnp.log(jnp.where(y > 0, x, 1.0))
        mass_h = jnp.sum(x, axis=-1)
    return jnp.sum(y_log_y - y_log_h, axis=-1) - jnp.sum(y, axis=-1) + mass_h


def wasserstein_loss(h, y, M, lam, *, from_logits=False, kl_weight=0.0, **options):
    r"""Per-row Wasserstein loss, differentiable in ``h``, under ``jit`` and ``vmap``.

    For each row :math:`s`,

    .. math::
        \ell_s = W_\lambda(h_s, y_s) + a\,\widetilde{KL}(y_s \| h_s),

    where :math:`W_\lambda` is the smoothed transport loss
    (``variant="balanced"``, :func:`sinkhorn_nb.sinkhorn`) or the relaxed one
    (``variant="relaxed"``, :func:`sinkhorn_nb.sinkhorn_relaxed`) with ground
    metric :math:`M` and regularization :math:`\lambda`, :math:`a` is
    ``kl_weight`` (:func:`kl_divergence`), and :math:`h = \operatorname{softmax}(x)`
    of the logits ``x = h`` with ``from_logits=True``.  The vector-Jacobian
    product is the solvers' closed-form gradient,

    .. math::
        \bar h_s = \bar\ell_s\, g_s \quad\text{or, from logits,}\quad
        \bar x_s = \bar\ell_s\, h_s \odot (g_s - \langle h_s, g_s\rangle),
        \qquad g_s = \partial W_\lambda/\partial h_s,

    where entries with :math:`h_{si} = 0` (softmax underflow) contribute 0, plus
    the KL term's :math:`a\,\bar\ell_s (1 - y_s \oslash h_s)`, or from logits
    :math:`a\,\bar\ell_s (h_s \sum_i y_{si} - y_s)` (its value from ``log_softmax``).

    Parameters
    ----------
    h : jax.Array of shape (n, K) or (K,)
        Predictions (non-negative) or, with ``from_logits``, logits.
    y : array of the same shape
        Targets.  No gradient flows to them (their cotangent is zero).
    M : array of shape (K, K)
        Ground metric.  The solvers of the last few metrics (with their Gibbs
        kernels) are kept and found again by value: a concrete array (NumPy, or
        JAX outside ``jit``) is compared once per trace under ``jit`` (once per
        call outside it), a traced one on the host at each call.
    lam : float
        Regularization :math:`\lambda > 0`, a Python number (static under ``jit``).
    from_logits : bool, default False
        Take logits and apply the softmax and its chain rule inside the loss:
        stable where :math:`h` underflows, and the form a classifier should use.
    kl_weight : float, default 0.0
        Weight :math:`a \ge 0` of the KL term.
    **options
        The solver's: ``variant``, ``gamma_a``, ``gamma_b``, ``max_iter``,
        ``tol``, ``check_every``, ``method``, ``renormalize`` (see
        :class:`sinkhorn_nb.WassersteinLoss`), static.

    Returns
    -------
    jax.Array of shape (n,) or ()
        One value per row, in ``h``'s dtype, as :func:`sinkhorn_nb.sinkhorn`
        returns ``loss``.

    Raises
    ------
    ValueError, TypeError
        For bad options, ``lam`` or ``M`` (the solver's checks) and for
        ``kl_weight``; bad entries of ``h`` or ``y`` raise the solver's
        ``ValueError`` from the callback (under ``jit`` JAX wraps it in its own
        runtime error, with the message).

    Notes
    -----
    The solve runs on the host, on the CPU kernels, whatever the device of the
    arrays.  Under ``vmap`` every batch dimension is handed to one batched
    solve.  The solver computes in float32 for float32 arrays (JAX's default)
    and in float64 with ``jax_enable_x64``.  Second derivatives are not
    available.

    See Also
    --------
    sinkhorn_nb.torch.WassersteinLoss, sinkhorn_nb.WassersteinLoss

    References
    ----------
    .. [1] C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo, T. Poggio. Learning
       with a Wasserstein Loss. NIPS 2015.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, sinkhorn_nb as snb
    >>> from sinkhorn_nb.jax import wasserstein_loss
    >>> M = snb.ground_metric.ordinal(4)
    >>> y = jnp.array([[0., 1., 0., 0.], [0., 0., 0., 1.]])
    >>> def objective(z):
    ...     return wasserstein_loss(z, y, M, 20.0, from_logits=True, kl_weight=0.1).mean()
    >>> g = jax.jit(jax.grad(objective))(jnp.zeros((2, 4)))
    >>> g.shape
    (2, 4)
    """
    if "device" in options:
        raise TypeError("device is not an option here: the solve runs on the CPU")
    if not isinstance(from_logits, bool):
        raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
    kl_weight = _check_kl_weight(kl_weight)
    if isinstance(lam, jax.core.Tracer):
        raise TypeError("lam must be a concrete number: mark it static under jit")
    h = jnp.asarray(h)
    if not jnp.issubdtype(h.dtype, jnp.floating):
        raise TypeError(f"h must hold floating-point numbers, got dtype {h.dtype}")
    y = jax.lax.stop_gradient(jnp.asarray(y))
    if y.shape != h.shape:
        raise ValueError(f"h and y must have the same shape, got {h.shape} and {y.shape}")
    if h.ndim not in (1, 2):
        raise ValueError(f"h must be 1-D (K,) or 2-D (n, K), got {h.ndim} dimensions")
    if isinstance(M, jax.core.Tracer):
        return _traced_metric_loss(h, y, M, lam, from_logits, kl_weight, options)
    return _transport_loss(_engine(M, lam, options), from_logits, kl_weight)(h, y)


def _traced_metric_loss(h, y, M, lam, from_logits, kl_weight, options):
    """The loss when ``M`` is traced: the host reads ``M`` at each call and finds its
    solver again (by value) there; ``vmap`` solves one batch element at a time."""

    def on_host(h, y, M):
        return _solve_on_host(_engine(np.asarray(M), lam, options), h, y)

    transport = _closed_form_vjp(on_host, from_logits, kl_weight, "sequential")
    return transport(h, y, jax.lax.stop_gradient(M))


__all__ = ["wasserstein_loss", "kl_divergence"]
