"""Public Sinkhorn solvers: :func:`sinkhorn` and :func:`sinkhorn_relaxed`.

Each call is a :class:`~sinkhorn_nb.WassersteinLoss` used once: the arguments are
validated there, the Gibbs kernel is built for the call, and the engine solves.
"""
from .loss import WassersteinLoss
from .validation import check_ground_metric


class _OneCallLoss(WassersteinLoss):
    """The engine of one :func:`sinkhorn` or :func:`sinkhorn_relaxed` call: it does
    not outlive the call, so it reads the validated metric through a read-only
    view instead of copying it."""

    @staticmethod
    def _own_metric(M):
        view = check_ground_metric(M).view()
        view.flags.writeable = False
        return view


def sinkhorn(h, y, M, lam, *, max_iter=1000, tol=None, check_every=10, method="auto",
             acceleration="auto", renormalize=False, device="cpu"):
    r"""Smoothed (entropic, balanced) optimal transport loss and its gradient.

    For each row, with :math:`G = e^{-\lambda M - 1}`,

    .. math::
        W(h, y) = \min_{T \ge 0,\; T1 = h,\; T^\top 1 = y}
                  \langle T, M\rangle + \frac{1}{\lambda}\sum_{ij} T_{ij}\log T_{ij}

    solved by Sinkhorn's iteration (Frogner et al. [1]_, Algorithm 1, after
    Cuturi [2]_) :math:`v \leftarrow y \oslash G^\top u`,
    :math:`u \leftarrow h \oslash G v`.  The value is the dual value
    :math:`\alpha^\top h + \beta^\top y - \frac1\lambda \sum T` with
    :math:`\alpha = \log u / \lambda`, :math:`\beta = \log v/\lambda`, and

    .. math:: \frac{\partial W}{\partial h} = \alpha - \frac{1}{K}\sum_i \alpha_i

    (centred, tangent to the simplex).

    Parameters
    ----------
    h : array_like of shape (K,) or (n, K)
        Predictions: non-negative, each row with the same total mass as ``y``.
    y : array_like or scipy.sparse array of shape (K,) or (n, K)
        Targets, same shape as ``h``; one-hot and sparse rows are the normal case
        (a SciPy sparse matrix or array is read as CSR: on the CPU its support
        rows are solved from it, and only rows that take the dense or log-domain
        path are densified; the CUDA backend densifies it on upload).
    M : array_like of shape (K, K)
        Ground metric: finite, non-negative (see :mod:`sinkhorn_nb.ground_metric`).
    lam : float
        Regularization :math:`\lambda > 0`; larger is closer to exact transport.
        ``lam * max(M)`` may be at most 1e8 (beyond, float64 cannot resolve the
        plan; see :func:`exact_wasserstein`).
    max_iter : int, default 1000
        Iteration cap per row (Newton steps for the rows solved by Newton's
        method).
    tol : float, optional
        Per-row stopping threshold on :math:`\|v \odot G^\top u - y\|_1 / \|y\|_1`,
        checked every ``check_every`` iterations (every step for Newton's method).
        Default 1e-9 in float64, 1e-5 in float32.  ``tol=0`` runs exactly
        ``max_iter`` Sinkhorn iterations (and never warns).
    check_every : int, default 10
        Iterations between convergence checks.
    method : {"auto", "multiplicative", "log"}, default "auto"
        ``"auto"``: while ``lam * max(M)`` is at most 300 (float64) or 30
        (float32), rows whose target has 2 to 8 non-zeros are solved by Newton's
        method on the semi-dual (``tol > 0``), other rows by the multiplicative
        Sinkhorn iteration (two BLAS matrix products per iteration over the
        batch, or products restricted to the target's support when it has at
        most K/8 non-zeros); beyond that, the log-domain iteration.  A row whose
        path fails is handed on: from Newton's method to the Sinkhorn iteration,
        from an over- or underflowing multiplicative solve to the log domain
        (:mod:`sinkhorn_nb.routing` decides every path).
        ``"multiplicative"`` runs the Sinkhorn iteration whatever ``lam`` (still
        with the fallback); ``"log"`` always runs the log-domain path.
    acceleration : {"auto", "overrelax", "none"}, default "auto"
        ``"overrelax"`` over-relaxes the Sinkhorn iteration,
        :math:`u \leftarrow u^{1-\omega} (h \oslash G v)^{\omega}` (likewise
        ``v``), with a factor :math:`1 \le \omega < 2` chosen per row from the
        observed rate at every convergence check, and, for the relaxed variant,
        sets the common factor of the scalings to its optimum in closed form at
        every check (:mod:`sinkhorn_nb.overrelaxation`).  ``"auto"`` adds, for
        log-domain rows with ``lam * max(M) > 100`` and ``method="auto"``,
        lam-continuation: stages at ``lam / 2**k``, ..., ``lam / 2``, ``lam``,
        each started from the potentials of the one before (``max_iter`` and
        ``n_iter`` count the iterations of all stages together).  The fixed
        point, hence the loss and gradient, is the same; it is reached in far
        fewer iterations as ``lam * max(M)`` (or ``gamma * lam``) grows.
        ``"none"`` runs the plain iteration of the paper.  With ``tol=0`` (no
        checks) the iteration is always the plain one.
    renormalize : bool, default False
        Rescale each row of ``h`` and ``y`` to unit mass (on copies) instead of
        requiring ``sum(h) == sum(y)`` to a relative 1e-6 (float64) / 1e-4
        (float32).
    device : {"cpu", "cuda", "auto"}, default "cpu"
        Where to compute.  Arrays on an NVIDIA GPU need ``"cuda"`` or ``"auto"``.

    Returns
    -------
    SinkhornResult
        ``loss``, ``grad``, ``transport_cost``, ``n_iter``, ``err``, ``converged``,
        ``u``, ``v``; scalars and 1-D arrays for 1-D inputs.  NumPy arrays for
        NumPy input; for an ``h`` of another library (PyTorch, JAX, CuPy), arrays
        of that library on ``h``'s device (0-d arrays for 1-D inputs).

    Raises
    ------
    ValueError
        For NaN/inf/negative entries, mismatched shapes, an empty batch, more
        than 2 dimensions, ``lam <= 0`` or subnormal, ``lam * max(M) > 1e8``, a
        zero-mass row or unequal masses.
    TypeError
        For non-numeric inputs, or a ``renormalize`` that is not a boolean.

    Warns
    -----
    sklearn.exceptions.ConvergenceWarning
        Once per call when some row reached ``max_iter`` (``tol > 0``) or gave
        non-finite values.

    Notes
    -----
    ``h``, ``y`` and ``M`` may be arrays of other libraries.  Host arrays that
    implement DLPack (PyTorch CPU tensors, JAX arrays) are read as NumPy views,
    without a copy; arrays on an NVIDIA GPU that implement
    ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors) are solved there
    by the CUDA kernels.  The outputs follow ``h``; ``y`` must live in the same
    memory as ``h`` (host or GPU) and ``M`` is read once on the host.

    The compute dtype is float32 when ``h`` and ``y`` are both float32 and float64
    otherwise (integers promote to float64); ``M`` is cast to it.  Rows whose
    target has a single non-zero take the closed form :math:`T = h e_j^\top` with
    no iteration.  Where :math:`h_i = 0` the derivative is :math:`-\infty`; the
    gradient reports the finite soft c-transform
    :math:`\alpha_i = -\log(Gv)_i/\lambda` there so that the centring stays defined.

    See Also
    --------
    sinkhorn_relaxed : unnormalized measures.
    WassersteinLoss : reuses the Gibbs kernel across calls.
    exact_wasserstein : the unregularized value, by linear programming.

    References
    ----------
    .. [1] C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo, T. Poggio. Learning
       with a Wasserstein Loss. NIPS 2015.
    .. [2] M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal
       Transport. NIPS 2013.

    Examples
    --------
    >>> import numpy as np, sinkhorn_nb as snb
    >>> M = snb.ground_metric.ordinal(3)
    >>> r = snb.sinkhorn([0.2, 0.5, 0.3], [0.0, 1.0, 0.0], M, lam=20.0)
    >>> round(r.transport_cost, 4)
    0.2498
    >>> bool(r.converged)
    True
    """
    engine = _OneCallLoss(M, lam, "balanced", device=device, max_iter=max_iter, tol=tol,
                          check_every=check_every, method=method, acceleration=acceleration,
                          renormalize=renormalize)
    return engine._solve(h, y, None, "sinkhorn")


