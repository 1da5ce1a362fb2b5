""":class:`WassersteinLoss`, the loss engine behind every solver, and the softmax chain rule."""
from dataclasses import replace

import numpy as np

from ._arrays import Caller, as_readable, on_host, same_memory
from .device import resolve_device
from .gibbs import GibbsKernels
from .result import SinkhornResult, warn_if_not_converged
from .routing import plan_for
from .validation import (check_controls, check_gammas, check_ground_metric, check_init,
                         check_lam, check_lam_times_metric, check_measures,
                         check_relaxed_penalties, check_renormalize, check_variant)


class WassersteinLoss:
    r"""Wasserstein loss with its gradient, reusing the Gibbs kernel across calls.

    ``loss(h, y)`` returns ``(value, grad)``: the smoothed transport loss
    (``variant="balanced"``, :func:`sinkhorn`) or the relaxed one
    (``variant="relaxed"``, :func:`sinkhorn_relaxed`) for each row, and its
    gradient with respect to ``h``.  The kernel :math:`G = e^{-\lambda M - 1}` is
    built once per compute dtype and kept.  :func:`sinkhorn` and
    :func:`sinkhorn_relaxed` are this engine used once.

    Parameters
    ----------
    M : array_like of shape (K, K)
        Ground metric: finite, non-negative, of any real dtype (see
        :mod:`sinkhorn_nb.ground_metric`).  The engine keeps its own float64
        copy, so changing ``M`` afterwards changes nothing.
    lam : float
        Regularization :math:`\lambda > 0`, with ``lam * max(M) <= 1e8``.
    variant : {"balanced", "relaxed"}, default "balanced"
    gamma_a, gamma_b : float, optional
        Marginal penalties of the relaxed variant, default 1.0 there, with
        ``gamma * lam`` at most 1e7 (1e4 when computing in float32; beyond, use
        the balanced variant).  Passing either with ``variant="balanced"`` raises
        ``ValueError``.
    device : {"cpu", "cuda", "auto"}, default "cpu"
        Keyword-only.
    max_iter, tol, check_every, method, acceleration
        Solver controls, as in :func:`sinkhorn`.
    renormalize : bool, default False
        Balanced variant only (``True`` with ``variant="relaxed"`` raises
        ``ValueError``): rescale rows to unit mass instead of requiring equal
        masses.

    ``h`` and ``y`` may be NumPy arrays or array-likes, or arrays of other
    libraries: host arrays that implement DLPack (PyTorch CPU tensors, JAX
    arrays) are read without a copy, and arrays on an NVIDIA GPU that implement
    ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors) stay there with
    ``device="cuda"``.  The outputs have the kind and device of ``h``; ``y``
    must live in the same memory as ``h`` (host or GPU), ``M`` may be any array
    (see :doc:`/frameworks`).

    Attributes
    ----------
    M : ndarray of shape (K, K), float64
        The engine's copy of the ground metric, read-only.
    gamma_a, gamma_b : float or None
        The penalties (None for the balanced variant).

    Notes
    -----
    The compute dtype follows the measures, never the metric: float32 when ``h``
    and ``y`` are both float32 (or float16), float64 otherwise (booleans,
    integers, longdouble, mixed pairs; see :func:`sinkhorn_nb.core.compute_dtype`).
    ``M`` is kept in float64 and the kernel is built in float64 and rounded, once
    per compute dtype.

    Instances may be shared between threads (see :mod:`sinkhorn_nb.cpu.drivers`);
    they pickle without their device copies.

    See Also
    --------
    sinkhorn, sinkhorn_relaxed, softmax_backward

    Examples
    --------
    >>> import numpy as np, sinkhorn_nb as snb
    >>> loss = snb.WassersteinLoss(snb.ground_metric.ordinal(3), lam=20.0)
    >>> value, grad = loss(np.array([0.2, 0.5, 0.3]), np.array([0.0, 1.0, 0.0]))
    >>> grad.shape, bool(abs(grad.sum()) < 1e-12)
    ((3,), True)
    """

    def __init__(self, M, lam, variant="balanced", gamma_a=None, gamma_b=None, *,
                 device="cpu", max_iter=1000, tol=None, check_every=10, method="auto",
                 acceleration="auto", renormalize=False):
        self.variant = check_variant(variant)
        self._M = self._own_metric(on_host(M, "M"))
        self.lam = check_lam(lam)
        check_lam_times_metric(self.lam, float(self._M.max()))
        self.gamma_a, self.gamma_b = check_gammas(self.variant, gamma_a, gamma_b, self.lam)
        self.device = resolve_device(device)
        self.controls = check_controls(max_iter, tol, check_every, method, acceleration)
        self.renormalize = check_renormalize(self.variant, renormalize)
        self._kernels = GibbsKernels(self.M, self.lam)

    @staticmethod
    def _own_metric(M):
        """The validated metric as the engine's own read-only float64 copy (never the
        caller's array, which may change after the engine is built)."""
        M = check_ground_metric(M, copy=True)
        M.flags.writeable = False
        return M

    @property
    def M(self):
        """The ground metric: a read-only view of the engine's own float64 copy."""
        view = self._M.view()
        view.flags.writeable = False
        return view

    max_iter = property(lambda self: self.controls.max_iter)
    tol = property(lambda self: self.controls.tol)
    check_every = property(lambda self: self.controls.check_every)
    method = property(lambda self: self.controls.method)
    acceleration = property(lambda self: self.controls.acceleration)

    @property
    def gammas(self):
        """``(gamma_a, gamma_b)`` for the relaxed variant, None for the balanced one."""
        return (self.gamma_a, self.gamma_b) if self.variant == "relaxed" else None

    def kernel(self, dtype):
        """The :class:`~sinkhorn_nb.gibbs.GibbsKernel` for ``dtype`` (built once)."""
        return self._kernels.get(dtype)

    def solve(self, h, y, init=None):
        """Full :class:`SinkhornResult` for ``(h, y)`` (validated like :func:`sinkhorn`).

        ``init = (u, v)``, two arrays shaped like ``h`` (for instance the ``u`` and
        ``v`` of an earlier result on nearby inputs), warm-starts the iteration.
        """
        return self._solve(h, y, init, "WassersteinLoss")

    def __call__(self, h, y):
        """Return ``(value, grad)``: per-row values (scalar for 1-D input) and
        the gradient with respect to ``h`` (shape of ``h``).

        Cheaper than :meth:`solve` for one-hot balanced targets: the closed form
        does not form the scalings ``u`` and ``v``, which only :meth:`solve` returns.
        """
        result = self._solve(h, y, None, "WassersteinLoss", scalings=False)
        return result.loss, result.grad

    def _solve(self, h, y, init, what, scalings=True):
        """Validate once, then solve and warn once.

        On the CPU: :func:`~sinkhorn_nb.validation.check_measures`, then
        :meth:`solve_measures`.  On the GPU one call,
        :func:`sinkhorn_nb.cuda.drivers.solve_arrays`, validates (on the device
        for device arrays), plans and solves.
        """
        caller = Caller.of(h)
        same_memory(caller.kind, y, "y")
        h, y = as_readable(h, "h"), as_readable(y, "y")
        if isinstance(init, (tuple, list)):
            init = tuple(as_readable(a, "init") for a in init)
        K = self.M.shape[0]
        if self.device == "cuda":
            from .cuda.drivers import solve_arrays
            result, status, measures = solve_arrays(
                h, y, init, self._kernels, self.variant, self.gammas, self.controls,
                self.renormalize, scalings)
        else:
            measures = check_measures(h, y, K, self.variant == "balanced", self.renormalize,
                                      self.controls)
            if self.gammas is not None:       # the limit of the compute dtype
                check_relaxed_penalties(self.lam, *self.gammas, measures.dtype)
            result, status = self.solve_measures(measures, check_init(init, measures),
                                                 scalings)
        warn_if_not_converged(status, self.controls.tol_for(measures.dtype),
                              self.controls.max_iter, what, self.lam * float(self._M.max()))
        return caller.result(result, measures.was_1d)

    def solve_measures(self, measures, init=None, scalings=True):
        """Solve already validated host measures on the CPU.

        The entry for callers that validated their data once (the estimator's
        objective): no check, no warning.

        Parameters
        ----------
        measures : sinkhorn_nb.validation.Measures
        init : tuple of ndarray of shape (n, K), optional
            Warm-start scalings ``(u, v)`` in the compute dtype, trusted.
        scalings : bool, default True
            With False the result carries no scalings (``u`` and ``v`` are
            None), for callers that use only ``loss`` and ``grad``: the closed
            forms then skip forming them.

        Returns
        -------
        result : SinkhornResult
            Batched (never squeezed).
        status : ndarray of int64 (n,)
            Per-row :mod:`sinkhorn_nb.core` status codes.
        """
        from .cpu import drivers
        kernel = self._kernels.get(measures.dtype)
        tol = self.controls.tol_for(measures.dtype)
        plan = plan_for(measures, kernel, self.variant, self.gammas, self.controls.method, tol,
                        scalings, self.controls.acceleration)
        # when every row is a closed form and no scalings are wanted (or given),
        # none are allocated
        allocate = scalings or init is not None or not (plan.balanced and plan.all_closed)
        result = SinkhornResult.empty(*measures.shape, measures.dtype, scalings=allocate)
        status = drivers.solve(measures, kernel, plan, self.controls, tol, init, result,
                               scalings)
        if not scalings and result.u is not None:
            result = replace(result, u=None, v=None)
        return result, status

    def __repr__(self):
        extra = (f", gamma_a={self.gamma_a}, gamma_b={self.gamma_b}"
                 if self.variant == "relaxed" else "")
        return (f"WassersteinLoss(K={self.M.shape[0]}, lam={self.lam}, "
                f"variant={self.variant!r}{extra}, device={self.device!r})")


