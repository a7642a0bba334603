"""The report plots of `msseg run --report` (PNG files from KPI histories)."""
import cv2

from msseg_ros.cli import report


def test_plots_are_written(tmp_path):
    hist = [{"t": float(i), "cell": "sorting_line", "recovery": 0.5 + i / 40, "purity": 0.9,
             "picks_per_min_by_robot": {"1": 40.0 + i, "2": 30.0}} for i in range(10)]
    assert report.kpis_over_time(hist, tmp_path / "k.png")
    assert report.contingency_heatmap({"copper": {"copper": 9, "brass": 1}, "brass": {"brass": 5}},
                                      tmp_path / "c.png")
    assert report.latency_histogram([0.3, 0.35, 0.4, 0.5, 0.45], tmp_path / "l.png")
    for name in ("k.png", "c.png", "l.png"):
        img = cv2.imread(str(tmp_path / name))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 200 and img.std() > 5
    assert not report.kpis_over_time([], tmp_path / "none.png") and not (tmp_path / "none.png").exists()
    assert not report.contingency_heatmap({}, tmp_path / "none.png")
    assert not report.latency_histogram([], tmp_path / "none.png")
