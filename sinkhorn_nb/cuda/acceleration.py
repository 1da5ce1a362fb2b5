"""The over-relaxation and translation rules of :mod:`sinkhorn_nb.overrelaxation`,
compiled as CUDA device functions (the twin of :mod:`sinkhorn_nb.cpu.acceleration`;
the block-wide translation of one row is
:func:`sinkhorn_nb.cuda.kernels.block_translation`)."""
from numba import cuda

from .. import overrelaxation as rule
from .jit import device, kernel

start_omega = device(rule.start_omega)
next_omega = device(rule.next_omega)
overrelaxed = device(rule.overrelaxed)
log_overrelaxed = device(rule.log_overrelaxed)
translation_kappa = device(rule.translation_kappa)
translation_step = device(rule.translation_step)


@kernel(lambda t: [(t.f2,)])
def start_omegas(states):
    """:func:`start_omega` for every row of ``states`` (one thread per row)."""
    r = cuda.grid(1)
    if r < states.shape[0]:
        start_omega(states[r])
