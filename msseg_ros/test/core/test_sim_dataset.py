import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from msseg_ros.core.learning.coco import decode_mask
from msseg_ros.core.sim.bin_pile import BinPileConfig
from msseg_ros.core.sim.dataset import assign_splits, generate
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld

from conftest import ROOT

SMALL_LINE = {"pixel_size": 0.004, "line_pitch": 0.004}


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("cell, overrides", [
    ("sorting_line", SMALL_LINE),
    ("bin_picking", {"width": 64, "height": 64, "max_instances": 10}),
    ("tabletop", {"width": 96, "height": 72}),
])
def test_same_seed_byte_identical(tmp_path, cell, overrides):
    generate(cell, tmp_path / "a", 4, 11, overrides, lines=60)
    generate(cell, tmp_path / "b", 4, 11, overrides, lines=60, workers=2)  # processes: same files
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) >= 8
    generate(cell, tmp_path / "c", 4, 12, overrides, lines=60)
    assert _digest(tmp_path / "c") != a


def test_sorting_line_coco_and_exact_frames(tmp_path):
    out = tmp_path / "ds"
    summary = generate("sorting_line", out, 6, 5, SMALL_LINE, lines=80, split=(0.5, 0.25, 0.25))
    total = 0
    for split in ("learning", "validation", "test"):
        coco = COCO(str(out / "annotations" / f"{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())][:2] == ["copper", "laminated_zinc"]
        for img in coco.loadImgs(coco.getImgIds()):
            frame = np.load(out / img["file_name"])
            assert frame.shape == (img["height"], img["width"], 11) and frame.dtype == np.float32
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
            masks = [coco.annToMask(a).astype(bool) for a in anns]
            assert all(np.array_equal(m, decode_mask(a["segmentation"])) for m, a in zip(masks, anns, strict=True))
            if masks:
                assert np.sum(masks, axis=0).max() == 1  # visible masks do not overlap
                assert all(m.sum() == a["area"] for m, a in zip(masks, anns, strict=True))
                # masks match heights
                h = frame[..., 0]
                assert np.mean(h[np.any(masks, axis=0)] > 0.5) > 0.99
            for a in anns:
                counted = summary["instances_per_class"][split]
                assert counted[coco.loadCats(a["category_id"])[0]["name"]] > 0
            total += len(anns)
    assert total == sum(sum(v.values()) for v in summary["instances_per_class"].values())
    # the stored frame is exactly what the world renders
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channels"][0] == "height_mm" and meta["config"]["pixel_size"] == 0.004


def test_single_class_images(tmp_path):
    generate("sorting_line", tmp_path, 9, 2, SMALL_LINE, single_class=True, lines=120,
             split=(1, 0, 0))
    coco = COCO(str(tmp_path / "annotations" / "learning.json"))
    for img_id in coco.getImgIds():
        cats = {a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id))}
        assert len(cats) <= 1


def test_bin_picking_extras(tmp_path):
    generate("bin_picking", tmp_path, 3, 4, {"width": 64, "height": 64}, split=(1, 0, 0))
    coco = COCO(str(tmp_path / "annotations" / "learning.json"))
    img = coco.loadImgs(coco.getImgIds())[0]
    rgb = cv2.imread(str(tmp_path / img["file_name"]))
    Y = cv2.imread(str(tmp_path / img["boundaries_file"]), cv2.IMREAD_GRAYSCALE)
    Z = cv2.imread(str(tmp_path / img["occlusions_file"]), cv2.IMREAD_GRAYSCALE)
    depth = np.load(tmp_path / img["depth_file"])
    assert rgb.shape == (64, 64, 3) and depth.shape == (64, 64)
    assert set(np.unique(Y)) <= {0, 255} and not np.any((Y > 0) & (Z > 0))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
    assert anns and all("occluded" in a for a in anns)
    D = cv2.imread(str(tmp_path / img["draped_file"]), cv2.IMREAD_GRAYSCALE)
    assert D.shape == (64, 64) and set(np.unique(D)) <= {0, 255}
    assert not np.any((D > 0) & (depth == np.float32(BinPileConfig().camera_height)))  # on objects only


