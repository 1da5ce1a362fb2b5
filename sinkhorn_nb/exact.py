"""Exact (unregularized) Wasserstein distance by linear programming, for validation."""
import numpy as np

from .validation import check_bool, check_ground_metric, check_measures


def _transport_constraints(K):
    from scipy.sparse import coo_matrix, vstack
    idx = np.arange(K * K)
    rows = coo_matrix((np.ones(K * K), (idx // K, idx)), shape=(K, K * K))
    cols = coo_matrix((np.ones(K * K), (idx % K, idx)), shape=(K, K * K))
    return vstack([rows, cols]).tocsr()


def exact_wasserstein(h, y, M, *, renormalize=False):
    """Exact optimal transport cost :math:`\\min_{T\\ge0, T1=h, T^\\top1=y}\\langle T, M\\rangle`.

    Solved as a linear program with SciPy's HiGHS; meant for small ``K`` (the
    program has ``K^2`` variables), to validate the regularized solvers: as
    ``lam`` grows, ``sinkhorn(...).transport_cost`` approaches this value.

    Parameters
    ----------
    h, y : array_like of shape (K,) or (n, K)
        Non-negative measures of equal total mass per row.
    M : array_like of shape (K, K)
        Ground metric.
    renormalize : bool, default False
        Rescale each row to unit mass instead of requiring equal masses.

    Returns
    -------
    float or ndarray of shape (n,)

    Raises
    ------
    ValueError
        For invalid measures (see :func:`sinkhorn`), or if the LP solver fails.

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> M = snb.ground_metric.ordinal(3, max_value=2.0)
    >>> round(snb.exact_wasserstein([0.5, 0.5, 0.0], [0.0, 0.5, 0.5], M), 6)
    1.0
    """
    M2 = check_ground_metric(M)
    measures = check_measures(h, y, M2.shape[0], True, check_bool(renormalize, "renormalize"))
    h2 = measures.h.astype(np.float64, copy=False)
    y2 = measures.y.astype(np.float64, copy=False)
    from scipy.optimize import linprog   # slow to import; only needed here
    K = M2.shape[0]
    A_eq = _transport_constraints(K)
    cost = M2.ravel()
    values = np.empty(h2.shape[0])
    for r in range(h2.shape[0]):
        b_eq = np.concatenate([h2[r], y2[r] * (h2[r].sum() / y2[r].sum())])
        sol = linprog(cost, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        if sol.status != 0:
            raise ValueError(f"the linear program failed on row {r}: {sol.message}")
        values[r] = sol.fun
    return float(values[0]) if measures.was_1d else values
