r"""The Wasserstein loss as a PyTorch loss, with its closed-form gradient.

:class:`WassersteinLoss` is a :class:`torch.nn.Module` loss;
:class:`WassersteinFunction` is the :class:`torch.autograd.Function` under it.
Backward never differentiates through the Sinkhorn iterations: the forward pass
computes the gradient in closed form (:func:`sinkhorn_nb.sinkhorn`,
:func:`sinkhorn_nb.sinkhorn_relaxed`) and backward scales it.

CPU tensors are solved by the CPU kernels without a copy (they are read as
NumPy views through DLPack, and the outputs come back the same way); CUDA
tensors are solved by the CUDA kernels on the GPU (needs the ``cuda`` extra).

Install with ``pip install "sinkhorn_nb[torch]"``.
"""
import math

try:
    import torch
except ImportError as exc:      # the core package never imports PyTorch
    raise ImportError('sinkhorn_nb.torch needs PyTorch, which is not installed: '
                      'pip install "sinkhorn_nb[torch]"') from exc
from torch.autograd.function import once_differentiable

from . import loss as _loss


REDUCTIONS = ("mean", "sum", "none")


class WassersteinFunction(torch.autograd.Function):
    r"""Per-row loss :math:`W_\lambda(h, y) + a\,\widetilde{KL}(y\|h)`, differentiable in ``input``.

    ``WassersteinFunction.apply(input, target, engine, from_logits, kl_weight)``
    returns the per-row values (shape ``(n,)``, or a 0-d tensor for 1-D input),
    where :math:`h = \operatorname{softmax}(z)` of ``input = z`` with
    ``from_logits=True`` and :math:`h =` ``input`` otherwise, :math:`a` is
    ``kl_weight`` and :math:`\widetilde{KL}` is :func:`kl_divergence`.  The
    forward pass computes the gradient in closed form and backward scales it
    by the incoming per-row gradient :math:`\bar\ell_s`:

    .. math::
        \frac{\partial L}{\partial h_s} = \bar\ell_s\,\big(g_s
            + a\,(1 - y_s \oslash h_s)\big), \qquad
        \frac{\partial L}{\partial z_s} = \bar\ell_s\,\big(h_s \odot (g_s
            - \langle h_s, g_s\rangle) + a\,(h_s \textstyle\sum_i y_{si} - y_s)\big),

    with :math:`g_s = \partial W_\lambda / \partial h_s` from the engine;
    entries where :math:`h_{si} = 0` (softmax underflow) contribute 0 to the
    second.  Second derivatives are not available.

    Parameters
    ----------
    input : torch.Tensor of shape (n, K) or (K,)
        Predictions (non-negative) or, with ``from_logits``, logits.
    target : torch.Tensor or array of the same shape
        Targets, in the same memory as ``input`` (host or GPU); no gradient
        flows to them.
    engine : sinkhorn_nb.WassersteinLoss
        The solver, with its variant, ``lam``, metric and controls.
    from_logits : bool
    kl_weight : float, default 0.0
    """

    @staticmethod
    def forward(ctx, input, target, engine, from_logits, kl_weight=0.0):
        if from_logits:
            log_h = torch.log_softmax(input, dim=-1)
            h = torch.exp(log_h)
        else:
            h = input
        value, g = engine(h, target)
        value, g = value.to(input.dtype), g.to(input.dtype)
        if kl_weight or from_logits:
            y = torch.as_tensor(target, dtype=input.dtype, device=input.device)
        if from_logits:     # h (g - <h, g>) with h g = 0 where h = 0, and the KL term
            hg = h * g
            if engine.variant == "relaxed":     # g = -inf where h = 0 (balanced g is finite)
                hg = torch.where(h > 0, hg, 0.0)
            shift = hg.sum(dim=-1, keepdim=True)
            if kl_weight:
                mass_y = y.sum(dim=-1, keepdim=True)
                value = value + kl_weight * (torch.xlogy(y, y).sum(dim=-1)
                                             - torch.linalg.vecdot(y, log_h)
                                             - mass_y.squeeze(-1) + 1.0)
                shift = shift - kl_weight * mass_y
                hg.sub_(y, alpha=kl_weight)
            grad = hg.addcmul_(h, shift, value=-1.0)
        elif kl_weight:
            value = value + kl_weight * kl_divergence(h, y)
            grad = g + kl_weight * (1.0 - torch.where(y > 0, y / h, 0.0))
        else:
            grad = g
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output.unsqueeze(-1) * grad, None, None, None, None


