"""Iterations and wall time to ``tol=1e-6`` versus ``lam`` and ``gamma``, with and
without acceleration, and against POT and OTT-JAX on the same problems.

Problem family: dense Dirichlet(1) predictions and targets, the metric of random
unit vectors in 16 dimensions (``ground_metric.from_embeddings``, max 0.999).

    python benchmarks/convergence.py                  # K in {256, 1000} x lam x gamma
    python benchmarks/convergence.py --quick          # K = 256, smaller budget
    python benchmarks/convergence.py --out conv.md    # also write a table (.md or .json)
    python benchmarks/convergence.py --anchors        # POT and OTT-JAX side by side

Every (cell, acceleration) pair first runs on ``--slow-rows`` rows (8), its
iteration cap doubled from 100 until the rows converge or the next run would not
fit in the time budget (``--budget`` seconds), then, when the small run
converged, on all ``--rows`` rows (64) in the same way.  A row that reaches its cap
counts as not converged, and the table gives the cap.  Speed-ups are ratios of
the two accelerations on the same rows in the same run.  Iteration counts do not
depend on the machine's load; times do.
"""
import argparse
import json
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone

import numpy as np

TOL = 1e-6
PROBE = 10                  # iterations of the cost probe
METHODS = ("none", "auto")


def problem(K, n=64, seed=0):
    """Metric and ``n`` dense rows; the first rows do not depend on ``n``."""
    import sinkhorn_nb as snb
    M = snb.ground_metric.from_embeddings(
        np.random.default_rng(seed).normal(size=(K, 16)))
    h = np.random.default_rng([seed, 1]).dirichlet(np.ones(K), size=n)
    y = np.random.default_rng([seed, 2]).dirichlet(np.ones(K), size=n)
    return M, h, y


def solve(h, y, M, lam, gamma, acceleration, max_iter, tol=TOL):
    """One call of ours (balanced when ``gamma`` is None) and its wall time."""
    import sinkhorn_nb as snb
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        if gamma is None:
            r = snb.sinkhorn(h, y, M, lam, tol=tol, max_iter=max_iter,
                             acceleration=acceleration)
        else:
            r = snb.sinkhorn_relaxed(h, y, M, lam, gamma_a=gamma, gamma_b=gamma, tol=tol,
                                     max_iter=max_iter, acceleration=acceleration)
        return r, time.perf_counter() - t


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cap_for(seconds_per_iteration, budget, max_iter):
    """Largest multiple of 10 iterations that fits ``budget`` (at least 10)."""
    fit = int(budget / max(seconds_per_iteration, 1e-9)) // 10 * 10
    return max(10, min(max_iter, fit))


def per_iteration(run):
    """Seconds per iteration of ``run(n_iter)``, net of the call's fixed cost: 10
    iterations, then (when that took under a second) enough for about 0.5 s."""
    t10 = run(PROBE)
    if t10 >= 1.0:
        return t10 / PROBE
    n = int(min(10000, max(2 * PROBE, PROBE * 0.5 / t10)))
    t = run(n)
    return (t - t10) / (n - PROBE) if t > t10 else t / n


def summary(r, seconds, rows, cap):
    n_iter = np.asarray(r.n_iter)
    return dict(rows=rows, cap=int(cap), n_iter_median=float(np.median(n_iter)),
                n_iter_max=int(n_iter.max()),
                converged=float(np.mean(r.converged)), seconds=float(seconds),
                max_err=float(np.max(r.err)))


def timed_runs(run, repeat):
    """``run()`` once, and ``repeat - 1`` more times when it took under a second:
    the last result and the median time."""
    r, t = run()
    times = [t]
    if t < 1.0:
        for _ in range(repeat - 1):
            r, t = run()
            times.append(t)
    return r, float(np.median(times))


def capped_run(run, budget, max_iter, first=100):
    """``run(cap)`` with the cap doubled from ``first`` until every row converges,
    the cap reaches ``max_iter``, or the next run would not fit in ``budget``
    seconds (it costs at most twice the last).  Returns the last result, its
    time and its cap."""
    cap, spent = min(first, max_iter), 0.0
    while True:
        r, t = run(cap)
        spent += t
        if np.all(r.converged) or cap >= max_iter or spent + 2 * t > budget:
            return r, t, cap
        cap = min(max_iter, 2 * cap)


