"""Overlays for people: the input with masks coloured by class, boxes, labels and scores."""
from __future__ import annotations

import cv2
import numpy as np

from msseg_ros.core import cells
from msseg_ros.core.segmentation.base import Instances


def false_colour(image: np.ndarray) -> np.ndarray:
    """(H, W, 11) frame -> (H, W, 3) uint8: VNIR 691/561/433 nm as R/G/B, stretched by
    the Table 6.1 statistics so that the dark belt is dark and metals are visible."""
    bands = image[..., [7, 5, 3]].astype(np.float64)
    lo = np.array([cells.TABLE_6_1_MEAN[i] - cells.TABLE_6_1_STD[i] for i in (7, 5, 3)])
    hi = 8000.0
    return (np.clip((bands - lo) / (hi - lo), 0, 1) ** 0.7 * 255).astype(np.uint8)


def class_colours(n: int) -> np.ndarray:
    """(n + 1, 3) uint8 RGB; index 0 unused (background)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    cols = [(0, 0, 0)] + [tuple(int(255 * c) for c in cmap(i % cmap.N)[:3]) for i in range(n)]
    return np.array(cols, np.uint8)


def display_rgb(frame: np.ndarray) -> np.ndarray:
    """Something to draw on: RGB uint8 from a 3-channel image, the 11-channel false colour,
    or the first channel stretched to grey."""
    if frame.ndim == 3 and frame.shape[2] == 11:
        return false_colour(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        f = frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(f)
    g = frame if frame.ndim == 2 else frame[..., 0]
    g = np.nan_to_num(g.astype(np.float64))
    lo, hi = np.percentile(g, 1), np.percentile(g, 99)
    g = np.clip((g - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def render_overlay(frame: np.ndarray, inst: Instances, classes: list[str], alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    img = display_rgb(frame).copy()
    colours = class_colours(len(classes))
    if len(inst):
        lab = inst.labels.astype(np.int64)
        per_pixel_class = np.concatenate([[0], inst.class_ids])[lab]
        m = lab > 0
        img[m] = ((1 - alpha) * img[m] + alpha * colours[per_pixel_class[m]]).astype(np.uint8)
    for k in range(len(inst)):
        c = tuple(int(v) for v in colours[int(inst.class_ids[k])])
        x0, y0, x1, y1 = (int(round(v)) for v in inst.boxes[k])
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), c, 1)
        name = classes[int(inst.class_ids[k]) - 1] if 0 < inst.class_ids[k] <= len(classes) else str(inst.class_ids[k])
        text = f"{name} {inst.scores[k]:.2f}"
        cv2.putText(img, text, (x0, max(y0 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, c, 1, cv2.LINE_AA)
    return img


def filter_score(inst: Instances, min_score: float) -> Instances:
    """Drop instances scoring below ``min_score`` (relabelled 1..n)."""
    keep = inst.scores >= min_score
    return inst if keep.all() else inst.subset(keep)
