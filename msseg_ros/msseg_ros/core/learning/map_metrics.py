"""Pixel-map metrics: ODS and AP of probability maps against binary ground truth.

Used by model types whose output includes per-pixel maps (the bicameral network's
boundary and occlusion maps, seed 001 §5.2): 0 px tolerance, as the seed does on
synthetic data. ODS is the best F-measure over one threshold for the whole dataset; AP is
the area under the interpolated precision-recall curve.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: the thresholds the precision-recall curve is sampled at
THRESHOLDS = np.linspace(0.01, 0.99, 99)


def map_pr(acc: dict[str, Any]) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(ODS, AP, precision, recall) from accumulated TP/FP/FN per threshold."""
    tp, fp, fn = acc["tp"], acc["fp"], acc["fn"]
    p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    r = tp / np.maximum(tp + fn, 1)
    f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)
    order = np.argsort(r)
    rr, pp = np.concatenate([[0], r[order], [r.max() if len(r) else 0]]), np.concatenate([[p[order][0]], p[order], [0]])
    # interpolated precision (non-increasing in recall), then the area
    pp = np.maximum.accumulate(pp[::-1])[::-1]
    ap = float(np.sum(np.diff(rr) * pp[1:]))
    return float(f.max()), ap, p, r


class PixelMapMetrics:
    """Accumulates TP/FP/FN per threshold for named maps over a dataset.

    ``update(name, prediction, truth)``: prediction (H, W) in [0, 1], truth (H, W) bool.
    ``summary()`` gives ``{NAME_ODS, NAME_AP}`` (rounded) and the curves by name.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.acc = {n: {k: np.zeros(len(THRESHOLDS)) for k in ("tp", "fp", "fn")} for n in names}

    def update(self, name: str, prediction: np.ndarray, truth: np.ndarray) -> None:
        acc = self.acc[name]
        above = prediction[None] > THRESHOLDS[:, None, None]
        acc["tp"] += (above & truth).sum((1, 2))
        acc["fp"] += (above & ~truth).sum((1, 2))
        acc["fn"] += (~above & truth).sum((1, 2))

    def summary(self) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        values: dict[str, float] = {}
        curves: dict[str, dict[str, Any]] = {}
        for name, acc in self.acc.items():
            ods, ap, p, r = map_pr(acc)
            values[f"{name}_ODS"] = round(ods, 4)
            values[f"{name}_AP"] = round(ap, 4)
            curves[name] = {"precision": p.tolist(), "recall": r.tolist()}
        return values, curves
