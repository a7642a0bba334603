"""Few-shot real: a model pretrained on synthetic bin piles, fine-tuned on a few real photos.

    python msseg_ros/benchmarks/few_shot.py [--minutes 15] [--seed 0] [--out runs/few_shot]

Not run by `msseg bench` without its name. Data: the 9 real RGB-D tabletop photos in
../shared/data/tabletop_rgbd, labelled from their depth and mended by hand
(`msseg label-depth` with config/datasets/tabletop_rgbd_edits.yaml; docs/datasets.md);
photos 2, 6 and 8 (31 objects) are the test split, the other six (44 objects) train.

Arms, each one `msseg train` (bicameral F25, 256 x 256 crops, batch 4, the same budget of
``--minutes`` CPU minutes, seed ``--seed``) and one `msseg eval` on the real test photos
(mask AP over all scores; α = β = 0.3, the shipped bin model's setting):

* ``zero_shot``: the shipped ``bin_picking_bicameral`` (trained on generated piles only);
* ``scratch``: the same network from random weights, on the six real photos;
* ``fine_tuned``: from ``bin_picking_bicameral`` (``train.init``), on the six real photos.

A rerun skips the arms whose metrics exist. Writes OUT/results.json and OUT/table.md.
Ratios: ``fine_tuned_minus_scratch_mask_ap``, ``fine_tuned_minus_zero_shot_mask_ap``.
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
METRICS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "mask_boundary_F")


def _msseg(*args: str) -> None:
    cmd = [sys.executable, "-m", "msseg_ros.cli.main", *args]
    print("$ msseg " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"few_shot: `msseg {args[0]}` failed (exit {done.returncode})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    arms = {"zero_shot": None, "scratch": [], "fine_tuned": ["--set", "train.init=config/models/bin_picking_bicameral.safetensors"]}
    results = {}
    for arm, extra in arms.items():
        metrics = out / arm / "eval" / "metrics.json"
        if not metrics.is_file():
            weights = "bin_picking_bicameral"
            if extra is not None:
                run = out / arm
                _msseg("train", "msseg_ros/config/training/tabletop_bicameral_f25.yaml",
                       "--set", f"data.train={data / 'annotations' / 'train.json'}", "--set", f"data.image_root={images}",
                       "--set", f"train.max_minutes={args.minutes}", "--set", f"train.seed={args.seed}",
                       "--set", f"out={run}", *extra)
                weights = str(run / "model.safetensors")
            _msseg("eval", weights, "--data", test, "--image-root", images, "--score-threshold", "0.5",
                   "--set", "alpha=0.3", "--set", "beta=0.3", "--out", str(out / arm / "eval"))
        summary = json.loads(metrics.read_text())["summary"]
        results[arm] = {k: summary.get(k) for k in METRICS}
    lines = ["| arm | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for arm, r in results.items():
        lines.append(f"| {arm} | " + " | ".join("n/a" if r[k] is None else f"{r[k]:.3f}" for k in METRICS) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    ap_of = {arm: r["segm_AP"] or 0.0 for arm, r in results.items()}
    emit("few_shot", {"fine_tuned_minus_scratch_mask_ap": ap_of["fine_tuned"] - ap_of["scratch"],
                      "fine_tuned_minus_zero_shot_mask_ap": ap_of["fine_tuned"] - ap_of["zero_shot"]},
         {"minutes": args.minutes, "seed": args.seed, "test_images": list(TEST), "results": results}, args.json)


if __name__ == "__main__":
    main()
