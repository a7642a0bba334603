"""Augmentations of seed 000 §5.2: flips, affine (rotation ±180°, shift up to 40 %) and
patchwork (objects from several images pasted without overlap onto an empty belt); and
copy-paste (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation", CVPR 2021): objects from other images pasted, rescaled, in front
of a frame's own scene, for datasets too small to show many arrangements; scale jitter
(the whole frame resized, then cropped or padded back to its size: the "scale jittering" that
paper pairs with copy-paste, here 0.5-1.5x) and photometric jitter (contrast, brightness and
a per-channel cast), for few photos taken at one distance under one light.

All work on (H, W, C) float32 frames and (N, H, W) bool masks; the fill value of pixels
that come from outside the frame is the per-channel ``fill`` (the empty belt).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from msseg_ros.core.learning.options import TrainingContext


def flip(frame: np.ndarray, masks: np.ndarray, horizontal: bool) -> tuple[np.ndarray, np.ndarray]:
    axis = 1 if horizontal else 0
    return np.ascontiguousarray(np.flip(frame, axis)), np.ascontiguousarray(np.flip(masks, axis + 1))


def affine(frame: np.ndarray, masks: np.ndarray, rng: np.random.Generator, fill: np.ndarray,
           max_rotation_deg: float = 180.0, max_shift: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation about the centre and shift (fraction of W and H)."""
    H, W = frame.shape[:2]
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    M = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, 1.0)
    M[0, 2] += rng.uniform(-max_shift, max_shift) * W
    M[1, 2] += rng.uniform(-max_shift, max_shift) * H
    out = np.empty_like(frame)
    for c0 in range(0, frame.shape[2], 4):  # OpenCV warps up to 4 channels at once
        c1 = min(c0 + 4, frame.shape[2])
        part = cv2.warpAffine(frame[..., c0:c1], M, (W, H), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(map(float, fill[c0:c1])) + (0,) * (4 - (c1 - c0)))
        out[..., c0:c1] = part.reshape(H, W, c1 - c0)
    warped = np.stack([cv2.warpAffine(m.astype(np.uint8), M, (W, H), flags=cv2.INTER_NEAREST) > 0
                       for m in masks]) if len(masks) else masks
    return out, warped


def patchwork(samples: list[tuple[np.ndarray, dict[str, Any]]], shape: tuple[int, int], fill: np.ndarray,
              rng: np.random.Generator, n_min: int = 2, n_max: int = 10, tries: int = 30
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste ``n_min..n_max`` objects cut from ``samples`` onto an empty frame.

    Returns (frame, masks (N, H, W), labels (N,)).
    """
    H, W = shape
    C = samples[0][0].shape[2]
    frame = np.broadcast_to(fill.astype(np.float32), (H, W, C)).copy()
    occupied = np.zeros((H, W), bool)
    masks: list[np.ndarray] = []
    labels: list[int] = []
    want = int(rng.integers(n_min, n_max + 1))
    for _ in range(tries):
        if len(masks) >= want:
            break
        img, tgt = samples[int(rng.integers(len(samples)))]
        if len(tgt["labels"]) == 0:
            continue
        k = int(rng.integers(len(tgt["labels"])))
        m = tgt["masks"][k]
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        h, w = y1 - y0, x1 - x0
        if h >= H or w >= W:
            continue
        oy, ox = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
        local = m[y0:y1, x0:x1]
        if np.any(occupied[oy:oy + h, ox:ox + w] & local):
            continue
        region = frame[oy:oy + h, ox:ox + w]
        region[local] = img[y0:y1, x0:x1][local]
        new = np.zeros((H, W), bool)
        new[oy:oy + h, ox:ox + w] = local
        occupied |= new
        masks.append(new)
        labels.append(int(tgt["labels"][k]))
    return frame, np.array(masks, bool).reshape(-1, H, W), np.array(labels, np.int64)


def copy_paste(frame: np.ndarray, masks: np.ndarray, labels: np.ndarray,
               samples: list[tuple[np.ndarray, dict[str, Any]]], rng: np.random.Generator,
               n_max: int = 6, scale: tuple[float, float] = (0.5, 1.5), min_visible: float = 0.3
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste 1..``n_max`` objects cut from ``samples`` onto ``frame``, each at a random
    place and a random scale in ``scale``, in front of what is there (pasted pixels leave
    the masks under them). An instance, the frame's own or an earlier pasted one, left with
    less than ``min_visible`` of its pixels is dropped (mostly hidden: no longer a fair target).

    Args:
        frame: (H, W, C) float32.
        masks: (N, H, W) bool, the frame's instances.
        labels: (N,) int64 class ids.
        samples: (frame, target) pairs to cut objects from (target has ``masks`` and ``labels``).

    Returns:
        (frame, masks (M, H, W), labels (M,)): the frame's visible instances, then the pasted ones.
    """
    H, W = frame.shape[:2]
    frame = frame.copy()
    all_masks = list(masks.copy())
    all_labels = [int(v) for v in labels]
    areas = [int(m.sum()) for m in masks]  # each instance's pixels before any paste
    for _ in range(int(rng.integers(1, n_max + 1))):
        img, tgt = samples[int(rng.integers(len(samples)))]
        if len(tgt["labels"]) == 0:
            continue
        k = int(rng.integers(len(tgt["labels"])))
        ys, xs = np.nonzero(tgt["masks"][k])
        if len(ys) == 0:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        s = float(rng.uniform(*scale))
        h, w = max(1, round((y1 - y0) * s)), max(1, round((x1 - x0) * s))
        if h >= H or w >= W:
            continue
        patch = cv2.resize(img[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        local = cv2.resize(tgt["masks"][k][y0:y1, x0:x1].astype(np.uint8), (w, h),
                           interpolation=cv2.INTER_NEAREST_EXACT) > 0
        if local.sum() < 4:
            continue
        oy, ox = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        region = frame[oy:oy + h, ox:ox + w]
        region[local] = patch[local]
        new = np.zeros((H, W), bool)
        new[oy:oy + h, ox:ox + w] = local
        for m in all_masks:
            m &= ~new
        all_masks.append(new)
        all_labels.append(int(tgt["labels"][k]))
        areas.append(int(local.sum()))
    out = np.array(all_masks, bool).reshape(-1, H, W)
    keep = out.reshape(len(out), H * W).sum(1) >= np.maximum(min_visible * np.array(areas), 4)
    return frame, out[keep], np.array(all_labels, np.int64)[keep]


def scale_jitter(frame: np.ndarray, masks: np.ndarray, rng: np.random.Generator, fill: np.ndarray,
                 scale: tuple[float, float] = (0.5, 1.5)) -> tuple[np.ndarray, np.ndarray]:
    """The frame and its masks resized by one factor drawn from ``scale``, then cut back to
    (H, W) at a random place (enlarged) or placed at a random place on ``fill`` (shrunk).
    Instances cut by the border keep their visible part."""
    H, W, C = frame.shape
    s = float(rng.uniform(*scale))
    h, w = max(1, round(H * s)), max(1, round(W * s))
    big = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, C)
    small = (np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT) > 0 for m in masks])
             if len(masks) else np.zeros((0, h, w), bool))
    out = np.broadcast_to(fill.astype(np.float32), (H, W, C)).copy()
    out_masks = np.zeros((len(masks), H, W), bool)
    # source window (enlarged) or destination offset (shrunk), per axis
    sy = int(rng.integers(0, h - H + 1)) if h > H else 0
    sx = int(rng.integers(0, w - W + 1)) if w > W else 0
    dy = int(rng.integers(0, H - h + 1)) if h < H else 0
    dx = int(rng.integers(0, W - w + 1)) if w < W else 0
    ch, cw = min(h, H), min(w, W)
    out[dy:dy + ch, dx:dx + cw] = big[sy:sy + ch, sx:sx + cw]
    out_masks[:, dy:dy + ch, dx:dx + cw] = small[:, sy:sy + ch, sx:sx + cw]
    return out, out_masks


