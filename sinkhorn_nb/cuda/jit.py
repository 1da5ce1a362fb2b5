"""Compiling the CUDA kernels: ``@kernel`` records each kernel's argument types.

Kernels are module-level ``@cuda.jit`` functions, compiled per argument types on
first launch.  ``@kernel(argument_types)`` also keeps, beside the kernel, the
argument types its PTX test compiles it for (``tests/cuda/test_ptx.py``), as a
function of :class:`ArgumentTypes` so one declaration covers both dtypes.
"""
import numba
from numba import cuda, types

#: Largest thread count of the one-block-per-row kernels (their shared buffer).
MAX_ROW_THREADS = 256


class ArgumentTypes:
    """Numba types of kernel arguments for one compute dtype (for ``compile_ptx``).

    ``a1`` to ``a3`` are 1-D to 3-D C-contiguous arrays of the compute dtype; ``f1``,
    ``f2``, ``f3`` 1-D to 3-D in float64; ``i32``, ``i64`` 1-D integer arrays, ``i2`` 2-D
    int32, ``b1`` 1-D boolean; ``f``, ``i``, ``b`` float64, int64 and boolean
    scalars.
    """

    def __init__(self, dtype):
        d = numba.from_dtype(dtype)
        self.a1, self.a2, self.a3 = d[::1], d[:, ::1], d[:, :, ::1]
        self.f1, self.f2 = types.float64[::1], types.float64[:, ::1]
        self.f3 = types.float64[:, :, ::1]
        self.i32, self.i64, self.i2 = types.int32[::1], types.int64[::1], types.int32[:, ::1]
        self.b1 = types.boolean[::1]
        self.f, self.i, self.b = types.float64, types.int64, types.boolean


def kernel(argument_types):
    """``@cuda.jit`` that keeps ``argument_types(t)`` (a list of argument tuples
    for the :class:`ArgumentTypes` ``t``) as ``.argument_types``."""
    def wrap(fn):
        compiled = cuda.jit(fn)
        compiled.argument_types = argument_types
        return compiled
    return wrap


device = cuda.jit(device=True)


def compiled_kernels(module):
    """The ``@kernel`` functions of ``module``, by name (the PTX tests compile
    each one for its ``argument_types``)."""
    return {name: obj for name, obj in vars(module).items()
            if callable(getattr(obj, "argument_types", None))}
