"""The Segmenter interface (the model plugin contract), its output, and the registry of
model types.

A segmenter is called on one frame, ``(H, W, C)`` float (C = its ``in_channels``), and
returns :class:`Instances`. Loading and inference live here in core; nodes only call them.

The plugin contract. A model type is one module with one :class:`Segmenter` subclass,
registered by one line in :data:`SEGMENTERS` (below). The class owns everything that
depends on the type, so ``msseg train``, ``msseg eval``, ``msseg models`` and the
segmenter node never branch on a type name:

* ``default_config`` and :meth:`Segmenter.validate_config`: its config and defaults;
* :meth:`Segmenter.from_config`: building it (the network, with or without weights);
* :meth:`Segmenter.config_from_parameters`: its node parameter group (``param_group``);
* training, either by gradient steps (``trained_by = "gradient"``: a
  :class:`~msseg_ros.core.segmentation.torch_base.TorchSegmenter` turns COCO samples into
  a batch of training targets with ``training_batch`` and returns its own losses from
  ``training_losses``, as torchvision's detection models do) or by a closed-form fit
  (``trained_by = "fit"``: :meth:`Segmenter.fit`);
* :meth:`Segmenter.extra_metrics`: metrics beyond COCO AP and the contingency table;
* :meth:`Segmenter.parameter_counts` and :meth:`Segmenter.parameter_counts_for`;
* :meth:`Segmenter.export_spec`: the module and example inputs another runtime exports.

NaN policy: non-finite pixels (NaN, ±inf, e.g. profiler drop-outs) are replaced by the
model's fill value for that channel (its background, e.g. the empty belt), predicted
as usual, then removed from every instance mask, so no instance is made of invalid
pixels. ``Instances.invalid_pixels`` counts them. A frame with more than
``max_invalid_fraction`` (default 0.25) invalid pixels is refused with InvalidFrameError.
"""
from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike

from msseg_ros.core import tables
from msseg_ros.core.errors import MssegError
from msseg_ros.core.registry import Registry

if TYPE_CHECKING:
    from msseg_ros.core.learning.data import CocoFrames
    from msseg_ros.core.learning.options import TrainingContext
    from msseg_ros.core.segmentation.class_head import ClassHead


class SegmentationError(MssegError):
    """Base of the segmentation errors."""


class InvalidFrameError(SegmentationError, ValueError):
    """A frame the model cannot take: wrong shape, channel count, dtype or too many NaN."""


class ModelConfigError(SegmentationError, ValueError):
    """A model configuration is invalid; the message names the key."""


class ExportError(SegmentationError):
    """A model cannot be exported to another runtime; the message says why."""


class InferenceError(SegmentationError):
    """A runtime failed on one frame (ONNX Runtime and OpenVINO raise their own plain
    errors, e.g. where Mask R-CNN's RPN keeps no proposal on a frame of absurd values);
    the message names the runtime and its reason. The frame is lost, the model stays."""


class ExtraMetrics(Protocol):
    """A model type's own evaluation metrics, accumulated over a dataset by ``msseg eval``."""

    def update(self, dataset: CocoFrames, index: int, frame: np.ndarray, target: dict[str, Any]) -> None:
        """Add image ``index`` (its frame and COCO target) of ``dataset``."""

    def summary(self) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        """(summary values by name, precision-recall curves by name)."""


