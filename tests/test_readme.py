"""The README's NumPy example runs as written."""
import pathlib
import re

import numpy as np


def test_readme_example_runs(capsys):
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert np.all(namespace["r"].converged)
    np.testing.assert_allclose(namespace["value"], namespace["r"].loss)
    assert capsys.readouterr().out.count("\n") >= 4
