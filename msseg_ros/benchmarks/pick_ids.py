"""Pick ids per object: the line's overlapping frames through a model and the grasp selector, offline.

    python msseg_ros/benchmarks/pick_ids.py [--minutes 10] [--models maskrcnn,classic] [--cases PATH]
                                            [--set KEY=VALUE ...]

Not run by `msseg bench` without its name. What `msseg run` does for the sorting line,
minus ROS and the robots, on the cell's own parameters (config/sorting_line.yaml: its
world, its line scanner's frames and overlap, its grasp selector's filters and
geometry): the sim world is rendered frame by frame (``frame_lines`` lines, each frame
overlapping the last by ``overlap_lines``), each shipped line model segments every frame
at its operating threshold, and :func:`line_candidates` turns the detections into
candidates with one :class:`PickIdTracker` across the frames. Each candidate's pick pixel
is looked up in the frame's ground truth.

Unlike a run of the graph this sees every frame (no frame is skipped under load) and
every candidate, not only the ones a robot reached, so it counts the tracker's mistakes
that could become double picks, not just those that did:

* ``objects_with_two_ids``: objects whose pick pixels carried two or more pick ids, each
  at least once in a sorted class (the bridge would pick each id once: a double pick if
  both reach a robot);
* ``ids_on_two_objects``: pick ids whose pick pixels fell on two objects (the second
  object is never picked under it);
* ``off_object_candidates``: candidates whose pick pixel is on the belt;
* ``sorting_by_min_score``: purity and recovery if only candidates scoring at least a
  ``min_score`` (the grasp selector's parameter) were sorted, each pick id by the class
  it was first seen with and every target reached (:func:`sorting_curve`): what raising
  the grasp selector's ``min_score`` trades.

``--cases PATH`` writes each object with two ids (frames, ids, classes, footprints) as
JSON, to see why the tracker did not join them. ``--set`` overrides model config keys of
every model listed (as `msseg eval --set` does), to try a post-processing setting.

Ratios: ``{model}_objects_with_two_ids_per_1000_objects`` (target 0).
"""
from __future__ import annotations

import argparse
import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msseg_ros.bench import add_json_argument, emit
from msseg_ros.cli.common import parse_key_values
from msseg_ros.core.grasping.select import (
    Filters,
    LineGeometry,
    PickIdTracker,
    line_candidates,
)
from msseg_ros.core.params.files import node_parameters
from msseg_ros.core.paths import packaged
from msseg_ros.core.segmentation.base import operating_threshold
from msseg_ros.core.segmentation.loading import load_segmenter, shipped_models
from msseg_ros.core.segmentation.overlay import filter_score
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld


@dataclass(frozen=True)
class LineSetup:
    """What the benchmark takes from the cell's parameter file: the line scanner's and
    the grasp selector's parameters as those nodes would start with them."""

    world: SortingLineWorld
    frame_lines: int
    overlap_lines: int
    line_pitch: float  # m of belt travel per line
    design_speed: float  # m/s
    geometry: LineGeometry
    filters: Filters

    @classmethod
    def from_file(cls, params_file: Path) -> LineSetup:
        scan = node_parameters(params_file, "line_scanner")
        sel = node_parameters(params_file, "grasp_selector")
        world = SortingLineWorld(SortingLineConfig.from_world(scan.world, scan.line_pitch))
        return cls(world, scan.frame_lines, scan.overlap_lines, scan.line_pitch, scan.world.design_speed,
                   LineGeometry.from_params(sel.line), Filters.from_params(sel))


