"""Each experiment at tiny size: it runs, writes its PNG and CSV/JSON, and its
numbers are in range (the tests need none of the experiments' data packages)."""
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from sinkhorn_nb.__main__ import main  # noqa: E402
from sinkhorn_nb.experiments import digits, genre_metric, noise, relaxed, run, tags  # noqa: E402


def written(out, *names):
    for name in names:
        assert (out / name).stat().st_size > 0, name


def test_noise_tiny(tmp_path):
    summary = noise.run(out=tmp_path, settings=dict(
        classes=(5,), noises=(0.0, 0.8), fixed_noise=0.5, fixed_classes=5, n_train=120,
        n_test=200, seeds=(0,), max_iter=30))
    written(tmp_path, "noise.csv", "noise_summary.json", "noise.png")
    models = {r["model"] for r in summary["by_noise"]}
    assert models == {"KL", "W + 0.05 KL", "W (pure)"}
    for r in summary["by_noise"] + summary["by_classes"]:
        assert 0 <= r["distance"] <= 1 and 0 <= r["accuracy"] <= 1


def test_noise_switches_labels_to_near_classes():
    X, y_noisy, _, _, M = noise.make_problem(6, 1.0, 300, 10, seed=0)
    _, y_clean, _, _, _ = noise.make_problem(6, 0.0, 300, 10, seed=0)
    assert np.all(y_noisy != y_clean)      # noise 1: every label switched
    rank = np.argsort(np.argsort(M, axis=1), axis=1)   # 0 = itself
    assert np.all(rank[y_clean, y_noisy] <= 3)         # to one of the 3 nearest


def test_relaxed_tiny(tmp_path):
    summary = relaxed.run(out=tmp_path, settings=dict(
        pairs=3, gammas=(0.1, 3.0, 100.0), lams=(1, 30), sizes=(8, 32), rows=2,
        max_iter=100000))
    written(tmp_path, "relaxed_gamma.csv", "relaxed_exact.csv", "relaxed_iterations.csv",
            "relaxed.png", "relaxed_summary.json")
    gaps = [r["relative_gap"] for r in summary["gap_versus_gamma"] if r["lam"] == 10.0]
    assert gaps[0] > gaps[1] > gaps[2]          # relaxed -> smoothed as gamma grows
    exact = summary["approach_to_exact"]
    assert exact[1]["smoothed_gap"] < exact[0]["smoothed_gap"]   # -> exact as lam grows


def test_digits_tiny_with_fallback_data(tmp_path):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    summary = digits.run(out=tmp_path, data=(X[:300], y[:300], "8x8 subset"),
                         settings=dict(powers=(1.0,), n_train=150, max_iter=20))
    written(tmp_path, "digits.csv", "digits_profiles.json", "digits.png")
    profiles = json.loads((tmp_path / "digits_profiles.json").read_text())["profiles"]
    for profile in profiles.values():
        np.testing.assert_allclose(np.sum(profile, axis=1), 1.0, rtol=1e-9)
    assert [r["model"] for r in summary["results"]] == ["KL", "W p=1"]


def test_tags_tiny_with_synthetic_movies(tmp_path):
    rng = np.random.default_rng(0)
    Y = (rng.uniform(size=(200, 19)) < 0.15).astype(float)
    Y[Y.sum(axis=1) == 0, 7] = 1.0                     # every movie has a genre
    X = Y @ rng.normal(size=(19, 8)) + 0.5 * rng.normal(size=(200, 8))
    summary = tags.run(out=tmp_path, data=(X, Y), settings=dict(
        kl_weights=(0.0, 1.0), n_train=None, max_iter=15))
    written(tmp_path, "tags.csv", "tags_summary.json", "tags.png")
    assert [r["model"] for r in summary["results"]] == ["W + 0 KL", "W + 1 KL", "KL"]
    for r in summary["results"]:
        assert 0.5 < r["auc"] <= 1
        costs = [r[f"C_{k}"] for k in range(1, 11)]
        assert all(0 <= c < 1 for c in costs)


def test_shipped_genre_metric():
    genres, M = genre_metric.load()
    assert genres == genre_metric.GENRES and M.shape == (19, 19)
    np.testing.assert_allclose(M, M.T)
    assert np.all(np.diag(M) == 0) and np.isclose(M.max(), 0.999)
    assert np.all(M[~np.eye(19, dtype=bool)] > 0)


def test_command_line_rejects_unknown_experiment(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "flickr"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="experiment must be one of"):
        run("flickr")


def test_gallery_examples_compile():
    """The gallery scripts (run by Sphinx, not in CI) at least compile and call
    an experiment's quick run."""
    import pathlib
    examples = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("plot_*.py"))
    assert [p.stem for p in examples] == ["plot_digits", "plot_noise", "plot_relaxed",
                                          "plot_tags"]
    for p in examples:
        source = p.read_text()
        compile(source, str(p), "exec")
        assert f"{p.stem[5:]}.run(quick=True" in source
