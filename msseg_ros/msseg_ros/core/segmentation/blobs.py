"""Height-threshold blob segmentation (seed 000 §2.2, the classic method's first step)."""
from __future__ import annotations

import numpy as np
from skimage.measure import label as cc_label


def height_blobs(height_mm: np.ndarray, threshold_mm: float = 1.0, min_area_px: int = 300,
                 also: np.ndarray | None = None) -> np.ndarray:
    """Label the connected regions higher than ``threshold_mm`` with more than
    ``min_area_px`` pixels (8-connectivity).

    Args:
        height_mm: (H, W) height above the belt, mm. NaN counts as belt.
        also: (H, W) bool, more pixels to count as material whatever their height (e.g.
            where the X-ray is attenuated: thin parts under the height threshold).
    Returns:
        (H, W) int32 labels, 0 = belt, 1..n = blobs in raster order.
    """
    above = np.nan_to_num(height_mm, nan=0.0) > threshold_mm
    if also is not None:
        above |= also
    labels = cc_label(above, connectivity=2)
    keep = np.bincount(labels.ravel()) > min_area_px
    keep[0] = False
    return cc_label(keep[labels], connectivity=2).astype(np.int32)


def match_instances(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> dict[int, int]:
    """Match ground-truth to predicted instances one-to-one by IoU >= ``iou_threshold``
    (above 0.5 a match is necessarily unique). Returns {gt label: pred label}."""
    g, p = gt.ravel(), pred.ravel()
    both = (g > 0) & (p > 0)
    n_g, n_p = int(g.max()) + 1, int(p.max()) + 1
    inter = np.bincount(g[both] * n_p + p[both], minlength=n_g * n_p).reshape(n_g, n_p)
    area_g, area_p = np.bincount(g, minlength=n_g), np.bincount(p, minlength=n_p)
    out = {}
    for gi, pi in zip(*np.nonzero(inter), strict=True):
        if gi and pi:
            iou = inter[gi, pi] / (area_g[gi] + area_p[pi] - inter[gi, pi])
            if iou >= iou_threshold:
                out[int(gi)] = int(pi)
    return out
