"""The :class:`SinkhornResult` returned by :func:`sinkhorn` and :func:`sinkhorn_relaxed`."""
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SinkhornResult:
    """Per-row outputs of a Sinkhorn solve.

    For a batched call every attribute has a leading axis of length ``n``; for a
    1-D call the arrays are 1-D (``u``, ``v``, ``grad``) or scalars.

    Attributes
    ----------
    loss : ndarray (n,)
        Value of the regularized objective (DESIGN.md §1.1 / §1.2).
    grad : ndarray (n, K)
        Gradient with respect to ``h`` (balanced: centred dual potential; relaxed:
        :math:`\\gamma_a(1 - T1 \\oslash h)`).
    transport_cost : ndarray (n,)
        :math:`\\langle T, M\\rangle` of the regularized plan.
    n_iter : ndarray of int (n,)
        Iterations used (0 for closed-form rows).
    err : ndarray (n,)
        Final relative marginal error (see :mod:`sinkhorn_nb.cpu.scaling`).
    converged : ndarray of bool (n,)
        ``err < tol``.
    u, v : ndarray (n, K)
        Scalings with :math:`T = \\operatorname{diag}(u)\\,G\\,\\operatorname{diag}(v)`,
        :math:`G = e^{-\\lambda M - 1}`.  Zero where the matching mass is zero.
        In the log-domain regime (``lam * max(M)`` in the hundreds or more) they
        can overflow to ``inf``/underflow to 0 even though ``loss`` and ``grad``
        are accurate: the plan itself is then best formed in the log domain.
    """
    loss: np.ndarray
    grad: np.ndarray
    transport_cost: np.ndarray
    n_iter: np.ndarray
    err: np.ndarray
    converged: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def squeeze(self):
        """The same result for a single (1-D) problem: scalars and 1-D arrays."""
        values = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)[0]
            values[name] = value.item() if np.ndim(value) == 0 else value
        return SinkhornResult(**values)


def warn_if_not_converged(converged, tol, max_iter, what):
    """One :class:`~sklearn.exceptions.ConvergenceWarning` per call (never with ``tol=0``)."""
    if tol > 0 and not np.all(converged):
        from sklearn.exceptions import ConvergenceWarning   # sklearn is slow to import
        bad = int(np.size(converged) - np.count_nonzero(converged))
        warnings.warn(
            f"{what}: {bad} of {np.size(converged)} rows did not reach tol={tol:g} in "
            f"max_iter={max_iter} iterations; increase max_iter or tol (see result.err)",
            ConvergenceWarning, stacklevel=3)

