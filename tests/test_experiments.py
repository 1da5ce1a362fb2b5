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
    summary = noise.run(out=tmp_path, verbose=False, settings=dict(
        classes=(5, 7), noises=(0.0, 0.8), n_train=120, n_test=200, seeds=(0, 1),
        max_iter=30, warm_lams=(50.0,)))
    written(tmp_path, "noise.csv", "noise_summary.json", "noise.png")
    models = {r["model"] for r in summary["by_noise"]}
    assert models == {"KL", "W + 0.05 KL", "W (pure)", "W (pure, lam=50, from W + KL)"}
    for r in summary["by_noise"] + summary["by_classes"]:
        assert r["seeds"] == 2
        for m in ("distance", "expected_distance", "accuracy"):
            assert 0 <= r[m] <= 1 and r[f"{m}_low"] <= r[m] <= r[f"{m}_high"]
    wins, cells = summary["cells_beating_kl"]["distance"]["W + 0.05 KL"]
    assert cells == 2 * 2 * 2 and 0 <= wins <= cells


def test_interval_is_the_student_t_interval():
    from sinkhorn_nb.experiments.outputs import interval
    mean, low, high = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and np.isclose(high - mean, 4.302653 / np.sqrt(3))
    assert interval([5.0]) == (5.0, 5.0, 5.0)


def test_progress_writes_whole_lines_when_stderr_is_not_a_terminal(capsys):
    # a bar's carriage returns would garble a log: off a terminal, one line per step
    from sinkhorn_nb.experiments.outputs import Progress
    progress = Progress(2, "demo")
    progress.step("first")
    progress.print("| row |")
    progress.close()
    out, err = capsys.readouterr()
    assert progress.bar is None
    assert out == "| row |\n"
    assert err.startswith("[demo] 1/2 first (")


def test_noise_switches_labels_to_near_classes():
    X, y_noisy, _, _, M = noise.make_problem(6, 1.0, 300, 10, seed=0)
    _, y_clean, _, _, _ = noise.make_problem(6, 0.0, 300, 10, seed=0)
    assert np.all(y_noisy != y_clean)      # noise 1: every label switched
    rank = np.argsort(np.argsort(M, axis=1), axis=1)   # 0 = itself
    assert np.all(rank[y_clean, y_noisy] <= 3)         # to one of the 3 nearest


def test_noise_prints_every_model_of_its_figure(tmp_path, capsys):
    noise.run(out=tmp_path, settings=dict(classes=(5,), noises=(0.3,), n_train=120, n_test=200,
                                          seeds=(0,), max_iter=30, warm_lams=(50.0, 1000.0)))
    header, row = [line for line in capsys.readouterr().out.splitlines()
                   if line.lstrip().startswith(("K ", "5 "))]
    for name in ("KL", noise.MIXED, noise.PURE, "W, lam=50 from W + KL",
                 "W, lam=1000 from W + KL"):
        assert name in header
    assert len(row.split()) == 3 + 5            # K, noise, seed and five distances


def test_relaxed_tiny(tmp_path):
    summary = relaxed.run(out=tmp_path, verbose=False, settings=dict(
        K=12, pairs=4, gammas=(0.1, 3.0, 100.0), lams=(1, 30), sizes=(8, 32), rows=2,
        max_iter=100000))
    written(tmp_path, "relaxed_gamma.csv", "relaxed_exact.csv", "relaxed_iterations.csv",
            "relaxed.png", "relaxed_summary.json")
    gaps = [r["gap"] for r in summary["gap_versus_gamma"] if r["lam"] == 10.0]
    assert gaps[0] > gaps[1] > gaps[2]          # relaxed -> smoothed as gamma grows
    assert all(r["gap_low"] <= r["gap"] <= r["gap_high"] for r in summary["gap_versus_gamma"])
    exact = summary["approach_to_exact"]
    assert exact[1]["smoothed_gap"] < exact[0]["smoothed_gap"]   # -> exact as lam grows
    lines = relaxed.report_lines(summary["gap_versus_gamma"], exact,
                                 summary["iterations_versus_k"])
    parts = [line[:3] for line in lines if line.startswith("(")]
    assert parts == ["(a)", "(b)", "(c)"]                       # all three parts printed
    assert sum("smoothed" in line and "relaxed gamma=100" in line for line in lines) == 2
    assert any(line.split()[0] == "relaxed" and "K=32:" in line for line in lines)


