"""The Segmenter interface, its output, and the registry of models.

A segmenter is called on one frame, ``(H, W, C)`` float (C = its ``in_channels``), and
returns :class:`Instances`. Loading and inference live here in core; nodes only call them.

NaN policy: non-finite pixels (NaN, ±inf, e.g. profiler drop-outs) are replaced by the
model's fill value for that channel (its background, e.g. the empty belt), predicted
as usual, then removed from every instance mask, so no instance is made of invalid
pixels. ``Instances.invalid_pixels`` counts them. A frame with more than
``max_invalid_fraction`` (default 0.25) invalid pixels is refused with InvalidFrameError.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from msseg_ros.core import tables
from msseg_ros.core.errors import MssegError
from msseg_ros.core.registry import Registry


class SegmentationError(MssegError):
    """Base of the segmentation errors."""


class InvalidFrameError(SegmentationError, ValueError):
    """A frame the model cannot take: wrong shape, channel count, dtype or too many NaN."""


class ModelConfigError(SegmentationError, ValueError):
    """A model configuration is invalid; the message names the key."""


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

    @classmethod
    def from_labels(cls, labels: np.ndarray, class_ids, scores, affordance=None,
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
        flat = labels.ravel().astype(np.int64)
        if flat.size and flat.max() > n:
            raise ValueError(f"label {flat.max()} but only {n} instances")
        areas = np.bincount(flat, minlength=n + 1)[1:]
        keep = np.flatnonzero(areas > 0)
        remap = np.zeros(n + 1, np.int64)
        remap[keep + 1] = np.arange(1, len(keep) + 1)
        new = remap[labels].astype(np.uint16)
        H, W = labels.shape
        vv, uu = np.divmod(np.arange(H * W), W)
        m = len(keep)
        sel = new.ravel() > 0
        lab = new.ravel()[sel].astype(np.int64)
        cnt = np.bincount(lab, minlength=m + 1)[1:].astype(np.float64)
        cu = np.bincount(lab, uu[sel], minlength=m + 1)[1:] / np.maximum(cnt, 1)
        cv = np.bincount(lab, vv[sel], minlength=m + 1)[1:] / np.maximum(cnt, 1)
        boxes = np.zeros((m, 4), np.float32)
        if m:
            x0 = np.full(m + 1, W, np.int64)
            y0 = np.full(m + 1, H, np.int64)
            x1 = np.zeros(m + 1, np.int64)
            y1 = np.zeros(m + 1, np.int64)
            np.minimum.at(x0, lab, uu[sel])
            np.minimum.at(y0, lab, vv[sel])
            np.maximum.at(x1, lab, uu[sel])
            np.maximum.at(y1, lab, vv[sel])
            boxes = np.stack([x0[1:], y0[1:], x1[1:] + 1, y1[1:] + 1], axis=1).astype(np.float32)
        return cls(new, class_ids[keep], scores[keep], boxes,
                   np.stack([cu, cv], axis=1).astype(np.float32), cnt.astype(np.int64),
                   aff[keep], invalid_pixels)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Instances:
        return cls.from_labels(np.zeros(shape, np.uint16), [], [])

    def to_table(self) -> np.ndarray:
        """The contract's ``segmentation/detections`` table (tables.DETECTIONS)."""
        t = tables.empty(tables.DETECTIONS, len(self))
        t["instance"] = np.arange(1, len(self) + 1)
        t["class_id"] = self.class_ids
        t["score"] = self.scores
        t["u"], t["v"] = self.centroids[:, 0], self.centroids[:, 1]
        t["x0"], t["y0"], t["x1"], t["y1"] = self.boxes.T if len(self) else ([],) * 4
        t["area"] = self.areas
        t["affordance"] = self.affordance
        return t

    def masks(self) -> np.ndarray:
        """(N, H, W) bool."""
        return self.labels[None] == np.arange(1, len(self) + 1)[:, None, None]


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
    """Base of all models. Subclasses set ``type_name`` and implement :meth:`predict`
    and :meth:`from_config`.

    Attributes:
        config: the model config (``type``, ``in_channels``, ``classes`` and type keys).
        fill_values: (C,) value that replaces a non-finite input pixel, per channel.
        max_invalid_fraction: frames with more invalid pixels are refused.
    """

    config: dict
    fill_values: np.ndarray = field(default=None)  # type: ignore[assignment]
    max_invalid_fraction: float = 0.25
    type_name: ClassVar[str] = ""

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
        invalid = ~np.isfinite(f).all(axis=2)
        n_bad = int(invalid.sum())
        if n_bad:
            if n_bad > self.max_invalid_fraction * invalid.size:
                raise InvalidFrameError(
                    f"{n_bad} of {invalid.size} pixels are NaN or inf "
                    f"(more than {self.max_invalid_fraction:.0%})"
                )
            f = np.where(np.isfinite(f), f, self.fill_values[None, None, :]).astype(np.float32)
        return f, invalid

    def __call__(self, frame: np.ndarray) -> Instances:
        """Validate ``frame`` (see the NaN policy), predict, and clear invalid pixels."""
        f, invalid = self.check_frame(frame)
        inst = self.predict(f)
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
    @abc.abstractmethod
    def from_config(cls, config: dict, weights: dict | None = None, device: str = "cpu") -> Segmenter:
        """Build the model from its config and, if given, a checkpoint's tensors."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors or arrays to save; see msseg_ros.core.segmentation.checkpoint."""
        raise NotImplementedError


SEGMENTERS: Registry[type[Segmenter]] = Registry("segmenter", required=("from_config", "predict"))


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


def require(config: dict, key: str, kind: type | tuple[type, ...], check=None) -> Any:
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
