"""GPU check: CUDA tests unsimulated, CPU/GPU parity grid, timings against cuBLAS.

The timing part gives, at n=4096, K=1000: the balanced iteration (dense and
sparse targets, both dtypes) against the two cuBLAS products it replaces, and
the float32 dense iteration for several launch shapes ``(tile, micro, block)``
of the product kernel side by side (``micro=1``: one output per thread); then a
whole 60,000-row float32 ``WassersteinLoss`` call (K=1000, 50 iterations) with
device arrays, with host arrays, and on the machine's CPU.

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
    """Points-in-the-plane metric; dense targets or 5 non-zeros per row."""
    from sinkhorn_nb.problems import measures, random_metric
    h, y = measures(n, K, kind, dtype, seed + 1)
    return h, y, random_metric(K, seed).astype(dtype)


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


def _solver(n, K, kind, dtype, launch):
    """``run(iters)``: a balanced solve of ``iters`` iterations (tol=0) on device
    arrays with the launch shape ``launch``, synchronized."""
    from dataclasses import replace

    from numba import cuda

    import sinkhorn_nb as snb
    from sinkhorn_nb import routing
    from sinkhorn_nb.cuda.drivers import device_kernel, solve
    from sinkhorn_nb.result import SinkhornResult
    from sinkhorn_nb.validation import check_controls, check_measures
    h, y, M = problem(n, K, kind, dtype)
    loss = snb.WassersteinLoss(M, 10.0, method="multiplicative")
    measures = check_measures(h, y, K, True, False)
    kernel = device_kernel(loss._kernels, measures.dtype)
    plan = routing.plan_for(measures, kernel, "balanced", None, "multiplicative", 0.0)
    measures = replace(measures, h=cuda.to_device(measures.h), targets=cuda.to_device(measures.y))
    result = SinkhornResult.empty(n, K, measures.dtype, alloc=cuda.device_array)

    def run(iters):
        solve(measures, kernel, plan, check_controls(iters, 0.0, 10, "multiplicative"), 0.0,
              None, result, launch=launch)
        cuda.synchronize()
    return run, kernel


def timings(quick):
    from numba import cuda
    from sinkhorn_nb.cuda.drivers import DEFAULT_LAUNCH
    n, K, iters = (8, 40, 3) if quick else (4096, 1000, 100)
    repeats = 1 if quick else 5
    try:
        import cupy
    except ImportError:
        cupy = None

    def per_iteration_ms(run):
        run(2)                                                   # compile
        return _median_seconds(lambda: run(iters), repeats, cuda.synchronize) / iters * 1e3

    def ratio_text(ms, bound):
        return (f"{bound:22.3f}{ms / bound:8.2f}" if bound
                else f"{'(no cupy)':>22}{'n/a':>8}")

    lines = [f"n={n}, K={K}, {iters} iterations (tol=0), median of {repeats} runs, "
             f"launch (tile, micro, block) = {DEFAULT_LAUNCH}"]
    lines.append(f"{'dtype':>8}{'target':>8}{'ms/iter':>10}{'cuBLAS 2 products ms':>22}"
                 f"{'ratio':>8}")
    bounds = {}
    for dtype in (np.float32, np.float64):
        run, kernel = _solver(n, K, "dense", dtype, DEFAULT_LAUNCH)
        bound = None
        if cupy is not None:
            h, _, _ = problem(n, K, "dense", dtype)
            U = cupy.asarray(h)
            G = cupy.asarray(kernel.host.G)
            GT = cupy.asarray(kernel.host.G_T)
            bound = _median_seconds(lambda: (U @ G, U @ GT), 5,
                                    cupy.cuda.runtime.deviceSynchronize) * 1e3
        bounds[dtype] = bound
        for kind in ("dense", "sparse"):
            run, _ = _solver(n, K, kind, dtype, DEFAULT_LAUNCH)
            ms = per_iteration_ms(run)
            lines.append(f"{np.dtype(dtype).name:>8}{kind:>8}{ms:>10.3f}"
                         f"{ratio_text(ms, bound)}")
    # the product kernel's register tile, side by side (micro=1: one output per thread)
    shapes = ([(4, 2, 4), (4, 1, 4)] if quick else
              [(16, 1, 128), (16, 2, 128), (16, 4, 128), (8, 8, 128), (32, 2, 128), (16, 8, 128)])
    lines.append("")
    lines.append("float32 dense, launch shapes of the product kernel:")
    lines.append(f"{'(tile, micro, block)':>22}{'ms/iter':>10}{'cuBLAS 2 products ms':>22}"
                 f"{'ratio':>8}")
    for launch in shapes:
        run, _ = _solver(n, K, "dense", np.float32, launch)
        ms = per_iteration_ms(run)
        lines.append(f"{str(launch):>22}{ms:>10.3f}{ratio_text(ms, bounds[np.float32])}")
    return "\n".join(lines)


def whole_calls(quick):
    """A whole ``WassersteinLoss`` call, float32, dense targets, 50 iterations: host
    arrays and device arrays on the GPU, against the same call on this machine's
    CPU (all its cores)."""
    from numba import cuda

    import sinkhorn_nb as snb
    n, K, iters = (4, 16, 2) if quick else (60000, 1000, 50)
    repeats = 1 if quick else 3
    h, y, M = problem(n, K, "dense", np.float32)
    options = dict(max_iter=iters, tol=0.0)
    gpu = snb.WassersteinLoss(M, 10.0, device="cuda", **options)
    cpu = snb.WassersteinLoss(M, 10.0, **options)
    hd, yd = cuda.to_device(h), cuda.to_device(y)
    gpu(hd, yd)
    gpu(h, y)
    cpu(h[:8], y[:8])
    t_device = _median_seconds(lambda: gpu(hd, yd), repeats, cuda.synchronize)
    t_host = _median_seconds(lambda: gpu(h, y), repeats, cuda.synchronize)
    t_cpu = _median_seconds(lambda: cpu(h, y), 1 if quick else 2, lambda: None)
    return (f"n={n}, K={K}, float32, dense targets, {iters} iterations, {os.cpu_count()} CPU "
            f"cores\n{'call':>34}{'seconds':>10}{'CPU / this':>12}\n"
            f"{'GPU, device arrays':>34}{t_device:>10.3f}{t_cpu / t_device:>12.1f}\n"
            f"{'GPU, host arrays (copies)':>34}{t_host:>10.3f}{t_cpu / t_host:>12.1f}\n"
            f"{'CPU':>34}{t_cpu:>10.3f}{1.0:>12.1f}")


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
    parts.append("Whole WassersteinLoss calls:\n" + whole_calls(args.quick))
    report = "\n\n".join(parts)
    print(report)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_check.txt"), "w") as fh:
            fh.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
