"""Grasp selection: detections (pixel tables) -> candidates (world tables, best first).

Line cell (frame ``world``: x along the belt travel, z up):
    pixel row i, column j of a frame stamped at row 0's acquisition, when the belt travel
    was p0, is at ``x = scanner_x - i * line_pitch``,
    ``y = belt_y_offset + (j + 0.5) * pixel_size``, ``z = pick_z``; its belt coordinate
    (the travel at which it passed the scanner) is ``b = p0 + i * line_pitch``.
    Candidates are valid as of the frame's stamp with ``belt_position = p0``; at travel p
    the object is at ``x + (p - p0)``.
    Overlapping frames: an instance touching a frame's last row is still being scanned
    and is deferred; one touching row 0 was complete in the previous frame (when
    ``overlap_lines`` >= the longest object) and is skipped; both are counted. The same
    object seen complete in two frames keeps its pick_id, whatever the class (a model may
    classify one object differently in two frames, and it is still one object, to be
    picked once). Two detections are one object when their footprints on the belt (the
    boxes in belt coordinates b, y) overlap by at least ``FOOTPRINT_IOU`` of their union,
    or their pick points are within ``match_radius``: a weak model's masks of one object
    differ between frames (a part missing, a pick point centimetres away), yet cover
    mostly the same belt area, while two touching objects share little of it.

Pick points are the detections' ``u``, ``v``: a pixel on the instance's own mask, its
centroid where that lies well inside it (``Instances.pick_points``).

Camera cell: the pick pixel is undistorted, its ray taken into ``world`` by the
camera pose and intersected with the work plane; rays parallel to the plane or meeting
it behind the camera are rejected and counted.

Ranking: by affordance when the model gives one (bicameral), else by score times the
class priority; classes not in ``classes_to_bins`` come last (the bridge skips them).
With a depth image (camera cell): instances something lies on come after the others,
and the key gains the weighted pick height (core.grasping.depth).
"""
from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msseg_ros.core import tables
from msseg_ros.core.errors import ConfigError
from msseg_ros.core.geometry.camera import CameraModel, Plane, Pose, pixels_to_plane
from msseg_ros.core.grasping.depth import DepthEvidence, DepthRanking, below_floor
from msseg_ros.core.params.nodes import GRASP_SELECTOR as _SCHEMA

#: a frame's depth evidence and the ranking that uses it
DepthOrder = tuple[DepthRanking, DepthEvidence]


def parse_bins(entries: list[str]) -> dict[str, int]:
    """``["copper=1", "zamak=2"]`` -> {"copper": 1, "zamak": 2}."""
    out = {}
    for e in entries:
        name, sep, b = e.partition("=")
        if not sep or not name.strip() or not b.strip().isdigit():
            raise ConfigError(f"classes_to_bins entry {e!r}: expected CLASS=BIN (BIN a whole number)")
        out[name.strip()] = int(b)
    return out


def parse_weights(entries: list[str]) -> dict[str, float]:
    """``["brass=2"]`` -> {"brass": 2.0}."""
    out = {}
    for e in entries:
        name, sep, w = e.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise ConfigError(f"class_priority entry {e!r}: expected CLASS=WEIGHT") from None
        if not sep:
            raise ConfigError(f"class_priority entry {e!r}: expected CLASS=WEIGHT")
    return out


@dataclass
class Filters:
    min_area_px: int = 0
    min_score: float = 0.0
    classes: list[str] = field(default_factory=list)
    bins: dict[str, int] = field(default_factory=dict)
    priority: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_params(cls, p: Any) -> Filters:
        """From the grasp selector's parameters (``min_area_px``, ``min_score``,
        ``classes``, ``classes_to_bins``, ``class_priority``)."""
        return cls(p.min_area_px, p.min_score, list(p.classes), parse_bins(list(p.classes_to_bins)),
                   parse_weights(list(p.class_priority)))