def softmax_backward(h, grad):
    r"""Chain rule through a softmax: gradient with respect to the logits.

    For :math:`h = \operatorname{softmax}(z)` and :math:`g = \partial L/\partial h`,

    .. math:: \frac{\partial L}{\partial z} = h \odot (g - \langle h, g\rangle).

    Entries where :math:`h_i = 0` (softmax underflow) contribute 0, the limit of
    :math:`h_i g_i` (also when :math:`g_i = -\infty`, as in the relaxed gradient).

    Parameters
    ----------
    h : array of shape (n, K) or (K,)
        Softmax outputs: a NumPy array, or an array of another library (PyTorch,
        JAX, CuPy), which is then computed with that library's operations.
    grad : array, same shape and kind
        Gradient with respect to ``h``.

    Returns
    -------
    array, same shape, of the kind of ``h``

    Examples
    --------
    >>> import numpy as np, sinkhorn_nb as snb
    >>> snb.softmax_backward(np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, -np.inf]))
    array([ 0.25, -0.25,  0.  ])
    """
    caller = Caller.of(h)
    if caller.foreign:      # the caller's own operations, on its own device
        xp = caller.namespace
        hg = xp.where(h > 0, h * grad, xp.zeros_like(h))
        return hg - h * xp.sum(hg, axis=-1, keepdims=True)
    h = np.asarray(as_readable(h, "h"))
    grad = as_readable(grad, "grad")
    with np.errstate(invalid="ignore"):
        hg = np.where(h > 0, h * grad, 0.0)
    return hg - h * hg.sum(axis=-1, keepdims=True)
