"""Training objective of :class:`~sinkhorn_nb.WassersteinClassifier`.

For a softmax linear model :math:`h_s = \\operatorname{softmax}(W x_s + b)` and
targets :math:`t_s`, with sample weights :math:`w_s`,

.. math::
    L(W, b) = \\frac{1}{\\sum_s w_s}\\sum_s w_s\\,\\big[\\,W_\\lambda(h_s, t_s)
              + \\alpha_{KL}\\,\\widetilde{KL}(t_s\\|h_s)\\big] + \\frac{\\rho}{2}\\|W\\|_F^2

(paper §6: :math:`\\alpha_{KL}` is ``kl_weight``, :math:`\\rho` is the L2
strength ``alpha``).  The gradient goes exactly through the softmax
(:func:`sinkhorn_nb.softmax_backward`); for the KL term
:math:`\\partial/\\partial z = h \\textstyle\\sum t - t`.
"""
import warnings

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.exceptions import ConvergenceWarning

from .loss import softmax_backward


class LinearSoftmaxObjective:
    """Value and gradient of the objective over a fixed set of samples.

    Parameters
    ----------
    loss : WassersteinLoss
        Engine for :math:`W_\\lambda` and its gradient with respect to ``h``.
    kl_weight, alpha : float
        KL weight and L2 strength.
    warm_start_scalings : bool
        Keep each sample's Sinkhorn scalings and start the next solve from them.
    """

    def __init__(self, loss, kl_weight, alpha, warm_start_scalings=True):
        self.loss = loss
        self.kl_weight = kl_weight
        self.alpha = alpha
        self.warm_start_scalings = warm_start_scalings
        self.scalings = {}            # sample index -> (u, v)
        self.sinkhorn_iterations = 0  # total over all calls, for the warm-start report
        self.not_converged = 0

    def _solve(self, h, T, index):
        init = None
        if self.warm_start_scalings and index is not None and self.scalings:
            cached = [self.scalings.get(i) for i in index]
            if all(c is not None and np.all(np.isfinite(c[0])) and np.all(np.isfinite(c[1]))
                   for c in cached):
                init = (np.stack([c[0] for c in cached]), np.stack([c[1] for c in cached]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = self.loss.solve(h, T, init=init)
        self.sinkhorn_iterations += int(result.n_iter.sum())
        self.not_converged += int(np.count_nonzero(~result.converged))
        if self.warm_start_scalings and index is not None:
            for k, i in enumerate(index):
                self.scalings[i] = (result.u[k], result.v[k])
        return result

    def weighted_sums(self, coef, intercept, X, T, weights, index=None):
        """Unnormalized data terms on samples ``X`` with targets ``T``.

        Returns ``(sum_s w_s f_s, sum_s w_s df_s/dcoef, sum_s w_s df_s/dintercept)``
        where ``f_s = W_lam(h_s, t_s) + kl_weight KL(t_s || h_s)``: sums over
        disjoint sets of samples add up, which is how the Dask objective
        (:mod:`sinkhorn_nb.dask`) evaluates the full batch chunk by chunk.
        ``index`` (sample ids) keys the warm-start cache.
        """
        Z = X @ coef.T + intercept
        h = softmax(Z, axis=1)
        result = self._solve(h, T, index)
        dZ = softmax_backward(h, result.grad)
        value = weights @ result.loss
        if self.kl_weight > 0:
            log_h = log_softmax(Z, axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                t_log_t = np.where(T > 0, T * np.log(np.where(T > 0, T, 1.0)), 0.0)
            kl = (t_log_t - np.where(T > 0, T * log_h, 0.0)).sum(axis=1) - T.sum(axis=1) + 1.0
            value += self.kl_weight * (weights @ kl)
            dZ = dZ + self.kl_weight * (h * T.sum(axis=1, keepdims=True) - T)
        dZ *= weights[:, None]
        return value, dZ.T @ X, dZ.sum(axis=0)

    def regularized(self, coef, value, d_coef, d_intercept, total_weight):
        """Normalize summed data terms by ``total_weight`` and add the L2 term."""
        value = value / total_weight + 0.5 * self.alpha * np.sum(coef * coef)
        return value, d_coef / total_weight + self.alpha * coef, d_intercept / total_weight

    def value_and_grad(self, coef, intercept, X, T, weights, index=None):
        """Return ``(value, d_coef, d_intercept)`` of :math:`L` on samples ``X``.

        ``weights`` are normalized by their sum; ``index`` (sample ids) keys the
        warm-start cache.
        """
        sums = self.weighted_sums(coef, intercept, X, T, weights, index)
        return self.regularized(coef, *sums, weights.sum())
