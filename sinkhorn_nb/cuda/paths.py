"""CUDA drivers: allocation, launches and the convergence loop (mirrors
:mod:`sinkhorn_nb.cpu.paths`).

Everything stays on the device; the host reads back one integer (the number of
rows still iterating) every ``check_every`` iterations, and a few per-row
integers (support sizes, rows to redo) once per solve.  Scratch arrays live in
:meth:`DeviceGibbsKernel.scratch` and are reused by the next call of the same
shape, so a training loop allocates only its outputs and a few length-n masks.
"""
import os
import threading
from dataclasses import dataclass

import numpy as np
from numba import cuda

from ..cpu.paths import SPARSE_FRACTION
from .scaling import kernels

#: Default launch shape ``(tile, micro, block)``: on a real GPU 16x16 threads per
#: product block, each computing a 4x4 register tile (64x64 outputs per block),
#: and 128-thread reductions; under the CUDA simulator (which runs each thread in
#: Python) 4x4 threads with 2x2 register tiles and 4-thread reductions.
DEFAULT_LAUNCH = (4, 2, 4) if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else (16, 4, 128)


class DeviceGibbsKernel:
    """Device copies of a :class:`~sinkhorn_nb.gibbs.GibbsKernel`'s arrays, and
    the solvers' scratch arrays (kept across calls)."""

    def __init__(self, host_kernel):
        self.host = host_kernel
        self.dtype = host_kernel.dtype
        self.lam = host_kernel.lam
        copies = {}       # a symmetric metric shares its transposes (one device copy)

        def to_device(array):   # keyed by identity; the host array is kept alive
            if id(array) not in copies:
                copies[id(array)] = (array, cuda.to_device(array))
            return copies[id(array)][1]
        for name in ("G", "G_T", "GM_T", "M", "M_T"):
            setattr(self, name, to_device(getattr(host_kernel, name)))
        self.M64 = to_device(np.asarray(host_kernel.M, np.float64))
        self.M_T64 = (self.M64 if host_kernel.symmetric
                      else to_device(np.asarray(host_kernel.M_T, np.float64)))
        self._scratch = threading.local()

    def scratch(self, name, shape, dtype):
        """The device array ``name`` of this shape and dtype, reused across calls.

        Its contents are whatever the last user left.  One set per host thread
        (calls from different threads never share a buffer); a new shape or dtype
        replaces the array, so memory stays bounded by the latest batch size.
        """
        held = self._scratch.__dict__
        key = (tuple(np.atleast_1d(shape)), np.dtype(dtype))
        if name not in held or held[name][0] != key:
            held[name] = (key, cuda.device_array(shape, dtype))
        return held[name][1]

    def multiplicative_is_safe(self):
        return self.host.multiplicative_is_safe()


@dataclass
class DeviceState:
    """Device mirror of :class:`sinkhorn_nb.cpu.paths.ScalingState` (+ row masks)."""
    log_u: object
    log_v: object
    lse_row: object
    lse_col: object
    cost: object
    n_iter: object
    err: object
    status: object
    mass: object
    active: object

    @classmethod
    def empty(cls, n, K, kernel):
        """Scratch log-domain arrays and masks; fresh per-row outputs (they are
        returned to the caller)."""
        f = np.float64
        logs = (kernel.scratch(name, (n, K), f)
                for name in ("log_u", "log_v", "lse_row", "lse_col"))
        return cls(*logs, cuda.device_array(n, f), cuda.device_array(n, np.int64),
                   cuda.device_array(n, f), cuda.device_array(n, np.int64),
                   kernel.scratch("mass", n, f), kernel.scratch("active", n, np.int32))


