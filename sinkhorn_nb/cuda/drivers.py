"""CUDA driver: validate, plan and solve on the device (the twin of
:mod:`sinkhorn_nb.cpu.drivers`: it executes the same :class:`~sinkhorn_nb.routing.Plan`
through :func:`sinkhorn_nb.routing.execute`, path by path, with kernels of the
same names).

A call enters here once, through :func:`solve_arrays`: device arrays are
scanned on the GPU (:mod:`sinkhorn_nb.cuda.scan`) and judged by
:func:`sinkhorn_nb.validation.measures_from_scan`; host arrays are validated on
the host and copied to the device once.  The plan comes from
:mod:`sinkhorn_nb.routing`, and :func:`solve` executes it.  The host reads back
the per-row summary of the scan once, one integer (the rows still iterating)
every ``check_every`` iterations, and the status codes after each path.
Scratch arrays live in :meth:`DeviceGibbsKernel.scratch` and are reused by the
next call of the same shape.
"""
import os
import threading
from dataclasses import replace

import numpy as np
from numba import cuda

from .. import routing
from ..core import FAILED, OMEGA_STATE, compute_dtype, gauge_limit
from ..result import SinkhornResult
from ..validation import (check_init, check_measures, check_relaxed_penalties, check_shapes,
                          is_device_array, measures_from_scan)
from . import acceleration, balanced, kernels, relaxed, scan

#: Default launch shape ``(tile, micro, block)``: on a real GPU 16x16 threads per
#: product block, each computing a 4x4 register tile (64x64 outputs per block),
#: and 128-thread row reductions; under the CUDA simulator (which runs each
#: thread in Python) 4x4 threads with 2x2 register tiles and 4-thread reductions.
DEFAULT_LAUNCH = (4, 2, 4) if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else (16, 4, 128)

#: The arrays of a :class:`~sinkhorn_nb.gibbs.GibbsKernel` a solve may read on the
#: device.  Each is uploaded on first use, in the dtype the host kernel holds it
#: in: the compute dtype, except ``M64``, ``M64_T`` (read only by the log domain)
#: and ``M_column_sums``, which are float64 (their users accumulate in float64).
DEVICE_ARRAYS = ("G", "G_T", "GM_T", "M_T", "M_column_sums", "M64", "M64_T")

_DEVICE_KERNELS_LOCK = threading.Lock()


class DeviceGibbsKernel:
    """Device copies of a :class:`~sinkhorn_nb.gibbs.GibbsKernel`'s arrays, uploaded
    on first use, and the solvers' scratch arrays (kept across calls, one set per
    host thread)."""

    def __init__(self, host_kernel):
        self.host = host_kernel
        self.dtype = host_kernel.dtype
        self.lam = host_kernel.lam
        self.lam_max_m = host_kernel.lam_max_m
        self._copies = {}        # id(host array) -> device array (transposes shared)
        self._lock = threading.Lock()
        self._scratch = threading.local()

    def __getattr__(self, name):
        if name not in DEVICE_ARRAYS:
            raise AttributeError(name)
        with self._lock:      # one thread builds the host array and uploads it
            array = getattr(self.host, name)
            if id(array) not in self._copies:
                self._copies[id(array)] = (array, cuda.to_device(array))
            device_array = self._copies[id(array)][1]
        self.__dict__[name] = device_array
        return device_array

    def built(self, name):
        """Whether ``name`` is on the device already."""
        return name in self.__dict__

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