def track(model: str, frames: int, setup: LineSetup,
          overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Figures and the two-id cases of one shipped line model over ``frames`` frames."""
    from tqdm import tqdm

    world, frame_lines, overlap, pitch = setup.world, setup.frame_lines, setup.overlap_lines, setup.line_pitch
    geo, filters = setup.geometry, setup.filters
    seg = load_segmenter(f"sorting_line_{model}", overrides=overrides or None)
    threshold = operating_threshold(seg.config)
    tracker, counters = PickIdTracker(geo.match_radius), collections.Counter()
    ids_of: dict[int, set[int]] = collections.defaultdict(set)  # object id -> pick ids on it
    objects_of: dict[int, set[int]] = collections.defaultdict(set)  # pick id -> object ids
    sorted_ids: set[int] = set()  # pick ids seen at least once in a sorted class
    seen: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)  # object id -> observations
    truth: dict[int, str] = {}  # object id -> its class, for every object seen
    first_seen: dict[int, tuple[int, str, float]] = {}  # pick id -> (object id, predicted class, score)
    off_object = candidates = 0
    step = frame_lines - overlap
    for k in tqdm(range(frames), desc=model, unit="frame"):
        first = k * step
        frame = world.render(first, frame_lines)
        truth.update({o.id: o.cls for o in frame.objects})
        inst = filter_score(seg(frame.image), threshold)
        det = inst.to_table()
        cand = line_candidates(det, first * pitch, geo, filters, tracker, counters)
        for row in cand:
            d = det[det["instance"] == row["instance"]][0]
            owner = int(frame.labels[int(round(float(d["v"]))), int(round(float(d["u"])))])
            candidates += 1
            pid, cls = int(row["pick_id"]), int(row["class_id"])
            name = filters.classes[cls - 1] if 0 < cls <= len(filters.classes) else ""
            if name in filters.bins:
                sorted_ids.add(pid)
            if owner == 0:
                off_object += 1
                continue
            oid = frame.objects[owner - 1].id
            first_seen.setdefault(pid, (oid, name, float(row["score"])))
            ids_of[oid].add(pid)
            objects_of[pid].add(oid)
            seen[oid].append({"frame": k, "pick_id": pid, "class": name, "score": round(float(d["score"]), 3),
                              "box_px": [int(d["x0"]), int(d["y0"]), int(d["x1"]), int(d["y1"])],
                              "pick_px": [round(float(d["u"]), 1), round(float(d["v"]), 1)],
                              "area_px": int(d["area"])})
    two = sorted(o for o, ids in ids_of.items() if len(ids & sorted_ids) >= 2)
    cases = [{"object": o, "observations": seen[o]} for o in two]
    figures = {"frames": frames, "objects": len(truth), "objects_with_candidates": len(ids_of),
               "candidates": candidates, "objects_with_two_ids": len(two),
               "ids_on_two_objects": sum(1 for objs in objects_of.values() if len(objs) >= 2),
               "off_object_candidates": off_object, "operating_threshold": threshold,
               "selector_counters": dict(counters),
               "sorting_by_min_score": sorting_curve(first_seen, truth, filters.bins)}
    return figures, cases


def sorting_curve(first_seen: dict[int, tuple[int, str, float]], truth: dict[int, str],
                  bins: dict[str, int]) -> list[dict[str, float]]:
    """Purity and recovery if only candidates scoring at least ``min_score`` were sorted,
    each pick id by the class it was first seen with, every robot reaching every target
    (an upper bound of what the graph scores): purity = picks into the object's own bin /
    picks into bins; recovery = objects of sorted classes picked into their bin / those
    objects."""
    n_sorted = sum(1 for c in truth.values() if c in bins)
    out = []
    for t in (0.3, 0.5, 0.6, 0.65, 0.7, 0.72, 0.75, 0.8, 0.85, 0.9):
        picks = [(oid, truth[oid], pred) for oid, pred, score in first_seen.values() if score >= t and pred in bins]
        right = {oid for oid, cls, pred in picks if bins.get(cls) == bins[pred]}
        good = sum(1 for _, cls, pred in picks if bins.get(cls) == bins[pred])
        out.append({"min_score": t, "picks": len(picks), "purity": round(good / max(len(picks), 1), 4),
                    "recovery": round(len(right) / max(n_sorted, 1), 4)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="minutes of belt at the design speed")
    ap.add_argument("--models", default="maskrcnn,classic")
    ap.add_argument("--cases", default=None, metavar="PATH", help="write the objects with two ids as JSON")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a model config key (YAML value), for every model listed")
    add_json_argument(ap)
    args = ap.parse_args()
    overrides = parse_key_values(args.set)
    setup = LineSetup.from_file(packaged(Path("config/sorting_line.yaml")))
    metres = args.minutes * 60 * setup.design_speed
    frames = int(np.ceil(metres / ((setup.frame_lines - setup.overlap_lines) * setup.line_pitch)))
    ratios: dict[str, float] = {}
    figures: dict[str, Any] = {"minutes": args.minutes, "frames": frames, "overrides": overrides}
    all_cases: dict[str, Any] = {}
    for model in args.models.split(","):
        if f"sorting_line_{model}" not in shipped_models():
            print(f"{model}: no shipped sorting-line model, skipped")
            continue
        fig, cases = track(model, frames, setup, overrides)
        figures[model], all_cases[model] = fig, cases
        ratios[f"{model}_objects_with_two_ids_per_1000_objects"] = 1000.0 * fig["objects_with_two_ids"] / max(
            fig["objects"], 1)
        print(f"{model}: {fig['objects']} objects, {fig['objects_with_candidates']} with candidates, "
              f"{fig['objects_with_two_ids']} with two pick ids, {fig['ids_on_two_objects']} ids on two objects, "
              f"{fig['off_object_candidates']} of {fig['candidates']} candidates off every object", flush=True)
        for point in fig["sorting_by_min_score"]:
            print(f"    min_score {point['min_score']:.2f}: {point['picks']} picks, purity {point['purity']:.3f}, "
                  f"recovery {point['recovery']:.3f}")
    if args.cases:
        Path(args.cases).write_text(json.dumps(all_cases, indent=1) + "\n")
    emit("pick_ids", ratios, figures, args.json)


if __name__ == "__main__":
    main()
