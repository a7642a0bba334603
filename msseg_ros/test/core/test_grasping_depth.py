"""core.grasping.depth: height maps, what lies on what, and the ranking that uses them."""
import numpy as np
import pytest

from msseg_ros.core.geometry.camera import CameraModel, Plane, Pose
from msseg_ros.core.grasping.depth import (
    DepthEvidence,
    DepthImageError,
    DepthRanking,
    HeightMapper,
    apply_depth,
    covered_share,
    depth_evidence,
    depth_to_metres,
    height_blobs,
    height_map,
    pick_heights,
)
from msseg_ros.core.grasping.select import Filters, ranked
from msseg_ros.core.robots.tabu import TabuSpots
from msseg_ros.core.segmentation.base import Instances
from msseg_ros.core.sensing.sources import SimSource

DOWN = Pose.from_xyz_quat([0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0])  # 1 m up, optical z = world -z
FLOOR = Plane([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])


def test_depth_encodings():
    mm = np.array([[0, 970], [1000, 65535]], np.uint16)
    assert np.allclose(depth_to_metres(mm), [[np.nan, 0.97], [1.0, 65.535]], equal_nan=True)
    m = np.array([[np.nan, -1.0], [0.0, 0.5]], np.float32)
    assert np.isnan(depth_to_metres(m)[[0, 0, 1], [0, 1, 0]]).all() and depth_to_metres(m)[1, 1] == 0.5
    with pytest.raises(DepthImageError, match="dtype int32"):
        depth_to_metres(np.zeros((2, 2), np.int32))
    with pytest.raises(DepthImageError, match=r"must be \(H, W\)"):
        depth_to_metres(np.zeros((2, 2, 1), np.float32))


