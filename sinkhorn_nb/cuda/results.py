"""Turning a device state into a :class:`~sinkhorn_nb.SinkhornResult`."""
from ..result import SinkhornResult


def device_result(state, loss, grad, u, v, cost, err, converged):
    """SinkhornResult of device arrays (the outputs of
    :func:`sinkhorn_nb.cuda.paths.outputs`; nothing passes through the host)."""
    return SinkhornResult(loss=loss, grad=grad, transport_cost=cost, n_iter=state.n_iter,
                          err=err, converged=converged, u=u, v=v)


def to_host(result):
    """The same result with every field copied to NumPy."""
    fields = {name: getattr(result, name) for name in result.__dataclass_fields__}
    return SinkhornResult(**{k: (a.copy_to_host() if hasattr(a, "copy_to_host") else a)
                             for k, a in fields.items()})
