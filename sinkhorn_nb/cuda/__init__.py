"""Numba ``@cuda.jit`` kernels and the driver for NVIDIA GPUs (twins of :mod:`sinkhorn_nb.cpu`).

Importing this package needs numba-cuda (``pip install "sinkhorn_nb[cuda]"``);
``import sinkhorn_nb`` does not import it.

* :mod:`~sinkhorn_nb.cuda.kernels` — the iterations shared by both variants:
  register-blocked batched products, sparse targets, the log domain, the
  validation scan.
* :mod:`~sinkhorn_nb.cuda.balanced`, :mod:`~sinkhorn_nb.cuda.relaxed` — each
  variant's outputs, closed forms and (balanced) Newton's method.
* :mod:`~sinkhorn_nb.cuda.drivers` — :func:`~sinkhorn_nb.cuda.drivers.solve`,
  which routes every row and fills one preallocated device result.
* :mod:`~sinkhorn_nb.cuda.jit` — the ``@kernel`` decorator and the argument
  types of the PTX tests.
"""
from . import balanced, drivers, jit, kernels, relaxed

__all__ = ["balanced", "drivers", "jit", "kernels", "relaxed"]