def measure(M, h, y, lam, gamma, acceleration, args):
    """One (cell, acceleration) pair: the small run, then the full one if it
    converged.  Returns the reported summary, the small run's summary, and our
    result on the small rows (for the anchors' loss check)."""
    s = args.slow_rows
    r8, t8, cap = capped_run(
        lambda k: solve(h[:s], y[:s], M, lam, gamma, acceleration, k),
        args.budget, args.max_iter)
    if t8 < 1.0:
        r8, t8 = timed_runs(lambda: solve(h[:s], y[:s], M, lam, gamma, acceleration, cap),
                            args.repeat)
    small = report = summary(r8, t8, s, cap)
    n = h.shape[0]
    if n > s and small["converged"] == 1.0:
        rn, tn, cap_n = capped_run(
            lambda k: solve(h, y, M, lam, gamma, acceleration, k),
            args.budget, args.max_iter, first=cap)
        if tn < 1.0:
            rn, tn = timed_runs(lambda: solve(h, y, M, lam, gamma, acceleration, cap_n),
                                args.repeat)
        report = summary(rn, tn, n, cap_n)
    return report, small, r8


def ratio(none, auto):
    """Speed-up none / auto on the same rows (the full rows when both ran them),
    and whether it is a lower bound (``none`` reached its cap)."""
    pair = (none["full"], auto["full"])
    if none["full"]["rows"] != auto["full"]["rows"]:
        pair = (none["small"], auto["small"])
    a, b = pair
    return dict(rows=a["rows"], time=a["seconds"] / b["seconds"],
                iterations=a["n_iter_median"] / b["n_iter_median"],
                lower_bound=a["converged"] < 1.0)


def warm_up(args):
    """Compile (or load from Numba's cache) every path the grid uses."""
    log("warming up: compiling or loading the kernels")
    M, h, y = problem(64, 4)
    for lam in (10.0, 50.0, 200.0, 1000.0):
        for gamma in (None, 1.0, 100.0):
            for acceleration in METHODS:
                solve(h, y, M, lam, gamma, acceleration, 400)


def grid(args, cells):
    Ks = args.K or ((256,) if args.quick else (256, 1000))
    lams = args.lam or (10.0, 50.0, 200.0, 1000.0)
    gammas = (None, 1.0, 10.0, 100.0)
    warm_up(args)
    for K in Ks:
        M, h, y = problem(K, args.rows)
        for gamma in gammas:
            for lam in lams:
                cell = dict(K=K, lam=lam, gamma=gamma,
                            variant="balanced" if gamma is None else "relaxed")
                for acceleration in METHODS:
                    full, small, _ = measure(M, h, y, lam, gamma, acceleration, args)
                    cell[acceleration] = dict(full=full, small=small)
                    log(f"K={K} lam={lam:g} {cell['variant']}"
                        + ("" if gamma is None else f" gamma={gamma:g}")
                        + f" {acceleration}: {fmt_run(full)}")
                cell["speedup"] = ratio(cell["none"], cell["auto"])
                log(f"   speed-up none/auto on {cell['speedup']['rows']} rows: "
                    f"{fmt_ratio(cell['speedup'])}")
                cells.append(cell)
                args.save()


def fmt_run(s):
    return (f"{s['rows']} rows, n_iter {s['n_iter_median']:,.0f} / {s['n_iter_max']:,} "
            f"(cap {s['cap']:,}), {100 * s['converged']:.0f} % converged, "
            f"{s['seconds']:.3g} s")


def fmt_ratio(r):
    sign = ">= " if r["lower_bound"] else ""
    return f"{sign}{r['time']:.1f}x time, {sign}{r['iterations']:.1f}x iterations"


# ---------------------------------------------------------------- anchors

def plan_loss(T, M, lam):
    """Our objective at a plan: <T, M> + (1/lam) sum T log T."""
    from scipy.special import xlogy
    return float(np.sum(T * M) + np.sum(xlogy(T, T)) / lam)


def l1_error(T, a, b):
    """The larger L1 error of the plan's two marginals."""
    return float(max(np.abs(T.sum(axis=1) - a).sum(), np.abs(T.sum(axis=0) - b).sum()))


