"""A real-image bag (the tabletop RGB frames of ../shared/data/tabletop_rgbd, MIT, see its
SOURCE.txt) made by `msseg bag-images`, played through the bin-picking cell in replay
mode: overlays and grasp candidates come out (issue #7)."""
import json
import os
import subprocess
import sys

import cv2
import pytest

from msseg_ros.core.replay import BagPlayback

from conftest import ROOT, SHARED, fresh_domain

TABLETOP = SHARED / "data" / "tabletop_rgbd"
pytestmark = pytest.mark.skipif(not TABLETOP.is_dir(), reason="shared tabletop data not present")


def _camera_yaml(path):
    p = json.loads((TABLETOP / "camera_params.json").read_text())
    path.write_text(
        f"image_width: {p['img_width']}\nimage_height: {p['img_height']}\ncamera_name: tabletop\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: [{p['fx']}, 0, {p['x_offset']}, 0, {p['fy']}, "
        f"{p['y_offset']}, 0, 0, 1]}}\ndistortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    return path


def test_bin_picking_replay_on_real_images(tmp_path):
    images = sorted(str(p) for p in (TABLETOP / "png").glob("*_rgb.png"))
    bag = tmp_path / "tabletop"
    made = subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", "bag-images", *images, "--out", str(bag),
                           "--camera-info", str(_camera_yaml(tmp_path / "camera.yaml")), "--rate", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert made.returncode == 0, made.stderr
    topics = {t.name: t for t in BagPlayback(bag).topics}
    assert topics["/camera/image_raw"].count == len(images) == 9
    assert topics["/camera/camera_info"].count == 9 and topics["/camera/camera_info"].latched

    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    report = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", "run", "bin_picking", "--mode", "replay",
                          "--bag", str(bag), "--quiet", "--report", str(report)],
                         capture_output=True, text=True, cwd=ROOT, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((report / "report.json").read_text())
    seg, grasp = doc["nodes"]["segmenter"], doc["nodes"]["grasp_selector"]
    assert int(seg["frames"]) >= 3 and int(seg["overlays"]) >= 1, seg
    assert int(grasp["frames"]) >= 3 and int(grasp["candidates"]) >= 3, grasp
    assert int(grasp.get("dropped_no_camera_info", 0)) == 0
    overlay = cv2.imread(str(report / "overlay.png"))
    assert overlay is not None and overlay.shape == (480, 640, 3)
    assert doc["pipeline_latency"] == {}  # not measured in replay: the stamps are the bag's
    assert sum(doc["pick_results"].values()) >= 1  # the dry-run bridge saw the candidates
