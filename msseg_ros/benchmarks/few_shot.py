"""Few-shot real: a model pretrained on synthetic scenes, fine-tuned on a few real photos.

    python msseg_ros/benchmarks/few_shot.py [--models maskrcnn bicameral] [--minutes 15] [--seed 0]
                                            [--out runs/few_shot]

Not run by `msseg bench` without its name. Data: the 9 real RGB-D tabletop photos in
../shared/data/tabletop_rgbd, labelled from their depth and mended by hand
(`msseg label-depth` with config/datasets/tabletop_rgbd_edits.yaml; docs/datasets.md);
photos 2, 6 and 8 (32 objects) are the test split, the other six (43 objects) train.

Per model family, arms of one `msseg train` each with the same budget of ``--minutes``
CPU minutes and seed ``--seed``, then one `msseg eval` on the real test photos (mask AP
over all scores; contingency at 0.5). Per pretrained start S of the family (a shipped
model trained on generated scenes only):

* ``zero_shot_S``: S as it is;
* ``fine_tuned_S``: from S (``train.init``), on the six real photos;

and ``scratch``: the same network from random weights, on the six real photos.

Families: ``maskrcnn`` (config/training/tabletop_maskrcnn.yaml; half resolution, copy-paste
augmentation), from ``tabletop_pretrained_maskrcnn`` (generated tabletop scenes) and from
``bin_picking_maskrcnn`` (generated bin piles); ``bicameral`` (tabletop_bicameral_f25.yaml,
from ``bin_picking_bicameral``, α = β = 0.3 as the shipped bin model).

A rerun skips the arms whose metrics exist. Writes OUT/results.json, OUT/table.md and
OUT/masks.jpg (the fine-tuned Mask R-CNN's masks beside the labels on the test photos).
Ratios: per family ``<family>_fine_tuned_mask_ap`` (from its first start) and
``<family>_fine_tuned_minus_scratch_mask_ap``.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from msseg_ros.bench import add_json_argument, emit

ROOT = Path.cwd()
SHARED = ROOT.parent / "shared" / "data" / "tabletop_rgbd"
TEST = ("image_0002_rgb.png", "image_0006_rgb.png", "image_0008_rgb.png")
METRICS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "mask_boundary_F", "missed_pct")
#: per model family: its training config, the shipped pretrained models it starts from
#: (the first is its main start), eval overrides
FAMILIES = {
    "maskrcnn": ("msseg_ros/config/training/tabletop_maskrcnn.yaml",
                 ("tabletop_pretrained_maskrcnn", "bin_picking_maskrcnn"), ()),
    "bicameral": ("msseg_ros/config/training/tabletop_bicameral_f25.yaml", ("bin_picking_bicameral",),
                  ("--set", "alpha=0.3", "--set", "beta=0.3")),
}


def arms(starts: tuple[str, ...]) -> list[tuple[str, str | None, bool]]:
    """(arm name, pretrained start or None, trained) of a family with these starts."""
    out: list[tuple[str, str | None, bool]] = [(f"zero_shot_{s}", s, False) for s in starts]
    out.append(("scratch", None, True))
    return out + [(f"fine_tuned_{s}", s, True) for s in starts]


def _msseg(*args: str) -> None:
    cmd = [sys.executable, "-m", "msseg_ros.cli.main", *args]
    print("$ msseg " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"few_shot: `msseg {args[0]}` failed (exit {done.returncode})")


def figure(weights: str, test: Path, images: Path, path: Path, min_score: float = 0.5) -> None:
    """Each test photo twice, side by side: the hand-mended labels' outlines (left) and the
    model's masks scoring >= ``min_score`` (right); JPEG, 400 x 300 per photo."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils

    from msseg_ros.core.segmentation.loading import load_segmenter

    seg = load_segmenter(weights)
    doc = json.loads(test.read_text())
    rows = []
    for im in doc["images"]:
        rgb = cv2.cvtColor(cv2.imread(str(images / im["file_name"])), cv2.COLOR_BGR2RGB)
        inst = seg(rgb.astype(np.float32))
        pred, truth = rgb.copy(), rgb.copy()
        colours = np.random.default_rng(1).integers(60, 255, (max(len(inst), 1), 3))
        for k in np.flatnonzero(inst.scores >= min_score):
            m = inst.labels == k + 1
            pred[m] = (0.5 * pred[m] + 0.5 * colours[k]).astype(np.uint8)
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(pred, contours, -1, (255, 255, 255), 1)
        for a in doc["annotations"]:
            if a["image_id"] == im["id"]:
                rle = a["segmentation"]
                if not isinstance(rle, dict):
                    rle = mask_utils.merge(mask_utils.frPyObjects(rle, im["height"], im["width"]))
                contours, _ = cv2.findContours(mask_utils.decode(rle).astype(np.uint8), cv2.RETR_EXTERNAL,
                                               cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(truth, contours, -1, (255, 255, 0), 2)
        rows.append(np.hstack([cv2.resize(truth, (400, 300)), cv2.resize(pred, (400, 300))]))
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=sorted(FAMILIES), default=["maskrcnn", "bicameral"])
    ap.add_argument("--minutes", type=float, default=15.0, help="CPU minutes of training per arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/few_shot")
    add_json_argument(ap)
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"few_shot: {SHARED} is not here (the shared tabletop photos)")
    out = ROOT / args.out
    data = out / "data"
    if not (data / "annotations" / "test.json").is_file():
        _msseg("label-depth", *sorted(str(p) for p in (SHARED / "png").glob("*_rgb.png")),
               "--intrinsics", str(SHARED / "camera_params.json"),
               "--edits", "msseg_ros/config/datasets/tabletop_rgbd_edits.yaml", "--test", ",".join(TEST),
               "--out", str(data))
    test, images = str(data / "annotations" / "test.json"), str(SHARED / "png")
    results: dict[str, dict[str, dict]] = {}
    for family in args.models:
        config, starts, eval_sets = FAMILIES[family]
        results[family] = {}
        for arm, start, trained in arms(starts):
            run = out / family / arm
            metrics = run / "eval" / "metrics.json"
            if not metrics.is_file():
                weights = str(start)
                if trained:
                    init = ["--set", f"train.init=config/models/{start}.safetensors"] if start else []
                    _msseg("train", config, "--set", f"data.train={data / 'annotations' / 'train.json'}",
                           "--set", f"data.image_root={images}", "--set", f"train.max_minutes={args.minutes}",
                           "--set", f"train.seed={args.seed}", "--set", f"out={run}", *init)
                    weights = str(run / "model.safetensors")
                _msseg("eval", weights, "--data", test, "--image-root", images, "--score-threshold", "0.5",
                       *eval_sets, "--out", str(run / "eval"))
            summary = json.loads(metrics.read_text())["summary"]
            results[family][arm] = {k: summary.get(k) for k in METRICS}
    lines = ["| model | arm | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for family, by_arm in results.items():
        for arm, r in by_arm.items():
            lines.append(f"| {family} | {arm} | " + " | ".join(_fmt(r[k]) for k in METRICS) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    best = out / "maskrcnn" / f"fine_tuned_{FAMILIES['maskrcnn'][1][0]}" / "model.safetensors"
    if best.is_file():
        figure(str(best), data / "annotations" / "test.json", SHARED / "png", out / "masks.jpg")
        print(f"figure: {out / 'masks.jpg'} (labels left, the fine-tuned Mask R-CNN right)")
    ratios = {}
    for family, by_arm in results.items():
        ap_of = {arm: r["segm_AP"] or 0.0 for arm, r in by_arm.items()}
        main = f"fine_tuned_{FAMILIES[family][1][0]}"
        ratios[f"{family}_fine_tuned_mask_ap"] = ap_of[main]
        ratios[f"{family}_fine_tuned_minus_scratch_mask_ap"] = ap_of[main] - ap_of["scratch"]
    emit("few_shot", ratios, {"minutes": args.minutes, "seed": args.seed, "test_images": list(TEST),
                              "results": results}, args.json)


if __name__ == "__main__":
    main()