def test_digits_tiny_with_fallback_data(tmp_path):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    summary = digits.run(out=tmp_path, data=(X[:300], y[:300], "8x8 subset"), verbose=False,
                         settings=dict(powers=(0.1, 1.0), n_train=150, max_iter=20))
    written(tmp_path, "digits.csv", "digits_profiles.json", "digits.png")
    profiles = json.loads((tmp_path / "digits_profiles.json").read_text())["profiles"]
    for profile in profiles.values():
        np.testing.assert_allclose(np.sum(profile, axis=1), 1.0, rtol=1e-9)
    assert [r["model"] for r in summary["results"]] == [
        "KL", "W, p=0.1", "W, p=1", "W + 0.05 KL, p=0.1", "W + 0.05 KL, p=1"]


def test_tags_tiny_with_synthetic_movies(tmp_path):
    rng = np.random.default_rng(0)
    Y = (rng.uniform(size=(240, 19)) < 0.15).astype(float)
    Y[Y.sum(axis=1) == 0, 7] = 1.0                     # every movie has a genre
    X = Y @ rng.normal(size=(19, 8)) + 0.5 * rng.normal(size=(240, 8))
    summary = tags.run(out=tmp_path, data=(X, Y), verbose=False, settings=dict(
        splits=(0, 1), kl_weights=(0.0, 1.0), alphas=(1e-4, 1e-2), n_train=None,
        max_iter=15))
    written(tmp_path, "tags.csv", "tags_summary.json", "tags.png")
    for variant, table in summary["summaries"].items():
        assert [r["model"] for r in table] == ["KL", "W (pure)", "W + 1 KL"]
        for r in table:
            assert r["splits"] == 2 and 0.5 < r["auc"] <= 1
            assert all(0 <= r[f"C_{k}"] < 1 for k in range(1, 11))
            assert r["minus_KL_C_1_low"] <= r["minus_KL_C_1"] <= r["minus_KL_C_1_high"]
        kl = table[0]
        assert kl["minus_KL_auc"] == 0 and kl["minus_KL_C_3"] == 0
    assert summary["labels_per_movie"]["one genre per cluster"] <= \
        summary["labels_per_movie"]["all genres"]


def test_tags_prints_no_interval_for_kl_against_itself():
    row = dict(model="KL", auc=0.8, C_1=0.1, C_5=0.3)
    assert "[" not in tags.format_summary(row)
    row = dict(row, model=tags.model_name(0.0), **{f"minus_KL_{m}_{end}": 0.01
                                                   for m in ("auc", "C_1", "C_5")
                                                   for end in ("low", "high")})
    assert tags.format_summary(row).count("[+0.0100, +0.0100]") == 3
    assert tags.model_name(0.0) == "W (pure)" and tags.model_name(0.5) == "W + 0.5 KL"


def test_experiments_run_blas_on_one_thread(monkeypatch, tmp_path):
    from threadpoolctl import threadpool_info
    seen = []

    def fake_run(**kwargs):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return {}
    monkeypatch.setattr(relaxed, "run", fake_run)
    run("relaxed", out=tmp_path)
    assert seen and set(seen) == {1}


def test_quick_settings_are_the_documented_sizes():
    assert digits.SETTINGS[True]["n_train"] == 1000
    assert tags.SETTINGS[True]["n_train"] == 1000
    for module in (digits, noise, tags):
        assert module.INIT == "random"           # the protocol of the documented results


def test_one_genre_per_cluster():
    clusters = np.array([1, 1, 2, 3, 3, 3])
    Y = np.array([[1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0], [1, 0, 1, 1, 1, 1]], float)
    reduced = tags.one_genre_per_cluster(Y, clusters, seed=0)
    assert np.all(reduced <= Y)
    for c in (1, 2, 3):
        members = clusters == c
        np.testing.assert_array_equal(reduced[:, members].sum(axis=1),
                                      Y[:, members].max(axis=1))


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


def test_command_line_help_and_no_command(capsys):
    assert main([]) == 2                                   # as argparse does for errors
    assert "COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("noise", "relaxed", "digits", "tags"):
        assert f"  {name} " in text and "Fig." in text


def test_help_imports_nothing_heavy():
    import os
    import subprocess
    import sys
    code = ("import sys, runpy; sys.argv = ['sinkhorn_nb', 'experiment', '--help']\n"
            "try:\n    runpy.run_module('sinkhorn_nb', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('sklearn', 'scipy.optimize', 'matplotlib', 'numba.cuda')"
            " if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_gallery_examples_compile():
    """The gallery scripts (run by Sphinx, not in CI) at least compile and call
    an experiment's quick run."""
    import pathlib
    folder = pathlib.Path(__file__).parents[1] / "examples"
    examples = [folder / f"plot_{name}.py" for name in ("digits", "noise", "relaxed", "tags")]
    for p in examples:
        source = p.read_text()
        compile(source, str(p), "exec")
        assert f"{p.stem[5:]}.run(quick=True" in source
