"""Device selection without a GPU: clear errors, CPU fallback for "auto", lazy import."""
import os
import subprocess
import sys

import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from sinkhorn_nb.device import cuda_status

NO_GPU = not cuda_status()[0]


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device (or the simulator) is present")
def test_cuda_without_gpu_raises_with_install_hint():
    M = random_metric(4, 0)
    h = random_predictions(2, 4, 1)
    y = random_targets("dense", 2, 4, 2)
    expected = r'device=.cuda. is not usable: .*pip install "sinkhorn_nb\[cuda\]"'
    with pytest.raises(RuntimeError, match=expected):
        snb.sinkhorn(h, y, M, 5.0, device="cuda")
    with pytest.raises(RuntimeError, match="not usable"):
        snb.WassersteinLoss(M, 5.0, device="cuda")


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device (or the simulator) is present")
def test_auto_falls_back_to_cpu():
    M = random_metric(4, 3)
    h = random_predictions(2, 4, 4)
    y = random_targets("dense", 2, 4, 5)
    auto = snb.sinkhorn(h, y, M, 5.0, device="auto")
    cpu = snb.sinkhorn(h, y, M, 5.0, device="cpu")
    np.testing.assert_array_equal(auto.loss, cpu.loss)
    assert snb.WassersteinLoss(M, 5.0, device="auto").device == "cpu"


def test_import_does_not_load_numba_cuda():
    code = ("import sys, sinkhorn_nb as snb, numpy as np; "
            "snb.sinkhorn(np.ones(3) / 3, np.ones(3) / 3, snb.ground_metric.ordinal(3), 5.0); "
            "print(any(m.startswith('numba_cuda') or m == 'numba.cuda' for m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