def pot_rows(name, h, y, M, lam, budget, max_iter):
    """POT row by row, to L1 marginal error <= tol.  POT stops on the L2 norm of
    the marginal error (its square for epsilon scaling).  ``sinkhorn`` and
    ``sinkhorn_log`` are run 10 iterations at a time (POT's loop written out for
    ``sinkhorn``; ``sinkhorn_log`` continued from its own potentials through
    ``warmstart``) until the plan meets the L1 test; the time is then that of
    one POT call running that many iterations.  The
    other methods are solved again with the threshold tightened by the observed
    ratio (at most 4 times); the iterations and time are those of the solve that
    met the test."""
    import ot
    from ot.bregman import _sinkhorn
    inner = []
    stabilized = _sinkhorn.sinkhorn_stabilized
    method = dict(sinkhorn="sinkhorn", sinkhorn_log="sinkhorn_log",
                  stabilized="sinkhorn_stabilized").get(name)

    def counting(*a, **kw):
        G, lg = stabilized(*a, **kw)
        inner.append(lg["n_iter"] + 1)
        return G, lg

    def call(a, b, thr, cap, warmstart=None):
        """Plan, iterations run, whether the cap stopped it, and the log."""
        inner.clear()
        if name == "epsilon_scaling":
            _sinkhorn.sinkhorn_stabilized = counting
            try:
                outer = cap // 100 + 20           # stages of at most 100 iterations
                T, lg = ot.bregman.sinkhorn_epsilon_scaling(
                    a, b, M, 1.0 / lam, numItermax=outer, stopThr=thr, log=True,
                    warn=False)
            finally:
                _sinkhorn.sinkhorn_stabilized = stabilized
            return T, sum(inner), lg["niter"] >= outer - 1 or sum(inner) >= cap, lg
        kw = {} if warmstart is None else dict(warmstart=warmstart)
        T, lg = ot.sinkhorn(a, b, M, 1.0 / lam, method=method, numItermax=cap,
                            stopThr=thr, log=True, warn=False, **kw)
        n_iter = lg.get("niter", lg.get("n_iter")) + 1
        return T, n_iter, n_iter >= cap, lg

    def continued(a, b, cap):
        """Iterations (a multiple of 10) at which the plan first meets the test."""
        if name == "sinkhorn":                      # POT's loop, checked in L1
            G = np.exp(M / (-1.0 / lam))
            Gp = (1.0 / a).reshape(-1, 1) * G
            u = np.full(len(a), 1.0 / len(a))
            for n in range(1, cap + 1):
                v = b / np.dot(G.T, u)
                u = 1.0 / np.dot(Gp, v)
                if n % 10 == 0:
                    T = u[:, None] * G * v[None, :]
                    if not np.all(np.isfinite(T)) or l1_error(T, a, b) <= TOL:
                        return n
            return cap
        warmstart, n = None, 0
        while n < cap:
            T, _, _, lg = call(a, b, 0.0, 10, warmstart)
            n += 10
            warmstart = ((lg["log_u"], lg["log_v"]) if name == "sinkhorn_log"
                         else (np.log(lg["u"]), np.log(lg["v"])))
            if not np.all(np.isfinite(T)) or l1_error(T, a, b) <= TOL:
                break
        return n

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def run(n):                                 # cost probe
            t = time.perf_counter()
            if name == "epsilon_scaling":
                stabilized(h[0], y[0], M, 1.0 / lam, numItermax=n, stopThr=0.0,
                           log=True, warn=False)
            else:
                call(h[0], y[0], 0.0, n)
            return time.perf_counter() - t
        per_iter = per_iteration(run)
        cap = cap_for(per_iter * len(h) * 2, budget, max_iter)
        out = []
        for a, b in zip(h, y):
            if name in ("sinkhorn", "sinkhorn_log"):
                n = continued(a, b, cap)
                t = time.perf_counter()
                T, n_iter, capped, _ = call(a, b, 0.0, n)
                seconds = time.perf_counter() - t
                err = l1_error(T, a, b) if np.all(np.isfinite(T)) else np.inf
            else:
                thr = TOL
                for _ in range(5):
                    t = time.perf_counter()
                    T, n_iter, capped, _ = call(a, b, thr, cap)
                    seconds = time.perf_counter() - t
                    err = l1_error(T, a, b) if np.all(np.isfinite(T)) else np.inf
                    if err <= TOL or not np.isfinite(err) or capped:
                        break
                    thr *= 0.9 * TOL / err
            out.append(dict(n_iter=n_iter, err=err, seconds=seconds,
                            loss=plan_loss(T, M, lam) if np.isfinite(err) else np.nan))
    return out, cap


