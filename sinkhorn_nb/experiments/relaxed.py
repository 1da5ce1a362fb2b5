"""Fig. 3: relaxed against smoothed transport, the approach to the exact W, and
iterations to convergence versus K.

* (a) For random pairs of normalized histograms over K = 256 labels (the
  paper's size; points in the unit square, Euclidean metric), the gap
  ``|W_KL - W_lam|`` between the relaxed loss (``gamma_a = gamma_b = gamma``)
  and the smoothed loss, divided by the exact Wasserstein distance of the pair
  (a linear program; it is bounded away from 0, unlike the regularized
  objective, which changes sign), as ``gamma`` grows, for two values of
  ``lam``: mean over pairs with its 95 % interval.  The relaxed solve needs
  more iterations as ``gamma lam`` grows: the total-mass mode of its iteration
  contracts only by ``a b = (gamma lam / (gamma lam + 1))^2`` per iteration.
* (b) The transport cost ``<T, M>`` (not the regularized loss) of the smoothed
  plan and of the relaxed plans (``gamma`` in 10, 100) against the exact W,
  relative gap versus ``lam`` up to 300 (beyond, the solvers switch to the
  log domain, whose ``O(K^2)`` exponentials per row and iteration make the
  relaxed solves at K = 256 take hours), mean over the same pairs with 95 %
  intervals: the relaxed plan's bias is set by ``1/gamma`` once ``lam`` is
  large, so both parameters must grow.
* (c) Iterations to ``tol = 1e-6`` (relative marginal error, checked every
  iteration) versus K for both variants, ``lam = 10``, dense random histograms.
"""
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..exact import exact_wasserstein
from ..ground_metric import from_points
from ..transport import sinkhorn, sinkhorn_relaxed
from .outputs import Progress, interval, path, pyplot, write_csv, write_json

RELAXED_GAMMAS = (10.0, 100.0)
LAMS_A = (10.0, 50.0)
SETTINGS = {
    True: dict(K=64, pairs=10, gammas=tuple(np.logspace(-1, 2, 7)),
               lams=(1, 3, 10, 30, 100, 300), sizes=(16, 64, 256, 1024), rows=4,
               max_iter=200000),
    False: dict(K=256, pairs=50, gammas=tuple(np.logspace(-1, 3, 9)), max_iter=300000,
                lams=(1, 2, 5, 10, 20, 50, 100, 200, 300),
                sizes=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096), rows=8),
}


def _problem(K, n, seed):
    rng = np.random.default_rng(seed)
    M = from_points(rng.uniform(size=(K, 2)))
    return M, rng.dirichlet(np.ones(K), size=n), rng.dirichlet(np.ones(K), size=n)


def _with_interval(row, name, values):
    mean, low, high = interval(values)
    row.update({name: mean, f"{name}_low": low, f"{name}_high": high})


def gap_versus_gamma(cfg, M, h, y, exact, progress):
    rows = []
    for lam in LAMS_A:
        smoothed = sinkhorn(h, y, M, lam, max_iter=100000).loss
        for gamma in cfg["gammas"]:
            r = sinkhorn_relaxed(h, y, M, lam, gamma_a=gamma, gamma_b=gamma, tol=1e-8,
                                 max_iter=cfg["max_iter"])
            row = dict(lam=lam, gamma=float(gamma))
            _with_interval(row, "gap", np.abs(r.loss - smoothed) / exact)
            row.update(absolute_gap=float(np.mean(np.abs(r.loss - smoothed))),
                       median_iterations=float(np.median(r.n_iter)),
                       converged=bool(np.all(r.converged)))
            rows.append(row)
            progress.step(f"(a) lam={lam:g} gamma={gamma:.3g}")
    return rows


def approach_to_exact(cfg, M, h, y, exact, progress):
    rows = []
    for lam in cfg["lams"]:
        kw = dict(max_iter=cfg["max_iter"], tol=1e-8)
        row = dict(lam=float(lam))
        smoothed = sinkhorn(h, y, M, lam, **kw).transport_cost
        _with_interval(row, "smoothed_gap", np.abs(smoothed - exact) / exact)
        for gamma in RELAXED_GAMMAS:
            r = sinkhorn_relaxed(h, y, M, lam, gamma_a=gamma, gamma_b=gamma, **kw)
            _with_interval(row, f"relaxed_gap_gamma_{gamma:g}",
                           np.abs(r.transport_cost - exact) / exact)
            row[f"relaxed_converged_gamma_{gamma:g}"] = bool(np.all(r.converged))
        rows.append(row)
        progress.step(f"(b) lam={lam:g}")
    return rows


def iterations_versus_k(cfg, progress):
    rows = []
    for K in cfg["sizes"]:
        M, h, y = _problem(K, cfg["rows"], 2)
        for variant, solve in (("smoothed", sinkhorn), ("relaxed", sinkhorn_relaxed)):
            r = solve(h, y, M, 10.0, tol=1e-6, max_iter=20000, check_every=1,
                      method="multiplicative")
            rows.append(dict(K=K, variant=variant, median_iterations=float(np.median(r.n_iter))))
        progress.step(f"(c) K={K}")
    return rows


