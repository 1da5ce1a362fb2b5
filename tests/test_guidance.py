"""Messages that say what is wrong and what to change: ``lam * max(M)`` far outside
the useful range, and non-convergence naming its levers (the iteration cap,
``lam``, the metric's scale, the start)."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sinkhorn_nb as snb
from sinkhorn_nb.validation import LAM_M_USEFUL

K = 6
M = snb.ground_metric.ordinal(K)
H = np.full(K, 1 / K)
Y = np.array([0.0, 0.5, 0.5, 0.0, 0.0, 0.0])


def _caught(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


@pytest.mark.parametrize("solve", [snb.sinkhorn, snb.sinkhorn_relaxed])
def test_an_unscaled_metric_warns_and_says_how_to_scale_it(solve):
    caught = _caught(lambda: solve(H, Y, M * 400, 20.0))
    [w] = [w for w in caught if issubclass(w.category, UserWarning)
           and "far above" in str(w.message)]
    text = str(w.message)
    assert "lam * max(M) = 7.99e+03" in text and "lam=20" in text and "max(M)=400" in text
    assert "sinkhorn_nb.ground_metric" in text and "M.max()" in text and "smaller lam" in text
    assert w.filename == __file__           # points at the caller, not the package


def test_a_tiny_lam_warns_that_the_metric_is_swamped():
    with pytest.warns(UserWarning, match=r"lam \* max\(M\) = 0\.0999 .* far below the useful "
                                         r"range .* pick a larger lam"):
        snb.sinkhorn(H, Y, M, 0.1)


@pytest.mark.parametrize("lam", [LAM_M_USEFUL[0] / M.max() * 1.01, 1.0, 50.0, 1000.0,
                                 LAM_M_USEFUL[1] / M.max() * 0.99])
def test_the_useful_range_is_quiet(lam):
    caught = _caught(lambda: (snb.sinkhorn(H, Y, M, lam, max_iter=100000),
                              snb.WassersteinLoss(M, lam)))
    assert not [w for w in caught if "useful range" in str(w.message)]


def test_the_estimator_warns_for_an_unscaled_metric_at_the_callers_line():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), snb.WassersteinClassifier(
        snb.ground_metric.ordinal(3) * 1e4))
    caught = _caught(lambda: pipe.fit(X, y))
    [w] = [w for w in caught if "far above the useful range" in str(w.message)]
    assert w.filename == __file__


def test_sinkhorn_non_convergence_names_its_levers():
    with pytest.warns(ConvergenceWarning) as record:
        snb.sinkhorn(H, Y, M, 50.0, max_iter=2)
    text = str(record[0].message)
    assert "1 of 1 rows did not reach tol" in text
    assert "raise max_iter (now 2)" in text
    assert "smaller lam" in text and "max(M) < 1" in text and "larger tol" in text
    assert record[0].filename == __file__


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _lbfgs_message(**params):
    X, y = _iris()
    with pytest.warns(ConvergenceWarning) as record:
        snb.WassersteinClassifier(max_iter=2, **params).fit(X, y)
    [w] = [w for w in record if "lbfgs did not converge" in str(w.message)]
    assert w.filename == __file__
    return str(w.message)


def test_lbfgs_non_convergence_with_defaults_says_raise_max_iter():
    text = _lbfgs_message(ground_metric="ordinal")
    assert text.endswith("raise max_iter")


def test_lbfgs_non_convergence_names_an_unscaled_metric():
    unscaled = np.abs(np.subtract.outer(np.arange(3), np.arange(3))).astype(float) * 4
    text = _lbfgs_message(ground_metric=unscaled, lam=1.0)
    assert "the ground metric is not scaled (max 8" in text and "ground_metric builders" in text


def test_lbfgs_non_convergence_names_the_start_of_pure_w():
    text = _lbfgs_message(ground_metric="ordinal", kl_weight=0.0, init="zeros")
    assert "pure W (kl_weight=0) from init='zeros'" in text and "init='logistic'" in text
    assert "pure W" not in _lbfgs_message(ground_metric="ordinal", kl_weight=0.0)


def test_minibatch_non_convergence_names_its_levers():
    X, y = _iris()
    with pytest.warns(ConvergenceWarning, match=r"adam did not converge in max_iter=1 epochs; "
                                                r"raise max_iter"):
        snb.WassersteinClassifier("ordinal", solver="adam", max_iter=1,
                                  random_state=0).fit(X, y)


def test_sinkhorn_solves_in_training_name_their_levers():
    X, _ = _iris()
    rng = np.random.default_rng(0)
    targets = rng.dirichlet(np.ones(3), size=len(X))         # soft targets iterate
    with pytest.warns(ConvergenceWarning) as record:
        snb.WassersteinClassifier("ordinal", sinkhorn_max_iter=1, max_iter=3).fit(X, targets)
    [text] = [str(w.message) for w in record if "Sinkhorn solves" in str(w.message)]
    assert "raise sinkhorn_max_iter (now 1)" in text
    assert "lam * max(M) = 50" in text and "smaller lam" in text
