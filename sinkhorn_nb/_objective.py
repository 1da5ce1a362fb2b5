r"""Training objective of :class:`~sinkhorn_nb.WassersteinClassifier`.

For a softmax linear model :math:`h_s = \operatorname{softmax}(z_s)`,
:math:`z_s = W x_s + b`, targets :math:`t_s` and sample weights :math:`w_s`,

.. math::
    L(W, b) = \frac{1}{\sum_s w_s}\sum_s w_s\,\big[\,\beta\,W_\lambda(h_s, t_s)
              + \alpha_{KL}\,\widetilde{KL}(t_s\|h_s)\big] + \frac{\rho}{2}\|W\|_F^2

(paper §6: :math:`\alpha_{KL}` is ``kl_weight``, :math:`\rho` is the L2 strength
``alpha``; :math:`\beta` is ``wasserstein_weight``, 1 except for the KL-only
baseline, where it is 0 and no transport problem is solved), with
:math:`\widetilde{KL}(t\|h) = \sum_i t_i \log(t_i/h_i) - \sum_i t_i + 1` since
:math:`\sum_i h_i = 1`.  The gradient goes exactly through the softmax:

.. math::
    \frac{\partial}{\partial z_s} = w_s\big[\beta\,h_s \odot (g_s - \langle h_s, g_s\rangle)
    + \alpha_{KL}\,(h_s \textstyle\sum_i t_{si} - t_s)\big],
    \qquad g_s = \partial W_\lambda / \partial h_s ,

where entries with :math:`h_{si} = 0` (softmax underflow) contribute 0.  The
targets are validated once (:func:`make_targets`); every evaluation then costs
two BLAS products (:math:`XW^\top` and :math:`\partial Z^\top X`), one fused pass
for the softmax, the Sinkhorn solve, and one fused pass for the value and the
backward step.
"""
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .core import CONVERGED, FAILED
from .routing import closed_form_rows
from .threads import passes_on_one_thread
from .validation import Measures, summarize_targets

_parallel = njit(cache=True, parallel=True, error_model="numpy")


