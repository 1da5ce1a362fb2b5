"""Numba ``@njit`` kernels and drivers for the CPU (mirrored by :mod:`sinkhorn_nb.cuda`).

* :func:`sinkhorn_balanced`, :func:`sinkhorn_relaxed` — drivers on validated
  ``(n, K)`` arrays and a :class:`~sinkhorn_nb.gibbs.GibbsKernel`.
* :func:`scaling_iterations` — the batched multiplicative kernel (BLAS products).
* :func:`log_scaling_iterations` — the log-domain kernel, row-parallel.
"""
from .balanced import sinkhorn_balanced
from .relaxed import sinkhorn_relaxed
from .scaling import log_marginal_terms, log_scaling_iterations, scaling_iterations

__all__ = ["sinkhorn_balanced", "sinkhorn_relaxed", "scaling_iterations",
           "log_scaling_iterations", "log_marginal_terms"]
