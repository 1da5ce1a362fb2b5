"""Writing an experiment's numbers (CSV, JSON) and figures (PNG), reporting
progress, and the confidence intervals the experiments quote."""
import csv
import json
import os
import sys
import time

import numpy as np


def path(out, filename):
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, filename)


def write_csv(out, filename, rows):
    """``rows``: a list of dicts with the same keys."""
    with open(path(out, filename), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(out, filename, obj):
    with open(path(out, filename), "w") as f:
        json.dump(obj, f, indent=1, default=float)


def pyplot():
    """matplotlib's pyplot on the Agg backend, with an install hint if missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError('the experiments need matplotlib: pip install '
                          '"sinkhorn_nb[experiments]"') from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def interval(values, level=0.95):
    """``(mean, low, high)``: the mean and its two-sided Student-t confidence
    interval (``low = high = mean`` for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    from scipy.stats import t
    half = float(t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1)
                 / np.sqrt(values.size))
    return mean, mean - half, mean + half


class Progress:
    """Progress over ``total`` steps: a tqdm bar on stderr when stderr is a
    terminal and tqdm is installed (it is in the ``demo`` and ``experiments``
    extras), else one line per step (readable in a log); :meth:`print` writes a
    finished row to stdout, under the bar."""

    def __init__(self, total, description, enabled=True):
        self.start = time.perf_counter()
        self.description = description
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, desc=description, unit="step", leave=False,
                                file=sys.stderr, dynamic_ncols=True)

    def elapsed(self):
        return time.perf_counter() - self.start

    def step(self, what=""):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update()
        elif self.enabled:
            print(f"[{self.description}] {self.done}/{self.total} {what} "
                  f"({self.elapsed():.0f} s)", file=sys.stderr, flush=True)

    def print(self, text):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
