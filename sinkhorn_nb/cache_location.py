"""Where Numba caches this package's compiled kernels.

Numba writes a cached kernel next to its source file (``__pycache__``) when that
folder is writable.  For an installed copy that folder is inside
``site-packages/sinkhorn_nb``: the cache files outlive an uninstall (pip removes
only the files it installed), and the folders left behind then shadow any later
install of the package as an empty namespace package (``import sinkhorn_nb``
finds no ``sinkhorn_nb.sinkhorn``).  So an installed copy caches its kernels in
Numba's user-wide cache folder instead (``~/.cache/numba`` on Linux, one
subfolder per install location), while a source checkout (a folder holding
``pyproject.toml`` beside the package, as with an editable install) keeps the
usual in-tree cache.  ``NUMBA_CACHE_DIR``, when set, still takes precedence.
"""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_CHECKOUT = os.path.exists(os.path.join(os.path.dirname(PACKAGE_DIR), "pyproject.toml"))


def use_user_wide_cache_when_installed():
    """Register the locator (once) before any kernel of the package is defined.

    Relies on Numba's cache-locator classes (``numba.core.caching``), whose names
    changed across versions; if they are not found, Numba's default applies.
    """
    if SOURCE_CHECKOUT:
        return False
    from numba.core import caching
    base = (getattr(caching, "UserWideCacheLocator", None)
            or getattr(caching, "_UserWideCacheLocator", None))
    impl = getattr(caching, "CompileResultCacheImpl", None)
    locators = getattr(impl, "_locator_classes", None)
    if base is None or not isinstance(locators, list):
        return False
    if any(getattr(c, "sinkhorn_nb_locator", False) for c in locators):
        return True

    class InstalledPackageLocator(base):
        """Numba's user-wide cache, for this package's own source files only."""
        sinkhorn_nb_locator = True

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(PACKAGE_DIR + os.sep):
                return None
            return super().from_function(py_func, py_file)

    locators.insert(1 if locators else 0, InstalledPackageLocator)   # after NUMBA_CACHE_DIR's
    return True
