"""Import time and first-call time in a fresh process (Numba cache cold and warm)."""
import os
import subprocess
import sys
import tempfile
import time

FIRST_LOSS = ("import numpy as np, sinkhorn_nb as snb; M = snb.ground_metric.ordinal(5); "
              "h = np.full(5, 0.2); snb.sinkhorn(h, h[::-1].copy(), M, 5.0); "
              "snb.sinkhorn_relaxed(h, h, M, 5.0)")


def _run(code, env):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


class Startup:
    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.env = dict(os.environ)

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
