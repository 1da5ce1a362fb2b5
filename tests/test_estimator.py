"""WassersteinClassifier: scikit-learn compatibility, targets, solvers, gradients."""
import copy
import pickle
import warnings

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import sinkhorn_nb as snb
from sinkhorn_nb import estimator as estimator_module
from sinkhorn_nb._objective import LinearSoftmaxObjective, Targets


# the checks make short fits on purpose: their ConvergenceWarnings are expected
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([
    snb.WassersteinClassifier(max_iter=100),
    snb.WassersteinClassifier(solver="adam", max_iter=30, learning_rate=0.05),
    snb.WassersteinClassifier("ordinal", variant="relaxed", kl_weight=0.1, max_iter=50),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _objective_check(variant, T, Z_scale):
    rng = np.random.default_rng(0)
    n, d, K = T.shape[0], 4, T.shape[1]
    X = rng.normal(size=(n, d))
    coef = rng.normal(size=(K, d)) * Z_scale
    intercept = rng.normal(size=K)
    loss = snb.WassersteinLoss(snb.ground_metric.ordinal(K), 10.0, variant=variant,
                               max_iter=100000, tol=1e-13)
    obj = LinearSoftmaxObjective(loss, kl_weight=0.3, alpha=0.01, warm_start_scalings=False)
    w = rng.uniform(0.5, 2.0, n)
    T = Targets.from_measures(T)
    value, d_coef, d_int = obj.value_and_grad(coef, intercept, X, T, w)
    eps = 1e-6
    for _ in range(4):
        dc, di = rng.normal(size=coef.shape), rng.normal(size=K)
        plus = obj.value_and_grad(coef + eps * dc, intercept + eps * di, X, T, w)[0]
        minus = obj.value_and_grad(coef - eps * dc, intercept - eps * di, X, T, w)[0]
        fd = (plus - minus) / (2 * eps)
        analytic = np.sum(d_coef * dc) + d_int @ di
        assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(fd)), (fd, analytic)
    return softmax(X @ coef.T + intercept, axis=1)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
@pytest.mark.parametrize("kind", ["onehot", "histogram"])
def test_objective_gradient_matches_finite_differences(variant, kind):
    rng = np.random.default_rng(1)
    K = 5
    T = np.eye(K)[rng.integers(0, K, 6)] if kind == "onehot" else rng.dirichlet(np.ones(K), 6)
    h = _objective_check(variant, T, Z_scale=1.0)      # asserts the FD agreement
    assert np.all(h > 0)


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_objective_gradient_with_underflowing_softmax(variant):
    """Logits ~ +-300: some softmax outputs are exactly 0 and must contribute 0."""
    K = 5
    T = np.eye(K)[[0, 1, 2, 3, 4, 0]]
    h = _objective_check(variant, T, Z_scale=150.0)
    assert np.any(h == 0.0)


def test_pipeline_gridsearch_pickle(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), snb.WassersteinClassifier("ordinal", max_iter=100))
    grid = GridSearchCV(pipe, {"wassersteinclassifier__lam": [5.0, 20.0],
                               "wassersteinclassifier__kl_weight": [0.0, 0.1]}, cv=2)
    with pytest.warns(ConvergenceWarning):
        grid.fit(X, y)
    assert grid.best_score_ > 0.8, grid.cv_results_["mean_test_score"]
    clone = pickle.loads(pickle.dumps(grid.best_estimator_))
    np.testing.assert_array_equal(clone.predict(X), grid.best_estimator_.predict(X))


def test_large_kl_weight_agrees_with_logistic_regression(digits):
    X, y = digits
    alpha = 1e-2
    clf = snb.WassersteinClassifier(kl_weight=1e4, alpha=alpha * 1e4, max_iter=500, tol=1e-8)
    clf.fit(X, y)
    ref = LogisticRegression(C=1.0 / (alpha * len(y)), max_iter=5000, tol=1e-10).fit(X, y)
    agreement = np.mean(clf.predict(X) == ref.predict(X))
    assert agreement >= 0.99, agreement
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=0.02)


