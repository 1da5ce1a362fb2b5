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