class WassersteinLoss(torch.nn.Module):
    r"""Wasserstein loss for PyTorch training loops, optionally with a KL term.

    ``loss(input, target)`` computes, for each row :math:`s`,

    .. math::
        \ell_s = W_\lambda(h_s, y_s) + a\,\widetilde{KL}(y_s \| h_s), \qquad
        \widetilde{KL}(y\|h) = \sum_i y_i \log\frac{y_i}{h_i} - \sum_i y_i + \sum_i h_i,

    where :math:`W_\lambda` is the smoothed transport loss
    (``variant="balanced"``, :func:`sinkhorn_nb.sinkhorn`) or the relaxed one
    (``variant="relaxed"``, :func:`sinkhorn_nb.sinkhorn_relaxed`) with ground
    metric :math:`M`, :math:`a` is ``kl_weight`` and :math:`h =
    \operatorname{softmax}(z)` of the logits :math:`z` = ``input`` when
    ``from_logits=True`` (else :math:`h` = ``input``), then reduces the
    :math:`\ell_s` as :mod:`torch.nn` losses do.  The gradient of
    :math:`W_\lambda` is the closed form of the solvers (no back-propagation
    through the iterations), and so is the KL term's (from ``log_softmax`` when
    ``from_logits=True``); see :class:`WassersteinFunction`.

    Parameters
    ----------
    M : array of shape (K, K)
        Ground metric: a tensor or any array (copied once, to the host).
    lam : float
        Regularization :math:`\lambda > 0`.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the per-row :math:`\ell_s` (shape ``(n,)``).
    from_logits : bool, default False
        Take logits and apply the softmax and its chain rule inside the loss:
        stable where :math:`h` underflows, and the form a classifier should use.
    kl_weight : float, default 0.0
        Weight :math:`a \ge 0` of the KL term (``0.1`` is the estimator's
        ``W + 0.1 KL``).
    **options
        The solver's: ``variant``, ``gamma_a``, ``gamma_b``, ``max_iter``,
        ``tol``, ``check_every``, ``method``, ``renormalize`` (see
        :class:`sinkhorn_nb.WassersteinLoss`).

    Attributes
    ----------
    engine : sinkhorn_nb.WassersteinLoss
        The CPU solver (keeps :math:`G = e^{-\lambda M - 1}` across calls); CUDA
        tensors use a twin on the GPU, built on first use.

    Raises
    ------
    ValueError
        For an unknown ``reduction``, a negative or non-finite ``kl_weight``, and
        the solver's own checks (``lam``, ``M``, options).
    TypeError
        For a ``from_logits`` that is not a boolean.

    Notes
    -----
    ``input`` must be a floating tensor of shape ``(n, K)`` or ``(K,)``;
    ``target`` may be a tensor or any array in the same memory (host or GPU).
    Targets get no gradient: a ``target`` that requires grad raises
    ``ValueError``.  The values and gradients have ``input``'s dtype; the solver
    computes in float32 when ``input`` and ``target`` are both float32, else in
    float64.  CUDA tensors are solved on the GPU on Numba's default stream:
    synchronize first if the tensors were written on another stream.

    See Also
    --------
    sinkhorn_nb.WassersteinLoss, sinkhorn_nb.jax.wasserstein_loss

    References
    ----------
    .. [1] C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo, T. Poggio. Learning
       with a Wasserstein Loss. NIPS 2015.

    Examples
    --------
    >>> import torch, sinkhorn_nb as snb
    >>> from sinkhorn_nb.torch import WassersteinLoss
    >>> loss = WassersteinLoss(snb.ground_metric.ordinal(4), lam=20.0, from_logits=True,
    ...                        kl_weight=0.1)
    >>> z = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    >>> y = torch.tensor([[0., 1., 0., 0.], [0., 0., 0., 1.]], dtype=torch.float64)
    >>> value = loss(z, y)
    >>> value.backward()
    >>> z.grad.shape, bool(value > 0)
    (torch.Size([2, 4]), True)
    """

    def __init__(self, M, lam, reduction="mean", *, from_logits=False, kl_weight=0.0,
                 **options):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
        try:
            kl_weight = float(kl_weight)
        except (TypeError, ValueError):
            raise TypeError(f"kl_weight must be a real number, got {kl_weight!r}") from None
        if not (math.isfinite(kl_weight) and kl_weight >= 0):
            raise ValueError(f"kl_weight must be finite and >= 0, got {kl_weight!r}")
        if "device" in options:
            raise TypeError("device is not an option here: CPU tensors are solved on the CPU "
                            "and CUDA tensors on the GPU")
        self.reduction = reduction
        self.from_logits = from_logits
        self.kl_weight = kl_weight
        self._options = options
        self.engine = _loss.WassersteinLoss(M, lam, **options)
        self._cuda_engine = None

    def engine_for(self, input):
        """The solver for ``input``'s device (the GPU twin is built on first use)."""
        if input.device.type == "cpu":
            return self.engine
        if input.device.type != "cuda":
            raise TypeError(f"input is on a {input.device.type} device; sinkhorn_nb solves "
                            "CPU and CUDA tensors")
        if self._cuda_engine is None:
            self._cuda_engine = _loss.WassersteinLoss(self.engine.M, self.engine.lam,
                                                      device="cuda", **self._options)
        return self._cuda_engine

    def forward(self, input, target):
        """Reduced loss of ``input`` (predictions or logits) against ``target``."""
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
        if not input.is_floating_point():
            raise TypeError(f"input must be a floating tensor, got {input.dtype}")
        if getattr(target, "requires_grad", False):
            raise ValueError("target requires grad, but the loss differentiates input only; "
                             "pass target.detach()")
        rows = WassersteinFunction.apply(input, target, self.engine_for(input), self.from_logits,
                                         self.kl_weight)
        if self.reduction == "mean":
            return rows.mean()
        if self.reduction == "sum":
            return rows.sum()
        return rows

    def extra_repr(self):
        return (f"{self.engine!r}, reduction={self.reduction!r}, "
                f"from_logits={self.from_logits}, kl_weight={self.kl_weight}")