def test_deterministic_and_warm_start(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="adam did not converge in max_iter=5 epochs"):
        a = snb.WassersteinClassifier(solver="adam", max_iter=5, random_state=3).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        b = snb.WassersteinClassifier(solver="adam", max_iter=5, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.n_iter_ == 5 and len(a.loss_curve_) == 5
    with pytest.warns(ConvergenceWarning, match="lbfgs did not converge in max_iter=5 "):
        c = snb.WassersteinClassifier(max_iter=5, warm_start=True).fit(X, y)
    first = c.loss_curve_[-1]
    with pytest.warns(ConvergenceWarning):
        c.fit(X, y)
    assert c.loss_curve_[0] <= first + 1e-12


def test_multilabel_and_histogram_targets():
    rng = np.random.default_rng(5)
    n, d, K = 300, 6, 5
    X = rng.normal(size=(n, d))
    centers = X[:, :K]
    Y = (centers > 0.6).astype(int)
    Y[np.arange(n), centers.argmax(axis=1)] = 1
    M = snb.ground_metric.ordinal(K)
    for variant in ("balanced", "relaxed"):
        clf = snb.WassersteinClassifier(M, variant=variant, lam=10.0, max_iter=100).fit(X, Y)
        np.testing.assert_array_equal(clf.classes_, np.arange(K))
        pred = clf.predict(X)
        assert pred.shape == (n, K) and set(np.unique(pred)) <= {0, 1}
        top = clf.predict_top_k(X, 2)
        assert top.shape == (n, 2)
        hit = np.mean(Y[np.arange(n), top[:, 0]])
        assert hit > 0.7, (variant, hit)
    H = softmax(centers * 2.0, axis=1)               # soft labels
    clf = snb.WassersteinClassifier(M, lam=10.0, max_iter=200).fit(X, H)
    P = clf.predict_proba(X)
    assert np.mean(np.abs(P - H).sum(axis=1)) < 0.5


def test_empty_target_rows_are_dropped_in_balanced_only():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 3))
    Y = (rng.random((40, 4)) < 0.4).astype(int)
    Y[:5] = 0
    Y[5:, 0] |= ~Y[5:].any(axis=1)
    with pytest.warns(ConvergenceWarning):
        a = snb.WassersteinClassifier(max_iter=20, random_state=0).fit(X, Y)
    with pytest.warns(ConvergenceWarning):
        b = snb.WassersteinClassifier(max_iter=20, random_state=0).fit(X[5:], Y[5:])
    np.testing.assert_allclose(a.coef_, b.coef_)


def test_sample_weight_equals_repetition(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    w = np.ones(len(y))
    w[:50] = 2
    params = dict(ground_metric="ordinal", kl_weight=0.1, alpha=1e-2, max_iter=500, tol=1e-10)
    a = snb.WassersteinClassifier(**params).fit(X, y, sample_weight=w)
    b = snb.WassersteinClassifier(**params).fit(np.vstack([X, X[:50]]),
                                                np.concatenate([y, y[:50]]))
    # the same objective (weights normalized by their sum): same optimum
    np.testing.assert_allclose(a.loss_curve_[-1], b.loss_curve_[-1], rtol=1e-7)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-3)


def test_partial_fit(digits):
    X, y = digits
    clf = snb.WassersteinClassifier("ordinal", solver="adam", learning_rate=0.05,
                                    random_state=0)
    with pytest.raises(ValueError, match="classes must be given"):
        clf.partial_fit(X[:100], y[:100])
    for epoch in range(30):
        for lo in range(0, len(y), 200):
            clf.partial_fit(X[lo:lo + 200], y[lo:lo + 200], classes=np.arange(10))
    assert clf.n_iter_ == 90 and clf.score(X, y) > 0.85
    assert not hasattr(snb.WassersteinClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="labels not in classes"):
        clf.partial_fit(X[:5], np.array([0, 1, 2, 3, 11]))


