"""Arrays of other libraries in, the same kind out.

The solvers compute on NumPy arrays (the CPU kernels) or on Numba device arrays
(the CUDA kernels).  Arrays of other libraries reach them through the two
interchange protocols, without a copy where the memory allows it:

* an array on the host that implements DLPack (``__dlpack__``, ``__dlpack_device__``:
  PyTorch CPU tensors, JAX CPU arrays, ...) is read through :func:`numpy.from_dlpack`,
  a view of the same memory;
* an array on an NVIDIA GPU that implements ``__cuda_array_interface__`` (CuPy
  arrays, PyTorch CUDA tensors, Numba device arrays) goes to the CUDA kernels as
  it is (``device="cuda"`` or ``"auto"``).

The outputs take the kind and device of ``h`` (:class:`Caller`): host outputs
go back through the caller's ``from_dlpack`` (again a view), device outputs
through the caller's ``asarray`` on the CUDA array interface.

Mixed kinds follow one rule: **h decides**.  ``y`` (and a warm start) may be of
any kind that lives in the same memory as ``h`` (the host, or the GPU); ``M`` may
be of any kind and anywhere (it is read once, on the host).  A host ``h`` with a
device ``y``, or the reverse, raises ``TypeError``: no call moves data between
the host and the GPU behind the caller's back.

The caller's namespace is found by ``array-api-compat`` (installed with the
``torch`` and ``jax`` extras; scikit-learn's bundled copy of the same library is
used when it is absent).  An array of a library it does not know is still read,
and its outputs come back as NumPy arrays.
"""
from dataclasses import dataclass

import numpy as np

from .result import FIELDS, SinkhornResult

DLPACK_CPU = 1          # kDLCPU in DLPack's device-type enumeration
HOST, DEVICE, NUMPY = "host", "device", "numpy"


def _compat():
    """The ``array_api_compat`` module (the standalone one, else scikit-learn's copy)."""
    try:
        import array_api_compat
    except ImportError:      # scikit-learn is a dependency and bundles the library
        from sklearn.externals import array_api_compat
    return array_api_compat


def _detached(x):
    """A PyTorch tensor that requires grad, detached (a view): the protocols refuse
    such tensors, and the solvers never differentiate through them."""
    if getattr(x, "requires_grad", False) and hasattr(x, "detach"):
        return x.detach()
    return x


def where(x):
    """``"numpy"`` for what NumPy reads as it is (NumPy arrays and scalars, lists,
    Python numbers, SciPy sparse matrices), ``"host"`` for another library's array
    in host memory, ``"device"`` for an array on an NVIDIA GPU."""
    if isinstance(x, (np.ndarray, np.generic)) or not (
            hasattr(x, "__dlpack__") or hasattr(x, "__cuda_array_interface__")
            or hasattr(x, "copy_to_host")):
        return NUMPY
    if hasattr(x, "copy_to_host"):      # Numba device arrays (the simulator's also
        return DEVICE                   # speak DLPack, from host memory)
    if hasattr(x, "__dlpack_device__"):
        try:
            device_type = int(_detached(x).__dlpack_device__()[0])
        except Exception:     # a producer that cannot say: treat as unreadable below
            device_type = None
        if device_type == DLPACK_CPU:
            return HOST
    if hasattr(x, "__cuda_array_interface__"):
        return DEVICE
    raise TypeError(f"{type(x).__module__}.{type(x).__name__} is neither in host memory nor "
                    "on an NVIDIA GPU (its DLPack device is "
                    f"{_dlpack_device(x)}); move it to the CPU or to a CUDA device first")


def _dlpack_device(x):
    try:
        return tuple(int(v) for v in _detached(x).__dlpack_device__())
    except Exception as exc:
        return f"unknown: {exc}"


