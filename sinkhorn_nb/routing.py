r"""Which path each row takes: one plan, built once per solve, for the CPU and CUDA alike.

:func:`make_plan` reads the facts of a validated batch (masses, support sizes),
of the Gibbs kernel (``lam * max(M)``, the compute dtype) and of the call
(variant, gammas, method, tolerance), and returns a frozen :class:`Plan`.  The
drivers :func:`sinkhorn_nb.cpu.drivers.solve` and
:func:`sinkhorn_nb.cuda.drivers.solve` execute it and decide nothing that it
decides.

The paths, in the order a driver runs them:

==============  ==============================================================
path            rows
==============  ==============================================================
``closed``      balanced: the target has one non-zero (``T = h e_j^T``);
                relaxed: ``h`` or ``y`` is all zero (``T = 0``)
``newton``      balanced, ``method="auto"``, ``tol > 0``, multiplicative range:
                the target has 2 to :data:`NEWTON_MAX_SUPPORT` non-zeros
                (Newton's method on the semi-dual)
``sparse``      multiplicative range: the target has at most
                :data:`SPARSE_FRACTION` ``* K`` non-zeros (products on its support)
``dense``       multiplicative range: the other rows (BLAS products over the batch)
``log``         ``method="log"``, or ``method="auto"`` beyond the multiplicative
                range (:data:`MULTIPLICATIVE_LIMIT`) and for rows so light that
                their scalings would be subnormal: the log-domain iteration
==============  ==============================================================

A row whose path fails (its status is ``FAILED``: an overflow, a non-finite
result, a Newton step that cannot make progress) is handed on by one rule,
:func:`hand_on`: from ``newton`` to the scaling iteration (``sparse`` or
``dense``, by the same support rule), from ``sparse`` and ``dense`` (and the
outputs computed from their scalings) to ``log``, cold.  ``log`` is the last
path: a row that fails there is reported as failed.
"""
from dataclasses import dataclass, replace

import numpy as np

from .core import F32, F64

#: The paths of a plan, in the order a driver runs them (:func:`hand_on` only
#: hands rows to a later path).
PATHS = ("closed", "newton", "sparse", "dense", "log")

#: Largest ``lam * max(M)`` for which ``method="auto"`` runs the multiplicative
#: paths: beyond it the scalings can overflow and the entries of ``G`` lose
#: relative precision.  float64 keeps ``exp(-301) ~ 1e-131``, far above
#: underflow; float32 keeps ``exp(-31) ~ 3e-14``.
MULTIPLICATIVE_LIMIT = {F64: 300.0, F32: 30.0}

#: A target row takes the sparse path when it has at most this fraction of ``K``
#: non-zeros: the gathered products cost ``2 K s`` per iteration against the
#: ``2 K^2`` of the dense BLAS path, which runs a few times more flops per second.
SPARSE_FRACTION = 0.125

#: Balanced rows whose target has at most this many non-zeros (and at least 2)
#: are solved by Newton's method on the semi-dual when ``method="auto"`` and
#: ``tol > 0``: ``s`` unknowns, a Newton step costs ``O(K s^2)``, and it
#: converges in a handful of steps where Sinkhorn can need hundreds (when the
#: prediction nearly matches the target the labels of the support are weakly
#: coupled, which Sinkhorn resolves slowly).
NEWTON_MAX_SUPPORT = 8

#: lam-continuation of the log domain (``method="auto"``, accelerated): a cold
#: start with ``lam * max(M)`` above ``CONTINUATION_START`` is solved first at
#: ``lam / 2**k`` with ``lam / 2**k * max(M)`` at most ``CONTINUATION_START``,
#: then at twice that, and so on up to ``lam``; every stage but the last stops at
#: the error ``max(tol, STAGE_TOL)``.  Each stage starts from the potentials of
#: the one before, close to its own, which spares the slow first phase of the
#: iteration (a cold start at ``lam * max(M) = 1000`` takes ten times more
#: iterations).
CONTINUATION_START = 100.0
STAGE_TOL = 1e-3

#: The one-hot closed form forms ``u = h / G`` from the kernel when the batch
#: has at least ``K / ONE_HOT_DIVIDE_RATIO`` such rows (building ``G`` costs
#: ``K^2`` exponentials) or the kernel is built already; otherwise from
#: ``exp(lam M + 1)`` or the logarithm.
ONE_HOT_DIVIDE_RATIO = 8


