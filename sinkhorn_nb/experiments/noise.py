"""Fig. 2: label noise toward nearby classes, Wasserstein against KL.

The paper's appendix with the exact setup is not available; this is our design
from its description ("classes identified with points in the plane, training
labels randomly switched to nearby classes").  Every choice:

* **Classes**: K points ``c_k`` drawn uniformly in the unit square (seeded); the
  ground metric is their Euclidean distance (``ground_metric.from_points``,
  scaled to max 0.999).
* **Samples**: true class ``k`` uniform; observed position ``c_k + N(0, s^2 I)``
  with ``s = 0.5 / sqrt(K)`` (about half the typical spacing between classes);
  features are Gaussian RBF responses to all K class points (width ``s``), so a
  linear softmax model can express the Bayes-like rule.
* **Noise**: with probability ``noise`` a training label is switched to one of
  the 3 nearest *other* classes, uniformly.  Test labels are clean.
* **Models**, same L2 strength ``alpha = 1e-5``: the KL baseline is multinomial
  logistic regression (``LogisticRegression(C = 1 / (alpha n))``); the
  Wasserstein models are :class:`~sinkhorn_nb.WassersteinClassifier` with the
  balanced loss, ``lam = 50``, L-BFGS from small random weights
  (``init="random"``), once with a small KL term
  (``kl_weight = 0.05``, the paper's ``W + a KL``) and once pure (the paper's
  loss, ``kl_weight = 0``).
* **Measures** on the clean test set: the mean ground distance between the
  predicted class (argmax) and the true class (the paper's "distance between
  prediction and ground truth"), the expected distance under the predicted
  measure, and the accuracy.
* **Averaging, as in the paper**: the curve against K averages over every noise
  level, the curve against the noise level over every K (per seed first); each
  point is the mean over seeds, and the comparison with KL is the paired
  difference (same seed, same cells) with its 95 % Student-t interval.
* **Pure W, warm-started**: to separate the loss from its optimization, pure W
  is also trained starting from the ``W + 0.05 KL`` solution, for ``lam`` in
  (50, 200, 1000), on every K and noise level.
"""
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ..estimator import WassersteinClassifier
from ..ground_metric import from_points
from .outputs import Progress, interval, path, pyplot, write_csv, write_json

ALPHA = 1e-5
LAM = 50.0
MIXED = "W + 0.05 KL"
#: every model of the protocol starts from small random weights, seeded
INIT = "random"
PURE = "W (pure)"
WARM_LAMS = (50.0, 200.0, 1000.0)
METRICS = ("distance", "expected_distance", "accuracy")
SETTINGS = {
    True: dict(classes=(8, 16, 32), noises=(0.0, 0.3, 0.6, 0.9), n_train=400, n_test=1000,
               seeds=(0, 1), max_iter=300, warm_lams=(50.0, 1000.0)),
    False: dict(classes=(8, 16, 32, 64, 100), noises=tuple(np.round(np.arange(0, 1.0, 0.1), 1)),
                n_train=2000, n_test=2000, seeds=(0, 1, 2, 3, 4), max_iter=500,
                warm_lams=WARM_LAMS),
}


