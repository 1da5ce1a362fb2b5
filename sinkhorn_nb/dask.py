"""Scale-out on Dask: losses over row-chunked Dask arrays and data-parallel training.

Install with ``pip install "sinkhorn_nb[dask]"`` (dask, distributed, dask-ml).
Everything here works with any Dask scheduler; on a ``distributed`` cluster the
loss engine (ground metric and Gibbs kernel) is scattered to every worker once
(``Client.scatter(..., broadcast=True)``) instead of travelling with every chunk.

* :func:`loss_and_gradient` — batched losses and gradients of a
  :class:`~sinkhorn_nb.WassersteinLoss` over Dask arrays chunked by rows.
* :func:`prepare_training` and :class:`DaskObjective` — the full-batch objective
  of :class:`~sinkhorn_nb.WassersteinClassifier` summed over chunks on the
  workers: ``WassersteinClassifier(solver="lbfgs").fit`` runs its L-BFGS on it for
  Dask input.  The sums are added on the client in chunk order, so the result
  matches the single-machine fit up to floating-point summation order (with
  ``warm_start_scalings=False`` on both sides; Sinkhorn scalings are not cached
  between evaluations on Dask).
* :func:`partial_fit_chunks` — minibatch training (``"sgd"``/``"adam"``) with
  ``partial_fit`` over the chunks, what ``dask_ml.wrappers.Incremental`` does.
"""
from dataclasses import dataclass

import numpy as np

from ._objective import make_targets, training_rows
from .validation import check_integer, check_sample_weight, check_shapes

INSTALL_HINT = 'install it with: pip install "sinkhorn_nb[dask]"'


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:   # pragma: no cover - the extra is installed in the tests
        raise ImportError(f"sinkhorn_nb.dask needs dask ({INSTALL_HINT})") from exc
    return dask, da


def _client():
    """The current ``distributed`` client, or None (local schedulers)."""
    try:
        from distributed import get_client
        return get_client()
    except (ImportError, ValueError):
        return None


def share(obj):
    """One graph key holding ``obj``: scattered once to every worker of the current
    ``distributed`` client, or a single Delayed value under other schedulers.
    Every chunk task depends on that key, so ``obj`` is not copied per chunk."""
    dask, _ = _dask()
    client = _client()
    if client is not None:
        return client.scatter(obj, broadcast=True, hash=False)
    return dask.delayed(obj, pure=True, traverse=False)


