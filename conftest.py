"""Doctests of the framework wrappers run only where their framework is installed
(``pip install ".[torch]"``, ``".[jax]"``); without it, importing them raises the
ImportError that names the extra, which tests/test_frameworks_missing.py checks."""
import importlib.util

collect_ignore = [f"sinkhorn_nb/{name}.py" for name in ("torch", "jax")
                  if importlib.util.find_spec(name) is None]
