"""Evaluation metrics that use the ground metric (paper §6)."""
import numpy as np

from .validation import as_real_array, check_ground_metric, check_sample_weight


def _label_indices(labels, K, name):
    labels = as_real_array(labels, name)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D label indices, got shape {labels.shape}")
    if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0
                        or labels.max() >= K):
        raise ValueError(f"{name} must hold integer label indices in [0, {K})")
    return labels.astype(np.intp)


def semantic_distance(y_true, y_pred, M, *, sample_weight=None):
    """Mean ground distance between true and predicted labels.

    .. math:: \\frac{1}{n}\\sum_{s} M_{y_s, \\hat y_s}

    With the ordinal metric ``|k - k'|`` this is the expected distance between
    the predicted and the true digit (paper, Fig. 4).

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
        Label indices into ``M`` (0 .. K-1).
    M : array_like of shape (K, K)
        Ground metric.
    sample_weight : array_like of shape (n,), optional
        Finite, non-negative weights, not all zero.

    Returns
    -------
    float

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> M = snb.ground_metric.ordinal(4, max_value=3.0)
    >>> snb.metrics.semantic_distance([0, 1, 3], [0, 3, 2], M)
    1.0
    """
    M = check_ground_metric(M)
    K = M.shape[0]
    t = _label_indices(y_true, K, "y_true")
    p = _label_indices(y_pred, K, "y_pred")
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of one length, got "
                         f"{t.shape} and {p.shape}")
    w = check_sample_weight(sample_weight, t.size, positive_sum=True)
    return float(np.average(M[t, p], weights=w))


def top_k_cost(Y_true, scores, M, k, *, average=True):
    """Top-K cost :math:`C_K` of the paper (§6.2).

    For each sample, the ``k`` labels with the highest scores
    :math:`\\hat\\kappa_1..\\hat\\kappa_k` are compared with the true labels
    :math:`\\kappa_j`:

    .. math:: C_K = \\frac{1}{k}\\sum_{m=1}^{k} \\min_j M_{\\hat\\kappa_m, \\kappa_j}

    Parameters
    ----------
    Y_true : array_like of shape (n, K) or (n,)
        Binary indicator matrix of true labels (each row with at least one), or
        1-D label indices.
    scores : array_like of shape (n, K)
        Predicted scores or probabilities; higher is more likely.
    M : array_like of shape (K, K)
        Ground metric.
    k : int
        Number of top predictions, ``1 <= k <= K``.
    average : bool, default True
        Return the mean over samples; otherwise the per-sample costs.

    Returns
    -------
    float or ndarray of shape (n,)

    Examples
    --------
    >>> import numpy as np, sinkhorn_nb as snb
    >>> M = snb.ground_metric.ordinal(4, max_value=3.0)
    >>> snb.metrics.top_k_cost([[0, 1, 0, 0]], [[0.1, 0.2, 0.3, 0.4]], M, k=2)
    1.5
    """
    M = check_ground_metric(M)
    K = M.shape[0]
    S = as_real_array(scores, "scores")
    if S.ndim != 2 or S.shape[1] != K or S.shape[0] == 0:
        raise ValueError(f"scores must have shape (n, {K}) with n >= 1, got {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ValueError("scores contains NaN or infinite values")
    Y = as_real_array(Y_true, "Y_true")
    if Y.ndim == 1:
        idx = _label_indices(Y, K, "Y_true")
        Y = np.zeros((idx.size, K), dtype=bool)
        Y[np.arange(idx.size), idx] = True
    if Y.shape != S.shape:
        raise ValueError(f"Y_true must have the shape of scores {S.shape}, got {Y.shape}")
    Y = Y > 0
    if not np.all(Y.any(axis=1)):
        raise ValueError(f"Y_true row {int(np.argmin(Y.any(axis=1)))} has no true label")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= K:
        raise ValueError(f"k must be an integer in [1, {K}], got {k!r}")
    top = np.argsort(-S, axis=1, kind="stable")[:, :k]            # (n, k)
    dist = np.where(Y[:, None, :], M[top], np.inf).min(axis=2)  # (n, k)
    costs = dist.mean(axis=1)
    return float(costs.mean()) if average else costs
