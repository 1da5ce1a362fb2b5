"""Numba ``@njit`` kernels and the driver for the CPU (mirrored by :mod:`sinkhorn_nb.cuda`).

* :mod:`~sinkhorn_nb.cpu.kernels` — the iterations shared by both variants:
  batched BLAS products, sparse targets, the log domain.
* :mod:`~sinkhorn_nb.cpu.balanced`, :mod:`~sinkhorn_nb.cpu.relaxed` — each
  variant's outputs (loss, gradient) and closed forms.
* :mod:`~sinkhorn_nb.cpu.drivers` — :func:`~sinkhorn_nb.cpu.drivers.solve`,
  which routes every row and fills one preallocated result.
* :mod:`~sinkhorn_nb.cpu.logarithm` — a logarithm that vectorizes inside Numba
  loops (for fused passes that need ``log h``).
"""
from . import balanced, drivers, kernels, logarithm, relaxed, scan

__all__ = ["balanced", "drivers", "kernels", "logarithm", "relaxed", "scan"]
