"""``python -m sinkhorn_nb demo``: where the mistakes land, Wasserstein vs KL on
scikit-learn's 8x8 digits.

The paper's claim (§6.1, Fig. 4): with the ordinal ground metric
:math:`d(k, k') = |k - k'|^p` the Wasserstein loss prefers predictions near the
true label, so its mistakes land closer to the truth than those of a model
trained on KL (multinomial logistic regression).  The demo measures exactly
that on the 1,797 8x8 digits: for ``SPLITS`` random half/half splits it trains
a softmax linear model on the KL loss (logistic regression) and on the
Wasserstein loss (pure, and plus a small KL term), all with the same L2
penalty, and compares

* accuracy,
* ``|pred - true|``: the mean distance between the predicted (argmax) digit and
  the true one, over all test images (0 for a correct prediction),
* the share of the mistakes that land on a neighbouring digit (``|pred - true|
  = 1``),
* ``E_h|k - true|``: the expected distance under the predicted measure,

each as the mean over the splits and as the paired difference from KL with its
95 % Student-t interval.  The figure shows, for every model, how far its
mistakes land from the true digit, and the paired differences; its caption is
written from the measured numbers.
"""
import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .estimator import WassersteinClassifier
from .experiments.outputs import Progress, interval
from .threads import blas_on_one_thread

SPLITS = 10
ALPHA = 1e-4        # L2 strength shared by every model (the estimator's default)
KL = "KL (logistic)"
#: name -> (p of the ordinal metric, estimator parameters besides the defaults)
W_MODELS = {"W (pure), p=1": (1.0, dict(kl_weight=0.0)),
            "W + 0.1 KL, p=1": (1.0, {}),
            "W + 0.1 KL, p=2": (2.0, {})}
MEASURES = ("accuracy", "distance", "neighbour_share", "expected_distance")


def _models(n_train):
    yield KL, make_pipeline(StandardScaler(), LogisticRegression(
        C=1.0 / (ALPHA * n_train), max_iter=5000))
    for name, (p, params) in W_MODELS.items():
        yield name, make_pipeline(StandardScaler(), WassersteinClassifier(
            "ordinal", p=p, alpha=ALPHA, **params))


def scores(proba, y):
    """The four measures of predicted measures ``proba`` against labels ``y``."""
    pred = proba.argmax(axis=1)
    off = np.abs(pred - y)
    wrong = off > 0
    return dict(accuracy=float(np.mean(~wrong)), distance=float(off.mean()),
                neighbour_share=float(np.mean(off[wrong] == 1)) if wrong.any() else 0.0,
                expected_distance=float((proba * np.abs(np.arange(10) - y[:, None])).sum(1)
                                        .mean()),
                misses=np.bincount(off[wrong], minlength=10)[1:].tolist())


def run_digits(splits=SPLITS, progress=None):
    """Fit every model on every split; return ``(rows, seconds)``: one row per
    (model, split), and the wall time of the fits per model."""
    X, y = load_digits(return_X_y=True)
    rows, seconds = [], {}
    for split in range(splits):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=split,
                                                  stratify=y)
        for name, model in _models(len(y_tr)):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_tr, y_tr)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            rows.append(dict(model=name, split=split, **scores(model.predict_proba(X_te), y_te)))
        if progress is not None:
            progress.step("models fitted")
    return rows, seconds


def summarize(rows):
    """Per model: the mean of each measure over the splits, and the paired
    difference from KL (mean, 95 % interval), as ``{model: {...}}``."""
    kl = {r["split"]: r for r in rows if r["model"] == KL}
    out = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        entry = {m: float(np.mean([r[m] for r in group])) for m in MEASURES}
        entry["misses"] = np.sum([r["misses"] for r in group], axis=0).tolist()
        if name != KL:
            for m in MEASURES:
                entry[f"minus_KL_{m}"] = interval([r[m] - kl[r["split"]][m] for r in group])
        out[name] = entry
    return out


HEADER = (f"{'model':<18}{'accuracy':>9}{'|pred-true|':>13}{'neighbour':>11}"
          f"{'E_h|k-true|':>13}")
LEGEND = ("|pred-true|: mean distance from the predicted digit to the true one (0 when "
          "right);\nneighbour: share of the mistakes that land on a neighbouring digit; "
          "E_h|k-true|: expected\ndistance under the predicted probabilities.  Lower is "
          "better except for accuracy and neighbour.")