def test_ground_metric_options(digits):
    X, y = digits
    y = y + 10                                    # labels 10..19
    classes = np.arange(10, 20)
    with pytest.warns(ConvergenceWarning):
        by_callable = snb.WassersteinClassifier(lambda c: snb.ground_metric.ordinal(len(c)),
                                                max_iter=3).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        by_name = snb.WassersteinClassifier("ordinal", max_iter=3).fit(X, y)
    np.testing.assert_array_equal(by_callable.ground_metric_, by_name.ground_metric_)
    np.testing.assert_array_equal(by_name.classes_, classes)
    with pytest.raises(ValueError, match="ground_metric has shape"):
        snb.WassersteinClassifier(np.zeros((3, 3)), max_iter=3).fit(X, y)
    with pytest.raises(ValueError, match="'ground_metric' parameter .* must be"):
        snb.WassersteinClassifier("cosine").fit(X, y)
    with pytest.raises(ValueError, match=r"'lam' parameter .* must be a float in the range "
                                         r"\(0.0, inf\)"):
        snb.WassersteinClassifier(lam=0.0).fit(X, y)
    with pytest.raises(ValueError, match="'solver' parameter .* must be a str among"):
        snb.WassersteinClassifier(solver="newton").fit(X, y)


def test_verbose_reports_progress(digits, capsys):
    X, y = digits
    with pytest.warns(ConvergenceWarning):
        snb.WassersteinClassifier(max_iter=3, verbose=1).fit(X, y)
    start, *lines = capsys.readouterr().out.splitlines()
    assert start.startswith("[WassersteinClassifier] logistic start: 3 L-BFGS iterations")
    assert len(lines) == 3 and lines[0].startswith("[WassersteinClassifier] iter    1")
    for line in lines:
        assert "objective" in line and "|grad|" in line and "sinkhorn iterations" in line
        assert line.endswith("s")


def test_warm_started_scalings_save_sinkhorn_iterations():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 5))
    H = softmax(X[:, :4] * 2.0, axis=1)
    runs = {}
    for flag in (False, True):
        clf = snb.WassersteinClassifier("ordinal", lam=10.0, max_iter=30, warm_start_scalings=flag,
                                        sinkhorn_tol=1e-9, sinkhorn_max_iter=20000,
                                        random_state=0)
        clf.fit(X, H)
        runs[flag] = clf
    assert runs[True].sinkhorn_iterations_ < runs[False].sinkhorn_iterations_
    # same optimization problem: the path differs only by solver round-off
    np.testing.assert_allclose(runs[True].loss_curve_[-1], runs[False].loss_curve_[-1],
                               rtol=1e-6)
    np.testing.assert_allclose(runs[True].predict_proba(X), runs[False].predict_proba(X),
                               atol=1e-3)


def test_kl_only_baseline_is_logistic_regression(digits):
    """wasserstein_weight=0: the same model trained on KL alone, which for class
    labels is multinomial logistic regression with the same L2 penalty."""
    X, y = digits
    alpha = 1e-2
    clf = snb.WassersteinClassifier(wasserstein_weight=0.0, kl_weight=1.0, alpha=alpha,
                                    max_iter=500, tol=1e-8).fit(X, y)
    assert clf.sinkhorn_iterations_ == 0
    ref = LogisticRegression(C=1.0 / (alpha * len(y)), max_iter=5000, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=2e-3)
    with pytest.raises(ValueError, match="wasserstein_weight and kl_weight are both 0"):
        snb.WassersteinClassifier(wasserstein_weight=0.0, kl_weight=0.0).fit(X, y)


# ------------------------------------------------- a failed fit changes nothing
def _fitted_state(clf):
    """Every attribute that fitting sets (public ``*_`` and private), pickled, so
    that an in-place change shows; the shared loss engine by identity only (its
    scalings are forgotten at each call and its counters read as differences)."""
    params = clf.get_params(deep=False)
    return {name: value if name == "_partial_objective" else pickle.dumps(value)
            for name, value in vars(clf).items() if name not in params}


def _assert_unchanged(clf, before, X):
    after = _fitted_state(clf)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if name == "_partial_objective":
            assert after[name] is value
        else:
            assert after[name] == value, name
    if "coef_" in before:                                   # and it still predicts
        assert clf.predict(X).shape == (len(X),)


