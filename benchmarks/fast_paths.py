"""Speed targets, measured side by side in one run, as ratios of medians.

    python benchmarks/fast_paths.py [--section all|host|fast] [--repeat 5] [--out FILE]

Section "host" (the whole call, as a user makes it): n=256 rows, K=1000 labels,
points-in-the-plane metric, lam=10, float64, 30 iterations (``tol=0``):

* a. a whole ``sinkhorn()`` call with dense targets (Gibbs kernel, validation and
  outputs included) against the 60 NumPy BLAS products its iterations contain;
* b. the same call with 3 non-zeros per target (different supports), one-off and
  with one reused ``WassersteinLoss``, against (a);
* c. a balanced one-hot solve (closed form) with a reused ``WassersteinLoss``
  against one NumPy ``np.log`` pass over ``h``;
* d. ``WassersteinClassifier("ordinal").fit`` on 20,000 noisy 8x8 digits against
  ``LogisticRegression``, both L-BFGS for exactly 30 iterations (``tol=0``);
* e. a multi-label fit shaped like the paper's tag experiment (n=2000, d=1024,
  K=1000 labels, 2-7 per sample, ``W + 0.1 KL``, lam=30, embedding metric) against
  SciPy's L-BFGS on the softmax cross-entropy with the normalized targets, both
  for exactly 15 iterations.

Section "fast" (the kernels against their bounds and POT): as documented in
``docs/benchmarks.md``; "fixed iterations" runs exactly ``ITERS`` iterations on
both sides (``tol=0``; POT ``stopThr=0``), "default tol" each solver's own
stopping rule; POT is looped over ``--pot-rows`` rows and scaled to n.

Every figure is the median of ``--repeat`` timed calls after one untimed call
(at least 101 for row c, whose calls take a quarter of a millisecond).
The contenders of a row run one block after the other, half a second apart, not
interleaved call by call.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import (cross_entropy_lbfgs, measures, metric,  # noqa: E402
                               noisy_digits, pot_looped, tag_problem)

import sinkhorn_nb as snb  # noqa: E402

N, K, LAM, ITERS = 256, 1000, 10.0, 100


def median_times(contenders, repeat):
    """``{name: median seconds}`` of ``repeat`` calls each, after one untimed call."""
    times = {}
    for name, run in contenders.items():
        time.sleep(0.5)              # let the previous block's threads go idle
        run()
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        times[name] = float(np.median(samples))
    return times


def problem(kind, dtype=np.float64):
    h, y = measures(N, K, kind, dtype)
    return h, y, metric(K).astype(dtype)


def sparse_targets(n, K, nnz, seed=2):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, K))
    for r in range(n):
        y[r, rng.choice(K, size=nnz, replace=False)] = rng.dirichlet(np.ones(nnz))
    return y


def ours(variant, h, y, M, iters=None):
    solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
    if iters is None:
        return lambda: solve(h, y, M, LAM, max_iter=100000)
    return lambda: solve(h, y, M, LAM, max_iter=iters, tol=0.0)


def pot(variant, h, y, M, rows, iters=None):
    return lambda: pot_looped(h[:rows], y[:rows], M, LAM, n_iter=iters, variant=variant)


class Table:
    """Rows ``what | ours | baseline | ratio | goal | met``, printed as they come."""

    def __init__(self, title):
        self.lines = [title, "", "| target | ours | baseline | ratio | goal | met |",
                      "|---|---|---|---|---|---|"]
        print("\n".join(self.lines), flush=True)

    def add(self, what, t_ours, t_base, goal, speedup=True, unit="ms"):
        """``speedup``: ratio = baseline / ours, goal ``>= goal``; otherwise ratio
        = ours / baseline, goal ``<= goal``."""
        scale = 1e3 if unit == "ms" else 1.0
        ratio = t_base / t_ours if speedup else t_ours / t_base
        met = ratio >= goal if speedup else ratio <= goal
        self.lines.append(
            f"| {what} | {t_ours * scale:.{3 if unit == 's' else 2}f} {unit} | "
            f"{t_base * scale:.{3 if unit == 's' else 2}f} {unit} | {ratio:.2f}x | "
            f"{'>=' if speedup else '<='} {goal:g}x | {'yes' if met else 'no'} |")
        print(self.lines[-1], flush=True)

    def note(self, text):
        self.lines.append(text)
        print(text, flush=True)


def host_section(repeat):
    """Targets (a)-(e): whole calls and whole fits against their baselines."""
    table = Table(f"Host path: n={N}, K={K}, lam={LAM}, float64, 30 iterations (tol=0), "
                  f"{os.cpu_count()} cores, median of {repeat}")
    h, y, M = problem("dense")
    G = np.exp(-LAM * M - 1.0)
    G_T = np.ascontiguousarray(G.T)
    out = np.empty_like(h)

    def blas_60():
        for _ in range(30):
            np.dot(h, G, out)
            np.dot(h, G_T, out)
    t = median_times({"call": ours("balanced", h, y, M, 30), "blas": blas_60}, repeat)
    table.add("a. sinkhorn(), dense targets, vs its 60 BLAS products", t["call"], t["blas"],
              1.10, speedup=False)
    dense_call = t["call"]

    ys = sparse_targets(N, K, 3)
    engine = snb.WassersteinLoss(M, LAM, max_iter=30, tol=0.0)
    t = median_times({"call": ours("balanced", h, ys, M, 30),
                      "reused": lambda: engine(h, ys)}, repeat)
    table.add("b. sinkhorn(), 3 non-zeros per target, vs (a)", t["call"], dense_call, 20)
    table.add("b. the same with one WassersteinLoss reused, vs (a)", t["reused"], dense_call,
              40)

    rng = np.random.default_rng(3)
    y1 = np.eye(K)[rng.integers(0, K, N)]
    engine = snb.WassersteinLoss(M, LAM)
    # calls of a quarter of a millisecond: many more samples for a stable median
    t = median_times({"call": lambda: engine(h, y1), "log": lambda: np.log(h)},
                     max(repeat, 101))
    table.add("c. one-hot balanced, WassersteinLoss reused, vs one np.log pass over h",
              t["call"], t["log"], 2.0, speedup=False)

    from sklearn.linear_model import LogisticRegression
    X, labels = noisy_digits()
    fits = {}

    def fit_ours():
        fits["ours"] = snb.WassersteinClassifier("ordinal", max_iter=30, tol=0.0).fit(X, labels)

    def fit_lr():
        fits["lr"] = LogisticRegression(max_iter=30, tol=0.0).fit(X, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = median_times({"ours": fit_ours, "lr": fit_lr}, max(3, repeat // 2))
    table.add("d. WassersteinClassifier fit, 20,000 one-hot digits, vs LogisticRegression "
              f"(iterations {fits['ours'].n_iter_} and {fits['lr'].n_iter_[0]})",
              t["ours"], t["lr"], 2.0, speedup=False, unit="s")

    X, Y, M = tag_problem()
    T = Y / Y.sum(axis=1, keepdims=True)
    fits = {}

    def fit_tags():
        fits["ours"] = snb.WassersteinClassifier(M, lam=30.0, kl_weight=0.1, max_iter=15,
                                                 tol=0.0).fit(X, Y)

    def fit_ce():
        fits["ce"] = cross_entropy_lbfgs(X, T, 1e-4, 15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = median_times({"ours": fit_tags, "ce": fit_ce}, max(3, repeat // 2))
    table.add("e. tag-shaped fit, W + 0.1 KL, vs L-BFGS on softmax cross-entropy "
              f"(iterations {fits['ours'].n_iter_} and {fits['ce'].nit})",
              t["ours"], t["ce"], 2.5, speedup=False, unit="s")
    return table.lines


def dense_iteration_versus_blas(repeat):
    """Marginal cost of one dense iteration (difference of two iteration counts)
    against the two BLAS products it contains, per dtype."""
    out = {}
    for dtype in (np.float64, np.float32):
        h, y, M = problem("dense", dtype)
        G = np.exp(-LAM * M - 1.0).astype(dtype)
        G_T = np.ascontiguousarray(G.T)
        buf = np.empty_like(h)

        def two_products(reps=20):
            for _ in range(reps):
                np.dot(h, G, buf)
                np.dot(h, G_T, buf)
        t = median_times({"short": ours("balanced", h, y, M, 20),
                          "long": ours("balanced", h, y, M, 20 + ITERS),
                          "blas": lambda: two_products(ITERS)}, repeat)
        out[np.dtype(dtype).name] = ((t["long"] - t["short"]) / ITERS, t["blas"] / ITERS)
    return out


def first_loss_seconds():
    """Fresh-process time to the first loss, with a cold and a warm Numba cache."""
    code = ("import numpy as np, sinkhorn_nb as snb; M = snb.ground_metric.ordinal(5); "
            "h = np.full(5, 0.2); snb.sinkhorn(h, h[::-1].copy(), M, 5.0); "
            "snb.sinkhorn_relaxed(h, h, M, 5.0)")

    def run(env):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - start
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = run(env)
        warm = float(np.median([run(env) for _ in range(3)]))
    return cold, warm


def fast_section(repeat, rows):
    """The kernels against their bounds and against POT looped over rows."""
    scale = N / rows
    table = Table(f"Fast paths: n={N}, K={K}, lam={LAM}, {os.cpu_count()} cores, median of "
                  f"{repeat}; POT looped over {rows} rows, scaled x{scale:g}")
    for name, (iteration, blas) in dense_iteration_versus_blas(repeat).items():
        table.add(f"1. dense {name}: one iteration vs its two BLAS products", iteration,
                  blas, 1.15, speedup=False)

    problems = {kind: problem(kind) for kind in ("dense", "sparse", "onehot")}
    h, y, M = problems["dense"]
    t = median_times({"ours": ours("balanced", h, y, M, ITERS),
                      "pot": pot("balanced", h, y, M, rows, ITERS)}, repeat)
    table.add(f"1. dense, {ITERS} iterations, vs POT looped", t["ours"], t["pot"] * scale, 7)

    hs, ys, _ = problems["sparse"]
    for label, iters in ((f"{ITERS} iterations", ITERS), ("default tol", None)):
        t = median_times({"sparse": ours("balanced", hs, ys, M, iters),
                          "dense": ours("balanced", h, y, M, iters)}, repeat)
        table.add(f"2. sparse (5 nnz) vs dense targets, {label}", t["sparse"], t["dense"], 20)
    engine = snb.WassersteinLoss(M, LAM, max_iter=100000)      # kernel built once
    t = median_times({"sparse": lambda: engine(hs, ys), "dense": lambda: engine(h, y)},
                     repeat)
    table.add("2. sparse vs dense targets, default tol, one WassersteinLoss reused",
              t["sparse"], t["dense"], 20)
    t = median_times({"ours": ours("balanced", hs, ys, M, ITERS),
                      "pot": pot("balanced", hs, ys, M, rows, ITERS)}, repeat)
    table.add(f"2. sparse, {ITERS} iterations, vs POT looped", t["ours"], t["pot"] * scale, 100)

    ho, yo, _ = problems["onehot"]
    t = median_times({"ours": ours("balanced", ho, yo, M),
                      "pot": pot("balanced", ho, yo, M, rows)}, repeat)
    table.add("3. one-hot balanced (closed form) vs POT looped, default tol", t["ours"],
              t["pot"] * scale, 300)

    t = median_times({"ours": ours("relaxed", hs, ys, M, ITERS),
                      "pot": pot("relaxed", hs, ys, M, rows, ITERS)}, repeat)
    table.add(f"4. relaxed sparse, {ITERS} iterations, vs POT unbalanced looped "
              "(reg_type='kl', c=e^-1)", t["ours"], t["pot"] * scale, 7)

    h32, y32, M32 = problem("dense", np.float32)
    t = median_times({"f32": ours("balanced", h32, y32, M32, ITERS),
                      "f64": ours("balanced", h, y, M, ITERS)}, repeat)
    table.add(f"5. dense float32 vs float64, {ITERS} iterations", t["f32"], t["f64"], 1.6)

    cold, warm = first_loss_seconds()
    table.add("6. first loss in a fresh process, warm Numba cache (baseline: 2 s)", warm, 2.0,
              1.0, unit="s")
    table.note(f"(cold Numba cache: {cold:.1f} s)")
    return table.lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=("all", "host", "fast"), default="all")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pot-rows", type=int, default=16)
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args(argv)
    lines = []
    if args.section in ("all", "host"):
        lines += host_section(args.repeat) + [""]
    if args.section in ("all", "fast"):
        lines += fast_section(args.repeat, args.pot_rows)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
