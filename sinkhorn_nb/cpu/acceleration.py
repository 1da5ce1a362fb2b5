"""The over-relaxation and translation rules of :mod:`sinkhorn_nb.overrelaxation`,
compiled for the CPU, and the row-wise updates that use them."""
import math

import numpy as np
from numba import njit

from .. import overrelaxation as rule

compiled = njit(cache=True, error_model="numpy")

start_omega = compiled(rule.start_omega)
next_omega = compiled(rule.next_omega)
overrelaxed = compiled(rule.overrelaxed)
log_overrelaxed = compiled(rule.log_overrelaxed)
translation_kappa = compiled(rule.translation_kappa)
translation_step = compiled(rule.translation_step)
stage_exponent = compiled(rule.stage_exponent)


@compiled
def start_omegas(states):
    """:func:`start_omega` for every row of ``states`` (shape ``(m, OMEGA_STATE)``)."""
    for k in range(states.shape[0]):
        start_omega(states[k])


@compiled
def overrelaxed_update(p, a, exponent, omega, out):
    """``out = out^(1-omega) ((p / a) ** exponent)^omega``, 0 where ``p = 0``; the
    plain update ``out = (p / a) ** exponent`` when ``omega = 1`` (branch-free
    loops, one per case, so that the plain ones vectorize)."""
    zero = out.dtype.type(0)
    if omega == 1.0:
        if exponent == 1.0:
            for j in range(p.size):
                out[j] = p[j] / a[j] if p[j] != 0 else zero
        else:
            e = out.dtype.type(exponent)
            for j in range(p.size):
                out[j] = (p[j] / a[j]) ** e if p[j] != 0 else zero
        return
    for j in range(p.size):
        if p[j] == 0:
            out[j] = zero
        else:
            plain = p[j] / a[j]
            if exponent != 1.0:
                plain = plain ** exponent
            out[j] = overrelaxed(out[j], plain, omega)


@compiled
def translation(p, s, q, t, exp_s, exp_t, is_log):
    """:func:`~sinkhorn_nb.overrelaxation.translation_step` for the rows ``p, s`` and
    ``q, t`` (``s``, ``t`` hold logarithms when ``is_log``); sums in the log
    domain, so no power overflows."""
    kappa_s, kappa_t = translation_kappa(exp_s), translation_kappa(exp_t)
    if kappa_s + kappa_t <= 0.0:
        return 0.0
    return translation_step(log_weighted_sum(p, s, kappa_s, is_log),
                            log_weighted_sum(q, t, kappa_t, is_log), exp_s, exp_t)


@compiled
def log_weighted_sum(p, s, kappa, is_log):
    """``log sum_{p_i > 0} p_i s_i^(-kappa)`` (``s`` holds logs when ``is_log``)."""
    top = -np.inf
    for i in range(p.size):
        if p[i] > 0:
            x = math.log(p[i]) - kappa * (s[i] if is_log else math.log(s[i]))
            top = max(top, x)
    if not np.isfinite(top):
        return top
    total = 0.0
    for i in range(p.size):
        if p[i] > 0:
            total += math.exp(math.log(p[i]) - kappa * (s[i] if is_log else math.log(s[i]))
                              - top)
    return top + math.log(total)
