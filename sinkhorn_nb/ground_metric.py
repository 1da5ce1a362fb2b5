"""Ground metrics between labels, scaled so that ``max M < 1`` (paper, footnote 5).

Every builder returns a float64 ``(K, K)`` array with a zero diagonal,
``max_value * (D / D.max()) ** p`` for the raw distances ``D`` between labels
(``max_value`` 0.999 by default), so the regularization ``lam`` means the same
thing whatever the raw distances.  The distances are divided by their largest
*before* the power, so no ``p`` overflows (which would give NaN or an all-zero
metric).  When ``p`` is so large that a positive distance underflows to 0 (for
instance ``(1 / 99) ** 163`` in ``ordinal(100, p=163)``), two distinct labels
would be at distance 0: the builders then raise a ``ValueError`` that names the
largest safe ``p`` rather than return that degenerate metric.
"""
import numpy as np

from .validation import as_real_array, check_positive_scalar


def _scaled(D, p, max_value):
    """``max_value * (D / max D) ** p``, checked to keep positive distances positive.

    Raises
    ------
    ValueError
        If a positive distance of ``D`` underflows to 0.
    """
    p = check_positive_scalar(p, "p")
    max_value = check_positive_scalar(max_value, "max_value")
    top = D.max()
    if not top > 0:
        return D
    with np.errstate(under="ignore"):          # checked just below
        M = (D / top) ** p * max_value
    lost = (M == 0) & (D > 0)
    if lost.any():
        raise ValueError(_underflow_message(D[D > 0].min() / top, p, max_value,
                                            np.count_nonzero(lost) // 2))
    return M


def _underflow_message(ratio, p, max_value, pairs):
    """Why ``max_value * ratio ** p`` is 0, and the largest ``p`` that stays normal."""
    tiny = np.finfo(np.float64).tiny
    limit = np.log(tiny / max_value) / np.log(ratio)
    return (f"p={p:g} is too large for these distances: (d / max d) ** p * max_value "
            f"underflows to 0 for {pairs} pair(s) of distinct labels (the smallest "
            f"distance is {ratio:.3g} of the largest), so they would be at distance 0; "
            f"use p <= {limit:.4g} (or a larger max_value)")


def _pairwise_euclidean(X):
    """Euclidean distances between the rows of ``X``, up to a common factor.

    The rows are first divided by a power of two near ``max |X|`` (exact), then
    the distances are formed from coordinate differences (SciPy's ``pdist``), so
    neither the squares overflow for huge coordinates nor near-duplicate points
    collapse to 0 by cancellation (as ``|x|^2 + |y|^2 - 2 x.y`` would).  Callers
    rescale the result, so the common factor does not matter.
    """
    from scipy.spatial.distance import pdist, squareform
    top = np.max(np.abs(X))
    if top > 0:
        X = np.ldexp(X, -np.frexp(top)[1])
    return squareform(pdist(X, "euclidean"))


def _check_points(X, name):
    X = as_real_array(X, name)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_labels, n_dims), "
                         f"got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X.astype(np.float64)


def ordinal(n_classes, p=1.0, *, max_value=0.999):
    """Ordinal metric :math:`M_{kk'} \\propto |k - k'|^p` (the paper's MNIST metric).

    Parameters
    ----------
    n_classes : int
        Number of labels ``K >= 1``.
    p : float, default 1.0
        Exponent, > 0.
    max_value : float, default 0.999
        Largest entry after scaling.

    Returns
    -------
    M : ndarray of shape (K, K)

    Raises
    ------
    ValueError
        If ``p`` is so large that a positive distance underflows to 0 (see the
        module notes).

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> snb.ground_metric.ordinal(3).round(4)
    array([[0.    , 0.4995, 0.999 ],
           [0.4995, 0.    , 0.4995],
           [0.999 , 0.4995, 0.    ]])
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"n_classes must be an integer, got {type(n_classes).__name__}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    k = np.arange(n_classes, dtype=np.float64)
    return _scaled(np.abs(k[:, None] - k[None, :]), p, max_value)


def zero_one(n_classes, *, max_value=0.999):
    """The 0-1 metric (``max_value`` off the diagonal): all mistakes cost the same.

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> snb.ground_metric.zero_one(2)
    array([[0.   , 0.999],
           [0.999, 0.   ]])
    """
    M = ordinal(n_classes, max_value=max_value)
    M[M > 0] = max_value
    return M


def from_points(P, p=1.0, *, max_value=0.999):
    """Metric :math:`M_{kk'} \\propto \\|P_k - P_{k'}\\|_2^p` between raw points.

    Distances are formed from coordinate differences after an exact rescaling,
    so any finite coordinates work (no overflow near ``1e154``, no cancellation
    between nearby points far from the origin).

    Parameters
    ----------
    P : array_like of shape (K, d)
        One point per label.
    p : float, default 1.0
        Exponent, > 0.
    max_value : float, default 0.999
        Largest entry after scaling.

    Returns
    -------
    M : ndarray of shape (K, K)

    Raises
    ------
    ValueError
        If ``p`` is so large that a positive distance underflows to 0 (see the
        module notes).

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> snb.ground_metric.from_points([[0, 0], [3, 4], [0, 1]]).round(3)
    array([[0.   , 0.999, 0.2  ],
           [0.999, 0.   , 0.848],
           [0.2  , 0.848, 0.   ]])
    """
    X = _check_points(P, "P")
    return _scaled(_pairwise_euclidean(X), p, max_value)


def from_embeddings(E, p=1.0, *, max_value=0.999):
    """Metric from word embeddings: Euclidean distance between unit-normalized rows.

    This is the paper's semantic metric between tags (GloVe/word2vec vectors).

    Parameters
    ----------
    E : array_like of shape (K, d)
        One embedding per label; no row may be all zero.
    p : float, default 1.0
        Exponent, > 0.
    max_value : float, default 0.999
        Largest entry after scaling.

    Returns
    -------
    M : ndarray of shape (K, K)

    Raises
    ------
    ValueError
        If ``p`` is so large that a positive distance underflows to 0 (see the
        module notes).

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> snb.ground_metric.from_embeddings([[1, 0], [0, 2], [-3, 0]]).round(3)
    array([[0.   , 0.706, 0.999],
           [0.706, 0.   , 0.706],
           [0.999, 0.706, 0.   ]])
    """
    X = _check_points(E, "E")
    top = np.max(np.abs(X), axis=1)
    if np.any(top == 0):
        raise ValueError(f"E row {int(np.argmax(top == 0))} is all zero and cannot "
                         "be normalized")
    X = X / top[:, None]                      # exact ratios in [-1, 1]: the norm cannot overflow
    return _scaled(_pairwise_euclidean(X / np.linalg.norm(X, axis=1)[:, None]), p, max_value)
