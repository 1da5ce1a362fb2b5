"""Scale-out on Dask: chunked losses, data-parallel L-BFGS, partial_fit over chunks,
a real LocalCluster with two worker processes, and a worker killed mid-fit."""
import os
import signal

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import sinkhorn_nb as snb  # noqa: E402
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets  # noqa: E402
from sinkhorn_nb.dask import DaskObjective, loss_and_gradient, partial_fit_chunks  # noqa: E402

import dask_helpers  # noqa: E402


def classification_data(n=240, d=6, K=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(K, d))
    labels = rng.integers(K, size=n)
    X = centers[labels] + rng.normal(size=(n, d))
    return X, labels


@pytest.fixture(scope="module")
def cluster():
    """A real cluster: two worker processes on 127.0.0.1, one thread each."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("variant", ["balanced", "relaxed"])
def test_chunked_loss_matches_one_call(variant):
    K = 7
    M = random_metric(K, 0)
    h = random_predictions(50, K, 1)
    y = random_targets("sparse", 50, K, 2)
    loss = snb.WassersteinLoss(M, 10.0, variant)
    expected_values, expected_grad = loss(h, y)
    # uneven row chunks; y split across columns too (rechunked to one column block)
    hd = da.from_array(h, chunks=((20, 17, 13), (K,)))
    yd = da.from_array(y, chunks=((20, 17, 13), (3, 4)))
    values, grad = loss_and_gradient(hd, yd, loss)
    assert values.shape == (50,) and grad.shape == (50, K)
    values, grad = dask.compute(values, grad, scheduler="threads")
    np.testing.assert_allclose(values, expected_values, rtol=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


def test_chunked_loss_rejects_bad_input():
    loss = snb.WassersteinLoss(random_metric(3, 0), 5.0)
    h = da.from_array(np.full((4, 3), 1 / 3), chunks=2)
    with pytest.raises(TypeError, match="y must be a dask.array.Array"):
        loss_and_gradient(h, np.full((4, 3), 1 / 3), loss)
    other = da.from_array(np.full((4, 3), 1 / 3), chunks=(3, 3))
    with pytest.raises(ValueError, match="y must have the same row chunks as h:"):
        loss_and_gradient(h, other, loss)      # named h, not X (fixed)
    with pytest.raises(ValueError, match="h and y must have the same shape"):
        loss_and_gradient(h[0], other, loss)


def test_chunked_loss_of_one_problem_as_numpy():
    """1-D Dask arrays are one problem, as for the loss on NumPy arrays (they
    raised IndexError before the fix)."""
    loss = snb.WassersteinLoss(random_metric(5, 0), 10.0)
    h = random_predictions(1, 5, 1)[0]
    y = random_targets("sparse", 1, 5, 2)[0]
    values, grad = loss_and_gradient(da.from_array(h, chunks=2), da.from_array(y, chunks=3),
                                     loss)
    assert values.shape == () and grad.shape == (5,)
    values, grad = dask.compute(values, grad, scheduler="sync")
    expected_value, expected_grad = loss(h, y)
    assert float(values) == pytest.approx(expected_value, rel=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


def test_engine_is_sent_to_each_worker_once(client):
    """Sixteen chunks on two workers: the engine reaches each worker once (scattered
    with broadcast); shipped with every chunk task it would be unpickled 16 times.
    A worker may fetch its copy a second time when a task is scheduled there before
    the scheduler has registered the broadcast replica (a race inside distributed),
    so up to two per worker are accepted."""
    K = 12
    n_chunks = 16
    loss = dask_helpers.CountingLoss(random_metric(K, 3), 10.0)
    before = client.run(dask_helpers.unpickled_count)
    h = da.from_array(random_predictions(5 * n_chunks, K, 4), chunks=(5, K))
    y = da.from_array(random_targets("dense", 5 * n_chunks, K, 5), chunks=(5, K))
    values, grad = loss_and_gradient(h, y, loss)
    values, grad = dask.compute(values, grad)
    after = client.run(dask_helpers.unpickled_count)
    counts = [after[w] - before[w] for w in after]
    assert len(counts) == 2 and all(1 <= c <= 2 for c in counts), counts
    expected_values, _ = snb.WassersteinLoss(random_metric(K, 3), 10.0)(
        random_predictions(5 * n_chunks, K, 4), random_targets("dense", 5 * n_chunks, K, 5))
    np.testing.assert_allclose(values, expected_values, rtol=1e-13)


def estimator(**kw):
    params = dict(ground_metric="ordinal", lam=10.0, kl_weight=0.1, alpha=1e-3,
                  max_iter=60, tol=1e-8, warm_start_scalings=False, random_state=0)
    params.update(kw)
    return snb.WassersteinClassifier(**params)


def test_lbfgs_on_dask_matches_one_machine_threads():
    X, labels = classification_data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(labels))
    single = estimator().fit(X, labels, sample_weight=w)
    Xd = da.from_array(X, chunks=(70, 6))
    yd = da.from_array(labels, chunks=70)
    wd = da.from_array(w, chunks=70)
    with dask.config.set(scheduler="threads"):
        on_dask = estimator().fit(Xd, yd, sample_weight=wd)
    np.testing.assert_array_equal(on_dask.classes_, single.classes_)
    # documented tolerance: the same L-BFGS run up to summation order
    np.testing.assert_allclose(on_dask.coef_, single.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(on_dask.intercept_, single.intercept_, rtol=1e-6, atol=1e-8)
    assert on_dask.n_iter_ == single.n_iter_
    np.testing.assert_array_equal(on_dask.predict(X), single.predict(X))


def test_lbfgs_on_local_cluster_matches_one_machine(client):
    X, labels = classification_data(seed=2)
    single = estimator().fit(X, labels)
    Xd = da.from_array(X, chunks=(60, 6))
    yd = da.from_array(labels, chunks=60)
    on_cluster = estimator().fit(Xd, yd)
    np.testing.assert_allclose(on_cluster.coef_, single.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(on_cluster.predict(X), single.predict(X))
    assert on_cluster.n_iter_ == single.n_iter_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lbfgs_survives_a_worker_killed_mid_fit(client, monkeypatch):
    """A worker process is killed while the third evaluation runs; its chunks are
    recomputed and the fit ends exactly where the undisturbed fit ends."""
    X, labels = classification_data(seed=3)
    Xd = da.from_array(X, chunks=(40, 6))
    yd = da.from_array(labels, chunks=40)
    undisturbed = estimator(max_iter=25).fit(Xd, yd)

    original = DaskObjective.value_and_grad
    killed = []

    pids = client.run(os.getpid)

    def value_and_grad(self, coef, intercept):
        if self.evaluations == 2 and not killed:
            victim = sorted(pids)[0]
            os.kill(pids[victim], signal.SIGKILL)    # the process dies, not politely
            killed.append(victim)
        return original(self, coef, intercept)

    monkeypatch.setattr(DaskObjective, "value_and_grad", value_and_grad)
    disturbed = estimator(max_iter=25).fit(Xd, yd)
    assert killed
    np.testing.assert_allclose(disturbed.coef_, undisturbed.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(disturbed.intercept_, undisturbed.intercept_, rtol=1e-12,
                               atol=1e-14)
    client.wait_for_workers(2, timeout=60)     # the nanny restarted it


def test_incremental_adam_on_dask_array():
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, labels = classification_data(seed=4)
    Xd = da.from_array(X, chunks=(60, 6))
    yd = da.from_array(labels, chunks=60)
    classes = np.unique(labels)
    with dask.config.set(scheduler="threads"):
        inc = wrappers.Incremental(estimator(solver="adam", learning_rate=0.05),
                                   shuffle_blocks=False)
        inc.fit(Xd, yd, classes=classes)
        ours = partial_fit_chunks(estimator(solver="adam", learning_rate=0.05), Xd, yd)
    # the same partial_fit calls on the same chunks in the same order
    np.testing.assert_allclose(inc.estimator_.coef_, ours.coef_, rtol=1e-12)
    assert inc.score(Xd, yd) > 0.8
    assert ours.score(X, labels) > 0.8


def test_dask_fit_needs_lbfgs():
    Xd = da.from_array(np.zeros((4, 2)), chunks=2)
    yd = da.from_array(np.array([0, 1, 0, 1]), chunks=2)
    with pytest.raises(ValueError, match="use partial_fit over the chunks"):
        estimator(solver="adam").fit(Xd, yd)


# the example starts a dashboard; another cluster on the machine may hold its port
@pytest.mark.filterwarnings("ignore:Port .* is already in use")
def test_docs_example_runs(capsys):
    """The example of docs/dask.md runs as written (its own LocalCluster)."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).parents[1] / "docs" / "dask.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    namespace = {}
    exec(compile(blocks[0], "docs/dask.md", "exec"), namespace)
    score, mean_loss = [float(line) for line in capsys.readouterr().out.split()]
    assert score > 0.9 and 0 < mean_loss < 1


