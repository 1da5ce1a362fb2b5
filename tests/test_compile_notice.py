"""The one-time note on stderr while kernels compile, and only then."""
import io
import os
import subprocess
import sys

import numba
import pytest
from numba.core import event

from sinkhorn_nb import compile_notice

FIRST_CALL = ("import numpy as np, sinkhorn_nb as snb; "
              "r = snb.sinkhorn(np.full(4, 0.25), np.eye(4)[1], snb.ground_metric.ordinal(4), "
              "20.0); print(r.loss)")


@pytest.fixture
def notice():
    """A notice writing to a string, listening for the duration of the test."""
    listener = compile_notice.CompileNotice(stream=io.StringIO())
    listener.enabled = True
    event.register("numba:compile", listener)
    yield listener
    event.unregister("numba:compile", listener)


def _kernel(module):
    def add_one(x):
        return x + 1
    add_one.__module__ = module
    return numba.njit(add_one)


def test_compiling_a_package_kernel_is_announced_once(notice):
    kernel = _kernel("sinkhorn_nb._kernels_under_test")
    assert kernel(1) == 2
    notice.finish()
    text = notice.stream.getvalue()
    assert text.count("compiling kernels for their first use") == 1
    assert "compiled 1 kernels in" in text
    kernel(2)                                   # compiled already: nothing more
    _kernel("sinkhorn_nb._kernels_under_test")(3)   # a second compilation, same process
    notice.finish()
    text = notice.stream.getvalue()
    assert text.count("compiling kernels for their first use") == 1
    assert text.count("sinkhorn_nb: compiled 1 kernels in") == 2


def test_other_packages_kernels_and_a_disabled_notice_are_silent(notice):
    _kernel("someone_else")(1)
    notice.enabled = False
    _kernel("sinkhorn_nb._kernels_under_test")(1)
    notice.finish()
    assert notice.stream.getvalue() == ""


def _first_call(cache, **env):
    environment = {k: v for k, v in os.environ.items() if k != "SINKHORN_NB_COMPILE_NOTICE"}
    environment.update(NUMBA_CACHE_DIR=str(cache), **env)
    done = subprocess.run([sys.executable, "-c", FIRST_CALL], env=environment,
                          capture_output=True, text=True, timeout=600, check=True)
    return done.stderr


def test_a_cold_cache_explains_itself_and_a_warm_one_is_silent(tmp_path):
    cold = _first_call(tmp_path)
    assert cold.count("sinkhorn_nb: compiling kernels for their first use") == 1
    assert "sinkhorn_nb: compiled" in cold and "(cached for later runs)" in cold
    assert _first_call(tmp_path) == ""
    assert _first_call(tmp_path / "other", SINKHORN_NB_COMPILE_NOTICE="0") == ""
