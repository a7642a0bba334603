import numpy as np
import pytest

from msseg_ros.core import tables
from msseg_ros.core.segmentation.base import (
    Instances,
    InvalidFrameError,
    ModelConfigError,
    Segmenter,
    masks_to_labels,
    merge_touching,
    pick_pixels,
    snap_to_foreground,
)


def test_from_labels_geometry_and_table():
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 2:5] = 1  # 2 x 3 block
    labels[4, 7] = 3  # label 2 has no pixel: dropped, 3 -> 2
    inst = Instances.from_labels(labels, [5, 6, 7], [0.9, 0.8, 0.7], [0.1, np.nan, 0.3])
    assert len(inst) == 2 and inst.class_ids.tolist() == [5, 7]
    assert inst.areas.tolist() == [6, 1]
    np.testing.assert_allclose(inst.boxes[0], [2, 1, 5, 3])
    np.testing.assert_allclose(inst.centroids[0], [3.0, 1.5])
    np.testing.assert_allclose(inst.centroids[1], [7.0, 4.0])
    assert inst.labels.max() == 2 and inst.labels[4, 7] == 2
    t = inst.to_table()
    assert t.dtype == tables.DETECTIONS and t["instance"].tolist() == [1, 2]
    assert t["affordance"][0] == np.float32(0.1) and t["area"].tolist() == [6, 1]
    assert inst.masks().shape == (2, 6, 8)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32])
def test_from_labels_matches_a_per_instance_count_for_any_label_dtype(dtype):
    rng = np.random.default_rng(3)
    labels = np.zeros((37, 53), np.int64)
    for k in range(1, 9):
        if k == 4:
            continue  # no pixel: dropped, 5..8 -> 4..7
        y, x = rng.integers(0, 30), rng.integers(0, 45)
        labels[y:y + rng.integers(1, 12), x:x + rng.integers(1, 15)] = k
    given = labels.astype(dtype)
    inst = Instances.from_labels(given, np.arange(1, 9), np.linspace(0.9, 0.2, 8))
    kept = [k for k in range(1, 9) if (labels == k).any()]
    assert inst.labels.dtype == np.uint16 and len(inst) == len(kept)
    for new, old in enumerate(kept, start=1):
        v, u = np.nonzero(labels == old)
        assert (inst.labels == new).sum() == len(v) == inst.areas[new - 1]
        np.testing.assert_allclose(inst.boxes[new - 1], [u.min(), v.min(), u.max() + 1, v.max() + 1])
        np.testing.assert_allclose(inst.centroids[new - 1], [u.mean(), v.mean()], rtol=1e-6)
    assert inst.class_ids.tolist() == kept
    inst.labels[:] = 0  # the instances own their label map: the caller's array is untouched
    assert np.array_equal(given, labels.astype(dtype))


