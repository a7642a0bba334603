"""Plain vs adversarial Mask R-CNN (seed 002): same data, step budget and seeds.

    python msseg_ros/benchmarks/gan_comparison.py [--cells line bins] [--steps 150] [--seeds 0 1 2]
        [--base-steps 340] [--base-minutes 0] [--base-only] [--device cpu] [--out runs/gan_comparison]

Each run is one ``msseg train`` and one ``msseg eval`` (printed as they start; a rerun
skips the runs whose metrics exist, so a stopped comparison resumes):

* arm ``plain``: config/training/CELL_maskrcnn.yaml with ``train.adversarial`` {0, 0};
  arm ``gan``: CELL_maskrcnn_gan.yaml (box 0.1, mask 1.0). Both with
  ``train.max_steps=STEPS``, ``train.seed=S``, ``model.score_threshold=0.05`` (AP over
  all scores) and no validation during training.
* line: from the shipped line model (``train.init``), on the sorting-line data below;
  bins: from a base model this script trains first (plain, ``--base-steps`` steps from
  scratch, seed 100, cached in OUT/bins/base): 150 steps from scratch find nothing on the
  piles (mask AP 0.000, measured), so, as on the line, both arms fine-tune one model.
  ``--base-minutes M`` also stops the base after M minutes (``train.max_minutes``); the
  steps it reached are in OUT/bins/base/state.json, and ``--base-steps`` of that number
  then counts the base as done (and reproduces it without the time limit); ``--base-only``
  stops after it (so that one run per seed can follow side by side). Training runs
  on ``train.device: auto`` (a GPU where there is one).
* eval: ``msseg eval OUT/CELL/ARM-sS/model.safetensors --data TEST --score-threshold 0.5
  --device DEVICE`` (mask AP, AP50, AP75, AP by size; the boundary F-score of matched masks
  at score 0.5).

Data (held-out test splits use seeds no training set uses)::

    msseg sim-data sorting_line --out data/sl_train --count 2000 --seed 11 --split 0.9,0.1,0 --workers 2
    msseg sim-data sorting_line --out data/sl_test --count 200 --seed 97 --split 0,0,1
    msseg sim-data bin_picking --out data/bins_train --count 300 --seed 1 --split 0.9,0.1,0
    msseg sim-data bin_picking --out data/bins_test --count 100 --seed 97 --split 0,0,1

Writes OUT/results.json, OUT/table.md (mean +- std over seeds) and OUT/CELL_masks.png
(both arms' masks on the same test frames, seed 0). The step-time ratio is measured
interleaved by ``benchmarks/train_step.py --models maskrcnn``.

Ratios: ``{cell}_mask_ap_gain`` (gan mean mask AP - plain mean mask AP).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from msseg_ros.bench import add_json_argument, emit

ROOT = Path.cwd()  # data/ and runs/ are the working directory's (the repository root)
CELLS = {
    "line": {"config": "sorting_line", "train": "data/sl_train/annotations/learning.json",
             "test": "data/sl_test/annotations/test.json",
             "init": "config/models/sorting_line_maskrcnn.safetensors"},
    "bins": {"config": "bin_picking", "train": "data/bins_train/annotations/learning.json",
             "test": "data/bins_test/annotations/test.json", "init": "base"},
}
BASE_SEED = 100  # no comparison seed
METRICS = ("segm_AP", "segm_AP50", "segm_AP75", "segm_AP_small", "segm_AP_medium", "segm_AP_large",
           "bbox_AP", "mask_boundary_F")


def _msseg(*args: str) -> None:
    cmd = [sys.executable, "-m", "msseg_ros.cli.main", *args]
    print("$ msseg " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"msseg {args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}")


def train_base(cell: str, steps: int, out: Path, minutes: float = 0.0) -> Path:
    """The plain model both arms of ``cell`` start from (trained once, cached); ``minutes``
    (> 0) stops it early, at whatever step it reached."""
    spec = CELLS[cell]
    run = out / cell / "base"
    state = run / "state.json"
    done = json.loads(state.read_text())["step"] if state.is_file() else 0
    if done < steps:
        sets = [f"data.train={spec['train']}", "data.val=", f"out={run}", f"train.max_steps={steps}",
                f"train.seed={BASE_SEED}", "model.score_threshold=0.05", "train.epochs=1000",
                "train.adversarial.box=0", "train.adversarial.mask=0", f"train.max_minutes={minutes}"]
        resume = ["--resume"] if (run / "last.safetensors").is_file() else []
        _msseg("train", f"config/training/{spec['config']}_maskrcnn.yaml", *resume,
               *[a for s in sets for a in ("--set", s)])
    return run / "model.safetensors"


def run_one(cell: str, arm: str, seed: int, steps: int, out: Path, init: str | None,
            device: str = "cpu") -> dict:
    """Train and evaluate one arm; returns its eval summary (cached in metrics.json)."""
    spec = CELLS[cell]
    run = out / cell / f"{arm}-s{seed}"
    metrics = run / "eval" / "metrics.json"
    if not metrics.is_file():
        config = f"config/training/{spec['config']}_maskrcnn{'_gan' if arm == 'gan' else ''}.yaml"
        sets = [f"data.train={spec['train']}", "data.val=", f"out={run}", f"train.max_steps={steps}",
                f"train.seed={seed}", "model.score_threshold=0.05", "train.epochs=100"]
        if arm == "plain":
            sets += ["train.adversarial.box=0", "train.adversarial.mask=0"]
        if init:
            sets.append(f"train.init={init}")
        _msseg("train", config, *[a for s in sets for a in ("--set", s)])
        _msseg("eval", str(run / "model.safetensors"), "--data", spec["test"], "--score-threshold", "0.5",
               "--device", device, "--out", str(run / "eval"))
    summary = json.loads(metrics.read_text())["summary"]
    state = json.loads((run / "state.json").read_text())
    minutes = state["history"][-1]["minutes"] if state["history"] else None
    return {**{k: summary.get(k) for k in METRICS}, "train_minutes": minutes, "steps": state["step"]}


def _mean_std(values: list) -> tuple[float, float] | None:
    v = [x for x in values if x is not None]
    return (float(np.mean(v)), float(np.std(v))) if v else None


def table(results: dict, cells: list[str], seeds: list[int], steps: int) -> str:
    names = ("mask AP", "AP50", "AP75", "AP small", "AP medium", "AP large", "box AP", "boundary F (2 px)")
    lines = [f"| cell | arm | {' | '.join(names)} |", "|---" * (len(names) + 2) + "|"]
    for cell in cells:
        for arm in ("plain", "gan"):
            runs = [results[cell][arm][str(s)] for s in seeds]
            cols = []
            for key in METRICS:
                ms = _mean_std([r[key] for r in runs])
                cols.append("n/a" if ms is None else f"{ms[0]:.3f} ± {ms[1]:.3f}")
            lines.append(f"| {cell} | {arm} | {' | '.join(cols)} |")
    lines.append(f"\n{len(seeds)} seeds ({', '.join(map(str, seeds))}), {steps} steps of batch 4 per run.")
    return "\n".join(lines)


def masks_figure(cell: str, out: Path, seed: int, frames: int = 3) -> Path:
    """Both arms' masks (score >= 0.5) on the first ``frames`` test frames, beside the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from msseg_ros.core.learning.data import CocoFrames
    from msseg_ros.core.segmentation.base import Instances
    from msseg_ros.core.segmentation.loading import load_segmenter
    from msseg_ros.core.segmentation.overlay import render_overlay

    ds = CocoFrames(ROOT / CELLS[cell]["test"])
    models = {arm: load_segmenter(str(out / cell / f"{arm}-s{seed}" / "model.safetensors"),
                                  overrides={"score_threshold": 0.5}) for arm in ("plain", "gan")}
    fig, axes = plt.subplots(frames, 3, figsize=(9, 3 * frames), squeeze=False)
    for row in range(frames):
        frame, tgt = ds[row]
        truth = np.zeros(frame.shape[:2], np.uint16)
        for k, m in enumerate(tgt["masks"], start=1):
            truth[m] = k
        panels = [("ground truth", Instances.from_labels(truth, tgt["labels"], np.ones(len(tgt["labels"]))))]
        panels += [(arm, models[arm](frame)) for arm in ("plain", "gan")]
        for col, (title, inst) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(render_overlay(frame, inst, ds.class_names))
            ax.set_title(f"{title}: {len(inst)} objects", fontsize=9)
            ax.axis("off")
    fig.suptitle(f"{cell}: plain vs adversarial Mask R-CNN (seed {seed}, score >= 0.5)")
    fig.tight_layout()
    path = out / f"{cell}_masks.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["line", "bins"], choices=sorted(CELLS))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--base-steps", type=int, default=340, help="steps of the bins base model (5 epochs)")
    ap.add_argument("--base-minutes", type=float, default=0.0,
                    help="also stop the bins base after this many minutes (0: no limit)")
    ap.add_argument("--base-only", action="store_true", help="train the bins base, then stop")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--device", default="cpu", help="msseg eval's device: cpu, cuda or auto")
    ap.add_argument("--out", default="runs/gan_comparison")
    add_json_argument(ap)
    args = ap.parse_args()
    out = ROOT / args.out
    for cell in args.cells:
        for path in (CELLS[cell]["train"], CELLS[cell]["test"]):
            if not (ROOT / path).is_file():
                raise SystemExit(f"{path} is missing; make it with the commands in this script's docstring")
    results: dict = {}
    ratios: dict[str, float] = {}
    for cell in args.cells:
        results[cell] = {"plain": {}, "gan": {}}
        init = CELLS[cell]["init"]
        if init == "base":
            init = str(train_base(cell, args.base_steps, out, args.base_minutes))
            if args.base_only:
                print(f"{cell}: base {init}")
                continue
        elif args.base_only:
            continue
        for seed in args.seeds:  # seeds outermost: a stopped run leaves whole pairs
            for arm in ("plain", "gan"):
                results[cell][arm][str(seed)] = run_one(cell, arm, seed, args.steps, out, init, args.device)
        gain = [results[cell]["gan"][str(s)]["segm_AP"] - results[cell]["plain"][str(s)]["segm_AP"]
                for s in args.seeds]
        ratios[f"{cell}_mask_ap_gain"] = float(np.mean(gain))
        print(f"{cell}: figure {masks_figure(cell, out, args.seeds[0])}")
    if args.base_only:
        return
    text = table(results, args.cells, args.seeds, args.steps)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(text)
    emit("gan_comparison", ratios, {"results": results, "steps": args.steps, "seeds": args.seeds}, args.json)


if __name__ == "__main__":
    main()
