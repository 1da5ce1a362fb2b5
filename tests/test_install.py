"""The README's install step, demo and example, in a new virtual environment, from
a folder outside the source tree; then a switch of install mode (slow: it installs
the dependencies; ``.ci/run`` runs it with ``python -m pytest -m slow``)."""
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def _readme():
    return (ROOT / "README.md").read_text()


def _run(args, cwd, **kw):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_ENABLE_CUDASIM", "NUMBA_CACHE_DIR", "PYTHONPATH")}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_readme_install_example_and_reinstall_outside_the_source_tree(tmp_path):
    text = _readme()
    install = re.search(r"```bash\n(python -m pip install \S+) && python -m sinkhorn_nb demo",
                        text)
    assert install, "README.md has no demo install command"
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    command = shlex.split(install.group(1))
    _run([python] + command[1:], ROOT, timeout=1800)                # the README's own step
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    table = _run([python, "-m", "sinkhorn_nb", "demo"], elsewhere, timeout=900)
    assert "KL (logistic)" in table and "W + 0.1 KL, p=2" in table, table
    assert (elsewhere / "sinkhorn_nb_results" / "demo" / "digits_wasserstein.png").is_file()
    example = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    output = _run([python, "-c", example], elsewhere, timeout=600)
    assert "True" in output
    site = _run([python, "-c", "import sinkhorn_nb, os; print(os.path.dirname("
                 "sinkhorn_nb.__file__))"], elsewhere).strip()
    assert site.startswith(str(venv))
    leftovers = [p for p in pathlib.Path(site).rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert not leftovers, leftovers[:3]               # Numba's cache lives elsewhere
    _run([python, "-m", "pip", "install", "--no-deps", "-e", str(ROOT)], tmp_path,
         timeout=900)                                 # a change of install mode
    check = ("import sinkhorn_nb, numpy as np; "
             "print(sinkhorn_nb.__file__, sinkhorn_nb.sinkhorn(np.ones(3) / 3, np.ones(3) / 3, "
             "sinkhorn_nb.ground_metric.ordinal(3), 5.0).loss)")
    output = _run([python, "-c", check], elsewhere, timeout=600)
    assert output.startswith(str(ROOT / "sinkhorn_nb" / "__init__.py")), output