def _rank(det: np.ndarray, f: Filters, depth: DepthOrder | None = None) -> np.ndarray:
    """Order of rows, best first."""
    if len(det) == 0:
        return np.zeros(0, np.int64)
    names = [f.classes[c - 1] if 0 < c <= len(f.classes) else "" for c in det["class_id"]]
    sorted_cls = np.array([(n in f.bins) if f.bins else True for n in names])
    aff = det["affordance"].astype(np.float64)
    if np.isfinite(aff).any():
        key = np.where(np.isfinite(aff), aff, -np.inf)
    else:
        key = det["score"] * np.array([f.priority.get(n, 1.0) for n in names])
    if depth is None:
        return np.lexsort((-key, ~sorted_cls))
    ranking, evidence = depth
    covered, height = evidence.for_rows(det["instance"])
    key = key + ranking.height_weight * np.nan_to_num(height, nan=0.0)
    return np.lexsort((-key, covered > ranking.max_covered, ~sorted_cls))


def _filter(det: np.ndarray, f: Filters, counters: collections.Counter[Any]) -> np.ndarray:
    keep = (det["area"] >= f.min_area_px) & (det["score"] >= f.min_score)
    counters["filtered_small_or_low_score"] += int((~keep).sum())
    return det[keep]


def ranked(det: np.ndarray, f: Filters, counters: collections.Counter[Any] | None = None,
           depth: DepthOrder | None = None) -> np.ndarray:
    """The detections (``tables.DETECTIONS`` rows, pixels) the grasp selector keeps, best
    pick first: what a camera cell's candidates are made of, in their order. With
    ``depth`` (the frame's depth evidence and how to use it): candidates on the floor dropped
    (``depth.min_pick_height``, counted: below_min_pick_height), instances something lies on
    last, then by the model's key plus the weighted pick height (core.grasping.depth)."""
    counters = collections.Counter() if counters is None else counters
    det = _filter(det, f, counters)
    if depth is not None:
        floor = below_floor(det, depth[1], depth[0])
        counters["below_min_pick_height"] += int(floor.sum())
        det = det[~floor]
    return det[_rank(det, f, depth)]


@dataclass
class LineGeometry:
    scanner_x: float
    line_pitch: float
    pixel_size: float
    belt_y_offset: float
    pick_z: float = _SCHEMA.default("line.pick_z")
    match_radius: float = _SCHEMA.default("line.match_radius")
    edge_margin_px: int = _SCHEMA.default("line.edge_margin_px")

    @classmethod
    def from_params(cls, line: Any) -> LineGeometry:
        """From the grasp selector's ``line.*`` parameter group."""
        return cls(line.scanner_x, line.line_pitch, line.pixel_size, line.belt_y_offset, line.pick_z,
                   line.match_radius, line.edge_margin_px)


#: belt footprints overlapping by at least this share of their union are one object
FOOTPRINT_IOU = 0.2
#: a new detection lying at least this much inside a remembered object's footprint is a
#: piece of that object (a model split in this frame what it saw whole before)
PIECE_INSIDE = 0.7

#: a belt footprint: (b0, b1, y0, y1), m
Footprint = tuple[float, float, float, float]


def _footprint_intersection(a: Footprint, b: Footprint) -> float:
    """Area (m²) common to two axis-aligned footprints."""
    db = min(a[1], b[1]) - max(a[0], b[0])
    dy = min(a[3], b[3]) - max(a[2], b[2])
    return db * dy if db > 0 and dy > 0 else 0.0


def footprint_inside(a: Footprint, b: Footprint) -> float:
    """Share of footprint ``a``'s area inside footprint ``b`` (0 for an empty ``a``)."""
    area = (a[1] - a[0]) * (a[3] - a[2])
    return _footprint_intersection(a, b) / area if area > 0 else 0.0


def footprint_iou(a: Footprint, b: Footprint) -> float:
    """Intersection over union of two axis-aligned footprints."""
    inter = _footprint_intersection(a, b)
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    b: float
    y: float
    footprint: Footprint | None
    class_id: int
    pick_id: int
    frame: int  # the last frame that matched it


