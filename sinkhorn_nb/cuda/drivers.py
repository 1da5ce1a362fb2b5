"""CUDA driver: route each row to its path and fill one preallocated device result
(the twin of :mod:`sinkhorn_nb.cpu.drivers`, same routing and the same names).

Everything stays on the device.  The host reads back the per-row summary of
the validation scan once (masses and support sizes, which route the rows), one
integer (the rows still iterating) every ``check_every`` iterations, and the
status codes at the end (for the warning).  Scratch arrays live in
:meth:`DeviceGibbsKernel.scratch` and are reused by the next call of the same
shape.  Host inputs are copied to the device once and the result back once.
"""
import os
import threading

import numpy as np
from numba import cuda

from ..core import (FAILED, NEWTON_MAX_SUPPORT, compute_dtype, gauge_limit, relaxed_exponents,
                    sparse_rows, uses_newton)
from ..result import SinkhornResult
from ..validation import check_shapes, measures_from_scan
from . import balanced, kernels, relaxed

#: Default launch shape ``(tile, micro, block)``: on a real GPU 16x16 threads per
#: product block, each computing a 4x4 register tile (64x64 outputs per block),
#: and 128-thread row reductions; under the CUDA simulator (which runs each
#: thread in Python) 4x4 threads with 2x2 register tiles and 4-thread reductions.
DEFAULT_LAUNCH = (4, 2, 4) if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else (16, 4, 128)


class DeviceGibbsKernel:
    """Device copies of a :class:`~sinkhorn_nb.gibbs.GibbsKernel`'s arrays, and the
    solvers' scratch arrays (kept across calls, one set per host thread)."""

    def __init__(self, host_kernel):
        self.host = host_kernel
        self.dtype = host_kernel.dtype
        self.lam = host_kernel.lam
        copies = {}       # a symmetric metric shares its transposes (one device copy)

        def to_device(array):   # keyed by identity; the host array is kept alive
            if id(array) not in copies:
                copies[id(array)] = (array, cuda.to_device(array))
            return copies[id(array)][1]
        for name in ("G", "G_T", "GM_T", "M", "M_T", "M64", "M64_T"):
            setattr(self, name, to_device(getattr(host_kernel, name)))
        self._scratch = threading.local()

    def scratch(self, name, shape, dtype):
        """The device array ``name`` of this shape and dtype, reused across calls.

        Its contents are whatever the last user left.  One set per host thread;
        a new shape or dtype replaces the array, so memory stays bounded by the
        latest batch size.
        """
        held = self._scratch.__dict__
        key = (tuple(np.atleast_1d(shape)), np.dtype(dtype))
        if name not in held or held[name][0] != key:
            held[name] = (key, cuda.device_array(shape, dtype))
        return held[name][1]

    def multiplicative_is_safe(self):
        return self.host.multiplicative_is_safe()


