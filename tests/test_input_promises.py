"""What the public entries promise about their inputs: dtypes (the table of
``docs/math.rst``), scalar and integer arguments, sparse targets, parameters of
the other variant, and the engine's own copy of the ground metric."""
import pathlib
import pickle
import re

import numpy as np
import pytest

import sinkhorn_nb as snb
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets
from sinkhorn_nb.validation import check_init, check_measures, check_sample_weight

K = 5
M = random_metric(K, 0)
H = random_predictions(3, K, 1)
Y = random_targets("sparse", 3, K, 2)
YD = random_targets("dense", 3, K, 3)

ENTRIES = {
    "sinkhorn": lambda h, y, M: snb.sinkhorn(h, y, M, 5.0).loss,
    "sinkhorn_relaxed": lambda h, y, M: snb.sinkhorn_relaxed(h, y, M, 5.0).loss,
    "WassersteinLoss": lambda h, y, M: snb.WassersteinLoss(M, 5.0)(h, y)[0],
    "relaxed WassersteinLoss": lambda h, y, M: snb.WassersteinLoss(M, 5.0, "relaxed")(h, y)[0],
    "exact_wasserstein": lambda h, y, M: snb.exact_wasserstein(h, y, M),
}


# ------------------------------------------------------------- dtypes of M
@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.longdouble, np.int64, np.uint8,
                                   np.bool_])
def test_metric_of_any_real_dtype_is_read_as_float64(entry, dtype):
    """float16 and longdouble metrics once failed inside Numba in every entry."""
    Mx = (M * 10).astype(dtype) if np.dtype(dtype).kind in "iu" else M.astype(dtype)
    expected = ENTRIES[entry](H, YD, Mx.astype(np.float64))
    np.testing.assert_array_equal(ENTRIES[entry](H, YD, Mx), expected)


def test_longdouble_beyond_float64_is_rejected_by_name():
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("longdouble is float64 on this platform")
    big = M.astype(np.longdouble)
    big[0, 1] = np.longdouble("1e400")
    with pytest.raises(ValueError, match="M has values beyond the float64 range"):
        snb.WassersteinLoss(big, 5.0)
    h = H.astype(np.longdouble)
    h[0, 0] = np.longdouble("1e400")
    with pytest.raises(ValueError, match="h has values beyond the float64 range"):
        snb.sinkhorn_relaxed(h, YD, M, 5.0)


@pytest.mark.parametrize("dtype, computes", [(np.float16, np.float32),
                                             (np.longdouble, np.float64)])
def test_half_and_extended_measures_init_and_weights(dtype, computes):
    r = snb.sinkhorn(H.astype(dtype), YD.astype(dtype), M, 5.0, renormalize=True)
    same = snb.sinkhorn(H.astype(dtype).astype(computes), YD.astype(dtype).astype(computes),
                        M, 5.0, renormalize=True)
    assert r.loss.dtype == computes
    np.testing.assert_array_equal(r.loss, same.loss)
    loss = snb.WassersteinLoss(M, 5.0)
    warm = loss.solve(H, YD, init=(same.u.astype(dtype), same.v.astype(dtype)))
    assert np.all(warm.converged)
    measures = check_measures(H, YD, K, True, False)
    u, v = check_init((r.u.astype(dtype), r.v.astype(dtype)), measures)
    assert u.dtype == v.dtype == np.float64
    w = check_sample_weight(np.array([1.0, 0.5, 2.0], dtype=dtype), 3)
    assert w.dtype == np.float64
    np.testing.assert_array_equal(w, [1.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="init v contains negative values"):
        check_init((r.u.astype(dtype), -r.v.astype(dtype)), measures)


# ------------------------------------------------ compute dtype, by the docs table
def _documented_compute_dtypes():
    """The rows of the compute-dtype table of ``docs/math.rst``."""
    text = (pathlib.Path(__file__).parents[1] / "docs" / "math.rst").read_text()
    table = text[text.index("computes in\n"):]
    table = table[table.index("\n", table.index("===")) + 1:]
    rows = []
    for line in table.splitlines():
        if line.strip().startswith("==="):
            break
        rows.append(tuple(line.split()))
    assert len(rows) >= 14, rows
    return rows


DOCUMENTED = _documented_compute_dtypes()


def _dtype(name):
    return np.dtype(np.longdouble if name == "longdouble" else name)


@pytest.mark.parametrize("h_name, y_name, computes", DOCUMENTED,
                         ids=[f"{h}-{y}" for h, y, _ in DOCUMENTED])
def test_compute_dtype_table_of_the_docs(h_name, y_name, computes):
    """Each row of the documented table: sinkhorn (and the relaxed variant) compute
    in that dtype, with the results of inputs converted to it beforehand."""
    h = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 0, 1]])
    y = np.array([[0, 1, 1, 1, 0], [1, 0, 0, 1, 1]])
    hx, yx = h.astype(_dtype(h_name)), y.astype(_dtype(y_name))
    r = snb.sinkhorn(hx, yx, M, 5.0)
    assert r.loss.dtype == r.grad.dtype == np.dtype(computes)
    same = snb.sinkhorn(h.astype(computes), y.astype(computes), M, 5.0)
    np.testing.assert_array_equal(r.loss, same.loss)
    assert snb.sinkhorn_relaxed(hx, yx, M, 5.0).loss.dtype == np.dtype(computes)