def format_rows(summary):
    """The table: means, then each W model's paired difference from KL."""
    lines = [HEADER]
    for name, s in summary.items():
        lines.append(f"{name:<18}{s['accuracy']:>9.3f}{s['distance']:>13.3f}"
                     f"{s['neighbour_share']:>11.1%}{s['expected_distance']:>13.3f}")
    lines.append("\nminus KL: mean [95 % interval] of the paired differences over the splits")
    lines.append(f"{'model':<18}{'accuracy':>26}{'|pred-true|':>26}{'E_h|k-true|':>26}")
    for name, s in summary.items():
        if name == KL:
            continue
        cells = ["{:+.3f} [{:+.3f}, {:+.3f}]".format(*s[f"minus_KL_{m}"])
                 for m in ("accuracy", "distance", "expected_distance")]
        lines.append(f"{name:<18}" + "".join(f"{c:>26}" for c in cells))
    return lines


def _verdict(entry, measure):
    """``"lower"``/``"higher"`` than KL when the interval excludes 0, else
    ``"indistinguishable from"``."""
    _, low, high = entry[f"minus_KL_{measure}"]
    return "higher than" if low > 0 else "lower than" if high < 0 else "indistinguishable from"


def caption(summary, splits):
    """The figure's caption, from the measured numbers."""
    kl = summary[KL]
    parts = [f"Over {splits} half/half splits of the 8x8 digits, same L2 for every model: "
             f"{kl['neighbour_share']:.0%} of logistic regression's (KL's) mistakes land on a "
             "neighbouring digit"]
    for name, s in summary.items():
        if name == KL:
            continue
        parts.append(f"{name}: {s['neighbour_share']:.0%}; mean |pred - true| "
                     f"{_verdict(s, 'distance')} KL's ({s['minus_KL_distance'][0]:+.3f}), "
                     f"accuracy {_verdict(s, 'accuracy')} KL's "
                     f"({s['minus_KL_accuracy'][0]:+.3f}), expected distance "
                     f"{_verdict(s, 'expected_distance')} KL's "
                     f"({s['minus_KL_expected_distance'][0]:+.3f})")
    return "; ".join(parts) + " (differences: means over the splits, 95 % intervals right)."


def plot(summary, splits, path):
    """PNG: where the mistakes land (share of the mistakes at each distance), and
    the paired differences from KL with their intervals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    names = list(summary)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        misses = np.array(summary[name]["misses"], dtype=float)
        share = misses / max(misses.sum(), 1.0)
        style = dict(color="black") if name == KL else {}
        left.bar(np.arange(1, 10) + (i - (len(names) - 1) / 2) * width, share, width,
                 label=name, **style)
    left.set(xlabel="|predicted digit - true digit| of the mistakes", xticks=range(1, 10),
             ylabel="share of the model's mistakes", title="where the mistakes land")
    left.legend(fontsize=8)
    w_names = [n for n in names if n != KL]
    for j, (measure, label) in enumerate((("distance", "|pred - true|"),
                                          ("expected_distance", "E_h|k - true|"))):
        mean = np.array([summary[n][f"minus_KL_{measure}"][0] for n in w_names])
        low = np.array([summary[n][f"minus_KL_{measure}"][1] for n in w_names])
        high = np.array([summary[n][f"minus_KL_{measure}"][2] for n in w_names])
        x = np.arange(len(w_names)) + (j - 0.5) * 0.3
        right.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="o", capsize=4,
                       label=label)
    right.axhline(0.0, color="black", linestyle="--", linewidth=1.0)
    right.set(xticks=range(len(w_names)), xticklabels=w_names,
              ylabel="model minus KL (below 0: closer to the truth)",
              title=f"paired differences from KL, 95 % intervals over {splits} splits")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle("Wasserstein loss with the ordinal metric |k - k'|^p vs KL (8x8 digits)")
    text = caption(summary, splits)
    fig.text(0.5, 0.01, text, ha="center", va="bottom", fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return text


def main(out, splits=SPLITS):
    """Print the table, then write ``digits_wasserstein.png`` to ``out``."""
    print(f"8x8 digits (scikit-learn), {splits} random half/half splits; L2 alpha={ALPHA:g} "
          "for every model;\nW models: the estimator's defaults (lam=50, logistic start) "
          "with the ordinal metric |k-k'|^p\n")
    progress = Progress(splits, "demo")
    with blas_on_one_thread():
        rows, seconds = run_digits(splits, progress)
    progress.close()
    summary = summarize(rows)
    print("\n".join(format_rows(summary)))
    print("\n" + LEGEND)
    print("\nfit time, all splits: " + ", ".join(f"{n} {s:.1f} s" for n, s in seconds.items()))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print('\nmatplotlib is not installed: no figure (pip install "sinkhorn_nb[demo]")')
    else:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "digits_wasserstein.png")
        text = plot(summary, splits, path)
        print(f"\nfigure written to {path}: {text}")
    return 0
