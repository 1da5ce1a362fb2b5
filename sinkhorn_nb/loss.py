""":class:`WassersteinLoss`, the reusable loss engine, and the softmax chain rule."""
import numpy as np

from .device import resolve_device
from .gibbs import GibbsKernel
from .dispatch import check_method, run
from .validation import check_ground_metric, check_iteration_args, check_positive_scalar

VARIANTS = ("balanced", "relaxed")


class WassersteinLoss:
    r"""Wasserstein loss with its gradient, reusing the Gibbs kernel across calls.

    ``loss(h, y)`` returns ``(value, grad)``: the smoothed transport loss
    (``variant="balanced"``, :func:`sinkhorn`) or the relaxed one
    (``variant="relaxed"``, :func:`sinkhorn_relaxed`) for each row, and its
    gradient with respect to ``h``.  The kernel :math:`G = e^{-\lambda M - 1}` is
    built once per compute dtype and kept.

    Parameters
    ----------
    M : array_like of shape (K, K)
        Ground metric.
    lam : float
        Regularization :math:`\lambda > 0`.
    variant : {"balanced", "relaxed"}, default "balanced"
    gamma_a, gamma_b : float, default 1.0
        Marginal penalties of the relaxed variant (ignored by "balanced").
    device : {"cpu", "cuda", "auto"}, default "cpu"
    max_iter, tol, check_every, method
        Solver controls, as in :func:`sinkhorn`.
    renormalize : bool, default False
        Balanced variant only: rescale rows to unit mass instead of requiring
        equal masses.

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

    def __init__(self, M, lam, variant="balanced", gamma_a=1.0, gamma_b=1.0, device="cpu",
                 *, max_iter=1000, tol=None, check_every=10, method="auto",
                 renormalize=False):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.M = check_ground_metric(M).astype(np.float64)
        self.lam = check_positive_scalar(lam, "lam")
        self.variant = variant
        self.gamma_a = check_positive_scalar(gamma_a, "gamma_a")
        self.gamma_b = check_positive_scalar(gamma_b, "gamma_b")
        self.device = resolve_device(device)
        self.max_iter, self.tol, self.check_every = check_iteration_args(
            max_iter, tol, check_every)
        self.method = check_method(method)
        self.renormalize = bool(renormalize)
        self._kernels = {}

    def kernel(self, dtype):
        """The :class:`~sinkhorn_nb.gibbs.GibbsKernel` for ``dtype`` (built once)."""
        dtype = np.dtype(dtype)
        if dtype not in self._kernels:
            self._kernels[dtype] = GibbsKernel(self.M, self.lam, dtype)
        return self._kernels[dtype]

    def solve(self, h, y, init=None):
        """Full :class:`SinkhornResult` for ``(h, y)`` (validated like :func:`sinkhorn`).

        The compute dtype follows ``h`` and ``y`` (float32 when both are).
        ``init = (u, v)``, two arrays shaped like ``h`` (for instance the ``u`` and
        ``v`` of an earlier result on nearby inputs), warm-starts the iteration.
        """
        return run(self.variant, h, y, self.M, self.kernel, gammas=(self.gamma_a, self.gamma_b),
                   max_iter=self.max_iter, tol=self.tol, check_every=self.check_every,
                   method=self.method, renormalize=self.renormalize, device=self.device,
                   init=init, metric_sets_dtype=False, what="WassersteinLoss")

    def __call__(self, h, y):
        """Return ``(value, grad)``: per-row values (scalar for 1-D input) and
        the gradient with respect to ``h`` (shape of ``h``)."""
        result = self.solve(h, y)
        return result.loss, result.grad

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
    h : ndarray of shape (n, K) or (K,)
        Softmax outputs.
    grad : ndarray, same shape
        Gradient with respect to ``h``.

    Returns
    -------
    ndarray, same shape

    Examples
    --------
    >>> import numpy as np, sinkhorn_nb as snb
    >>> snb.softmax_backward(np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, -np.inf]))
    array([ 0.25, -0.25,  0.  ])
    """
    h = np.asarray(h)
    with np.errstate(invalid="ignore"):
        hg = np.where(h > 0, h * grad, 0.0)
    return hg - h * hg.sum(axis=-1, keepdims=True)
