"""Ray-plane intersection on real images (see benchmarks/circle_grid.py for the method)."""
import importlib.util

import pytest

from msseg_ros.core.geometry.camera import CameraModel

from conftest import ROOT, SHARED

DATA = SHARED / "data" / "calibration_circle_grid"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared data not present")


def _bench():
    spec = importlib.util.spec_from_file_location("circle_grid", ROOT / "benchmarks" / "circle_grid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_circle_spacing_from_rays_on_the_target_plane():
    bench = _bench()
    cam = CameraModel.from_values(550.0, 550.0, 320.0, 240.0, 640, 480)
    rows = [bench.measure(p, 0.0254, cam) for p in sorted(DATA.glob("images/*.png"))]
    assert all(r is not None for r in rows) and len(rows) == 15
    for r in rows:
        assert r["rejected_rays"] == 0
        assert abs(r["spacing_mean_mm"] - 25.4) < 0.1
        assert r["spacing_std_mm"] < 0.6, r
        assert r["max_error_mm"] < 2.5, r
