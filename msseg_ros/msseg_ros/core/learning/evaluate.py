"""``msseg eval``: metrics of a segmenter on a COCO dataset.

* COCO box and mask AP, AP50, AP75 and AP by object size (pycocotools' COCOeval; a test
  cross-checks it with faster-coco-eval);
* the thesis's contingency table (seed 000 §7.1, §8.1): detections with score >=
  ``score_threshold`` (0.75) matched one-to-one to ground truth at mask IoU >= 0.5,
  greedily by score; rows are true classes, columns predicted classes plus "missed";
  per-class precision (correct / detections of that class, unmatched ones included) and
  recall (correct / ground truth); accuracy = correct / matched; missed % = unmatched
  ground truth / all ground truth;
* inference time per image (batch 1): median and p90, ms;
* the boundary F-score of the masks (``mask_boundary_F``): the mean, over detections
  matched as in the contingency table, of the F-measure of the predicted and true
  contours within a band of ``BOUNDARY_BAND_PX`` (DAVIS's boundary measure F, Perazzi et
  al. 2016; seed 002's "crisper boundaries");
* the model type's own metrics (``Segmenter.extra_metrics``): for bicameral, ODS and AP
  of the boundary and occlusion maps (see ``map_metrics``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msseg_ros.core.segmentation.base import Segmenter

import copy
import io
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msseg_ros.core.learning.coco import encode_mask
from msseg_ros.core.learning.data import CocoFrames
from msseg_ros.core.learning.map_metrics import THRESHOLDS, map_pr  # noqa: F401 - re-exported

AP_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


#: a contour pixel within this distance of the other contour counts as found, px
BOUNDARY_BAND_PX = 2


def boundary_f(pred: np.ndarray, truth: np.ndarray, band: int = BOUNDARY_BAND_PX) -> float:
    """Boundary F-measure of two (H, W) bool masks: precision is the share of the
    predicted contour within ``band`` px of the true contour, recall the converse; 1.0
    for two empty masks, 0.0 when one is empty."""
    import cv2

    if not pred.any() or not truth.any():
        return float(not pred.any() and not truth.any())
    rows, cols = np.nonzero(pred | truth)
    pad = band + 2
    y0, x0 = max(rows.min() - pad, 0), max(cols.min() - pad, 0)
    y1, x1 = rows.max() + pad + 1, cols.max() + pad + 1
    kernel = np.ones((3, 3), np.uint8)

    def contour(m: np.ndarray) -> np.ndarray:
        m8 = np.ascontiguousarray(m[y0:y1, x0:x1], dtype=np.uint8)
        return (m8 > 0) & (cv2.erode(m8, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) == 0)

    cp, ct = contour(pred), contour(truth)
    to_truth = cv2.distanceTransform((~ct).astype(np.uint8), cv2.DIST_L2, 3)
    to_pred = cv2.distanceTransform((~cp).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((to_truth[cp] <= band).mean())
    recall = float((to_pred[ct] <= band).mean())
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _iou_matrix(pred_labels: np.ndarray, n_pred: int, gt_masks: np.ndarray) -> np.ndarray:
    """(n_gt, n_pred) mask IoU."""
    n_gt = len(gt_masks)
    if n_gt == 0 or n_pred == 0:
        return np.zeros((n_gt, n_pred))
    gt_lab = np.zeros(pred_labels.shape, np.int64)
    for k, m in enumerate(gt_masks, start=1):
        gt_lab[m] = k  # visible masks do not overlap in our data; last wins otherwise
    pl = pred_labels.astype(np.int64).ravel()
    gl = gt_lab.ravel()
    inter = np.bincount(gl * (n_pred + 1) + pl, minlength=(n_gt + 1) * (n_pred + 1)).reshape(n_gt + 1, n_pred + 1)
    area_g = inter.sum(1)
    area_p = inter.sum(0)
    i = inter[1:, 1:]
    return i / np.maximum(area_g[1:, None] + area_p[None, 1:] - i, 1)


def match(iou: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[int, int]:
    """Greedy one-to-one matching, best score first: {pred index: gt index}."""
    out: dict[int, int] = {}
    taken: set[int] = set()
    for p in np.argsort(-scores, kind="stable"):
        if iou.shape[0] == 0:
            break
        cand = [(iou[g, p], g) for g in range(iou.shape[0]) if g not in taken and iou[g, p] >= threshold]
        if cand:
            _, g = max(cand)
            out[int(p)] = int(g)
            taken.add(g)
    return out


def coco_eval(gt_doc: dict[str, Any], results: list[dict[str, Any]], iou_type: str,
              backend: str = "pycocotools") -> tuple[dict[str, float | None], Any]:
    """Run COCOeval; returns (stats dict, the evaluator)."""
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_doc)
        gt.createIndex()
        if not results:
            return dict.fromkeys(AP_NAMES, 0.0), None
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 where there is no ground truth of that size: not applicable
    stats = {n: (float(v) if v >= 0 else None) for n, v in zip(AP_NAMES, ev.stats[:6], strict=True)}
    return stats, ev


@dataclass
class _ImageRecord:
    """What the threshold-dependent metrics need of one image: every prediction's score
    and class (1-based), the (n_gt, n_pred) mask IoU and the true classes (1-based)."""

    scores: np.ndarray
    classes: np.ndarray
    iou: np.ndarray
    gt_classes: np.ndarray


def contingency(records: list[_ImageRecord], n_classes: int, score_threshold: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(contingency (K, K + 1), last column missed; unmatched detections per predicted
    class (K,)) at ``score_threshold`` (see the module docstring)."""
    K = n_classes
    conf = np.zeros((K, K + 1), np.int64)
    unmatched_pred = np.zeros(K, np.int64)
    for r in records:
        confident = np.flatnonzero(r.scores >= score_threshold)
        matched = match(r.iou[:, confident], r.scores[confident])
        hit_gt = set(matched.values())
        for p_local, g in matched.items():
            conf[r.gt_classes[g] - 1, r.classes[confident[p_local]] - 1] += 1
        for g in range(len(r.gt_classes)):
            if g not in hit_gt:
                conf[r.gt_classes[g] - 1, K] += 1
        for p_local in range(len(confident)):
            if p_local not in matched:
                unmatched_pred[r.classes[confident[p_local]] - 1] += 1
    return conf, unmatched_pred


