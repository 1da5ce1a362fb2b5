r"""``@cuda.jit`` kernels shared by both variants (twins of :mod:`sinkhorn_nb.cpu.kernels`).

The roles ``p, q, s, t`` and the error are those of the CPU module: a
half-update computes ``A = t @ K_p`` (:func:`row_products`; in the log domain
:func:`log_sum_exps`), checks the error every ``check_every`` iterations
(:func:`finish_rows`), then sets ``s = (p / A) ** e_s`` (:func:`update_rows`;
:func:`log_update`).  Where the CPU compacts the rows still iterating, the GPU
masks them: ``active[r] != 0`` marks a row still iterating, and every kernel
skips the others (the product skips whole tiles of finished rows).  Rows to
work on are given, as on the CPU, by ``rows``, an int64 array of row indices:
a kernel over ``rows`` is launched over ``len(rows)`` blocks, threads or
entries (:func:`block_row`, :func:`row_entry`).

Sparse targets (:func:`gather_support`, :func:`combine_rows`,
:func:`gather_dots`, :func:`scatter_support`) hold each row's support in padded
``(n, width)`` arrays (``index``, ``y_S``, ``v_S``; the padding has ``y = v = 0``),
so ``G v`` and ``G^T u`` cost ``O(K |S|)`` per row, and :func:`update_rows` and
:func:`finish_rows` work unchanged on the padded arrays.

Launch shapes: one thread per entry (grid over ``n * K``, or ``len(rows) * K``),
one block per row (kernels reduce with :func:`block_sum`, up to
:data:`~sinkhorn_nb.cuda.jit.MAX_ROW_THREADS` threads, a power of two), or one
thread per row; :mod:`sinkhorn_nb.cuda.drivers` computes them.
"""
import functools
import math

import numba
from numba import cuda

from ..core import CONVERGED, FAILED, MAX_ITER
from .acceleration import (log_overrelaxed, next_omega, overrelaxed, translation_kappa,
                           translation_step)
from .jit import MAX_ROW_THREADS, device, kernel


@device
def flat_entry(n, K):
    """Row and column of this thread's entry of an ``(n, K)`` array (one thread per
    entry); the row is ``n`` for threads past the end."""
    idx = cuda.grid(1)
    if idx >= n * K:
        return n, 0
    r = idx // K
    return r, idx - r * K


@device
def masked_entry(n, K, active):
    """:func:`flat_entry`, with row ``-1`` past the end or where ``active[r] == 0``."""
    r, j = flat_entry(n, K)
    if r >= n or active[r] == 0:
        return -1, j
    return r, j


@device
def row_entry(rows, K):
    """Row and column of this thread's entry among the rows ``rows`` (one thread
    per entry of ``len(rows) * K``); the row is ``-1`` past the end."""
    k, j = flat_entry(rows.shape[0], K)
    if k >= rows.shape[0]:
        return -1, j
    return rows[k], j


@device
def block_row(rows):
    """This block's row ``rows[blockIdx.x]`` (one block per entry of ``rows``), or
    ``-1`` past the end."""
    k = cuda.blockIdx.x
    if k >= rows.shape[0]:
        return -1
    return rows[k]


@device
def active_block_row(active):
    """This block's row (one block per row of the batch), or ``-1`` past the end
    or where ``active[r] == 0``."""
    r = cuda.blockIdx.x
    if r >= active.shape[0] or active[r] == 0:
        return -1
    return r


@device
def block_sum(buf, value):
    """Sum of ``value`` over the threads of the block, in the shared buffer ``buf``."""
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if tid < stride:
            buf[tid] += buf[tid + stride]
        cuda.syncthreads()
        stride //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@device
def block_max(buf, value):
    """Maximum of ``value`` over the threads of the block (see :func:`block_sum`)."""
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if tid < stride and buf[tid + stride] > buf[tid]:
            buf[tid] = buf[tid + stride]
        cuda.syncthreads()
        stride //= 2
    top = buf[0]
    cuda.syncthreads()
    return top