def make_problem(K, noise, n_train, n_test, seed):
    """Features, noisy training labels, clean test labels, the metric."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(size=(K, 2))
    M = from_points(centers)
    spread = 0.5 / np.sqrt(K)
    nearest = np.argsort(M + np.diag(np.full(K, np.inf)), axis=1)[:, :3]

    def sample(n):
        labels = rng.integers(K, size=n)
        points = centers[labels] + spread * rng.normal(size=(n, 2))
        sq = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-sq / (2 * spread ** 2)), labels

    X_train, y_clean = sample(n_train)
    switch = rng.uniform(size=n_train) < noise
    y_train = y_clean.copy()
    y_train[switch] = nearest[y_clean[switch], rng.integers(3, size=switch.sum())]
    X_test, y_test = sample(n_test)
    return X_train, y_train, X_test, y_test, M


def evaluate(model, X_test, y_test, M):
    proba = np.zeros((len(y_test), M.shape[0]))
    proba[:, model.classes_] = model.predict_proba(X_test)   # a class may be unseen
    pred = proba.argmax(axis=1)
    return dict(distance=float(M[pred, y_test].mean()),
                expected_distance=float((proba * M[:, y_test].T).sum(axis=1).mean()),
                accuracy=float(np.mean(pred == y_test)))


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def one_run(K, noise, cfg, seed):
    """Every model on one problem: KL, W + 0.05 KL, pure W (cold), and pure W
    warm-started from W + 0.05 KL for each ``lam`` of ``cfg["warm_lams"]``."""
    X_tr, y_tr, X_te, y_te, M = make_problem(K, noise, cfg["n_train"], cfg["n_test"], seed)
    key = dict(K=K, noise=noise, seed=seed)
    kl = _fit(LogisticRegression(C=1.0 / (ALPHA * len(y_tr)), max_iter=2000), X_tr, y_tr)
    rows = [dict(key, model="KL", **evaluate(kl, X_te, y_te, M))]
    classes = np.unique(y_tr)
    base = WassersteinClassifier(M[np.ix_(classes, classes)], lam=LAM, alpha=ALPHA,
                                 max_iter=cfg["max_iter"], init=INIT, random_state=seed)
    mixed = _fit(clone(base).set_params(kl_weight=0.05), X_tr, y_tr)
    rows.append(dict(key, model=MIXED, **evaluate(mixed, X_te, y_te, M)))
    pure = _fit(clone(base).set_params(kl_weight=0.0), X_tr, y_tr)
    rows.append(dict(key, model=PURE, **evaluate(pure, X_te, y_te, M)))
    for lam in cfg["warm_lams"]:
        warm = clone(base).set_params(kl_weight=0.0, lam=lam, warm_start=True)
        warm.coef_, warm.intercept_ = mixed.coef_.copy(), mixed.intercept_.copy()
        _fit(warm, X_tr, y_tr)
        rows.append(dict(key, model=warm_name(lam), **evaluate(warm, X_te, y_te, M)))
    return rows


def warm_name(lam):
    """The name of pure W at ``lam`` warm-started from the ``W + 0.05 KL`` model."""
    return f"W (pure, lam={lam:g}, from W + KL)"


def summarize(rows, axis):
    """Per model and value of ``axis``: mean and 95 % interval over seeds of each
    measure averaged over the other axis (the paper's averaging), and of its
    paired difference from KL (the same seeds and cells)."""
    per_seed = {}
    for r in rows:
        per_seed.setdefault((r[axis], r["seed"]), {}).setdefault(r["model"], []).append(r)
    table = {}
    for (value, seed), models in per_seed.items():
        kl = {m: np.mean([g[m] for g in models["KL"]]) for m in METRICS}
        for model, group in models.items():
            means = {m: np.mean([g[m] for g in group]) for m in METRICS}
            table.setdefault((model, value), []).append(
                dict(means, **{f"minus_KL_{m}": means[m] - kl[m] for m in METRICS}))
    out = []
    for (model, value), seeds in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        row = dict(model=model, **{axis: value}, seeds=len(seeds))
        for m in METRICS + tuple(f"minus_KL_{m}" for m in METRICS):
            mean, low, high = interval([s[m] for s in seeds])
            row.update({m: mean, f"{m}_low": low, f"{m}_high": high})
        out.append(row)
    return out


def paired_wins(rows, model, baseline="KL", metric="distance"):
    """Cells (K, noise, seed) where ``model`` has a lower ``metric`` than the
    baseline, out of all cells."""
    cells = {}
    for r in rows:
        cells.setdefault((r["K"], r["noise"], r["seed"]), {})[r["model"]] = r[metric]
    wins = sum(c[model] < c[baseline] for c in cells.values())
    return wins, len(cells)


def run(quick=False, out=".", settings=None, verbose=True):
    """Every (K, noise, seed) cell; write ``noise.csv`` (every run),
    ``noise_summary.json`` (the averaged curves with intervals) and ``noise.png``."""
    cfg = dict(SETTINGS[bool(quick)], **(settings or {}))   # settings: sizes, for tests
    start = time.perf_counter()
    cells = [(K, noise, seed) for K in cfg["classes"] for noise in cfg["noises"]
             for seed in cfg["seeds"]]
    progress = Progress(len(cells), "noise", enabled=verbose)
    warm = [warm_name(lam) for lam in cfg["warm_lams"]]
    progress.print("distance from the argmax class to the true class (lower is better); "
                   "W, lam=L from W + KL: pure W warm-started from the W + 0.05 KL model")
    progress.print(f"{'K':>4}{'noise':>7}{'seed':>6}{'KL':>8}{MIXED:>13}{PURE:>10}"
                   + "".join(f"{f'W, lam={lam:g} from W + KL':>25}" for lam in cfg["warm_lams"]))
    rows = []
    for K, noise, seed in cells:
        cell = one_run(K, noise, cfg, seed)
        rows += cell
        d = {r["model"]: r["distance"] for r in cell}
        progress.print(f"{K:>4}{noise:>7.1f}{seed:>6}{d['KL']:>8.3f}{d[MIXED]:>13.3f}"
                       f"{d[PURE]:>10.3f}" + "".join(f"{d[name]:>25.3f}" for name in warm))
        progress.step(f"K={K} noise={noise:g}")
    progress.close()
    write_csv(out, "noise.csv", rows)
    by_k = summarize(rows, "K")
    by_noise = summarize(rows, "noise")
    models = sorted({r["model"] for r in rows} - {"KL"})
    wins = {metric: {model: paired_wins(rows, model, metric=metric) for model in models}
            for metric in ("distance", "expected_distance")}
    summary = dict(settings=cfg, by_classes=by_k, by_noise=by_noise, cells_beating_kl=wins,
                   seconds=time.perf_counter() - start)
    write_json(out, "noise_summary.json", summary)
    plot(by_k, by_noise, cfg, out)
    return summary


def plot(by_k, by_noise, cfg, out):
    """``noise.png``: the mean distance to the truth against K (averaged over the
    noise levels) and against the noise level (averaged over K), then the paired
    differences from KL of the distance and of the expected distance, with 95 %
    intervals over the seeds."""
    plt = pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(10, 10), sharex="col")
    styles = {"KL": dict(color="black", linestyle="--", marker="o"),
              MIXED: dict(color="tab:blue", marker="o"),
              PURE: dict(color="tab:red", linestyle=":", marker="s"),
              warm_name(min(cfg["warm_lams"])):
                  dict(color="tab:green", linestyle="-.", marker="^")}
    panels = (("distance", "mean distance, argmax to truth"),
              ("minus_KL_distance", "distance minus KL's (below 0: better)"),
              ("minus_KL_expected_distance", "expected distance minus KL's"))
    for col, (table, key, label) in enumerate(((by_k, "K", "number of classes K"),
                                               (by_noise, "noise", "noise level"))):
        for row, (metric, ylabel) in enumerate(panels):
            ax = axes[row, col]
            for model, style in styles.items():
                pts = sorted((r[key], r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
                             for r in table if r["model"] == model)
                if not pts or (row > 0 and model == "KL"):
                    continue
                x, mean, low, high = map(np.array, zip(*pts))
                ax.plot(x, mean, label=model, **style)
                if row > 0:
                    ax.fill_between(x, low, high, color=style["color"], alpha=0.15)
            if row > 0:
                ax.axhline(0.0, color="black", linestyle="--", linewidth=1.0)
            ax.set_ylabel(ylabel if col == 0 else "")
            ax.grid(alpha=0.3)
        axes[-1, col].set_xlabel(label)
        axes[0, col].set_title("averaged over the noise levels" if key == "K"
                               else "averaged over K")
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(f"Label noise toward nearby classes, lam = {LAM:g}: means over "
                 f"{len(cfg['seeds'])} seeds, bands 95 % intervals of the paired differences")
    fig.tight_layout()
    fig.savefig(path(out, "noise.png"), dpi=110)
    plt.close(fig)