@dataclass(frozen=True)
class ExportSpec:
    """What another runtime (ONNX Runtime, OpenVINO) exports of a model.

    Attributes:
        module: a ``torch.nn.Module`` whose forward takes ``example_inputs``.
        example_inputs: inputs of the shapes and dtypes it runs on.
        input_names: names of the exported graph's inputs.
        output_names: names of its outputs, in the order ``module`` returns them.
        dynamic_axes: ``{name: {axis: label}}`` for axes whose size may vary.
    """

    module: Any
    example_inputs: tuple[Any, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


@dataclass
class Instances:
    """Instances found in one frame (pixel units).

    Attributes:
        labels: (H, W) uint16; 0 = background, k = instance k (1-based).
        class_ids: (N,) int; 1-based index into the model's classes.
        scores: (N,) float32 in [0, 1].
        boxes: (N, 4) float32, x0, y0, x1, y1 (px, inclusive pixel extents + 1).
        centroids: (N, 2) float32, mask centroid (u = column, v = row), px.
        areas: (N,) int, px.
        affordance: (N,) float32, NaN where the model gives none.
        invalid_pixels: non-finite input pixels (see the NaN policy).
    """

    labels: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    centroids: np.ndarray
    areas: np.ndarray
    affordance: np.ndarray
    invalid_pixels: int = 0

    def __len__(self) -> int:
        return len(self.class_ids)

    @functools.cached_property
    def pick_points(self) -> np.ndarray:
        """(N, 2) float32, the pixel to grip (u, v), px: always on the instance's own mask
        (:func:`pick_pixels`; the centroid of a C- or L-shaped part is not). Computed on
        first use: a frame's instances are rebuilt by joining and the NaN policy, and only
        the last are published."""
        return pick_pixels(self.labels, self.centroids)

    @classmethod
    def from_labels(cls, labels: np.ndarray, class_ids: ArrayLike, scores: ArrayLike,
                    affordance: ArrayLike | None = None,
                    invalid_pixels: int = 0) -> Instances:
        """Build from a label map whose labels 1..N match the per-instance arrays.
        Instances with no pixel left are dropped and the rest relabelled 1..n."""
        labels = np.asarray(labels)
        class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        scores = np.asarray(scores, np.float32).reshape(-1)
        n = len(class_ids)
        aff = (np.full(n, np.nan, np.float32) if affordance is None
               else np.asarray(affordance, np.float32).reshape(-1))
        if len(scores) != n or len(aff) != n:
            raise ValueError(f"{n} class ids but {len(scores)} scores and {len(aff)} affordances")
        if labels.ndim != 2:
            raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
        if labels.dtype not in (np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64):
            labels = labels.astype(np.int64)  # what np.bincount takes
        flat = labels.ravel()
        top = int(flat.max()) if flat.size else 0
        if top > n:
            raise ValueError(f"label {top} but only {n} instances")
        if flat.size and int(flat.min()) < 0:
            raise ValueError(f"negative label {int(flat.min())}")
        areas = np.bincount(flat, minlength=n + 1)[1:]
        keep = np.flatnonzero(areas > 0)
        m = len(keep)
        if m == n:  # nothing dropped: no relabelling
            new = labels.astype(np.uint16)  # a copy: the caller keeps its array
        else:
            remap = np.zeros(n + 1, np.uint16)
            remap[keep + 1] = np.arange(1, m + 1)
            new = remap[labels]
        H, W = labels.shape
        # per-instance sums over the foreground pixels only
        where = np.flatnonzero(new.ravel())
        lab = new.ravel()[where]
        vv, uu = np.divmod(where, W)
        cnt = np.bincount(lab, minlength=m + 1)[1:].astype(np.float64)
        cu = np.bincount(lab, uu, minlength=m + 1)[1:] / np.maximum(cnt, 1)
        cv = np.bincount(lab, vv, minlength=m + 1)[1:] / np.maximum(cnt, 1)
        boxes = np.zeros((m, 4), np.float32)
        if m:
            from scipy import ndimage

            for k, box in enumerate(ndimage.find_objects(new, max_label=m)):  # one pass, in C
                rows, cols = box
                boxes[k] = (cols.start, rows.start, cols.stop, rows.stop)
        return cls(new, class_ids[keep], scores[keep], boxes,
                   np.stack([cu, cv], axis=1).astype(np.float32), cnt.astype(np.int64),
                   aff[keep], invalid_pixels)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Instances:
        return cls.from_labels(np.zeros(shape, np.uint16), [], [])

    def subset(self, keep: np.ndarray) -> Instances:
        """The instances where ``keep`` ((N,) bool) is true, relabelled 1..n in order; the
        others' pixels become background. Their geometry (boxes, centroids, areas, pick
        points) is carried over, not recomputed: dropping one instance changes no other's
        pixels."""
        keep = np.asarray(keep, bool)
        remap = np.zeros(len(self) + 1, np.uint16)
        remap[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        out = Instances(remap[self.labels], self.class_ids[keep], self.scores[keep], self.boxes[keep],
                        self.centroids[keep], self.areas[keep], self.affordance[keep], self.invalid_pixels)
        if "pick_points" in self.__dict__:  # computed already (cached property): kept
            out.__dict__["pick_points"] = self.pick_points[keep]
        return out

    def upscaled(self, factor: int, shape: tuple[int, int]) -> Instances:
        """These instances, found on a frame binned by ``factor`` (:func:`bin_frame`), in
        the pixels of the full frame of ``shape`` (H, W): each label pixel becomes a
        ``factor`` x ``factor`` block (cut at the frame's edge); boxes, centroids and pick
        points scale with it (a pick point goes to its block's centre, so it stays on its
        own mask); areas and invalid pixels are counted anew in full-frame pixels."""
        if factor == 1:
            return self
        H, W = shape
        labels = np.repeat(np.repeat(self.labels, factor, axis=0), factor, axis=1)[:H, :W]
        n = len(self)
        areas = np.bincount(labels.ravel().astype(np.intp), minlength=n + 1)[1:].astype(np.int64)
        boxes = self.boxes * factor
        np.minimum(boxes, np.array([W, H, W, H], np.float32), out=boxes)
        centre = np.float32(0.5 * (factor - 1))
        out = Instances(labels, self.class_ids, self.scores, boxes, self.centroids * factor + centre, areas,
                        self.affordance, self.invalid_pixels * factor * factor)
        picks = self.pick_points * factor + centre
        out.__dict__["pick_points"] = np.minimum(picks, np.array([W - 1, H - 1], np.float32))  # the cached property
        return out

    def to_table(self) -> np.ndarray:
        """The contract's ``segmentation/detections`` table (tables.DETECTIONS)."""
        t = tables.empty(tables.DETECTIONS, len(self))
        t["instance"] = np.arange(1, len(self) + 1)
        t["class_id"] = self.class_ids
        t["score"] = self.scores
        t["u"], t["v"] = self.pick_points[:, 0], self.pick_points[:, 1]
        t["x0"], t["y0"], t["x1"], t["y1"] = self.boxes.T if len(self) else ([],) * 4
        t["area"] = self.areas
        t["affordance"] = self.affordance
        H, W = self.labels.shape
        t["frame_width"], t["frame_height"] = W, H
        t["touches_last_row"] = self.boxes[:, 3] >= H if len(self) else []
        return t

    def masks(self) -> np.ndarray:
        """(N, H, W) bool."""
        return self.labels[None] == np.arange(1, len(self) + 1)[:, None, None]


#: a pick pixel may be this share as far from its mask's edge as the mask's deepest pixel
PICK_DEPTH_SHARE = 0.8


def bin_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) -> (ceil(H / factor), ceil(W / factor), C) float32: the mean of each
    ``factor`` x ``factor`` block of pixels (the last rows and columns are repeated to fill
    the edge blocks), as a sensor's binning. A non-finite value makes its block's mean
    non-finite, so the NaN policy still sees it."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or not (np.issubdtype(frame.dtype, np.floating) or np.issubdtype(frame.dtype, np.integer)):
        raise InvalidFrameError(f"frame must be a numeric (H, W, C) array; got {frame.dtype} {frame.shape}")
    if factor == 1:
        return frame
    H, W, C = frame.shape
    ph, pw = (-H) % factor, (-W) % factor
    f = frame.astype(np.float32, copy=False)
    if ph or pw:
        f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
    h, w = f.shape[0] // factor, f.shape[1] // factor
    import cv2

    # OpenCV's area interpolation is the block mean at an integer factor, 4x numpy's speed
    # (up to 512 channels: validate_config's bound on in_channels)
    out = cv2.resize(np.ascontiguousarray(f), (w, h), interpolation=cv2.INTER_AREA)
    return out.reshape(h, w, C)  # cv2 drops a single channel's axis


def pick_pixels(labels: np.ndarray, centroids: np.ndarray,
                depth_share: float = PICK_DEPTH_SHARE) -> np.ndarray:
    """Where to grip each instance: (N, 2) float32 (u, v), px, on the instance's own mask.

    Of the instance's pixels at least ``depth_share`` times as far from the mask's edge as
    its deepest pixel (the centre of its largest inscribed circle), the one nearest the
    centroid; the centroid itself (sub-pixel) when it qualifies, as on a convex part. On a
    C- or L-shaped part, whose centroid lies off the part or on a thin edge of it, it is a
    point well inside the part, so a suction cup lands on material. Edges are the pixels whose 4-neighbours include
    another label or the frame's border.

    Args:
        labels: (H, W) int, 0 = background, 1..N instances, each with at least one pixel.
        centroids: (N, 2) float, (u, v) of each instance, px.
    """
    n = len(centroids)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    import cv2  # heavy: imported once there are instances

    padded = np.pad(labels, 1)
    inner = padded[1:-1, 1:-1]
    interior = ((inner > 0) & (padded[:-2, 1:-1] == inner) & (padded[2:, 1:-1] == inner)
                & (padded[1:-1, :-2] == inner) & (padded[1:-1, 2:] == inner))
    depth = cv2.distanceTransform(interior.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    index = np.arange(1, n + 1)
    deepest = np.zeros(n + 1, np.float32)
    # numpy's unbuffered maximum: 0.25 ms on a line frame, scipy.ndimage.maximum 1.7 ms
    np.maximum.at(deepest, labels.ravel().astype(np.intp), depth.ravel())
    out = np.asarray(centroids, np.float32).copy()
    H, W = labels.shape
    cu = np.clip(np.rint(out[:, 0]).astype(np.int64), 0, W - 1)
    cv = np.clip(np.rint(out[:, 1]).astype(np.int64), 0, H - 1)
    moved = np.flatnonzero((labels[cv, cu] != index) | (depth[cv, cu] < depth_share * deepest[1:]))
    if not len(moved):
        return out
    vv, uu = np.nonzero(np.isin(labels, moved + 1))
    lab = labels[vv, uu].astype(np.int64)
    deep = depth[vv, uu] >= depth_share * deepest[lab]
    vv, uu, lab = vv[deep], uu[deep], lab[deep]
    d2 = (uu - out[lab - 1, 0]) ** 2 + (vv - out[lab - 1, 1]) ** 2
    order = np.lexsort((d2, lab))
    first = order[np.unique(lab[order], return_index=True)[1]]
    out[lab[first] - 1] = np.stack([uu[first], vv[first]], axis=1)
    return out


def visible_fractions(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N,) share of each mask left visible once every higher-scored mask is painted over
    it: 1 for a mask no better one covers, near 0 for a duplicate of a better detection."""
    order = np.argsort(-scores, kind="stable")
    covered = np.zeros(masks.shape[1:], bool)
    out = np.ones(len(masks))
    for k in order:
        area = int(masks[k].sum())
        if area:
            out[k] = 1.0 - np.count_nonzero(masks[k] & covered) / area
        covered |= masks[k]
    return out


def merge_parts(masks: np.ndarray, scores: np.ndarray, labels: np.ndarray, min_inside: float,
                min_growth: float = 1.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold detections of a part of an object into the detection of the whole.

    A detection whose mask lies mostly inside (at least ``min_inside`` of its area) the
    mask of a lower-scored detection at least ``min_growth`` times larger is a part of
    that object, not another object: painted in score order, the two would leave the part
    and the rest of the object as two instances (two pick points on one object). The
    whole keeps its mask (united with the part's) and takes the part's score and class.

    Args:
        masks: (N, H, W) bool. scores: (N,). labels: (N,) class ids.
        min_inside: 0 < share <= 1; 0 turns merging off.

    Returns:
        (masks, scores, labels) of the detections left, in the input order.
    """
    n = len(masks)
    if n < 2 or min_inside <= 0:
        return masks, scores, labels
    flat = masks.reshape(n, -1).astype(np.float32)
    areas = flat.sum(axis=1)
    inter = flat @ flat.T  # (N, N) pixels in common
    masks, scores, labels = masks.copy(), scores.copy(), labels.copy()
    keep = np.ones(n, bool)
    for i in np.argsort(-scores, kind="stable"):  # best first: a part folds into its whole
        if not keep[i] or areas[i] == 0:
            continue
        wholes = [j for j in range(n) if j != i and keep[j] and scores[j] <= scores[i]
                  and inter[i, j] >= min_inside * areas[i] and areas[j] >= min_growth * areas[i]]
        if wholes:
            j = max(wholes, key=lambda k: areas[k])
            masks[j] |= masks[i]
            scores[j], labels[j] = scores[i], labels[i]
            keep[i] = False
    return masks[keep], scores[keep], labels[keep]


def _reach_offsets(gap_px: int) -> list[tuple[int, int]]:
    """Half of the (dy, dx) offsets within Chebyshev distance gap_px + 1, one of each +/- pair;
    gap_px 0: the 4-neighbourhood."""
    if gap_px <= 0:
        return [(0, 1), (1, 0)]
    r = gap_px + 1
    return [(dy, dx) for dy in range(0, r + 1) for dx in range(-r, r + 1) if dy > 0 or dx > 0]


def merge_touching(instances: Instances, min_contact_px: int, gap_px: int = 0) -> Instances:
    """Join instances of one class whose masks touch: one object a model split into pieces.

    A split object gives one pick point per piece, and a second robot then grips an object
    another robot already took (a double pick). On 100 generated line frames (seed 31) the
    shipped Mask R-CNN's touching pairs of one class were pieces of one object in 26 of
    34 cases; the cost is one pick for two touching objects of one class (docs/robots.md).
    Groups are the connected components of the touch graph; a group keeps its best score
    and its highest affordance.

    Args:
        instances: one frame's instances.
        min_contact_px: how many pixel pairs of the two masks must be neighbours (4-
            neighbourhood; within ``gap_px + 1`` px, Chebyshev, when ``gap_px`` > 0) to
            count as touching; 0 returns ``instances`` unchanged.
        gap_px: background gap, px, that may lie between two pieces of one object (a
            model's masks often stop a pixel short of each other).
    """
    n = len(instances)
    if min_contact_px <= 0 or n < 2:
        return instances
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    lab = instances.labels.astype(np.int64)
    H, W = lab.shape
    ys, xs = np.nonzero(lab)  # only instance pixels can touch: far fewer than the frame's
    own = lab[ys, xs]
    a_parts, b_parts = [], []
    for dy, dx in _reach_offsets(gap_px):  # pixel pairs at most gap_px + 1 apart (Chebyshev)
        y2, x2 = ys + dy, xs + dx
        ok = (y2 < H) & (x2 >= 0) & (x2 < W)
        a_parts.append(own[ok])
        b_parts.append(lab[y2[ok], x2[ok]])
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    edge = (b > 0) & (a != b)
    lo, hi = np.minimum(a[edge], b[edge]), np.maximum(a[edge], b[edge])
    pairs, contact = np.unique(lo * (n + 1) + hi, return_counts=True)
    i, j = np.divmod(pairs[contact >= min_contact_px], n + 1)
    same = instances.class_ids[i - 1] == instances.class_ids[j - 1]
    i, j = i[same] - 1, j[same] - 1
    if not len(i):
        return instances
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    groups, group_of = connected_components(graph, directed=False)
    scores = np.full(groups, -np.inf, np.float32)
    np.maximum.at(scores, group_of, instances.scores)
    classes = np.zeros(groups, np.int64)
    classes[group_of] = instances.class_ids
    aff = np.full(groups, np.nan, np.float32)
    if np.isfinite(instances.affordance).any():
        np.fmax.at(aff, group_of, instances.affordance)
    remap = np.concatenate([[0], group_of + 1])
    return Instances.from_labels(remap[lab], classes, scores, aff, instances.invalid_pixels)


def foreground_mask(frame: np.ndarray, config: Mapping[str, Any]) -> np.ndarray | None:
    """(H, W) bool: the pixels the frame's own physics calls object, by the config's
    ``snap_above_channel`` / ``snap_above`` (e.g. height above the belt, mm) and
    ``snap_below_channel`` / ``snap_below`` (e.g. X-ray transmission below the empty
    belt's), either true; None when neither channel is set. NaN is background."""
    fg = None
    hi, lo = int(config.get("snap_above_channel", -1)), int(config.get("snap_below_channel", -1))
    with np.errstate(invalid="ignore"):
        if hi >= 0:
            fg = frame[..., hi] > float(config["snap_above"])
        if lo >= 0:
            below = frame[..., lo] < float(config["snap_below"])
            fg = below if fg is None else fg | below
    return fg


def snap_to_foreground(instances: Instances, foreground: np.ndarray, reach_px: int) -> Instances:
    """Fit the masks to the foreground the sensor sees (the line's height and X-ray).

    A mask head draws its masks on a coarse grid (28 x 28 per box in Mask R-CNN): on the
    line's 2 mm pixels it overruns an object's edge by a pixel and breaks a copper wire
    one or two pixels wide into pieces with gaps, or draws it a pixel beside the wire.
    Here (1) each instance grows, ``reach_px`` times by one pixel, into foreground pixels
    no instance holds (where two instances reach the same pixel, the higher label takes
    it); (2) then its pixels off the foreground but next to it (within 1 px: the overrun)
    are dropped, while pixels far from any foreground stay (an object the foreground
    misses keeps its mask). Instances left without a pixel are dropped.

    Args:
        instances: one frame's instances.
        foreground: (H, W) bool, :func:`foreground_mask`.
        reach_px: growth steps, px; 0 returns ``instances`` unchanged.
    """
    if reach_px <= 0 or not len(instances):
        return instances
    import cv2

    # OpenCV's 3 x 3 max filter on the uint16 labels: the fit of a 2 mm line frame takes
    # 1.1 ms against scipy's 2.7 (same labels)
    square = np.ones((3, 3), np.uint8)
    labels = instances.labels.astype(np.uint16)
    free = foreground & (labels == 0)
    for _ in range(reach_px):
        grown = cv2.dilate(labels, square)
        take = free & (grown > 0)
        labels[take] = grown[take]
        free &= ~take
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # 4-neighbours: the overrun
    labels[(cv2.dilate(foreground.astype(np.uint8), cross) > 0) & ~foreground] = 0
    return Instances.from_labels(labels, instances.class_ids, instances.scores, instances.affordance,
                                 instances.invalid_pixels)


def masks_to_labels(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint (N, H, W) bool masks into a label map, best score on top.

    Returns (labels, order): label k is mask ``order[k-1]``.
    """
    order = np.argsort(-scores, kind="stable")
    H, W = masks.shape[1:]
    labels = np.zeros((H, W), np.uint16)
    for k in reversed(range(len(order))):  # lowest score first, best painted last
        labels[masks[order[k]]] = k + 1
    return labels, order


@dataclass
class Segmenter(abc.ABC):
    """Base of all models: the plugin contract (see the module docstring). Subclasses set
    ``type_name``, ``default_config`` and ``param_group``, and implement
    :meth:`from_config` and :meth:`predict`, and extend :meth:`validate_config`.

    Attributes:
        config: the model config (``type``, ``in_channels``, ``classes`` and type keys).
        fill_values: (C,) value that replaces a non-finite input pixel, per channel.
        max_invalid_fraction: frames with more invalid pixels are refused.
        class_head: a second stage that gives each instance its class from its mask's
            pooled channels (``class_head.ClassHead``; ``load_segmenter`` attaches the
            checkpoint's), or None.
    """

    config: dict[str, Any]
    fill_values: np.ndarray = field(default=None)  # type: ignore[arg-type]  # set in __post_init__
    max_invalid_fraction: float = 0.25
    class_head: ClassHead | None = None
    type_name: ClassVar[str] = ""
    #: the config a type starts from; a config given by a user or a checkpoint overrides it
    default_config: ClassVar[Mapping[str, Any]] = {}
    #: the node parameter group of this type's options (``{param_group}.{key}``)
    param_group: ClassVar[str] = ""
    #: "gradient" (msseg train's loop, TorchSegmenter hooks) or "fit" (:meth:`fit`)
    trained_by: ClassVar[str] = "gradient"

    def __post_init__(self) -> None:
        if self.fill_values is None:
            self.fill_values = np.zeros(self.in_channels, np.float32)

    @property
    def in_channels(self) -> int:
        return int(self.config["in_channels"])

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    @property
    def device(self) -> str:
        return "cpu"

    def check_frame(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validate and sanitise a frame. Returns (float32 frame, invalid-pixel mask)."""
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = frame[..., None]
        if frame.ndim != 3:
            raise InvalidFrameError(f"frame must be (H, W, C); got shape {frame.shape}")
        if frame.shape[2] != self.in_channels:
            raise InvalidFrameError(
                f"frame has {frame.shape[2]} channel(s) but model {self.config.get('name', self.type_name)!r} "
                f"takes {self.in_channels}"
            )
        if frame.shape[0] < 8 or frame.shape[1] < 8:
            raise InvalidFrameError(f"frame of {frame.shape[0]}x{frame.shape[1]} px is too small (min 8x8)")
        if not (np.issubdtype(frame.dtype, np.floating) or np.issubdtype(frame.dtype, np.integer)):
            raise InvalidFrameError(f"frame dtype {frame.dtype} is not numeric")
        f = frame.astype(np.float32, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):
            # NaN and inf make the sum non-finite (a finite overflow only takes the slow path)
            if np.isfinite(f.sum()):
                return f, np.zeros(f.shape[:2], bool)
        invalid = ~np.isfinite(f).all(axis=2)
        n_bad = int(invalid.sum())
        if n_bad:
            if n_bad > self.max_invalid_fraction * invalid.size:
                raise InvalidFrameError(
                    f"{n_bad} of {invalid.size} pixels are NaN or inf "
                    f"(more than {self.max_invalid_fraction:.0%})"
                )
            f = np.where(np.isfinite(f), f, self.fill_values[None, None, :]).astype(np.float32)
        return f, np.asarray(invalid)

    def __call__(self, frame: np.ndarray, binning: int = 1) -> Instances:
        """Validate ``frame`` (see the NaN policy), predict, join touching pieces of one object
        (``merge_touching_px``, :func:`merge_touching`), fit the masks to the frame's
        foreground (``snap_px``, :func:`snap_to_foreground`), give each instance the class
        head's class (:attr:`class_head`, when there is one), and clear invalid pixels.

        ``binning`` > 1: all of that on the frame binned by ``binning`` (:func:`bin_frame`;
        pixel settings such as ``merge_touching_px`` hold on the binned grid), with the
        instances brought back to the frame's pixels (:meth:`Instances.upscaled`). A frame
        finer than the model's training grid is segmented at that grid and at its cost.
        """
        if binning > 1:
            full = np.shape(frame)[:2]
            return self(bin_frame(frame, binning)).upscaled(binning, (int(full[0]), int(full[1])))
        f, invalid = self.check_frame(frame)
        inst = merge_touching(self.predict(f), int(self.config.get("merge_touching_px", 0)),
                              int(self.config.get("merge_gap_px", 0)))
        snap_px = int(self.config.get("snap_px", 0))
        if snap_px:
            fg = foreground_mask(f, self.config)
            if fg is not None:
                fg &= ~invalid
                inst = snap_to_foreground(inst, fg, snap_px)
        if self.class_head is not None:
            inst = self.class_head.apply(f, inst)
        n_bad = int(invalid.sum())
        if n_bad:
            labels = inst.labels.copy()
            labels[invalid] = 0
            inst = Instances.from_labels(labels, inst.class_ids, inst.scores, inst.affordance, n_bad)
        return inst

    @abc.abstractmethod
    def predict(self, frame: np.ndarray) -> Instances:
        """Inference on a validated (H, W, C) float32 frame."""

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """``default_config`` updated with ``config``, checked; raises ModelConfigError.
        Types extend this with their own keys."""
        cfg = {**cls.default_config, **config}
        require(cfg, "in_channels", int, lambda v: 1 <= v <= 512)
        require(cfg, "classes", list, lambda v: len(v) >= 1)
        cfg.setdefault("merge_touching_px", 0)
        require(cfg, "merge_touching_px", int, lambda v: 0 <= v <= 10_000)
        cfg.setdefault("merge_gap_px", 0)
        require(cfg, "merge_gap_px", int, lambda v: 0 <= v <= 16)
        c = cfg["in_channels"]
        cfg.setdefault("snap_px", 0)
        require(cfg, "snap_px", int, lambda v: 0 <= v <= 16)
        for side in ("above", "below"):
            cfg.setdefault(f"snap_{side}_channel", -1)
            require(cfg, f"snap_{side}_channel", int, lambda v: -1 <= v < c)
            cfg.setdefault(f"snap_{side}", 0.0)
            require(cfg, f"snap_{side}", (int, float))
        if cfg["snap_px"] and cfg["snap_above_channel"] < 0 and cfg["snap_below_channel"] < 0:
            raise ModelConfigError("model config 'snap_px' > 0 needs 'snap_above_channel' or 'snap_below_channel' "
                                   "(the channels that tell object from background)")
        return cfg

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: dict[str, Any], weights: dict[str, Any] | None = None, device: str = "cpu") -> Segmenter:
        """Build the model from its config and, if given, a checkpoint's tensors."""

    @classmethod
    def config_from_parameters(cls, group: Mapping[str, Any], score_threshold: float) -> dict[str, Any]:
        """Config keys from the node's ``{param_group}.*`` parameters (prefix removed) and
        its ``model.score_threshold`` (applied after the model by the node)."""
        return dict(group)

    def state_dict(self) -> dict[str, Any]:
        """Tensors or arrays to save; see msseg_ros.core.segmentation.checkpoint."""
        raise NotImplementedError

    def parameter_counts(self) -> tuple[int, int]:
        """(total, trainable) parameters; a fitted model's are all "trainable"."""
        total = int(sum(np.asarray(v).size for v in self.state_dict().values()))
        return total, total

    @classmethod
    def parameter_counts_for(cls, config: Mapping[str, Any]) -> tuple[int, int]:
        """(total, trainable) parameters of a model of this config, without weights."""
        return cls.from_config(dict(config)).parameter_counts()

    @classmethod
    def fit(cls, config: dict[str, Any], context: TrainingContext,
            log: Callable[[str], None]) -> Segmenter:
        """Fit a ``trained_by == "fit"`` model to ``context.dataset``."""
        raise ModelConfigError(f"{cls.type_name} models are trained by gradient steps, not fitted")

    def extra_metrics(self) -> ExtraMetrics | None:
        """A fresh accumulator of this type's own evaluation metrics, or None."""
        return None

    def export_spec(self) -> ExportSpec:
        """The module and inputs another runtime exports (see :class:`ExportSpec`)."""
        raise ExportError(f"{self.type_name} models cannot be exported")

    @property
    def runtime(self) -> str:
        """The inference runtime in use (``RUNTIMES``)."""
        return "torch"

    def use_runtime(self, name: str, cache_dir: Any = None) -> None:
        """Run inference on runtime ``name``; only torch models have others.

        Raises:
            ExportError: this model cannot run on that runtime (the message says why).
        """
        if name not in RUNTIMES:
            raise ModelConfigError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES.names())}")
        if name != "torch":
            raise ExportError(f"{self.type_name} models run in Python only, not on {name}")


SEGMENTERS: Registry[type[Segmenter]] = Registry("segmenter", required=("from_config", "predict"))
# The model types, one line each; imported on first use (listing them imports no torch).
SEGMENTERS.add_lazy("maskrcnn", "msseg_ros.core.segmentation.maskrcnn:MaskRCNNSegmenter")
SEGMENTERS.add_lazy("bicameral", "msseg_ros.core.segmentation.bicameral:BicameralSegmenter")
SEGMENTERS.add_lazy("classic", "msseg_ros.core.segmentation.classic:ClassicSegmenter")
SEGMENTERS.add_lazy("embeddings", "msseg_ros.core.segmentation.embeddings:EmbeddingSegmenter")

#: Inference runtimes of the torch models (see msseg_ros.core.segmentation.runtimes).
RUNTIMES: Registry[Any] = Registry("runtime", required=("build",))
RUNTIMES.add_lazy("torch", "msseg_ros.core.segmentation.runtimes:TorchRuntime")
RUNTIMES.add_lazy("onnxruntime", "msseg_ros.core.segmentation.runtimes:OnnxRuntime")
RUNTIMES.add_lazy("openvino", "msseg_ros.core.segmentation.runtimes:OpenVinoRuntime")
RUNTIMES.add_lazy("openvino_bf16", "msseg_ros.core.segmentation.runtimes:OpenVinoBf16Runtime")
RUNTIMES.add_lazy("onnxruntime_int8", "msseg_ros.core.segmentation.runtimes:OnnxRuntimeInt8")


#: the score threshold of a model that has not been calibrated
DEFAULT_OPERATING_THRESHOLD = 0.5


def operating_threshold(config: Mapping[str, Any]) -> float:
    """A model's calibrated score threshold: ``operating_threshold`` of its config (chosen
    on the validation split by ``msseg eval --calibrate --write``), else 0.5.

    Raises:
        ModelConfigError: the stored value is not a number in [0, 1].
    """
    v = config.get("operating_threshold", DEFAULT_OPERATING_THRESHOLD)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise ModelConfigError(f"model config 'operating_threshold' = {v!r} must be a number in [0, 1]")
    return float(v)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``.

    Raises:
        ModelConfigError: an unknown device, or ``cuda`` where torch sees no CUDA device
            (refused here, before any model is built on it).
    """
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ModelConfigError(f"model.device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ModelConfigError(f"model.device {device!r}: torch sees no CUDA device on this machine "
                               "(use auto or cpu)")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ModelConfigError(f"model.device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def require(config: dict[str, Any], key: str, kind: type | tuple[type, ...],
            check: Callable[[Any], bool] | None = None) -> Any:
    """A config value, type-checked; raises ModelConfigError naming the key."""
    if key not in config:
        raise ModelConfigError(f"model config lacks {key!r}")
    v = config[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
        raise ModelConfigError(f"model config {key!r} = {v!r} has the wrong type")
    if check is not None and not check(v):
        raise ModelConfigError(f"model config {key!r} = {v!r} is out of range")
    if isinstance(v, float) and not math.isfinite(v):
        raise ModelConfigError(f"model config {key!r} must be finite")
    return v