@dataclass(frozen=True)
class Roles:
    r"""Which side a variant updates first, and the exponents of its updates.

    Both variants alternate :math:`s \leftarrow (p \oslash A)^{e_s}` and
    :math:`t \leftarrow (q \oslash B)^{e_t}`: the balanced one updates ``v`` from
    ``y`` first (exponents 1), the relaxed one ``u`` from ``h`` first (exponents
    :math:`a = \gamma_a\lambda/(\gamma_a\lambda + 1)`, :math:`b` likewise,
    Proposition 4.2 of Frogner et al.).

    Attributes
    ----------
    first_is_v : bool
        The first half-update is ``v`` from ``y`` (the balanced order).
    exp_a, exp_b : float
        Exponents of the ``u`` and ``v`` updates.
    """
    first_is_v: bool
    exp_a: float
    exp_b: float

    @classmethod
    def of(cls, variant, lam, gammas):
        if variant == "balanced":
            return cls(True, 1.0, 1.0)
        gamma_a, gamma_b = gammas
        return cls(False, gamma_a * lam / (gamma_a * lam + 1.0),
                   gamma_b * lam / (gamma_b * lam + 1.0))

    @property
    def exp_first(self):
        """Exponent of the side updated first."""
        return self.exp_b if self.first_is_v else self.exp_a

    @property
    def exp_second(self):
        return self.exp_a if self.first_is_v else self.exp_b


@dataclass(frozen=True, eq=False)
class Plan:
    """The path of every row of one solve (see the module docstring).

    Attributes
    ----------
    variant : {"balanced", "relaxed"}
    gammas : tuple of float or None
        ``(gamma_a, gamma_b)`` of the relaxed variant, None for the balanced one.
    roles : Roles
    closed, newton, sparse, dense, log : ndarray of int64
        The rows (indices into the batch) of each path, disjoint, ascending.
    sparse_width : int
        Largest target support among the ``sparse`` rows (0 when there are none).
    one_hot_divides : bool
        The closed form of one-hot balanced rows forms ``u = h / G`` (else from
        ``exp(lam M + 1)`` or the logarithm, whichever the dtype's range allows).
    accelerate : bool
        The scaling iterations (``sparse``, ``dense``, ``log``) are over-relaxed
        with a factor chosen per row, and the relaxed variant's common factor is
        set in closed form at every check (:mod:`sinkhorn_nb.overrelaxation`).
    log_lam_start : float
        The ``lam`` of the first stage of the log domain's lam-continuation (the
        solve's own ``lam`` when there is none); see :data:`CONTINUATION_START`.
    stage_tol : float
        The error at which a stage of the continuation hands on to the next.
    """
    variant: str
    gammas: object
    roles: Roles
    closed: np.ndarray
    newton: np.ndarray
    sparse: np.ndarray
    dense: np.ndarray
    log: np.ndarray
    sparse_width: int
    one_hot_divides: bool
    accelerate: bool = False
    log_lam_start: float = np.inf
    stage_tol: float = STAGE_TOL

    @property
    def balanced(self):
        return self.variant == "balanced"

    @property
    def n_rows(self):
        return sum(self.rows(path).size for path in PATHS)

    def rows(self, path):
        """The rows of ``path`` (one of :data:`PATHS`)."""
        return getattr(self, path)

    @property
    def iterated(self):
        """Every row that is not a closed form, ascending."""
        return np.sort(np.concatenate([self.newton, self.sparse, self.dense, self.log]))

    @property
    def multiplicative(self):
        """The rows of the multiplicative paths (``newton``, ``sparse``, ``dense``)."""
        return np.sort(np.concatenate([self.newton, self.sparse, self.dense]))

    @property
    def all_closed(self):
        """Every row is a closed form."""
        return self.closed.size == self.n_rows

    def check_covers(self, n):
        """Raise unless the paths (disjoint by construction) hold ``n`` rows: a plan
        that would leave a row unsolved is a bug, never a result."""
        if self.n_rows != n:
            raise RuntimeError(f"the plan routes {self.n_rows} rows, the batch has {n}")


def closed_form_rows(variant, support, mass_h, mass_y):
    """Mask of the rows solved in closed form: balanced targets with one non-zero,
    relaxed rows where ``h`` or ``y`` is all zero."""
    if variant == "balanced":
        return support == 1
    return (mass_h == 0) | (mass_y == 0)


def _rows(mask):
    rows = np.flatnonzero(mask).astype(np.int64, copy=False)
    rows.flags.writeable = False
    return rows


