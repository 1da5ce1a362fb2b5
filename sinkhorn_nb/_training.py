"""Optimizers of :class:`~sinkhorn_nb.WassersteinClassifier`, over any objective.

* :func:`minimize_lbfgs` — full-batch L-BFGS (SciPy) on
  ``value_and_grad(coef, intercept) -> (value, d_coef, d_intercept)``; the
  single-machine fit and the Dask fit (:class:`sinkhorn_nb.dask.DaskObjective`)
  both run it.
* :class:`MinibatchOptimizer` — the SGD and Adam steps of the minibatch solvers.
"""
import time

import numpy as np


def minimize_lbfgs(value_and_grad, coef, intercept, *, max_iter, tol, report=None):
    """L-BFGS-B over ``(coef, intercept)``.

    Parameters
    ----------
    value_and_grad : callable
        ``(coef, intercept) -> (value, d_coef, d_intercept)``.
    coef : ndarray of shape (K, d)
    intercept : ndarray of shape (K,)
        Starting point.
    max_iter : int
        Iteration cap.
    tol : float
        Stop when the largest gradient entry is at most ``tol`` (SciPy's ``gtol``).
    report : callable, optional
        ``report(iteration, value, grad_norm, seconds)`` after every iteration;
        ``grad_norm`` is the Euclidean norm of the gradient at the iterate.

    Returns
    -------
    coef, intercept : ndarray
    n_iter : int
    converged : bool
        False when ``max_iter`` was reached.
    """
    from scipy.optimize import minimize

    K, d = coef.shape
    last = {}
    start = time.perf_counter()

    def fun(theta):
        value, d_coef, d_int = value_and_grad(theta[:K * d].reshape(K, d), theta[K * d:])
        grad = np.concatenate([d_coef.ravel(), d_int])
        last.update(theta=theta, norm=float(np.linalg.norm(grad)))
        return value, grad

    def callback(intermediate_result):
        if report is not None:
            same = "theta" in last and np.array_equal(last["theta"], intermediate_result.x)
            report(callback.iteration, float(intermediate_result.fun),
                   last["norm"] if same else float("nan"), time.perf_counter() - start)
        callback.iteration += 1
    callback.iteration = 1

    theta0 = np.concatenate([coef.ravel(), intercept])
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
                   options=dict(maxiter=max_iter, gtol=tol, ftol=1e-12))
    return (res.x[:K * d].reshape(K, d).copy(), res.x[K * d:].copy(), int(res.nit),
            res.status != 1)


class MinibatchOptimizer:
    """SGD or Adam (Kingma and Ba, 2015: beta1 0.9, beta2 0.999, eps 1e-8) steps
    on ``coef`` and ``intercept``, in place; Adam's moments persist across calls."""

    def __init__(self, solver, learning_rate):
        self.solver = solver
        self.learning_rate = learning_rate
        self.steps = 0
        self.moments = None

    def step(self, coef, intercept, d_coef, d_intercept):
        lr = self.learning_rate
        if self.solver == "sgd":
            coef -= lr * d_coef
            intercept -= lr * d_intercept
            return
        if self.moments is None:
            self.moments = [[np.zeros_like(p), np.zeros_like(p)] for p in (coef, intercept)]
        self.steps += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for (m, v), param, grad in zip(self.moments, (coef, intercept), (d_coef, d_intercept)):
            m *= b1
            m += (1 - b1) * grad
            v *= b2
            v += (1 - b2) * grad * grad
            m_hat = m / (1 - b1 ** self.steps)
            v_hat = v / (1 - b2 ** self.steps)
            param -= lr * m_hat / (np.sqrt(v_hat) + eps)
