"""Depth evidence for ranking camera picks: what lies on top, and how high a pick is.

A registered depth image (REP 118: ``z`` along the optical axis, m, aligned pixel for pixel
with the colour frame; NaN or 0 where the sensor has no value) becomes a height map above
the work plane (:func:`height_map`, frame ``world``). Two things are read off it per
instance of the frame's label image:

* **covered share** (:func:`covered_share`): of the instance's edge pixels, the share that
  has a pixel ``reach_px`` outside the mask higher by more than ``step`` m. Something lying
  on an instance is higher than it where they meet; a suction pick on such an instance
  lifts what lies on it too, or nothing (seed 001 learns the same cue from RGB as its
  occlusion boundaries).
* **pick height** (:func:`pick_heights`): the height of the surface at the pick pixel. The
  topmost object of a pile is the one nothing lies on; bin pickers with depth pick from
  the top down.

Before both, :func:`top_pick_points` moves each pick pixel to the most interior pixel of
its mask's highest part (within ``top_band`` of the mask's top): where a model's mask
joins an instance with one it lies on, the suction cup goes to the upper one.

:class:`DepthRanking` orders candidates with them: not covered first, then by the model's
key plus ``height_weight`` times the pick height (m). Measured on simulated piles by
benchmarks/bin_picks.py (docs/models.md).

When the segmenter finds nothing in a frame, :func:`height_blobs` offers the height map's
own blobs (connected pixels higher than ``fallback_height`` above the work plane) as
detections, so that an object the model misses does not stop a cell whose camera sees
only that object (the cell waits for a pick that never comes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from msseg_ros.core import tables
from msseg_ros.core.errors import MssegError
from msseg_ros.core.geometry.camera import CameraModel, Plane, Pose
from msseg_ros.core.params.nodes import GRASP_SELECTOR as _SCHEMA

#: the 8 neighbour directions (dv, du)
_DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


class DepthImageError(MssegError, ValueError):
    """A depth image that does not fit its colour frame or camera; the message says why."""


@dataclass(frozen=True)
class DepthRanking:
    """How depth orders camera pick candidates (grasp selector parameters ``depth.*``).

    Attributes:
        step: m; a neighbour higher than an instance's edge by more than this lies on it.
        reach_px: px; how far outside the mask that neighbour is looked for (predicted
            masks miss or overrun the true edge by a pixel or two).
        max_covered: instances with a larger covered share rank after every other one.
        height_weight: per m of pick height, added to the rank key (affordance or score):
            30 makes 3 cm of height (a box's thickness) worth a whole unit of affordance.
        top_band: m; the pick pixel moves into the mask's part within this of its top
            (:func:`top_pick_points`); 0 keeps the segmenter's pick pixels.
        fallback_height: m; a frame without detections takes the height map's blobs
            higher than this as detections (:func:`height_blobs`); 0: off.
        fallback_min_area: px; smaller blobs are left out.
        min_pick_height: m; a candidate whose pick pixel lies lower than this above the
            work plane is the bin's floor, not an object (:func:`below_floor`); 0: off.
    """

    step: float = _SCHEMA.default("depth.step")
    reach_px: int = _SCHEMA.default("depth.reach_px")
    max_covered: float = _SCHEMA.default("depth.max_covered")
    height_weight: float = _SCHEMA.default("depth.height_weight")
    top_band: float = _SCHEMA.default("depth.top_band")
    fallback_height: float = _SCHEMA.default("depth.fallback_height")
    fallback_min_area: int = _SCHEMA.default("depth.fallback_min_area")
    min_pick_height: float = _SCHEMA.default("depth.min_pick_height")

    @classmethod
    def from_params(cls, depth: Any) -> DepthRanking:
        """From the grasp selector's ``depth`` parameter group."""
        return cls(float(depth.step), int(depth.reach_px), float(depth.max_covered), float(depth.height_weight),
                   float(depth.top_band), float(depth.fallback_height), int(depth.fallback_min_area),
                   float(depth.min_pick_height))


@dataclass(frozen=True)
class DepthEvidence:
    """Per instance of one frame (index = instance id, 0 unused): ``covered`` share and
    pick ``height`` above the work plane, m (NaN where the depth had no value).
    ``from_blobs``: the rows are the depth's own blobs, standing in for the model's
    detections (:func:`apply_depth`)."""

    covered: np.ndarray
    height: np.ndarray
    from_blobs: bool = False

    def for_rows(self, instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(covered, height) of the given instance ids; ids the label image lacks get
        (0, NaN): no evidence either way."""
        ids = np.asarray(instance_ids, np.int64)
        inside = (ids > 0) & (ids < len(self.covered))
        covered = np.zeros(len(ids))
        height = np.full(len(ids), np.nan)
        covered[inside] = self.covered[ids[inside]]
        height[inside] = self.height[ids[inside]]
        return covered, height


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """A depth image as float32 metres, NaN where invalid: ``uint16`` is millimetres
    (REP 118's 16UC1, 0 = no value), a float image is metres (non-finite or <= 0 = no
    value)."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise DepthImageError(f"depth image must be (H, W); got shape {d.shape}")
    if d.dtype == np.uint16:
        out = d.astype(np.float32) * np.float32(0.001)
    elif np.issubdtype(d.dtype, np.floating):
        out = d.astype(np.float32, copy=True)
    else:
        raise DepthImageError(f"depth image dtype {d.dtype}: expected uint16 (mm) or float (m)")
    out[~np.isfinite(out) | (out <= 0)] = np.nan
    return out


class HeightMapper:
    """Depth images of one camera -> height maps above the work plane (the pixel rays
    are undistorted once, here)."""

    def __init__(self, camera: CameraModel, camera_in_world: Pose, plane: Plane) -> None:
        """Args:
            camera: the colour camera's intrinsics; depth images must have its size.
            camera_in_world: the camera optical frame's pose in ``world``.
            plane: the work plane in ``world`` (the bin bottom).
        """
        self.camera, self.pose, self.plane = camera, camera_in_world, plane
        vv, uu = np.mgrid[0:camera.height, 0:camera.width]
        rays = camera.rays(np.column_stack([uu.ravel(), vv.ravel()]))
        self._rays_z1 = rays / rays[:, 2:3]  # REP 118: depth is z, not the ray's length

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) float32: the height of each pixel's surface point above the plane, m,
        along its normal; NaN where the depth has no value.

        Args:
            depth: (H, W) along the optical axis, m or mm (:func:`depth_to_metres`),
                registered to the camera (its size).
        """
        d = depth_to_metres(depth)
        H, W = d.shape
        if (W, H) != (self.camera.width, self.camera.height):
            raise DepthImageError(f"depth image is {W}x{H} but the camera's frames are "
                                  f"{self.camera.width}x{self.camera.height}")
        points = self.pose.apply(self._rays_z1 * d.reshape(-1, 1))
        return ((points - self.plane.point) @ self.plane.normal).reshape(H, W).astype(np.float32)


def height_map(depth: np.ndarray, camera: CameraModel, camera_in_world: Pose, plane: Plane) -> np.ndarray:
    """One depth image's heights above ``plane``: see :class:`HeightMapper`."""
    return HeightMapper(camera, camera_in_world, plane)(depth)


def _smoothed(height: np.ndarray) -> np.ndarray:
    """A 3 x 3 median against single-pixel sensor noise; invalid pixels stay NaN."""
    valid = np.isfinite(height)
    out = cv2.medianBlur(np.where(valid, height, 0).astype(np.float32), 3)
    out[~valid] = np.nan
    return out


def covered_share(labels: np.ndarray, height: np.ndarray, step: float, reach_px: int) -> np.ndarray:
    """(N + 1,) float64, index = instance id (0 unused): of each instance's edge pixels
    (those with a pixel ``reach_px`` away, in one of 8 directions, outside the instance),
    the share where such a pixel is higher than the edge pixel by more than ``step`` m.

    Args:
        labels: (H, W) instance ids, 0 = background (the segmenter's instances image).
        height: (H, W) height above the work plane, m (:func:`height_map`); NaN compares
            as neither higher nor lower.
    """
    labels = np.asarray(labels)
    if labels.shape != height.shape:
        raise DepthImageError(f"instances image {labels.shape} and depth {height.shape} differ in size")
    n = int(labels.max(initial=0))
    h = _smoothed(height)
    H, W = labels.shape
    k = max(1, int(reach_px))
    lab_p = np.pad(labels, k, constant_values=0)
    h_p = np.pad(h, k, constant_values=np.nan)
    edge = np.zeros((H, W), bool)
    under = np.zeros((H, W), bool)
    inside = labels > 0
    with np.errstate(invalid="ignore"):
        for dv, du in _DIRECTIONS:
            lab_q = lab_p[k + dv * k:k + dv * k + H, k + du * k:k + du * k + W]
            h_q = h_p[k + dv * k:k + dv * k + H, k + du * k:k + du * k + W]
            out = inside & (lab_q != labels)
            edge |= out
            under |= out & (h_q > h + step)
    flat = labels.ravel().astype(np.int64)
    edges = np.bincount(flat, edge.ravel(), minlength=n + 1)
    unders = np.bincount(flat, under.ravel(), minlength=n + 1)
    share = unders / np.maximum(edges, 1)
    share[0] = 0.0
    return share


def pick_heights(height: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N,) height at each pick pixel (u, v), m: the median of its valid 3 x 3 neighbours
    (NaN when none is valid, or the pixel is outside the image)."""
    H, W = height.shape
    iu = np.rint(np.asarray(u, np.float64)).astype(np.int64)
    iv = np.rint(np.asarray(v, np.float64)).astype(np.int64)
    out = np.full(len(iu), np.nan)
    for k, (a, b) in enumerate(zip(iu, iv, strict=True)):
        if 0 <= a < W and 0 <= b < H:
            patch = height[max(b - 1, 0):b + 2, max(a - 1, 0):a + 2]
            if np.isfinite(patch).any():
                out[k] = float(np.nanmedian(patch))
    return out


#: the 95th percentile of a mask's heights is its top (a few noisy or stray pixels above it
#: do not count)
TOP_PERCENTILE = 95.0


def top_pick_points(detections: np.ndarray, labels: np.ndarray, height: np.ndarray, band: float) -> np.ndarray:
    """A copy of ``detections`` (``tables.DETECTIONS``) whose pick pixels (u, v) are the
    most interior pixels of each mask's top: its pixels within ``band`` m of the mask's
    top height (:data:`TOP_PERCENTILE`). A mask whose top is thinner than 2 px, or that
    has no valid depth, keeps its pick pixel."""
    out = detections.copy()
    if band <= 0:
        return out
    H, W = labels.shape
    for row in out:
        x0, y0 = max(int(row["x0"]), 0), max(int(row["y0"]), 0)
        x1, y1 = min(int(np.ceil(row["x1"])), W), min(int(np.ceil(row["y1"])), H)
        mask = labels[y0:y1, x0:x1] == row["instance"]
        h = height[y0:y1, x0:x1]
        valid = mask & np.isfinite(h)
        if not valid.any():
            continue
        top = np.percentile(h[valid], TOP_PERCENTILE)
        with np.errstate(invalid="ignore"):
            plateau = (valid & (h >= top - band)).astype(np.uint8)
        inside = cv2.distanceTransform(np.pad(plateau, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        if inside.max() >= 2.0:
            v, u = np.unravel_index(int(np.argmax(inside)), inside.shape)
            row["u"], row["v"] = x0 + u, y0 + v
    return out


def depth_evidence(detections: np.ndarray, labels: np.ndarray, height: np.ndarray,
                   ranking: DepthRanking) -> DepthEvidence:
    """The evidence for one frame's detections (``tables.DETECTIONS``, pixels of the
    instances image ``labels``, pick pixels as ranked: :func:`top_pick_points` first)
    from its height map."""
    covered = covered_share(labels, height, ranking.step, ranking.reach_px)
    n = len(covered) - 1
    pick = np.full(n + 1, np.nan)
    if len(detections):
        ids = detections["instance"].astype(np.int64)
        ok = (ids > 0) & (ids <= n)
        pick[ids[ok]] = pick_heights(height, detections["u"][ok], detections["v"][ok])
    return DepthEvidence(covered, pick)


def apply_depth(detections: np.ndarray, labels: np.ndarray, height: np.ndarray,
                ranking: DepthRanking) -> tuple[np.ndarray, DepthEvidence]:
    """One frame's detections with their pick pixels on their masks' tops
    (:func:`top_pick_points`, ``ranking.top_band``) and the depth evidence for them.
    With ``ranking.fallback_height`` > 0 and no detections, or only detections on the
    floor (:func:`below_floor`: a model that sees objects in the bin's texture), the
    height map's own blobs (:func:`height_blobs`) take their place: then the rows returned
    are blobs (their ``instance`` a blob id, not a value of ``labels``; the evidence's
    ``from_blobs`` is set)."""
    moved = top_pick_points(detections, labels, height, ranking.top_band)
    evidence = depth_evidence(moved, labels, height, ranking)
    if ranking.fallback_height > 0 and below_floor(moved, evidence, ranking).all():
        blobs, blob_labels = height_blobs(height, ranking.fallback_height, ranking.fallback_min_area)
        moved = top_pick_points(blobs, blob_labels, height, ranking.top_band)
        evidence = depth_evidence(moved, blob_labels, height, ranking)
        evidence = DepthEvidence(evidence.covered, evidence.height, from_blobs=True)
    return moved, evidence


def below_floor(rows: np.ndarray, evidence: DepthEvidence, ranking: DepthRanking) -> np.ndarray:
    """(N,) bool: the rows (``tables.DETECTIONS``) whose pick pixel lies lower than
    ``ranking.min_pick_height`` above the work plane; all False when that is 0, and False
    where the depth has no value (no evidence either way)."""
    if ranking.min_pick_height <= 0:
        return np.zeros(len(rows), bool)
    _, pick = evidence.for_rows(rows["instance"])
    with np.errstate(invalid="ignore"):
        return pick < ranking.min_pick_height


def height_blobs(height: np.ndarray, min_height: float, min_area_px: int,
                 class_id: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Detections (``tables.DETECTIONS``) and their (H, W) uint16 label image from a
    height map alone: 8-connected pixels higher than ``min_height`` m above the work
    plane, after a 3 x 3 opening (lone noisy pixels), blobs of ``min_area_px`` or more,
    largest first. Each has class ``class_id``, score 1 (no model score), no affordance,
    and its pick pixel at its most interior pixel (:func:`top_pick_points` then moves it to
    the top). Objects that touch form one blob; its top is the upper one.

    The camera must see only the work area: a bin wall in view is a blob too."""
    H, W = height.shape
    with np.errstate(invalid="ignore"):
        above = (np.isfinite(height) & (height > min_height)).astype(np.uint8)
    above = cv2.morphologyEx(above, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, comp, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    inside = cv2.distanceTransform(np.pad(above, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area_px]
    keep.sort(key=lambda k: -int(stats[k, cv2.CC_STAT_AREA]))
    blob_id = np.zeros(n, np.uint16)
    blob_id[keep] = np.arange(1, len(keep) + 1)
    labels = blob_id[comp]
    det = tables.empty(tables.DETECTIONS, len(keep))
    for i, k in enumerate(keep, start=1):
        x, y, w, h, area = (int(v) for v in stats[k])
        row = det[i - 1]
        row["instance"], row["class_id"], row["score"] = i, class_id, 1.0
        box = np.where(comp[y:y + h, x:x + w] == k, inside[y:y + h, x:x + w], -1.0)
        v, u = np.unravel_index(int(np.argmax(box)), box.shape)
        row["u"], row["v"] = x + u, y + v
        row["x0"], row["y0"], row["x1"], row["y1"] = x, y, x + w, y + h
        row["area"], row["frame_width"], row["frame_height"] = area, W, H
        row["touches_last_row"] = int(y + h >= H)
    return det, labels
