"""Writing an experiment's numbers (CSV, JSON) and figures (PNG)."""
import csv
import json
import os


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