def ott_rows(config, h, y, M, lam, budget, max_iter):
    """OTT-JAX, ``vmap`` over the rows, jitted; converged by its own test (L1
    error of one marginal, its default ``norm_error=1``).  Time of a warm call."""
    import jax
    import jax.numpy as jnp
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import acceleration, sinkhorn

    def make(cap):
        kw = {}
        if config == "momentum":
            kw["momentum"] = acceleration.Momentum(start=100)
        elif config == "anderson":
            kw["anderson"] = acceleration.AndersonAcceleration(memory=5)

        def one(a, b, thr):
            geom = geometry.Geometry(cost_matrix=jnp.asarray(M), epsilon=1.0 / lam)
            solver = sinkhorn.Sinkhorn(threshold=thr, max_iterations=cap, **kw)
            out = solver(linear_problem.LinearProblem(geom, a, b))
            return out.n_iters, out.matrix, out.converged
        return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))

    a, b = jnp.asarray(h), jnp.asarray(y)
    probe = make(2 * PROBE)
    jax.block_until_ready(probe(a, b, -1.0))
    t = time.perf_counter()
    jax.block_until_ready(probe(a, b, -1.0))
    per_iter = (time.perf_counter() - t) / (2 * PROBE)
    cap = cap_for(per_iter, budget, max_iter)
    f = make(cap)
    jax.block_until_ready(f(a, b, 1.0))          # compile; stops at the first check
    t = time.perf_counter()
    n_iter, T, converged = jax.block_until_ready(f(a, b, TOL))
    seconds = time.perf_counter() - t
    T = np.asarray(T)
    out = []
    for r in range(len(h)):
        err = l1_error(T[r], h[r], y[r]) if np.all(np.isfinite(T[r])) else np.inf
        out.append(dict(n_iter=int(n_iter[r]), err=err, seconds=seconds / len(h),
                        converged=bool(converged[r]) and np.isfinite(err),
                        loss=plan_loss(T[r], M, lam) if np.isfinite(err) else np.nan))
    return out, cap


def anchor_summary(rows, cap, ours):
    n_iter = np.array([r["n_iter"] for r in rows])
    ok = np.array([r.get("converged", r["err"] <= TOL) for r in rows])
    err = max(r["err"] for r in rows)
    loss = np.array([r["loss"] for r in rows])
    both = ok & np.asarray(ours.converged)
    gap = (float(np.max(np.abs(loss[both] - ours.loss[both]) / np.abs(ours.loss[both])))
           if both.any() else None)
    return dict(rows=len(rows), cap=int(cap), n_iter_median=float(np.median(n_iter)),
                n_iter_max=int(n_iter.max()), converged=float(ok.mean()), max_err=err,
                seconds=float(sum(r["seconds"] for r in rows)), loss_rel_diff=gap)


def anchors(args, cells):
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import ott  # noqa: F401
        have_ott = True
    except ImportError as e:
        log(f"OTT-JAX not available ({e}); skipped")
        have_ott = False
    try:
        import ot  # noqa: F401
        have_pot = True
    except ImportError as e:
        log(f"POT not available ({e}); skipped")
        have_pot = False
    warm_up(args)
    for K in args.K or ((256,) if args.quick else (256, 1000)):
        M, h, y = problem(K, args.rows)
        h, y = h[:args.slow_rows], y[:args.slow_rows]
        for lam in args.lam or (50.0, 200.0, 1000.0):
            cell = dict(K=K, lam=lam, rows=len(h))
            for acceleration in METHODS:
                full, _, r = measure(M, h, y, lam, None, acceleration, args)
                cell[acceleration] = full
                log(f"K={K} lam={lam:g} ours {acceleration}: {fmt_run(full)}")
            ours = r
            configs = []
            if have_pot:
                configs += [("POT", "sinkhorn" if lam * M.max() < 700 else "sinkhorn_log"),
                            ("POT", "epsilon_scaling")]
                if lam * M.max() >= 700:
                    configs.append(("POT", "stabilized"))
            if have_ott:
                configs += [("OTT", "default"), ("OTT", "momentum")]
                if K == 256 or args.all_anchors:
                    configs.append(("OTT", "anderson"))
            for lib, name in configs:
                if f"{lib} {name}" in (args.skip or ()):
                    continue
                fn = pot_rows if lib == "POT" else ott_rows
                try:
                    rows, cap = fn(name, h, y, M, lam, args.anchor_budget, args.max_iter)
                    res = anchor_summary(rows, cap, ours)
                    log(f"K={K} lam={lam:g} {lib} {name}: {fmt_run(res)}, "
                        f"loss vs ours {res['loss_rel_diff']}")
                except Exception as e:          # report, never hide, a failing anchor
                    res = dict(error=f"{type(e).__name__}: {e}")
                    log(f"K={K} lam={lam:g} {lib} {name}: failed: {res['error']}")
                cell[f"{lib} {name}"] = res
                args.save()
            cells.append(cell)
            args.save()


# ---------------------------------------------------------------- output