def photometric(frame: np.ndarray, rng: np.random.Generator, contrast: tuple[float, float] = (0.7, 1.3),
                brightness: tuple[float, float] = (0.8, 1.2), cast: float = 0.1) -> np.ndarray:
    """Contrast about each channel's mean, then one brightness gain for the frame times a
    per-channel gain in 1 ± ``cast`` (a colour cast). Values are not clipped: the frame's
    units are the model's input units, whatever their range."""
    mean = frame.reshape(-1, frame.shape[2]).mean(0)
    gain = float(rng.uniform(*brightness)) * rng.uniform(1 - cast, 1 + cast, frame.shape[2])
    out = ((frame - mean) * float(rng.uniform(*contrast)) + mean) * gain
    return out.astype(np.float32)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    out = np.zeros((len(masks), 4), np.float32)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        out[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return out


def augment_instances(frame: np.ndarray, target: dict[str, Any], context: TrainingContext
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training sample augmented per ``context.options.augment``: patchwork,
    copy-paste, scale, flips, affine, photometric, in that order, each drawn from ``context.rng``. Instances left with fewer than
    4 pixels are dropped.

    Returns:
        (frame (H, W, C), masks (N, H, W) bool, labels (N,) int64).
    """
    a, rng, fill = context.options.augment, context.rng, context.fill
    masks, labels = target["masks"], target["labels"]
    if a.patchwork and rng.random() < a.patchwork:
        samples = [context.pool[int(rng.integers(len(context.pool)))] for _ in range(6)]
        frame, masks, labels = patchwork(samples, frame.shape[:2], fill, rng)
    if a.copy_paste and rng.random() < a.copy_paste:
        samples = [context.pool[int(rng.integers(len(context.pool)))] for _ in range(6)]
        frame, masks, labels = copy_paste(frame, masks, labels, samples, rng)
    if a.scale and rng.random() < a.scale:
        frame, masks = scale_jitter(frame, masks, rng, fill)
    if rng.random() < a.hflip:
        frame, masks = flip(frame, masks, horizontal=True)
    if rng.random() < a.vflip:
        frame, masks = flip(frame, masks, horizontal=False)
    if a.affine and rng.random() < a.affine:
        frame, masks = affine(frame, masks, rng, fill)
    if a.photometric and rng.random() < a.photometric:
        frame = photometric(frame, rng)
    keep = masks.reshape(len(masks), -1).sum(1) >= 4 if len(masks) else np.zeros(0, bool)
    return frame, masks[keep], labels[keep]