def test_from_labels_refuses_labels_it_cannot_match():
    with pytest.raises(ValueError, match="label 3 but only 2 instances"):
        Instances.from_labels(np.full((4, 4), 3, np.uint16), [1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="negative label -1"):
        Instances.from_labels(np.full((4, 4), -1, np.int32), [1], [0.5])
    with pytest.raises(ValueError, match=r"labels must be \(H, W\)"):
        Instances.from_labels(np.zeros((2, 4, 4), np.uint16), [1], [0.5])


def test_pick_point_is_the_centroid_of_a_convex_part():
    labels = np.zeros((40, 60), np.uint16)
    labels[5:25, 10:50] = 1  # rectangle: its centroid is on its deepest ridge
    yy, xx = np.mgrid[:40, :60]
    labels[(yy - 32) ** 2 + (xx - 12) ** 2 <= 36] = 2  # disc
    inst = Instances.from_labels(labels, [1, 2], [0.9, 0.8])
    np.testing.assert_array_equal(inst.pick_points, inst.centroids)
    t = inst.to_table()
    np.testing.assert_allclose(np.stack([t["u"], t["v"]], 1), inst.centroids)


def test_pick_point_of_an_l_or_c_shaped_part_lies_well_inside_it():
    labels = np.zeros((80, 140), np.uint16)
    labels[10:60, 10:22] = 1  # L: a vertical bar and a foot
    labels[48:60, 10:70] = 1
    labels[10:76, 85:95] = 2  # U, right of the L: two arms and a bottom
    labels[10:76, 125:135] = 2
    labels[66:76, 85:135] = 2
    inst = Instances.from_labels(labels, [1, 1], [0.9, 0.9])
    for k in range(2):
        u, v = inst.centroids[k]
        assert inst.labels[round(v), round(u)] != k + 1  # the centroid misses the part
        pu, pv = inst.pick_points[k]
        assert inst.labels[int(pv), int(pu)] == k + 1
    # deep inside: at least 4 px from the edge of a 12 px wide arm
    pu, pv = inst.pick_points[0]
    assert 48 + 4 <= pv < 60 - 4 or 10 + 4 <= pu < 22 - 4
    t = inst.to_table()
    np.testing.assert_allclose(np.stack([t["u"], t["v"]], 1), inst.pick_points)


def test_pick_points_stay_on_their_own_instance_where_instances_touch():
    labels = np.zeros((30, 60), np.uint16)
    labels[5:25, 5:30] = 1
    labels[5:25, 30:55] = 2
    labels[14:16, 20:40] = 3  # a thin bar across the seam: its centroid is on it, but shallow
    inst = Instances.from_labels(labels, [1, 1, 2], [0.9, 0.9, 0.5])
    for k, (u, v) in enumerate(inst.pick_points):
        assert inst.labels[int(round(v)), int(round(u))] == k + 1
    assert pick_pixels(np.zeros((4, 4), np.uint16), np.zeros((0, 2))).shape == (0, 2)


def test_masks_to_labels_best_on_top():
    m = np.zeros((2, 4, 4), bool)
    m[0, :2] = True
    m[1, 1:3] = True
    labels, order = masks_to_labels(m, np.array([0.2, 0.9]))
    assert order.tolist() == [1, 0]
    assert labels[1].tolist() == [1, 1, 1, 1]  # the overlap goes to the best score
    assert labels[0].tolist() == [2, 2, 2, 2]


class Thresholder(Segmenter):
    """A minimal model: one instance where channel 0 > 0.5."""

    type_name = "thresholder"

    def predict(self, frame):
        return Instances.from_labels((frame[..., 0] > 0.5).astype(np.uint16), [1], [1.0])

    @classmethod
    def from_config(cls, config, weights=None, device="cpu"):
        return cls(config)


def test_channel_and_shape_errors_are_named():
    seg = Thresholder({"in_channels": 11, "classes": ["a"], "name": "demo"})
    with pytest.raises(InvalidFrameError, match="frame has 3 channel\\(s\\) but model 'demo' takes 11"):
        seg(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(InvalidFrameError, match="must be \\(H, W, C\\)"):
        seg(np.zeros((2, 16, 16, 11)))
    with pytest.raises(InvalidFrameError, match="too small"):
        seg(np.zeros((4, 16, 11)))


def test_nan_policy():
    seg = Thresholder({"in_channels": 2, "classes": ["a"]}, fill_values=np.array([0.0, 0.0], np.float32))
    f = np.zeros((10, 10, 2), np.float32)
    f[2:6, 2:6, 0] = 1.0
    f[2, 2, 0] = np.nan  # inside the object: removed from the mask, counted
    f[8, 8, 1] = np.inf
    inst = seg(f)
    assert inst.invalid_pixels == 2 and inst.areas.tolist() == [15] and inst.labels[2, 2] == 0
    f[8, 8, 1] = -np.inf  # -inf alone, and beside +inf (their sum is NaN)
    assert seg(f).invalid_pixels == 2
    f[8, 9] = [np.inf, -np.inf]
    assert seg(f).invalid_pixels == 3
    huge = np.full((10, 10, 2), 3e38, np.float32)  # finite, though their sum overflows
    assert seg(huge).invalid_pixels == 0
    f[8, 9] = 0.0
    f[:5] = np.nan  # 50 pixels, plus the inf at (8, 8)
    with pytest.raises(InvalidFrameError, match="51 of 100 pixels are NaN or inf \\(more than 25%\\)"):
        seg(f)


def test_detections_table_carries_frame_size_and_last_row_contact():
    from msseg_ros.core import tables

    labels = np.zeros((30, 20), np.uint16)
    labels[25:30, 2:5] = 1  # reaches the last row (29)
    labels[3:8, 10:15] = 2
    t = Instances.from_labels(labels, [1, 2], [0.9, 0.8]).to_table()
    assert t.dtype == tables.DETECTIONS
    assert t["frame_width"].tolist() == [20, 20] and t["frame_height"].tolist() == [30, 30]
    assert t["touches_last_row"].tolist() == [1, 0]
    assert len(Instances.empty((4, 9)).to_table()) == 0


def test_visible_fractions_flag_duplicates_of_better_detections():
    from msseg_ros.core.segmentation.base import visible_fractions

    m = np.zeros((3, 10, 10), bool)
    m[0, 2:8, 2:8] = True  # 36 px, best
    m[1, 3:8, 2:8] = True  # the same object again (30 px, all under mask 0)
    m[2, 0:2, 0:5] = True  # another object, untouched
    v = visible_fractions(m, np.array([0.9, 0.6, 0.5]))
    assert v.tolist() == [1.0, 0.0, 1.0]
    v = visible_fractions(m, np.array([0.5, 0.9, 0.4]))  # now mask 1 is best: mask 0 keeps 6 of 36 px
    assert v[1] == 1.0 and v[0] == pytest.approx(6 / 36)


def test_a_part_is_folded_into_its_whole_and_neighbours_stay_apart():
    from msseg_ros.core.segmentation.base import merge_parts

    m = np.zeros((4, 20, 20), bool)
    m[0, 2:10, 2:6] = True    # a part (best score) ...
    m[1, 2:10, 2:14] = True   # ... of this whole (3x larger, lower score)
    m[2, 12:18, 2:8] = True   # a neighbour touching nothing of the above
    m[3, 12:18, 7:14] = True  # and one overlapping the neighbour by a column only
    scores = np.array([0.9, 0.6, 0.8, 0.7])
    labels = np.array([3, 5, 2, 2])
    got_m, got_s, got_l = merge_parts(m, scores, labels, 0.8)
    assert len(got_m) == 3
    np.testing.assert_array_equal(got_m[0], m[0] | m[1])  # the whole, with the part's score and class
    assert got_s.tolist() == [0.9, 0.8, 0.7] and got_l.tolist() == [3, 2, 2]
    same = merge_parts(m, scores, labels, 0.0)  # off
    assert len(same[0]) == 4 and same[1] is scores
    lower_part = scores.copy()
    lower_part[0] = 0.5  # the part scored below the whole: painting already hides it
    assert len(merge_parts(m, lower_part, labels, 0.8)[0]) == 4


def _pieces(layout: str, classes, scores=None, affordance=None) -> Instances:
    """Instances from a character map: digit k = instance k, '.' = background."""
    labels = np.array([[0 if ch == "." else int(ch) for ch in row] for row in layout.split()], np.uint16)
    n = len(classes)
    return Instances.from_labels(labels, classes, scores if scores is not None else [0.5] * n, affordance)


def test_touching_pieces_of_one_class_are_joined_into_one_instance():
    inst = _pieces("""
        111222..
        111222..
        ......33
        ......33""", [4, 4, 4], [0.6, 0.9, 0.7], [0.2, np.nan, 0.5])
    out = merge_touching(inst, min_contact_px=2)
    assert len(out) == 2
    assert out.areas.tolist() == [12, 4] and out.class_ids.tolist() == [4, 4]
    assert out.scores.tolist() == pytest.approx([0.9, 0.7])  # the group's best score
    assert out.affordance[0] == pytest.approx(0.2)  # NaN ignored, highest kept
    np.testing.assert_allclose(out.boxes[0], [0, 0, 6, 2])
    np.testing.assert_allclose(out.centroids[0], [2.5, 0.5])
    assert merge_touching(inst, 0) is inst  # off


def test_touching_pieces_of_other_classes_or_short_contact_stay_apart():
    two_classes = _pieces("""
        1122
        1122""", [1, 2])
    assert len(merge_touching(two_classes, 1)) == 2
    corner = _pieces("""
        11..
        11..
        ..22
        ..22""", [3, 3])
    assert len(merge_touching(corner, 1)) == 2  # a corner is no shared edge
    one_edge = _pieces("""
        111.
        ..22""", [3, 3])
    assert len(merge_touching(one_edge, 2)) == 2 and len(merge_touching(one_edge, 1)) == 1


def test_a_chain_of_pieces_is_one_group_and_a_gap_is_bridged_only_when_allowed():
    chain = _pieces("""
        11223344""", [7, 7, 7, 7])
    assert len(merge_touching(chain, 1)) == 1
    gap = _pieces("""
        11.22
        11.22""", [7, 7])
    assert len(merge_touching(gap, 2)) == 2
    out = merge_touching(gap, 2, gap_px=1)
    assert len(out) == 1 and out.areas.tolist() == [8] and out.labels[0, 2] == 0  # the gap stays background
    wide = _pieces("""
        11..22
        11..22""", [7, 7])
    assert len(merge_touching(wide, 2, gap_px=1)) == 2 and len(merge_touching(wide, 2, gap_px=2)) == 1


def test_a_model_joins_touching_pieces_when_its_config_says_so():
    class Halves(Thresholder):
        """Splits the object of channel 0 into a left and a right piece of one class."""

        def predict(self, frame):
            labels = (frame[..., 0] > 0.5).astype(np.uint16)
            labels[:, frame.shape[1] // 2:] *= 2
            return Instances.from_labels(labels, [1, 1], [0.8, 0.6])

    f = np.zeros((10, 10, 1), np.float32)
    f[3:7, 2:8, 0] = 1.0
    assert len(Halves({"in_channels": 1, "classes": ["a"]})(f)) == 2
    inst = Halves({"in_channels": 1, "classes": ["a"], "merge_touching_px": 2})(f)
    assert len(inst) == 1 and inst.areas.tolist() == [24] and inst.scores.tolist() == pytest.approx([0.8])


@pytest.mark.parametrize("key, value", [("merge_touching_px", -1), ("merge_touching_px", 1.5),
                                        ("merge_touching_px", True), ("merge_gap_px", 17)])
def test_merge_options_are_checked(key, value):
    with pytest.raises(ModelConfigError, match=key):
        Thresholder.validate_config({"in_channels": 1, "classes": ["a"], key: value})


@pytest.mark.parametrize("kind", ["maskrcnn", "bicameral", "embeddings", "classic"])
def test_every_model_type_checks_the_shared_keys(kind):
    from msseg_ros.core.segmentation.base import SEGMENTERS

    cls = SEGMENTERS.get(kind)
    assert cls.validate_config(dict(cls.default_config))["merge_touching_px"] == 0
    with pytest.raises(ModelConfigError, match="merge_gap_px"):
        cls.validate_config({**cls.default_config, "merge_gap_px": -2})


def test_bin_frame_is_the_block_mean_and_keeps_nan_visible():
    from msseg_ros.core.segmentation.base import bin_frame

    f = np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2)
    b = bin_frame(f, 2)
    assert b.shape == (3, 4, 2) and b.dtype == np.float32
    np.testing.assert_allclose(b[1, 2], f[2:4, 4:6].reshape(-1, 2).mean(0))
    odd = bin_frame(f[:5, :7], 2)  # the last row / column repeated into the edge blocks
    assert odd.shape == (3, 4, 2)
    np.testing.assert_allclose(odd[2, 3], f[4, 6])
    f[0, 0, 1] = np.nan
    assert np.isnan(bin_frame(f, 2)[0, 0, 1]) and np.isfinite(bin_frame(f, 2)[0, 0, 0])
    assert bin_frame(f, 1) is f
    with pytest.raises(InvalidFrameError, match="numeric"):
        bin_frame(np.zeros((4, 4, 1), bool), 2)


def test_upscaled_instances_are_the_fine_frames_instances():
    labels = np.zeros((5, 7), np.uint16)
    labels[1:3, 1:4] = 1
    labels[3:5, 5:7] = 2  # touches the bottom-right edge: cut there
    coarse = Instances.from_labels(labels, [3, 4], [0.9, 0.6], [0.5, np.nan], invalid_pixels=1)
    fine = coarse.upscaled(4, (19, 26))  # not a multiple of 4: the edge blocks are cut
    assert fine.labels.shape == (19, 26)
    np.testing.assert_array_equal(fine.labels[::4, ::4], labels)
    direct = Instances.from_labels(fine.labels, [3, 4], [0.9, 0.6])  # what the fine frame's labels give
    np.testing.assert_array_equal(fine.areas, direct.areas)
    np.testing.assert_allclose(fine.boxes, direct.boxes)
    np.testing.assert_allclose(fine.centroids[0], direct.centroids[0])  # whole blocks: the same centroid
    assert fine.areas.tolist() == [2 * 3 * 16, 7 * 6] and fine.invalid_pixels == 16
    for k, (u, v) in enumerate(fine.pick_points):  # on its own mask
        assert fine.labels[int(round(v)), int(round(u))] == k + 1
    t = fine.to_table()
    assert t["frame_width"][0] == 26 and t["touches_last_row"].tolist() == [False, True]
    assert coarse.upscaled(1, (5, 7)) is coarse


def test_a_binned_call_segments_the_binned_frame_and_answers_in_frame_pixels():
    seg = Thresholder({"in_channels": 2, "classes": ["a"]}, fill_values=np.array([0.0, 0.0], np.float32))
    f = np.zeros((40, 44, 2), np.float32)
    f[8:24, 4:20, 0] = 1.0  # whole 4 x 4 blocks
    f[30:32, 30:32, 0] = 1.0  # a quarter of a block: its mean (0.25) is under the threshold
    f[9, 9, 1] = np.nan  # one NaN: its whole block is invalid
    inst = seg(f, binning=4)
    assert inst.labels.shape == (40, 44) and len(inst) == 1
    assert inst.areas.tolist() == [16 * 16 - 16] and inst.invalid_pixels == 16 and inst.labels[9, 9] == 0
    np.testing.assert_allclose(inst.boxes[0], [4, 8, 20, 24])
    u, v = inst.pick_points[0]
    assert inst.labels[int(round(v)), int(round(u))] == 1
    with pytest.raises(InvalidFrameError, match="too small"):  # 28 px / 4 = 7 < 8
        seg(np.zeros((28, 44, 2), np.float32), binning=4)


def test_subset_keeps_the_geometry_from_labels_would_compute():
    labels = np.zeros((30, 40), np.uint16)
    labels[2:10, 3:20] = 1
    labels[12:20, 5:9] = 2
    labels[22:29, 10:35] = 3
    labels[14, 30] = 3  # a second piece: its pick point is not its centroid
    inst = Instances.from_labels(labels, [1, 2, 3], [0.9, 0.2, 0.8], [0.5, 0.1, np.nan])
    picks = inst.pick_points  # computed before the subset: carried over
    sub = inst.subset(np.array([True, False, True]))
    ref = Instances.from_labels(np.where(labels == 2, 0, np.where(labels == 3, 2, labels)), [1, 3], [0.9, 0.8],
                                [0.5, np.nan])
    np.testing.assert_array_equal(sub.labels, ref.labels)
    for name in ("class_ids", "scores", "boxes", "centroids", "areas", "affordance"):
        np.testing.assert_array_equal(getattr(sub, name), getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(sub.pick_points, ref.pick_points)
    np.testing.assert_array_equal(sub.pick_points, picks[[0, 2]])


def test_a_mask_beside_a_thin_wire_snaps_onto_it():
    """A one-pixel wire the mask head drew a pixel too low and with a gap: the snapped
    instance is the wire, pixel for pixel."""
    fg = np.zeros((20, 40), bool)
    fg[10, 5:31] = True  # the wire
    pred = np.zeros((20, 40), np.uint16)
    pred[11, 5:31] = 1
    pred[11, 15:17] = 0  # a gap
    out = snap_to_foreground(Instances.from_labels(pred, [3], [0.9]), fg, 1)
    assert len(out) == 1 and out.class_ids.tolist() == [3] and out.scores.tolist() == pytest.approx([0.9])
    np.testing.assert_array_equal(out.labels == 1, fg)


def test_snapping_keeps_masks_far_from_the_foreground_and_never_takes_another_instances_pixels():
    fg = np.zeros((20, 20), bool)
    fg[2:8, 2:8] = True
    labels = np.zeros((20, 20), np.uint16)
    labels[2:8, 2:5] = 1  # most of the object
    labels[2:8, 5:6] = 2  # a neighbour holding a column of it
    labels[14:18, 14:18] = 3  # an object the foreground does not see
    inst = Instances.from_labels(labels, [1, 2, 1], [0.9, 0.8, 0.7])
    out = snap_to_foreground(inst, fg, 2)
    assert np.count_nonzero(out.labels == 3) == 16  # far from any foreground: kept
    assert np.all(out.labels[2:8, 5] == 2)  # instance 2's pixels stay its own
    assert np.all(out.labels[fg] > 0) and not np.any(out.labels[8, :]) and not np.any(out.labels[:, 8])
    assert snap_to_foreground(inst, fg, 0) is inst  # off


def test_a_model_snaps_to_the_frames_foreground_when_its_config_says_so():
    """snap_above / snap_below: the foreground of either channel, on the validated frame."""
    class Blobby(Thresholder):
        """One instance one pixel wider than the object on every side."""

        def predict(self, frame):
            from scipy import ndimage as ndi

            obj = frame[..., 0] > 0.5
            return Instances.from_labels(ndi.binary_dilation(obj).astype(np.uint16), [1], [1.0])

    f = np.zeros((12, 12, 2), np.float32)
    f[3:8, 3:8, 0] = 1.0  # "height" channel
    f[..., 1] = 100.0
    f[3:8, 8, 1] = 10.0  # a column only the "X-ray" channel sees
    cfg = {"in_channels": 2, "classes": ["a"]}
    assert Blobby(cfg)(f).areas.tolist() == [45]  # off: 7 x 7 minus the corners
    above = Blobby({**cfg, "snap_px": 1, "snap_above_channel": 0, "snap_above": 0.5})(f)
    assert above.areas.tolist() == [25]
    both = Blobby({**cfg, "snap_px": 1, "snap_above_channel": 0, "snap_above": 0.5, "snap_below_channel": 1,
                   "snap_below": 50.0})(f)
    assert both.areas.tolist() == [30]


@pytest.mark.parametrize("extra, match", [
    ({"snap_px": 1}, "needs 'snap_above_channel' or 'snap_below_channel'"),
    ({"snap_px": 1, "snap_above_channel": 1}, "snap_above_channel"),
    ({"snap_px": -1}, "snap_px"),
    ({"snap_px": 1, "snap_below_channel": 0, "snap_below": "low"}, "snap_below"),
])
def test_snap_options_are_checked(extra, match):
    with pytest.raises(ModelConfigError, match=match):
        Thresholder.validate_config({"in_channels": 1, "classes": ["a"], **extra})
