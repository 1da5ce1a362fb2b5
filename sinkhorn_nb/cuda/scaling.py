"""``@cuda.jit`` kernels for both variants (mirrors :mod:`sinkhorn_nb.cpu.scaling`).

Kernels are built per ``(tile, micro, block, dtype)`` by :func:`kernels`: the
batched products run ``tile x tile`` thread blocks, each thread computing a
``micro x micro`` register tile (so a block covers ``tile * micro`` rows and
columns); ``block`` is the thread count of the one-block-per-row reductions (a
power of two).  Small values let the CUDA simulator run several blocks; a real
GPU uses ``(16, 4, 128)``.

Roles follow the CPU module: a half-update computes ``A = t @ K_p`` (or its
log-domain analogue ``lse``), optionally the per-row error, then
``s = (p / A) ** e_s``.  Rows are masked, not compacted: a row whose error is
below ``tol`` is switched off in ``active`` and every kernel skips it (the
product kernel skips whole tiles of inactive rows).

Sparse targets (the ``support_*`` kernels) mirror
:func:`sinkhorn_nb.cpu.scaling.sparse_scaling_iterations`: the support
``S = supp(y_r)`` of each row is gathered once into padded ``(n, width)`` arrays
(``index``, ``y_S``, ``v_S``; padding has ``y = v = 0``), and

.. math:: (G v)_i = \\sum_{j \\in S} (G^\\top)_{j i} v_j, \\qquad
          (G^\\top u)_j = (G^\\top)_{j \\cdot} \\cdot u \\quad (j \\in S)

cost ``O(K |S|)`` per row instead of ``O(K^2)``.  ``update_scaling`` and
``row_errors`` work unchanged on the padded arrays (a zero mass adds nothing).
"""
import functools
import math

import numba
from numba import cuda

CONVERGED, MAX_ITER, FAILED = 0, 1, 2