def test_small_integer_and_boolean_one_hot_targets_compute_in_float64():
    """np.result_type(int8, float32) is float32: small integers once computed in float32."""
    y = np.eye(K, dtype=bool)[[0, 2, 4]]
    h = np.eye(K, dtype=bool)[[1, 2, 3]]
    expected = snb.sinkhorn(h.astype(float), y.astype(float), M, 5.0)
    for dtype in (bool, np.uint8, np.int8, np.int16, np.uint16):
        r = snb.sinkhorn(h.astype(dtype), y.astype(dtype), M, 5.0)
        assert r.loss.dtype == r.grad.dtype == np.float64
        np.testing.assert_array_equal(r.loss, expected.loss)


# ------------------------------------------------------- the engine's metric
def test_loss_owns_a_read_only_copy_of_the_metric():
    """Changing the caller's M after construction once changed the float32 results
    (the kernel is built per dtype on first use) and let NaN past validation."""
    Mc = M.copy()                                   # float64, C-contiguous: still copied
    loss = snb.WassersteinLoss(Mc, 5.0)
    assert not np.shares_memory(loss.M, Mc)
    reference = snb.WassersteinLoss(M, 5.0)
    h32, y32 = H.astype(np.float32), YD.astype(np.float32)
    loss(H, YD)
    Mc[:] = np.nan
    np.testing.assert_array_equal(loss(h32, y32)[0], reference(h32, y32)[0])
    np.testing.assert_array_equal(loss(H, YD)[0], reference(H, YD)[0])
    with pytest.raises(ValueError, match="read-only"):
        loss.M[0, 1] = 0.5
    clone = pickle.loads(pickle.dumps(loss))
    with pytest.raises(ValueError, match="read-only"):
        clone.M[0, 1] = 0.5
    np.testing.assert_array_equal(clone(H, YD)[0], reference(H, YD)[0])


# ----------------------------------------------------------- scalar arguments
@pytest.mark.parametrize("wrap", [np.array, np.float32, np.float64, np.longdouble],
                         ids=["0-d array", "float32", "float64", "longdouble"])
def test_real_scalars_as_numpy_scalars_and_0d_arrays(wrap):
    expected = snb.sinkhorn_relaxed(H, YD, M, 20.0, 2.0, 0.5, tol=1e-8).loss
    got = snb.sinkhorn_relaxed(H, YD, M, wrap(20.0), wrap(2.0), wrap(0.5), tol=wrap(1e-8)).loss
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    loss = snb.WassersteinLoss(M, wrap(20.0), "relaxed", wrap(2.0), wrap(0.5))
    assert (loss.lam, loss.gamma_a, loss.gamma_b) == pytest.approx((20.0, 2.0, 0.5), rel=1e-7)
    assert snb.sinkhorn(H, YD, M, np.array(20)).loss.shape == (3,)     # 0-d integer array


@pytest.mark.parametrize("value", [np.array([20.0]), np.array(True), np.array("20")])
def test_scalars_that_are_not_real_scalars_are_refused_by_name(value):
    with pytest.raises(TypeError, match="lam must be a real number"):
        snb.sinkhorn(H, YD, M, value)
    with pytest.raises(TypeError, match="gamma_b must be a real number"):
        snb.sinkhorn_relaxed(H, YD, M, 5.0, 1.0, value)
    with pytest.raises(TypeError, match="tol must be a real number"):
        snb.sinkhorn(H, YD, M, 5.0, tol=value)


