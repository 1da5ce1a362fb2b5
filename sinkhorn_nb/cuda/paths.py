"""CUDA drivers: allocation, launches and the convergence loop (mirrors
:mod:`sinkhorn_nb.cpu.paths`).

Everything stays on the device; the host reads back one integer (the number of
rows still iterating) every ``check_every`` iterations, and the per-row
failure count once per solve.
"""
import os
from dataclasses import dataclass

import numpy as np
from numba import cuda

from .scaling import kernels

#: Default launch shape: on a real GPU 16x16 product tiles and 128-thread
#: reductions; under the CUDA simulator (which runs each thread in Python) 4x4 and 4.
DEFAULT_LAUNCH = (4, 4) if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else (16, 128)


class DeviceGibbsKernel:
    """Device copies of a :class:`~sinkhorn_nb.gibbs.GibbsKernel`'s arrays."""

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
    def empty(cls, n, K):
        f = np.float64
        return cls(*(cuda.device_array((n, K), f) for _ in range(4)),
                   cuda.device_array(n, f), cuda.device_array(n, np.int64),
                   cuda.device_array(n, f), cuda.device_array(n, np.int64),
                   cuda.device_array(n, f), cuda.device_array(n, np.int32))


class Launcher:
    """Grid shapes for one ``(n, K)`` batch and a ``(tile, block)`` configuration."""

    def __init__(self, n, K, dtype, launch=DEFAULT_LAUNCH):
        self.tile, self.block = launch
        self.k = kernels(self.tile, self.block, np.dtype(dtype))
        self.k64 = kernels(self.tile, self.block, np.dtype(np.float64))
        t = self.tile
        self.mm = ((K + t - 1) // t, (n + t - 1) // t), (t, t)
        flat = 128 if self.block >= 128 else self.block
        self.flat = ((n * K + flat - 1) // flat,), (flat,)
        self.rows = (n,), (self.block,)

    def __call__(self, name, shape, *args, float64=False):
        grid, threads = getattr(self, shape)
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


def multiplicative(go, h, y, kernel, state, first_is_v, exp_a, exp_b, max_iter, tol,
                   check_every, u, v):
    """Batched multiplicative Sinkhorn on the rows with ``state.active``."""
    n, K = h.shape
    if first_is_v:
        P, Q, K_p, K_q, S, T, e_s, e_t = y, h, kernel.G, kernel.G_T, v, u, exp_b, exp_a
    else:
        P, Q, K_p, K_q, S, T, e_s, e_t = h, y, kernel.G_T, kernel.G, u, v, exp_a, exp_b
    A = cuda.device_array((n, K), h.dtype)
    B = cuda.device_array((n, K), h.dtype)
    n_active = cuda.to_device(np.zeros(1, np.int64))
    active = state.active
    iterated = cuda.to_device(active.copy_to_host())

    _loop(lambda: go("matmul_rows", "mm", T, K_p, A, active),
          lambda it, final: go("row_errors", "rows", P, A, S, e_s, False, state.mass, it, tol,
                               final, active, state.n_iter, state.err, state.status, n_active),
          lambda: go("update_scaling", "flat", P, A, S, e_s, active),
          lambda: (go("matmul_rows", "mm", S, K_q, B, active),
                   go("update_scaling", "flat", Q, B, T, e_t, active)),
          max_iter, tol, check_every, n_active)

    Gv = cuda.device_array((n, K), h.dtype)
    GTu = cuda.device_array((n, K), h.dtype)
    GMv = cuda.device_array((n, K), h.dtype)
    go("matmul_rows", "mm", v, kernel.G_T, Gv, iterated)
    go("matmul_rows", "mm", u, kernel.G, GTu, iterated)
    go("matmul_rows", "mm", v, kernel.GM_T, GMv, iterated)
    go("logs_of_scalings", "rows", u, v, Gv, GTu, GMv, iterated, state.log_u, state.log_v,
       state.lse_row, state.lse_col, state.cost)
    redo = cuda.to_device(np.zeros(n, np.int32))
    go("flag_failures", "rows", h, y, state.log_u, state.log_v, state.lse_row, state.lse_col,
       state.cost, state.status, iterated, redo)
    return redo


def log_domain(go, h, y, kernel, state, rows, first_is_v, exp_a, exp_b, max_iter, tol,
               check_every):
    """Log-domain Sinkhorn on the rows with ``rows[r] != 0`` (all in float64)."""
    n, K = h.shape
    lam = kernel.lam
    if first_is_v:
        P, Q, C_p, C_q, S, T, e_s, e_t = (y, h, kernel.M_T64, kernel.M64, state.log_v,
                                          state.log_u, exp_b, exp_a)
    else:
        P, Q, C_p, C_q, S, T, e_s, e_t = (h, y, kernel.M64, kernel.M_T64, state.log_u,
                                          state.log_v, exp_a, exp_b)
    active = cuda.to_device(rows.copy_to_host())
    go("init_log_scalings", "flat", P, Q, S, T, active)
    A = cuda.device_array((n, K), np.float64)
    B = cuda.device_array((n, K), np.float64)
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
    state = DeviceState.empty(n, K)
    go("prepare_rows", "rows", h, y, balanced, kernel.lam, kernel.M, state.mass, state.active,
       state.log_u, state.log_v, state.lse_row, state.lse_col, state.cost, state.n_iter,
       state.err, state.status)
    first_is_v = balanced
    use_mult = method == "multiplicative" or (method == "auto"
                                              and kernel.multiplicative_is_safe())
    if use_mult:
        ones = np.ones((n, K), h.dtype)
        u = cuda.to_device(ones if u0 is None else np.asarray(u0, h.dtype))
        v = cuda.to_device(ones if v0 is None else np.asarray(v0, h.dtype))
        go("zero_off_support", "flat", y, v)   # as on the CPU: v starts at 0 off supp(y)
        rows = multiplicative(go, h, y, kernel, state, first_is_v, exp_a, exp_b, max_iter,
                              tol, check_every, u, v)
    else:
        rows = state.active
    if int(rows.copy_to_host().sum()) > 0:
        log_domain(go, h, y, kernel, state, rows, first_is_v, exp_a, exp_b, max_iter, tol,
                   check_every)
    return state, go


def outputs(go, h, y, kernel, state, balanced, gamma_a=1.0, gamma_b=1.0):
    """Loss, gradient and scalings (device arrays) from a solved state."""
    n, K = h.shape
    loss = cuda.device_array(n, np.float64)
    grad = cuda.device_array((n, K), np.float64)
    if balanced:
        go("balanced_outputs", "rows", h, y, state.log_u, state.log_v, state.lse_row,
           kernel.lam, loss, grad)
    else:
        go("relaxed_outputs", "rows", h, y, state.log_u, state.log_v, state.lse_row,
           state.lse_col, kernel.lam, gamma_a, gamma_b, loss, grad)
    u = cuda.device_array((n, K), h.dtype)
    v = cuda.device_array((n, K), h.dtype)
    go("exp_scalings", "flat", state.log_u, state.log_v, u, v)
    return loss, grad, u, v
