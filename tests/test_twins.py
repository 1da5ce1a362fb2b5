"""A CPU kernel and its CUDA twin share their name, arguments and order.

Every function defined in a module of ``sinkhorn_nb/cpu/`` whose name is also
defined in a module of ``sinkhorn_nb/cuda/`` must take the same positional
argument names in the same order (a backend's own options, such as the CUDA
launch shape, are keyword-only) (CUDA kernels are read from their Python source, so this
runs without numba-cuda).
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "sinkhorn_nb"


def functions(backend):
    """``{name: (module, argument names)}`` of the module-level functions of a backend."""
    found = {}
    for path in sorted((PACKAGE / backend).glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                found[node.name] = (path.stem, [a.arg for a in node.args.args])
    return found


CPU, CUDA = functions("cpu"), functions("cuda")
TWINS = sorted(set(CPU) & set(CUDA))


def test_the_backends_share_their_kernels():
    """The twins the documentation lists (docs/gpu.md) are all there."""
    assert {"scan_measures", "scale_rows", "one_hot_rows", "newton_rows", "laplacian_solve",
            "semi_dual_state", "semi_dual_value", "newton_step", "outputs_from_scalings",
            "outputs_from_logs", "empty_rows", "marginal_terms", "row_dots", "final_status",
            "solve", "centre", "gauge_shift", "row_status", "positive_finite",
            "scaled_ratio"} <= set(TWINS)


@pytest.mark.parametrize("name", TWINS)
def test_twins_take_the_same_arguments(name):
    cpu_module, cpu_args = CPU[name]
    cuda_module, cuda_args = CUDA[name]
    assert cpu_args == cuda_args, (f"cpu/{cpu_module}.py:{name}{tuple(cpu_args)} != "
                                   f"cuda/{cuda_module}.py:{name}{tuple(cuda_args)}")


def test_twin_modules_have_the_same_names():
    """A twin lives in the module of the same name on both backends."""
    for name in TWINS:
        assert CPU[name][0] == CUDA[name][0], name