def kl_divergence(input, target, from_logits=False):
    r"""Per-row generalized KL divergence :math:`\widetilde{KL}(y \| h)`, differentiable in input.

    .. math::
        \widetilde{KL}(y\|h) = \sum_i y_i \log\frac{y_i}{h_i} - \sum_i y_i + \sum_i h_i

    with :math:`0 \log 0 = 0`; :math:`h = \operatorname{softmax}(z)` of
    ``input`` with ``from_logits=True`` (then :math:`\sum_i h_i = 1` and
    :math:`\log h` is ``log_softmax``, finite for finite logits), else ``input``.

    Parameters
    ----------
    input : torch.Tensor of shape (n, K) or (K,)
    target : torch.Tensor or array of the same shape (read as ``input``'s dtype and device)
    from_logits : bool, default False

    Returns
    -------
    torch.Tensor of shape (n,) or 0-d
    """
    y = torch.as_tensor(target, dtype=input.dtype, device=input.device)
    y_log_y = torch.xlogy(y, y)
    if from_logits:
        y_log_h = y * torch.log_softmax(input, dim=-1)
        mass_h = 1.0
    else:       # log taken only where y > 0, so that y = h = 0 gives 0 and no NaN gradient
        y_log_h = y * torch.log(torch.where(y > 0, input, torch.ones_like(input)))
        mass_h = input.sum(dim=-1)
    return (y_log_y - y_log_h).sum(dim=-1) - y.sum(dim=-1) + mass_h


__all__ = ["WassersteinLoss", "WassersteinFunction", "kl_divergence"]
