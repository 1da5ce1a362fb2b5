"""The measure scan on the GPU (the twin of :mod:`sinkhorn_nb.cpu.scan`).

:func:`scan_measures` records, one block per row, what validation checks and
what the plan (:mod:`sinkhorn_nb.routing`) routes on; :func:`scale_rows`
rescales rows when validation asks for it.
"""
import numba
from numba import cuda

from .jit import MAX_ROW_THREADS, kernel
from .kernels import block_max, block_sum, flat_entry, is_finite


@kernel(lambda t: [(t.a2, t.a2, t.f1, t.f1, t.i64, t.i64, t.i64)])
def scan_measures(h, y, mass_h, mass_y, support, last_nonzero, flags):
    """Row masses, support sizes of ``y``, the index of the last non-zero of
    each row of ``y`` and the validation flags of
    :mod:`sinkhorn_nb.validation` (1/2: ``h``/``y`` not finite, 4/8: negative); one
    block per row (the twin of :func:`sinkhorn_nb.cpu.scan.scan_measures`)."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = cuda.blockIdx.x
    if r >= h.shape[0]:
        return
    bad_h = 0.0
    bad_y = 0.0
    negative_h = 0.0
    negative_y = 0.0
    total_h = 0.0
    total_y = 0.0
    nonzero = 0.0
    last = -1.0
    for j in range(cuda.threadIdx.x, h.shape[1], cuda.blockDim.x):
        a = h[r, j]
        b = y[r, j]
        if not is_finite(a):
            bad_h = 1.0
        elif a < 0:
            negative_h = 1.0
        if not is_finite(b):
            bad_y = 1.0
        elif b < 0:
            negative_y = 1.0
        else:
            total_y += b
            if b != 0:
                nonzero += 1.0
                last = j
        if is_finite(a) and a >= 0:
            total_h += a
    bad_h = block_sum(buf, bad_h)
    bad_y = block_sum(buf, bad_y)
    negative_h = block_sum(buf, negative_h)
    negative_y = block_sum(buf, negative_y)
    total_h = block_sum(buf, total_h)
    total_y = block_sum(buf, total_y)
    nonzero = block_sum(buf, nonzero)
    last = block_max(buf, last)
    if cuda.threadIdx.x == 0:
        mass_h[r] = total_h
        mass_y[r] = total_y
        support[r] = int(nonzero)
        last_nonzero[r] = int(last)
        flags[r] = ((1 if bad_h > 0 else 0) + (2 if bad_y > 0 else 0)
                    + (4 if negative_h > 0 else 0) + (8 if negative_y > 0 else 0))


@kernel(lambda t: [(t.a2, t.f1, t.a2)])
def scale_rows(x, factor, out):
    """``out[r] = x[r] * factor[r]`` (one thread per entry; the twin of
    :func:`sinkhorn_nb.cpu.scan.scale_rows`)."""
    n, K = x.shape
    r, j = flat_entry(n, K)
    if r < n:
        out[r, j] = x[r, j] * factor[r]
