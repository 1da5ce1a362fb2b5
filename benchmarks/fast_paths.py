"""The fast-path targets, measured side by side in one run, as ratios of medians.

    python benchmarks/fast_paths.py [--repeat 5] [--pot-rows 16] [--out FILE]

Problem: n=256 rows, K=1000 labels, points-in-the-plane metric, lam=10, float64
unless said.  "Fixed iterations" runs exactly ``ITERS`` Sinkhorn iterations on both
sides (``tol=0``; POT ``stopThr=0``); "default tol" runs each solver to its own
default stopping rule.  POT is looped over ``--pot-rows`` rows and scaled to n
(rows are independent, the cost per row is the same).  Every figure is the median
of ``--repeat`` timed calls after one untimed call.  The contenders of a row run
one block after the other, half a second apart (not interleaved call by call):
OpenBLAS worker threads keep spinning for a while after a product, so interleaving
NumPy's BLAS (POT, the bare products) with Numba's (our kernels) would charge each
side the other's spin.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import measures, metric, pot_looped  # noqa: E402

import sinkhorn_nb as snb  # noqa: E402

N, K, LAM, ITERS = 256, 1000, 10.0, 100


def median_times(contenders, repeat):
    """``{name: median seconds}`` of ``repeat`` calls each, after one untimed call."""
    times = {}
    for name, run in contenders.items():
        time.sleep(0.5)              # let the previous block's BLAS threads go idle
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


def ours(variant, h, y, M, iters=None):
    solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
    if iters is None:
        return lambda: solve(h, y, M, LAM, max_iter=100000)
    return lambda: solve(h, y, M, LAM, max_iter=iters, tol=0.0)


def pot(variant, h, y, M, rows, iters=None):
    return lambda: pot_looped(h[:rows], y[:rows], M, LAM, n_iter=iters, variant=variant)


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
        out[np.dtype(dtype).name] = ((t["long"] - t["short"]) / ITERS, t["blas"] / ITERS,
                                     t["long"])
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pot-rows", type=int, default=16)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    rows = args.pot_rows
    scale = N / rows
    lines = [f"n={N}, K={K}, lam={LAM}, {os.cpu_count()} cores, median of {args.repeat}; "
             f"POT looped over {rows} rows, scaled x{scale:g}", "",
             "| target | ours | baseline | ratio | goal |", "|---|---|---|---|---|"]

    def row(what, t_ours, t_base, goal, base_scale=1.0):
        base = t_base * base_scale
        lines.append(f"| {what} | {t_ours * 1e3:.1f} ms | {base * 1e3:.1f} ms | "
                     f"{base / t_ours:.1f}x | {goal} |")
        print(lines[-1], flush=True)

    print("\n".join(lines), flush=True)
    for name, (iteration, blas, _) in dense_iteration_versus_blas(args.repeat).items():
        row(f"1. dense {name}: one iteration vs its two BLAS products", iteration, blas,
            "ours <= 1.15x BLAS (ratio >= 0.87)")

    problems = {kind: problem(kind) for kind in ("dense", "sparse", "onehot")}
    h, y, M = problems["dense"]
    t = median_times({"ours": ours("balanced", h, y, M, ITERS),
                      "pot": pot("balanced", h, y, M, rows, ITERS)}, args.repeat)
    row(f"1. dense, {ITERS} iterations, vs POT looped", t["ours"], t["pot"], ">= 7x", scale)

    hs, ys, _ = problems["sparse"]
    for label, iters in ((f"{ITERS} iterations", ITERS), ("default tol", None)):
        t = median_times({"sparse": ours("balanced", hs, ys, M, iters),
                          "dense": ours("balanced", h, y, M, iters)}, args.repeat)
        row(f"2. sparse (5 nnz) vs dense targets, {label}", t["sparse"], t["dense"], ">= 20x")
    engine = snb.WassersteinLoss(M, LAM, max_iter=100000)      # kernel built once
    t = median_times({"sparse": lambda: engine(hs, ys), "dense": lambda: engine(h, y)},
                     args.repeat)
    row("2. sparse vs dense targets, default tol, one WassersteinLoss reused",
        t["sparse"], t["dense"], ">= 20x")
    t = median_times({"ours": ours("balanced", hs, ys, M, ITERS),
                      "pot": pot("balanced", hs, ys, M, rows, ITERS)}, args.repeat)
    row(f"2. sparse, {ITERS} iterations, vs POT looped", t["ours"], t["pot"], ">= 100x", scale)

    ho, yo, _ = problems["onehot"]
    t = median_times({"ours": ours("balanced", ho, yo, M),
                      "pot": pot("balanced", ho, yo, M, rows)}, args.repeat)
    row("3. one-hot balanced (closed form) vs POT looped, default tol", t["ours"],
        t["pot"], ">= 300x", scale)

    t = median_times({"ours": ours("relaxed", hs, ys, M, ITERS),
                      "pot": pot("relaxed", hs, ys, M, rows, ITERS)}, args.repeat)
    row(f"4. relaxed sparse, {ITERS} iterations, vs POT unbalanced looped "
        "(reg_type='kl', c=e^-1)", t["ours"], t["pot"], ">= 7x", scale)

    h32, y32, M32 = problem("dense", np.float32)
    t = median_times({"f32": ours("balanced", h32, y32, M32, ITERS),
                      "f64": ours("balanced", h, y, M, ITERS)}, args.repeat)
    row(f"5. dense float32 vs float64, {ITERS} iterations", t["f32"], t["f64"], ">= 1.6x")

    cold, warm = first_loss_seconds()
    lines.append(f"| 6. first loss in a fresh process, warm Numba cache | {warm:.2f} s | "
                 f"cold cache {cold:.1f} s | - | warm <= 2 s |")
    print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