def kernel_sources(tile, micro, block, dtype):
    """Python functions of every kernel (for ``cuda.jit`` and ``compile_ptx``).
    """
    nb_dtype = numba.from_dtype(dtype)

    @cuda.jit(device=True)
    def block_sum(buf, value):
        tid = cuda.threadIdx.x
        buf[tid] = value
        cuda.syncthreads()
        stride = block // 2
        while stride > 0:
            if tid < stride:
                buf[tid] += buf[tid + stride]
            cuda.syncthreads()
            stride //= 2
        total = buf[0]
        cuda.syncthreads()
        return total

    @cuda.jit(device=True)
    def flat_entry(n, K):
        """Row and column of this thread's entry of an ``(n, K)`` array (one
        thread per entry); the row is ``n`` for threads past the end."""
        idx = cuda.grid(1)
        if idx >= n * K:
            return n, 0
        r = idx // K
        return r, idx - r * K

    @cuda.jit(device=True)
    def scaled_ratio(p, a, exponent):
        if p == 0:
            return 0.0
        ratio = p / a
        if exponent == 1.0:
            return ratio
        return ratio ** exponent

    span = tile * micro      # edge of the output tile of one block of the product

    def matmul_rows(T, Kmat, out, active):
        """``out[r] = T[r] @ Kmat`` for the row tiles that hold an active row.

        Register-blocked: a ``tile x tile`` block of threads computes a
        ``span x span`` tile of ``out`` (``span = tile * micro``); thread
        ``(ty, tx)`` keeps the ``micro x micro`` entries of rows ``ty + a tile`` and
        columns ``tx + b tile`` in registers, so each value read from shared
        memory feeds ``micro`` multiply-adds.  ``T`` and ``Kmat`` stream through
        shared memory in ``span x tile`` and ``tile x span`` panels.  Sums are
        accumulated in the input dtype, as cuBLAS does.
        """
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

    def update_scaling(P, A, S, exponent, active):
        """``S = (P / A) ** exponent`` on active rows (one thread per entry)."""
        n, K = P.shape
        r, j = flat_entry(n, K)
        if r < n and active[r] != 0:
            S[r, j] = scaled_ratio(P[r, j], A[r, j], exponent)

    def row_errors(P, A, S, exponent, is_log, mass, it, tol, final, active, n_iter, err,
                   status, n_active):
        """Per-row relative error ``sum |s - s+| A / sum p``; switch off finished rows.

        With ``is_log`` the arrays hold logs (``S = log s``, ``A = lse``).  Counts the
        rows still active into ``n_active[0]``.  One block per row.
        """
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= P.shape[0] or active[r] == 0:
            return
        K = P.shape[1]
        part = 0.0
        for j in range(cuda.threadIdx.x, K, block):
            p = P[r, j]
            if is_log:
                if p > 0:
                    part += abs(math.exp(S[r, j] + A[r, j])
                                - math.exp(exponent * math.log(p) + (1.0 - exponent) * A[r, j]))
            else:
                part += abs(S[r, j] - scaled_ratio(p, A[r, j], exponent)) * A[r, j]
        total = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            e = total / mass[r]
            finite = not (math.isnan(e) or math.isinf(e))
            if final or e < tol or not finite:
                active[r] = 0
                n_iter[r] = it
                err[r] = e
                if e < tol:
                    status[r] = CONVERGED
                elif finite:
                    status[r] = MAX_ITER
                else:
                    status[r] = FAILED
            else:
                cuda.atomic.add(n_active, 0, 1)

    def log_lse(T_log, C, lam, out, active):
        """``out[r, j] = log sum_i exp(T_log[r, i] - lam C[j, i] - 1)`` (one thread per entry)."""
        n, K = T_log.shape
        r, j = flat_entry(n, K)
        if r < n and active[r] != 0:
            top = -math.inf
            for i in range(K):
                x = T_log[r, i] - lam * C[j, i]
                if x > top:
                    top = x
            if top == -math.inf:
                out[r, j] = -math.inf
            else:
                acc = 0.0
                for i in range(K):
                    acc += math.exp(T_log[r, i] - lam * C[j, i] - top)
                out[r, j] = top + math.log(acc) - 1.0

    def log_update(P, lse, S_log, exponent, active):
        """``S_log = exponent * (log P - lse)``, ``-inf`` where ``P = 0``."""
        n, K = P.shape
        r, j = flat_entry(n, K)
        if r < n and active[r] != 0:
            p = P[r, j]
            S_log[r, j] = exponent * (math.log(p) - lse[r, j]) if p > 0 else -math.inf

    def logs_of_scalings(u, v, Gv, GTu, GMv, rows, log_u, log_v, lse_row, lse_col, cost):
        """Log-domain pieces from the multiplicative solution, for rows with
        ``rows[r] != 0`` (one block per row)."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= u.shape[0] or rows[r] == 0:
            return
        part = 0.0
        for j in range(cuda.threadIdx.x, u.shape[1], block):
            log_u[r, j] = math.log(u[r, j]) if u[r, j] > 0 else -math.inf
            log_v[r, j] = math.log(v[r, j]) if v[r, j] > 0 else -math.inf
            lse_row[r, j] = math.log(Gv[r, j]) if Gv[r, j] > 0 else -math.inf
            lse_col[r, j] = math.log(GTu[r, j]) if GTu[r, j] > 0 else -math.inf
            part += u[r, j] * GMv[r, j]
        total = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            cost[r] = total

    def log_cost(log_u, log_v, M, lam, rows, cost):
        """``cost[r] = <T, M>`` from log-scalings, rows with ``rows[r] != 0``."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= log_u.shape[0] or rows[r] == 0:
            return
        K = log_u.shape[1]
        part = 0.0
        for i in range(cuda.threadIdx.x, K, block):
            if log_u[r, i] > -math.inf:
                for j in range(K):
                    if log_v[r, j] > -math.inf:
                        part += math.exp(log_u[r, i] + log_v[r, j] - lam * M[i, j] - 1.0) * M[i, j]
        total = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            cost[r] = total


    def prepare_rows(h, y, balanced, lam, M, mass, active, log_u, log_v, lse_row, lse_col,
                     cost, n_iter, err, status, support_size):
        """Per row: the mass of the first-updated side, the size of ``supp(y)``,
        and the closed forms.

        Balanced rows whose target has one non-zero get ``T = h e_j^T``; relaxed rows
        where ``h`` or ``y`` is empty get ``T = 0``.  Those rows start inactive.
        One block per row.
        """
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= h.shape[0]:
            return
        K = h.shape[1]
        mh = 0.0
        my = 0.0
        nnz = 0.0
        last = 0.0
        for j in range(cuda.threadIdx.x, K, block):
            mh += h[r, j]
            my += y[r, j]
            if y[r, j] > 0:
                nnz += 1.0
                last = j + 1.0
        mh = block_sum(buf, mh)
        my = block_sum(buf, my)
        nnz = block_sum(buf, nnz)
        col = int(block_sum(buf, last if nnz == 1.0 else 0.0)) - 1
        special = (balanced and nnz == 1.0) or ((not balanced) and (mh == 0 or my == 0))
        for j in range(cuda.threadIdx.x, K, block):
            if special and balanced:
                lse_row[r, j] = -lam * M[j, col] - 1.0
                log_u[r, j] = math.log(h[r, j]) - lse_row[r, j] if h[r, j] > 0 else -math.inf
                log_v[r, j] = 0.0 if j == col else -math.inf
                lse_col[r, j] = math.log(mh) if j == col else 0.0
            elif special:
                log_u[r, j] = -math.inf
                log_v[r, j] = -math.inf
                lse_row[r, j] = -math.inf
                lse_col[r, j] = -math.inf
        part = 0.0
        if special and balanced:
            for i in range(cuda.threadIdx.x, K, block):
                part += h[r, i] * M[i, col]
        part = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            mass[r] = my if balanced else mh
            support_size[r] = int(nnz)
            active[r] = 0 if special else 1
            if special:
                cost[r] = part
                n_iter[r] = 0
                err[r] = 0.0
                status[r] = CONVERGED

    def flag_failures(h, y, log_u, log_v, lse_row, lse_col, cost, status, rows, redo):
        """``redo[r] = 1`` where the multiplicative solve over/underflowed."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= h.shape[0] or rows[r] == 0:
            return
        bad = 0.0
        for j in range(cuda.threadIdx.x, h.shape[1], block):
            if h[r, j] > 0 and (math.isinf(log_u[r, j]) or math.isnan(log_u[r, j])):
                bad = 1.0
            if y[r, j] > 0 and (math.isinf(log_v[r, j]) or math.isnan(log_v[r, j])
                                or math.isinf(lse_col[r, j]) or math.isnan(lse_col[r, j])):
                bad = 1.0
            if math.isinf(lse_row[r, j]) or math.isnan(lse_row[r, j]):
                bad = 1.0
        bad = block_sum(buf, bad)
        if cuda.threadIdx.x == 0:
            c = cost[r]
            if bad > 0 or status[r] == FAILED or math.isnan(c) or math.isinf(c):
                redo[r] = 1
            else:
                redo[r] = 0

    def init_log_scalings(p, q, s_log, t_log, t_start, warm, rows):
        """Log-domain start ``s = t = 1`` on the supports, ``-inf`` elsewhere;
        with ``warm``, ``log t`` starts from ``t_start`` where that is finite (the
        CPU's warm start)."""
        n, K = p.shape
        r, j = flat_entry(n, K)
        if r < n and rows[r] != 0:
            s_log[r, j] = 0.0 if p[r, j] > 0 else -math.inf
            if q[r, j] > 0:
                start = t_start[r, j] if warm else 0.0
                finite = not (math.isinf(start) or math.isnan(start))
                t_log[r, j] = start if finite else 0.0
            else:
                t_log[r, j] = -math.inf

    def balanced_outputs(h, y, log_u, log_v, lse_row, lam, loss, grad):
        """Dual value and centred gradient (see :func:`sinkhorn_nb.cpu.balanced.balanced_outputs`)."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= h.shape[0]:
            return
        K = h.shape[1]
        total = 0.0
        dual = 0.0
        alpha_sum = 0.0
        for j in range(cuda.threadIdx.x, K, block):
            if h[r, j] > 0:
                total += math.exp(log_u[r, j] + lse_row[r, j])
                dual += h[r, j] * log_u[r, j]
                alpha_sum += log_u[r, j]
            else:
                alpha_sum -= lse_row[r, j]
            if y[r, j] > 0:
                dual += y[r, j] * log_v[r, j]
        total = block_sum(buf, total)
        dual = block_sum(buf, dual)
        mean = block_sum(buf, alpha_sum) / K
        for j in range(cuda.threadIdx.x, K, block):
            a = log_u[r, j] if h[r, j] > 0 else -lse_row[r, j]
            grad[r, j] = (a - mean) / lam
        if cuda.threadIdx.x == 0:
            loss[r] = (dual - total) / lam

    def relaxed_outputs(h, y, log_u, log_v, lse_row, lse_col, lam, gamma_a, gamma_b,
                        loss, grad):
        """Objective and gradient (see :func:`sinkhorn_nb.cpu.relaxed.relaxed_outputs`)."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= h.shape[0]:
            return
        K = h.shape[1]
        ent = 0.0
        kl_a = 0.0
        kl_b = 0.0
        for j in range(cuda.threadIdx.x, K, block):
            row = math.exp(log_u[r, j] + lse_row[r, j]) if h[r, j] > 0 else 0.0
            col = math.exp(log_v[r, j] + lse_col[r, j]) if y[r, j] > 0 else 0.0
            if row > 0:
                ent += row * log_u[r, j] - row
                kl_a += row * (math.log(row) - math.log(h[r, j]))
            if col > 0:
                ent += col * log_v[r, j]
                kl_b += col * (math.log(col) - math.log(y[r, j]))
            kl_a += h[r, j] - row
            kl_b += y[r, j] - col
            if h[r, j] > 0:
                grad[r, j] = gamma_a * (1.0 - row / h[r, j])
            else:
                grad[r, j] = -math.inf
        ent = block_sum(buf, ent)
        kl_a = block_sum(buf, kl_a)
        kl_b = block_sum(buf, kl_b)
        if cuda.threadIdx.x == 0:
            loss[r] = ent / lam + gamma_a * kl_a + gamma_b * kl_b

    def exp_scalings(log_u, log_v, u, v):
        """``u, v = exp(log_u), exp(log_v)`` in the output dtype."""
        n, K = log_u.shape
        r, j = flat_entry(n, K)
        if r < n:
            lu = log_u[r, j]
            lv = log_v[r, j]
            u[r, j] = math.exp(lu) if lu < 709.0 else math.inf   # the simulator's
            v[r, j] = math.exp(lv) if lv < 709.0 else math.inf   # math.exp raises

    def check_rows(h, y, flags, mass_h, mass_y):
        """Validation of device inputs: bit 1/2 NaN-inf in h/y, 4/8 negative h/y."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        if r >= h.shape[0]:
            return
        bad_h = 0.0
        bad_y = 0.0
        neg_h = 0.0
        neg_y = 0.0
        mh = 0.0
        my = 0.0
        for j in range(cuda.threadIdx.x, h.shape[1], block):
            a = h[r, j]
            b = y[r, j]
            if math.isnan(a) or math.isinf(a):
                bad_h = 1.0
            elif a < 0:
                neg_h = 1.0
            if math.isnan(b) or math.isinf(b):
                bad_y = 1.0
            elif b < 0:
                neg_y = 1.0
            mh += a
            my += b
        bad_h = block_sum(buf, bad_h)
        bad_y = block_sum(buf, bad_y)
        neg_h = block_sum(buf, neg_h)
        neg_y = block_sum(buf, neg_y)
        mh = block_sum(buf, mh)
        my = block_sum(buf, my)
        if cuda.threadIdx.x == 0:
            flags[r] = ((1 if bad_h > 0 else 0) + (2 if bad_y > 0 else 0)
                        + (4 if neg_h > 0 else 0) + (8 if neg_y > 0 else 0))
            mass_h[r] = mh
            mass_y[r] = my

    def zero_off_support(p, s):
        """``s[r, j] = 0`` where ``p[r, j] == 0`` (scalings vanish off the support)."""
        n, K = p.shape
        r, j = flat_entry(n, K)
        if r < n and p[r, j] == 0:
            s[r, j] = 0.0

    def support_gather(y, v, rows, index, size, y_s, v_s):
        """Compact the support of ``y[r]`` (rows with ``rows[r] != 0``) into
        ``index[r, :size[r]]`` with its values ``y_s`` and scalings ``v_s``; pad
        with zeros.  One thread per row (once per solve)."""
        r = cuda.grid(1)
        if r >= y.shape[0]:
            return
        k = 0
        if rows[r] != 0:
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

    def support_combine(K_T, index, size, x_s, out, active):
        """``out[r, i] = sum_k K_T[index[r, k], i] x_s[r, k]`` over the support
        (``G v`` from ``G^T``'s rows); one thread per entry, reads coalesced along ``i``."""
        n, K = out.shape
        r, i = flat_entry(n, K)
        if r < n and active[r] != 0:
            acc = nb_dtype(0)
            for k in range(size[r]):
                acc += K_T[index[r, k], i] * x_s[r, k]
            out[r, i] = acc

    def support_dots(K_T, index, size, x, out, active):
        """``out[r, k] = K_T[index[r, k]] . x[r]`` (``(G^T u)_j`` on the support);
        one block per ``(r, k)`` (grid ``(n, width)``), zero on the padding."""
        buf = cuda.shared.array(block, dtype=numba.float64)
        r = cuda.blockIdx.x
        k = cuda.blockIdx.y
        if r >= x.shape[0] or active[r] == 0:
            return
        if k >= size[r]:
            if cuda.threadIdx.x == 0:
                out[r, k] = 0
            return
        j = index[r, k]
        part = 0.0
        for i in range(cuda.threadIdx.x, x.shape[1], block):
            part += K_T[j, i] * x[r, i]
        total = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            out[r, k] = total

    def support_scatter(index, size, v_s, gtu_s, v, GTu, rows):
        """``v[r, index[r, k]] = v_s[r, k]`` and the same for ``G^T u`` (other
        entries untouched); one thread per ``(r, k)``."""
        n, width = index.shape
        r, k = flat_entry(n, width)
        if r < n and rows[r] != 0 and k < size[r]:
            v[r, index[r, k]] = v_s[r, k]
            GTu[r, index[r, k]] = gtu_s[r, k]

    def row_results(cost, err, status, cost_out, err_out, converged):
        """Per-row outputs in the result dtype; ``converged = status == CONVERGED``."""
        r = cuda.grid(1)
        if r < cost.shape[0]:
            cost_out[r] = cost[r]
            err_out[r] = err[r]
            converged[r] = status[r] == CONVERGED

    def fill(x, value):
        """``x[:] = value`` (one thread per entry)."""
        n, K = x.shape
        r, j = flat_entry(n, K)
        if r < n:
            x[r, j] = value

    def scale_rows(x, factor, out):
        """``out[r] = x[r] * factor[r]``."""
        n, K = x.shape
        r, j = flat_entry(n, K)
        if r < n:
            out[r, j] = x[r, j] * factor[r]

    return dict(matmul_rows=matmul_rows, update_scaling=update_scaling,
                row_errors=row_errors, log_lse=log_lse, log_update=log_update,
                logs_of_scalings=logs_of_scalings, log_cost=log_cost,
                prepare_rows=prepare_rows, flag_failures=flag_failures,
                init_log_scalings=init_log_scalings, balanced_outputs=balanced_outputs,
                relaxed_outputs=relaxed_outputs, exp_scalings=exp_scalings,
                check_rows=check_rows, zero_off_support=zero_off_support,
                support_gather=support_gather, support_combine=support_combine,
                support_dots=support_dots, support_scatter=support_scatter,
                row_results=row_results, fill=fill, scale_rows=scale_rows)


@functools.lru_cache(maxsize=None)
def kernels(tile, micro, block, dtype):
    """Compiled (lazily, per signature) kernels for ``(tile, micro, block, dtype)``."""
    return {name: cuda.jit(fn) for name, fn in kernel_sources(tile, micro, block, dtype).items()}