@device
def log_or_inf(x):
    """``log x`` with ``log 0 = -inf`` (the simulator's ``math.log`` raises)."""
    return math.log(x) if x > 0 else -math.inf


@device
def exp_or_inf(x):
    """``exp x``, overflowing to ``inf`` (the simulator's ``math.exp`` raises)."""
    return math.exp(x) if x < 709.0 else math.inf


@device
def is_finite(x):
    return not (math.isinf(x) or math.isnan(x))


@device
def positive_finite(x):
    return x > 0 and not math.isinf(x)


@device
def row_status(e, tol):
    if e < tol:
        return CONVERGED
    return MAX_ITER if is_finite(e) else FAILED


@device
def scaled_ratio(p, a, exponent):
    """``(p / a) ** exponent`` with the convention ``0 / anything = 0``."""
    if p == 0:
        return 0.0
    ratio = p / a
    if exponent == 1.0:
        return ratio
    return ratio ** exponent


@functools.lru_cache(maxsize=None)
def row_products(tile, micro, dtype):
    """``out[r] = T[r] @ Kmat`` for the row tiles holding an active row, for one
    ``(tile, micro)`` shape and compute dtype (the CPU's NumPy products).

    Register-blocked: a ``tile x tile`` block of threads computes a ``span x span``
    tile of ``out`` (``span = tile * micro``); thread ``(ty, tx)`` keeps the
    ``micro x micro`` entries of rows ``ty + a tile`` and columns ``tx + b tile``
    in registers, so each value read from shared memory feeds ``micro``
    multiply-adds.  ``T`` and ``Kmat`` stream through shared memory in
    ``span x tile`` and ``tile x span`` panels.  Sums are accumulated in the input
    dtype, as cuBLAS does.  Launch with grid ``(ceil(K / span), ceil(n / span))``
    and block ``(tile, tile)``.
    """
    nb_dtype = numba.from_dtype(dtype)
    span = tile * micro

    def products(T, Kmat, out, active):
        sT = cuda.shared.array((span, tile), dtype=nb_dtype)
        sK = cuda.shared.array((tile, span), dtype=nb_dtype)
        acc = cuda.local.array((micro, micro), dtype=nb_dtype)
        a = cuda.local.array(micro, dtype=nb_dtype)
        b = cuda.local.array(micro, dtype=nb_dtype)
        n, K = T.shape
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row0 = cuda.blockIdx.y * span
        col0 = cuda.blockIdx.x * span
        any_active = 0
        for k in range(span):
            if row0 + k < n and active[row0 + k] != 0:
                any_active = 1
        if any_active == 0:
            return
        for p in range(micro):
            for q in range(micro):
                acc[p, q] = 0
        for start in range(0, K, tile):
            for p in range(micro):
                row = row0 + ty + p * tile
                if row < n and start + tx < K:
                    sT[ty + p * tile, tx] = T[row, start + tx]
                else:
                    sT[ty + p * tile, tx] = 0
                col = col0 + tx + p * tile
                if start + ty < K and col < K:
                    sK[ty, tx + p * tile] = Kmat[start + ty, col]
                else:
                    sK[ty, tx + p * tile] = 0
            cuda.syncthreads()
            for k in range(tile):
                for p in range(micro):
                    a[p] = sT[ty + p * tile, k]
                    b[p] = sK[k, tx + p * tile]
                for p in range(micro):
                    for q in range(micro):
                        acc[p, q] += a[p] * b[q]
            cuda.syncthreads()
        for p in range(micro):
            row = row0 + ty + p * tile
            for q in range(micro):
                col = col0 + tx + q * tile
                if row < n and col < K:
                    out[row, col] = acc[p, q]

    return kernel(lambda t: [(t.a2, t.a2, t.a2, t.i32)])(products)


