"""Few-shot real: a model pretrained on synthetic scenes, fine-tuned on a few real photos.

    python msseg_ros/benchmarks/few_shot.py [--models maskrcnn bicameral] [--minutes 15] [--seed 0]
                                            [--folds 1|2|3] [--starts NAME_OR_PATH ...]
                                            [--arms zero_shot scratch fine_tuned] [--out runs/few_shot]

Not run by `msseg bench` without its name. Data: the 9 real RGB-D tabletop photos in
../shared/data/tabletop_rgbd, labelled from their depth and mended by hand
(`msseg label-depth` with config/datasets/tabletop_rgbd_edits.yaml; docs/datasets.md).
Fold 0 tests photos 2, 6 and 8 (32 objects) and trains on the other six (43 objects): the
split of every figure before folds. With ``--folds 3`` two more folds hold out 0, 3, 5
(24 objects) and 1, 4, 7 (19), so that every photo is tested once; each figure is then the
mean over the folds, with its spread (sample standard deviation) and each fold's value.

Per model family, arms of one `msseg train` each with the same budget of ``--minutes``
CPU minutes and seed ``--seed``, then one `msseg eval` on the real test photos (mask AP
over all scores; contingency at 0.5). Per pretrained start S of the family (a shipped
model trained on generated scenes only, or with ``--starts`` any checkpoint of the family):

* ``zero_shot_S``: S as it is;
* ``fine_tuned_S``: from S (``train.init``), on the fold's training photos;

and ``scratch``: the same network from random weights, on the fold's training photos.
``--arms`` runs some of the three kinds only.

Families: ``maskrcnn`` (config/training/tabletop_maskrcnn.yaml; half resolution, copy-paste
augmentation), from ``tabletop_pretrained_maskrcnn`` (generated tabletop scenes) and from
``bin_picking_maskrcnn`` (generated bin piles); ``bicameral`` (tabletop_bicameral_f25.yaml,
from ``bin_picking_bicameral``, α = β = 0.3 as the shipped bin model).

A rerun skips the arms whose metrics exist. Fold 0 writes under OUT (as before folds),
fold k under OUT/fold<k>. Writes OUT/results.json, OUT/table.md and per fold masks.jpg (the
fine-tuned Mask R-CNN's masks beside the labels on the fold's test photos).
Ratios: per family ``<family>_fine_tuned_mask_ap`` (from its first start, mean over the
folds) and ``<family>_fine_tuned_minus_scratch_mask_ap`` (when scratch ran).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from msseg_ros.bench import add_json_argument, emit

ROOT = Path.cwd()
SHARED = ROOT.parent / "shared" / "data" / "tabletop_rgbd"
#: each fold's test photos; fold 0 is the split of every figure before folds
FOLDS = (
    ("image_0002_rgb.png", "image_0006_rgb.png", "image_0008_rgb.png"),  # 32 objects
    ("image_0000_rgb.png", "image_0003_rgb.png", "image_0005_rgb.png"),  # 24
    ("image_0001_rgb.png", "image_0004_rgb.png", "image_0007_rgb.png"),  # 19
)
ARM_KINDS = ("zero_shot", "scratch", "fine_tuned")
METRICS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "mask_boundary_F", "missed_pct")
#: per model family: its training config, the shipped pretrained models it starts from
#: (the first is its main start), eval overrides
FAMILIES = {
    "maskrcnn": ("msseg_ros/config/training/tabletop_maskrcnn.yaml",
                 ("tabletop_pretrained_maskrcnn", "bin_picking_maskrcnn"), ()),
    "bicameral": ("msseg_ros/config/training/tabletop_bicameral_f25.yaml", ("bin_picking_bicameral",),
                  ("--set", "alpha=0.3", "--set", "beta=0.3")),
}


def start_name(start: str) -> str:
    """The arm suffix of a start: a shipped model's name, or a checkpoint's file stem (its
    run folder's name for a run's ``model.safetensors``)."""
    p = Path(start)
    if p.suffix != ".safetensors":
        return start
    return p.parent.name if p.stem == "model" else p.stem


def start_init(start: str) -> str:
    """What `msseg train --set train.init=` takes for a start (`msseg eval` takes it as it is)."""
    return start if start.endswith(".safetensors") else f"config/models/{start}.safetensors"


def arms(starts: tuple[str, ...], kinds: tuple[str, ...] = ARM_KINDS) -> list[tuple[str, str | None, bool]]:
    """(arm name, pretrained start or None, trained) of a family with these starts, for the
    arm ``kinds`` asked for (of :data:`ARM_KINDS`)."""
    out: list[tuple[str, str | None, bool]] = []
    if "zero_shot" in kinds:
        out += [(f"zero_shot_{start_name(s)}", s, False) for s in starts]
    if "scratch" in kinds:
        out.append(("scratch", None, True))
    if "fine_tuned" in kinds:
        out += [(f"fine_tuned_{start_name(s)}", s, True) for s in starts]
    return out


def fold_dir(out: Path, fold: int) -> Path:
    """Where fold ``fold`` writes: OUT itself for fold 0 (the layout before folds)."""
    return out if fold == 0 else out / f"fold{fold}"


def summarise(per_fold: list[dict]) -> dict:
    """Each metric's mean over the folds (None where a fold has none), its sample standard
    deviation (None for one fold) and the per-fold values."""
    import statistics

    out: dict = {"per_fold": per_fold}
    for k in METRICS:
        values = [r.get(k) for r in per_fold]
        whole = bool(values) and None not in values
        out[k] = statistics.fmean(values) if whole else None
        out[f"{k}_sd"] = statistics.stdev(values) if whole and len(values) > 1 else None
    return out


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


def table(results: dict[str, dict[str, dict]], folds: int) -> list[str]:
    """Markdown lines: one row per family and arm; with several folds each cell is the mean
    +- its spread, and the mask AP of each fold follows."""
    if folds == 1:
        lines = ["| model | arm | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        for family, by_arm in results.items():
            for arm, r in by_arm.items():
                lines.append(f"| {family} | {arm} | " + " | ".join(_fmt(r[k]) for k in METRICS) + " |")
        return lines
    head = " | ".join(f"{k} (mean +- sd)" for k in METRICS)
    lines = [f"| model | arm | {head} | segm_AP per fold |", "|---|---|" + "---|" * (len(METRICS) + 1)]
    for family, by_arm in results.items():
        for arm, r in by_arm.items():
            cells = [_fmt(r[k]) if r[f"{k}_sd"] is None else f"{r[k]:.3f} +- {r[f'{k}_sd']:.3f}" for k in METRICS]
            per = ", ".join(_fmt(f.get("segm_AP")) + (f" ({f['steps']} steps)" if f.get("steps") else "")
                            for f in r["per_fold"])
            lines.append(f"| {family} | {arm} | " + " | ".join(cells) + f" | {per} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=sorted(FAMILIES), default=["maskrcnn", "bicameral"])
    ap.add_argument("--minutes", type=float, default=15.0, help="CPU minutes of training per arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, choices=range(1, len(FOLDS) + 1), default=1,
                    help="how many of the folds to run (3: every photo tested once)")
    ap.add_argument("--starts", nargs="+", default=None, metavar="NAME_OR_PATH",
                    help="pretrained starts instead of the family's shipped ones (one family only)")
    ap.add_argument("--arms", nargs="+", choices=ARM_KINDS, default=list(ARM_KINDS))
    ap.add_argument("--out", default="runs/few_shot")
    add_json_argument(ap)
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"few_shot: {SHARED} is not here (the shared tabletop photos)")
    if args.starts is not None:
        if len(args.models) != 1:
            raise SystemExit("few_shot: --starts are checkpoints of one model family: give one --models")
        missing = [s for s in args.starts if s.endswith(".safetensors") and not (ROOT / s).is_file()]
        if missing:
            raise SystemExit(f"few_shot: --starts not found: {', '.join(missing)}")
    out = ROOT / args.out
    images = str(SHARED / "png")
    starts_of = {family: tuple(args.starts) if args.starts is not None else FAMILIES[family][1]
                 for family in args.models}
    per_fold: dict[str, dict[str, list[dict]]] = {}
    for fold in range(args.folds):
        data = fold_dir(out, fold) / "data"
        if not (data / "annotations" / "test.json").is_file():
            _msseg("label-depth", *sorted(str(p) for p in (SHARED / "png").glob("*_rgb.png")),
                   "--intrinsics", str(SHARED / "camera_params.json"),
                   "--edits", "msseg_ros/config/datasets/tabletop_rgbd_edits.yaml", "--test", ",".join(FOLDS[fold]),
                   "--out", str(data))
        test = str(data / "annotations" / "test.json")
        for family in args.models:
            config, _, eval_sets = FAMILIES[family]
            for arm, start, trained in arms(starts_of[family], tuple(args.arms)):
                run = fold_dir(out, fold) / family / arm
                metrics = run / "eval" / "metrics.json"
                if not metrics.is_file():
                    weights = start or ""
                    if trained:
                        init = ["--set", f"train.init={start_init(start)}"] if start else []
                        _msseg("train", config, "--set", f"data.train={data / 'annotations' / 'train.json'}",
                               "--set", f"data.image_root={images}", "--set", f"train.max_minutes={args.minutes}",
                               "--set", f"train.seed={args.seed}", "--set", f"out={run}", *init)
                        weights = str(run / "model.safetensors")
                    _msseg("eval", weights, "--data", test, "--image-root", images, "--score-threshold", "0.5",
                           *eval_sets, "--out", str(run / "eval"))
                summary = json.loads(metrics.read_text())["summary"]
                row = {k: summary.get(k) for k in METRICS}
                if trained and (run / "state.json").is_file():  # the steps its minutes bought
                    row["steps"] = json.loads((run / "state.json").read_text()).get("step")
                per_fold.setdefault(family, {}).setdefault(arm, []).append(row)
    results = {family: {arm: summarise(runs) for arm, runs in by_arm.items()} for family, by_arm in per_fold.items()}
    lines = table(results, args.folds)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    first = {family: start_name(starts_of[family][0]) for family in results}
    for fold in range(args.folds if "maskrcnn" in results else 0):
        where = fold_dir(out, fold)
        best = where / "maskrcnn" / f"fine_tuned_{first['maskrcnn']}" / "model.safetensors"
        if best.is_file():
            figure(str(best), where / "data" / "annotations" / "test.json", SHARED / "png", where / "masks.jpg")
            print(f"figure: {where / 'masks.jpg'} (labels left, fold {fold}'s fine-tuned Mask R-CNN right)")
    ratios = {}
    for family, by_arm in results.items():
        main_arm = by_arm.get(f"fine_tuned_{first[family]}")
        if main_arm is not None:
            ratios[f"{family}_fine_tuned_mask_ap"] = main_arm["segm_AP"] or 0.0
            if "scratch" in by_arm:
                ratios[f"{family}_fine_tuned_minus_scratch_mask_ap"] = (
                    (main_arm["segm_AP"] or 0.0) - (by_arm["scratch"]["segm_AP"] or 0.0))
    emit("few_shot", ratios, {"minutes": args.minutes, "seed": args.seed, "folds": [list(FOLDS[k]) for k in
                              range(args.folds)], "results": results}, args.json)


if __name__ == "__main__":
    main()