@dataclass(frozen=True)
class Targets:
    """Target measures of a training set, validated once.

    Attributes
    ----------
    measures : ndarray of shape (n, K), float64
        One target measure per sample (unit mass for the balanced variant).
    mass, entropy : ndarray of shape (n,)
        :math:`\\sum_i t_i` and :math:`\\sum_i t_i \\log t_i` of each row.
    support : ndarray of int64 (n,)
        Non-zeros of each row (routes rows to the closed form or sparse path).
    last_nonzero : ndarray of int64 (n,)
        Index of the last non-zero of each row (the label of a one-hot row; -1
        for an empty row).
    """
    measures: np.ndarray
    mass: np.ndarray
    entropy: np.ndarray
    support: np.ndarray
    last_nonzero: np.ndarray

    @classmethod
    def from_measures(cls, T):
        """The targets ``T`` (finite, non-negative), summarized by the solvers' scan."""
        T = np.ascontiguousarray(T, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = np.where(T > 0, T * np.log(T), 0.0).sum(axis=1)
        mass, support, last_nonzero = summarize_targets(T)
        return cls(T, mass, entropy, support, last_nonzero)

    def take(self, rows):
        """The targets of the samples ``rows`` (an index array or mask)."""
        return Targets(self.measures[rows], self.mass[rows], self.entropy[rows],
                       self.support[rows], self.last_nonzero[rows])

    def __len__(self):
        return self.measures.shape[0]


def make_targets(y, variant, classes=None):
    """Target measures from labels or from a 2-D array of measures.

    Parameters
    ----------
    y : array_like or scipy.sparse array of shape (n,) or (n, K)
        Class labels (one-hot targets), or non-negative target masses (an
        indicator matrix, histograms; a SciPy sparse matrix is densified); a 2-D
        ``y`` with one column is labels.
    variant : {"balanced", "relaxed"}
        Balanced targets are normalized to unit mass (empty rows stay empty).
    classes : ndarray, optional
        The sorted labels (for 1-D ``y``) or column labels; from ``y`` if None.

    Returns
    -------
    targets : Targets
    classes : ndarray of shape (K,)

    Raises
    ------
    ValueError
        For non-numeric, negative or non-finite 2-D targets, labels outside
        ``classes``, or a column count that does not match ``classes``.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import column_or_1d

    if hasattr(y, "toarray"):      # SciPy sparse target measures: the objective keeps
        y = y.toarray()            # its targets dense (one row per sample, reused per call)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind not in "biuf":
            raise ValueError(f"2-D y must be numeric target measures, got dtype {y.dtype}")
        T = y.astype(np.float64)
        if not np.all(np.isfinite(T)) or np.any(T < 0):
            raise ValueError("2-D y must hold finite, non-negative target masses")
        labels = np.arange(T.shape[1]) if classes is None else classes
        if len(labels) != T.shape[1]:
            raise ValueError(f"y has {T.shape[1]} columns but classes_ has {len(labels)}")
        if variant == "balanced":
            mass = T.sum(axis=1, keepdims=True)
            T /= np.where(mass > 0, mass, 1.0)
        return Targets.from_measures(T), labels
    y = column_or_1d(y, warn=True) if y.ndim == 2 else y
    check_classification_targets(y)
    labels = np.unique(y) if classes is None else classes
    index = np.searchsorted(labels, y)
    if np.any(index >= len(labels)) or np.any(labels[np.minimum(index, len(labels) - 1)] != y):
        raise ValueError("y contains labels not in classes")
    n = index.size
    T = np.zeros((n, len(labels)))
    T[np.arange(n), index] = 1.0
    return Targets(T, np.ones(n), np.zeros(n), np.ones(n, np.int64), index), labels


def training_rows(targets, weights, variant):
    """Mask of the samples that enter the objective: positive weight and, for the
    balanced variant, a non-empty target."""
    keep = weights > 0
    if variant == "balanced":
        keep &= targets.mass > 0
    return keep


@_parallel
def softmax_rows(Z, intercept, H, lse):
    """``Z += intercept`` in place, ``H = softmax(Z)`` and ``lse = logsumexp(Z)``
    per row, in one pass."""
    n, K = Z.shape
    for r in prange(n):
        top = -np.inf
        for i in range(K):
            Z[r, i] += intercept[i]
            top = max(top, Z[r, i])
        total = 0.0
        for i in range(K):
            e = np.exp(Z[r, i] - top)
            H[r, i] = e
            total += e
        for i in range(K):
            H[r, i] /= total
        lse[r] = top + np.log(total)


@_parallel
def backward_rows(H, Z, lse, loss, grad, T, t_mass, t_entropy, weights, w_weight, kl_weight):
    """Weighted value of the data terms; ``grad`` (``dW/dh`` on entry) becomes the
    weighted gradient with respect to the logits ``Z`` (see the module docstring)."""
    n, K = H.shape
    value = 0.0
    for r in prange(n):
        hg = 0.0
        for i in range(K):
            if H[r, i] > 0:
                hg += H[r, i] * grad[r, i]
        kl = 0.0
        if kl_weight > 0:
            cross = 0.0
            for i in range(K):
                if T[r, i] > 0:
                    cross += T[r, i] * (Z[r, i] - lse[r])
            kl = t_entropy[r] - cross - t_mass[r] + 1.0
        w = weights[r]
        for i in range(K):
            d = H[r, i] * (grad[r, i] - hg) if H[r, i] > 0 else 0.0
            grad[r, i] = w * (w_weight * d + kl_weight * (H[r, i] * t_mass[r] - T[r, i]))
        value += w * (w_weight * loss[r] + kl_weight * kl)
    return value


class LinearSoftmaxObjective:
    """Value and gradient of the training objective (module docstring).

    Parameters
    ----------
    loss : WassersteinLoss
        Engine for :math:`W_\\lambda` and its gradient with respect to ``h``.
    kl_weight, alpha : float
        KL weight and L2 strength.
    warm_start_scalings : bool, default True
        Start each sample's Sinkhorn iteration from its scalings at the previous
        evaluation (kept only when some row iterates).
    wasserstein_weight : float, default 1.0
        Weight of the transport loss; 0 gives the KL-only baseline (no solve).

    Attributes
    ----------
    sinkhorn_iterations : int
        Sinkhorn iterations over all evaluations.
    not_converged : int
        Sinkhorn solves (rows) that did not reach the engine's tolerance (with a
        tolerance of 0, that gave non-finite values).
    """

    def __init__(self, loss, kl_weight, alpha, warm_start_scalings=True,
                 wasserstein_weight=1.0):
        self.loss = loss
        self.wasserstein_weight = float(wasserstein_weight)
        self.kl_weight = float(kl_weight)
        self.alpha = float(alpha)
        self.warm_start_scalings = warm_start_scalings
        self.sinkhorn_iterations = 0
        self.not_converged = 0
        self._batch_scalings = None       # (u, v) of the last full-batch evaluation
        self._sample_scalings = None      # (U, V, known) by sample id, for minibatches

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_batch_scalings"] = state["_sample_scalings"] = None
        return state

    def weighted_sums(self, coef, intercept, X, targets, weights, samples=None):
        """Unnormalized data terms on samples ``X`` with :class:`Targets` ``targets``.

        Returns ``(sum_s w_s f_s, sum_s w_s df_s/dcoef, sum_s w_s df_s/dintercept)``
        with ``f_s = W_lam(h_s, t_s) + kl_weight KL(t_s || h_s)``: sums over
        disjoint sets of samples add up (the Dask objective adds chunks).

        ``samples`` keys the warm-start scalings: None for the whole training
        set in a fixed order (full-batch solvers), or the sample ids of a
        minibatch.
        """
        n, K = X.shape[0], len(intercept)
        Z = X @ coef.T
        H = np.empty_like(Z)
        lse = np.empty(n)
        with passes_on_one_thread(n * K):
            softmax_rows(Z, intercept, H, lse)
        if self.wasserstein_weight > 0:
            loss, dZ = self._transport(H, targets, samples)
        else:
            loss, dZ = np.zeros(n), np.zeros_like(Z)
        with passes_on_one_thread(n * K):
            value = backward_rows(H, Z, lse, loss, dZ, targets.measures, targets.mass,
                                  targets.entropy, weights, self.wasserstein_weight,
                                  self.kl_weight)
        return value, dZ.T @ X, dZ.sum(axis=0)

    def _transport(self, H, targets, samples):
        """Per-row transport loss and its gradient with respect to ``h``."""
        measures = Measures.of_softmax(H, targets.measures, targets.mass, targets.support,
                                       targets.last_nonzero)
        # scalings are kept only as warm starts of rows that iterate
        iterates = not closed_form_rows(self.loss.variant, measures.support, measures.mass_h,
                                        measures.mass_y).all()
        result, status = self.loss.solve_measures(
            measures, self._init(samples, H.shape[0]),
            scalings=self.warm_start_scalings and iterates)
        self._remember(samples, result)
        self.sinkhorn_iterations += int(result.n_iter.sum())
        self.not_converged += int(np.count_nonzero(
            status == FAILED if self.loss.controls.tol == 0 else status != CONVERGED))
        return result.loss, result.grad

    def regularized(self, coef, value, d_coef, d_intercept, total_weight):
        """Normalize summed data terms by ``total_weight`` and add the L2 term."""
        value = value / total_weight + 0.5 * self.alpha * np.sum(coef * coef)
        return value, d_coef / total_weight + self.alpha * coef, d_intercept / total_weight

    def value_and_grad(self, coef, intercept, X, targets, weights, samples=None):
        """``(value, d_coef, d_intercept)`` of :math:`L` on samples ``X``; the
        weights are normalized by their sum."""
        sums = self.weighted_sums(coef, intercept, X, targets, weights, samples)
        return self.regularized(coef, *sums, weights.sum())

    # warm-start scalings: arrays indexed by sample, no per-sample Python work
    def _init(self, samples, n):
        if not self.warm_start_scalings:
            return None
        if samples is None:
            return self._batch_scalings
        cache = self._sample_scalings
        if cache is None or not cache[2][samples].all():
            return None
        return cache[0][samples], cache[1][samples]

    def _remember(self, samples, result):
        if not (self.warm_start_scalings and result.n_iter.any()):
            return          # closed-form rows only: nothing to start from next time
        if samples is None:
            self._batch_scalings = (result.u, result.v)
            return
        size = int(samples.max()) + 1
        cache = self._sample_scalings
        if cache is None or cache[0].shape[0] < size:
            U = np.empty((size, result.u.shape[1]), result.u.dtype)
            V = np.empty_like(U)
            known = np.zeros(size, bool)
            if cache is not None:
                old = cache[0].shape[0]
                U[:old], V[:old], known[:old] = cache
            cache = self._sample_scalings = (U, V, known)
        cache[0][samples] = result.u
        cache[1][samples] = result.v
        cache[2][samples] = True

    def forget_scalings(self):
        """Drop the warm-start scalings (for instance when sample ids change meaning)."""
        self._batch_scalings = self._sample_scalings = None
