"""Bad input fails early with a message naming the argument; inputs are never modified."""
import warnings

import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets

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


@pytest.mark.parametrize("lam_max_m", [1e9, 1e17, 1e300])
def test_lam_times_metric_beyond_float64_resolution_is_rejected(lam_max_m):
    """Beyond 1e8 the plan's exponents lose precision (a loss 13 % low was once
    reported as converged at 1e17); an overflowing product is rejected as well."""
    M6 = snb.ground_metric.ordinal(6)
    h = np.full(6, 1 / 6)
    for call in (lambda: snb.sinkhorn(h, h, M6, lam_max_m / M6.max()),
                 lambda: snb.sinkhorn_relaxed(h, h, M6, lam_max_m / M6.max()),
                 lambda: snb.WassersteinLoss(M6 * 2.0, 1e308)):
        with pytest.raises(ValueError, match=r"lam \* max\(M\) = .* is above 1e\+08.*"
                                             "exact_wasserstein"):
            call()
    r = snb.sinkhorn(h, h, M6, 1e8 / M6.max(), max_iter=3, tol=0.0)   # the limit itself
    assert np.isfinite(r.loss)


def test_subnormal_lam_is_rejected():
    with pytest.raises(ValueError, match="lam must be finite and > 0 with a finite 1 / lam"):
        snb.sinkhorn(H, Y, M, 1e-310)


@pytest.mark.parametrize("flag", ["no", 1, None, np.array([True])])
def test_flags_must_be_booleans(flag):
    with pytest.raises(TypeError, match="renormalize must be True or False"):
        snb.sinkhorn(H, Y, M, 5.0, renormalize=flag)
    with pytest.raises(TypeError, match="renormalize must be True or False"):
        snb.exact_wasserstein(H, Y, M, renormalize=flag)
    snb.sinkhorn(H, Y, M, 5.0, renormalize=np.bool_(False))


def test_from_points_is_stable_for_huge_and_nearby_points():
    big = snb.ground_metric.from_points([[1e154, 0.0], [0.0, 1e154], [-3e154, 2e154]])
    assert np.all(np.isfinite(big)) and big.max() == pytest.approx(0.999)
    expected = np.linalg.norm(np.array([[1, 0], [0, 1], [-3, 2]], float)[:, None]
                              - np.array([[1, 0], [0, 1], [-3, 2]], float)[None], axis=2)
    np.testing.assert_allclose(big, 0.999 * expected / expected.max(), rtol=1e-14)
    near = snb.ground_metric.from_points([[1e8, 0.0], [1e8 + 1e-4, 0.0], [0.0, 0.0]])
    gap = (1e8 + 1e-4) - 1e8                 # the representable difference, ~1e-4
    np.testing.assert_allclose(near[0, 1], 0.999 * gap / (1e8 + 1e-4), rtol=1e-12)
    assert near[0, 1] > 0 and near[0, 1] == near[1, 0]
    E = snb.ground_metric.from_embeddings([[1e200, 1e200], [1e200, 2e200], [-1.0, 0.0]])
    assert np.all(np.isfinite(E)) and E[0, 1] > 0


@pytest.mark.parametrize("weights, match", [
    ([1.0, -1.0, 1.0], "sample_weight contains negative values"),
    ([0.0, 0.0, 0.0], "sample_weight must not be all zero"),
    ([1.0, 2.0], r"sample_weight must have shape \(3,\)"),
    ([1.0, np.nan, 1.0], "sample_weight contains NaN"),
])
def test_semantic_distance_weights(weights, match):
    M4 = snb.ground_metric.ordinal(4, max_value=3.0)
    with pytest.raises(ValueError, match=match):
        snb.metrics.semantic_distance([0, 1, 3], [0, 3, 2], M4, sample_weight=weights)
    assert snb.metrics.semantic_distance([0, 1, 3], [0, 3, 2], M4,
                                         sample_weight=[1.0, 0.0, 1.0]) == 0.5


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_solver_scalings_warm_start_a_single_problem(variant):
    loss = snb.WassersteinLoss(M, 5.0, variant, tol=1e-12, check_every=1)
    first = loss.solve(H[0], Y[0])
    again = loss.solve(H[0], Y[0], init=(first.u, first.v))
    assert again.n_iter <= 1 and again.loss == pytest.approx(first.loss, rel=1e-10)
    with pytest.raises(ValueError, match=r"init must be a pair \(u, v\)"):
        loss.solve(H[0], Y[0], init=(first.u,))
    with pytest.raises(ValueError, match=r"init u must have the shape of h \(4,\)"):
        loss.solve(H[0], Y[0], init=(first.u[:3], first.v))
    with pytest.raises(ValueError, match="init v contains negative values"):
        loss.solve(H[0], Y[0], init=(first.u, -first.v))


@pytest.mark.parametrize("scale, dtype", [(1e-300, np.float64), (1e-150, np.float64),
                                          (1e-12, np.float32)])
