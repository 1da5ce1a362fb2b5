"""Turning a device state into a :class:`~sinkhorn_nb.SinkhornResult`."""
import numpy as np
from numba import cuda

from ..result import SinkhornResult
from .scaling import CONVERGED


def device_result(state, loss, grad, u, v, dtype):
    """SinkhornResult of device arrays (``loss``, ``grad``, ... cast to ``dtype``)."""
    dtype = np.dtype(dtype)
    status = state.status.copy_to_host()
    cast = (lambda a: a) if dtype == np.float64 else \
        (lambda a: cuda.to_device(a.copy_to_host().astype(dtype)))
    return SinkhornResult(loss=cast(loss), grad=cast(grad), transport_cost=cast(state.cost),
                          n_iter=state.n_iter, err=cast(state.err),
                          converged=cuda.to_device(status == CONVERGED), u=u, v=v)


def to_host(result):
    """The same result with every field copied to NumPy."""
    fields = {name: getattr(result, name) for name in result.__dataclass_fields__}
    return SinkhornResult(**{k: (a.copy_to_host() if hasattr(a, "copy_to_host") else a)
                             for k, a in fields.items()})