@pytest.mark.parametrize("name", ["max_iter", "check_every"])
@pytest.mark.parametrize("value", [2 ** 63, 2 ** 64, np.uint64(2 ** 64 - 1)])
def test_integers_beyond_int64_are_refused_by_name(name, value):
    """max_iter=2**64 once raised an OverflowError naming nothing."""
    for call in (lambda: snb.sinkhorn(H, YD, M, 5.0, **{name: value}),
                 lambda: snb.sinkhorn_relaxed(H, YD, M, 5.0, **{name: value}),
                 lambda: snb.WassersteinLoss(M, 5.0, **{name: value})):
        with pytest.raises(ValueError, match=f"{name} must be at most 9223372036854775807 "
                                             r"\(2\*\*63 - 1"):
            call()


def test_integer_controls_as_numpy_integers_and_0d_arrays():
    expected = snb.sinkhorn(H, YD, M, 5.0, max_iter=40, check_every=5, tol=0.0)
    for wrap in (np.array, np.int32, np.uint64):
        got = snb.sinkhorn(H, YD, M, 5.0, max_iter=wrap(40), check_every=wrap(5), tol=0.0)
        np.testing.assert_array_equal(got.loss, expected.loss)
    assert snb.sinkhorn(H, YD, M, 5.0, max_iter=2 ** 63 - 1).converged.all()
    with pytest.raises(TypeError, match="max_iter must be an integer, got an array"):
        snb.sinkhorn(H, YD, M, 5.0, max_iter=np.array([40]))
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        snb.sinkhorn(H, YD, M, 5.0, max_iter=np.array(40.0))


# --------------------------------------------------- parameters of the variant
def test_gammas_under_the_balanced_variant_raise():
    for kwargs, names in ((dict(gamma_a=2.0), "gamma_a applies"),
                          (dict(gamma_b=1.0), "gamma_b applies"),
                          (dict(gamma_a=1.0, gamma_b=1.0), "gamma_a and gamma_b apply")):
        with pytest.raises(ValueError, match=f"{names} only to variant='relaxed'"):
            snb.WassersteinLoss(M, 5.0, **kwargs)
    with pytest.raises(ValueError, match="gamma_a applies only"):
        snb.WassersteinLoss(M, 5.0, "balanced", 1.0)
    balanced = snb.WassersteinLoss(M, 5.0, gamma_a=None, gamma_b=None)
    assert balanced.gammas is None and balanced.gamma_a is None


def test_relaxed_gammas_default_to_one():
    loss = snb.WassersteinLoss(M, 5.0, "relaxed")
    assert loss.gammas == (1.0, 1.0)
    np.testing.assert_array_equal(loss(H, Y)[0], snb.sinkhorn_relaxed(H, Y, M, 5.0).loss)
    loss = snb.WassersteinLoss(M, 5.0, "relaxed", gamma_b=3.0)
    assert loss.gammas == (1.0, 3.0)
    assert "gamma_b=3.0" in repr(loss)


def test_renormalize_under_the_relaxed_variant_raises():
    with pytest.raises(ValueError, match="renormalize=True applies only to variant='balanced'"):
        snb.WassersteinLoss(M, 5.0, "relaxed", renormalize=True)
    snb.WassersteinLoss(M, 5.0, "relaxed", renormalize=False)
    with pytest.raises(TypeError, match="renormalize must be True or False"):
        snb.WassersteinLoss(M, 5.0, "relaxed", renormalize=1)


def test_device_is_keyword_only():
    with pytest.raises(TypeError, match="positional argument"):
        snb.WassersteinLoss(M, 5.0, "relaxed", 1.0, 1.0, "cpu")
    assert snb.WassersteinLoss(M, 5.0, "relaxed", 1.0, 1.0, device="cpu").device == "cpu"


# ------------------------------------------------------------- sparse targets
SPARSE_FORMATS = ["csr_array", "csc_array", "coo_array", "csr_matrix", "csc_matrix",
                  "coo_matrix"]