def row_blocks(x, name):
    """The row blocks of a Dask array (1-D, or 2-D with a single column chunk) as a
    list of Delayed, and their lengths."""
    _, da = _dask()
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(x).__name__}")
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got {x.ndim}-D")
    if x.ndim == 2 and x.numblocks[1] != 1:
        x = x.rechunk({1: -1})
    if any(np.isnan(c) for c in x.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes()")
    return list(x.to_delayed().ravel()), x.chunks[0]


def _same_rows(name, chunks, reference, reference_name="X"):
    if tuple(chunks) != tuple(reference):
        raise ValueError(f"{name} must have the same row chunks as {reference_name}: "
                         f"{tuple(chunks)} != {tuple(reference)}")


def _training_blocks(X, y, sample_weight):
    """Row blocks of ``X``, ``y`` and ``sample_weight``, checked to share the row
    chunks of ``X``; when ``sample_weight`` is None or a scalar, every block is it."""
    X_blocks, rows = row_blocks(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D Dask array (n_samples, n_features), got shape "
                         f"{X.shape}; reshape it with X.reshape(-1, 1) for a single feature "
                         "or X.reshape(1, -1) for a single sample")
    y_blocks, y_rows = row_blocks(y, "y")
    _same_rows("y", y_rows, rows)
    if sample_weight is None or np.ndim(sample_weight) == 0:
        return X_blocks, y_blocks, [sample_weight] * len(X_blocks)
    w_blocks, w_rows = row_blocks(sample_weight, "sample_weight")
    _same_rows("sample_weight", w_rows, rows)
    return X_blocks, y_blocks, w_blocks


def _loss_block(loss, h, y):
    value, grad = loss(h, y)
    return np.asarray(value), np.asarray(grad)


def loss_and_gradient(h, y, loss):
    """Per-row values and gradients of ``loss`` over row-chunked Dask arrays.

    Parameters
    ----------
    h, y : dask.array.Array of shape (n, K), or of shape (K,)
        Predictions and targets with the same row chunks (columns in one chunk;
        they are rechunked if not).  1-D arrays are one problem, as for
        :class:`~sinkhorn_nb.WassersteinLoss` on NumPy arrays.
    loss : WassersteinLoss
        The engine, sent to each worker once (see :func:`share`).

    Returns
    -------
    values : dask.array.Array of shape (n,), or of shape () for 1-D input
    grad : dask.array.Array of the shape of ``h``
        Lazy; ``dask.compute(values, grad)`` solves each chunk once.

    Examples
    --------
    >>> import numpy as np, dask.array as da, sinkhorn_nb as snb
    >>> from sinkhorn_nb.dask import loss_and_gradient
    >>> loss = snb.WassersteinLoss(snb.ground_metric.ordinal(3), lam=10.0)
    >>> h = da.from_array(np.full((4, 3), 1 / 3), chunks=(2, 3))
    >>> y = da.from_array(np.eye(3)[[0, 1, 2, 1]], chunks=(2, 3))
    >>> values, grad = loss_and_gradient(h, y, loss)
    >>> values.shape, grad.chunks
    ((4,), ((2, 2), (3,)))
    """
    dask, da = _dask()
    if getattr(h, "ndim", None) == 1 and getattr(y, "ndim", None) == 1:
        values, grad = loss_and_gradient(h[None, :], y[None, :], loss)    # one row
        return values[0], grad[0]
    h_blocks, rows = row_blocks(h, "h")
    y_blocks, y_rows = row_blocks(y, "y")
    check_shapes(h.shape, y.shape, loss.M.shape[0])
    _same_rows("y", y_rows, rows, "h")
    K = h.shape[1]
    dtype = np.result_type(h.dtype, y.dtype, np.float32)
    engine = share(loss)
    values, grads = [], []
    for hb, yb, n in zip(h_blocks, y_blocks, rows):
        value, grad = dask.delayed(_loss_block, nout=2, pure=True)(engine, hb, yb)
        values.append(da.from_delayed(value, shape=(n,), dtype=dtype))
        grads.append(da.from_delayed(grad, shape=(n, K), dtype=dtype))
    return da.concatenate(values), da.concatenate(grads)


@dataclass
class DaskTraining:
    """A training set on Dask, validated and turned into target measures chunk by
    chunk where each chunk lives (see :func:`prepare_training`)."""
    classes: np.ndarray
    n_features: int
    multi_output: bool
    blocks: list
    total_weight: float


def _prepare_block(X, y, w, variant, classes):
    """Validate one chunk and build its :class:`~sinkhorn_nb._objective.Targets` (on a
    worker); None when no sample of the chunk enters the objective."""
    from sklearn.utils import check_array
    X = check_array(X, dtype=np.float64)
    targets, _ = make_targets(y, variant, classes)
    w = check_sample_weight(np.full(X.shape[0], w) if _is_scalar(w) else w, X.shape[0])
    keep = training_rows(targets, w, variant)
    if not keep.any():
        return None
    return (X, targets, w) if keep.all() else (X[keep], targets.take(keep), w[keep])


def _is_scalar(w):
    return w is not None and np.ndim(w) == 0


def _block_weight(block):
    return 0.0 if block is None else float(block[2].sum())


def prepare_training(X, y, sample_weight, variant):
    """Validate a training set of Dask arrays and keep it on the workers.

    Each row chunk of ``X``, ``y`` (and ``sample_weight``) is checked and turned
    into target measures where it lives, and kept there (``persist`` on a
    ``distributed`` cluster).  Chunks lost with a worker are recomputed by Dask
    from their lineage.

    Parameters
    ----------
    X : dask.array.Array of shape (n, d), chunked by rows
    y : dask.array.Array of shape (n,) or (n, K), same row chunks
    sample_weight : dask.array.Array of shape (n,) or float, optional
        Same row chunks as ``X``; a scalar weighs every sample alike.
    variant : {"balanced", "relaxed"}

    Returns
    -------
    DaskTraining
    """
    dask, _ = _dask()
    X_blocks, y_blocks, w_blocks = _training_blocks(X, y, sample_weight)
    multi_output = y.ndim == 2 and y.shape[1] > 1
    classes = _classes(y)
    labels = np.arange(y.shape[1]) if multi_output else classes
    prepare = dask.delayed(_prepare_block, pure=True)
    blocks = [prepare(xb, yb, wb, variant, classes)
              for xb, yb, wb in zip(X_blocks, y_blocks, w_blocks)]
    blocks = list(dask.persist(*blocks))      # kept where they were computed
    total_weight = sum(dask.compute(*[dask.delayed(_block_weight)(b) for b in blocks]))
    if len(labels) >= 2 and not total_weight > 0:
        raise ValueError("no sample has both a positive weight and a non-empty target")
    return DaskTraining(labels, X.shape[1], multi_output, blocks, total_weight)


def _block_sums(objective, coef, intercept, block):
    """Weighted data terms of one prepared chunk, plus its Sinkhorn counters."""
    if block is None:
        return 0.0, 0.0, 0.0, 0, 0
    X, targets, w = block
    before = objective.sinkhorn_iterations, objective.not_converged
    value, d_coef, d_int = objective.weighted_sums(coef, intercept, X, targets, w)
    return (value, d_coef, d_int, objective.sinkhorn_iterations - before[0],
            objective.not_converged - before[1])


class DaskObjective:
    """The full-batch training objective, summed over prepared chunks on Dask.

    ``value_and_grad(coef, intercept)`` sends the (small) parameters, evaluates
    :meth:`~sinkhorn_nb._objective.LinearSoftmaxObjective.weighted_sums` on every
    chunk where it lives, and adds the chunk sums on the client in chunk order;
    the Sinkhorn counters of ``objective`` add up the chunks' counters.  This is
    what :meth:`WassersteinClassifier.fit <sinkhorn_nb.WassersteinClassifier.fit>`
    runs L-BFGS on (:func:`sinkhorn_nb._training.minimize_lbfgs`) for Dask input.

    Parameters
    ----------
    objective : LinearSoftmaxObjective
        Sent to every worker once (:func:`share`); it must not warm-start
        scalings (no per-sample state across evaluations).
    data : DaskTraining
    """

    def __init__(self, objective, data):
        self.engine = share(objective)
        self.blocks = data.blocks
        self.total_weight = data.total_weight
        self.objective = objective
        self.evaluations = 0

    def value_and_grad(self, coef, intercept):
        dask, _ = _dask()
        parts = [dask.delayed(_block_sums, pure=True)(self.engine, coef, intercept, block)
                 for block in self.blocks]
        parts = dask.compute(*parts)
        value, d_coef, d_int = 0.0, np.zeros_like(coef), np.zeros_like(intercept)
        for v, dc, di, iterations, not_converged in parts:    # fixed order
            value, d_coef, d_int = value + v, d_coef + dc, d_int + di
            self.objective.sinkhorn_iterations += iterations
            self.objective.not_converged += not_converged
        self.evaluations += 1
        return self.objective.regularized(coef, value, d_coef, d_int, self.total_weight)


def _classes(y):
    """Sorted labels of a 1-D Dask array of labels, or None for 2-D targets."""
    if y.ndim == 2 and y.shape[1] > 1:
        return None
    _, da = _dask()
    return np.unique(da.unique(y).compute())


def partial_fit_chunks(estimator, X, y, classes=None, sample_weight=None, epochs=1):
    """Train ``estimator`` (``"sgd"``/``"adam"``) with ``partial_fit`` on each row
    chunk in turn, ``epochs`` times; chunks are computed one at a time, so only
    one chunk is in memory on the client.  The loop of
    ``dask_ml.wrappers.Incremental``, without dask-ml.

    Parameters
    ----------
    estimator : WassersteinClassifier
        With ``solver="sgd"`` or ``"adam"``.
    X : dask.array.Array of shape (n, d), chunked by rows
    y : dask.array.Array of shape (n,) or (n, K), same row chunks
    classes : array_like, optional
        All the labels of a 1-D ``y``; computed from ``y`` if None.
    sample_weight : dask.array.Array of shape (n,) or float, optional
        Same row chunks as ``X``; a scalar weighs every sample alike.
    epochs : int, default 1
        Passes over the chunks, >= 1.

    Returns
    -------
    estimator
    """
    epochs = check_integer(epochs, "epochs", 1)
    dask, _ = _dask()
    X_blocks, y_blocks, w_blocks = _training_blocks(X, y, sample_weight)
    if classes is None and not (y.ndim == 2 and y.shape[1] > 1):
        classes = _classes(y)
    for _ in range(epochs):
        for xb, yb, wb in zip(X_blocks, y_blocks, w_blocks):
            Xc, yc, wc = dask.compute(xb, yb, wb)
            estimator.partial_fit(Xc, yc, classes=classes, sample_weight=wc)
    return estimator
