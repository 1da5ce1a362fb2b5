"""The demo: its measures, its table and a caption that says what was measured."""
import numpy as np
import pytest

from sinkhorn_nb import demo


def test_scores():
    proba = np.zeros((4, 10))
    proba[[0, 1, 2, 3], [3, 4, 9, 2]] = 1.0          # right, off by 1, off by 6, right
    s = demo.scores(proba, np.array([3, 5, 3, 2]))
    assert s["accuracy"] == 0.5
    assert s["distance"] == pytest.approx((1 + 6) / 4)
    assert s["neighbour_share"] == 0.5
    assert s["expected_distance"] == pytest.approx((1 + 6) / 4)
    assert s["misses"] == [1, 0, 0, 0, 0, 1, 0, 0, 0]


def _summary(distance, accuracy, expected):
    return {demo.KL: dict(accuracy=0.96, distance=0.16, neighbour_share=0.19,
                          expected_distance=0.2, misses=[1] * 9),
            "W": dict(accuracy=0.96, distance=0.15, neighbour_share=0.28,
                      expected_distance=0.22, misses=[2] + [1] * 8,
                      minus_KL_accuracy=accuracy, minus_KL_distance=distance,
                      minus_KL_expected_distance=expected, minus_KL_neighbour_share=(0, 0, 0))}


def test_caption_follows_the_intervals():
    text = demo.caption(_summary((-0.01, -0.02, -0.001), (0.0, -0.002, 0.002),
                                 (0.02, 0.01, 0.03)), 10)
    assert "19% of logistic regression's" in text and "W: 28%" in text
    assert "mean |pred - true| lower than KL's (-0.010)" in text
    assert "accuracy indistinguishable from KL's" in text
    assert "expected distance higher than KL's (+0.020)" in text
    text = demo.caption(_summary((0.01, -0.001, 0.02), (0.0, -0.002, 0.002),
                                 (-0.02, -0.03, -0.01)), 10)
    assert "mean |pred - true| indistinguishable from KL's" in text
    assert "expected distance lower than KL's" in text


def test_demo_runs_and_its_numbers_agree(tmp_path):
    pytest.importorskip("matplotlib")
    rows, seconds = demo.run_digits(splits=2)
    assert len(rows) == 2 * (1 + len(demo.W_MODELS)) and set(seconds) == {
        demo.KL, *demo.W_MODELS}
    summary = demo.summarize(rows)
    for name, s in summary.items():
        assert 0.9 < s["accuracy"] <= 1
        if name != demo.KL:
            mean, low, high = s["minus_KL_distance"]
            group = [r["distance"] for r in rows if r["model"] == name]
            kl = [r["distance"] for r in rows if r["model"] == demo.KL]
            assert mean == pytest.approx(np.mean(group) - np.mean(kl)) and low <= mean <= high
    lines = demo.format_rows(summary)
    kl_line = next(line for line in lines if line.startswith(demo.KL))
    assert "[" not in kl_line                        # no difference of KL from itself
    path = tmp_path / "figure.png"
    assert demo.plot(summary, 2, str(path)) == demo.caption(summary, 2)
    assert path.stat().st_size > 0