def _on_support(support, n_labels):
    """Mask of the rows that run the scaling iteration on their target's support."""
    return support <= SPARSE_FRACTION * n_labels


def make_plan(variant, gammas, lam, lam_max_m, dtype, n_labels, support, mass_h, mass_y,
              method, tol, kernel_built=False, scalings=True, acceleration="auto",
              continuation=True):
    """Route every row of a validated batch.

    Parameters
    ----------
    variant : {"balanced", "relaxed"}
    gammas : tuple of float or None
        ``(gamma_a, gamma_b)`` for "relaxed", None for "balanced".
    lam, lam_max_m : float
        ``lam`` and ``lam * max(M)``.
    dtype : numpy dtype
        The compute dtype.
    n_labels : int
        ``K``.
    support : ndarray of int64 (n,)
        Non-zeros of each target row.
    mass_h, mass_y : ndarray of float64 (n,)
        Row masses.
    method : {"auto", "multiplicative", "log"}
    tol : float
        The resolved tolerance (0 runs exactly ``max_iter`` iterations, so no
        Newton's method).
    kernel_built : bool, default False
        ``G_T`` is built already (the one-hot closed form then divides by it).
    scalings : bool, default True
        The caller wants the scalings ``u``, ``v`` of one-hot balanced rows
        (without, the closed form never needs ``G``).
    acceleration : {"auto", "overrelax", "none"}, default "auto"
        ``"auto"`` and ``"overrelax"`` over-relax the scaling iterations (and set
        the relaxed variant's common factor) when ``tol > 0``: the factor adapts
        at the convergence checks; ``tol = 0`` runs exactly ``max_iter`` plain
        iterations.  ``"auto"`` adds the log domain's lam-continuation
        (:data:`CONTINUATION_START`, with ``method="auto"``).
    continuation : bool, default True
        The backend runs the log domain's lam-continuation (with ``"auto"``
        method and acceleration; :data:`CONTINUATION_START`).

    Returns
    -------
    Plan
    """
    balanced = variant == "balanced"
    multiplicative_range = bool(lam_max_m <= MULTIPLICATIVE_LIMIT[np.dtype(dtype)])
    closed_mask = closed_form_rows(variant, support, mass_h, mass_y)
    closed = _rows(closed_mask)
    empty = _rows(closed_mask[:0])
    newton = sparse = dense = log = empty
    if closed.size < support.size:
        iterated = ~closed_mask
        if method == "log" or (method == "auto" and not multiplicative_range):
            log = _rows(iterated)
        else:
            if method == "auto":        # rows too light for the multiplicative path
                light = iterated & _too_light(mass_h, mass_y, lam_max_m, dtype)
                log = _rows(light)
                iterated = iterated & ~light
            newton_mask = iterated & (support <= NEWTON_MAX_SUPPORT) & bool(
                balanced and method == "auto" and tol > 0)
            sparse_mask = iterated & ~newton_mask & _on_support(support, n_labels)
            newton, sparse = _rows(newton_mask), _rows(sparse_mask)
            dense = _rows(iterated & ~newton_mask & ~sparse_mask)
    divides = bool(balanced and scalings and multiplicative_range and closed.size > 0
                   and (kernel_built or ONE_HOT_DIVIDE_RATIO * closed.size >= n_labels))
    accelerate = bool(acceleration != "none" and tol > 0)
    return Plan(variant, gammas, Roles.of(variant, lam, gammas), closed, newton, sparse, dense,
                log, _width(support, sparse), divides, accelerate,
                _lam_start(lam, lam_max_m, continuation and acceleration == "auto" and accelerate
                           and method == "auto"))


def plan_for(measures, kernel, variant, gammas, method, tol, scalings=True, acceleration="auto",
             continuation=True):
    """:func:`make_plan` from validated ``measures`` and a
    :class:`~sinkhorn_nb.gibbs.GibbsKernel` (or its device copy)."""
    return make_plan(variant, gammas, kernel.lam, kernel.lam_max_m, measures.dtype,
                     measures.shape[1], measures.support, measures.mass_h, measures.mass_y,
                     method, tol, kernel.built("G_T"), scalings, acceleration, continuation)


