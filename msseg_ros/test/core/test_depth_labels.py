"""Instance masks from depth (objects on a table plane) and their hand edits."""
import numpy as np
import pytest

from msseg_ros.core.learning.depth_labels import (
    DepthLabelError,
    DepthLabelOptions,
    label_objects,
    mend,
)

K = (500.0, 500.0, 160.0, 120.0)  # fx, fy, cx, cy: a 320 x 240 camera


def scene(with_floor: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A camera looking straight down at a table 1.0 m away, two boxes on it (60 and 30 mm
    high; the second one's right edge against a third, 100 mm high); with_floor: the
    left third of the view is the floor, 0.7 m below the table, holding a 50 mm object.
    Returns (depth in mm, the true labels)."""
    depth = np.full((240, 320), 1000, np.uint16)
    truth = np.zeros((240, 320), np.int32)
    depth[40:100, 150:210] = 940
    truth[40:100, 150:210] = 1
    depth[140:200, 150:190] = 970
    truth[140:200, 150:190] = 2
    depth[140:200, 190:240] = 900
    truth[140:200, 190:240] = 3
    if with_floor:
        depth[:, :100] = 1700
        depth[100:140, 30:70] = 1650
    depth[10:14, 300:304] = 0  # a few invalid pixels on the table
    return depth, truth


def test_objects_on_a_table_get_one_label_each_split_where_the_depth_jumps():
    depth, truth = scene()
    labels = label_objects(depth, K)
    assert labels.max() == 3
    for k in (1, 2, 3):  # each true object is one label, and its mask is exact
        (lab,) = np.unique(labels[truth == k])
        assert lab > 0 and np.array_equal(labels == lab, truth == k)


def test_the_table_is_the_nearest_large_level_plane_not_the_floor():
    depth, truth = scene(with_floor=True)
    labels = label_objects(depth, K)
    assert labels.max() == 3  # the floor's object is beside the table, not on it
    assert not labels[:, :100].any()


def test_a_frame_without_a_table_is_refused():
    with pytest.raises(DepthLabelError, match="only 0 pixels have depth"):
        label_objects(np.zeros((240, 320), np.uint16), K)
    with pytest.raises(DepthLabelError, match=r"\(H, W\)"):
        label_objects(np.zeros((2, 240, 320), np.uint16), K)


def test_taller_threshold_drops_the_low_box():
    depth, truth = scene()
    labels = label_objects(depth, K, DepthLabelOptions(min_height_mm=40.0))
    assert labels.max() == 2 and not labels[truth == 2].any()


def test_hand_edits_drop_merge_cut_hull_and_add():
    labels = np.zeros((20, 30), np.int32)
    labels[2:8, 2:8] = 1
    labels[2:8, 10:16] = 2
    labels[12:18, 2:28] = 3  # two objects side by side at one depth
    ring = np.zeros((20, 30), bool)
    labels[10:11, 20:29] = 4  # a sliver
    out = mend(labels, {"cut": [[3, 15, 12, 28, 18]], "merge": [[1, 2]], "drop": [4],
                        "boxes": [[20, 1, 26, 6]]})
    assert out.max() == 4  # 1+2, 3 left, 3 right, the box
    assert out[4, 4] == out[4, 12] and out[14, 5] != out[14, 20] and out[14, 20] > 0
    assert not out[10, 22] and out[3, 22] > 0
    c = np.zeros((20, 20), np.int32)
    c[2:18, 2:18] = 1
    c[6:14, 6:18] = 0  # a C: its hull fills the notch
    ring = mend(c, {"hull": [1]})
    assert ring[10, 10] == 1 and (ring == 1).sum() > (c == 1).sum()
    with pytest.raises(DepthLabelError, match="edit names label 9, but the frame has labels"):
        mend(labels, {"drop": [9]})


def test_the_shared_tabletop_photos_are_labelled_and_mended_by_the_cli(tmp_path):
    """`msseg label-depth` on the 9 real RGB-D photos with the shipped hand edits: COCO files
    that the training data loader reads, with the counts the edits give."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, SHARED

    data = SHARED / "data" / "tabletop_rgbd"
    if not data.is_dir():
        pytest.skip("shared data not present")
    rgb = sorted(str(p) for p in (data / "png").glob("*_rgb.png"))
    cmd = [sys.executable, "-m", "msseg_ros.cli.main", "label-depth", *rgb, "--intrinsics",
           str(data / "camera_params.json"), "--edits", str(ROOT / "config" / "datasets" / "tabletop_rgbd_edits.yaml"),
           "--test", "image_0002_rgb.png,image_0006_rgb.png", "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "75 instances in 9 images" in r.stdout
    test = json.loads((tmp_path / "annotations" / "test.json").read_text())
    train = json.loads((tmp_path / "annotations" / "train.json").read_text())
    assert [i["file_name"] for i in test["images"]] == ["image_0002_rgb.png", "image_0006_rgb.png"]
    assert len(test["annotations"]) == 10 + 12 and len(train["annotations"]) == 75 - 22
    from msseg_ros.core.learning.data import CocoFrames

    frames = CocoFrames(tmp_path / "annotations" / "test.json", data / "png")
    image, target = frames[1]
    assert image.shape == (480, 640, 3) and len(target["masks"]) == 12
    assert len(list((tmp_path / "overlays").glob("mended_*.png"))) == 8
    depth = np.load(test["images"][0]["depth_file"])  # the bicameral model's targets come from it
    assert depth.shape == (480, 640) and depth.dtype == np.float32 and 0.3 < np.median(depth) < 3.0
    bad = subprocess.run([*cmd[:-2], "--out", str(tmp_path / "x"), "--test", "nope.png"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "test images for images not given: ['nope.png']" in bad.stderr
