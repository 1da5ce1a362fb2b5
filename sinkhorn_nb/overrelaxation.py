r"""Over-relaxation and translation of the scaling iterations: the rules, for both backends.

Every half-update of Sinkhorn's iteration, :math:`s \leftarrow s^{+} = (p \oslash A)^{e_s}`,
becomes (in the log domain, :math:`\log s \leftarrow (1-\omega)\log s + \omega \log s^{+}`)

.. math:: s \leftarrow s^{1-\omega}\,(s^{+})^{\omega} = s \odot (s^{+} \oslash s)^{\omega},
          \qquad 1 \le \omega < 2 .

The fixed point, hence the loss and its gradient, is that of the plain iteration
(:math:`\omega = 1`); only the number of iterations changes.  Near the fixed point
the iteration is a block Gauss-Seidel sweep on the two dual potentials, a
consistently ordered two-block system, so Young's theory of successive
over-relaxation applies: if the plain iteration contracts the error by
:math:`\eta` per iteration, the best factor is
:math:`\omega^* = 2 / (1 + \sqrt{1 - \eta})` and contracts it by
:math:`\omega^* - 1`, which turns ``N`` plain iterations into about
:math:`\sqrt{N}` times a small constant.  The relaxed variant, whose plain rate
is about :math:`\gamma\lambda / (\gamma\lambda + 1)`, gains the most.

:math:`\eta` is not known in advance and drifts as the plan settles.  At every
check (every ``check_every`` iterations) each row measures its error's rate
:math:`\mu = (e / e_{\text{prev}})^{1/c}` over the last ``c`` iterations and,
while :math:`\mu > 1.05\,(\omega - 1)` (the factor is still below the optimum;
above it the rate is :math:`\omega - 1`), inverts Young's relation
:math:`(\mu + \omega - 1)^2 = \mu\,\omega^2\,\eta` for :math:`\eta` and raises
:math:`\omega` to :math:`\omega^*(\eta)`.

Far from the fixed point the iteration is not linear, and a factor that suits
the linear regime can make it diverge or crawl.  Safeguards: a row whose error
is not finite or has grown past :data:`~sinkhorn_nb.core.OMEGA_GROWTH` times its
reference error returns to the scalings of its last check (kept at every
check); a row whose error has not halved from its reference within
:data:`~sinkhorn_nb.core.OMEGA_STALL_ITERATIONS` iterations is crawling, and
carries on from where it is.  Both
halve :math:`\omega - 1` and lower a ceiling on :math:`\omega` to
:math:`1 + 0.8(\omega - 1)`, so that a factor that failed is not chosen again
(after a divergence, until the error has halved; after crawling, for good).
The reference is the error at the last check that halved it.  A row at
:math:`\omega = 1` is the plain iteration, whose failures are handed on as
before.  (Thibault, Chizat, Dossal, Papadakis, *Overrelaxed Sinkhorn-Knopp
algorithm for regularized optimal transport*, 2017; Lehmann, von Renesse,
Sambale, Uschmajew, *A note on overrelaxation in the Sinkhorn algorithm*, 2021.)

The relaxed variant has one more slow direction, which no factor fixes well:
the common factor of its scalings, ``(c s, t / c)``, which the plain iteration
corrects at the rate :math:`ab \approx 1 - 2/(\gamma\lambda)`.  At every check
it is set to its optimum in closed form (:func:`translation_step`), which
leaves the relaxed iteration the rate of the balanced one, whatever
:math:`\gamma` (Séjourné, Vialard, Peyré, *Faster unbalanced optimal transport:
translation invariant Sinkhorn and 1-D Frank-Wolfe*, 2022).

The functions here are plain Python on scalars and 1-D state rows, calling no
other function (the backends compile each one on its own):
:mod:`sinkhorn_nb.cpu.acceleration` compiles them with ``@njit`` and
:mod:`sinkhorn_nb.cuda.acceleration` as CUDA device functions, so the two
backends run the same rule.  A row's state is ``OMEGA_STATE`` float64 numbers
(:func:`start_omega`): its factor, its error at the previous check, its
reference error, the iterations since the reference was set, and two ceilings
on the factor: one lowered by divergence (far from the fixed point, where the
iteration is not linear; it returns to 2 when the error halves) and one lowered
by crawling (for good).  The constants live in :mod:`sinkhorn_nb.core` (Numba
freezes them into the compiled code).
"""
import math

from .core import OMEGA_ETA_MAX, OMEGA_GROWTH, OMEGA_STALL_ITERATIONS


