"""Accuracy figures: maximum errors against the independent log-domain reference
(``tests/reference.py``) and POT, finite-difference gradient errors, and the lam
range verified per dtype (``docs/accuracy.txt`` is its output).

    python benchmarks/accuracy_report.py > docs/accuracy.txt
"""
import pathlib
import sys
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))
import ot  # noqa: E402
from reference import plan_from_scalings, reference_balanced, reference_relaxed  # noqa: E402

import sinkhorn_nb as snb  # noqa: E402

TIGHT = dict(max_iter=200000, tol=1e-13)


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def problems():
    for K in (3, 10, 40):
        for lam in (1.0, 10.0, 50.0):
            for kind in ("dense", "sparse"):
                rng = np.random.default_rng(K * 100 + int(lam))
                M = snb.ground_metric.from_points(rng.normal(size=(K, 2)))
                h = rng.dirichlet(np.ones(K), 3)
                y = rng.dirichlet(np.ones(K), 3)
                if kind == "sparse":
                    y[rng.random(y.shape) < 0.6] = 0
                    y[:, 0] += 0.1
                    y /= y.sum(1, keepdims=True)
                yield K, lam, kind, M, h, y


def main():
    warnings.simplefilter("ignore")
    worst = dict(bal_ref_loss=0, bal_ref_grad=0, bal_ref_plan=0, bal_pot_plan=0,
                 rel_ref_loss=0, rel_ref_grad=0, rel_ref_plan=0, rel_pot_plan=0)
    for K, lam, kind, M, h, y in problems():
        b = snb.sinkhorn(h, y, M, lam, **TIGHT)
        r = snb.sinkhorn_relaxed(h, 2 * y, M, lam, 2.0, 0.5, **TIGHT)
        c = np.full((K, K), np.exp(-1.0))
        for i in range(3):
            L, g, P = reference_balanced(h[i], y[i], M, lam)
            T = plan_from_scalings(b.u[i], b.v[i], M, lam)
            worst["bal_ref_loss"] = max(worst["bal_ref_loss"], rel(b.loss[i], L))
            worst["bal_ref_grad"] = max(worst["bal_ref_grad"], rel(b.grad[i], g))
            worst["bal_ref_plan"] = max(worst["bal_ref_plan"], rel(T, P))
            Pp = ot.sinkhorn(h[i], y[i], M, 1 / lam, stopThr=1e-14, numItermax=200000)
            worst["bal_pot_plan"] = max(worst["bal_pot_plan"], rel(T, Pp))
            L, g, P = reference_relaxed(h[i], 2 * y[i], M, lam, 2.0, 0.5)
            T = plan_from_scalings(r.u[i], r.v[i], M, lam)
            fin = np.isfinite(g)
            worst["rel_ref_loss"] = max(worst["rel_ref_loss"], rel(r.loss[i], L))
            worst["rel_ref_grad"] = max(worst["rel_ref_grad"], rel(r.grad[i][fin], g[fin]))
            worst["rel_ref_plan"] = max(worst["rel_ref_plan"], rel(T, P))
            Pp = ot.unbalanced.sinkhorn_unbalanced(h[i], 2 * y[i], M, 1 / lam, (2.0, 0.5),
                                                   reg_type="kl", c=c, stopThr=1e-15,
                                                   numItermax=200000)
            worst["rel_pot_plan"] = max(worst["rel_pot_plan"], rel(T, Pp))
    print("max relative error over K in {3,10,40}, lam in {1,10,50}, dense/sparse, 3 rows:")
    for k, v in worst.items():
        print(f"  {k:<14} {v:.1e}")

    fd = {"balanced": 0.0, "relaxed": 0.0}
    rng = np.random.default_rng(0)
    K = 8
    M = snb.ground_metric.from_points(rng.normal(size=(K, 2)))
    for lam in (1.0, 10.0, 30.0):
        h = rng.dirichlet(np.ones(K))
        y = rng.dirichlet(np.ones(K))
        for variant, solve in (("balanced", snb.sinkhorn), ("relaxed", snb.sinkhorn_relaxed)):
            g = solve(h, y, M, lam, **TIGHT).grad
            for _ in range(4):
                d = rng.normal(size=K)
                if variant == "balanced":
                    d -= d.mean()
                e = 1e-6
                f = (solve(h + e * d, y, M, lam, **TIGHT).loss
                     - solve(h - e * d, y, M, lam, **TIGHT).loss) / (2 * e)
                fd[variant] = max(fd[variant], abs(f - g @ d) / max(abs(f), 1e-12))
    print("central finite differences (eps=1e-6), max relative error:")
    for k, v in fd.items():
        print(f"  {k:<14} {v:.1e}")

    print("lam * max(M) range, max |loss - reference| / |reference| (K=6, 3 rows):")
    for dtype in (np.float64, np.float32):
        for lmm in (0.1, 1.0, 10.0, 100.0, 1e3, 1e4):
            rng = np.random.default_rng(21)
            M = snb.ground_metric.from_points(rng.normal(size=(6, 2)))
            h = rng.dirichlet(np.ones(6), 3)
            y = rng.dirichlet(np.ones(6), 3)
            lam = lmm / M.max()
            r = snb.sinkhorn(h.astype(dtype), y.astype(dtype), M.astype(dtype), lam,
                             max_iter=1000000, tol=1e-11 if dtype == np.float64 else 1e-6)
            ref = [reference_balanced(h[i], y[i], M, lam, max_iter=1000000, tol=1e-11)[0]
                   for i in range(3)]
            finite = bool(np.all(np.isfinite(r.loss)) and np.all(np.isfinite(r.grad)))
            print(f"  {np.dtype(dtype).name:<8} {lmm:>8g}  finite={finite}  "
                  f"converged={bool(r.converged.all())}  iterations<={r.n_iter.max():>6}  "
                  f"rel err {rel(r.loss, ref):.1e}")


if __name__ == "__main__":
    main()