def _small_problem(seed=0, n=60, d=3, K=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, K, n)


def _three_classes_only(classes):
    if len(classes) != 3:
        raise ValueError("this metric knows three classes")
    return snb.ground_metric.ordinal(3)


@pytest.mark.parametrize("case", ["metric shape", "metric callable raises",
                                  "bad sample_weight after new features"])
@pytest.mark.parametrize("fitted", [True, False])
def test_failed_fit_leaves_the_estimator_as_it_was(case, fitted):
    """Before the fix, classes_ (and n_features_in_) changed while coef_ and
    predict stayed those of the old model."""
    X, y = _small_problem()
    metric = _three_classes_only if case == "metric callable raises" else \
        snb.ground_metric.ordinal(3)
    clf = snb.WassersteinClassifier(metric, max_iter=50, random_state=0)
    if fitted:
        clf.fit(X, y)
        proba = clf.predict_proba(X)
    before = _fitted_state(clf)
    if case == "bad sample_weight after new features":
        X_new, y_new, weights = np.hstack([X, X]), y, -np.ones(len(y))
    else:
        X_new, y_new, weights = X, y % 2, None              # two classes now
    with pytest.raises(ValueError):
        clf.fit(X_new, y_new, sample_weight=weights)
    _assert_unchanged(clf, before, X if fitted else None)
    if fitted:
        np.testing.assert_array_equal(clf.predict_proba(X), proba)
    else:
        assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")


def test_failed_first_partial_fit_leaves_the_estimator_unfitted():
    X, y = _small_problem()
    clf = snb.WassersteinClassifier(np.ones((3, 3)) - np.eye(3), solver="sgd")
    with pytest.raises(ValueError, match="ground_metric has shape"):
        clf.partial_fit(X, y % 2, classes=[0, 1])
    assert _fitted_state(clf) == {}
    clf.partial_fit(X, y, classes=[0, 1, 2])              # a good first call still works
    assert clf.n_iter_ == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("where", ["objective", "callback"])
def test_interrupted_lbfgs_refit_keeps_the_previous_fit(where, monkeypatch):
    """Ctrl-C in the middle of an L-BFGS refit: the previous fit stays, whole, and
    KeyboardInterrupt propagates (documented in ``fit``).  Before the fix, coef_
    was left at the random start of the new fit, with the old n_iter_."""
    X, y = _small_problem(1)
    clf = snb.WassersteinClassifier("ordinal", max_iter=40, tol=1e-10, random_state=0,
                                    verbose=1 if where == "callback" else 0)
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    before = _fitted_state(clf)
    calls = []

    def interrupt_third_call(original):
        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return original(*args, **kwargs)
        return wrapper

    if where == "objective":
        monkeypatch.setattr(LinearSoftmaxObjective, "value_and_grad",
                            interrupt_third_call(LinearSoftmaxObjective.value_and_grad))
    else:                                   # the progress line of the third iteration
        monkeypatch.setattr(estimator_module, "print", interrupt_third_call(print),
                            raising=False)
    with pytest.raises(KeyboardInterrupt):
        clf.set_params(random_state=1).fit(X[:40], y[:40])
    assert len(calls) == 3
    _assert_unchanged(clf, before, X)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    monkeypatch.undo()
    again = clf.fit(X[:40], y[:40])                 # the estimator is usable as before
    fresh = snb.WassersteinClassifier("ordinal", max_iter=40, tol=1e-10, random_state=1,
                                      verbose=clf.verbose).fit(X[:40], y[:40])
    np.testing.assert_array_equal(again.coef_, fresh.coef_)
    assert again.n_iter_ == fresh.n_iter_