def start_omega(state):
    """Reset one row's over-relaxation state: ``omega = 1``, no error seen,
    ceilings 2."""
    state[0] = 1.0
    state[1] = math.inf
    state[2] = math.inf
    state[3] = 0.0
    state[4] = 2.0
    state[5] = 2.0


def next_omega(state, e, check_every):
    """Update one row's state after a check that measured the error ``e``
    (``check_every`` iterations after the previous check); see the module notes.

    Returns True when the row must return to the scalings of its last check:
    it is over-relaxed and ``e`` is not finite or has grown past
    ``OMEGA_GROWTH`` times its reference.
    """
    omega, previous, reference, since = state[0], state[1], state[2], state[3]
    diverged = omega > 1.0 and not e <= OMEGA_GROWTH * reference
    stalled = (omega > 1.0 and since + check_every >= OMEGA_STALL_ITERATIONS
               and not e < 0.5 * reference)
    if diverged or stalled:                                 # back off
        lowered = 1.0 + 0.8 * (omega - 1.0)
        state[0] = 1.0 + 0.5 * (omega - 1.0)
        state[1] = math.inf
        state[3] = 0.0
        if diverged:        # far from the fixed point: until the error halves
            state[4] = min(state[4], lowered)
        else:               # a factor that crawls: for good
            state[2] = e
            state[5] = min(state[5], lowered)
        return diverged
    if e < 0.5 * reference or reference == math.inf:
        reference = e
        since = 0.0
        state[4] = 2.0
    else:
        since += check_every
    if 0.0 < e < previous < math.inf:
        rate = (e / previous) ** (1.0 / check_every)
        if rate > 1.05 * (omega - 1.0):         # below the optimum: Young's relation
            eta = min((rate + omega - 1.0) ** 2 / (rate * omega * omega), OMEGA_ETA_MAX)
            best = 2.0 / (1.0 + math.sqrt(1.0 - eta))
            omega = min(min(max(omega, best), state[4]), state[5])
    state[0] = omega
    state[1] = e
    state[2] = reference
    state[3] = since
    return False


def overrelaxed(old, new, omega):
    """``old * (new / old) ** omega`` (``new`` where ``old`` is 0 or ``omega = 1``)."""
    if omega == 1.0 or old == 0:
        return new
    return old * (new / old) ** omega


def log_overrelaxed(old, new, omega):
    """``old + omega (new - old)``: :func:`overrelaxed` in the log domain (``new``
    where ``old`` is ``-inf`` or ``omega = 1``)."""
    if omega == 1.0 or old == -math.inf:
        return new
    return old + omega * (new - old)


def translation_kappa(exponent):
    """``1 / exponent - 1``: ``1 / (gamma lam)`` of one side of the relaxed variant
    (0 for the balanced one)."""
    return 1.0 / exponent - 1.0


def translation_step(log_sum_s, log_sum_t, exp_s, exp_t):
    r"""The log of the common factor ``c`` that, applied as ``(c s, t / c)``,
    maximizes the relaxed dual; 0 for the balanced variant (exponents 1).

    The entropic term of the dual is invariant under ``f + tau, g - tau`` (``s =
    e^{lam f}``, ``t = e^{lam g}``); only the two KL terms change, and their
    maximum over ``tau`` has a closed form: with :math:`\kappa = 1/e - 1 =
    1/(\gamma\lambda)` for each side (:func:`translation_kappa`),

    .. math:: \log c = \lambda\tau = \frac{\log \sum_i p_i s_i^{-\kappa_s}
              - \log \sum_j q_j t_j^{-\kappa_t}}{\kappa_s + \kappa_t},

    given the two logarithms of sums ``log_sum_s`` and ``log_sum_t``.
    """
    kappa = (1.0 / exp_s - 1.0) + (1.0 / exp_t - 1.0)   # (no calls: compiled twice)
    if kappa <= 0.0:
        return 0.0
    return (log_sum_s - log_sum_t) / kappa


def stage_exponent(exponent, ratio):
    """The exponent ``gamma lam' / (gamma lam' + 1)`` of a relaxed update at
    ``lam' = ratio * lam``, given the exponent at ``lam``; 1 (balanced) stays 1.
    For the stages of lam-continuation (:func:`sinkhorn_nb.routing.make_plan`)."""
    if exponent >= 1.0:
        return 1.0
    x = exponent / (1.0 - exponent) * ratio
    return x / (x + 1.0)
