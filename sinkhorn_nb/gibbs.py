"""The Gibbs kernel ``G = exp(-lam * M - 1)`` and the thresholds that pick a path.

One :class:`GibbsKernel` is built per ``(M, lam, dtype)`` and shared by every row
of a batch; :class:`sinkhorn_nb.WassersteinLoss` keeps one across calls.
"""
from functools import cached_property

import numpy as np

#: Largest ``lam * max(M)`` for which the multiplicative (scaling-vector) path runs
#: by default.  Beyond it the scalings ``u, v`` can overflow and entries of ``G``
#: lose relative precision, so the log-domain path runs instead.  float64 keeps
#: ``exp(-301) ~ 1e-131``, far above underflow; float32 keeps ``exp(-31) ~ 3e-14``.
MULTIPLICATIVE_LIMIT = {np.dtype(np.float64): 300.0, np.dtype(np.float32): 30.0}


class GibbsKernel:
    """Gibbs kernel of a ground metric, in one dtype, with its derived arrays.

    .. math:: G = \\exp(-\\lambda M - 1)

    (the paper's bold **K**; the ``-1`` comes from the paper's definition of the
    entropy and is kept).

    Parameters
    ----------
    M : ndarray of shape (K, K)
        Validated ground metric.
    lam : float
        Regularization strength :math:`\\lambda > 0`.
    dtype : numpy dtype
        float32 or float64; every array here has it.

    Attributes
    ----------
    M, M_T : ndarray of shape (K, K)
        The metric and its transpose, C-contiguous.
    G, G_T : ndarray of shape (K, K)
        Kernel and its transpose, C-contiguous (the batched products are
        ``U @ G`` for :math:`G^\\top u` and ``V @ G_T`` for :math:`G v`).
    GM_T : ndarray of shape (K, K)
        ``(G * M).T``, for the transport cost :math:`\\langle T, M\\rangle`.
        ``M_T``, ``G``, ``G_T`` and ``GM_T`` are computed on first access and kept.
    lam_max_m : float
        ``lam * max(M)``, the quantity that decides the path.
    """

    def __init__(self, M, lam, dtype):
        dtype = np.dtype(dtype)
        self.dtype = dtype
        self.lam = float(lam)
        self.M = np.ascontiguousarray(M, dtype=dtype)
        self._M64 = np.asarray(M, dtype=np.float64)
        self.lam_max_m = self.lam * float(np.max(M))

    # The derived arrays are built on first use: a batch of one-hot balanced targets
    # needs only M, a batch of sparse targets only G_T and GM_T.  A symmetric metric
    # (the usual case) shares its transposes instead of storing them twice.
    @cached_property
    def symmetric(self):
        """Whether ``M == M.T`` exactly."""
        return bool(np.array_equal(self.M, self.M.T))

    @cached_property
    def M_T(self):
        return self.M if self.symmetric else np.ascontiguousarray(self.M.T)

    @cached_property
    def G(self):
        # computed in float64 then rounded, so float32 kernels are correctly rounded
        return np.ascontiguousarray(np.exp(-self.lam * self._M64 - 1.0), dtype=self.dtype)

    @cached_property
    def G_T(self):
        return self.G if self.symmetric else np.ascontiguousarray(self.G.T)

    @cached_property
    def GM_T(self):
        G64 = self.G if self.dtype == np.float64 else np.exp(-self.lam * self._M64 - 1.0)
        GM = (G64 * self._M64).astype(self.dtype, copy=False)
        return GM if self.symmetric else np.ascontiguousarray(GM.T)

    @property
    def n_labels(self):
        return self.M.shape[0]

    def on_device(self):
        """Device copies of the arrays (built once; needs numba-cuda)."""
        if getattr(self, "_device", None) is None:
            from .cuda.paths import DeviceGibbsKernel
            self._device = DeviceGibbsKernel(self)
        return self._device

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_device", None)   # device memory does not pickle
        return state

    def multiplicative_is_safe(self):
        """True when ``lam * max(M)`` is within :data:`MULTIPLICATIVE_LIMIT`."""
        return self.lam_max_m <= MULTIPLICATIVE_LIMIT[self.dtype]
