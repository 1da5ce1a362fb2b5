"""Choosing where the solvers run: ``device="cpu"``, ``"cuda"`` or ``"auto"``.

``import sinkhorn_nb`` never imports numba-cuda; it is looked up only when a
call asks for ``"cuda"`` or ``"auto"``.
"""
import functools

DEVICES = ("cpu", "cuda", "auto")
INSTALL_HINT = 'pip install "sinkhorn_nb[cuda]"'


@functools.lru_cache(maxsize=1)
def cuda_status():
    """``(available, reason)``: whether numba-cuda is importable and sees a GPU."""
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - depends on the machine
        return False, f"numba's CUDA target could not be imported ({exc})"
    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target)
    except ImportError:
        return False, "numba-cuda is not installed"
    try:
        if not cuda.is_available():
            return False, "no usable NVIDIA GPU or CUDA driver was found"
    except Exception as exc:  # pragma: no cover
        return False, f"the CUDA driver could not be queried ({exc})"
    return True, ""


def resolve_device(device):
    """Return ``"cpu"`` or ``"cuda"`` for a user's ``device`` argument.

    Raises
    ------
    ValueError
        If ``device`` is not one of ``"cpu"``, ``"cuda"``, ``"auto"``.
    RuntimeError
        If ``device="cuda"`` but no usable GPU or numba-cuda is present.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    available, reason = cuda_status()
    if available:
        return "cuda"
    if device == "auto":
        return "cpu"
    raise RuntimeError(f"device='cuda' is not usable: {reason}. Install the CUDA "
                       f"extra with {INSTALL_HINT} on a machine with an NVIDIA GPU, "
                       "or use device='cpu'")
