"""``WassersteinClassifier``: a softmax linear model trained on the Wasserstein loss."""
import numbers
import time
import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import ground_metric as gm
from .loss import WassersteinLoss
from .objective import LinearSoftmaxObjective
from .validation import check_ground_metric

SOLVERS = ("lbfgs", "sgd", "adam")


class WassersteinClassifier(ClassifierMixin, BaseEstimator):
    r"""Softmax linear classifier trained on the Wasserstein loss (Frogner et al., §6).

    The model is :math:`h(x) = \operatorname{softmax}(W x + b)`; training minimizes

    .. math::
        \frac{1}{\sum_s w_s}\sum_s w_s\big[W_\lambda(h(x_s), t_s)
        + \alpha_{KL}\,\widetilde{KL}(t_s\|h(x_s))\big] + \frac{\alpha}{2}\|W\|_F^2

    where :math:`W_\lambda` is the smoothed (``variant="balanced"``) or relaxed
    (``"relaxed"``) entropic transport loss over the ground metric, :math:`t_s` the
    target measure and :math:`\alpha_{KL}` = ``kl_weight`` (``W + α·KL`` in the
    paper; a very large ``kl_weight`` approaches multinomial logistic regression).

    Parameters
    ----------
    ground_metric : array of shape (K, K), "ordinal", "zero_one", callable or None
        Distances between the sorted ``classes_`` (for 2-D targets, between the
        columns).  ``"ordinal"`` is :math:`|i - j|^p` over the sorted class
        positions; a callable gets ``classes_`` and returns the array; ``None``
        (default) is the 0-1 metric, under which the loss ignores label geometry.
    p : float, default 1.0
        Exponent of the ``"ordinal"`` metric.
    lam : float, default 10.0
        Entropic regularization :math:`\lambda`.
    variant : {"balanced", "relaxed"}, default "balanced"
    gamma_a, gamma_b : float, default 1.0
        Marginal penalties of the relaxed variant.
    kl_weight : float, default 0.0
        Weight :math:`\alpha_{KL}` of the KL term.
    alpha : float, default 1e-4
        L2 penalty on ``coef_`` (not on ``intercept_``).
    solver : {"lbfgs", "sgd", "adam"}, default "lbfgs"
        Full-batch L-BFGS (SciPy) or minibatch SGD / Adam.
    max_iter : int, default 200
        L-BFGS iterations, or epochs for the minibatch solvers.
    tol : float, default 1e-5
        L-BFGS gradient tolerance; minibatch solvers stop when the epoch loss has
        not improved by ``tol`` for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default 5
    batch_size : int, default 200
        Minibatch size (capped at the number of samples).
    learning_rate : float, default 0.01
        Step size of SGD / Adam.
    sinkhorn_max_iter : int, default 1000
    sinkhorn_tol : float, default 1e-7
        Per-sample Sinkhorn controls (one-hot balanced targets need no iteration).
    warm_start_scalings : bool, default True
        Start each sample's Sinkhorn iteration from its scalings at the previous
        evaluation.
    device : {"cpu", "cuda", "auto"}, default "cpu"
    warm_start : bool, default False
        Start from the previous ``coef_`` and ``intercept_``.
    random_state : int, RandomState or None
        Seed for initialization and minibatch order.
    verbose : int, default 0
        Print iteration, loss and elapsed time every ``verbose`` iterations.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        Class labels (1-D targets) or column indices (2-D targets).
    coef_ : ndarray of shape (K, n_features)
    intercept_ : ndarray of shape (K,)
    ground_metric_ : ndarray of shape (K, K)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Defined when ``X`` has string column names.
    n_iter_ : int
    loss_curve_ : list of float
        Objective after each iteration (L-BFGS) or epoch.
    sinkhorn_iterations_ : int
        Sinkhorn iterations spent in the last ``fit`` (all samples, all calls).

    Notes
    -----
    Targets: 1-D labels become one-hot measures.  A 2-D ``y`` of non-negative
    values (a multi-label indicator matrix, or histograms / soft labels) is taken
    as target measures: each row is normalized to unit mass for the balanced
    variant and used as given for the relaxed one.  Samples with zero weight, and
    (balanced variant) samples whose target row is empty, do not enter the
    objective.  ``partial_fit`` exists only for ``solver="sgd"`` or ``"adam"``.
    The estimator does not declare scikit-learn's ``multi_label`` tag: its output
    is one measure over the labels, not independent per-label probabilities, so
    sklearn's multi-label conventions (``predict == predict_proba.round()``) do
    not apply.  For 2-D targets ``predict``
    returns an indicator matrix of the labels whose probability is at least
    ``1 / K`` (always including the most probable); :meth:`predict_top_k` ranks.

    See Also
    --------
    WassersteinLoss, sklearn.linear_model.LogisticRegression

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> import sinkhorn_nb as snb
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = snb.WassersteinClassifier("ordinal", lam=20.0, kl_weight=0.1,
    ...                                 max_iter=50).fit(X[:500] / 16, y[:500])
    >>> clf.predict_proba(X[:2] / 16).shape
    (2, 10)
    """

    def __init__(self, ground_metric=None, *, p=1.0, lam=10.0, variant="balanced",
                 gamma_a=1.0, gamma_b=1.0, kl_weight=0.0, alpha=1e-4, solver="lbfgs",
                 max_iter=200, tol=1e-5, n_iter_no_change=5, batch_size=200,
                 learning_rate=0.01, sinkhorn_max_iter=1000, sinkhorn_tol=1e-7,
                 warm_start_scalings=True, device="cpu", warm_start=False,
                 random_state=None, verbose=0):
        self.ground_metric = ground_metric
        self.p = p
        self.lam = lam
        self.variant = variant
        self.gamma_a = gamma_a
        self.gamma_b = gamma_b
        self.kl_weight = kl_weight
        self.alpha = alpha
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.sinkhorn_max_iter = sinkhorn_max_iter
        self.sinkhorn_tol = sinkhorn_tol
        self.warm_start_scalings = warm_start_scalings
        self.device = device
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- checks
    def _check_params(self):
        def number(name, low, integer=False, strict=True):
            value = getattr(self, name)
            kind = numbers.Integral if integer else numbers.Real
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}, "
                                f"got {value!r}")
            if not np.isfinite(value) or (value <= low if strict else value < low):
                raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
        for name in ("lam", "gamma_a", "gamma_b", "p", "learning_rate"):
            number(name, 0)
        for name in ("kl_weight", "alpha", "tol", "sinkhorn_tol"):
            number(name, 0, strict=False)
        for name in ("max_iter", "batch_size", "sinkhorn_max_iter", "n_iter_no_change"):
            number(name, 0, integer=True)
        number("verbose", 0, integer=True, strict=False)
        if self.variant not in ("balanced", "relaxed"):
            raise ValueError(f"variant must be 'balanced' or 'relaxed', got {self.variant!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")

    def _metric_for(self, classes):
        K = len(classes)
        spec = self.ground_metric
        if spec is None or (isinstance(spec, str) and spec == "zero_one"):
            return gm.zero_one(K)
        if isinstance(spec, str):
            if spec != "ordinal":
                raise ValueError(f"ground_metric must be an array, 'ordinal', 'zero_one', "
                                 f"a callable or None, got {spec!r}")
            return gm.ordinal(K, p=self.p)
        M = spec(classes) if callable(spec) else spec
        M = check_ground_metric(M, "ground_metric").astype(np.float64)
        if M.shape != (K, K):
            raise ValueError(f"ground_metric has shape {M.shape} but there are {K} classes")
        return M

    def _targets(self, y, classes=None):
        """Target measures (n, K) and the classes they refer to."""
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
            if self.variant == "balanced":   # empty rows stay 0: _prepare drops them
                mass = T.sum(axis=1, keepdims=True)
                T = T / np.where(mass > 0, mass, 1.0)
            return T, labels
        y = column_or_1d(y, warn=True) if y.ndim == 2 else y
        check_classification_targets(y)
        labels = np.unique(y) if classes is None else classes
        index = np.searchsorted(labels, y)
        if np.any(index >= len(labels)) or np.any(labels[np.minimum(index, len(labels) - 1)] != y):
            raise ValueError("y contains labels not in classes")
        return np.eye(len(labels))[index], labels

    # ---------------------------------------------------------------- fitting
    def _prepare(self, X, y, sample_weight, reset, classes=None, allow_empty=False):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True,
                             dtype=np.float64, y_numeric=False)
        T, labels = self._targets(y, classes)
        if reset:
            self._y_2d = np.ndim(y) == 2 and np.shape(y)[1] > 1
        if len(labels) < 2:
            raise ValueError("WassersteinClassifier needs samples of at least 2 classes, "
                             f"got {len(labels)} class")
        if sample_weight is None:
            w = np.ones(X.shape[0])
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (X.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("sample_weight must be finite, non-negative, of shape "
                                 f"({X.shape[0]},)")
            if w.sum() <= 0 and not allow_empty:
                raise ValueError("sample_weight must not be all zero")
        # samples without weight, or (balanced variant) without any target mass,
        # do not enter the objective: drop them
        keep = (w > 0) & (T.sum(axis=1) > 0 if self.variant == "balanced" else True)
        if not np.any(keep) and not allow_empty:   # allowed for one chunk of many (Dask)
            raise ValueError("no sample has both a positive weight and a non-empty target")
        if not np.all(keep):
            X, T, w = X[keep], T[keep], w[keep]
        return X, T, labels, w

    def _init_model(self, labels, n_features, random_state):
        self.classes_ = labels
        self.ground_metric_ = self._metric_for(labels)
        K = len(labels)
        if not (self.warm_start and hasattr(self, "coef_")
                and self.coef_.shape == (K, n_features)):
            self.coef_ = 0.01 * random_state.standard_normal((K, n_features))
            self.intercept_ = np.zeros(K)
        self._adam = None
        self.loss_curve_ = []

    def _objective(self):
        loss = WassersteinLoss(self.ground_metric_, self.lam, variant=self.variant,
                               gamma_a=self.gamma_a, gamma_b=self.gamma_b, device=self.device,
                               max_iter=self.sinkhorn_max_iter, tol=self.sinkhorn_tol)
        return LinearSoftmaxObjective(loss, self.kl_weight, self.alpha,
                                      self.warm_start_scalings)

    def _report(self, it, value, start):
        self.loss_curve_.append(float(value))
        if self.verbose and it % self.verbose == 0:
            print(f"[WassersteinClassifier] iter {it:4d}  loss {value:.6f}  "
                  f"{time.perf_counter() - start:.2f}s", flush=True)

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Or a Dask array chunked by rows: the ``"lbfgs"`` solver then evaluates
            the full-batch objective chunk by chunk on the Dask workers
            (:func:`sinkhorn_nb.dask.fit_lbfgs`; ``y`` and ``sample_weight`` Dask
            arrays with the same row chunks).
        y : array_like of shape (n_samples,) or (n_samples, K)
            Class labels, or target measures (indicator matrix, histograms).
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        self._check_params()
        if hasattr(X, "__dask_graph__"):      # a Dask collection (no need to import dask)
            from .dask import fit_lbfgs
            return fit_lbfgs(self, X, y, sample_weight)
        X, T, labels, w = self._prepare(X, y, sample_weight, reset=True)
        rng = check_random_state(self.random_state)
        self._init_model(labels, X.shape[1], rng)
        self._rng = rng
        self._partial_objective = None
        objective = self._objective()
        start = time.perf_counter()
        if self.solver == "lbfgs":
            index = np.arange(X.shape[0])
            self._fit_lbfgs(lambda coef, intercept: objective.value_and_grad(
                coef, intercept, X, T, w, index), start)
        else:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                self._epoch(objective, X, T, w, rng, start)
                if self._stalled():
                    break
            else:
                warnings.warn(f"{self.solver} did not converge in max_iter={self.max_iter} "
                              "epochs", ConvergenceWarning)
        self._finish(objective)
        return self

    def _finish(self, objective, iterations_before=0, not_converged_before=0):
        self.sinkhorn_iterations_ = objective.sinkhorn_iterations - iterations_before
        not_converged = objective.not_converged - not_converged_before
        if not_converged:
            warnings.warn(f"{not_converged} Sinkhorn solves did not reach "
                          f"sinkhorn_tol={self.sinkhorn_tol} during training; consider a "
                          "larger sinkhorn_max_iter", ConvergenceWarning)

    def _fit_lbfgs(self, value_and_grad, start):
        """L-BFGS on ``value_and_grad(coef, intercept) -> (value, d_coef, d_intercept)``."""
        K, d = self.coef_.shape

        def fun(theta):
            coef, intercept = theta[:K * d].reshape(K, d), theta[K * d:]
            value, d_coef, d_int = value_and_grad(coef, intercept)
            return value, np.concatenate([d_coef.ravel(), d_int])

        def callback(intermediate_result):
            self._report(len(self.loss_curve_) + 1, intermediate_result.fun, start)

        theta0 = np.concatenate([self.coef_.ravel(), self.intercept_])
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
                       options=dict(maxiter=self.max_iter, gtol=self.tol, ftol=1e-12))
        self.coef_ = res.x[:K * d].reshape(K, d).copy()
        self.intercept_ = res.x[K * d:].copy()
        self.n_iter_ = int(res.nit)
        if res.status == 1:
            warnings.warn(f"lbfgs did not converge in max_iter={self.max_iter} iterations",
                          ConvergenceWarning)

    def _epoch(self, objective, X, T, w, rng, start):
        n = X.shape[0]
        order = rng.permutation(n)
        size = min(self.batch_size, n)
        total = 0.0
        for lo in range(0, n, size):
            idx = order[lo:lo + size]
            value, d_coef, d_int = objective.value_and_grad(self.coef_, self.intercept_,
                                                            X[idx], T[idx], w[idx], idx)
            self._step(d_coef, d_int)
            total += value * w[idx].sum()
        self.n_iter_ += 1
        self._report(self.n_iter_, total / w.sum(), start)

    def _step(self, d_coef, d_int):
        lr = self.learning_rate
        if self.solver == "sgd":
            self.coef_ -= lr * d_coef
            self.intercept_ -= lr * d_int
            return
        if self._adam is None:
            self._adam = dict(t=0, m=[np.zeros_like(self.coef_), np.zeros_like(self.intercept_)],
                              v=[np.zeros_like(self.coef_), np.zeros_like(self.intercept_)])
        state = self._adam
        state["t"] += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for k, (param, grad) in enumerate(((self.coef_, d_coef), (self.intercept_, d_int))):
            state["m"][k] = b1 * state["m"][k] + (1 - b1) * grad
            state["v"][k] = b2 * state["v"][k] + (1 - b2) * grad * grad
            m_hat = state["m"][k] / (1 - b1 ** state["t"])
            v_hat = state["v"][k] / (1 - b2 ** state["t"])
            param -= lr * m_hat / (np.sqrt(v_hat) + eps)

    def _stalled(self):
        c = self.loss_curve_
        k = self.n_iter_no_change
        return len(c) > k and min(c[-k:]) > min(c[:-k]) - self.tol

    @available_if(lambda self: self.solver in ("sgd", "adam"))
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of the minibatch solver (``"sgd"`` or ``"adam"``) on ``(X, y)``.

        ``classes`` (all labels, or for 2-D targets the number of columns is taken
        from ``y``) is required on the first call; later calls continue from the
        current model, including Adam's moments.

        Returns
        -------
        self
        """
        self._check_params()
        first = not hasattr(self, "coef_")
        if first:
            y_arr = np.asarray(y)
            if classes is None and not (y_arr.ndim == 2 and y_arr.shape[1] > 1):
                raise ValueError("classes must be given on the first call to partial_fit")
            labels = None if classes is None else np.unique(np.asarray(classes))
            X, T, labels, w = self._prepare(X, y, sample_weight, reset=True, classes=labels)
            self._init_model(labels, X.shape[1], check_random_state(self.random_state))
            self.n_iter_ = 0
            self._rng = check_random_state(self.random_state)
        else:
            X, T, _, w = self._prepare(X, y, sample_weight, reset=False, classes=self.classes_)
        if first or getattr(self, "_partial_objective", None) is None:
            self._partial_objective = self._objective()   # Gibbs kernel kept across calls
        objective = self._partial_objective
        objective.scalings.clear()   # cached scalings are keyed by row within one call
        before = objective.sinkhorn_iterations, objective.not_converged
        self._epoch(objective, X, T, w, self._rng, time.perf_counter())
        self._finish(objective, *before)
        return self

    # ------------------------------------------------------------- prediction
    def decision_function(self, X):
        """Logits :math:`Wx + b`, shape (n, K); for two 1-D classes, ``z_1 - z_0``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Z = X @ self.coef_.T + self.intercept_
        if len(self.classes_) == 2 and not self._multi_output():
            return Z[:, 1] - Z[:, 0]
        return Z

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_.T + self.intercept_

    def _multi_output(self):
        return getattr(self, "_y_2d", False)

    def predict_proba(self, X):
        """Predicted measure :math:`h(x)` over ``classes_``, shape (n, K)."""
        return softmax(self._logits(X), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably."""
        return log_softmax(self._logits(X), axis=1)

    def predict(self, X):
        """Most probable class (1-D targets), or an indicator matrix (2-D targets)."""
        P = self.predict_proba(X)
        if self._multi_output():
            out = (P >= 1.0 / P.shape[1]).astype(int)
            out[np.arange(P.shape[0]), P.argmax(axis=1)] = 1
            return out
        return self.classes_[P.argmax(axis=1)]

    def predict_top_k(self, X, k):
        """The ``k`` most probable classes per sample, most probable first, (n, k)."""
        P = self.predict_proba(X)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= P.shape[1]:
            raise ValueError(f"k must be an integer in [1, {P.shape[1]}], got {k!r}")
        return self.classes_[np.argsort(-P, axis=1, kind="stable")[:, :k]]
