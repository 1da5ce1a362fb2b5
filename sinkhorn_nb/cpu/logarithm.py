r"""A natural logarithm that vectorizes inside Numba loops.

Numba calls the C library's scalar ``log``, which keeps a loop from vectorizing,
so a kernel that needs ``log h`` would otherwise take it from a separate NumPy
pass (one more read and write of an ``(n, K)`` array).  :func:`log_of_bits`
computes the logarithm of a positive normal number from its IEEE-754 bits with
integer and floating-point operations only, so the loop around it vectorizes.

The method is fdlibm's ``__ieee754_log``.  Write :math:`x = 2^k m` with
:math:`m \in [\sqrt 2/2, \sqrt 2)` and :math:`f = m - 1`; with
:math:`s = f / (2 + f)`,

.. math::
    \log(1 + f) = 2\,\operatorname{artanh} s = f - \tfrac12 f^2 + s\,(\tfrac12 f^2 + R(s^2)),

where :math:`R` is fdlibm's degree-7 minimax polynomial (error below
:math:`2^{-58.45}`), and :math:`\log x = k \log 2 + \log(1 + f)` with
:math:`\log 2` split in a high and a low part.  The result is within 1 ulp of the
exact logarithm.  Float32 inputs are decoded from their 32-bit pattern and the
logarithm is computed in float64.

Zero, subnormal, infinite and NaN inputs are outside the method: callers take
``np.log`` there, after testing each entry (``x > 0`` and
:func:`is_subnormal_bits`) or, for a whole row of non-negative values, its
smallest bit pattern (below ``1 << mantissa_bits`` when some entry is zero,
``-0.0`` or subnormal).
"""
import numpy as np
from numba import njit

from .kernels import compiled

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951

#: ``(integer view dtype, mantissa bits, exponent bias)`` of each float dtype.
_LAYOUT = {np.dtype(np.float64): (np.int64, 52, 1023),
           np.dtype(np.float32): (np.int32, 23, 127)}


def float_bits(x):
    """``(bits, mantissa_bits, bias)``: ``x`` viewed as integers of its width and
    the layout :func:`log_of_bits` needs (float32 or float64 ``x``)."""
    view, mantissa_bits, bias = _LAYOUT[np.dtype(x.dtype)]
    return x.view(view), mantissa_bits, bias


# Only floating-point contraction (FMA) is allowed: reassociation would undo
# the ordering that keeps the result within 1 ulp.
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def log_of_bits(bits, mantissa_bits, bias):
    """``log x`` (float64) for a positive normal ``x`` with IEEE bits ``bits``."""
    mask = (1 << mantissa_bits) - 1
    k = np.float64((bits >> mantissa_bits) - bias)
    m = 1.0 + np.float64(bits & mask) * (1.0 / (mask + 1))
    big = m > _SQRT2            # selects, not branches: the loop stays vectorized
    k += 1.0 if big else 0.0
    f = (0.5 * m if big else m) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    R = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    half_f2 = 0.5 * f * f
    return k * _LN2_HI - ((half_f2 - (s * (half_f2 + R) + k * _LN2_LO)) - f)


@compiled
def is_subnormal_bits(bits, mantissa_bits):
    """True for a zero or subnormal non-negative float (exponent field 0)."""
    return (bits >> mantissa_bits) == 0
