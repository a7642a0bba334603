"""How hard the simulated sorting line is: the two figures the data engine is calibrated on.

1. A per-pixel classifier on the 10 spectral + X-ray features (an RBF SVM, as seed 000
   §2.2), with the object class taken as the majority of its pixels' predictions: the
   object-level accuracy should land near the seed's SVM baseline (81 % on the real line).
2. Plain blob segmentation (height > 1 mm, area threshold) recovers isolated objects but
   not touching ones: the share of ground-truth objects matched at IoU >= 0.5, for each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from msseg_ros.core.segmentation.blobs import height_blobs, match_instances
from msseg_ros.core.sim.sorting_line import CLASSES, SortingLineConfig, SortingLineWorld
from msseg_ros.core.sim.sorting_line import Frame as SortingLineFrame

FEATURES = slice(1, 11)  # xray_low, xray_high, 8 VNIR bands


@dataclass
class Difficulty:
    object_accuracy: float  # per-pixel SVM + majority vote, objects of the test frames
    pixel_accuracy: float
    blob_recall_isolated: float  # isolated GT objects matched by a blob at IoU >= 0.5
    blob_recall_touching: float  # GT objects touching another
    n_objects: int
    n_touching: int


def _frames(cfg: SortingLineConfig, n: int, lines: int) -> list[SortingLineFrame]:
    world = SortingLineWorld(cfg)
    return [world.render(i * lines, lines) for i in range(n)]


def touching(labels: np.ndarray) -> set[int]:
    """Labels whose mask is 8-adjacent to another object's mask."""
    out = set()
    for k in range(1, int(labels.max()) + 1):
        m = labels == k
        ring = ndimage.binary_dilation(m, np.ones((3, 3), bool)) & ~m
        if np.any(labels[ring] > 0):
            out.add(k)
    return out


def measure(cfg: SortingLineConfig, train_frames: int = 8, test_frames: int = 8,
            lines: int = 250, pixels_per_class: int = 600, seed: int = 0) -> Difficulty:
    """Measure both figures on frames of ``cfg``'s world (train and test stretches differ)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    frames = _frames(cfg, train_frames + test_frames, lines)
    train, test = frames[:train_frames], frames[train_frames:]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for f in train:
        cls = np.array([0] + [o.class_id for o in f.objects])[f.labels]
        for k in range(1, len(CLASSES) + 1):
            idx = np.flatnonzero(cls.ravel() == k)
            if len(idx):
                pick = rng.choice(idx, min(len(idx), pixels_per_class // train_frames + 1), replace=False)
                xs.append(f.image.reshape(-1, 11)[pick, FEATURES])
                ys.append(np.full(len(pick), k))
    clf = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0, gamma="scale"))
    clf.fit(np.concatenate(xs), np.concatenate(ys))

    correct = total = pix_ok = pix_n = 0
    iso_hit = iso_n = tch_hit = tch_n = 0
    scale = (0.0005 / cfg.pixel_size) ** 2  # the seed's 300 px were at 0.5 mm
    for f in test:
        obj = f.labels > 0
        pred = np.zeros(f.labels.shape, np.int64)
        pred[obj] = clf.predict(f.image[obj][:, FEATURES])
        gt_cls = np.array([0] + [o.class_id for o in f.objects])[f.labels]
        pix_ok += int(np.sum(pred[obj] == gt_cls[obj]))
        pix_n += int(obj.sum())
        for k, o in enumerate(f.objects, start=1):
            votes = np.bincount(pred[f.labels == k], minlength=len(CLASSES) + 1)
            correct += int(np.argmax(votes[1:]) + 1 == o.class_id)
            total += 1
        blobs = height_blobs(f.image[..., 0], 1.0, max(1, int(round(300 * scale))))
        matched = match_instances(f.labels, blobs)
        t = touching(f.labels)
        visible = set(np.unique(f.labels[f.image[..., 0] > 1.0])) - {0}
        for k in range(1, len(f.objects) + 1):
            if k not in visible:
                continue  # thinner than the threshold: no height method can see it
            if k in t:
                tch_n += 1
                tch_hit += k in matched
            else:
                iso_n += 1
                iso_hit += k in matched
    return Difficulty(
        object_accuracy=correct / max(total, 1),
        pixel_accuracy=pix_ok / max(pix_n, 1),
        blob_recall_isolated=iso_hit / max(iso_n, 1),
        blob_recall_touching=tch_hit / max(tch_n, 1),
        n_objects=total,
        n_touching=tch_n,
    )