def sinkhorn_relaxed(h, y, M, lam, gamma_a=1.0, gamma_b=1.0, *, max_iter=1000, tol=None,
                     check_every=10, method="auto", acceleration="auto", device="cpu"):
    r"""Relaxed (unbalanced, KL-penalized) transport loss and its gradient.

    For unnormalized non-negative ``h`` and ``y``, with
    :math:`\widetilde{KL}(w\|z) = w^\top\log(w\oslash z) - 1^\top w + 1^\top z`,

    .. math::
        W_{KL}(h, y) = \min_{T\ge 0} \langle T, M\rangle
            + \frac1\lambda\sum_{ij} T_{ij}\log T_{ij}
            + \gamma_a \widetilde{KL}(T1\|h) + \gamma_b\widetilde{KL}(T^\top 1\|y)

    solved by the scaling iteration of [1]_ (Proposition 4.2)
    :math:`u \leftarrow (h\oslash Gv)^a`, :math:`v \leftarrow (y \oslash G^\top u)^b`
    with :math:`a = \gamma_a\lambda/(\gamma_a\lambda + 1)`,
    :math:`b = \gamma_b\lambda/(\gamma_b\lambda+1)`.  The value is the objective at
    :math:`T = \operatorname{diag}(u)G\operatorname{diag}(v)` and

    .. math:: \frac{\partial W_{KL}}{\partial h} = \gamma_a\,(1 - T1 \oslash h).

    Parameters
    ----------
    h, y : array_like or scipy.sparse array of shape (K,) or (n, K)
        Non-negative measures of any total mass.
    M : array_like of shape (K, K)
        Ground metric.
    lam : float
        Regularization :math:`\lambda > 0`.
    gamma_a, gamma_b : float, default 1.0
        Strengths :math:`\gamma_a, \gamma_b > 0` of the marginal penalties; as they
        grow the problem approaches :func:`sinkhorn` on normalized inputs.
        ``gamma * lam`` may be at most 1e7 in float64 (1e4 in float32): beyond,
        the scaling iteration cannot resolve the penalty and the gradient loses
        its digits, so such gammas raise (use :func:`sinkhorn` instead).
    max_iter, tol, check_every, method, acceleration, device
        As in :func:`sinkhorn` (Newton's method is for the balanced variant only);
        here the error is :math:`\|(u - u^{+})\odot Gv\|_1/\max(\|h\|_1,
        \|u \odot Gv\|_1)`, the relative change of the row marginal an update of
        ``u`` would make.

    Returns
    -------
    SinkhornResult

    Raises
    ------
    ValueError, TypeError
        As in :func:`sinkhorn`, and for ``gamma_a`` or ``gamma_b`` not finite and > 0.

    Notes
    -----
    Arrays of other libraries are accepted and returned as in :func:`sinkhorn`.
    A row where ``h`` or ``y`` is all zero has the optimal plan ``T = 0`` and
    value :math:`\gamma_a\sum h + \gamma_b \sum y`, computed without iterating.
    Where :math:`h_i = 0` the gradient entry is its limit :math:`-\infty`
    (through a softmax such entries contribute 0, see
    :func:`sinkhorn_nb.loss.softmax_backward`).

    See Also
    --------
    sinkhorn, WassersteinLoss

    References
    ----------
    .. [1] C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo, T. Poggio. Learning
       with a Wasserstein Loss. NIPS 2015.
    .. [2] L. Chizat, G. Peyré, B. Schmitzer, F.-X. Vialard. Scaling algorithms
       for unbalanced optimal transport problems. Math. Comp. 2018.

    Examples
    --------
    >>> import numpy as np, sinkhorn_nb as snb
    >>> M = snb.ground_metric.ordinal(3)
    >>> r = snb.sinkhorn_relaxed([0.2, 0.5, 0.3], [0.0, 2.0, 0.0], M, lam=20.0)
    >>> r.grad.shape
    (3,)
    >>> bool(r.loss > 0)
    True
    """
    engine = _OneCallLoss(M, lam, "relaxed", gamma_a, gamma_b, device=device,
                          max_iter=max_iter, tol=tol, check_every=check_every, method=method,
                          acceleration=acceleration)
    return engine._solve(h, y, None, "sinkhorn_relaxed")
