"""The README's Python examples run as written, in order, in one namespace."""
import pathlib
import re

import numpy as np


def test_readme_examples_run(capsys):
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, "README.md: the NumPy example and the estimator example"
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert np.all(namespace["r"].converged)
    np.testing.assert_allclose(namespace["value"], namespace["r"].loss)
    assert capsys.readouterr().out.count("\n") >= 4
    clf, X = namespace["clf"], namespace["X"]
    assert clf.score(X / 16, namespace["labels"]) > 0.9


ROOT = pathlib.Path(__file__).parents[1]
COMPILE = "30-45 s"         # the one figure for the first run's compilation


def test_first_paragraph_says_the_cuda_backend_has_not_run_on_a_gpu():
    text = (ROOT / "README.md").read_text()
    first = text.split("\n\n")[1]
    assert "not yet run on a real GPU" in " ".join(first.split())


def test_the_compile_time_is_one_figure_everywhere():
    from sinkhorn_nb import __main__, compile_notice
    from sinkhorn_nb.experiments import CATALOG  # noqa: F401  (the help reads it)
    help_text = __main__._experiment_help() + str(__main__.parser().format_help())
    demo_help = next(a for a in __main__.parser()._subparsers._group_actions[0]._choices_actions
                     if a.dest == "demo").help
    texts = {"README.md": (ROOT / "README.md").read_text(),
             "docs/install.rst": (ROOT / "docs" / "install.rst").read_text(),
             "experiment --help": help_text, "demo --help": demo_help,
             "compile_notice": compile_notice.__doc__}
    for where, text in texts.items():
        flat = " ".join(text.split())
        assert COMPILE in flat, where
        for stale in ("about 10 s", "~30 s", "11.9 s", "29.2 s"):
            assert stale not in flat, (where, stale)


def test_readme_quick_times_are_the_catalog_s():
    from sinkhorn_nb.experiments import CATALOG
    text = " ".join((ROOT / "README.md").read_text().split())
    for name in ("relaxed", "tags"):
        assert f"{CATALOG[name][1]} for `{name}`" in text


def test_readme_names_every_command():
    from sinkhorn_nb.__main__ import parser
    commands = parser()._subparsers._group_actions[0].choices
    text = (ROOT / "README.md").read_text()
    for name in commands:
        assert f"`{name}`" in text, name
    assert "sinkhorn-nb" in text
