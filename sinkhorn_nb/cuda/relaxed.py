"""CUDA driver for relaxed (unbalanced) transport (mirrors :mod:`sinkhorn_nb.cpu.relaxed`)."""
from ..cpu.relaxed import relaxed_exponents
from .paths import DEFAULT_LAUNCH, outputs, solve
from .results import device_result


def sinkhorn_relaxed(h, y, kernel, gamma_a, gamma_b, max_iter, tol, check_every, method,
                     u0=None, v0=None, launch=DEFAULT_LAUNCH):
    """Solve the relaxed problem for device arrays ``h, y`` (n, K).

    Returns a :class:`~sinkhorn_nb.SinkhornResult` of device arrays.
    """
    a, b = relaxed_exponents(kernel.lam, gamma_a, gamma_b)
    state, go = solve(h, y, kernel, False, a, b, max_iter, tol, check_every, method, launch,
                      u0, v0)
    return device_result(state, *outputs(go, h, y, kernel, state, False, gamma_a, gamma_b))
