"""Import time and first-call time in a fresh process (Numba cache cold and warm).

The first call is the README's NumPy example (both variants, dense and sparse
targets, the loss engine and the exact LP value): its cold-cache time is the
figure the documentation states for the first run (30-45 s on 2 cores under
load; the compile note of :mod:`sinkhorn_nb.compile_notice` is silenced here).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
SMALL = ("import numpy as np, sinkhorn_nb as snb; M = snb.ground_metric.ordinal(5); "
         "h = np.full(5, 0.2); snb.sinkhorn(h, h[::-1].copy(), M, 5.0); "
         "snb.sinkhorn_relaxed(h, h, M, 5.0)")


def _first_loss():
    """The README's first Python block, or a small call of both variants when the
    README is not beside the benchmarks."""
    try:
        with open(README) as f:
            return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)[0]
    except (OSError, IndexError):
        return SMALL


FIRST_LOSS = _first_loss()


def _run(code, env):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


class Startup:
    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.env = dict(os.environ, SINKHORN_NB_COMPILE_NOTICE="0")

    def track_import_seconds(self):
        return _run("import sinkhorn_nb", self.env)
    track_import_seconds.unit = "seconds"

    def track_first_loss_cold_cache_seconds(self):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(self.env, NUMBA_CACHE_DIR=cache)
            return _run(FIRST_LOSS, env)
    track_first_loss_cold_cache_seconds.unit = "seconds"

    def track_first_loss_warm_cache_seconds(self):
        _run(FIRST_LOSS, self.env)          # fills the cache if needed
        return _run(FIRST_LOSS, self.env)
    track_first_loss_warm_cache_seconds.unit = "seconds"
