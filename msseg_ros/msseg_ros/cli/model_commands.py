"""``msseg sim-data``, ``msseg train``, ``msseg eval``, ``msseg quantize``,
``msseg fit-class-head`` and ``msseg models``: data and models.

Nothing here knows a model type: each type's class (the plugin contract in
``core.segmentation.base``) answers for itself."""
from __future__ import annotations

import argparse
import json
from typing import Any

from msseg_ros.cli.common import CliParser, UsageError, parse_key_values
from msseg_ros.core.sim import WORLDS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("sim-data", help="write a synthetic dataset (COCO, RLE masks)")
    data.add_argument("cell", choices=WORLDS, help="the world to render: a cell's, or tabletop scenes "
                      "(pretraining for few-shot RGB models)")
    data.add_argument("--out", required=True, help="output folder (must be empty or new)")
    data.add_argument("--count", type=int, required=True, help="number of images")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                      help="world option (VALUE is YAML), e.g. pixel_size=0.001; repeatable")
    data.add_argument("--single-class", action="store_true",
                      help="one class per sorting-line image, as the seed's dataset")
    data.add_argument("--split", default="0.5,0.25,0.25", metavar="LS,VS,TS",
                      help="learning/validation/test fractions (default 0.5,0.25,0.25)")
    data.add_argument("--lines", type=int, default=250, help="sorting_line: lines per image")
    data.add_argument("--previews", type=int, default=4, help="PNG previews of the first images")
    data.add_argument("--force", action="store_true", help="write into a non-empty folder")
    data.add_argument("--workers", type=int, default=1,
                      help="render in this many processes (same files whatever the number)")
    data.set_defaults(func=cmd_sim_data)

    tr = sub.add_parser("train", help="train a model of any registered type (see `msseg models list`)")
    tr.add_argument("config", nargs="?", help="training config YAML (model/data/train/out)")
    tr.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config key, e.g. train.epochs=3; repeatable")
    tr.add_argument("--resume", action="store_true", help="continue the run in `out`")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a model on a COCO dataset")
    ev.add_argument("weights", help="checkpoint (.safetensors) or shipped model name")
    ev.add_argument("--data", required=True, help="COCO annotation file")
    ev.add_argument("--image-root", default=None, metavar="DIR",
                    help="the folder the images' file names are relative to (default: the dataset's own)")
    ev.add_argument("--out", default=None, help="folder for metrics.json and plots")
    ev.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    ev.add_argument("--score-threshold", default="0.75",
                    help="contingency table threshold (seed 000: 0.75), or `operating`: the model's "
                         "calibrated operating_threshold")
    ev.add_argument("--calibrate", action="store_true",
                    help="choose the operating threshold on this data (use the validation split): the "
                         "best F1, or the lowest threshold reaching --precision-target")
    ev.add_argument("--precision-target", type=float, default=None, metavar="P",
                    help="with --calibrate: the precision to reach (seed 000 Table 8.5 gives 0.70-0.93)")
    ev.add_argument("--write", action="store_true",
                    help="with --calibrate: store the threshold in the checkpoint as operating_threshold")
    ev.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    ev.add_argument("--runtime", default="torch",
                    help="inference runtime: torch, onnxruntime, openvino, openvino_bf16 (CPUs with bf16) or "
                         "onnxruntime_int8 (after `msseg quantize`)")
    ev.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override at load time (e.g. score_threshold=0.3)")
    ev.set_defaults(func=cmd_eval)

    qz = sub.add_parser("quantize", help="post-training int8 of a torch model for runtime onnxruntime_int8, "
                                         "calibrated on a COCO dataset's frames")
    qz.add_argument("weights", help="checkpoint (.safetensors) or shipped model name")
    qz.add_argument("--data", required=True, help="COCO annotation file of frames like the cell's (not the test split)")
    qz.add_argument("--image-root", default=None, metavar="DIR")
    qz.add_argument("--frames", type=int, default=16, help="calibration frames, the dataset's first (default 16)")
    qz.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override, as the model will run (e.g. score_threshold=0.05)")
    qz.set_defaults(func=cmd_quantize)

    ch = sub.add_parser("fit-class-head", help="fit a second-stage class head (each instance's class from its "
                                               "mask's pooled channels) on a COCO dataset's ground truth, "
                                               "stored in a copy of the checkpoint")
    ch.add_argument("weights", help="checkpoint (.safetensors) or shipped model name")
    ch.add_argument("--data", required=True, help="COCO annotation file to fit on (a training split, never the test)")
    ch.add_argument("--val", default=None, help="COCO annotation file: report the head's accuracy on its instances")
    ch.add_argument("--image-root", default=None, metavar="DIR")
    ch.add_argument("--out", required=True, help="the checkpoint to write (the model's tensors and the head)")
    ch.add_argument("--spectral-channels", default="", metavar="A-B|I,J,...",
                    help="channels whose spectral shape (centred log means) is a feature, e.g. 3-10 "
                         "(the line's VNIR bands); default none")
    ch.add_argument("--dual-energy", default="auto", metavar="auto|off|LOW,HIGH",
                    help="the X-ray ratio feature: auto (the model config's dual_energy_ratio block, off "
                         "without one), off, or the low and high energy channels, e.g. 1,2")
    ch.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="fit option: rounds, num_leaves, learning_rate, seed")
    ch.set_defaults(func=cmd_fit_class_head)

    ld = sub.add_parser("label-depth", help="instance masks for RGB-D photos of objects on a table (COCO), "
                                            "a first draft to check by eye and mend")
    ld.add_argument("rgb", nargs="+", help="RGB images (PNG/JPEG), one folder; their depth images are found "
                                           "by --depth-name")
    ld.add_argument("--depth-name", default="_rgb:_depth", metavar="A:B",
                    help="the depth image's name: the RGB's with A replaced by B (default _rgb:_depth); "
                         "16-bit PNG, mm")
    ld.add_argument("--intrinsics", required=True,
                    help="fx,fy,cx,cy (px), a camera_info YAML, or a JSON with fx, fy, cx, cy")
    ld.add_argument("--out", required=True, help="output folder: annotations/{all,train,test}.json, overlays/")
    ld.add_argument("--edits", default=None, help="YAML: RGB file name -> hand edits (drop, merge, cut, hull, "
                                                  "boxes; see docs/datasets.md)")
    ld.add_argument("--test", default="", help="comma-separated RGB file names held out as test.json")
    ld.add_argument("--min-height-mm", type=float, default=None, help="height above the table of an object")
    ld.add_argument("--edge-mm", type=float, default=None, help="depth jump between two objects, mm a pixel")
    ld.set_defaults(func=cmd_label_depth)

    models = sub.add_parser("models", help="list models, show their config and size")
    msub = models.add_subparsers(dest="models_command", metavar="list|info", parser_class=CliParser)
    msub.required = True
    msub.add_parser("list", help="registered model types and shipped checkpoints")
    info = msub.add_parser("info", help="a model's config and parameter counts")
    info.add_argument("name", help="a model type, a shipped model or a checkpoint path")
    info.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    info.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)


