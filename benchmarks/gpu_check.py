"""GPU check: CUDA tests unsimulated, CPU/GPU parity grid, timings against cuBLAS.

The timing part gives, at n=4096, K=1000: the balanced iteration (dense and
sparse targets, both dtypes) against the two cuBLAS products it replaces, and
the float32 dense iteration for several launch shapes ``(tile, micro, block)``
of the product kernel side by side (``micro=1``: one output per thread).

Run on a machine with an NVIDIA GPU from the source tree::

    PYTHONPATH=. python benchmarks/gpu_check.py --out results/

Needs only numba, numba-cuda, numpy, scipy, scikit-learn, pytest and (for the
cuBLAS bound) cupy.  ``--quick`` shrinks every size (a smoke test; it also runs
under ``NUMBA_ENABLE_CUDASIM=1``).  Prints one table per part and writes them,
with the machine and date, to ``--out/gpu_check.txt`` when given.
"""
import argparse
import datetime
import os
import subprocess
import sys
import time

import numpy as np


def problem(n, K, kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    import sinkhorn_nb as snb
    M = snb.ground_metric.from_points(rng.normal(size=(K, 2)))
    h = rng.dirichlet(np.ones(K), size=n)
    if kind == "dense":
        y = rng.dirichlet(np.ones(K), size=n)
    else:                      # up to 5 non-zeros per row, a different support per row
        y = np.zeros((n, K))
        for r in range(n):
            idx = rng.choice(K, size=5, replace=False)
            y[r, idx] = rng.dirichlet(np.ones(5))
    return h.astype(dtype), y.astype(dtype), M.astype(dtype)


def parity(quick):
    import sinkhorn_nb as snb
    rows = []
    sizes = [(6, 40)] if quick else [(64, 16), (256, 100), (512, 400)]
    for n, K in sizes:
        for lam in ((5.0, 2000.0) if quick else (2.0, 20.0, 2000.0)):
            for dtype in (np.float32, np.float64):
                for variant in ("balanced", "relaxed"):
                    for kind in ("dense", "sparse"):
                        h, y, M = problem(n, K, kind, dtype)
                        solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
                        tol = 1e-5 if dtype == np.float32 else 1e-9
                        it = 50 if lam > 100 else 2000
                        cpu = solve(h, y, M, lam, tol=tol, max_iter=it)
                        gpu = solve(h, y, M, lam, tol=tol, max_iter=it, device="cuda")
                        g = np.isfinite(cpu.grad)
                        scale = max(1e-30, float(np.abs(cpu.grad[g]).max()))
                        rows.append((n, K, lam, np.dtype(dtype).name, variant, kind,
                                     float(np.max(np.abs(gpu.loss - cpu.loss)
                                                  / np.maximum(np.abs(cpu.loss), 1e-30))),
                                     float(np.max(np.abs(gpu.grad[g] - cpu.grad[g])) / scale),
                                     bool(np.array_equal(gpu.n_iter, cpu.n_iter))))
    head = (f"{'n':>5}{'K':>6}{'lam':>8}{'dtype':>9}{'variant':>10}{'target':>8}"
            f"{'loss rel':>11}{'grad rel':>11}{'same n_iter':>13}")
    lines = [head] + [f"{r[0]:>5}{r[1]:>6}{r[2]:>8g}{r[3]:>9}{r[4]:>10}{r[5]:>8}"
                      f"{r[6]:>11.1e}{r[7]:>11.1e}{str(r[8]):>13}" for r in rows]
    return "\n".join(lines)


def _median_seconds(fn, repeats, sync):
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def timings(quick):
    from numba import cuda
    from sinkhorn_nb.cuda import DEFAULT_LAUNCH, sinkhorn_balanced
    from sinkhorn_nb.gibbs import GibbsKernel
    n, K, iters = (8, 40, 3) if quick else (4096, 1000, 100)
    repeats = 1 if quick else 5
    try:
        import cupy
    except ImportError:
        cupy = None

    def per_iteration_ms(hd, yd, kernel, launch):
        sinkhorn_balanced(hd, yd, kernel, 2, 0.0, 10, "auto", launch=launch)      # compile
        sec = _median_seconds(
            lambda: sinkhorn_balanced(hd, yd, kernel, iters, 0.0, 10, "auto", launch=launch),
            repeats, cuda.synchronize)
        return sec / iters * 1e3

    def ratio_text(ms, bound):
        return (f"{bound:22.3f}{ms / bound:8.2f}" if bound
                else f"{'(no cupy)':>22}{'n/a':>8}")

    lines = [f"n={n}, K={K}, {iters} iterations (tol=0), median of {repeats} runs, "
             f"launch (tile, micro, block) = {DEFAULT_LAUNCH}"]
    lines.append(f"{'dtype':>8}{'target':>8}{'ms/iter':>10}{'cuBLAS 2 products ms':>22}"
                 f"{'ratio':>8}")
    bounds = {}
    for dtype in (np.float32, np.float64):
        h, y, M = problem(n, K, "dense", dtype)
        kernel = GibbsKernel(M, 10.0, dtype).on_device()
        bound = None
        if cupy is not None:
            U = cupy.asarray(h)
            G = cupy.asarray(kernel.host.G)
            GT = cupy.asarray(kernel.host.G_T)
            bound = _median_seconds(lambda: (U @ G, U @ GT), 5,
                                    cupy.cuda.runtime.deviceSynchronize) * 1e3
        bounds[dtype] = (kernel, bound)
        for kind in ("dense", "sparse"):
            h, y, _ = problem(n, K, kind, dtype)
            ms = per_iteration_ms(cuda.to_device(h), cuda.to_device(y), kernel, DEFAULT_LAUNCH)
            lines.append(f"{np.dtype(dtype).name:>8}{kind:>8}{ms:>10.3f}{ratio_text(ms, bound)}")
    # the product kernel's register tile, side by side (micro=1: one output per thread)
    kernel, bound = bounds[np.float32]
    h, y, _ = problem(n, K, "dense", np.float32)
    hd, yd = cuda.to_device(h), cuda.to_device(y)
    shapes = [(4, 2, 4), (4, 1, 4)] if quick else [(16, 1, 128), (16, 2, 128), (16, 4, 128),
                                                    (8, 8, 128), (32, 2, 128), (16, 8, 128)]
    lines.append("")
    lines.append("float32 dense, launch shapes of the product kernel:")
    lines.append(f"{'(tile, micro, block)':>22}{'ms/iter':>10}{'cuBLAS 2 products ms':>22}"
                 f"{'ratio':>8}")
    for launch in shapes:
        ms = per_iteration_ms(hd, yd, kernel, launch)
        lines.append(f"{str(launch):>22}{ms:>10.3f}{ratio_text(ms, bound)}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for gpu_check.txt")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args(argv)
    from numba import cuda
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    device = "simulator" if simulated else cuda.get_current_device().name
    device = device.decode() if isinstance(device, bytes) else device
    parts = [f"sinkhorn_nb GPU check, {datetime.datetime.now():%Y-%m-%d %H:%M}, device: {device}"]
    if not args.skip_tests:
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/cuda"], capture_output=True, text=True)
        parts.append("CUDA tests: " + (run.stdout.strip().splitlines() or ["?"])[-1])
    parts.append("CPU/GPU parity (max relative error over rows):\n" + parity(args.quick))
    parts.append("Timing, balanced dense iteration vs the two cuBLAS products it replaces:\n"
                 + timings(args.quick))
    report = "\n\n".join(parts)
    print(report)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_check.txt"), "w") as fh:
            fh.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