@kernel(lambda t: [(t.a2, t.a2, t.b, t.i64, t.a2)])
def start_rows(q, start, warm, rows, out):
    """``out = start`` (``warm``) or 1 on the support of ``q``, 0 off it, on ``rows``
    (``out`` may be ``start``); one thread per entry of ``len(rows) * K``."""
    r, j = row_entry(rows, q.shape[1])
    if r >= 0:
        out[r, j] = (start[r, j] if warm else 1) if q[r, j] != 0 else 0


@kernel(lambda t: [(t.a2, t.a2, t.f, t.f2, t.i32, t.a2), (t.a2, t.f2, t.f, t.f2, t.i32, t.f2)])
def update_rows(p, A, exponent, omega_state, active, S):
    """``S = (p / A) ** exponent`` on active rows, over-relaxed by each row's factor
    ``omega_state[r, 0]`` (:func:`~sinkhorn_nb.cuda.acceleration.overrelaxed`); one
    thread per entry."""
    n, K = p.shape
    r, j = masked_entry(n, K, active)
    if r >= 0:
        S[r, j] = overrelaxed(S[r, j], scaled_ratio(p[r, j], A[r, j], exponent),
                              omega_state[r, 0])


@device
def block_log_weighted_sum(buf, p, s, r, kappa, is_log):
    """``log sum_{p_i > 0} p_i s_i^(-kappa)`` over row ``r``, by the threads of one
    block (``s`` holds logs when ``is_log``; the twin of
    :func:`sinkhorn_nb.cpu.acceleration.log_weighted_sum`)."""
    top = -math.inf
    for i in range(cuda.threadIdx.x, p.shape[1], cuda.blockDim.x):
        if p[r, i] > 0:
            x = math.log(p[r, i]) - kappa * (s[r, i] if is_log else log_or_inf(s[r, i]))
            top = max(top, x)
    top = block_max(buf, top)
    if not is_finite(top):
        return top
    total = 0.0
    for i in range(cuda.threadIdx.x, p.shape[1], cuda.blockDim.x):
        if p[r, i] > 0:
            x = math.log(p[r, i]) - kappa * (s[r, i] if is_log else log_or_inf(s[r, i]))
            total += math.exp(x - top)
    return top + math.log(block_sum(buf, total))


@device
def block_translation(buf, P, S, Q, T, r, exp_s, exp_t, is_log):
    """:func:`~sinkhorn_nb.overrelaxation.translation_step` for row ``r``, by the
    threads of one block (the twin of :func:`sinkhorn_nb.cpu.acceleration.translation`)."""
    kappa_s = translation_kappa(exp_s)
    kappa_t = translation_kappa(exp_t)
    if kappa_s + kappa_t <= 0.0:
        return 0.0
    return translation_step(block_log_weighted_sum(buf, P, S, r, kappa_s, is_log),
                            block_log_weighted_sum(buf, Q, T, r, kappa_t, is_log),
                            exp_s, exp_t)


@device
def copy_row(source, target, r):
    """``target[r, j] = source[r, j]`` by the threads of one block, over the narrower
    width (the checkpoint is ``K`` wide, a support path's scalings narrower)."""
    for j in range(cuda.threadIdx.x, min(source.shape[1], target.shape[1]), cuda.blockDim.x):
        target[r, j] = source[r, j]


@kernel(lambda t: [(t.a2, t.a2, t.a2, t.a2, t.a2, t.f, t.f, t.b, t.f1, t.i, t.f, t.b, t.i,
                    t.b, t.f2, t.a3, t.i32, t.i64, t.a1, t.i64, t.i64),
                   (t.a2, t.a2, t.f2, t.f2, t.f2, t.f, t.f, t.b, t.f1, t.i, t.f, t.b, t.i,
                    t.b, t.f2, t.f3, t.i32, t.i64, t.a1, t.i64, t.i64)])