def host_view(x, name):
    """A NumPy view of the host array ``x`` of another library (no copy).

    Raises
    ------
    TypeError
        Naming ``name``, if NumPy cannot read ``x`` through DLPack (for instance
        a dtype NumPy does not have, such as bfloat16).
    """
    try:
        return np.from_dlpack(_detached(x))
    except (BufferError, TypeError, RuntimeError, ValueError) as exc:
        dtype = getattr(x, "dtype", "?")
        raise TypeError(f"{name} ({type(x).__name__} of dtype {dtype}) could not be read "
                        f"through DLPack: {exc}; cast it to float32 or float64") from None


def as_readable(x, name):
    """``x`` as the solvers read it: host arrays of other libraries as NumPy views,
    device arrays as they are (detached), anything else unchanged."""
    kind = where(x)
    if kind == HOST:
        return host_view(x, name)
    if kind == DEVICE:
        return _detached(x)
    return x


def on_host(x, name):
    """``x`` readable by NumPy, wherever it lives: device arrays are copied to the
    host (for the ground metric, which the engine reads once and keeps)."""
    kind = where(x)
    if kind == HOST:
        return host_view(x, name)
    if kind == DEVICE:
        x = _detached(x)
        if hasattr(x, "copy_to_host"):
            return x.copy_to_host()
        from numba import cuda
        return cuda.as_cuda_array(x).copy_to_host()
    return x


@dataclass(frozen=True)
class Caller:
    """Where a call's outputs go back: the kind of its ``h``.

    Attributes
    ----------
    kind : {"numpy", "host", "device"}
        As :func:`where` says of ``h``.
    namespace : module or None
        The array-API namespace of ``h``'s library (None for NumPy, Numba device
        arrays, and libraries that array-api-compat does not know).
    device : object
        ``h``'s device in that namespace.
    """
    kind: str
    namespace: object = None
    device: object = None

    @classmethod
    def of(cls, h):
        kind = where(h)
        if kind == NUMPY or hasattr(h, "copy_to_host"):   # NumPy, or Numba device arrays
            return cls(kind)
        h = _detached(h)
        compat = _compat()
        try:
            namespace = compat.array_namespace(h)
        except TypeError:       # a library array-api-compat does not know
            return cls(kind)
        return cls(kind, namespace, compat.device(h))

    @property
    def foreign(self):
        """Whether outputs are converted (the caller's library is not NumPy's or Numba's)."""
        return self.namespace is not None

    def array(self, a):
        """One output array (NumPy on the host, Numba on the GPU) as the caller's kind."""
        if not self.foreign or a is None:
            return a
        if isinstance(a, np.ndarray):
            if self.kind == HOST:
                return self.namespace.from_dlpack(a)
            return self.namespace.asarray(a, device=self.device)     # copy to the device
        try:        # a device array: shared through the CUDA array interface
            return self.namespace.asarray(a, device=self.device)
        except Exception:       # a library that cannot read the interface: via the host
            return self.namespace.asarray(a.copy_to_host(), device=self.device)

    def result(self, result, was_1d):
        """A batched :class:`SinkhornResult` as the caller's kind; squeezed for a
        1-D call (per-row fields become 0-d arrays of the caller's kind, or Python
        scalars for NumPy)."""
        if not self.foreign:
            return result.squeeze() if was_1d else result
        values = {name: self.array(getattr(result, name)) for name in FIELDS}
        if was_1d:
            values = {name: None if a is None else a[0] for name, a in values.items()}
        return SinkhornResult(**values)


def same_memory(h_kind, other, name):
    """Raise ``TypeError`` if ``other`` (``y`` or a warm start) does not live where
    ``h`` lives (the host or the GPU); the rule for mixed kinds."""
    other_kind = where(other)
    h_on_device = h_kind == DEVICE
    if h_on_device != (other_kind == DEVICE):
        there = ("on the GPU", "in host memory")
        raise TypeError(f"h is {there[not h_on_device]} but {name} is {there[h_on_device]}; "
                        f"move {name} to where h is (the outputs follow h, and no call copies "
                        "between the host and the GPU)")
    return other_kind