def test_relaxed_with_tiny_masses_converges(scale, dtype):
    """The stopping test is relative to the larger of the target mass and the
    current marginal, so a plan far heavier than a tiny ``h`` still converges."""
    from reference import reference_relaxed
    h = (random_predictions(2, K, 20) * scale).astype(dtype)
    y = (random_targets("dense", 2, K, 21) * scale).astype(dtype)
    r = snb.sinkhorn_relaxed(h, y, M.astype(dtype), 10.0)
    assert np.all(r.converged)
    rtol = 1e-8 if dtype == np.float64 else 1e-4
    for i in range(2):
        loss, grad, _ = reference_relaxed(h[i].astype(float), y[i].astype(float), M, 10.0,
                                          1.0, 1.0)
        np.testing.assert_allclose(r.loss[i], loss, rtol=rtol)
        np.testing.assert_allclose(r.grad[i], grad, rtol=rtol, atol=rtol * np.abs(grad).max())


def test_concurrent_calls_under_every_threading_layer():
    """Solves from several threads give the sequential results, also under Numba's
    workqueue layer (which aborts the process on concurrent parallel regions
    unless the calls are serialized)."""
    import os
    import subprocess
    import sys
    code = """
import threading, numpy as np, numba, sinkhorn_nb as snb
M = snb.ground_metric.ordinal(300)
rng = np.random.default_rng(0)
h = rng.dirichlet(np.ones(300), size=64)
y = np.zeros((64, 300)); y[np.arange(64), rng.integers(0, 300, 64)] = 0.5
y[np.arange(64), rng.integers(0, 300, 64)] += 0.5
loss = snb.WassersteinLoss(M, 20.0, tol=1e-9)
expected = [loss(h, y)[0], snb.sinkhorn_relaxed(h, y, M, 20.0).loss]
results, errors = [], []
def work():
    try:
        for _ in range(5):
            results.append((loss(h, y)[0], snb.sinkhorn_relaxed(h, y, M, 20.0).loss))
    except Exception as exc:
        errors.append(exc)
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
assert not errors, errors
assert len(results) == 20
assert all(np.array_equal(a, expected[0]) and np.array_equal(b, expected[1]) for a, b in results)
print(numba.threading_layer())
"""
    for layer in ("workqueue", "default"):
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
        env["NUMBA_THREADING_LAYER"] = layer
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        if layer == "workqueue":
            assert out.stdout.strip() == "workqueue"


def test_scan_and_training_targets_record_the_label_of_one_hot_rows():
    from sinkhorn_nb._objective import Targets, make_targets
    from sinkhorn_nb.validation import check_measures
    y = np.array([[0, 0, 1.0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 0], [1.0, 0, 0, 0]])
    h = np.full((4, 4), 0.25)
    m = check_measures(h, y, 4, balanced=False, renormalize=False)
    assert m.last_nonzero.tolist() == [2, 2, -1, 0]
    assert m.support.tolist() == [1, 2, 0, 1]
    assert Targets.from_measures(y).last_nonzero.tolist() == [2, 2, -1, 0]
    targets, classes = make_targets(np.array(["b", "a", "c", "b"]), "balanced")
    assert classes.tolist() == ["a", "b", "c"]
    assert targets.last_nonzero.tolist() == [1, 0, 2, 1]
    assert targets.take(np.array([2, 0])).last_nonzero.tolist() == [2, 1]


def test_renormalize_rejects_a_mass_whose_inverse_overflows():
    M = snb.ground_metric.ordinal(6)
    h = np.full((2, 6), 1 / 6)
    h[1] = 1e-310                      # mass 6e-310: 1 / mass is not a float64
    y = np.eye(6)[[0, 3]]
    with pytest.raises(ValueError, match="h row 1 has total mass 6e-310, too small to "
                                         "renormalize"):
        snb.sinkhorn(h, y, M, 5.0, renormalize=True)
    with pytest.raises(ValueError, match="y row 0 has total mass"):
        snb.sinkhorn(y, h[::-1] * 1.0, M, 5.0, renormalize=True)
    # small masses whose inverse is finite are renormalized as usual
    r = snb.sinkhorn(h * 1e-290 + 1e-300, y * 1e-300, M, 5.0, renormalize=True)
    np.testing.assert_allclose(r.loss, snb.sinkhorn(np.full((2, 6), 1 / 6), y, M, 5.0).loss,
                               rtol=1e-12)


def test_class_labels_passed_as_targets_get_a_hint():
    M = snb.ground_metric.ordinal(5)
    h = np.full((2, 5), 0.2)
    with pytest.raises(ValueError, match=r"got \(2, 5\) and \(2,\); y looks like class labels"
                                         r".*np.eye\(K\)\[labels\].*WassersteinClassifier"):
        snb.sinkhorn(h, np.array([1, 3]), M, 10.0)


@pytest.mark.parametrize("entry", [
    lambda M: snb.WassersteinLoss(M, 10.0),
    lambda M: snb.sinkhorn(np.full(3, 1 / 3), np.full(3, 1 / 3), M, 10.0),
    lambda M: snb.exact_wasserstein(np.full(3, 1 / 3), np.full(3, 1 / 3), M),
])
def test_a_metric_with_a_non_zero_diagonal_warns(entry):
    with pytest.warns(UserWarning, match=r"M has non-zero diagonal entries \(largest 1\).*"
                                         r"sinkhorn_nb.ground_metric"):
        entry(np.ones((3, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entry(snb.ground_metric.ordinal(3))