def test_interrupted_partial_fit_keeps_the_model(monkeypatch):
    """An exception in the middle of a partial_fit epoch (after some minibatch
    steps) leaves coef_, Adam's moments and the random state as they were."""
    X, y = _small_problem(2)
    clf = snb.WassersteinClassifier("ordinal", solver="adam", batch_size=10, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    before = _fitted_state(clf)
    original = LinearSoftmaxObjective.value_and_grad
    calls = []

    def value_and_grad(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(LinearSoftmaxObjective, "value_and_grad", value_and_grad)
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, y)
    _assert_unchanged(clf, before, X)
    monkeypatch.undo()
    twin = snb.WassersteinClassifier("ordinal", solver="adam", batch_size=10, random_state=0)
    twin.partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.partial_fit(X, y).coef_, twin.partial_fit(X, y).coef_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_scalar_sample_weight_is_broadcast(solver):
    """A scalar weighs every sample alike, as in scikit-learn (refused before)."""
    X, y = _small_problem(3)
    params = dict(ground_metric="ordinal", solver=solver, max_iter=15, random_state=0)
    scalar = snb.WassersteinClassifier(**params).fit(X, y, sample_weight=2.5)
    array = snb.WassersteinClassifier(**params).fit(X, y, sample_weight=np.full(60, 2.5))
    np.testing.assert_array_equal(scalar.coef_, array.coef_)
    if solver == "adam":
        clf = snb.WassersteinClassifier(**params).partial_fit(X, y, classes=[0, 1, 2],
                                                              sample_weight=3)
        assert clf.n_iter_ == 1
    for bad, error in [(0.0, "zero"), (-1.0, "negative|Negative"), (np.nan, "NaN")]:
        with pytest.raises(ValueError, match=error):
            snb.WassersteinClassifier(**params).fit(X, y, sample_weight=bad)


def test_partial_fit_refuses_other_classes():
    """Like SGDClassifier: later calls must pass the classes of the first (or
    None).  Before the fix a different ``classes`` was silently ignored."""
    X, y = _small_problem(4)
    clf = snb.WassersteinClassifier(solver="sgd", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.partial_fit(X, y, classes=np.array([2, 0, 1]))        # the same set of labels
    clf.partial_fit(X, y)
    before = _fitted_state(clf)
    for other in ([0, 1, 2, 3], [0, 1], ["a", "b", "c"]):
        with pytest.raises(ValueError, match="differs from classes_=.*call fit to start"):
            clf.partial_fit(X, y, classes=other)
    _assert_unchanged(clf, before, X)
    assert clf.n_iter_ == 3


@pytest.mark.parametrize("classes", [[0.0, 1.0, 2.0, np.nan],
                                     np.array(["a", "b", np.nan], dtype=object),
                                     [0.0, 1.0, np.inf]])
def test_partial_fit_rejects_nan_classes(classes):
    """NaN is not a class label (it was kept as one before the fix)."""
    X, y = _small_problem(5)
    clf = snb.WassersteinClassifier(solver="sgd")
    with pytest.raises(ValueError, match="classes contains NaN or an infinite value"):
        clf.partial_fit(X, y, classes=classes)
    assert _fitted_state(clf) == {}


def test_partial_fit_follows_set_params_between_calls():
    """A parameter changed by set_params after a partial_fit takes effect at the
    next call (the metric and the loss engine are rebuilt and validated)."""
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    first = snb.WassersteinClassifier("ordinal", solver="sgd", random_state=0)
    first.partial_fit(X, y, classes=[0, 1, 2])
    same, changed = copy.deepcopy(first), copy.deepcopy(first)
    same.partial_fit(X, y)
    changed.set_params(lam=2.0).partial_fit(X, y)
    assert changed.loss_curve_[-1] != same.loss_curve_[-1]
    np.testing.assert_array_equal(changed.ground_metric_, same.ground_metric_)
    bad = copy.deepcopy(first).set_params(ground_metric=np.full((3, 3), np.nan))
    before = bad.coef_.copy()
    with pytest.raises(ValueError, match="NaN"):
        bad.partial_fit(X, y)
    np.testing.assert_array_equal(bad.coef_, before)


def test_partial_fit_on_a_full_batch_solver_says_which_solvers_have_it():
    clf = snb.WassersteinClassifier()
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError) as info:
        clf.partial_fit
    assert "solver='sgd' or solver='adam'" in str(info.value.__cause__)


# ------------------------------------------------------------ starts and defaults
def _iris_centroid_problem():
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    centroids = np.array([X[y == c].mean(axis=0) for c in range(3)])
    return X, y, snb.ground_metric.from_points(centroids)


def test_logistic_start_lets_pure_w_find_a_good_model():
    """Pure W through a softmax is not convex: from zeros L-BFGS stops in a model
    that confuses whole classes on iris; from the logistic start it does not."""
    X, y, M = _iris_centroid_problem()
    scores = {}
    for init in ("logistic", "zeros"):
        clf = snb.WassersteinClassifier(M, kl_weight=0.0, init=init).fit(X, y)
        scores[init] = clf.score(X, y)
        assert (clf.init_n_iter_ > 0) == (init == "logistic")
    assert scores["logistic"] > 0.9
    assert scores["zeros"] < 0.8


def test_default_lbfgs_fit_is_deterministic_without_random_state():
    X, y, M = _iris_centroid_problem()
    a = snb.WassersteinClassifier(M).fit(X, y)
    b = snb.WassersteinClassifier(M).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)