def cmd_label_depth(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import yaml

    from msseg_ros.core.geometry.camera import GeometryError
    from msseg_ros.core.learning.depth_labels import (
        DepthLabelError,
        DepthLabelOptions,
        read_intrinsics,
        write_dataset,
    )

    a, sep, b = args.depth_name.partition(":")
    if not sep or not a:
        raise UsageError(f"--depth-name {args.depth_name!r}: give A:B (the RGB name's A becomes B)")
    pairs = []
    for rgb in args.rgb:
        name = Path(rgb).name
        if a not in name:
            raise UsageError(f"{rgb}: its name has no {a!r} to make the depth image's name from (--depth-name)")
        depth = Path(rgb).with_name(name.replace(a, b, 1))
        if not Path(rgb).is_file() or not depth.is_file():
            raise UsageError(f"{rgb if not Path(rgb).is_file() else depth}: no such file")
        pairs.append((str(rgb), str(depth)))
    edits: dict[str, Any] = {}
    if args.edits:
        try:
            edits = yaml.safe_load(Path(args.edits).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--edits {args.edits!r}: {' '.join(str(exc).split())}") from None
        if not isinstance(edits, dict):
            raise UsageError(f"--edits {args.edits!r}: a mapping of image names to edits")
    given = {k: v for k, v in (("min_height_mm", args.min_height_mm), ("edge_mm", args.edge_mm)) if v is not None}
    options = dataclasses.replace(DepthLabelOptions(), **given)
    try:
        summary = write_dataset(pairs, read_intrinsics(args.intrinsics), args.out, edits,
                                [t for t in args.test.split(",") if t], options)
    except (DepthLabelError, GeometryError) as exc:  # bad files, intrinsics or edits
        raise UsageError(str(exc)) from None
    print(f"label-depth: {summary['instances']} instances in {summary['images']} images "
          f"({', '.join(f'{k}: {v}' for k, v in summary['per_image'].items())}); hand-edited: "
          f"{len(summary['edited'])}")
    print(f"check every mask by eye: {args.out}/overlays/ (numbers are the labels edits refer to); train with "
          f"data.train={args.out}/annotations/train.json data.image_root={summary['image_root']}")
    return 0


def cmd_sim_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from msseg_ros.core.sim.dataset import base_config, generate, parse_split

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UsageError(f"--out {str(out)!r} is not empty; use --force to write into it")
    if args.count < 1:
        raise UsageError(f"--count must be >= 1, got {args.count}")
    if args.lines < 8:
        raise UsageError(f"--lines must be >= 8, got {args.lines}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    split = parse_split(args.split)
    overrides = parse_key_values(args.sets)
    base_config(args.cell, overrides)  # refuse a bad option before writing anything
    with tqdm(total=args.count, desc=f"sim-data {args.cell}", unit="img") as bar:
        summary = generate(args.cell, out, args.count, args.seed, overrides,
                           single_class=args.single_class, split=split, lines=args.lines,
                           previews=args.previews, progress=bar.update, workers=args.workers)
    console = Console()
    counts = summary["instances_per_class"]
    t = Table(title=f"{args.cell}: {args.count} images in {out}")
    t.add_column("class")
    for s in counts:
        t.add_column(f"{s} ({summary['images_per_split'][s]} img)", justify="right")
    for cls in next(iter(counts.values())):
        t.add_row(cls, *(str(counts[s][cls]) for s in counts))
    console.print(t)
    c = Table(title="per-channel statistics (all images)")
    c.add_column("channel")
    c.add_column("mean", justify="right")
    c.add_column("std", justify="right")
    for name, m, sd in zip(summary["channels"], summary["channel_mean"], summary["channel_std"],
                           strict=True):
        c.add_row(name, f"{m:.4g}", f"{sd:.4g}")
    console.print(c)
    console.print(f"summary: {out / 'summary.json'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from msseg_ros.core.learning.train import load_train_config, train

    cfg = load_train_config(args.config, parse_key_values(args.sets))
    state = train(cfg, resume=args.resume, log=lambda m: print(m, flush=True))
    print(f"model: {cfg.out}/model.safetensors ({state['step']} steps)")
    return 0


def _print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    s = metrics["summary"]
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in s.items():
        t.add_row(k, "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
    c = Table(title=f"per class (score >= {s['score_threshold']}, mask IoU >= 0.5)")
    for col in ("class", "ground truth", "precision", "recall"):
        c.add_column(col, justify="right" if col != "class" else "left")
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f} %"

    for name, r in metrics["per_class"].items():
        c.add_row(name, str(r["ground_truth"]), fmt(r["precision"]), fmt(r["recall"]))
    con = Console()
    con.print(t)
    con.print(c)


def _threshold_argument(value: str, seg) -> float:
    from msseg_ros.core.segmentation.base import ModelConfigError, operating_threshold

    if value == "operating":
        try:
            return operating_threshold(seg.config)
        except ModelConfigError as exc:
            raise UsageError(str(exc)) from None
    try:
        t = float(value)
    except ValueError:
        raise UsageError(f"--score-threshold must be a number in [0, 1] or `operating`, got {value!r}") from None
    if not 0 <= t <= 1:
        raise UsageError(f"--score-threshold must be in [0, 1], got {value}")
    return t


def _print_calibration(cal: dict, chosen: dict, how: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"score threshold sweep (mask IoU >= 0.5, right class); chosen: {how}")
    for col in ("threshold", "precision", "recall", "F1", "accuracy", "missed"):
        t.add_column(col, justify="right")
    for row in cal["sweep"]:
        mark = " *" if row["threshold"] == chosen["threshold"] else ""
        t.add_row(f"{row['threshold']:.2f}{mark}", f"{100 * row['precision']:.1f} %", f"{100 * row['recall']:.1f} %",
                  f"{row['f1']:.3f}", f"{100 * row['accuracy']:.1f} %", f"{row['missed_pct']:.1f} %")
    Console().print(t)


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from msseg_ros.core.learning.data import CocoFrames, DatasetError
    from msseg_ros.core.learning.evaluate import choose_threshold, evaluate, save_plots
    from msseg_ros.core.segmentation.checkpoint import set_config_keys
    from msseg_ros.core.segmentation.loading import load_segmenter, resolve_weights

    if args.precision_target is not None and not 0 < args.precision_target <= 1:
        raise UsageError(f"--precision-target must be in (0, 1], got {args.precision_target}")
    if (args.write or args.precision_target is not None) and not args.calibrate:
        raise UsageError("--write and --precision-target go with --calibrate")
    try:
        ds = CocoFrames(args.data, args.image_root)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    seg = load_segmenter(args.weights, device=args.device, overrides=parse_key_values(args.sets),
                         runtime=args.runtime)
    threshold = _threshold_argument(args.score_threshold, seg)
    if len(seg.classes) != len(ds.class_names):
        raise UsageError(f"the model has {len(seg.classes)} classes but the dataset {len(ds.class_names)}")
    metrics = evaluate(seg, ds, limit=args.limit or None, score_threshold=threshold, progress=True)
    metrics["model"] = {"weights": args.weights, "config": seg.config, "runtime": seg.runtime}
    _print_metrics(metrics, f"{args.weights} on {args.data}")
    if args.calibrate:
        cal = metrics["calibration"]
        chosen = choose_threshold(cal["sweep"], args.precision_target)
        how = ("best F1" if args.precision_target is None
               else f"lowest threshold with precision >= {args.precision_target:g}")
        cal["chosen"] = {**chosen, "rule": how}
        _print_calibration(cal, chosen, how)
        print(f"operating threshold: {chosen['threshold']:.2f} ({how}; precision {100 * chosen['precision']:.1f} %, "
              f"recall {100 * chosen['recall']:.1f} %, missed {chosen['missed_pct']:.1f} %)")
        if args.write:
            path = set_config_keys(resolve_weights(args.weights), {"operating_threshold": chosen["threshold"]})
            print(f"written: operating_threshold {chosen['threshold']:.2f} in {path}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        for p in save_plots(metrics, out):
            print(f"plot: {p}")
        print(f"metrics: {out / 'metrics.json'}")
    return 0


def _channel_list(text: str, channels: int) -> list[int]:
    """``3-10`` or ``3,4,5`` -> [3, ...]; checked against ``channels``."""
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            a, _, b = part.partition("-")
            out.extend(range(int(a), int(b or a) + 1))
    except ValueError:
        raise UsageError(f"--spectral-channels must look like 3-10 or 3,4,5; got {text!r}") from None
    bad = [c for c in out if not 0 <= c < channels]
    if bad:
        raise UsageError(f"--spectral-channels {bad} outside the model's channels 0..{channels - 1}")
    return out


def _dual_energy(text: str, config: dict[str, Any], channels: int) -> dict[str, Any] | None:
    """``--dual-energy``: auto, off or LOW,HIGH -> a validated dual_energy_ratio block or None."""
    from msseg_ros.core.segmentation.base import ModelConfigError
    from msseg_ros.core.segmentation.inputs import validate_dual_energy

    if text == "auto":
        return config.get("dual_energy_ratio")
    if text == "off":
        return None
    try:
        low, high = (int(c) for c in text.split(","))
        return validate_dual_energy({"low": low, "high": high}, channels)
    except ValueError as exc:
        reason = exc if isinstance(exc, ModelConfigError) else "give auto, off or two channel indices"
        raise UsageError(f"--dual-energy {text!r}: {reason}") from None


def cmd_fit_class_head(args: argparse.Namespace) -> int:
    from collections.abc import Iterator

    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from msseg_ros.core.learning.data import CocoFrames, DatasetError
    from msseg_ros.core.segmentation.checkpoint import load_checkpoint, save_checkpoint
    from msseg_ros.core.segmentation.class_head import (
        TENSOR,
        fit_class_head,
        ground_truth_features,
        split_arrays,
    )
    from msseg_ros.core.segmentation.loading import load_segmenter, resolve_weights

    try:
        train = CocoFrames(args.data, args.image_root)
        val = CocoFrames(args.val, args.image_root) if args.val else None
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    seg = load_segmenter(args.weights, overrides={"class_head": None})
    if train.class_names != seg.classes:
        raise UsageError(f"the dataset's classes {train.class_names} are not the model's {seg.classes}")
    spectral = _channel_list(args.spectral_channels, seg.in_channels)
    dual = _dual_energy(args.dual_energy, seg.config, seg.in_channels)

    def features(ds: CocoFrames, what: str) -> tuple[np.ndarray, np.ndarray]:
        def samples() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for i in tqdm(range(len(ds)), desc=what, unit="img", leave=False):
                frame, target = ds[i]
                yield seg.check_frame(frame)[0], target["masks"], target["labels"]
        return ground_truth_features(samples(), spectral, dual)

    X, y = features(train, "features")
    options = parse_key_values(args.sets)
    print(f"fitting the class head on {len(y)} instances of {len(train)} frames, {X.shape[1]} features")
    head = fit_class_head(X, y, len(seg.classes), seg.in_channels, spectral, dual, options)
    if val is not None:
        Xv, yv = features(val, "validation")
        pred = head.probabilities(Xv).argmax(axis=1) + 1
        t = Table(title=f"class head on {len(yv)} ground-truth instances of {args.val}: accuracy "
                        f"{100 * float((pred == yv).mean()):.1f} %")
        for col in ("class", "instances", "precision", "recall"):
            t.add_column(col, justify="right")
        for k, name in enumerate(seg.classes, start=1):
            called = int((pred == k).sum())
            right = int(((pred == k) & (yv == k)).sum())
            t.add_row(name, str(int((yv == k).sum())), f"{100 * right / called:.1f} %" if called else "-",
                      f"{100 * right / max(int((yv == k).sum()), 1):.1f} %")
        Console().print(t)
    arrays, config = load_checkpoint(resolve_weights(args.weights))
    arrays = {**split_arrays(arrays)[0], **head.to_arrays()}
    path = save_checkpoint(args.out, arrays, {**config, "class_head": head.settings})
    print(f"written: {path} (class head {arrays[TENSOR].nbytes / 1e6:.2f} MB); "
          f"compare: msseg eval {path} --data TEST.json --set class_head=null")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from msseg_ros.core.learning.data import CocoFrames, DatasetError
    from msseg_ros.core.segmentation.loading import load_segmenter, resolve_weights
    from msseg_ros.core.segmentation.runtimes import engine_cache_dir
    from msseg_ros.core.segmentation.torch_base import TorchSegmenter

    if args.frames < 1:
        raise UsageError(f"--frames must be >= 1, got {args.frames}")
    try:
        ds = CocoFrames(args.data, args.image_root)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    seg = load_segmenter(args.weights, overrides=parse_key_values(args.sets))
    if not isinstance(seg, TorchSegmenter):
        raise UsageError(f"{args.weights}: a {seg.type_name!r} model has no exported forward pass to quantise")
    n = min(args.frames, len(ds))
    path = seg.quantize_int8((ds[i][0] for i in range(n)), engine_cache_dir(resolve_weights(args.weights)))
    print(f"int8 model calibrated on {n} frames of {args.data}: {path}")
    print(f"check it: msseg eval {args.weights} --data TEST.json --runtime onnxruntime_int8 (and --runtime torch)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from msseg_ros.core.segmentation.base import SEGMENTERS
    from msseg_ros.core.segmentation.loading import load_segmenter, shipped_models

    if args.models_command == "list":
        print("model types: " + ", ".join(SEGMENTERS.names()))
        shipped = shipped_models()
        print("shipped models: " + (", ".join(shipped) if shipped else "none"))
        return 0
    sets = parse_key_values(args.sets)
    sets = {k: list(v) if isinstance(v, tuple) else v for k, v in sets.items()}
    if args.name in SEGMENTERS:  # a type: its defaults, no weights
        cls = SEGMENTERS.get(args.name)
        cfg = cls.validate_config({**cls.default_config, **sets})
        counts = cls.parameter_counts_for(cfg)
    else:
        seg = load_segmenter(args.name, overrides=sets)
        cfg, counts = seg.config, seg.parameter_counts()
    if args.json:
        print(json.dumps({"name": args.name, "config": cfg, "parameters": {"total": counts[0], "trainable": counts[1]}},
                         indent=1))
        return 0
    print(f"{args.name}: {cfg['type']}, {counts[0]:,} parameters ({counts[1]:,} trainable)")
    for k, v in cfg.items():
        print(f"  {k}: {v}")
    return 0
