import numpy as np
import pytest

from msseg_ros.core.learning.coco import encode_mask
from msseg_ros.core.learning.data import CocoFrames
from msseg_ros.core.learning.evaluate import (
    AP_NAMES,
    boundary_f,
    coco_eval,
    evaluate,
    map_pr,
    match,
)
from msseg_ros.core.segmentation.base import Instances, Segmenter
from msseg_ros.core.sim.dataset import generate


@pytest.fixture(scope="module")
def line_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("line")
    generate("sorting_line", out, 4, 21, {"pixel_size": 0.004, "line_pitch": 0.004}, lines=80, split=(1, 0, 0))
    return CocoFrames(out / "annotations" / "learning.json")


class Replay(Segmenter):
    """Returns the ground truth of the dataset's images in order, optionally with the
    class of every other object changed: a known answer for the metrics."""

    def __init__(self, ds, wrong_every=0, wrong_score=1.0):
        super().__init__({"in_channels": 11, "classes": ds.class_names})
        self.ds, self.i, self.wrong_every, self.wrong_score = ds, 0, wrong_every, wrong_score

    def predict(self, frame):
        _, tgt = self.ds[self.i]
        self.i += 1
        labels = np.zeros(frame.shape[:2], np.uint16)
        for k, m in enumerate(tgt["masks"], start=1):
            labels[m] = k
        cls = tgt["labels"].copy()
        scores = np.ones(len(cls))
        if self.wrong_every:
            cls[:: self.wrong_every] = cls[:: self.wrong_every] % 9 + 1
            scores[:: self.wrong_every] = self.wrong_score
        return Instances.from_labels(labels, cls, scores)

    @classmethod
    def from_config(cls, config, weights=None, device="cpu"):
        raise NotImplementedError


def test_perfect_predictions(line_ds):
    m = evaluate(Replay(line_ds), line_ds)
    s = m["summary"]
    assert s["segm_AP"] == pytest.approx(1.0) and s["bbox_AP50"] == pytest.approx(1.0)
    assert s["accuracy"] == 1.0 and s["missed_pct"] == 0.0 and s["mask_boundary_F"] == 1.0
    conf = np.array(m["contingency"])
    assert conf[:, -1].sum() == 0 and np.trace(conf) == s["objects"]


def test_boundary_f_counts_contour_pixels_within_the_band():
    truth = np.zeros((60, 60), bool)
    truth[10:40, 10:40] = True
    assert boundary_f(truth, truth) == 1.0
    assert boundary_f(np.roll(truth, 2, axis=1), truth) == 1.0  # within the 2 px band
    # 5 px to the right: the two vertical edges are out of the band, the horizontal ones
    # mostly in: precision = recall = 25 / 60 + ... measured from the contours themselves
    shifted = np.roll(truth, 5, axis=1)
    f = boundary_f(shifted, truth)
    assert 0.3 < f < 0.9
    assert boundary_f(shifted, truth, band=5) == 1.0
    # a mask with a ragged edge has a worse boundary than a clean one of equal IoU
    ragged = truth.copy()
    ragged[10:40:2, 37:40] = False
    ragged[11:40:2, 40:43] = True
    assert boundary_f(ragged, truth) < 1.0
    assert boundary_f(np.zeros_like(truth), truth) == 0.0 and boundary_f(np.zeros_like(truth), ~np.ones_like(truth)) == 1.0


def test_contingency_counts_wrong_classes(line_ds):
    m = evaluate(Replay(line_ds, wrong_every=2), line_ds)
    conf = np.array(m["contingency"])
    n = m["summary"]["objects"]
    wrong = sum(len(line_ds[i][1]["labels"][::2]) for i in range(len(line_ds)))
    assert conf[:, :-1].sum() == n and n - np.trace(conf) == wrong
    assert m["summary"]["accuracy"] == pytest.approx((n - wrong) / n, abs=1e-4)


def test_threshold_sweep_and_the_operating_point(line_ds):
    """Wrong-class detections score 0.3, right ones 1.0: above 0.3 precision is 1 and the
    recall stays, so the best F1 lies above 0.3 (the highest of equal rows is chosen)."""
    from msseg_ros.core.learning.evaluate import choose_threshold

    m = evaluate(Replay(line_ds, wrong_every=3, wrong_score=0.3), line_ds)
    sweep = {row["threshold"]: row for row in m["calibration"]["sweep"]}
    n = m["summary"]["objects"]
    wrong = sum(len(line_ds[i][1]["labels"][::3]) for i in range(len(line_ds)))
    low, high = sweep[0.3], sweep[0.35]
    assert low["precision"] == pytest.approx((n - wrong) / n, abs=1e-4) and low["missed_pct"] == 0.0
    assert high["precision"] == 1.0 and high["recall"] == pytest.approx((n - wrong) / n, abs=1e-4)
    assert high["missed_pct"] == pytest.approx(100 * wrong / n, abs=0.01)
    assert m["calibration"]["best_f1"]["threshold"] == 0.95
    assert choose_threshold(m["calibration"]["sweep"], precision_target=0.99)["threshold"] == 0.35
    # a target no threshold reaches: the most precise one
    rows = [{"threshold": 0.1, "precision": 0.5, "f1": 0.5}, {"threshold": 0.2, "precision": 0.6, "f1": 0.4}]
    assert choose_threshold(rows, precision_target=0.9)["threshold"] == 0.2


def test_pycocotools_and_faster_coco_eval_agree(line_ds):
    rng = np.random.default_rng(0)
    results = []
    for a in line_ds.doc["annotations"]:
        if rng.random() < 0.2:
            continue  # some misses
        x, y, w, h = a["bbox"]
        results.append({"image_id": a["image_id"], "category_id": a["category_id"] if rng.random() > 0.2 else 1,
                        "bbox": [x + rng.normal(0, 1), y, w, h], "segmentation": a["segmentation"],
                        "score": float(rng.random())})
    for iou_type in ("bbox", "segm"):
        a, _ = coco_eval(line_ds.doc, results, iou_type, "pycocotools")
        b, _ = coco_eval(line_ds.doc, results, iou_type, "faster_coco_eval")
        for k in AP_NAMES:
            if a[k] is None or b[k] is None:
                assert a[k] == b[k]
            else:
                assert a[k] == pytest.approx(b[k], abs=1e-6), (iou_type, k)
    assert 0.3 < a["AP"] < 0.95


def test_match_is_greedy_by_score():
    iou = np.array([[0.9, 0.6], [0.0, 0.55]])  # (gt, pred)
    # pred 1 scores higher and takes gt 0 (its best); pred 0 is left with nothing >= 0.5
    assert match(iou, np.array([0.5, 0.9])) == {1: 0}
    # with pred 0 first, each finds its own
    assert match(iou, np.array([0.9, 0.5])) == {0: 0, 1: 1}


def test_map_pr_perfect_and_empty():
    acc = {"tp": np.array([10.0, 10.0]), "fp": np.array([0.0, 0.0]), "fn": np.array([0.0, 0.0])}
    ods, ap, _, _ = map_pr(acc)
    assert ods == pytest.approx(1.0) and ap == pytest.approx(1.0)
    acc = {"tp": np.array([5.0, 2.0]), "fp": np.array([5.0, 0.0]), "fn": np.array([5.0, 8.0])}
    ods, ap, p, r = map_pr(acc)
    assert ods == pytest.approx(0.5) and 0 < ap < 1


def test_encode_mask_is_json_safe():
    m = np.zeros((5, 5), bool)
    m[1:3, 1:4] = True
    rle = encode_mask(m)
    assert isinstance(rle["counts"], str) and rle["size"] == [5, 5]
