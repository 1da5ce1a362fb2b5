"""Numba ``@cuda.jit`` kernels and drivers (mirrors :mod:`sinkhorn_nb.cpu`).

Importing this module needs numba-cuda (``pip install "sinkhorn_nb[cuda]"``);
``import sinkhorn_nb`` does not.

* :func:`sinkhorn_balanced`, :func:`sinkhorn_relaxed` — drivers on device arrays.
* :func:`~sinkhorn_nb.cuda.scaling.kernels` — the kernels, built per launch shape.
"""
from .balanced import sinkhorn_balanced
from .paths import DEFAULT_LAUNCH, DeviceGibbsKernel
from .relaxed import sinkhorn_relaxed
from .scaling import kernel_sources, kernels

__all__ = ["sinkhorn_balanced", "sinkhorn_relaxed", "DeviceGibbsKernel", "DEFAULT_LAUNCH",
           "kernels", "kernel_sources"]