def finish_rows(P, Q, A, S, T, exp_s, exp_t, is_log, mass, it, tol, final, check_every,
                accelerate, omega_state, checkpoint, active, n_iter, err, status, n_active):
    """The convergence check, one block per active row (the twin of
    :func:`sinkhorn_nb.cpu.kernels.finish_working_rows`).

    The error is ``||(s - s+) * A||_1 / max(||p||_1, ||s * A||_1)`` (with
    ``is_log``, ``S``, ``T`` and ``A`` hold logarithms).  Rows below ``tol``, with a
    non-finite error, or all rows when ``final``, record ``n_iter = it``, the
    error and their status and leave ``active``; the others are counted into
    ``n_active[0]``.  With ``accelerate`` a row still iterating updates its
    over-relaxation state ``omega_state[r]`` and either returns to
    ``checkpoint[:, r]`` (it diverged) or takes the relaxed variant's optimal
    common factor (:func:`block_translation`) and saves ``S``, ``T``, ``A``
    there.
    """
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    back = cuda.shared.array(1, dtype=numba.int32)
    r = active_block_row(active)
    if r < 0:
        return
    change = 0.0
    marginal = 0.0
    for j in range(cuda.threadIdx.x, P.shape[1], cuda.blockDim.x):
        p = P[r, j]
        if is_log:
            if p > 0:
                now = exp_or_inf(S[r, j] + A[r, j])
                change += abs(now - exp_or_inf(exp_s * math.log(p)
                                               + (1.0 - exp_s) * A[r, j]))
                marginal += now
        else:
            change += abs(S[r, j] - scaled_ratio(p, A[r, j], exp_s)) * A[r, j]
            marginal += S[r, j] * A[r, j]
    change = block_sum(buf, change)
    marginal = block_sum(buf, marginal)
    e = change / max(mass[r], marginal)
    if accelerate and not final and not e < tol:     # the same e in every thread
        if cuda.threadIdx.x == 0:
            back[0] = 1 if next_omega(omega_state[r], e, check_every) else 0
        cuda.syncthreads()
        if back[0] != 0:            # diverged while over-relaxed: to the last check
            copy_row(checkpoint[0], S, r)
            copy_row(checkpoint[1], T, r)
            copy_row(checkpoint[2], A, r)
            if cuda.threadIdx.x == 0:
                cuda.atomic.add(n_active, 0, 1)
            return
        if is_finite(e):
            # the relaxed variant's common factor (0 for the balanced one)
            shift = block_translation(buf, P, S, Q, T, r, exp_s, exp_t, is_log)
            c = 1.0 if is_log else exp_or_inf(shift)
            if shift != 0.0 and is_finite(shift) and c > 0 and is_finite(c):
                for j in range(cuda.threadIdx.x, S.shape[1], cuda.blockDim.x):
                    if is_log:
                        S[r, j] += shift
                        A[r, j] -= shift
                    else:
                        S[r, j] *= c
                        A[r, j] /= c
                for j in range(cuda.threadIdx.x, T.shape[1], cuda.blockDim.x):
                    if is_log:
                        T[r, j] -= shift
                    else:
                        T[r, j] /= c
            copy_row(S, checkpoint[0], r)
            copy_row(T, checkpoint[1], r)
            copy_row(A, checkpoint[2], r)
    if cuda.threadIdx.x == 0:
        if final or e < tol or not is_finite(e):
            active[r] = 0
            n_iter[r] = it
            err[r] = e
            status[r] = row_status(e, tol)
        else:
            cuda.atomic.add(n_active, 0, 1)


