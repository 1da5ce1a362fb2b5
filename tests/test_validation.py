"""Bad input fails early with a message naming the argument; inputs are never modified."""
import numpy as np
import pytest

import sinkhorn_nb as snb
from conftest import random_metric, random_predictions, random_targets

K = 4
M = random_metric(K, 0)
H = random_predictions(3, K, 1)
Y = random_targets("dense", 3, K, 2)


def _with(arr, index, value):
    out = np.array(arr, dtype=float)
    out[index] = value
    return out


SOLVERS = {
    "sinkhorn": lambda h, y, M, lam=5.0: snb.sinkhorn(h, y, M, lam),
    "relaxed": lambda h, y, M, lam=5.0: snb.sinkhorn_relaxed(h, y, M, lam),
    "WassersteinLoss": lambda h, y, M, lam=5.0: snb.WassersteinLoss(M, lam)(h, y),
}

BAD_VALUES = [
    ("h", lambda: (_with(H, (0, 1), np.nan), Y, M), ValueError, "h contains NaN"),
    ("y", lambda: (H, _with(Y, (1, 2), np.inf), M), ValueError, "y contains NaN or inf"),
    ("M", lambda: (H, Y, _with(M, (0, 1), np.nan)), ValueError, "M contains NaN"),
    ("h<0", lambda: (_with(H, (0, 1), -0.1), Y, M), ValueError, "h contains negative"),
    ("y<0", lambda: (H, _with(Y, (0, 1), -0.1), M), ValueError, "y contains negative"),
    ("M<0", lambda: (H, Y, _with(M, (0, 1), -0.1)), ValueError, "M contains negative"),
    ("shape", lambda: (H, Y[:2], M), ValueError, "h and y must have the same shape"),
    ("M-square", lambda: (H, Y, M[:, :3]), ValueError, "M must be a square"),
    ("M-K", lambda: (H, Y, random_metric(5, 1)), ValueError, "M has shape"),
    ("3d", lambda: (H[None], Y[None], M), ValueError, "h must be 1-D .* or 2-D"),
    ("empty", lambda: (H[:0], Y[:0], M), ValueError, "empty batch"),
    ("str", lambda: (np.array([["a"] * K]), Y[:1], M), TypeError, "h must hold real numbers"),
    ("obj", lambda: (H, np.array([[None] * K]), M), TypeError, "y must hold real numbers"),
    ("complex", lambda: (H, Y, M.astype(complex)), TypeError, "M must hold real numbers"),
]


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("name, make, exc, match", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_arrays(solver, name, make, exc, match):
    h, y, Mb = make()
    with pytest.raises(exc, match=match):
        SOLVERS[solver](h, y, Mb)


@pytest.mark.parametrize("lam", [0.0, -1.0, np.inf, np.nan])
def test_bad_lam(lam):
    for call in (lambda: snb.sinkhorn(H, Y, M, lam), lambda: snb.sinkhorn_relaxed(H, Y, M, lam),
                 lambda: snb.WassersteinLoss(M, lam)):
        with pytest.raises(ValueError, match="lam must be finite and > 0"):
            call()


def test_lam_type():
    with pytest.raises(TypeError, match="lam must be a real number"):
        snb.sinkhorn(H, Y, M, "5")


@pytest.mark.parametrize("gamma", [0.0, -2.0, np.inf])
@pytest.mark.parametrize("name", ["gamma_a", "gamma_b"])
def test_bad_gammas(gamma, name):
    with pytest.raises(ValueError, match=f"{name} must be finite and > 0"):
        snb.sinkhorn_relaxed(H, Y, M, 5.0, **{name: gamma})
    with pytest.raises(ValueError, match=f"{name} must be finite and > 0"):
        snb.WassersteinLoss(M, 5.0, variant="relaxed", **{name: gamma})


def test_unequal_masses_rejected_in_balanced():
    with pytest.raises(ValueError, match="equal total mass.*row 1"):
        snb.sinkhorn(H, Y * np.array([[1.0], [1.01], [1.0]]), M, 5.0)
    with pytest.raises(ValueError, match="equal total mass"):
        snb.WassersteinLoss(M, 5.0)(H, 2 * Y)
    snb.sinkhorn_relaxed(H, 2 * Y, M, 5.0)   # fine for unnormalized measures


def test_zero_mass_rejected_in_balanced():
    with pytest.raises(ValueError, match="y row 0 has zero total mass"):
        snb.sinkhorn(H[:1] * 0 + 1 / K, np.zeros((1, K)), M, 5.0)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    (dict(max_iter=2.5), TypeError, "max_iter must be an integer"),
    (dict(tol=-1.0), ValueError, "tol must be finite and >= 0"),
    (dict(check_every=0), ValueError, "check_every must be >= 1"),
    (dict(method="fast"), ValueError, "method must be one of"),
    (dict(device="tpu"), ValueError, "device must be one of"),
])
def test_bad_controls(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        snb.sinkhorn(H, Y, M, 5.0, **kwargs)
    with pytest.raises(exc, match=match):
        snb.sinkhorn_relaxed(H, Y, M, 5.0, **kwargs)


def test_bad_variant():
    with pytest.raises(ValueError, match="variant must be one of"):
        snb.WassersteinLoss(M, 5.0, variant="unbalanced")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_never_modified(dtype):
    h = random_predictions(3, K, 5).astype(dtype)
    y = random_targets("sparse", 3, K, 6).astype(dtype)
    Mc = M.astype(dtype)
    copies = [a.copy() for a in (h, y, Mc)]
    snb.sinkhorn(h, y, Mc, 5.0)
    snb.sinkhorn(h, y, Mc, 5.0, renormalize=True)
    snb.sinkhorn(h, y, Mc, 2000.0, max_iter=50, tol=0.0)          # log-domain path
    snb.sinkhorn_relaxed(h, y, Mc, 5.0)
    snb.WassersteinLoss(Mc, 5.0, variant="relaxed")(h, y)
    snb.exact_wasserstein(h, y, Mc)
    for before, after in zip(copies, (h, y, Mc)):
        np.testing.assert_array_equal(before, after)


def test_results_do_not_alias_inputs():
    h = random_predictions(2, K, 7)
    y = random_targets("dense", 2, K, 8)
    r = snb.sinkhorn(h, y, M, 5.0)
    for field in ("u", "v", "grad"):
        assert not np.shares_memory(getattr(r, field), h)
        assert not np.shares_memory(getattr(r, field), y)
