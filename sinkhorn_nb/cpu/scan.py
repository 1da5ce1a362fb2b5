"""The measure scan on the CPU (the twin of :mod:`sinkhorn_nb.cuda.scan`).

One pass over ``h`` and ``y`` records what validation checks and what the plan
(:mod:`sinkhorn_nb.routing`) routes on: row masses, support sizes of ``y``, the
last non-zero of each row of ``y`` and the flags of
:mod:`sinkhorn_nb.validation`.  :func:`scan_sparse_measures` does the same for
targets given as CSR triplets (SciPy sparse input) without densifying them.
:func:`scale_rows` rescales rows when validation asks for it.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def pair_summary(h, r, y, r_y):
    """Row ``r`` of ``h`` and row ``r_y`` of ``y`` in one vectorized loop: the sums
    and numbers of negative entries of both, the number of non-zeros of the row
    of ``y`` and the index of its last non-zero (-1 if none)."""
    total_h = 0.0
    total_y = 0.0
    negative_h = 0
    negative_y = 0
    nonzero_y = 0
    last_y = -1
    for j in range(h.shape[1]):
        a = h[r, j]
        b = y[r_y, j]
        total_h += a
        total_y += b
        negative_h += a < 0
        negative_y += b < 0
        nonzero_y += b != 0
        last_y = max(last_y, j if b != 0 else -1)
    return total_h, total_y, negative_h, negative_y, nonzero_y, last_y


@njit(cache=True, error_model="numpy")
def all_finite(x):
    """Whether every entry of the 1-D ``x`` is finite."""
    for j in range(x.size):
        if not np.isfinite(x[j]):
            return False
    return True


@njit(cache=True, error_model="numpy")
def record_row(h, r, y, r_y, mass_h, mass_y, support, last_nonzero, flags):
    """Scan row ``r`` of ``h`` with row ``r_y`` of ``y`` (:func:`pair_summary`) and
    write the summary of batch row ``r``.

    A finite mass of non-negative values proves every entry finite; only rows
    whose mass is not finite are scanned entry by entry.
    """
    total_h, total_y, negative_h, negative_y, nonzero_y, last_y = pair_summary(h, r, y, r_y)
    flag = 0
    if not np.isfinite(total_h) and not all_finite(h[r]):
        flag |= 1
    if not np.isfinite(total_y) and not all_finite(y[r_y]):
        flag |= 2
    if negative_h > 0:
        flag |= 4
    if negative_y > 0:
        flag |= 8
    mass_h[r] = total_h
    mass_y[r] = total_y
    support[r] = nonzero_y
    last_nonzero[r] = last_y
    flags[r] = flag


@njit(cache=True, error_model="numpy")
def scan_measures(h, y, mass_h, mass_y, support, last_nonzero, flags):
    """One pass over ``h`` and ``y``: row masses, support sizes of ``y``, the
    index of the last non-zero of each row of ``y`` and the flags
    (1/2: ``h``/``y`` not finite, 4/8: negative) of each row.

    Serial on purpose: the vectorized pass runs at memory speed, faster than
    waking a thread pool.
    """
    for r in range(h.shape[0]):
        record_row(h, r, y, r, mass_h, mass_y, support, last_nonzero, flags)


@njit(cache=True, error_model="numpy")
def scan_sparse_measures(h, y_indptr, y_indices, y_data, mass_h, mass_y, support,
                         last_nonzero, flags):
    """:func:`scan_measures` for targets given as CSR triplets (row ``r`` of ``y``
    holds ``y_data[p]`` at label ``y_indices[p]`` for ``y_indptr[r] <= p <
    y_indptr[r + 1]``; no stored zeros, no duplicates).

    Each row of ``y`` is written into one reused row of ``K`` entries and
    scanned by the same vectorized loop as a dense row, so the summary (the
    masses to the last bit) is the one a dense ``y`` would give; the batch
    is never densified.
    """
    row = np.zeros((1, h.shape[1]), y_data.dtype)
    for r in range(h.shape[0]):
        for p in range(y_indptr[r], y_indptr[r + 1]):
            row[0, y_indices[p]] = y_data[p]
        record_row(h, r, row, 0, mass_h, mass_y, support, last_nonzero, flags)
        for p in range(y_indptr[r], y_indptr[r + 1]):
            row[0, y_indices[p]] = 0


def scale_rows(x, factor, out):
    """``out[r] = x[r] * factor[r]`` (in the dtype of ``out``)."""
    np.multiply(x, factor[:, None], out=out, casting="unsafe")