def test_random_start_follows_random_state():
    X, y, M = _iris_centroid_problem()
    fit = lambda seed: snb.WassersteinClassifier(M, init="random", max_iter=3,  # noqa: E731
                                                 random_state=seed).fit(X, y).coef_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(fit(0), fit(0))
        assert not np.array_equal(fit(0), fit(1))


def test_logistic_start_is_the_kl_only_model(monkeypatch):
    """The start is the KL-only fit from zeros (the same L-BFGS, at most max_iter
    iterations), and the main fit continues from it."""
    import sinkhorn_nb.estimator as estimator
    X, y, M = _iris_centroid_problem()
    results = []

    def recording(*args, **kwargs):
        results.append(estimator_minimize(*args, **kwargs))
        return results[-1]
    estimator_minimize = estimator.minimize_lbfgs
    monkeypatch.setattr(estimator, "minimize_lbfgs", recording)
    started = snb.WassersteinClassifier(M, max_iter=300).fit(X, y)
    start_coef, _, start_iterations, _ = results[0]
    assert len(results) == 2 and start_iterations == started.init_n_iter_ > 0
    kl_only = snb.WassersteinClassifier(M, wasserstein_weight=0.0, kl_weight=1.0,
                                        init="zeros", max_iter=300).fit(X, y)
    np.testing.assert_allclose(start_coef, kl_only.coef_, rtol=1e-6, atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        capped = snb.WassersteinClassifier(M, max_iter=3).fit(X, y)
    assert 0 < capped.init_n_iter_ <= 3


def test_warm_start_skips_the_logistic_start():
    X, y, M = _iris_centroid_problem()
    clf = snb.WassersteinClassifier(M, warm_start=True).fit(X, y)
    assert clf.init_n_iter_ > 0
    coef = clf.coef_.copy()
    clf.fit(X, y)
    assert clf.init_n_iter_ == 0
    np.testing.assert_allclose(clf.coef_, coef, atol=1e-3)


def test_first_partial_fit_takes_the_logistic_start():
    X, y, M = _iris_centroid_problem()
    clf = snb.WassersteinClassifier(M, solver="adam", random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))
    assert clf.init_n_iter_ > 0
    first = clf.init_n_iter_
    clf.partial_fit(X, y)
    assert clf.init_n_iter_ == first            # later calls continue, no new start
    assert clf.score(X, y) > 0.9


def test_init_is_validated():
    X, y, M = _iris_centroid_problem()
    with pytest.raises(ValueError, match="'init' parameter"):
        snb.WassersteinClassifier(M, init="kmeans").fit(X, y)


def test_fit_runs_blas_on_one_thread():
    """BLAS and Numba's pool would compete for the cores: fit limits BLAS to one
    thread (the callable metric runs inside fit and records the limit)."""
    from threadpoolctl import threadpool_info
    X, y, M = _iris_centroid_problem()
    seen = []

    def metric(classes):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return M
    snb.WassersteinClassifier(metric).fit(X, y)
    assert seen and set(seen) == {1}
    snb.WassersteinClassifier(metric, solver="sgd").partial_fit(X, y, classes=[0, 1, 2])
    assert set(seen) == {1}