class Launch:
    """Grid shapes for one ``(n, K)`` batch and a ``(tile, micro, block)`` launch."""

    def __init__(self, n, K, dtype, launch=DEFAULT_LAUNCH):
        self.tile, self.micro, self.block = launch
        self.products = kernels.row_products(self.tile, self.micro, np.dtype(dtype))
        span = self.tile * self.micro
        self.product_shape = ((K + span - 1) // span, (n + span - 1) // span), (self.tile,
                                                                                self.tile)
        self.entries = self.over(n * K)
        self.row_threads = self.over(n)
        self.row_blocks = (n,), (self.block,)

    def over(self, count):
        """One thread per item of ``count``."""
        threads = min(128, self.block) if self.block >= 32 else self.block
        return ((count + threads - 1) // threads,), (threads,)

    def product(self, T, Kmat, out, active):
        grid, threads = self.product_shape
        self.products[grid, threads](T, Kmat, out, active)


def _mask(rows):
    """Device int32 mask from a host boolean mask."""
    return cuda.to_device(rows.astype(np.int32))


def _as_numba(x):
    """A Numba device array view of a device array (no copy)."""
    return x if hasattr(x, "copy_to_host") else cuda.as_cuda_array(x)


def check_device_measures(h, y, n_labels, balanced_variant, renormalize, controls,
                          launch=DEFAULT_LAUNCH):
    """Validate device measures on the GPU into :class:`~sinkhorn_nb.validation.Measures`.

    The shape rules and messages are the host's; the entries are scanned on the
    device (:func:`~sinkhorn_nb.cuda.kernels.scan_measures`) and the per-row
    summary is judged by :func:`~sinkhorn_nb.validation.measures_from_scan`.
    Rescaled measures are new device arrays; the inputs are never modified.
    """
    h, y = _as_numba(h), _as_numba(y)
    for name, arr in (("h", h), ("y", y)):
        if np.dtype(arr.dtype) not in (np.float32, np.float64):
            raise TypeError(f"{name} on the device must be float32 or float64, got {arr.dtype}")
        if hasattr(arr, "is_c_contiguous") and not arr.is_c_contiguous():
            raise ValueError(f"{name} on the device must be C-contiguous")
    was_1d = check_shapes(h.shape, y.shape, n_labels)
    if h.dtype != y.dtype:
        raise TypeError(f"h and y on the device must share a dtype, got {h.dtype} and {y.dtype}")
    if was_1d:
        h, y = h.reshape(1, n_labels), y.reshape(1, n_labels)
    n = h.shape[0]
    go = Launch(n, n_labels, h.dtype, launch)
    summary = [cuda.device_array(n, np.float64), cuda.device_array(n, np.float64),
               cuda.device_array(n, np.int64), cuda.device_array(n, np.int64),
               cuda.device_array(n, np.int64)]
    grid, threads = go.row_blocks
    kernels.scan_measures[grid, threads](h, y, *summary)
    mass_h, mass_y, support, last_nonzero, flags = (a.copy_to_host() for a in summary)

    def rescale(x, factors):
        out = cuda.device_array(x.shape, x.dtype)
        grid, threads = go.entries
        kernels.scale_rows[grid, threads](x, cuda.to_device(np.asarray(factors, np.float64)),
                                          out)
        return out
    return measures_from_scan(h, y, mass_h, mass_y, support, last_nonzero, flags,
                              balanced_variant,
                              renormalize, controls.tol_for(compute_dtype(h.dtype, y.dtype)),
                              was_1d, rescale)


def solve(measures, kernel, gammas, controls, tol, init, launch=DEFAULT_LAUNCH):
    """Solve every row on the device; return ``(result, status)``.

    The arguments are those of :func:`sinkhorn_nb.cpu.drivers.solve` with a
    :class:`DeviceGibbsKernel`.  Host measures are copied to the device and the
    result back (NumPy arrays); device measures give a result of device arrays.
    ``status`` is always a host array.
    """
    h, y = measures.h, measures.y
    on_host = isinstance(h, np.ndarray)
    if on_host:
        h, y = cuda.to_device(h), cuda.to_device(y)
    n, K = h.shape
    go = Launch(n, K, h.dtype, launch)
    result = SinkhornResult.empty(n, K, h.dtype, alloc=cuda.device_array)
    status = cuda.device_array(n, np.int64)
    if init is not None:        # before the closed forms, which overwrite their rows
        result.u.copy_to_device(init[0])
        result.v.copy_to_device(init[1])
    problem = _Problem(h, y, measures, kernel, gammas, controls, tol, go, result, status)
    rows = problem.closed_forms()
    if rows.any():
        problem.iterate(rows, init)
    grid, threads = go.row_threads
    kernels.finish_status[grid, threads](result.loss, result.transport_cost, status,
                                         result.converged)
    if on_host:
        result = result.map(lambda a: a.copy_to_host())
    return result, status.copy_to_host()


class _Problem:
    """One solve on the device: the validated rows, the kernel and the result."""

    def __init__(self, h, y, measures, kernel, gammas, controls, tol, go, result, status):
        self.h, self.y, self.measures = h, y, measures
        self.kernel, self.gammas, self.controls, self.tol = kernel, gammas, controls, tol
        self.go, self.result, self.status = go, result, status
        self.balanced = gammas is None
        first_mass = measures.mass_y if self.balanced else measures.mass_h
        self.mass = cuda.to_device(np.ascontiguousarray(first_mass, np.float64))

    def closed_forms(self):
        """Fill the closed-form rows; return the host mask of the rows to iterate."""
        m, r, k = self.measures, self.result, self.kernel
        closed = m.support == 1 if self.balanced else (m.mass_h == 0) | (m.mass_y == 0)
        if closed.any():
            grid, threads = self.go.row_blocks
            if self.balanced:
                host = k.host
                balanced.one_hot_rows[grid, threads](
                    self.h, cuda.to_device(m.last_nonzero), k.M_T, k.G_T,
                    host.multiplicative_is_safe(), k.lam, host.lam_max_m,
                    gauge_limit(self.h.dtype), _mask(closed), r.loss, r.grad,
                    r.transport_cost, r.u, r.v, r.n_iter, r.err, self.status)
            else:
                relaxed.empty_rows[grid, threads](
                    self.h, self.y, *self.gammas, _mask(closed), r.loss, r.grad,
                    r.transport_cost, r.u, r.v, r.n_iter, r.err, self.status)
        return ~closed

    def iterate(self, rows, init):
        """The multiplicative path where it is safe, the log-domain path elsewhere."""
        warm = init is not None      # the start is in result.u, result.v (see solve)
        method = self.controls.method
        if method == "log" or (method == "auto" and not self.kernel.multiplicative_is_safe()):
            self.log_domain(rows, warm, init)
            return
        redo = self.multiplicative(rows, warm)
        if redo.any():          # over/underflow: redo those rows in the log domain, cold
            self.log_domain(redo, False, None)

    def loop_controls(self):
        r = self.result
        return self.controls.max_iter, self.tol, self.controls.check_every, r.n_iter, r.err

    def multiplicative(self, rows, warm):
        """Newton, sparse and dense multiplicative rows; returns the host mask of
        the rows that failed."""
        m, n, K = self.measures, *self.h.shape
        support = m.support
        newton = rows & (support <= NEWTON_MAX_SUPPORT) & uses_newton(
            self.balanced, self.controls.method, self.tol)
        sparse = rows & sparse_rows(support, K) & ~newton
        dense = rows & ~(sparse | newton)
        Gv, GTu = (self.kernel.scratch(name, (n, K), self.h.dtype) for name in ("Gv", "GTu"))
        if newton.any():
            self.newton_rows(newton, warm, Gv, GTu)
        if sparse.any():
            self.sparse_scaling_iterations(sparse, int(support[sparse].max()), warm, Gv, GTu)
        if dense.any():
            self.dense_iterations(dense, warm, Gv, GTu)
        r, k = self.result, self.kernel
        grid, threads = self.go.row_blocks
        iterated = _mask(rows)
        if self.balanced:
            balanced.outputs_from_scalings[grid, threads](
                self.h, self.y, r.u, r.v, Gv, GTu, k.lam, iterated, r.loss, r.grad, self.status)
        else:
            relaxed.outputs_from_scalings[grid, threads](
                self.h, self.y, r.u, r.v, Gv, GTu, k.lam, *self.gammas, iterated, r.loss,
                r.grad, self.status)
        return rows & (self.status.copy_to_host() == FAILED)

    def exponents(self):
        return (1.0, 1.0) if self.balanced else relaxed_exponents(self.kernel.lam, *self.gammas)

    def newton_rows(self, rows, warm, Gv, GTu):
        n, K = self.h.shape
        r, k = self.result, self.kernel
        work = [k.scratch(name, (n, K), np.float64)
                for name in ("newton_u", "newton_gv", "newton_u_try", "newton_gv_try",
                             "newton_weight")]
        grid, threads = self.go.row_threads
        balanced.newton_rows[grid, threads](
            self.h, self.y, k.G_T, k.GM_T, _mask(rows), r.u, r.v, warm, self.mass,
            self.controls.max_iter, self.tol, r.n_iter, r.err, self.status, Gv, GTu,
            r.transport_cost, *work)

    def dense_iterations(self, rows, warm, Gv, GTu):
        """Batched multiplicative Sinkhorn (products over the batch, finished rows
        masked) on ``rows`` (the twin of :func:`sinkhorn_nb.cpu.drivers.dense_iterations`)."""
        n, K = self.h.shape
        k, r, go = self.kernel, self.result, self.go
        e_a, e_b = self.exponents()
        if self.balanced:     # v from y, then u from h
            P, Q, K_p, K_q, S, T, e_s, e_t, A, B = (self.y, self.h, k.G, k.G_T, r.v, r.u, e_b,
                                                    e_a, GTu, Gv)
        else:                 # u from h, then v from y
            P, Q, K_p, K_q, S, T, e_s, e_t, A, B = (self.h, self.y, k.G_T, k.G, r.u, r.v, e_a,
                                                    e_b, Gv, GTu)
        active = _mask(rows)
        iterated = _mask(rows)
        grid, threads = go.entries
        kernels.start_rows[grid, threads](Q, T, warm, active, T)
        self._loop(lambda: go.product(T, K_p, A, active),
                   lambda it, final, n_active: self._finish(P, A, S, e_s, False, it, final,
                                                            active, n_active),
                   lambda: kernels.update_rows[go.entries](P, A, e_s, active, S),
                   lambda: (go.product(S, K_q, B, active),
                            kernels.update_rows[go.entries](Q, B, e_t, active, T)))
        GMv = k.scratch("GMv", (n, K), self.h.dtype)
        go.product(r.v, k.GM_T, GMv, iterated)
        kernels.row_dots[go.row_blocks](r.u, GMv, iterated, r.transport_cost)

    def sparse_scaling_iterations(self, rows, width, warm, Gv, GTu):
        """Multiplicative Sinkhorn on each target's support, at most ``width`` labels
        (the twin of :func:`sinkhorn_nb.cpu.kernels.sparse_scaling_iterations`: the
        same update order, error and per-row stopping)."""
        n, K = self.h.shape
        k, r, go = self.kernel, self.result, self.go
        e_a, e_b = self.exponents()
        index = k.scratch("index", (n, width), np.int32)
        size = k.scratch("size", n, np.int32)
        y_s, v_s, gtu_s = (k.scratch(name, (n, width), self.h.dtype)
                           for name in ("y_s", "v_s", "gtu_s"))
        active = _mask(rows)
        iterated = _mask(rows)
        kernels.start_rows[go.entries](self.h, r.u, warm, active, r.u)
        kernels.start_rows[go.entries](self.y, r.v, warm, active, r.v)
        kernels.gather_support[go.row_threads](self.y, r.v, active, index, size, y_s, v_s)
        pairs = go.over(n * width)
        dots = (n, width), (go.block,)

        def combine(K_T, out, mask):
            kernels.combine_rows[go.entries](K_T, index, size, v_s, mask, out)

        def gather_dots(mask):
            kernels.gather_dots[dots](k.G_T, index, size, r.u, mask, gtu_s)

        if self.balanced:     # v from y on the support, then u from h
            self._loop(lambda: gather_dots(active),
                       lambda it, final, n_active: self._finish(y_s, gtu_s, v_s, e_b, False,
                                                                it, final, active, n_active),
                       lambda: kernels.update_rows[pairs](y_s, gtu_s, e_b, active, v_s),
                       lambda: (combine(k.G_T, Gv, active),
                                kernels.update_rows[go.entries](self.h, Gv, e_a, active,
                                                                r.u)))
        else:                 # u from h, then v from y on the support
            self._loop(lambda: combine(k.G_T, Gv, active),
                       lambda it, final, n_active: self._finish(self.h, Gv, r.u, e_a, False,
                                                                it, final, active, n_active),
                       lambda: kernels.update_rows[go.entries](self.h, Gv, e_a, active, r.u),
                       lambda: (gather_dots(active),
                                kernels.update_rows[pairs](y_s, gtu_s, e_b, active, v_s)))
        combine(k.G_T, Gv, iterated)
        gather_dots(iterated)
        GMv = k.scratch("GMv", (n, K), self.h.dtype)
        combine(k.GM_T, GMv, iterated)
        kernels.scatter_support[pairs](index, size, v_s, gtu_s, iterated, r.v, GTu)
        kernels.row_dots[go.row_blocks](r.u, GMv, iterated, r.transport_cost)

    def log_domain(self, rows, warm, init):
        """Log-domain Sinkhorn on ``rows``, all in float64 (the twin of
        :func:`sinkhorn_nb.cpu.kernels.log_scaling_iterations`)."""
        n, K = self.h.shape
        k, r, go = self.kernel, self.result, self.go
        e_a, e_b = self.exponents()
        log_u, log_v, lse_row, lse_col, A, B = (
            k.scratch(name, (n, K), np.float64)
            for name in ("log_u", "log_v", "lse_row", "lse_col", "log_A", "log_B"))
        if self.balanced:     # v from y, then u from h
            P, Q, C_p, C_q, S, T, e_s, e_t = (self.y, self.h, k.M64_T, k.M64, log_v, log_u,
                                              e_b, e_a)
        else:
            P, Q, C_p, C_q, S, T, e_s, e_t = (self.h, self.y, k.M64, k.M64_T, log_u, log_v,
                                              e_a, e_b)
        start = T
        if warm:              # the scaling updated second starts from init
            start = k.scratch("log_start", (n, K), np.float64)
            with np.errstate(divide="ignore"):
                start.copy_to_device(np.log(np.asarray(init[0] if self.balanced else init[1],
                                                       np.float64)))
        active = _mask(rows)
        mask = _mask(rows)
        kernels.start_log_rows[go.entries](P, Q, S, T, start, warm, active)
        lam = k.lam
        self._loop(lambda: kernels.log_sum_exps[go.entries](T, C_p, lam, active, A),
                   lambda it, final, n_active: self._finish(P, A, S, e_s, True, it, final,
                                                            active, n_active),
                   lambda: kernels.log_update[go.entries](P, A, e_s, active, S),
                   lambda: (kernels.log_sum_exps[go.entries](S, C_q, lam, active, B),
                            kernels.log_update[go.entries](Q, B, e_t, active, T)))
        kernels.log_sum_exps[go.entries](log_v, k.M64, lam, mask, lse_row)
        kernels.log_costs[go.row_blocks](log_u, log_v, k.M64, lam, mask, r.transport_cost)
        if self.balanced:
            balanced.outputs_from_logs[go.row_blocks](
                self.h, self.y, log_u, log_v, lse_row, lam, gauge_limit(self.h.dtype), mask,
                r.loss, r.grad, r.u, r.v)
        else:
            kernels.log_sum_exps[go.entries](log_u, k.M64_T, lam, mask, lse_col)
            relaxed.outputs_from_logs[go.row_blocks](
                self.h, self.y, log_u, log_v, lse_row, lse_col, lam, *self.gammas, mask,
                r.loss, r.grad, r.u, r.v)

    def _finish(self, P, A, S, exponent, is_log, it, final, active, n_active):
        max_iter, tol, _, n_iter, err = self.loop_controls()
        kernels.finish_rows[self.go.row_blocks](P, A, S, exponent, is_log, self.mass, it, tol,
                                                final, active, n_iter, err, self.status,
                                                n_active)

    def _loop(self, first_product, check, first_update, second_half):
        """The convergence loop shared by every iterative path (launches are
        asynchronous; the host waits only for the count of active rows)."""
        max_iter, tol, check_every, _, _ = self.loop_controls()
        n_active = cuda.to_device(np.zeros(1, np.int64))
        zero = np.zeros(1, np.int64)
        it = 0
        while True:
            first_product()
            final = it == max_iter
            if final or (tol > 0 and it > 0 and it % check_every == 0):
                n_active.copy_to_device(zero)
                check(it, final, n_active)
                if final or int(n_active.copy_to_host()[0]) == 0:
                    return
            first_update()
            second_half()
            it += 1
