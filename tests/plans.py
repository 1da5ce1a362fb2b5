"""Solving with a plan built in the test: every row on one path, on the CPU."""
import numpy as np

import sinkhorn_nb as snb
from sinkhorn_nb import routing
from sinkhorn_nb.cpu import drivers
from sinkhorn_nb.result import SinkhornResult
from sinkhorn_nb.validation import check_measures

GAMMAS = (0.7, 1.3)


def engine(variant, M, lam, **controls):
    gammas = dict(zip(("gamma_a", "gamma_b"), GAMMAS)) if variant == "relaxed" else {}
    return snb.WassersteinLoss(M, lam, variant, **gammas, **controls)


def plan_of(loss, h, y):
    """The validated measures, the kernel and the plan :func:`make_plan` builds."""
    measures = check_measures(h, y, loss.M.shape[0], loss.variant == "balanced", False,
                              loss.controls)
    kernel = loss.kernel(measures.dtype)
    tol = loss.controls.tol_for(measures.dtype)
    return measures, kernel, routing.plan_for(measures, kernel, loss.variant, loss.gammas,
                                              loss.controls.method, tol,
                                              acceleration=loss.controls.acceleration)


def solve_plan(loss, measures, kernel, plan, init=None):
    """Run ``plan`` on the CPU driver; returns ``(result, status)``."""
    tol = loss.controls.tol_for(measures.dtype)
    result = SinkhornResult.empty(*measures.shape, measures.dtype)
    status = drivers.solve(measures, kernel, plan, loss.controls, tol, init, result)
    return result, status


def solve_on_path(path, variant, h, y, M, lam, **controls):
    """Every iterated row of ``(h, y)`` on ``path``; returns the result (batched)."""
    loss = engine(variant, M, lam, **controls)
    measures, kernel, plan = plan_of(loss, np.atleast_2d(h), np.atleast_2d(y))
    plan = routing.force(plan, path, measures.support)
    return solve_plan(loss, measures, kernel, plan)[0]