class PickIdTracker:
    """Stable pick ids by belt footprint and belt coordinate (b, y); the class is not
    compared (see the module docstring).

    Args:
        radius: pick points closer than this (m) are one object.
        horizon: metres of belt remembered behind the newest object.
        min_iou: footprints overlapping this much are one object.
        piece_inside: a detection left unmatched that lies at least this much inside a
            remembered footprint is a piece of that object and takes its pick_id (the
            bridge picks an id once); 0: off.
    """

    def __init__(self, radius: float, horizon: float = 5.0, min_iou: float = FOOTPRINT_IOU,
                 piece_inside: float = PIECE_INSIDE) -> None:
        self.radius = radius
        self.horizon = horizon
        self.min_iou = min_iou
        self.piece_inside = piece_inside
        self.next_id = 1
        self.seen: collections.deque[_Track] = collections.deque()
        self.frame = 0

    def assign_frame(self, objects: Sequence[tuple[float, float, int, Footprint | None]]) -> list[tuple[int, bool]]:
        """(pick_id, is_new) for each object ``(b, y, class_id, footprint)`` of one frame.

        The detections of one frame are distinct objects, matched to remembered ones
        jointly: pairs by footprint overlap (at least ``min_iou``), largest first, then
        the rest by pick-point distance (within ``radius``), nearest first; each track and
        each detection at most once. A match takes the new observation's pick point and
        footprint. A detection still left that lies mostly (``piece_inside``) inside a
        remembered footprint is a piece of that object: it gets the object's pick_id
        (not new) and changes no track. Whatever is left is a new object."""
        self.frame += 1
        tracks = list(self.seen)
        prior = [tr.footprint for tr in tracks]  # before this frame's matches move them
        pairs: list[tuple[float, int, int]] = []  # (-overlap or distance, detection, track)
        for i, (_, _, _, fp) in enumerate(objects):
            if fp is None:
                continue
            for j, tr in enumerate(tracks):
                if tr.footprint is not None:
                    iou = footprint_iou(fp, tr.footprint)
                    if iou >= self.min_iou:
                        pairs.append((-iou, i, j))
        out: list[tuple[int, bool] | None] = [None] * len(objects)
        matched: dict[int, _Track] = {}  # detection -> its track
        used: set[int] = set()
        for _, i, j in sorted(pairs):
            if out[i] is None and j not in used:
                out[i], matched[i] = (tracks[j].pick_id, False), tracks[j]
                used.add(j)
        near: list[tuple[float, int, int]] = []
        for i, (b, y, _, _) in enumerate(objects):
            if out[i] is None:
                for j, tr in enumerate(tracks):
                    if j not in used:
                        d = math.hypot(tr.b - b, tr.y - y)
                        if d <= self.radius:
                            near.append((d, i, j))
        for _, i, j in sorted(near):
            if out[i] is None and j not in used:
                out[i], matched[i] = (tracks[j].pick_id, False), tracks[j]
                used.add(j)
        if self.piece_inside > 0:
            for i, (_, _, _, fp) in enumerate(objects):
                if out[i] is None and fp is not None:
                    inside = [(footprint_inside(fp, f), j) for j, f in enumerate(prior) if f is not None]
                    share, j = max(inside, default=(0.0, -1))
                    if share >= self.piece_inside:
                        out[i] = (tracks[j].pick_id, False)
        result: list[tuple[int, bool]] = []
        for i, (b, y, class_id, fp) in enumerate(objects):
            got = out[i]
            if got is None:
                got = (self.next_id, True)
                self.next_id += 1
                self.seen.append(_Track(b, y, fp, class_id, got[0], self.frame))
            elif i in matched:  # not a piece: a piece changes no track
                tr = matched[i]
                tr.b, tr.y, tr.footprint, tr.frame = b, y, fp or tr.footprint, self.frame
            result.append(got)
        newest = max((b for b, _, _, _ in objects), default=None)
        while newest is not None and self.seen and self.seen[0].b < newest - self.horizon:
            self.seen.popleft()
        return result

    def assign(self, b: float, y: float, class_id: int, footprint: Footprint | None = None) -> tuple[int, bool]:
        """(pick_id, is_new) of one object seen alone in its frame."""
        return self.assign_frame([(b, y, class_id, footprint)])[0]

    def to_state(self) -> dict[str, Any]:
        """What a restarted grasp selector needs: the next free id and the remembered
        objects (JSON-able)."""
        return {"next_id": self.next_id, "frame": self.frame,
                "tracks": [[t.b, t.y, list(t.footprint) if t.footprint else None, t.class_id, t.pick_id, t.frame]
                           for t in self.seen]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`to_state` of a previous process: no id is issued twice,
        and an object seen before the restart keeps its id."""
        self.next_id = max(self.next_id, int(state["next_id"]))
        self.frame = int(state.get("frame", 0))
        self.seen = collections.deque(
            _Track(float(b), float(y), (float(fp[0]), float(fp[1]), float(fp[2]), float(fp[3])) if fp else None,
                   int(c), int(p), int(f)) for b, y, fp, c, p, f in state["tracks"])


def line_candidates(det: np.ndarray, belt_position: float, geo: LineGeometry,
                    f: Filters, tracker: PickIdTracker, counters: collections.Counter[Any]) -> np.ndarray:
    """Detections of one line frame (tables.DETECTIONS) -> candidates (tables.CANDIDATES),
    best first. An instance reaching the last row (or ending within ``edge_margin_px`` of
    it) is still being scanned: it is left to the next, overlapping frame; one reaching row
    0 (or starting within ``edge_margin_px`` of it) was complete in the previous one. The
    margin counts at both ends because a model's mask of an object cut by the frame edge
    often stops a pixel or two short of it: such a part, taken for a new object, sits
    centimetres from where the whole was picked (a double pick)."""
    det = _filter(det, f, counters)
    growing = (det["touches_last_row"] > 0) | (det["y1"] >= det["frame_height"].astype(np.float64) - geo.edge_margin_px)
    cut = det["y0"] <= geo.edge_margin_px  # reaches row 0: complete in the previous frame
    counters["deferred_to_next_frame"] += int(growing.sum())
    counters["cut_at_first_row"] += int((cut & ~growing).sum())
    det = det[~growing & ~cut]
    det = det[_rank(det, f)]
    out = tables.empty(tables.CANDIDATES, len(det))
    i, j = det["v"].astype(np.float64), det["u"].astype(np.float64)
    out["x"] = geo.scanner_x - i * geo.line_pitch
    out["y"] = geo.belt_y_offset + (j + 0.5) * geo.pixel_size
    out["z"] = geo.pick_z
    b = belt_position + i * geo.line_pitch
    fb0 = belt_position + det["y0"].astype(np.float64) * geo.line_pitch
    fb1 = belt_position + det["y1"].astype(np.float64) * geo.line_pitch
    fy0 = geo.belt_y_offset + det["x0"].astype(np.float64) * geo.pixel_size
    fy1 = geo.belt_y_offset + det["x1"].astype(np.float64) * geo.pixel_size
    assigned = tracker.assign_frame([
        (float(b[k]), float(out["y"][k]), int(det["class_id"][k]),
         (float(fb0[k]), float(fb1[k]), float(fy0[k]), float(fy1[k])))
        for k in range(len(det))])
    for k, (pid, new) in enumerate(assigned):
        out["pick_id"][k] = pid
        counters["new_objects" if new else "seen_again"] += 1
    out["class_id"], out["score"] = det["class_id"], det["score"]
    out["affordance"], out["instance"] = det["affordance"], det["instance"]
    out["belt_position"] = belt_position
    return out


def camera_candidates(det: np.ndarray, camera: CameraModel, camera_in_world: Pose, plane: Plane,
                      f: Filters, next_id: int, counters: collections.Counter[Any],
                      depth: DepthOrder | None = None) -> tuple[np.ndarray, int]:
    """Detections of one camera frame -> (candidates, next free pick_id); ``depth``: see
    :func:`ranked`."""
    det = ranked(det, f, counters, depth)
    if len(det) == 0:
        return tables.empty(tables.CANDIDATES, 0), next_id
    pts, why = pixels_to_plane(camera, camera_in_world, np.column_stack([det["u"], det["v"]]), plane)
    for reason in ("parallel", "behind", "invalid"):
        counters[f"rays_{reason}"] += int(np.sum(why == reason))
    ok = why == ""
    det, pts = det[ok], pts[ok]
    out = tables.empty(tables.CANDIDATES, len(det))
    out["x"], out["y"], out["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    out["pick_id"] = np.arange(next_id, next_id + len(det))
    out["class_id"], out["score"] = det["class_id"], det["score"]
    out["affordance"], out["instance"] = det["affordance"], det["instance"]
    return out, next_id + len(det)
