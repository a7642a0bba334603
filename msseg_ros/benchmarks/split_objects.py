"""Split objects: how often a line model gives one object two pick points, with and without joining touching pieces.

    python msseg_ros/benchmarks/split_objects.py [--frames 100] [--seed 31] [--models maskrcnn,classic]

Not run by `msseg bench` without its name. Generates a held-out line split (or takes
``--data``), runs each shipped line model on it at its operating threshold, once without
joining pieces and once joining touching pieces of one class (``merge_touching_px`` /
``merge_gap_px`` as the shipped Mask R-CNN's checkpoint sets them), and counts, with each instance's pick
point (``Instances.pick_points``, what the grasp selector uses; instances under its
``min_area_px`` are dropped, as it drops them):

* ``objects_pointed``: ground-truth objects with at least one pick point on their mask
  (``objects_pointed_by_centroid``: the same with the mask centroids as pick points, as
  before pick points were kept on the mask);
* ``extra_points``: pick points beyond the first on one object (each would be a double
  pick if both were picked);
* ``mask_AP``: COCO mask AP over the frames.

Ratios: ``{model}_extra_points_joined_over_unjoined`` and
``{model}_objects_pointed_joined_over_unjoined``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from msseg_ros.bench import add_json_argument, emit
from msseg_ros.core.params.nodes import GRASP_SELECTOR
from msseg_ros.core.segmentation.base import operating_threshold
from msseg_ros.core.segmentation.loading import load_segmenter, shipped_models


def _line_merge_settings() -> dict[str, int]:
    """merge_touching_px / merge_gap_px of the shipped line Mask R-CNN (its checkpoint
    holds them; the segmenter's -1 means "the model's own")."""
    from msseg_ros.core.segmentation.checkpoint import load_checkpoint
    from msseg_ros.core.segmentation.loading import resolve_weights

    _, cfg = load_checkpoint(resolve_weights("sorting_line_maskrcnn"))
    return {"merge_touching_px": int(cfg["merge_touching_px"]), "merge_gap_px": int(cfg["merge_gap_px"])}


def _owners(owner: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The ground-truth object (owner label > 0) under each (u, v) point that lies on one."""
    H, W = owner.shape
    u = np.clip(np.rint(points[:, 0]).astype(int), 0, W - 1)
    v = np.clip(np.rint(points[:, 1]).astype(int), 0, H - 1)
    o = owner[v, u]
    return o[o > 0]


def count_points(seg, frames, min_area: int) -> dict[str, float]:
    """Pick points per ground-truth object, and mask AP, over ``frames`` (CocoFrames)."""
    from msseg_ros.core.learning.evaluate import evaluate

    pointed = extra = objects = by_centroid = 0
    threshold = operating_threshold(seg.config)
    for i in range(len(frames)):
        frame, target = frames[i]
        inst = seg(frame)
        owner = np.zeros(frame.shape[:2], np.int32)
        for k, m in enumerate(target["masks"]):
            owner[m] = k + 1
        objects += len(target["masks"])
        kept = (inst.scores >= threshold) & (inst.areas >= min_area)
        hit = _owners(owner, inst.pick_points[kept])
        pointed += len(np.unique(hit))
        extra += len(hit) - len(np.unique(hit))
        by_centroid += len(np.unique(_owners(owner, inst.centroids[kept])))
    return {"objects": objects, "objects_pointed": pointed, "objects_pointed_by_centroid": by_centroid,
            "extra_points": extra,
            "mask_AP": evaluate(seg, frames, timing=False)["summary"]["segm_AP"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--data", default=None, help="a COCO annotation file instead of a generated split")
    ap.add_argument("--models", default="maskrcnn,classic")
    add_json_argument(ap)
    args = ap.parse_args()
    from msseg_ros.core.learning.data import CocoFrames

    joined = _line_merge_settings()
    min_area = int(GRASP_SELECTOR.default("min_area_px"))
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from msseg_ros.core.sim.dataset import generate

            generate("sorting_line", Path(tmp) / "split", args.frames, seed=args.seed, split=(0.0, 0.0, 1.0))
            data = str(Path(tmp) / "split" / "annotations" / "test.json")
        frames = CocoFrames(data)
        ratios, figures = {}, {"data": args.data or f"generated: {args.frames} frames, seed {args.seed}",
                               "joined_with": joined, "min_area_px": min_area}
        for model in args.models.split(","):
            name = f"sorting_line_{model}"
            if name not in shipped_models():
                print(f"{model}: no shipped sorting-line model, skipped")
                continue
            unjoined = count_points(load_segmenter(name, overrides={"merge_touching_px": 0, "merge_gap_px": 0}),
                                    frames, min_area)
            merged = count_points(load_segmenter(name, overrides=joined), frames, min_area)
            figures[model] = {"unjoined": unjoined, "joined": merged}
            ratios[f"{model}_extra_points_joined_over_unjoined"] = merged["extra_points"] / max(
                unjoined["extra_points"], 1)
            ratios[f"{model}_objects_pointed_joined_over_unjoined"] = merged["objects_pointed"] / max(
                unjoined["objects_pointed"], 1)
            for label, r in (("not joined", unjoined), ("joined", merged)):
                print(f"{model:9s} {label:10s} objects {r['objects']}, with a pick point {r['objects_pointed']}, "
                      f"(by centroid {r['objects_pointed_by_centroid']}), extra pick points {r['extra_points']}, "
                      f"mask AP {r['mask_AP']}", flush=True)
    emit("split_objects", ratios, figures, args.json)


if __name__ == "__main__":
    main()