#: thresholds of the calibration sweep
SWEEP = tuple(round(float(t), 2) for t in np.arange(0.05, 0.96, 0.05))


def threshold_sweep(records: list[_ImageRecord], n_classes: int,
                    thresholds: tuple[float, ...] = SWEEP) -> list[dict[str, float]]:
    """Per threshold: precision (right class / detections), recall (right class / ground
    truth), F1, accuracy (right class / matched) and missed % (seed 000's measures)."""
    out = []
    for t in thresholds:
        conf, unmatched = contingency(records, n_classes, t)
        K = n_classes
        right = int(np.trace(conf[:, :K]))
        matched = int(conf[:, :K].sum())
        detections = matched + int(unmatched.sum())
        gt = int(conf.sum())
        p = right / detections if detections else 0.0
        r = right / gt if gt else 0.0
        out.append({"threshold": t, "precision": round(p, 4), "recall": round(r, 4),
                    "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
                    "accuracy": round(right / matched, 4) if matched else 0.0,
                    "missed_pct": round(100.0 * int(conf[:, K].sum()) / gt, 2) if gt else 0.0})
    return out


def choose_threshold(sweep: list[dict[str, float]], precision_target: float | None = None) -> dict[str, float]:
    """The operating point: the best F1 (ties: the higher threshold, as a model whose
    own cut-off is higher gives equal rows below it), or with
    ``precision_target`` the lowest threshold whose precision reaches it (the highest
    precision when none does)."""
    if precision_target is None:
        return max(sweep, key=lambda row: (row["f1"], row["threshold"]))
    reaching = [row for row in sweep if row["precision"] >= precision_target]
    if reaching:
        return min(reaching, key=lambda row: row["threshold"])
    return max(sweep, key=lambda row: (row["precision"], -row["threshold"]))