class Launch:
    """Grid shapes for one ``(n, K)`` batch and a ``(tile, micro, block)`` launch."""

    def __init__(self, n, K, dtype, launch=DEFAULT_LAUNCH):
        self.tile, self.micro, self.block = launch
        self.K = K
        self.products = kernels.row_products(self.tile, self.micro, np.dtype(dtype))
        span = self.tile * self.micro
        self.product_shape = ((K + span - 1) // span, (n + span - 1) // span), (self.tile,
                                                                                self.tile)
        self.entries = self.over(n * K)
        self.row_blocks = (n,), (self.block,)

    def over(self, count):
        """One thread per item of ``count``."""
        threads = min(128, self.block) if self.block >= 32 else self.block
        return ((max(count, 1) + threads - 1) // threads,), (threads,)

    def blocks(self, rows):
        """One block per entry of ``rows``."""
        return (rows.shape[0],), (self.block,)

    def row_entries(self, rows, width=None):
        """One thread per entry of ``len(rows) * width`` (``width`` defaults to K)."""
        return self.over(rows.shape[0] * (self.K if width is None else width))

    def product(self, T, Kmat, out, active):
        grid, threads = self.product_shape
        self.products[grid, threads](T, Kmat, out, active)


def _as_numba(x):
    """A Numba device array view of a device array (no copy)."""
    return x if hasattr(x, "copy_to_host") else cuda.as_cuda_array(x)


def device_kernel(kernels_cache, dtype):
    """The :class:`DeviceGibbsKernel` for ``dtype`` of a
    :class:`~sinkhorn_nb.gibbs.GibbsKernels` (built once, kept in its ``device``)."""
    dtype = np.dtype(dtype)
    with _DEVICE_KERNELS_LOCK:
        if dtype not in kernels_cache.device:
            kernels_cache.device[dtype] = DeviceGibbsKernel(kernels_cache.get(dtype))
        return kernels_cache.device[dtype]


def solve_arrays(h, y, init, kernels_cache, variant, gammas, controls, renormalize, scalings, *,
                 launch=DEFAULT_LAUNCH):
    """Validate, plan and solve one call on the GPU: the CUDA entry of
    :class:`~sinkhorn_nb.WassersteinLoss`.

    Returns ``(result, status, measures)``: a result of device arrays when ``h``
    and ``y`` are device arrays (NumPy arrays otherwise), host status codes,
    and the validated measures.
    """
    balanced_variant = variant == "balanced"
    K = kernels_cache.M.shape[0]
    if is_device_array(h) and is_device_array(y):
        measures, init = _device_measures(h, y, init, K, balanced_variant, renormalize,
                                          controls, launch)
        on_host = False
    else:
        measures = check_measures(h, y, K, balanced_variant, renormalize, controls)
        init = check_init(init, measures)
        # sparse (SciPy) targets are validated in CSR form on the host, then
        # densified here: the device paths read dense targets
        measures = replace(measures, h=cuda.to_device(measures.h),
                           targets=cuda.to_device(measures.y))
        on_host = True
    if gammas is not None:       # the limit of the compute dtype
        check_relaxed_penalties(kernels_cache.lam, *gammas, measures.dtype)
    kernel = device_kernel(kernels_cache, measures.dtype)
    tol = controls.tol_for(measures.dtype)
    # the CUDA log domain has no lam-continuation yet: its rows start at lam
    plan = routing.plan_for(measures, kernel, variant, gammas, controls.method, tol, scalings,
                            controls.acceleration, continuation=False)
    result = SinkhornResult.empty(*measures.shape, measures.dtype, alloc=cuda.device_array)
    status = solve(measures, kernel, plan, controls, tol, init, result, scalings, launch=launch)
    if on_host:
        result = result.map(lambda a: a.copy_to_host())
    if not scalings:
        result = replace(result, u=None, v=None)
    return result, status, measures


def _device_measures(h, y, init, n_labels, balanced_variant, renormalize, controls, launch):
    """Validate device measures on the GPU (the shape rules and messages are the
    host's; the entries are scanned by :func:`~sinkhorn_nb.cuda.scan.scan_measures`).
    Rescaled measures are new device arrays; the inputs are never modified."""
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
    scan.scan_measures[grid, threads](h, y, *summary)
    mass_h, mass_y, support, last_nonzero, flags = (a.copy_to_host() for a in summary)
    dtype = compute_dtype(h.dtype, y.dtype)
    measures, factors = measures_from_scan(h, y, mass_h, mass_y, support, last_nonzero, flags,
                                           balanced_variant, renormalize,
                                           controls.tol_for(dtype), was_1d)
    init = check_init(init, measures)
    h, y = (x if factor is None else _scaled(x, factor, go) for x, factor in zip((h, y), factors))
    return replace(measures, h=h, targets=y), init


def _scaled(x, factor, go):
    out = cuda.device_array(x.shape, x.dtype)
    grid, threads = go.entries
    scan.scale_rows[grid, threads](x, cuda.to_device(np.asarray(factor, np.float64)), out)
    return out


def solve(measures, kernel, plan, controls, tol, init, result, scalings=True, *,
          launch=DEFAULT_LAUNCH):
    """Solve every row of device ``measures`` into the device ``result`` along
    ``plan``; return the host status codes (the twin of
    :func:`sinkhorn_nb.cpu.drivers.solve`, with a :class:`DeviceGibbsKernel`)."""
    h = measures.h
    n, K = h.shape
    go = Launch(n, K, h.dtype, launch)
    plan.check_covers(n)
    status = cuda.device_array(n, np.int64)
    if init is not None:        # before the closed forms, which overwrite their rows
        result.u.copy_to_device(init[0])
        result.v.copy_to_device(init[1])
    if plan.closed.size:
        _closed_forms(measures, kernel, plan, result, status, scalings, go)
    if not plan.all_closed:
        run = _Run(measures, kernel, plan, controls, tol, result, status, go, init)
        routing.execute(plan, init is not None, run.iterate, run.scalings_outputs, run.failed,
                        measures.support, K)
    grid, threads = go.over(n)
    kernels.final_status[grid, threads](result.loss, result.transport_cost, status,
                                        result.converged)
    return status.copy_to_host()


def _kernel_targets(measures):
    """The device targets as the kernels take them, ``(y, y_indptr, y_indices,
    y_data)`` (see :attr:`sinkhorn_nb.validation.Measures.kernel_targets`):
    here always the dense ``y``, with placeholder triplets that the kernels
    do not read."""
    return (measures.y, cuda.to_device(np.zeros(1, np.int64)),
            cuda.to_device(np.zeros(1, np.int64)), cuda.to_device(np.zeros(1, measures.dtype)))


def _closed_forms(measures, kernel, plan, result, status, scalings, go):
    h, r = measures.h, result
    rows = cuda.to_device(plan.closed)
    grid, threads = go.blocks(rows)
    if plan.balanced:
        G_T = kernel.G_T if plan.one_hot_divides else kernel.M_T    # (M_T: not read)
        balanced.one_hot_rows[grid, threads](
            h, cuda.to_device(measures.last_nonzero), cuda.to_device(measures.mass_h),
            kernel.M_T, kernel.M_column_sums, G_T, plan.one_hot_divides, kernel.lam,
            kernel.lam_max_m, gauge_limit(h.dtype), scalings, rows, r.loss, r.grad,
            r.transport_cost, r.u, r.v, r.n_iter, r.err, status)
    else:
        relaxed.empty_rows[grid, threads](
            h, *_kernel_targets(measures), *plan.gammas, rows, r.loss, r.grad, r.transport_cost,
            r.u, r.v, r.n_iter, r.err, status)


class _Run:
    """The iterative paths of one solve on the device, for
    :func:`sinkhorn_nb.routing.execute` (the twin of the CPU driver's)."""

    def __init__(self, measures, kernel, plan, controls, tol, result, status, go, init):
        self.measures, self.h, self.y = measures, measures.h, measures.y
        self.targets = _kernel_targets(measures)
        self.kernel, self.plan, self.controls, self.tol = kernel, plan, controls, tol
        self.result, self.status, self.go, self.init = result, status, go, init
        first_mass = measures.mass_y if plan.roles.first_is_v else measures.mass_h
        self.mass = cuda.to_device(np.ascontiguousarray(first_mass, np.float64))
        n, K = self.h.shape
        self.Gv, self.GTu = (kernel.scratch(name, (n, K), self.h.dtype) for name in ("Gv", "GTu"))

    def failed(self, rows):
        return rows[self.status.copy_to_host()[rows] == FAILED]

    def iterate(self, path, rows, warm, width):
        if path == "sparse":
            self.sparse(rows, warm, width)
        else:
            getattr(self, path)(rows, warm)

    def _active(self, rows):
        """Device int32 mask of ``rows`` (the rows still iterating)."""
        mask = np.zeros(self.h.shape[0], np.int32)
        mask[rows] = 1
        return cuda.to_device(mask)

    def newton(self, rows, warm):
        m, r, k = self.measures, self.result, self.kernel
        K = m.shape[1]
        chunk = max(1024, 2 ** 24 // K)     # 640 MiB of scratch up to K = 16384
        work = k.scratch("newton_work", (5, min(chunk, rows.size), K), np.float64)
        for start in range(0, rows.size, chunk):
            part = cuda.to_device(rows[start:start + chunk])
            grid, threads = self.go.over(part.shape[0])
            balanced.newton_rows[grid, threads](
                self.h, *self.targets, k.G_T, k.GM_T, part, r.u, r.v, warm, self.mass,
                self.controls.max_iter, self.tol, r.n_iter, r.err, self.status, self.Gv,
                self.GTu, r.transport_cost, work)

    def scalings_outputs(self, rows):
        r, k = self.result, self.kernel
        on = cuda.to_device(rows)
        grid, threads = self.go.blocks(on)
        if self.plan.balanced:
            balanced.outputs_from_scalings[grid, threads](
                self.h, *self.targets, r.u, r.v, self.Gv, self.GTu, k.lam, on, r.loss, r.grad,
                self.status)
        else:
            relaxed.outputs_from_scalings[grid, threads](
                self.h, *self.targets, r.u, r.v, self.Gv, self.GTu, k.lam, *self.plan.gammas,
                on, r.loss, r.grad, self.status)

    def dense(self, rows, warm):
        """Batched multiplicative Sinkhorn (products over the batch, finished rows
        masked; the twin of :func:`sinkhorn_nb.cpu.drivers.dense_iterations`)."""
        n, K = self.h.shape
        k, r, go, roles = self.kernel, self.result, self.go, self.plan.roles
        if roles.first_is_v:     # v from y, then u from h
            P, Q, K_p, K_q, S, T, A, B = self.y, self.h, k.G, k.G_T, r.v, r.u, self.GTu, self.Gv
        else:                    # u from h, then v from y
            P, Q, K_p, K_q, S, T, A, B = self.h, self.y, k.G_T, k.G, r.u, r.v, self.Gv, self.GTu
        e_s, e_t = roles.exp_first, roles.exp_second
        on = cuda.to_device(rows)
        active = self._active(rows)
        kernels.start_rows[go.row_entries(on)](Q, T, warm, on, T)
        omega = self._omega_state()
        self._loop(lambda: go.product(T, K_p, A, active),
                   lambda it, final, n_active: self._finish(P, Q, A, S, T, e_s, e_t, False, it,
                                                            final, active, n_active),
                   lambda: kernels.update_rows[go.entries](P, A, e_s, omega, active, S),
                   lambda: (go.product(S, K_q, B, active),
                            kernels.update_rows[go.entries](Q, B, e_t, omega, active, T)))
        GMv = k.scratch("GMv", (n, K), self.h.dtype)
        go.product(r.v, k.GM_T, GMv, self._active(rows))
        kernels.row_dots[go.blocks(on)](r.u, GMv, on, r.transport_cost)

    def sparse(self, rows, warm, width):
        """Multiplicative Sinkhorn on each target's support, at most ``width`` labels
        (the twin of :func:`sinkhorn_nb.cpu.kernels.sparse_scaling_iterations`: the
        same update order, error and per-row stopping)."""
        n, K = self.h.shape
        k, r, go, roles = self.kernel, self.result, self.go, self.plan.roles
        index = k.scratch("index", (n, width), np.int32)
        size = k.scratch("size", n, np.int32)
        y_s, v_s, gtu_s = (k.scratch(name, (n, width), self.h.dtype)
                           for name in ("y_s", "v_s", "gtu_s"))
        on = cuda.to_device(rows)
        active = self._active(rows)
        kernels.start_rows[go.row_entries(on)](self.h, r.u, warm, on, r.u)
        kernels.start_rows[go.row_entries(on)](self.y, r.v, warm, on, r.v)
        kernels.gather_support[go.over(rows.size)](self.y, r.v, on, index, size, y_s, v_s)
        pairs = go.over(n * width)
        dots = (n, width), (go.block,)
        e_a, e_b = roles.exp_a, roles.exp_b

        def combine(K_T, out, mask):
            kernels.combine_rows[go.entries](K_T, index, size, v_s, mask, out)

        def gather_dots(mask):
            kernels.gather_dots[dots](k.G_T, index, size, r.u, mask, gtu_s)

        omega = self._omega_state()
        if roles.first_is_v:     # v from y on the support, then u from h
            self._loop(lambda: gather_dots(active),
                       lambda it, final, n_active: self._finish(y_s, self.h, gtu_s, v_s, r.u,
                                                                e_b, e_a, False, it, final,
                                                                active, n_active),
                       lambda: kernels.update_rows[pairs](y_s, gtu_s, e_b, omega, active, v_s),
                       lambda: (combine(k.G_T, self.Gv, active),
                                kernels.update_rows[go.entries](self.h, self.Gv, e_a, omega,
                                                                active, r.u)))
        else:                    # u from h, then v from y on the support
            self._loop(lambda: combine(k.G_T, self.Gv, active),
                       lambda it, final, n_active: self._finish(self.h, y_s, self.Gv, r.u, v_s,
                                                                e_a, e_b, False, it, final,
                                                                active, n_active),
                       lambda: kernels.update_rows[go.entries](self.h, self.Gv, e_a, omega,
                                                               active, r.u),
                       lambda: (gather_dots(active),
                                kernels.update_rows[pairs](y_s, gtu_s, e_b, omega, active,
                                                           v_s)))
        iterated = self._active(rows)
        combine(k.G_T, self.Gv, iterated)
        gather_dots(iterated)
        GMv = k.scratch("GMv", (n, K), self.h.dtype)
        combine(k.GM_T, GMv, iterated)
        kernels.scatter_support[go.row_entries(on, width)](index, size, v_s, gtu_s, on, r.v,
                                                           self.GTu)
        kernels.row_dots[go.blocks(on)](r.u, GMv, on, r.transport_cost)

    def log(self, rows, warm):
        """Log-domain Sinkhorn on ``rows``, all in float64 (the twin of
        :func:`sinkhorn_nb.cpu.kernels.log_scaling_iterations`)."""
        n, K = self.h.shape
        k, r, go, roles = self.kernel, self.result, self.go, self.plan.roles
        log_u, log_v, lse_row, lse_col, A, B = (
            k.scratch(name, (n, K), np.float64)
            for name in ("log_u", "log_v", "lse_row", "lse_col", "log_A", "log_B"))
        if roles.first_is_v:     # v from y, then u from h
            P, Q, C_p, C_q, S, T = self.y, self.h, k.M64_T, k.M64, log_v, log_u
        else:
            P, Q, C_p, C_q, S, T = self.h, self.y, k.M64, k.M64_T, log_u, log_v
        e_s, e_t = roles.exp_first, roles.exp_second
        start = T
        if warm:                 # the scaling updated second starts from init
            start = k.scratch("log_start", (n, K), np.float64)
            with np.errstate(divide="ignore"):
                second = self.init[0] if roles.first_is_v else self.init[1]
                start.copy_to_device(np.log(np.asarray(second, np.float64)))
        on = cuda.to_device(rows)
        active = self._active(rows)
        kernels.start_log_rows[go.row_entries(on)](P, Q, S, T, start, warm, on)
        lam = k.lam
        omega = self._omega_state()
        self._loop(lambda: kernels.log_sum_exps[go.entries](T, C_p, lam, active, A),
                   lambda it, final, n_active: self._finish(P, Q, A, S, T, e_s, e_t, True, it,
                                                            final, active, n_active),
                   lambda: kernels.log_update[go.entries](P, A, e_s, omega, active, S),
                   lambda: (kernels.log_sum_exps[go.entries](S, C_q, lam, active, B),
                            kernels.log_update[go.entries](Q, B, e_t, omega, active, T)))
        mask = self._active(rows)
        kernels.log_sum_exps[go.entries](log_v, k.M64, lam, mask, lse_row)
        kernels.log_costs[go.blocks(on)](log_u, log_v, k.M64, lam, on, r.transport_cost)
        if self.plan.balanced:
            balanced.outputs_from_logs[go.blocks(on)](
                self.h, self.y, log_u, log_v, lse_row, lam, gauge_limit(self.h.dtype), on,
                r.loss, r.grad, r.u, r.v)
        else:
            kernels.log_sum_exps[go.entries](log_u, k.M64_T, lam, mask, lse_col)
            relaxed.outputs_from_logs[go.blocks(on)](
                self.h, self.y, log_u, log_v, lse_row, lse_col, lam, *self.plan.gammas, on,
                r.loss, r.grad, r.u, r.v)

    def _omega_state(self):
        """Each row's over-relaxation state, reset (:mod:`sinkhorn_nb.cuda.acceleration`)."""
        n = self.h.shape[0]
        self.omega = self.kernel.scratch("omega_state", (n, OMEGA_STATE), np.float64)
        acceleration.start_omegas[self.go.over(n)](self.omega)
        return self.omega

    def _finish(self, P, Q, A, S, T, exp_s, exp_t, is_log, it, final, active, n_active):
        r, k = self.result, self.kernel
        checkpoint = k.scratch("checkpoint_log" if is_log else "checkpoint",
                               (3,) + self.h.shape, np.float64 if is_log else self.h.dtype)
        kernels.finish_rows[self.go.row_blocks](
            P, Q, A, S, T, exp_s, exp_t, is_log, self.mass, it, self.tol, final,
            self.controls.check_every, self.plan.accelerate, self.omega, checkpoint, active,
            r.n_iter, r.err, self.status, n_active)

    def _loop(self, first_product, check, first_update, second_half):
        """The convergence loop shared by every iterative path (launches are
        asynchronous; the host waits only for the count of active rows)."""
        max_iter, check_every = self.controls.max_iter, self.controls.check_every
        n_active = cuda.to_device(np.zeros(1, np.int64))
        zero = np.zeros(1, np.int64)
        it = 0
        while True:
            first_product()
            final = it == max_iter
            if final or (self.tol > 0 and it > 0 and it % check_every == 0):
                n_active.copy_to_device(zero)
                check(it, final, n_active)
                if final or int(n_active.copy_to_host()[0]) == 0:
                    return
            first_update()
            second_half()
            it += 1
