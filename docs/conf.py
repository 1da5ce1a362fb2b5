"""Sphinx configuration: numpydoc API pages, MyST for the Markdown pages, and a
sphinx-gallery of the paper's experiments (``examples/``).

Build: ``sphinx-build -W -b html docs docs/_build/html`` (add ``-D plot_gallery=0``
to skip running the gallery examples, as CI does; they are tested through
``tests/test_experiments.py``).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import sinkhorn_nb  # noqa: E402

project = "sinkhorn_nb"
author = "the sinkhorn_nb developers"
copyright = "2026, the sinkhorn_nb developers"
release = version = sinkhorn_nb.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md", "experiments/results/**/*.json",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.md5", "auto_examples/*.json"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": False}
# scikit-learn's inherited docstrings (score, get_params, ...) cite labels of its
# own documentation; show our docstrings only
autodoc_inherit_docstrings = False
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
intersphinx_mapping = {}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}

html_theme = "alabaster"
html_static_path = []
templates_path = ["_templates"]
html_title = f"sinkhorn_nb {release}"