def _sparse(fmt, x):
    import scipy.sparse
    return getattr(scipy.sparse, fmt)(x)


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_sparse_targets_give_the_dense_results_bitwise(fmt):
    """Sparse targets, the normal case, were once refused as 'dtype object'."""
    ys = _sparse(fmt, Y)
    Y2 = 2.0 * Y
    for dense, sparse in ((snb.sinkhorn(H, Y, M, 5.0), snb.sinkhorn(H, ys, M, 5.0)),
                          (snb.sinkhorn_relaxed(H, Y2, M, 5.0),
                           snb.sinkhorn_relaxed(H, _sparse(fmt, Y2), M, 5.0))):
        for field in ("loss", "grad", "u", "v", "n_iter"):
            np.testing.assert_array_equal(getattr(sparse, field), getattr(dense, field))
    for variant in ("balanced", "relaxed"):
        loss = snb.WassersteinLoss(M, 5.0, variant)
        for a, b in zip(loss(H, ys), loss(H, Y)):
            np.testing.assert_array_equal(a, b)
    # predictions may be sparse too, and float32 sparse data computes in float32
    np.testing.assert_array_equal(snb.sinkhorn(_sparse(fmt, H), ys, M, 5.0).loss,
                                  snb.sinkhorn(H, Y, M, 5.0).loss)
    r32 = snb.sinkhorn(H.astype(np.float32), _sparse(fmt, Y.astype(np.float32)), M, 5.0)
    assert r32.loss.dtype == np.float32
    assert snb.exact_wasserstein(H, ys, M) == pytest.approx(snb.exact_wasserstein(H, Y, M))


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
@pytest.mark.parametrize("bad, match", [(-0.1, "y contains negative values"),
                                        (np.nan, "y contains NaN or infinite values"),
                                        (np.inf, "y contains NaN or infinite values")])
def test_sparse_targets_are_checked_like_dense_ones(fmt, bad, match):
    y = Y.copy()
    y[1, np.flatnonzero(y[1])[0]] = bad
    for call in (lambda t: snb.sinkhorn(H, t, M, 5.0),
                 lambda t: snb.sinkhorn_relaxed(H, t, M, 5.0),
                 lambda t: snb.WassersteinLoss(M, 5.0)(H, t)):
        with pytest.raises(ValueError, match=match):
            call(y)
        with pytest.raises(ValueError, match=match):
            call(_sparse(fmt, y))
    with pytest.raises(ValueError, match="h and y must have the same shape"):
        snb.sinkhorn(H, _sparse(fmt, Y[:2]), M, 5.0)


def test_sparse_duplicates_are_summed_on_a_copy():
    import scipy.sparse
    rows, cols = np.nonzero(Y)
    values = Y[rows, cols]
    coo = scipy.sparse.coo_array((np.concatenate([values / 2, values / 2]),
                                  (np.concatenate([rows, rows]), np.concatenate([cols, cols]))),
                                 shape=Y.shape)
    csr = scipy.sparse.csr_array((coo.data, (coo.row, coo.col)), shape=Y.shape)
    nnz = coo.nnz
    expected = snb.sinkhorn(H, coo.toarray(), M, 5.0).loss
    np.testing.assert_array_equal(snb.sinkhorn(H, coo, M, 5.0).loss, expected)
    np.testing.assert_array_equal(snb.sinkhorn(H, csr, M, 5.0).loss, expected)
    assert coo.nnz == nnz
    with pytest.raises(TypeError, match="y must hold real numbers"):
        snb.sinkhorn(H, scipy.sparse.csr_array(Y.astype(complex)), M, 5.0)


def test_message_names_are_documented():
    """The docs state every promise these tests check."""
    text = (pathlib.Path(__file__).parents[1] / "docs" / "math.rst").read_text()
    for phrase in ("SciPy sparse", "0-d arrays", r"2\^\{63\} - 1", "read-only",
                   "longdouble"):
        assert re.search(phrase, text), phrase


def test_float16_rows_normalized_in_float16_are_balanced():
    """float16 sums agree only to float16 rounding: the equal-mass check allows it."""
    M = snb.ground_metric.ordinal(3)
    r = snb.sinkhorn(np.float16([0.1, 0.3, 0.6]), np.float16([0, 0.5, 0.5]), M, lam=3.0)
    exact = snb.sinkhorn(np.float16([0.1, 0.3, 0.6]).astype(np.float64) / 1.00012,
                         np.float64([0, 0.5, 0.5]), M, lam=3.0, renormalize=True)
    assert r.grad.dtype == np.float32
    np.testing.assert_allclose(r.loss, exact.loss, rtol=1e-3)


def test_a_sparse_metric_or_init_gets_a_clear_error():
    import scipy.sparse as sp
    M = snb.ground_metric.ordinal(3)
    h = np.full((1, 3), 1 / 3)
    with pytest.raises(TypeError, match=r"M is a SciPy sparse csr_array; pass a dense array"):
        snb.sinkhorn(h, h, sp.csr_array(M), 10.0)
    loss = snb.WassersteinLoss(M, 10.0)
    with pytest.raises(TypeError, match="init u is a SciPy sparse"):
        loss.solve(h, h, init=(sp.csr_array(h), h))