@kernel(lambda t: [(t.a2, t.a2, t.i64, t.a1), (t.f2, t.f2, t.i64, t.a1)])
def row_dots(u, X, rows, out):
    """``out[r] = u[r] . X[r]`` for ``r`` in ``rows`` (the transport cost
    ``u . (G * M) v``); one block per row."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    total = 0.0
    for i in range(cuda.threadIdx.x, u.shape[1], cuda.blockDim.x):
        total += u[r, i] * X[r, i]
    total = block_sum(buf, total)
    if cuda.threadIdx.x == 0:
        out[r] = total


@device
def target_entry(y, y_indptr, y_indices, y_data, r, i):
    """``y[r, i]`` as float64, from ``y`` when it has rows, else from the CSR
    triplets ``(y_indptr, y_indices, y_data)`` (labels ascending in each row, as
    the CPU's :func:`sinkhorn_nb.cpu.kernels.target_support` reads them) by a
    binary search of row ``r``: 0 off its support."""
    if y.shape[0] > 0:
        return numba.float64(y[r, i])
    low = y_indptr[r]
    high = y_indptr[r + 1]
    while low < high:
        middle = (low + high) // 2
        if y_indices[middle] < i:
            low = middle + 1
        else:
            high = middle
    if low < y_indptr[r + 1] and y_indices[low] == i:
        return numba.float64(y_data[low])
    return 0.0


@kernel(lambda t: [(t.a2, t.a2, t.i64, t.i2, t.i32, t.a2, t.a2)])
def gather_support(y, v, rows, index, size, y_s, v_s):
    """Compact the support of ``y[r]`` for ``r`` in ``rows`` into
    ``index[r, :size[r]]`` with its masses ``y_s`` and scalings ``v_s``; pad with
    zeros.  One thread per row (once per solve)."""
    i = cuda.grid(1)
    if i >= rows.shape[0]:
        return
    r = rows[i]
    k = 0
    for j in range(y.shape[1]):
        if y[r, j] > 0:
            index[r, k] = j
            y_s[r, k] = y[r, j]
            v_s[r, k] = v[r, j]
            k += 1
    size[r] = k
    for pad in range(k, index.shape[1]):
        index[r, pad] = 0
        y_s[r, pad] = 0
        v_s[r, pad] = 0


@kernel(lambda t: [(t.a2, t.i2, t.i32, t.a2, t.i32, t.a2)])
def combine_rows(K_T, index, size, x_s, active, out):
    """``out[r, i] = sum_k K_T[index[r, k], i] x_s[r, k]`` over the support (``G v``
    from rows of ``G^T``); one thread per entry, reads coalesced along ``i``."""
    n, K = out.shape
    r, i = masked_entry(n, K, active)
    if r >= 0:
        total = 0.0
        for k in range(size[r]):
            total += K_T[index[r, k], i] * x_s[r, k]
        out[r, i] = total


@kernel(lambda t: [(t.a2, t.i2, t.i32, t.a2, t.i32, t.a2)])
def gather_dots(K_T, index, size, x, active, out):
    """``out[r, k] = K_T[index[r, k]] . x[r]`` (``(G^T u)_j`` on the support); one
    block per ``(r, k)`` (grid ``(n, width)``), 0 on the padding."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = cuda.blockIdx.x
    k = cuda.blockIdx.y
    if r >= x.shape[0] or active[r] == 0:
        return
    if k >= size[r]:
        if cuda.threadIdx.x == 0:
            out[r, k] = 0
        return
    j = index[r, k]
    total = 0.0
    for i in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
        total += K_T[j, i] * x[r, i]
    total = block_sum(buf, total)
    if cuda.threadIdx.x == 0:
        out[r, k] = total


@kernel(lambda t: [(t.i2, t.i32, t.a2, t.a2, t.i64, t.a2, t.a2)])
def scatter_support(index, size, v_s, gtu_s, rows, v, GTu):
    """``v[r, index[r, k]] = v_s[r, k]``, and the same for ``G^T u``, on ``rows``
    (other entries untouched); one thread per ``(r, k)`` of ``len(rows) * width``."""
    r, k = row_entry(rows, index.shape[1])
    if r >= 0 and k < size[r]:
        v[r, index[r, k]] = v_s[r, k]
        GTu[r, index[r, k]] = gtu_s[r, k]


@kernel(lambda t: [(t.a2, t.a2, t.f2, t.f2, t.f2, t.b, t.i64)])
def start_log_rows(p, q, s_log, t_log, t_start, warm, rows):
    """Log-domain start on ``rows``: ``log s = -inf``; ``log t`` is 0 (or, with
    ``warm``, ``t_start`` where it is finite) on the support of ``q``, ``-inf``
    off it.  One thread per entry of ``len(rows) * K``."""
    r, j = row_entry(rows, p.shape[1])
    if r >= 0:
        s_log[r, j] = -math.inf
        if q[r, j] > 0:
            start = t_start[r, j] if warm else 0.0
            t_log[r, j] = start if is_finite(start) else 0.0
        else:
            t_log[r, j] = -math.inf


@kernel(lambda t: [(t.f2, t.f2, t.f, t.i32, t.f2)])
def log_sum_exps(T_log, C, lam, active, out):
    """``out[r, j] = log sum_i exp(T_log[r, i] - lam C[j, i] - 1)`` on active rows
    (the log of ``(K t)_j`` for ``K = exp(-lam C - 1)``); one thread per entry."""
    n, K = T_log.shape
    r, j = masked_entry(n, K, active)
    if r >= 0:
        top = -math.inf
        for i in range(K):
            x = T_log[r, i] - lam * C[j, i]
            if x > top:
                top = x
        if top == -math.inf:
            out[r, j] = -math.inf
        else:
            total = 0.0
            for i in range(K):
                if T_log[r, i] > -math.inf:
                    total += math.exp(T_log[r, i] - lam * C[j, i] - top)
            out[r, j] = top + math.log(total) - 1.0


@kernel(lambda t: [(t.a2, t.f2, t.f, t.f2, t.i32, t.f2)])
def log_update(P, lse, exponent, omega_state, active, S_log):
    """``log S = exponent * (log P - lse)``, ``-inf`` where ``P = 0``, over-relaxed by
    each row's factor ``omega_state[r, 0]``."""
    n, K = P.shape
    r, j = masked_entry(n, K, active)
    if r >= 0:
        p = P[r, j]
        if p > 0:
            S_log[r, j] = log_overrelaxed(S_log[r, j], exponent * (math.log(p) - lse[r, j]),
                                          omega_state[r, 0])
        else:
            S_log[r, j] = -math.inf


@kernel(lambda t: [(t.f2, t.f2, t.f2, t.f, t.i64, t.a1)])
def log_costs(log_u, log_v, M, lam, rows, cost):
    """``cost[r] = <T, M>`` from log-scalings on ``rows``; one block per row."""
    buf = cuda.shared.array(MAX_ROW_THREADS, dtype=numba.float64)
    r = block_row(rows)
    if r < 0:
        return
    K = log_u.shape[1]
    total = 0.0
    for i in range(cuda.threadIdx.x, K, cuda.blockDim.x):
        if log_u[r, i] > -math.inf:
            for j in range(K):
                if log_v[r, j] > -math.inf:
                    total += math.exp(log_u[r, i] + log_v[r, j] - lam * M[i, j] - 1.0) * M[i, j]
    total = block_sum(buf, total)
    if cuda.threadIdx.x == 0:
        cost[r] = total


@kernel(lambda t: [(t.a1, t.a1, t.i64, t.b1)])
def final_status(loss, cost, status, converged):
    """Rows with a non-finite loss or cost become ``FAILED``; ``converged`` is
    ``status == CONVERGED``.  One thread per row."""
    r = cuda.grid(1)
    if r < loss.shape[0]:
        if not (is_finite(loss[r]) and is_finite(cost[r])):
            status[r] = FAILED
        converged[r] = status[r] == CONVERGED
