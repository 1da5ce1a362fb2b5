"""Evaluation metrics that use the ground metric (paper §6)."""
import numpy as np

from .validation import (as_real_array, check_bool, check_ground_metric,
                         check_sample_weight)

_CLASSES_HINT = ("; for class labels such as clf.classes_ (strings, or labels like 3, 7, "
                 "9), pass classes=clf.classes_ to look each label up in classes")


def _label_indices(labels, K, name, classes=None):
    """Rows (columns) of a ``(K, K)`` ground metric for ``labels``: the positions of
    the labels in ``classes``, or without ``classes`` the labels themselves, which
    must then be integers in [0, K)."""
    if classes is not None:
        return _positions(labels, classes, name)
    try:
        labels = as_real_array(labels, name)
    except TypeError as exc:              # strings and other non-numeric labels
        raise TypeError(f"{exc}: label indices into M are expected{_CLASSES_HINT}") from None
    _check_1d(labels, name)
    if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0
                        or labels.max() >= K):
        raise ValueError(f"{name} must hold integer label indices in [0, {K})" + _CLASSES_HINT)
    return labels.astype(np.intp)


def _check_1d(labels, name):
    if labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {labels.shape}")


def _check_classes(classes, K):
    """``classes`` as an array: 1-D, ``K`` distinct labels (the rows of the metric)."""
    classes = np.asarray(classes)
    if classes.shape != (K,):
        raise ValueError(f"classes must hold one label per row of M, shape ({K},), got shape "
                         f"{classes.shape}; pass classes=clf.classes_ with M=clf.ground_metric_")
    if np.unique(classes).size != K:
        raise ValueError("classes must not repeat a label: each row of M belongs to one label")
    return classes


def _positions(labels, classes, name):
    """Positions in ``classes`` (any order) of ``labels``."""
    labels = np.asarray(labels)
    _check_1d(labels, name)
    order = np.argsort(classes, kind="stable")
    ranked = classes[order]
    try:
        where = np.minimum(np.searchsorted(ranked, labels), ranked.size - 1)
        unknown = ranked[where] != labels
    except TypeError:                      # labels not comparable with classes at all
        unknown = np.ones(labels.shape, dtype=bool)
    if np.any(unknown):
        raise ValueError(f"{name} contains labels not in classes: "
                         f"{labels[unknown][:5].tolist()!r}")
    return order[where]


def semantic_distance(y_true, y_pred, M, *, sample_weight=None, classes=None):
    """Mean ground distance between true and predicted labels.

    .. math:: \\frac{1}{n}\\sum_{s} M_{y_s, \\hat y_s}

    With the ordinal metric ``|k - k'|`` this is the expected distance between
    the predicted and the true digit (paper, Fig. 4).

    Parameters
    ----------
    y_true, y_pred : array_like of shape (n,)
        Labels.  Without ``classes``, label indices into ``M`` (integers
        0 .. K-1); with ``classes``, any labels of ``classes``.
    M : array_like of shape (K, K)
        Ground metric.
    sample_weight : array_like of shape (n,), optional
        Finite, non-negative weights, not all zero.
    classes : array_like of shape (K,), optional
        The label of each row (and column) of ``M``, for instance the
        ``classes_`` of a fitted :class:`~sinkhorn_nb.WassersteinClassifier`
        with ``M = clf.ground_metric_``: each label is looked up in ``classes``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For labels outside ``classes``, or, without ``classes``, labels that are
        not integers in [0, K).

    Examples
    --------
    >>> import sinkhorn_nb as snb
    >>> M = snb.ground_metric.ordinal(4, max_value=3.0)
    >>> snb.metrics.semantic_distance([0, 1, 3], [0, 3, 2], M)
    1.0
    >>> snb.metrics.semantic_distance(["a", "b", "d"], ["a", "d", "c"], M,
    ...                               classes=["a", "b", "c", "d"])
    1.0
    """
    M = check_ground_metric(M)
    K = M.shape[0]
    if classes is not None:
        classes = _check_classes(classes, K)
    t = _label_indices(y_true, K, "y_true", classes)
    p = _label_indices(y_pred, K, "y_pred", classes)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of one length, got "
                         f"{t.shape} and {p.shape}")
    w = check_sample_weight(sample_weight, t.size, positive_sum=True)
    return float(np.average(M[t, p], weights=w))


def top_k_cost(Y_true, scores, M, k, *, average=True, classes=None):
    """Top-K cost :math:`C_K` of the paper (§6.2).

    For each sample, the ``k`` labels with the highest scores
    :math:`\\hat\\kappa_1..\\hat\\kappa_k` are compared with the true labels
    :math:`\\kappa_j`:

    .. math:: C_K = \\frac{1}{k}\\sum_{m=1}^{k} \\min_j M_{\\hat\\kappa_m, \\kappa_j}

    Parameters
    ----------
    Y_true : array_like of shape (n, K) or (n,)
        Binary indicator matrix of true labels (each row with at least one), or
        1-D labels: label indices (0 .. K-1), or labels of ``classes``.
    scores : array_like of shape (n, K)
        Predicted scores or probabilities; higher is more likely.
    M : array_like of shape (K, K)
        Ground metric.
    k : int
        Number of top predictions, ``1 <= k <= K``.
    average : bool, default True
        ``True``: the mean over samples; ``False``: the per-sample costs.
    classes : array_like of shape (K,), optional
        The label of each row of ``M`` (column of ``scores``), such as a fitted
        classifier's ``classes_``: 1-D ``Y_true`` labels are looked up in it.

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
    average = check_bool(average, "average")
    M = check_ground_metric(M)
    K = M.shape[0]
    S = as_real_array(scores, "scores")
    if S.ndim != 2 or S.shape[1] != K or S.shape[0] == 0:
        raise ValueError(f"scores must have shape (n, {K}) with n >= 1, got {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ValueError("scores contains NaN or infinite values")
    if np.ndim(Y_true) == 1:
        idx = _label_indices(Y_true, K, "Y_true",
                             None if classes is None else _check_classes(classes, K))
        Y_true = np.zeros((idx.size, K), dtype=bool)
        Y_true[np.arange(idx.size), idx] = True
    Y = as_real_array(Y_true, "Y_true")
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