class Launcher:
    """Grid shapes for one ``(n, K)`` batch and a ``(tile, micro, block)`` configuration.

    Named shapes: ``mm`` (the products), ``flat`` (one thread per entry),
    ``rows`` (one block per row), ``per_row`` (one thread per row); ``shape`` may
    also be a ``(grid, threads)`` pair.
    """

    def __init__(self, n, K, dtype, launch=DEFAULT_LAUNCH):
        self.tile, self.micro, self.block = launch
        self.k = kernels(*launch, np.dtype(dtype))
        self.k64 = kernels(*launch, np.dtype(np.float64))
        span = self.tile * self.micro
        self.mm = ((K + span - 1) // span, (n + span - 1) // span), (self.tile, self.tile)
        self.flat = self.flat_over(n * K)
        self.per_row = self.flat_over(n)
        self.rows = (n,), (self.block,)

    def flat_over(self, count):
        """One thread per item of ``count``."""
        threads = 128 if self.block >= 128 else self.block
        return ((count + threads - 1) // threads,), (threads,)

    def __call__(self, name, shape, *args, float64=False):
        grid, threads = getattr(self, shape) if isinstance(shape, str) else shape
        (self.k64 if float64 else self.k)[name][grid, threads](*args)


def _loop(run_a, check, update_s, second_half, max_iter, tol, check_every, n_active):
    """The shared convergence loop of both paths (host side, asynchronous launches)."""
    it = 0
    while True:
        run_a()
        final = it == max_iter
        if final or (tol > 0 and it > 0 and it % check_every == 0):
            n_active[0] = 0   # host write to a mapped 1-int array is cheap enough
            check(it, final)
            if final or int(n_active.copy_to_host()[0]) == 0:
                return
        update_s()
        second_half()
        it += 1


def multiplicative(go, h, y, kernel, state, active, first_is_v, exp_a, exp_b, max_iter, tol,
                   check_every, u, v, redo):
    """Batched multiplicative Sinkhorn (dense products) on the rows with ``active``.

    ``active`` (device, int32) is consumed; ``redo[r]`` is set for the rows
    solved here (1 where the solve over/underflowed).
    """
    n, K = h.shape
    if first_is_v:
        P, Q, K_p, K_q, S, T, e_s, e_t = y, h, kernel.G, kernel.G_T, v, u, exp_b, exp_a
    else:
        P, Q, K_p, K_q, S, T, e_s, e_t = h, y, kernel.G_T, kernel.G, u, v, exp_a, exp_b
    A = kernel.scratch("A", (n, K), h.dtype)
    B = kernel.scratch("B", (n, K), h.dtype)
    n_active = cuda.to_device(np.zeros(1, np.int64))
    iterated = _copy(kernel, "iterated", active)

    _loop(lambda: go("matmul_rows", "mm", T, K_p, A, active),
          lambda it, final: go("row_errors", "rows", P, A, S, e_s, False, state.mass, it, tol,
                               final, active, state.n_iter, state.err, state.status, n_active),
          lambda: go("update_scaling", "flat", P, A, S, e_s, active),
          lambda: (go("matmul_rows", "mm", S, K_q, B, active),
                   go("update_scaling", "flat", Q, B, T, e_t, active)),
          max_iter, tol, check_every, n_active)

    Gv, GTu, GMv = (kernel.scratch(name, (n, K), h.dtype) for name in ("Gv", "GTu", "GMv"))
    go("matmul_rows", "mm", v, kernel.G_T, Gv, iterated)
    go("matmul_rows", "mm", u, kernel.G, GTu, iterated)
    go("matmul_rows", "mm", v, kernel.GM_T, GMv, iterated)
    _checked_state(go, h, y, u, v, Gv, GTu, GMv, state, iterated, redo)


def _checked_state(go, h, y, u, v, Gv, GTu, GMv, state, rows, redo):
    """Logs, cost and failure flags of a multiplicative solve on ``rows``."""
    go("logs_of_scalings", "rows", u, v, Gv, GTu, GMv, rows, state.log_u, state.log_v,
       state.lse_row, state.lse_col, state.cost)
    go("flag_failures", "rows", h, y, state.log_u, state.log_v, state.lse_row, state.lse_col,
       state.cost, state.status, rows, redo)


def multiplicative_sparse(go, h, y, kernel, state, active, width, first_is_v, exp_a, exp_b,
                          max_iter, tol, check_every, u, v, redo):
    """:func:`multiplicative` restricted to each row's target support, at most
    ``width`` labels (mirrors :func:`sinkhorn_nb.cpu.paths.multiplicative_sparse`).

    The support is gathered once; every product then costs ``O(K width)`` per
    row: ``G v`` as a combination of ``width`` rows of ``G^T`` and ``G^T u`` as
    ``width`` dot products (``support_combine`` / ``support_dots``).  Same update
    order, error and per-row stopping as the dense path.
    """
    n, K = h.shape
    index = kernel.scratch("index", (n, width), np.int32)
    size = kernel.scratch("size", n, np.int32)
    y_s, v_s, gtu_s = (kernel.scratch(name, (n, width), h.dtype)
                       for name in ("y_s", "v_s", "gtu_s"))
    go("support_gather", "per_row", y, v, active, index, size, y_s, v_s)
    Gv, GTu, GMv = (kernel.scratch(name, (n, K), h.dtype) for name in ("Gv", "GTu", "GMv"))
    n_active = cuda.to_device(np.zeros(1, np.int64))
    iterated = _copy(kernel, "iterated", active)
    pairs = go.flat_over(n * width)
    dots = (n, width), (go.block,)

    def combine(K_T, out, rows):
        go("support_combine", "flat", K_T, index, size, v_s, out, rows)

    def gather_dots(rows):
        go("support_dots", dots, kernel.G_T, index, size, u, gtu_s, rows)

    def error(P, A, S, e, it, final):
        go("row_errors", "rows", P, A, S, e, False, state.mass, it, tol, final, active,
           state.n_iter, state.err, state.status, n_active)

    if first_is_v:     # balanced: v from y on the support, then u from h
        _loop(lambda: gather_dots(active),
              lambda it, final: error(y_s, gtu_s, v_s, exp_b, it, final),
              lambda: go("update_scaling", pairs, y_s, gtu_s, v_s, exp_b, active),
              lambda: (combine(kernel.G_T, Gv, active),
                       go("update_scaling", "flat", h, Gv, u, exp_a, active)),
              max_iter, tol, check_every, n_active)
    else:              # relaxed: u from h, then v from y on the support
        _loop(lambda: combine(kernel.G_T, Gv, active),
              lambda it, final: error(h, Gv, u, exp_a, it, final),
              lambda: go("update_scaling", "flat", h, Gv, u, exp_a, active),
              lambda: (gather_dots(active),
                       go("update_scaling", pairs, y_s, gtu_s, v_s, exp_b, active)),
              max_iter, tol, check_every, n_active)

    combine(kernel.G_T, Gv, iterated)
    gather_dots(iterated)
    combine(kernel.GM_T, GMv, iterated)
    go("support_scatter", pairs, index, size, v_s, gtu_s, v, GTu, iterated)
    _checked_state(go, h, y, u, v, Gv, GTu, GMv, state, iterated, redo)


def log_domain(go, h, y, kernel, state, rows, first_is_v, exp_a, exp_b, max_iter, tol,
               check_every, t0=None):
    """Log-domain Sinkhorn on the rows with ``rows[r] != 0`` (all in float64).

    ``t0`` (host, optional): a warm start for the scaling updated second
    (``u`` for balanced, ``v`` for relaxed), as on the CPU.
    """
    n, K = h.shape
    lam = kernel.lam
    if first_is_v:
        P, Q, C_p, C_q, S, T, e_s, e_t = (y, h, kernel.M_T64, kernel.M64, state.log_v,
                                          state.log_u, exp_b, exp_a)
    else:
        P, Q, C_p, C_q, S, T, e_s, e_t = (h, y, kernel.M64, kernel.M_T64, state.log_u,
                                          state.log_v, exp_a, exp_b)
    active = _copy(kernel, "log_active", rows)
    warm = t0 is not None
    start = T                    # not read without a warm start
    if warm:                     # (T also holds the closed-form rows: not overwritten)
        start = kernel.scratch("log_start", (n, K), np.float64)
        with np.errstate(divide="ignore"):
            start.copy_to_device(np.log(np.asarray(t0, np.float64)))
    go("init_log_scalings", "flat", P, Q, S, T, start, warm, active)
    A = kernel.scratch("log_A", (n, K), np.float64)
    B = kernel.scratch("log_B", (n, K), np.float64)
    n_active = cuda.to_device(np.zeros(1, np.int64))
    _loop(lambda: go("log_lse", "flat", T, C_p, lam, A, active, float64=True),
          lambda it, final: go("row_errors", "rows", P, A, S, e_s, True, state.mass, it, tol,
                               final, active, state.n_iter, state.err, state.status, n_active),
          lambda: go("log_update", "flat", P, A, S, e_s, active),
          lambda: (go("log_lse", "flat", S, C_q, lam, B, active, float64=True),
                   go("log_update", "flat", Q, B, T, e_t, active)),
          max_iter, tol, check_every, n_active)
    go("log_lse", "flat", state.log_v, kernel.M64, lam, state.lse_row, rows, float64=True)
    go("log_lse", "flat", state.log_u, kernel.M_T64, lam, state.lse_col, rows, float64=True)
    go("log_cost", "rows", state.log_u, state.log_v, kernel.M64, lam, rows, state.cost,
       float64=True)


def solve(h, y, kernel, balanced, exp_a, exp_b, max_iter, tol, check_every, method,
          launch=DEFAULT_LAUNCH, u0=None, v0=None):
    """Solve every row on the device; return the :class:`DeviceState`.

    Closed-form rows (balanced one-hot targets, relaxed empty rows) are filled by
    ``prepare_rows``; the rest run the multiplicative path where it is safe and
    the log-domain path otherwise or where the multiplicative one failed.
    """
    n, K = h.shape
    go = Launcher(n, K, h.dtype, launch)
    state = DeviceState.empty(n, K, kernel)
    support_size = kernel.scratch("support_size", n, np.int32)
    go("prepare_rows", "rows", h, y, balanced, kernel.lam, kernel.M, state.mass, state.active,
       state.log_u, state.log_v, state.lse_row, state.lse_col, state.cost, state.n_iter,
       state.err, state.status, support_size)
    first_is_v = balanced
    use_mult = method == "multiplicative" or (method == "auto"
                                              and kernel.multiplicative_is_safe())
    if use_mult:
        u, v = (kernel.scratch(name, (n, K), h.dtype) for name in ("u", "v"))
        for x, x0 in ((u, u0), (v, v0)):
            if x0 is None:
                go("fill", "flat", x, 1.0)
            else:
                x.copy_to_device(np.ascontiguousarray(x0, h.dtype))
        go("zero_off_support", "flat", y, v)   # as on the CPU: v starts at 0 off supp(y)
        active = state.active.copy_to_host() != 0
        sizes = support_size.copy_to_host()
        sparse = sizes <= SPARSE_FRACTION * K          # the CPU's rule
        rows = cuda.to_device(np.zeros(n, np.int32))   # rows to redo in the log domain
        args = (first_is_v, exp_a, exp_b, max_iter, tol, check_every, u, v, rows)
        if np.any(active & sparse):
            width = int(sizes[active & sparse].max())
            multiplicative_sparse(go, h, y, kernel, state, _mask(active & sparse), width,
                                  *args)
        if np.any(active & ~sparse):
            multiplicative(go, h, y, kernel, state, _mask(active & ~sparse), *args)
        t0 = None           # rows redone after a failed multiplicative solve start cold
    else:
        rows = state.active
        t0 = u0 if first_is_v else v0
    if int(rows.copy_to_host().sum()) > 0:
        log_domain(go, h, y, kernel, state, rows, first_is_v, exp_a, exp_b, max_iter, tol,
                   check_every, t0)
    return state, go


def _mask(rows):
    """Device int32 mask from a host boolean mask."""
    return cuda.to_device(rows.astype(np.int32))


def _copy(kernel, name, mask):
    """A scratch device copy of a device mask (no host round trip)."""
    out = kernel.scratch(name, mask.shape, mask.dtype)
    out.copy_to_device(mask)
    return out


def outputs(go, h, y, kernel, state, balanced, gamma_a=1.0, gamma_b=1.0):
    """Loss, gradient, scalings, transport cost, error and convergence flags
    (new device arrays, in the dtype of ``h``) from a solved state."""
    n, K = h.shape
    loss = cuda.device_array(n, h.dtype)
    grad = cuda.device_array((n, K), h.dtype)
    if balanced:
        go("balanced_outputs", "rows", h, y, state.log_u, state.log_v, state.lse_row,
           kernel.lam, loss, grad)
    else:
        go("relaxed_outputs", "rows", h, y, state.log_u, state.log_v, state.lse_row,
           state.lse_col, kernel.lam, gamma_a, gamma_b, loss, grad)
    u = cuda.device_array((n, K), h.dtype)
    v = cuda.device_array((n, K), h.dtype)
    go("exp_scalings", "flat", state.log_u, state.log_v, u, v)
    cost = cuda.device_array(n, h.dtype)
    err = cuda.device_array(n, h.dtype)
    converged = cuda.device_array(n, np.bool_)
    go("row_results", "per_row", state.cost, state.err, state.status, cost, err, converged)
    return loss, grad, u, v, cost, err, converged