def test_tabletop_images_and_masks(tmp_path):
    """Tabletop scenes: RGB PNGs whose COCO masks are the world's visible instances."""
    from msseg_ros.core.sim.tabletop import TabletopConfig, TabletopWorld

    summary = generate("tabletop", tmp_path, 3, 8, {"width": 160, "height": 120}, split=(1, 0, 0))
    assert summary["channels"] == ["red", "green", "blue"] and summary["instances_per_class"]["learning"]["object"] > 0
    coco = COCO(str(tmp_path / "annotations" / "learning.json"))
    world = TabletopWorld(TabletopConfig(seed=8, width=160, height=120))
    for img in coco.loadImgs(coco.getImgIds()):
        scene = world.render(img["id"] - 1)
        rgb = cv2.cvtColor(cv2.imread(str(tmp_path / img["file_name"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(rgb, scene["rgb"])
        masks = [decode_mask(a["segmentation"]) for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))]
        assert len(masks) == scene["labels"].max()
        for k, m in enumerate(masks, start=1):
            np.testing.assert_array_equal(m, scene["labels"] == k)
            assert m.sum() >= TabletopConfig.min_visible


def test_tabletop_office_backdrop_changes_the_room_but_not_the_objects():
    """office=1 draws carpet, desks, chairs around the table: the labels stay the same
    (its draws have their own stream) and the image changes off the table."""
    from msseg_ros.core.errors import ConfigError
    from msseg_ros.core.sim.tabletop import TabletopConfig, TabletopWorld

    plain = TabletopWorld(TabletopConfig(seed=3, width=160, height=120))
    office = TabletopWorld(TabletopConfig(seed=3, width=160, height=120, office=1.0))
    changed = 0
    for k in range(4):
        a, b = plain.render(k), office.render(k)
        np.testing.assert_array_equal(a["labels"], b["labels"])
        differs = np.any(a["rgb"] != b["rgb"], axis=2)
        assert differs.any()
        changed += int(differs[a["labels"] == 0].sum())
        # objects far from the room keep their pixels (only blur reaches 3 px across)
        inside = cv2.erode((a["labels"] > 0).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert not differs[inside].any()
    assert changed > 0.05 * 4 * 160 * 120
    with pytest.raises(ConfigError, match="office is a probability"):
        TabletopConfig(office=1.5)


def test_tabletop_kinds_choose_what_is_drawn():
    """kinds: the tool and brick kinds draw objects; an unknown kind is refused by name."""
    from msseg_ros.core.errors import ConfigError
    from msseg_ros.core.sim.tabletop import KINDS, TabletopConfig, TabletopWorld

    assert TabletopConfig().kinds == KINDS
    for kind in ("tool", "brick"):
        cfg = TabletopConfig(seed=2, width=160, height=120, kinds=[kind], min_objects=2, max_objects=2)
        assert cfg.kinds == (kind,)
        scenes = [TabletopWorld(cfg).render(k)["labels"] for k in range(3)]
        assert all(1 <= s.max() <= 2 for s in scenes)
    with pytest.raises(ConfigError, match=r"unknown object kind\(s\) \['drill'\]; kinds: box, cylinder"):
        TabletopConfig(kinds=("box", "drill"))


def test_splits_deterministic_with_fractions():
    s = assign_splits(100, (0.5, 0.25, 0.25), 3)
    assert (s.count("learning"), s.count("validation"), s.count("test")) == (50, 25, 25)
    assert s == assign_splits(100, (0.5, 0.25, 0.25), 3) != assign_splits(100, (0.5, 0.25, 0.25), 4)


def test_frames_match_world(tmp_path):
    generate("sorting_line", tmp_path, 1, 5, SMALL_LINE, lines=40, split=(1, 0, 0))
    seed = int(np.random.default_rng([5, 0]).integers(2**31))
    cfg = SortingLineConfig(feed_rate=12.0, seed=seed, **SMALL_LINE)
    np.testing.assert_array_equal(np.load(tmp_path / "images/000000.npy"),
                                  SortingLineWorld(cfg).render(0, 40).image)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_sim_data(tmp_path):
    out = _cli("sim-data", "bin_picking", "--out", str(tmp_path / "d"), "--count", "3", "--seed", "1",
               "--set", "width=64", "--set", "height=64")
    assert out.returncode == 0, out.stderr
    assert "instances" not in out.stderr and "learning" in out.stdout and "per-channel" in out.stdout
    assert (tmp_path / "d" / "summary.json").is_file()
    again = _cli("sim-data", "bin_picking", "--out", str(tmp_path / "d"), "--count", "3")
    assert again.returncode == 2 and "is not empty; use --force" in again.stderr
    for args, msg in [
        (["--set", "colour=1"], "unknown sorting_line option 'colour'"),
        (["--set", "class_mix=gold"], "unknown class(es) ['gold']"),
        (["--split", "1,2"], "--split needs three fractions"),
        (["--count", "0"], "--count must be >= 1"),
    ]:
        r = _cli("sim-data", "sorting_line", "--out", str(tmp_path / "e"), "--count", "2", *args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())
    r = _cli("sim-data", "tabletop", "--out", str(tmp_path / "t"), "--count", "2", "--set", "colour=1")
    assert r.returncode == 2 and "unknown tabletop option 'colour'" in r.stderr, r.stderr