@pytest.mark.parametrize("epochs, error, match", [
    (-1, ValueError, "epochs must be >= 1, got -1"),
    (0, ValueError, "epochs must be >= 1, got 0"),
    (1.5, TypeError, "epochs must be an integer"),
])
def test_partial_fit_chunks_validates_epochs(epochs, error, match):
    """epochs=-1 trained nothing, silently, before the fix."""
    X, labels = classification_data(n=40, seed=5)
    Xd, yd = da.from_array(X, chunks=(20, 6)), da.from_array(labels, chunks=20)
    clf = estimator(solver="sgd")
    with pytest.raises(error, match=match):
        partial_fit_chunks(clf, Xd, yd, epochs=epochs)
    assert not hasattr(clf, "coef_")


def test_dask_training_needs_2d_X():
    X, labels = classification_data(n=40, seed=6)
    Xd, yd = da.from_array(X[:, 0], chunks=20), da.from_array(labels, chunks=20)
    for train in (lambda: estimator().fit(Xd, yd),
                  lambda: partial_fit_chunks(estimator(solver="sgd"), Xd, yd)):
        with pytest.raises(ValueError, match=r"X must be a 2-D Dask array .*X.reshape"):
            train()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_dask_fit_takes_a_scalar_sample_weight():
    """A scalar weighs every row alike, as in the NumPy fit."""
    X, labels = classification_data(n=80, seed=7)
    Xd, yd = da.from_array(X, chunks=(40, 6)), da.from_array(labels, chunks=40)
    with dask.config.set(scheduler="sync"):
        weighted = estimator(max_iter=10).fit(Xd, yd, sample_weight=2.0)
        plain = estimator(max_iter=10).fit(Xd, yd)
        chunks = partial_fit_chunks(estimator(solver="sgd"), Xd, yd, sample_weight=2.0)
    np.testing.assert_allclose(weighted.coef_, plain.coef_, rtol=1e-12, atol=1e-14)
    assert chunks.n_iter_ == 2
    with pytest.raises(ValueError, match="no sample has both a positive weight"):
        estimator().fit(Xd, yd, sample_weight=0.0)
