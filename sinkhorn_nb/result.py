"""The :class:`SinkhornResult` returned by :func:`sinkhorn` and :func:`sinkhorn_relaxed`."""
import warnings
from dataclasses import dataclass

import numpy as np

from .core import FAILED

FIELDS = ("loss", "grad", "transport_cost", "n_iter", "err", "converged", "u", "v")


@dataclass(frozen=True)
class SinkhornResult:
    r"""Per-row outputs of a Sinkhorn solve.

    For a batched call every attribute has a leading axis of length ``n``; for a
    1-D call the arrays are 1-D (``u``, ``v``, ``grad``) or scalars.  Floating
    fields have the compute dtype (see :func:`sinkhorn_nb.sinkhorn`).

    Attributes
    ----------
    loss : ndarray (n,)
        Value of the regularized objective: the smoothed transport loss
        :math:`W_\lambda` or the relaxed :math:`W_{KL}`.
    grad : ndarray (n, K)
        Gradient with respect to ``h`` (balanced: the centred dual potential;
        relaxed: :math:`\gamma_a(1 - T1 \oslash h)`).
    transport_cost : ndarray (n,)
        :math:`\langle T, M\rangle` of the regularized plan.
    n_iter : ndarray of int64 (n,)
        Iterations used (0 for closed-form rows).
    err : ndarray (n,)
        Final relative marginal error (the stopping test of the variant).
    converged : ndarray of bool (n,)
        ``err < tol``, with finite outputs.
    u, v : ndarray (n, K), or None
        Scalings with :math:`T = \operatorname{diag}(u)\,G\,\operatorname{diag}(v)`,
        :math:`G = e^{-\lambda M - 1}`; zero where the matching mass is zero.  For
        ``lam * max(M)`` in the hundreds or more (the log-domain regime) they can
        overflow to ``inf`` or underflow to 0 although ``loss`` and ``grad`` are
        accurate.  In the balanced variant :math:`(cu, v/c)` is the same plan; the
        solvers report the pair whose largest logarithms are balanced when one
        of them would overflow.  None in the results of
        :meth:`~sinkhorn_nb.WassersteinLoss.solve_measures` with ``scalings=False``.
    """
    loss: np.ndarray
    grad: np.ndarray
    transport_cost: np.ndarray
    n_iter: np.ndarray
    err: np.ndarray
    converged: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @classmethod
    def empty(cls, n, K, dtype, alloc=np.empty, scalings=True):
        """Uninitialized arrays for ``n`` rows of ``K`` labels (``alloc(shape,
        dtype)`` allocates: NumPy's by default, a device allocator for CUDA);
        ``u`` and ``v`` are None without ``scalings``."""
        return cls(loss=alloc(n, dtype), grad=alloc((n, K), dtype),
                   transport_cost=alloc(n, dtype), n_iter=alloc(n, np.int64),
                   err=alloc(n, dtype), converged=alloc(n, np.bool_),
                   u=alloc((n, K), dtype) if scalings else None,
                   v=alloc((n, K), dtype) if scalings else None)

    def squeeze(self):
        """The same result for a single (1-D) problem: scalars and 1-D arrays."""
        values = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                value = value[0].item() if value.ndim == 1 else value[0]
            values[name] = value
        return SinkhornResult(**values)

    def map(self, fn):
        """A result with ``fn`` applied to every field present (e.g. a device-to-host
        copy)."""
        return SinkhornResult(**{name: None if getattr(self, name) is None
                                 else fn(getattr(self, name)) for name in FIELDS})


def not_converged_advice(max_iter_name, max_iter, lam_max_m=None):
    """What to change when Sinkhorn rows stop at their iteration cap: the
    iteration cap, ``lam``, or the metric's scale (the iterations grow with
    ``lam * max(M)``)."""
    scale = "" if lam_max_m is None else f" (lam * max(M) = {lam_max_m:.3g})"
    return (f"raise {max_iter_name} (now {max_iter}); or make the problems easier: the "
            f"iterations grow with lam * max(M){scale}, so use a smaller lam, or a metric "
            "scaled to max(M) < 1 (sinkhorn_nb.ground_metric builds one)")


def warn_if_not_converged(status, tol, max_iter, what, lam_max_m=None):
    """One :class:`~sklearn.exceptions.ConvergenceWarning` per call for rows that
    did not converge: rows that reached ``max_iter`` (never with ``tol=0``) and
    rows whose outputs are not finite (always).  ``lam_max_m`` (``lam * max(M)``),
    when given, is quoted in the advice."""
    if not status.any():        # every row converged (CONVERGED is 0)
        return
    failed = int(np.count_nonzero(status == FAILED))
    slow = int(np.count_nonzero(status != 0)) - failed if tol > 0 else 0
    if not (failed or slow):
        return
    from sklearn.exceptions import ConvergenceWarning   # sklearn is slow to import
    n = np.size(status)
    parts = []
    if slow:
        parts.append(f"{slow} of {n} rows did not reach tol={tol:g} in max_iter={max_iter} "
                     "iterations (result.err has each row's error); "
                     + not_converged_advice("max_iter", max_iter, lam_max_m)
                     + "; or accept a larger tol")
    if failed:
        parts.append(f"{failed} of {n} rows gave non-finite values (floating-point "
                     "overflow: the inputs are too large or lam too small for this dtype)")
    warnings.warn(f"{what}: " + "; ".join(parts), ConvergenceWarning, stacklevel=4)