def test_height_map_of_a_camera_looking_down_and_of_a_tilted_one():
    cam = CameraModel.from_values(100.0, 100.0, 31.5, 23.5, 64, 48)
    depth = np.full((48, 64), 0.97, np.float32)
    assert np.allclose(height_map(depth, cam, DOWN, FLOOR), 0.03, atol=1e-6)
    with pytest.raises(DepthImageError, match="depth image is 32x48 but the camera's frames are 64x48"):
        height_map(depth[:, :32], cam, DOWN, FLOOR)
    # tilted 30 degrees about world x, 1 m above the floor: a floor pixel's depth along the
    # optical axis is its distance along the ray times the ray's z; the map gives 0 there
    a = np.radians(30.0)
    tilt = Pose(np.array([[1.0, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]), np.zeros(3))
    pose = DOWN @ tilt
    mapper = HeightMapper(cam, pose, FLOOR)
    vv, uu = np.mgrid[0:48, 0:64]
    rays = cam.rays(np.column_stack([uu.ravel(), vv.ravel()]))
    rays_w = pose.rotate(rays)
    s = -1.0 / rays_w[:, 2]  # reach z = 0 from z = 1
    floor_depth = (s * rays[:, 2]).reshape(48, 64).astype(np.float32)
    assert np.allclose(mapper(floor_depth), 0.0, atol=1e-5)
    assert np.allclose(mapper(floor_depth * 0.9), 0.1, atol=1e-5)  # 10 % nearer along every ray: 0.1 m up


def _two_objects():
    """Instance 1 (a 20 x 20 px plate, 1 cm high) with instance 2 (3 cm) lying on its right
    part, and instance 3 apart (2 cm), on a floor at 0."""
    labels = np.zeros((40, 60), np.uint16)
    height = np.zeros((40, 60), np.float32)
    labels[10:30, 5:25], height[10:30, 5:25] = 1, 0.01
    labels[12:28, 20:32], height[12:28, 20:32] = 2, 0.03
    labels[10:30, 40:55], height[10:30, 40:55] = 3, 0.02
    return labels, height


def test_covered_share_sees_what_lies_on_what():
    labels, height = _two_objects()
    share = covered_share(labels, height, step=0.005, reach_px=3)
    assert share.shape == (4,) and share[0] == 0
    assert share[1] > 0.2  # its right edge meets instance 2, 2 cm higher
    assert share[2] == 0 and share[3] == 0  # only the floor and a lower plate beside them
    # a sensor hole (NaN) counts neither way
    holed = height.copy()
    holed[12:28, 20:32] = np.nan
    assert covered_share(labels, holed, 0.005, 3)[1] == 0
    with pytest.raises(DepthImageError, match="differ in size"):
        covered_share(labels, height[:, :10], 0.005, 3)


def test_pick_heights_and_evidence_rows():
    labels, height = _two_objects()
    assert np.allclose(pick_heights(height, [10.0, 25.0, -3.0], [20.0, 20.0, 5.0]), [0.01, 0.03, np.nan],
                       equal_nan=True)
    ev = DepthEvidence(np.array([0.0, 0.5, 0.0]), np.array([np.nan, 0.01, 0.03]))
    covered, h = ev.for_rows(np.array([2, 1, 7]))
    assert np.allclose(covered, [0.0, 0.5, 0.0]) and np.allclose(h, [0.03, 0.01, np.nan], equal_nan=True)


def test_ranking_puts_covered_instances_last_and_higher_ones_first():
    labels, height = _two_objects()
    inst = Instances.from_labels(labels, [1, 1, 1], [0.9, 0.5, 0.6], affordance=[0.9, 0.5, 0.6])
    det = inst.to_table()
    assert list(ranked(det, Filters())["instance"]) == [1, 3, 2]  # by affordance alone
    ev = depth_evidence(det, inst.labels, height, DepthRanking())
    # instance 1 lies under instance 2: last; instance 2 is 1 cm higher than 3: first
    assert list(ranked(det, Filters(), depth=(DepthRanking(), ev))["instance"]) == [2, 3, 1]
    flat = DepthRanking(height_weight=0.0)
    assert list(ranked(det, Filters(), depth=(flat, ev))["instance"]) == [3, 2, 1]


def test_on_simulated_piles_the_top_ranked_pick_is_rarely_pinned():
    """The sim camera's noisy depth and the true masks: the covered share flags most
    instances that something lies on, few free ones, and the first candidate is free in
    all but a few piles (each seeded: the same figures every run)."""
    flagged_pinned, flagged_free, pinned_first = [], [], 0
    for seed in range(20):
        src = SimSource(seed=seed)
        src.read()
        labels, _ = src.pile.heights()
        pinned = src.pile.occluded_ids(labels)
        ids = [i.id for i in src.pile.instances if (labels == i.id).any()]
        remap = np.zeros(labels.max() + 1, np.int64)
        remap[ids] = np.arange(1, len(ids) + 1)
        n = len(ids)
        inst = Instances.from_labels(remap[labels], np.ones(n), np.ones(n), affordance=np.ones(n))
        det = inst.to_table()
        heights = HeightMapper(src.camera_model(), DOWN, FLOOR)(src.depth())
        ev = depth_evidence(det, inst.labels, heights, DepthRanking())
        for k, iid in enumerate(ids):
            (flagged_pinned if iid in pinned else flagged_free).append(ev.covered[k + 1] > 0.02)
        first = ids[int(ranked(det, Filters(), depth=(DepthRanking(), ev))["instance"][0]) - 1]
        pinned_first += first in pinned
    assert np.mean(flagged_pinned) > 0.75 and np.mean(flagged_free) < 0.25
    assert pinned_first <= 3


def test_pick_points_move_onto_the_upper_of_two_joined_instances():
    """A mask that joins a plate (1 cm) with a box lying on it (3 cm): its pick pixel, the
    centroid, lies on the plate; on the mask's top it lies inside the box."""
    from msseg_ros.core.grasping.depth import apply_depth, top_pick_points

    labels = np.zeros((40, 60), np.uint16)
    height = np.zeros((40, 60), np.float32)
    labels[5:35, 5:45], height[5:35, 5:45] = 1, 0.01
    height[10:30, 30:44] = 0.03  # the box, inside the joined mask
    det = Instances.from_labels(labels, [1], [0.9], affordance=[0.9]).to_table()
    assert height[int(det["v"][0]), int(det["u"][0])] == np.float32(0.01)  # the centroid: on the plate
    moved = top_pick_points(det, labels, height, band=0.008)
    u, v = int(moved["u"][0]), int(moved["v"][0])
    assert 33 <= u <= 40 and 15 <= v <= 24 and height[v, u] == np.float32(0.03)  # inside the box, away from its edges
    assert det["u"][0] != moved["u"][0]  # a copy: the input is unchanged
    assert top_pick_points(det, labels, height, band=0.0)["u"][0] == det["u"][0]  # band 0: as the segmenter gave
    nan = np.full_like(height, np.nan)
    assert top_pick_points(det, labels, nan, band=0.008)["u"][0] == det["u"][0]  # no depth: kept
    moved, ev = apply_depth(det, labels, height, DepthRanking())
    assert ev.height[1] == pytest.approx(0.03, abs=1e-3)  # the evidence is read at the moved pixel


def test_height_blobs_find_what_stands_on_the_plane():
    """Two objects and sensor noise: two blobs, largest first, their boxes and areas, pick
    pixels inside them; noise below the threshold and a blob under the minimum area are none."""
    rng = np.random.default_rng(0)
    height = rng.normal(0.0, 0.001, (60, 80))
    height[10:30, 5:35] += 0.02  # 20 x 30 px, 2 cm
    height[40:50, 50:60] += 0.012  # 10 x 10 px
    height[5:7, 70:72] += 0.03  # 2 x 2 px: opened away
    height[55, 2] = np.nan
    det, labels = height_blobs(height, 0.005, 30, class_id=3)
    assert len(det) == 2 and labels.dtype == np.uint16 and labels.shape == (60, 80)
    assert list(det["area"]) == [600, 100] and list(det["instance"]) == [1, 2]
    assert (det["x0"][0], det["y0"][0], det["x1"][0], det["y1"][0]) == (5, 10, 35, 30)
    assert set(det["class_id"]) == {3} and np.all(det["score"] == 1) and np.all(np.isnan(det["affordance"]))
    for row in det:
        assert labels[int(row["v"]), int(row["u"])] == row["instance"]
    assert len(height_blobs(height, 0.005, 101)[0]) == 1
    assert len(height_blobs(rng.normal(0.0, 0.001, (60, 80)), 0.005, 30)[0]) == 0


def test_a_pile_the_model_misses_still_gets_its_top_object_first():
    """Blobs of a simulated pile, ranked with depth: the first pick lies on an object, at
    the top of its blob (a blob may join several touching objects)."""
    src = SimSource(seed=3)
    src.read()
    truth, top_height = src.pile.heights()
    heights = HeightMapper(src.camera_model(), DOWN, FLOOR)(src.depth())
    det, labels = height_blobs(heights, 0.005, 30)
    assert len(det) >= 1
    moved, ev = apply_depth(det, labels, heights, DepthRanking())
    first = ranked(moved, Filters(), depth=(DepthRanking(), ev))[0]
    u, v = int(first["u"]), int(first["v"])
    assert truth[v, u] > 0  # on an object
    assert heights[v, u] > np.nanpercentile(heights[labels == first["instance"]], 80)


def test_apply_depth_stands_the_blobs_in_only_for_an_empty_frame():
    """No detections: with ``fallback_height`` the blobs are ranked, without it nothing;
    a frame with detections keeps them and never gets blobs."""
    height = np.zeros((40, 60))
    height[10:30, 30:50] = 0.02
    empty = Instances.from_labels(np.zeros((40, 60), np.uint16), [], [])
    on, off = DepthRanking(fallback_height=0.005), DepthRanking(fallback_height=0.0)
    moved, ev = apply_depth(empty.to_table(), empty.labels, height, on)
    assert len(moved) == 1 and moved["area"][0] == 400 and ev.height[1] == pytest.approx(0.02)
    assert len(apply_depth(empty.to_table(), empty.labels, height, off)[0]) == 0
    labels = np.zeros((40, 60), np.uint16)
    labels[10:30, 30:40] = 1
    one = Instances.from_labels(labels, [1], [0.9])
    moved, _ = apply_depth(one.to_table(), one.labels, height, on)
    assert len(moved) == 1 and moved["area"][0] == 200 and moved["score"][0] == pytest.approx(0.9)


def test_detections_on_the_floor_are_dropped_and_the_blobs_stand_in_when_only_those_are_left():
    """``min_pick_height``: a detection whose pick pixel lies on the work plane (a model
    seeing an object in the bin's texture) is dropped and counted; when every detection
    is such, the depth's blobs stand in (``from_blobs``); 0 keeps them all."""
    import collections

    height = np.zeros((40, 60))
    height[10:30, 30:50] = 0.02  # the one object, which the model misses
    labels = np.zeros((40, 60), np.uint16)
    labels[5:15, 2:12] = 1  # two detections on the bare floor
    labels[25:35, 2:12] = 2
    floor = Instances.from_labels(labels, [1, 1], [0.9, 0.8])
    rule = DepthRanking(fallback_height=0.005, min_pick_height=0.005)
    moved, ev = apply_depth(floor.to_table(), floor.labels, height, rule)
    assert ev.from_blobs and len(moved) == 1 and moved["area"][0] == 400  # the object, from the depth
    assert height[int(moved["v"][0]), int(moved["u"][0])] == pytest.approx(0.02)
    labels[10:30, 30:50] = 3  # now the model finds the object too
    mixed = Instances.from_labels(labels, [1, 1, 1], [0.9, 0.8, 0.5])
    moved, ev = apply_depth(mixed.to_table(), mixed.labels, height, rule)
    assert not ev.from_blobs and len(moved) == 3
    counters: collections.Counter = collections.Counter()
    kept = ranked(moved, Filters(), counters, depth=(rule, ev))
    assert list(kept["instance"]) == [3] and counters["below_min_pick_height"] == 2
    off = DepthRanking(fallback_height=0.005)  # min_pick_height 0: the floor's detections stay, ranked lower
    moved, ev = apply_depth(mixed.to_table(), mixed.labels, height, off)
    assert list(ranked(moved, Filters(), depth=(off, ev))["instance"]) == [3, 1, 2]


def _bin_picks():
    """The benchmark module msseg_ros/benchmarks/bin_picks.py (a script, not a package)."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bin_picks", ROOT / "benchmarks" / "bin_picks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_why_pinned_tells_a_split_object_from_a_seen_cover():
    """bin_picks.why_pinned: a mask whose own edge meets the higher object is 'seen'; a
    piece of the covered object away from the cover is 'split' (its true mask's edge
    meets the cover); nothing higher anywhere is 'unseen'."""
    bin_picks = _bin_picks()
    height = np.zeros((20, 30))
    height[5:15, 2:28] = 0.01  # object 1, a bar
    height[2:18, 22:26] = 0.03  # object 2 lies across its right end
    truth = np.zeros((20, 30), np.int32)
    truth[5:15, 2:22] = 1
    truth[2:18, 22:26] = 2
    pieces = np.zeros((20, 30), np.int32)
    pieces[5:15, 2:10] = 1  # the model's left piece of object 1: far from object 2
    pieces[5:15, 10:22] = 2  # its right piece: meets object 2
    ranking = DepthRanking(step=0.005, reach_px=3, max_covered=0.02)
    assert bin_picks.why_pinned(1, pieces, 1, truth, height, ranking) == "pinned_split"
    assert bin_picks.why_pinned(2, pieces, 1, truth, height, ranking) == "pinned_seen"
    flat = np.where(truth > 0, 0.01, 0.0)
    assert bin_picks.why_pinned(1, pieces, 1, truth, flat, ranking) == "pinned_unseen"


def test_why_no_free_pick_names_what_kept_the_free_object_from_being_picked():
    """bin_picks.why_no_free_pick: the free object detected but its mask flagged as covered
    (a higher pixel at its edge), detected but tabu, detected and neither, not detected, or
    no free object."""
    from msseg_ros.core import tables

    bin_picks = _bin_picks()
    truth = np.zeros((20, 40), np.int32)
    truth[5:15, 5:15] = 1  # the free object
    height = np.where(truth > 0, 0.01, 0.0)
    det = tables.empty(tables.DETECTIONS, 1)
    det[0]["instance"], det[0]["u"], det[0]["v"] = 1, 10.0, 10.0
    ranking = DepthRanking(step=0.005, reach_px=3, max_covered=0.02)
    args = (det, truth, [1], truth)
    none = TabuSpots(7.5)
    assert bin_picks.why_no_free_pick(*args, height, ranking, none) == "seen_free_ranked_lower"
    failed_here = TabuSpots(7.5, spots=[(12.0, 12.0)])
    assert bin_picks.why_no_free_pick(*args, height, ranking, failed_here) == "seen_free_tabu"
    raised = height.copy()
    raised[5:15, 15:19] = 0.03  # its raised part, left out of the mask, looks like a cover
    assert bin_picks.why_no_free_pick(*args, raised, ranking, none) == "seen_free_flagged"
    missed = np.zeros_like(truth)
    assert bin_picks.why_no_free_pick(det, missed, [1], truth, height, ranking, none) == "seen_free_missed"
    assert bin_picks.why_no_free_pick(det, truth, [], truth, height, ranking, none) == "seen_no_free"
