"""The Gibbs kernel ``G = exp(-lam * M - 1)`` of a ground metric, per compute dtype.

One :class:`GibbsKernel` is built per ``(M, lam, dtype)`` and shared by every row
of a batch; :class:`sinkhorn_nb.WassersteinLoss` keeps one across calls.
"""
import threading
from functools import cached_property

import numpy as np
from numba import njit


@njit(cache=True)
def is_symmetric(A, block=64):
    """``A == A.T`` exactly, compared tile by tile (cache-friendly, stops early)."""
    K = A.shape[0]
    for i0 in range(0, K, block):
        for j0 in range(i0, K, block):
            for i in range(i0, min(i0 + block, K)):
                for j in range(max(j0, i + 1), min(j0 + block, K)):
                    if A[i, j] != A[j, i]:
                        return False
    return True


class GibbsKernel:
    r"""Gibbs kernel of a ground metric, in one dtype, with its derived arrays.

    .. math:: G = \exp(-\lambda M - 1)

    (the paper's bold **K**; the ``-1`` comes from the paper's definition of the
    entropy and is kept).

    Parameters
    ----------
    M : ndarray of shape (K, K), float64
        Validated ground metric (C-contiguous).
    lam : float
        Regularization strength :math:`\lambda > 0`.
    dtype : numpy dtype
        float32 or float64, the compute dtype.

    Attributes
    ----------
    M, M_T : ndarray of shape (K, K)
        The metric and its transpose in ``dtype``, C-contiguous.
    M64, M64_T : ndarray of shape (K, K)
        The same in float64 (the log-domain path accumulates in float64).
    G, G_T : ndarray of shape (K, K)
        Kernel and its transpose (the batched products are ``U @ G`` for
        :math:`G^\top u` and ``V @ G_T`` for :math:`G v`).
    GM_T : ndarray of shape (K, K)
        ``(G * M).T``, for the transport cost :math:`\langle T, M\rangle`.
    M_column_sums : ndarray of shape (K,), float64
        :math:`\sum_i M_{ij}` for each label ``j`` (the row sums of ``M_T``; the
        one-hot closed form centres its gradient with them).
    lam_max_m : float
        ``lam * max(M)`` (the plan routes on it, :mod:`sinkhorn_nb.routing`).

    Every array is computed on first access and kept: a batch of one-hot
    balanced targets needs only ``M_T`` and ``M_column_sums``, a batch of sparse
    targets only ``G_T`` and ``GM_T``.  A symmetric metric (the usual case)
    shares each array with its transpose instead of storing it twice.
    """

    def __init__(self, M, lam, dtype):
        self.dtype = np.dtype(dtype)
        self.lam = float(lam)
        self.M64 = np.ascontiguousarray(M, dtype=np.float64)
        self.lam_max_m = self.lam * float(M.max())
        self._scratch = threading.local()

    def scratch(self, name, shape, dtype):
        """The array ``name`` of this shape and dtype, reused across calls (its
        contents are whatever the last user left; one set per thread; a new shape
        replaces it).  Saves the page faults of a fresh allocation per call."""
        held = self._scratch.__dict__
        key = (tuple(shape), np.dtype(dtype))
        if name not in held or held[name][0] != key:
            held[name] = (key, np.empty(shape, dtype))
        return held[name][1]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_scratch")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._scratch = threading.local()

    @cached_property
    def symmetric(self):
        """Whether ``M == M.T`` exactly."""
        return is_symmetric(self.M64)

    def _transposed(self, A):
        return A if self.symmetric else np.ascontiguousarray(A.T)

    @cached_property
    def M64_T(self):
        return self._transposed(self.M64)

    @cached_property
    def M(self):
        return self.M64.astype(self.dtype, copy=False)

    @cached_property
    def M_T(self):
        return self.M if self.symmetric else self.M64_T.astype(self.dtype, copy=False)

    @cached_property
    def M_column_sums(self):
        """Column sums of ``M`` in this dtype's values (the row sums of ``M_T``),
        accumulated in float64."""
        return self.M_T.sum(axis=1, dtype=np.float64)

    @cached_property
    def _G64(self):
        G = np.multiply(self.M64, -self.lam)
        G -= 1.0
        return np.exp(G, out=G)

    @cached_property
    def G(self):
        # computed in float64 then rounded, so float32 kernels are correctly rounded
        G = self._G64.astype(self.dtype, copy=False)
        if self.dtype != np.float64:
            self.__dict__.pop("_G64", None)     # (another thread may have dropped it)
        return G

    @cached_property
    def G_T(self):
        return self._transposed(self.G)

    @cached_property
    def GM_T(self):
        GM = (self._G64 * self.M64).astype(self.dtype, copy=False)
        return self._transposed(GM)

    def built(self, name):
        """Whether the array ``name`` (``"G"``, ``"GM_T"``, ...) is computed already."""
        return name in self.__dict__

    @property
    def n_labels(self):
        return self.M64.shape[0]


class GibbsKernels:
    """The :class:`GibbsKernel` of one ``(M, lam)`` per compute dtype, built on first
    use, and (``device``) a place for a backend to keep its device copies.

    Parameters
    ----------
    M : ndarray of shape (K, K), float64
    lam : float
    """

    def __init__(self, M, lam):
        self.M, self.lam = M, lam
        self._host = {}
        self.device = {}
        self._lock = threading.Lock()

    def get(self, dtype):
        """The :class:`GibbsKernel` for ``dtype`` (built once, also when threads ask
        at the same time)."""
        dtype = np.dtype(dtype)
        with self._lock:
            if dtype not in self._host:
                self._host[dtype] = GibbsKernel(self.M, self.lam, dtype)
            return self._host[dtype]

    def __getstate__(self):
        return {"M": self.M, "lam": self.lam, "_host": self._host}

    def __setstate__(self, state):
        self.__dict__.update(state, device={}, _lock=threading.Lock())
