"""The vectorizable logarithm of :mod:`sinkhorn_nb.cpu.logarithm` against NumPy's."""
import numpy as np
import pytest
from numba import njit

from sinkhorn_nb.cpu.logarithm import float_bits, is_subnormal_bits, log_of_bits


@njit
def logs(x, bits, mantissa_bits, bias):
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = log_of_bits(bits[i], mantissa_bits, bias)
    return out


def normal_samples(dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(0)
    wide = np.exp(rng.uniform(np.log(info.tiny), np.log(info.max), 20000))
    near_one = 1.0 + rng.uniform(-0.3, 0.45, 20000)
    edges = [info.tiny, info.max, 1.0, 2.0, 0.5, np.sqrt(2.0), np.sqrt(0.5),
             np.nextafter(1.0, 0), np.nextafter(1.0, 2)]
    x = np.concatenate([wide, near_one, edges]).astype(dtype)
    return x[(x > 0) & np.isfinite(x)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_of_bits_is_within_one_ulp_of_numpy(dtype):
    x = normal_samples(dtype)
    got = logs(x, *float_bits(x))
    exact = np.log(x.astype(np.float64))          # float32 inputs: logarithm in float64
    ulps = np.abs(got - exact) / np.spacing(np.maximum(np.abs(exact), np.finfo(float).tiny))
    assert ulps.max() <= 1.0, (x[np.argmax(ulps)], ulps.max())
    assert set(got[x == 1].tolist()) == {0.0}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_subnormal_bits_are_detected(dtype):
    info = np.finfo(dtype)
    x = np.array([0.0, info.tiny / 4, info.tiny, 1.0], dtype)
    bits, mantissa_bits, _ = float_bits(x)
    subnormal = [bool(is_subnormal_bits(b, mantissa_bits)) for b in bits]
    assert subnormal == [True, True, False, False]
