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
    """``{(module, name): argument names}`` of the module-level functions of a backend."""
    found = {}
    for path in sorted((PACKAGE / backend).glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                found[path.stem, node.name] = [a.arg for a in node.args.args]
    return found


CPU, CUDA = functions("cpu"), functions("cuda")
TWINS = sorted(set(CPU) & set(CUDA))


def test_the_backends_share_their_kernels():
    """The twins the documentation lists (docs/gpu.md) are all there."""
    assert {("scan", "scan_measures"), ("scan", "scale_rows"), ("drivers", "solve"),
            ("kernels", "row_dots"), ("kernels", "final_status"), ("kernels", "row_status"),
            ("kernels", "positive_finite"), ("kernels", "scaled_ratio"),
            ("balanced", "one_hot_rows"), ("balanced", "newton_rows"),
            ("balanced", "newton_step"), ("balanced", "laplacian_solve"),
            ("balanced", "semi_dual_state"), ("balanced", "semi_dual_value"),
            ("balanced", "outputs_from_scalings"), ("balanced", "outputs_from_logs"),
            ("balanced", "gauge_shift"), ("balanced", "centre"),
            ("relaxed", "empty_rows"), ("relaxed", "outputs_from_scalings"),
            ("relaxed", "outputs_from_logs"), ("relaxed", "marginal_terms"),
            ("relaxed", "kl_term")} <= set(TWINS)


@pytest.mark.parametrize("module, name", TWINS)
def test_twins_take_the_same_arguments(module, name):
    assert CPU[module, name] == CUDA[module, name], (
        f"cpu/{module}.py:{name}{tuple(CPU[module, name])} != "
        f"cuda/{module}.py:{name}{tuple(CUDA[module, name])}")


def test_a_name_on_both_backends_is_in_the_same_module():
    """A reader finds a twin in the module of the same name on the other backend."""
    cpu_names = {name: module for module, name in CPU}
    cuda_names = {name: module for module, name in CUDA}
    for name in set(cpu_names) & set(cuda_names):
        if name not in ("outputs_from_scalings", "outputs_from_logs"):   # in both variants
            assert cpu_names[name] == cuda_names[name], name
