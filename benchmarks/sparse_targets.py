"""Sparse (CSR) targets against dense ones: time and memory of one call, side by side.

    python benchmarks/sparse_targets.py [--n 60000] [--K 1000] [--repeat 3]

For one-hot targets and targets with 3 non-zeros per row (balanced, lam=10,
points-in-the-plane metric, float64), three inputs:

* ``dense``: ``y`` as a dense NumPy array (the caller holds it);
* ``csr``: ``y`` as a ``scipy.sparse.csr_array`` (never densified on the
  support path);
* ``csr.toarray()``: the CSR densified by the caller first (what a sparse
  ``y`` cost when it was densified before solving).

Two calls are timed: ``WassersteinLoss(M, lam)(h, y)`` (value and gradient, the
training call) and ``sinkhorn(h, y, M, lam)`` (the full result with scalings).
Reported: the median wall-clock and CPU time (all threads) of ``--repeat`` calls
after one untimed call (the three inputs in one process, their calls
interleaved, each round starting with the next input: on a shared machine the
CPU time is the steadier figure); and,
with each input in a process of its own, the peak of one call's traced
allocations (``tracemalloc``: NumPy and SciPy arrays, not Numba's scratch) and
the process's peak resident memory (inputs, result and everything else, from
``getrusage``).
"""
import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

KINDS = {"one-hot": 1, "3 non-zeros": 3}
INPUTS = ("dense", "csr", "csr.toarray()")
CALLS = ("WassersteinLoss()(h, y)", "sinkhorn(h, y)")


def _inputs(n, K, nonzeros, seed=0):
    """Predictions ``h`` (n, K) and the CSR targets (built without a dense array)."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    h = rng.random((n, K))
    h /= h.sum(axis=1, keepdims=True)
    cols = np.sort(rng.integers(0, K, (n, nonzeros)), axis=1)
    while True:                              # distinct labels in every row
        repeated = np.flatnonzero((np.diff(cols, axis=1) == 0).any(axis=1))
        if not repeated.size:
            break
        cols[repeated] = np.sort(rng.integers(0, K, (repeated.size, nonzeros)), axis=1)
    data = rng.dirichlet(np.ones(nonzeros), size=n) if nonzeros > 1 else np.ones((n, 1))
    indptr = np.arange(0, n * nonzeros + 1, nonzeros)
    return h, sp.csr_array((data.ravel(), cols.ravel(), indptr), shape=(n, K))


def _call(snb, loss, M, h, targets, call, kind):
    if kind == "csr.toarray()":
        targets = targets.toarray()
    if call == CALLS[0]:
        return loss(h, targets)
    return snb.sinkhorn(h, targets, M, 10.0)


def _setup(n, K, nonzeros):
    import sinkhorn_nb as snb
    M = snb.ground_metric.from_points(np.random.default_rng(1).random((K, 2)))
    h, ys = _inputs(n, K, nonzeros)
    return snb, M, h, ys, snb.WassersteinLoss(M, 10.0)


def memory_case(n, K, nonzeros, kind, call):
    """One process per input: the call's traced peak and the process's peak RSS."""
    snb, M, h, ys, loss = _setup(n, K, nonzeros)
    y = ys.toarray() if kind == "dense" else ys
    _call(snb, loss, M, h, y, call, kind)          # compile, build the Gibbs kernel
    tracemalloc.start()
    _call(snb, loss, M, h, y, call, kind)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"traced_MB": traced / 2 ** 20,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10}


def timing_case(n, K, nonzeros, call, repeat):
    """One process for the three inputs, calls interleaved (the machine may be
    shared): the median time of each."""
    snb, M, h, ys, loss = _setup(n, K, nonzeros)
    inputs = {"dense": ys.toarray(), "csr": ys, "csr.toarray()": ys}
    for kind in INPUTS:
        _call(snb, loss, M, h, inputs[kind], call, kind)
    times = {kind: [] for kind in INPUTS}
    for round_ in range(repeat):      # each round starts with the next input
        for kind in INPUTS[round_ % 3:] + INPUTS[:round_ % 3]:
            start, cpu = time.perf_counter(), time.process_time()
            _call(snb, loss, M, h, inputs[kind], call, kind)
            times[kind].append((time.perf_counter() - start, time.process_time() - cpu))
    return {kind: np.median(t, axis=0).tolist() for kind, t in times.items()}


def _child(args, case):
    out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--K", str(args.K),
                          "--repeat", str(args.repeat), "--case", json.dumps(case)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000)
    parser.add_argument("--K", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case = json.loads(args.case)
        if case[0] == "memory":
            print(json.dumps(memory_case(args.n, args.K, *case[1:])))
        else:
            print(json.dumps(timing_case(args.n, args.K, *case[1:], args.repeat)))
        return
    print(f"n={args.n}, K={args.K}, balanced, lam=10, float64; median of {args.repeat} "
          "interleaved calls")
    print(f"{'targets':<12} {'call':<24} {'input':<15} {'time (s)':>9} {'CPU (s)':>8} "
          f"{'traced (MiB)':>13} {'peak RSS (MiB)':>15}")
    for label, nonzeros in KINDS.items():
        for call in CALLS:
            times = _child(args, ["timing", nonzeros, call])
            for kind in INPUTS:
                r = _child(args, ["memory", nonzeros, kind, call])
                wall, cpu = times[kind]
                print(f"{label:<12} {call:<24} {kind:<15} {wall:>9.3f} {cpu:>8.3f} "
                      f"{r['traced_MB']:>13.0f} {r['peak_rss_MB']:>15.0f}", flush=True)


if __name__ == "__main__":
    main()