def force(plan, path, support):
    """``plan`` with every row it iterates moved to ``path`` (``"newton"``,
    ``"sparse"``, ``"dense"`` or ``"log"``): for tests and benchmarks that compare
    the paths on the same rows.  Failed rows are still handed on.

    Raises
    ------
    ValueError
        For another ``path``, or ``"newton"`` with a relaxed plan or a row whose
        target has more than :data:`NEWTON_MAX_SUPPORT` non-zeros (Newton's method
        solves balanced rows with small supports only).
    """
    if path not in ("newton", "sparse", "dense", "log"):
        raise ValueError(f"path must be 'newton', 'sparse', 'dense' or 'log', got {path!r}")
    rows = plan.iterated
    rows.flags.writeable = False
    if path == "newton" and (not plan.balanced or (support[rows] > NEWTON_MAX_SUPPORT).any()):
        raise ValueError("Newton's method solves balanced rows whose target has at most "
                         f"{NEWTON_MAX_SUPPORT} non-zeros")
    empty = rows[:0]
    moved = {name: (rows if name == path else empty)
             for name in ("newton", "sparse", "dense", "log")}
    width = _width(support, rows) if path == "sparse" else 0
    return replace(plan, sparse_width=width, **moved)


def _lam_start(lam, lam_max_m, continuation):
    """The first ``lam`` of the log domain's continuation (:data:`CONTINUATION_START`)."""
    if not continuation or lam_max_m <= CONTINUATION_START:
        return float(lam)
    return float(lam / 2.0 ** np.ceil(np.log2(lam_max_m / CONTINUATION_START)))


def _too_light(mass_h, mass_y, lam_max_m, dtype):
    """Mask of the rows whose mass times the smallest kernel entry
    ``exp(-lam max(M) - 1)`` falls below ``tiny / eps`` of ``dtype``: their
    scalings and products would be subnormal, losing relative precision without
    ever becoming non-finite, so ``method="auto"`` runs them in the log domain."""
    info = np.finfo(dtype)
    floor = np.log(info.tiny) - np.log(info.eps) + lam_max_m + 1.0
    with np.errstate(divide="ignore"):
        return np.log(np.minimum(mass_h, mass_y)) < floor


def _width(support, rows):
    return int(support[rows].max()) if rows.size else 0


def hand_on(path, failed, support, n_labels):
    """Where the rows ``failed`` on ``path`` go next: ``{path: rows}`` (``path`` is
    a path of :data:`PATHS`, or ``"outputs"`` for the outputs computed from the
    scalings of the multiplicative paths).

    The one rule for failed rows: Newton's method hands them to the scaling
    iteration on the target's support or over the batch (the rule of
    :func:`make_plan`), the scaling iterations (and the outputs computed from
    their scalings) hand them to the log domain, and the log domain is the last
    resort (nothing is returned).
    """
    if not failed.size or path == "log":
        return {}
    if path == "newton":
        on_support = _on_support(support[failed], n_labels)
        return {"sparse": failed[on_support], "dense": failed[~on_support]}
    return {"log": failed}          # "sparse", "dense", and "outputs" of their scalings


def execute(plan, warm, iterate, scalings_outputs, failed, support, n_labels):
    """Run the iterative paths of ``plan`` in order, handing failed rows on.

    Parameters
    ----------
    plan : Plan
    warm : bool
        The planned rows start from the caller's scalings; rows handed on by
        :func:`hand_on` always start cold.
    iterate : callable ``(path, rows, warm, width)``
        Runs ``path`` on ``rows`` (``width``: their largest target support).
    scalings_outputs : callable ``(rows)``
        Loss and gradient of the multiplicative rows from their scalings.
    failed : callable ``(rows) -> ndarray``
        The rows of ``rows`` whose status is ``FAILED``.
    support : ndarray of int64 (n,)
    n_labels : int
    """
    handed = {}

    def run(path, rows, start_warm, width=None):
        if not rows.size:
            return
        iterate(path, rows, start_warm, _width(support, rows) if width is None else width)
        for to, moved in hand_on(path, failed(rows), support, n_labels).items():
            handed[to] = np.union1d(handed.get(to, rows[:0]), moved).astype(np.int64)

    for path in ("newton", "sparse", "dense"):
        run(path, plan.rows(path), warm, plan.sparse_width if path == "sparse" else None)
        run(path, handed.pop(path, plan.rows(path)[:0]), False)
    solved = np.setdiff1d(plan.multiplicative, handed.get("log", plan.log[:0]))
    if solved.size:
        scalings_outputs(solved)
        for to, moved in hand_on("outputs", failed(solved), support, n_labels).items():
            handed[to] = np.union1d(handed.get(to, solved[:0]), moved).astype(np.int64)
    run("log", plan.log, warm)
    run("log", handed.pop("log", plan.log[:0]), False)