def evaluate(seg: Segmenter, ds: CocoFrames, limit: int | None = None, score_threshold: float = 0.75,
             timing: bool = True, progress: bool = False) -> dict[str, Any]:
    """Evaluate ``seg`` on ``ds`` (see the module docstring). Returns a JSON-able dict;
    ``calibration`` holds the threshold sweep and its best-F1 point."""
    from tqdm import tqdm

    n = len(ds) if not limit else min(limit, len(ds))
    K = len(ds.class_names)
    records: list[_ImageRecord] = []
    results: list[dict[str, Any]] = []
    times: list[float] = []
    boundary: list[float] = []
    extra = seg.extra_metrics()  # the model type's own metrics, e.g. bicameral map ODS/AP
    ids = []
    it = tqdm(range(n), desc="eval", unit="img", leave=False, disable=not progress)
    for i in it:
        frame, tgt = ds[i]
        ids.append(tgt["image_id"])
        t0 = time.perf_counter()
        inst = seg(frame)
        times.append(time.perf_counter() - t0)
        masks = inst.masks()
        for k in range(len(inst)):
            x0, y0, x1, y1 = (float(v) for v in inst.boxes[k])
            results.append({"image_id": tgt["image_id"], "category_id": int(inst.class_ids[k]),
                            "segmentation": encode_mask(masks[k]), "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": float(inst.scores[k])})
        record = _ImageRecord(np.asarray(inst.scores), np.asarray(inst.class_ids),
                              _iou_matrix(inst.labels, len(inst), tgt["masks"]), np.asarray(tgt["labels"]))
        records.append(record)
        confident = np.flatnonzero(record.scores >= score_threshold)
        for p, g in match(record.iou[:, confident], record.scores[confident]).items():
            boundary.append(boundary_f(masks[confident[p]], tgt["masks"][g]))
        if extra is not None:
            extra.update(ds, i, frame, tgt)
    conf, unmatched_pred = contingency(records, K, score_threshold)
    sweep = threshold_sweep(records, K)
    gt_doc = dict(ds.doc)
    keep = set(ids)
    gt_doc["images"] = [im for im in ds.doc["images"] if im["id"] in keep]
    gt_doc["annotations"] = [a for a in ds.doc["annotations"] if a["image_id"] in keep]
    bbox, _ = coco_eval(gt_doc, results, "bbox")
    segm, ev = coco_eval(gt_doc, results, "segm")
    correct = int(np.trace(conf[:, :K]))
    matched_n = int(conf[:, :K].sum())
    gt_n = int(conf.sum())
    per_class = {}
    for c, name in enumerate(ds.class_names):
        det_c = int(conf[:, c].sum() + unmatched_pred[c])
        per_class[name] = {
            "ground_truth": int(conf[c].sum()),
            "precision": float(conf[c, c] / det_c) if det_c else None,
            "recall": float(conf[c, c] / conf[c].sum()) if conf[c].sum() else None,
        }
    summary = {f"bbox_{k}": (None if v is None else round(v, 4)) for k, v in bbox.items()}
    summary.update({f"segm_{k}": (None if v is None else round(v, 4)) for k, v in segm.items()})
    summary.update({
        "accuracy": round(correct / matched_n, 4) if matched_n else 0.0,
        "missed_pct": round(100.0 * int(conf[:, K].sum()) / gt_n, 2) if gt_n else 0.0,
        "images": n, "objects": gt_n, "score_threshold": score_threshold,
        "mask_boundary_F": round(float(np.mean(boundary)), 4) if boundary else None,
    })
    if timing and times:
        summary["time_median_ms"] = round(1000 * float(np.median(times)), 1)
        summary["time_p90_ms"] = round(1000 * float(np.percentile(times, 90)), 1)
    pr: dict[str, Any] = {}
    if extra is not None:
        values, pr = extra.summary()
        summary.update(values)
    class_pr = {}
    if ev is not None:
        prec = ev.eval["precision"]  # (T, R, K, A, M)
        rec = np.linspace(0, 1, prec.shape[1])
        for k, cat in enumerate(ev.params.catIds):
            curve = prec[0, :, k, 0, -1]
            if np.all(curve < 0):
                continue
            class_pr[ds.class_names[cat - 1]] = {"recall": rec.tolist(), "precision": np.clip(curve, 0, 1).tolist()}
    return {"summary": summary, "per_class": per_class, "classes": ds.class_names,
            "contingency": conf.tolist(), "unmatched_detections": unmatched_pred.tolist(),
            "pr_curves_iou50": class_pr, "map_pr": pr,
            "calibration": {"sweep": sweep, "best_f1": choose_threshold(sweep)}}


def save_plots(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Contingency heatmap and PR curves as PNGs in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    conf = np.array(metrics["contingency"])
    names = metrics["classes"]
    fig, ax = plt.subplots(figsize=(1 + 0.7 * (len(names) + 1), 1 + 0.6 * len(names)))
    rows = conf.sum(1, keepdims=True)
    ax.imshow(conf / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(conf):
        if v:
            ax.text(c, r, str(v), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names) + 1), [*names, "missed"], rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"predicted (score >= {metrics['summary']['score_threshold']})")
    ax.set_ylabel("true class")
    ax.set_title("contingency table")
    fig.tight_layout()
    paths.append(out / "contingency.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    curves = metrics["pr_curves_iou50"] or {}
    extra = metrics.get("map_pr") or {}
    if curves or extra:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for name, c in curves.items():
            ax.plot(c["recall"], c["precision"], label=f"{name} (mask, IoU 0.5)")
        for name, c in extra.items():
            ax.plot(c["recall"], c["precision"], "--", label=f"{name} map")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
        ax.set_title("precision-recall")
        fig.tight_layout()
        paths.append(out / "pr_curves.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    return paths
