"""Scoring the simulated cells against their ground truth (cell_sim).

Sorting line (:class:`LineScorer`): the world is a function of (seed, belt coordinate),
so a grip at world (x, y) with belt travel p is on belt coordinate
``b = p - (x - scanner_x)``, across ``c = y - belt_y0``; the object whose footprint is
there (within 5 mm, a suction cup's radius) is the one picked; a grip beside every
footprint picks nothing (an empty grip), however near an object's centre it is.
Candidates are located the same way (detected objects). Once an object has passed the last robot, it
is final: never detected, detected but not picked, picked into the right or the wrong bin.
A grip on an object some robot already picked is a double pick; its cause is recorded
(:data:`DOUBLE_PICK_CAUSES`) from the pick ids the candidates carried.

Bin picking (:class:`BinScorer`): each suction at world (x, y, z) is a pick on the same
pile the camera renders (seed 001 metrics: success, centred, non-occluded).
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msseg_ros.core.robots.kinematics import PointLike
from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld
from msseg_ros.core.sim.sorting_line import CLASSES, ScrapObject, SortingLineWorld

FOOTPRINT_TOLERANCE_M = 0.005

#: why an object was gripped twice, judged from the candidates' pick ids:
#: ``same_pick_id``: the same id twice (a bridge or ledger fault);
#: ``one_frame``: two ids first seen in one frame (two detections of one object: a split
#: or duplicated mask); ``two_frames``: ids first seen in different frames (the grasp
#: selector's tracker did not match the object across overlapping frames);
#: ``other_object``: the second id's candidates were on another object (a grip point off
#: its own object, onto a picked neighbour); ``unknown_pick_id``: no candidate had it.
DOUBLE_PICK_CAUSES = ("same_pick_id", "one_frame", "two_frames", "other_object", "unknown_pick_id")


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


@dataclass
class _ObjectOutcome:
    obj: ScrapObject
    detected: bool = False
    picked_by: int = 0
    bin: int = 0
    pick_id: int | None = None
    grip_bc: tuple[float, float] | None = None  # where the first grip was, belt coordinates, m


@dataclass
class LineScorer:
    """Args:
        world: the sorting-line world.
        class_bins: class name -> bin (classes absent are not sorted).
        scanner_x: world x of the scan line, m.
        belt_y0: world y of the belt's left edge, m.
        end_x: world x past the last robot's window, m; objects beyond are final.
        warmup: belt (m) not scored after the first detection (the pipeline is filling:
            objects before it are not scored at all).
        centre_tolerance: a grip or candidate off every footprint still counts on the
            object whose centre is within this (m); 0 (the default): never. Scores before
            2026-12-04 used 0.03, which credited grips a real suction cup would miss.
    """

    world: SortingLineWorld
    class_bins: dict[str, int]
    scanner_x: float
    belt_y0: float
    end_x: float
    warmup: float = 1.0
    centre_tolerance: float = 0.0
    outcomes: dict[int, _ObjectOutcome] = field(default_factory=dict)
    final: list[_ObjectOutcome] = field(default_factory=list)
    grips: collections.Counter[Any] = field(default_factory=collections.Counter)
    empty_grips: int = 0
    double_picks: int = 0
    unmatched_candidates: int = 0
    double_pick_causes: collections.Counter[str] = field(default_factory=collections.Counter)
    #: for each double pick, how far (mm, on the belt) the second grip was from the first
    double_pick_separations_mm: list[float] = field(default_factory=list)
    #: pick_id -> (belt position of the frame that first had it, the object it was on)
    _id_origin: dict[int, tuple[float, int]] = field(default_factory=dict)
    contingency: dict[str, Any] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    _classified: set[Any] = field(default_factory=set)
    _next_b: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _locate(self, b: float, c: float) -> ScrapObject | None:
        objs = self.world.objects_between(b - 0.2, b + 0.2)
        if not objs:
            return None
        ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        bb = np.concatenate([[b], b + FOOTPRINT_TOLERANCE_M * np.cos(ang)]) * 1e3
        cc = np.concatenate([[c], c + FOOTPRINT_TOLERANCE_M * np.sin(ang)]) * 1e3
        hits = [(int(np.count_nonzero(o.evaluate(bb, cc)[0] > 0)), o.rests_on is not None, o) for o in objs]
        hits = [h for h in hits if h[0]]
        if hits:
            return max(hits, key=lambda h: (h[0], h[1]))[2]
        if self.centre_tolerance <= 0:
            return None
        d, o = min(((np.hypot(o.b - b, o.c - c), o) for o in objs), key=lambda t: t[0])
        return o if d < self.centre_tolerance else None

    def _outcome(self, o: ScrapObject) -> _ObjectOutcome:
        if o.id not in self.outcomes:
            self.outcomes[o.id] = _ObjectOutcome(o)
        return self.outcomes[o.id]

    def belt_coordinates(self, x: float, y: float, travel: float) -> tuple[float, float]:
        return travel - (x - self.scanner_x), y - self.belt_y0

    def on_candidate(self, x: float, y: float, belt_position: float, class_id: int = 0,
                     pick_id: int | None = None) -> None:
        """A candidate (detection) at world (x, y) valid at ``belt_position``; ``class_id``
        (1-based, CLASSES order) feeds the contingency table, once per pick_id."""
        with self.lock:
            b, c = self.belt_coordinates(x, y, belt_position)
            if self._next_b is None:  # scoring starts with the first detection
                self._next_b = b + self.warmup
            o = self._locate(b, c)
            if o is None:
                self.unmatched_candidates += 1
                return
            self._outcome(o).detected = True
            if pick_id is not None and pick_id not in self._id_origin:
                self._id_origin[pick_id] = (belt_position, o.id)
            if class_id and (pick_id is None or pick_id not in self._classified):
                if pick_id is not None:
                    self._classified.add(pick_id)
                predicted = CLASSES[class_id - 1] if 1 <= class_id <= len(CLASSES) else f"class_{class_id}"
                self.contingency[o.cls][predicted] += 1

    def on_grip(self, robot: int, pick_id: int, point: PointLike, travel: float, bin_: int) -> None:
        with self.lock:
            self.grips[robot] += 1
            bc = self.belt_coordinates(point[0], point[1], travel)
            o = self._locate(*bc)
            if o is None:
                self.empty_grips += 1
                return
            out = self._outcome(o)
            if out.picked_by:
                self.double_picks += 1
                self.double_pick_causes[self._double_pick_cause(o, out.pick_id, pick_id)] += 1
                if out.grip_bc is not None:
                    sep = 1e3 * float(np.hypot(bc[0] - out.grip_bc[0], bc[1] - out.grip_bc[1]))
                    self.double_pick_separations_mm.append(round(sep, 1))
                return
            out.picked_by, out.bin, out.pick_id, out.grip_bc = robot, bin_, pick_id, bc

    def _double_pick_cause(self, o: ScrapObject, first: int | None, second: int) -> str:
        if first == second:
            return "same_pick_id"
        origin = self._id_origin.get(second)
        if origin is None:
            return "unknown_pick_id"
        if origin[1] != o.id:
            return "other_object"
        before = self._id_origin.get(first) if first is not None else None
        return "one_frame" if before is not None and before[0] == origin[0] else "two_frames"

    def update(self, travel: float) -> None:
        """Finalise every object that has passed ``end_x`` at belt travel ``travel``."""
        with self.lock:
            limit = travel - (self.end_x - self.scanner_x)
            if self._next_b is None or limit <= self._next_b:
                return
            for o in self.world.objects_between(self._next_b, limit):
                if self._next_b <= o.b < limit:
                    self.final.append(self.outcomes.pop(o.id) if o.id in self.outcomes else _ObjectOutcome(o))
            self._next_b = limit
            # ids of objects long final (frames end well within 2 m of belt) are not needed
            stale = [pid for pid, (p0, _) in self._id_origin.items() if p0 < limit - 2.0]
            for pid in stale:
                del self._id_origin[pid]

    def kpis(self, elapsed_s: float) -> dict[str, Any]:
        with self.lock:
            final = list(self.final)
            grips = dict(self.grips)
            contingency = {t: dict(p) for t, p in sorted(self.contingency.items())}
        # one pass over the final objects (this runs every scoring period on a growing list)
        n_class: collections.Counter[str] = collections.Counter()
        right_class: collections.Counter[str] = collections.Counter()
        into_bin: collections.Counter[int] = collections.Counter()
        right_bin: collections.Counter[int] = collections.Counter()
        right = wrong = sorted_n = never = detected_not_picked = 0
        for f in final:
            target_bin = self.class_bins.get(f.obj.cls)
            never += not f.detected
            if target_bin is not None:
                sorted_n += 1
                n_class[f.obj.cls] += 1
                detected_not_picked += f.detected and not f.picked_by
            if f.picked_by:
                into_bin[f.bin] += 1
                if f.bin == target_bin:
                    right += 1
                    right_class[f.obj.cls] += 1
                    right_bin[f.bin] += 1
                else:
                    wrong += 1
        recovery = {c: _ratio(right_class[c], n_class[c]) for c in sorted(set(self.class_bins), key=CLASSES.index)}
        purity = {str(b): _ratio(right_bin[b], into_bin[b]) for b in sorted(set(self.class_bins.values()))}
        minutes = max(elapsed_s, 1e-9) / 60.0
        return {
            "objects_scored": len(final),
            "objects_to_sort": sorted_n,
            "picked_right_bin": right,
            "picked_wrong_bin": wrong,
            "never_detected": never,
            "detected_not_picked": detected_not_picked,
            "recovery": _ratio(right, sorted_n),
            "purity": _ratio(right, right + wrong),
            "recovery_by_class": recovery,
            "purity_by_bin": purity,
            "picks_per_min_by_robot": {str(k): round(v / minutes, 1) for k, v in sorted(grips.items())},
            "empty_grips": self.empty_grips,
            "double_picks": self.double_picks,
            "double_pick_causes": {c: self.double_pick_causes[c] for c in DOUBLE_PICK_CAUSES},
            "double_pick_separations_mm": sorted(self.double_pick_separations_mm)[-20:],  # the largest
            "unmatched_candidates": self.unmatched_candidates,
            "contingency": contingency,  # true class -> predicted class -> candidates
        }


class BinScorer:
    """Replays the suction grips on the simulated pile (the same piles the camera renders)."""

    def __init__(self, seed: int = 0, scene: int = 0, cup_radius_px: float = 5.0) -> None:
        self.config = BinPileConfig(seed=seed)
        self.world = BinPileWorld(self.config)
        self.scene_index = scene
        self.pile = self.world.scene(scene)
        self.cup_radius_px = cup_radius_px
        self.counts: collections.Counter[Any] = collections.Counter()
        self.lock = threading.Lock()

    def on_suction(self, xyz: PointLike) -> bool:
        """The cup closes at world ``xyz`` (m); True if it lifts an instance."""
        with self.lock:
            if not self.pile.instances:
                self.scene_index += 1
                self.pile = self.world.scene(self.scene_index)
                self.counts["bins_emptied"] += 1
            u, v = self.config.world_to_pixel(*xyz)
            out = self.pile.pick(u, v, self.cup_radius_px)
            c = self.counts
            c["attempts"] += 1
            c["successes"] += out.success
            c["centred"] += out.centred
            c["unoccluded"] += out.instance is not None and out.unoccluded
            c["centred_success"] += out.centred and out.success
            c["unoccluded_success"] += out.unoccluded and out.success
            if out.instance is None:
                c["failed_bin_bottom"] += 1
            elif not out.unoccluded:
                c["failed_occluded"] += 1
            elif not out.success:
                c["failed_not_centred"] += 1
            return out.success

    def kpis(self, elapsed_s: float) -> dict[str, Any]:
        with self.lock:
            c = dict(self.counts)
        n = c.get("attempts", 0)
        return {
            "attempts": n,
            "successes": c.get("successes", 0),
            "success_rate": _ratio(c.get("successes", 0), n),
            "centred_rate": _ratio(c.get("centred", 0), n),
            "unoccluded_rate": _ratio(c.get("unoccluded", 0), n),
            "centred_success_rate": _ratio(c.get("centred_success", 0), n),
            "unoccluded_success_rate": _ratio(c.get("unoccluded_success", 0), n),
            "failed_not_centred": c.get("failed_not_centred", 0),
            "failed_occluded": c.get("failed_occluded", 0),
            "failed_bin_bottom": c.get("failed_bin_bottom", 0),
            "bins_emptied": c.get("bins_emptied", 0),
            "picks_per_min": round(c.get("successes", 0) / max(elapsed_s, 1e-9) * 60, 1),
        }
