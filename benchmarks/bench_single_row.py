"""Single-row solves on every CPU path, with Numba's default thread pool.

One row runs on one thread on every path (:mod:`sinkhorn_nb.threads`); these
benchmarks track what a single call costs through the public functions and
with the row forced onto each path (``routing.force``): K = 50 labels, a
prediction with full support, a target with 4 non-zeros (Newton, support, dense
and log domain take such a row) or one non-zero (the closed form).
"""
import numpy as np

import sinkhorn_nb as snb
from sinkhorn_nb import routing
from sinkhorn_nb.cpu import drivers
from sinkhorn_nb.result import SinkhornResult
from sinkhorn_nb.validation import check_measures

K = 50
LAM = 20.0
GAMMAS = dict(gamma_a=1.0, gamma_b=1.0)


def _row(support, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.dirichlet(np.ones(K))
    y = np.zeros(K)
    y[rng.choice(K, support, replace=False)] = rng.dirichlet(np.ones(support))
    return h, y


class SingleRowPath:
    """One row forced onto each iterative path (what the driver runs)."""
    params = (["newton", "sparse", "dense", "log"], ["balanced", "relaxed"])
    param_names = ["path", "variant"]

    def setup(self, path, variant):
        if path == "newton" and variant == "relaxed":
            raise NotImplementedError("Newton's method solves balanced rows only")
        h, y = _row(4)
        gammas = GAMMAS if variant == "relaxed" else {}
        self.loss = snb.WassersteinLoss(snb.ground_metric.ordinal(K), LAM, variant, **gammas)
        controls = self.loss.controls
        self.measures = check_measures(h[None], y[None], K, variant == "balanced", False,
                                       controls)
        self.kernel = self.loss.kernel(self.measures.dtype)
        self.tol = controls.tol_for(self.measures.dtype)
        plan = routing.plan_for(self.measures, self.kernel, variant, self.loss.gammas,
                                controls.method, self.tol)
        self.plan = routing.force(plan, path, self.measures.support)
        self.time_solve(path, variant)          # compiled before timing

    def time_solve(self, path, variant):
        result = SinkhornResult.empty(1, K, self.measures.dtype)
        drivers.solve(self.measures, self.kernel, self.plan, self.loss.controls, self.tol,
                      None, result)


class SingleRowPublic:
    """One 1-D row through ``sinkhorn`` / ``sinkhorn_relaxed`` (validation, routing
    and solve), and through a reused :class:`~sinkhorn_nb.WassersteinLoss`."""
    params = (["one_hot", "4_nonzeros", "dense"], ["balanced", "relaxed"])
    param_names = ["target", "variant"]

    def setup(self, target, variant):
        self.M = snb.ground_metric.ordinal(K)
        self.h, self.y = _row({"one_hot": 1, "4_nonzeros": 4, "dense": K}[target])
        self.solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
        gammas = GAMMAS if variant == "relaxed" else {}
        self.loss = snb.WassersteinLoss(self.M, LAM, variant, **gammas)
        self.time_function(target, variant)
        self.time_reused_loss(target, variant)

    def time_function(self, target, variant):
        self.solve(self.h, self.y, self.M, LAM)

    def time_reused_loss(self, target, variant):
        self.loss(self.h, self.y)
