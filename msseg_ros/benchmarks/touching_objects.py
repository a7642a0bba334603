"""Classic vs the learned line models on touching objects (the classic method's weak spot).

    python msseg_ros/benchmarks/touching_objects.py [--count 30] [--seed 7]

Generates a sorting-line test set where most objects touch another (touch_rate 0.9), then
evaluates the shipped sorting-line models (classic, Mask R-CNN, embeddings) on it and on a
set with no touching objects, and prints mask AP, and accuracy and % missed at each
model's operating threshold, and each learned model's mask AP minus classic's on the
touching set.
"""
import argparse
import tempfile
from pathlib import Path

from msseg_ros.bench import load_for_eval
from msseg_ros.core.learning.data import CocoFrames
from msseg_ros.core.learning.evaluate import evaluate
from msseg_ros.core.segmentation.base import operating_threshold
from msseg_ros.core.segmentation.loading import shipped_models
from msseg_ros.core.sim.dataset import generate

MODELS = ("sorting_line_classic", "sorting_line_maskrcnn", "sorting_line_embeddings")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {}
        for name, touch in (("isolated", 0.0), ("touching", 0.9)):
            out = Path(tmp) / name
            generate("sorting_line", out, args.count, args.seed, {"touch_rate": touch}, split=(0, 0, 1))
            sets[name] = CocoFrames(out / "annotations" / "test.json")
        print(f"{'model':<24} {'set':<9} {'mask AP':>8} {'AP50':>6} {'accuracy':>8} {'missed %':>9} {'ms':>6}")
        touching_ap = {}
        for model in (m for m in MODELS if m in shipped_models()):
            seg = load_for_eval(model)
            for name, ds in sets.items():
                s = evaluate(seg, ds, score_threshold=operating_threshold(seg.config))["summary"]
                print(f"{model:<24} {name:<9} {s['segm_AP']:>8.3f} {s['segm_AP50']:>6.3f} {s['accuracy']:>8.3f} "
                      f"{s['missed_pct']:>9.1f} {s['time_median_ms']:>6.1f}")
                if name == "touching":
                    touching_ap[model] = s["segm_AP"]
        base = touching_ap.get("sorting_line_classic")
        for model, ap in touching_ap.items():
            if base is not None and model != "sorting_line_classic":
                print(f"touching objects, {model} mask AP minus classic: {ap - base:+.3f}")


if __name__ == "__main__":
    main()