def run(quick=False, out=".", settings=None, verbose=True):
    """Write ``relaxed_gamma.csv``, ``relaxed_exact.csv``, ``relaxed_iterations.csv``,
    ``relaxed_summary.json`` and ``relaxed.png`` (three panels)."""
    cfg = dict(SETTINGS[bool(quick)], **(settings or {}))   # settings: sizes, for tests
    start = time.perf_counter()
    steps = 1 + len(LAMS_A) * len(cfg["gammas"]) + len(cfg["lams"]) + len(cfg["sizes"])
    progress = Progress(steps, "relaxed", enabled=verbose)
    M, h, y = _problem(cfg["K"], cfg["pairs"], 0)
    exact = exact_wasserstein(h, y, M)
    progress.step(f"exact W of {cfg['pairs']} pairs, K={cfg['K']}")
    with warnings.catch_warnings():     # non-convergence is recorded in the tables
        warnings.simplefilter("ignore", ConvergenceWarning)
        gamma_rows = gap_versus_gamma(cfg, M, h, y, exact, progress)
        exact_rows = approach_to_exact(cfg, M, h, y, exact, progress)
    iteration_rows = iterations_versus_k(cfg, progress)
    progress.close()
    write_csv(out, "relaxed_gamma.csv", gamma_rows)
    write_csv(out, "relaxed_exact.csv", exact_rows)
    write_csv(out, "relaxed_iterations.csv", iteration_rows)
    summary = dict(K=cfg["K"], pairs=cfg["pairs"], mean_exact_W=float(np.mean(exact)),
                   gap_versus_gamma=gamma_rows, approach_to_exact=exact_rows,
                   iterations_versus_k=iteration_rows, seconds=time.perf_counter() - start)
    write_json(out, "relaxed_summary.json", summary)
    for line in report_lines(gamma_rows, exact_rows, iteration_rows):
        progress.print(line)
    plot(gamma_rows, exact_rows, iteration_rows, cfg, out)
    return summary


def report_lines(gamma_rows, exact_rows, iteration_rows):
    """The printed summary of the three parts, means with 95 % intervals."""
    def band(r, name):
        return f"{r[name]:.2e} [{r[f'{name}_low']:.2e}, {r[f'{name}_high']:.2e}]"
    lines = ["(a) relaxed loss -> smoothed loss as gamma grows: |W_KL - W_lam| / W_exact"]
    lines += [f"    lam={r['lam']:>4g} gamma={r['gamma']:>8.3g}: {band(r, 'gap')}, "
              f"{r['median_iterations']:.0f} iterations" for r in gamma_rows]
    relaxed = [f"relaxed_gap_gamma_{gamma:g}" for gamma in RELAXED_GAMMAS]
    lines.append("(b) transport cost of the plan -> exact W as lam grows: "
                 "|<T, M> - W_exact| / W_exact")
    for r in exact_rows:
        lines.append(f"    lam={r['lam']:>6g}: smoothed {band(r, 'smoothed_gap')}"
                     + "".join(f"; relaxed gamma={k.rsplit('_', 1)[1]} {r[k]:.2e}"
                               for k in relaxed))
    lines.append("(c) median Sinkhorn iterations to a relative marginal error of 1e-6, lam=10")
    sizes = sorted({r["K"] for r in iteration_rows})
    median = {(r["K"], r["variant"]): r["median_iterations"] for r in iteration_rows}
    for variant in ("smoothed", "relaxed"):
        counts = "  ".join(f"K={K}: {median[K, variant]:.0f}" for K in sizes)
        lines.append(f"    {variant:<9}{counts}")
    return lines


def _band(ax, x, rows, name, style, label, log=True):
    mean = np.array([r[name] for r in rows])
    low = np.array([r[f"{name}_low"] for r in rows])
    high = np.array([r[f"{name}_high"] for r in rows])
    line, = (ax.loglog if log else ax.plot)(x, mean, style, label=label)
    ax.fill_between(x, np.maximum(low, mean * 1e-3), high, color=line.get_color(), alpha=0.2)


def plot(gamma_rows, exact_rows, iteration_rows, cfg, out):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for lam in LAMS_A:
        rows = [r for r in gamma_rows if r["lam"] == lam]
        _band(axes[0], [r["gamma"] for r in rows], rows, "gap", "-o", f"lam = {lam:g}")
    axes[0].set(xlabel="gamma (both marginals)", ylabel="|W_KL - W_lam| / W_exact",
                title=f"(a) relaxed loss -> smoothed loss, K = {cfg['K']}")
    axes[0].legend()
    lams = [r["lam"] for r in exact_rows]
    _band(axes[1], lams, exact_rows, "smoothed_gap", "-o", "smoothed plan")
    for gamma, style in zip(RELAXED_GAMMAS, ("--s", ":^")):
        _band(axes[1], lams, exact_rows, f"relaxed_gap_gamma_{gamma:g}", style,
              f"relaxed plan, gamma = {gamma:g}")
    axes[1].set(xlabel="lam", ylabel="|<T, M> - W_exact| / W_exact",
                title="(b) transport cost <T, M> of the plan -> exact W")
    axes[1].legend()
    for variant, style in (("smoothed", "-o"), ("relaxed", "--s")):
        pts = [(r["K"], r["median_iterations"]) for r in iteration_rows
               if r["variant"] == variant]
        axes[2].semilogx(*zip(*pts), style, label=variant)
    axes[2].set(xlabel="K (labels)", ylabel="median iterations to tol 1e-6",
                title="(c) Sinkhorn iterations versus K, lam = 10")
    axes[2].set_ylim(bottom=0)
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Relaxed and smoothed transport ({cfg['pairs']} random pairs; bands: 95 % "
                 "interval of the mean)")
    fig.tight_layout()
    fig.savefig(path(out, "relaxed.png"), dpi=110)
    plt.close(fig)