def machine():
    import numba
    import sinkhorn_nb
    info = dict(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                cpus=os.cpu_count(), python=platform.python_version(),
                numpy=np.__version__, numba=numba.__version__,
                sinkhorn_nb=getattr(sinkhorn_nb, "__version__", "?"))
    for name in ("ot", "ott", "jax"):
        mod = sys.modules.get(name)
        if mod is not None:
            info[name] = getattr(mod, "__version__", "?")
    if hasattr(os, "getloadavg"):
        info["loadavg"] = os.getloadavg()
    return info


def cell_md(s):
    if "error" in s:
        return "failed"
    cap = "" if s["converged"] == 1.0 else f" (cap {s['cap']:,})"
    return (f"{s['n_iter_median']:,.0f} / {s['n_iter_max']:,} | "
            f"{100 * s['converged']:.0f} %{cap} | {s['seconds']:.3g} s ({s['rows']})")


def markdown(result):
    seen = result.get("load_seen") or [float("nan")]
    lines = [f"Run {result['machine']['date']}, {result['seconds'] / 60:.0f} minutes, "
             f"on {result['machine']['cpus']} cores; load average (1 min) "
             f"{min(seen):.1f}-{max(seen):.1f} during the run.", ""]
    if result.get("grid"):
        for variant in ("balanced", "relaxed"):
            rows = [c for c in result["grid"] if c["variant"] == variant]
            if not rows:
                continue
            lines += ["| K | lam | gamma | none: n_iter median / max | converged | time (rows) "
                      "| auto: n_iter median / max | converged | time (rows) "
                      "| speed-up, time | speed-up, iterations |",
                      "|---" * 10 + "|"]
            for c in rows:
                r = c["speedup"]
                sign = ">= " if r["lower_bound"] else ""
                lines.append(
                    f"| {c['K']} | {c['lam']:g} | "
                    f"{'-' if c['gamma'] is None else format(c['gamma'], 'g')} | "
                    f"{cell_md(c['none']['full'])} | {cell_md(c['auto']['full'])} | "
                    f"{sign}{r['time']:.1f}x ({r['rows']} rows) | "
                    f"{sign}{r['iterations']:.1f}x |")
            lines.append("")
    if result.get("anchors"):
        lines += ["| K | lam | solver | n_iter median / max | converged | time (rows) "
                  "| max L1 error | loss vs ours |", "|---" * 8 + "|"]
        for c in result["anchors"]:
            for key, s in c.items():
                if not isinstance(s, dict):
                    continue
                name = f"ours, acceleration=\"{key}\"" if key in METHODS else key
                gap = s.get("loss_rel_diff")
                err = s.get("max_err")
                lines.append(f"| {c['K']} | {c['lam']:g} | {name} | {cell_md(s)} | "
                             f"{'-' if err is None else format(err, '.1e')} | "
                             f"{'-' if gap is None else format(gap, '.1e')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="K = 256 only, 3 s budgets")
    p.add_argument("--anchors", action="store_true",
                   help="POT and OTT-JAX against ours, 8 rows, lam in {50, 200, 1000}")
    p.add_argument("--all-anchors", action="store_true",
                   help="also OTT-JAX's Anderson acceleration at K = 1000")
    p.add_argument("--out", help="write the results: .json, else markdown")
    p.add_argument("--K", type=int, nargs="+", help="only these K")
    p.add_argument("--skip", nargs="+", help='anchors to leave out, e.g. "POT epsilon_scaling"')
    p.add_argument("--lam", type=float, nargs="+", help="only these lam")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--slow-rows", type=int, default=8)
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per run of ours (default 15, --quick 3)")
    p.add_argument("--anchor-budget", type=float, default=None,
                   help="seconds per anchor and cell (default 40, --quick 5)")
    p.add_argument("--max-iter", type=int, default=100000)
    p.add_argument("--repeat", type=int, default=3,
                   help="repeats of a run under one second (median time)")
    args = p.parse_args(argv)
    if args.budget is None:
        args.budget = 3.0 if args.quick else 15.0
    if args.anchor_budget is None:
        args.anchor_budget = 5.0 if args.quick else 40.0
    start = time.perf_counter()
    result = dict(tol=TOL, args=dict(vars(args)), anchors=[], grid=[])

    def save():
        """Write what has been measured so far (after every cell)."""
        result["machine"] = machine()
        result["seconds"] = time.perf_counter() - start
        result.setdefault("load_seen", []).extend(result["machine"].get("loadavg", ())[:1])
        if args.out:
            with open(args.out, "w") as f:
                if args.out.endswith(".json"):
                    json.dump(result, f, indent=1)
                else:
                    f.write(markdown(result) + "\n")
    args.save = save
    if args.anchors:
        anchors(args, result["anchors"])
    else:
        grid(args, result["grid"])
    save()
    print(markdown(result))
    log(f"done in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
