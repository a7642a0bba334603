"""Training targets made from a COCO sample, for the model types that need more than
masks and labels.

Seed 001 §4.1.2 defines the bicameral network's targets from the visible instance labels
and the depth:

* boundaries Y: 1 where the right or lower neighbour has another label and one of the
  two is an instance (bin-to-bin is no boundary);
* occlusion map Z: for each boundary pixel, the P x P patch around it is split into its
  segments; with two segments the pixels of the higher one (mean height) are 1; patches
  with more than two segments are 0; boundary pixels are 0. Y and Z are disjoint.

The simulator (``sim.bin_pile``) writes both maps with its datasets, using these same
functions; a dataset with a depth file instead gets them computed here.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from msseg_ros.core.learning.data import CocoFrames, DatasetError, Frames

#: the patch of the occlusion map computed from a depth file (seed 001 uses P = 5)
DEPTH_OCCLUSION_PATCH = 5


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Y: 1 where the right or lower neighbour has another label and one of the two is an
    instance (bin-to-bin is no boundary)."""
    Y = np.zeros(labels.shape, bool)
    right = labels[:, :-1] != labels[:, 1:]
    down = labels[:-1, :] != labels[1:, :]
    Y[:, :-1] |= right & ((labels[:, :-1] > 0) | (labels[:, 1:] > 0))
    Y[:-1, :] |= down & ((labels[:-1, :] > 0) | (labels[1:, :] > 0))
    return Y.astype(np.uint8)


def occlusion_map(labels: np.ndarray, z: np.ndarray, Y: np.ndarray, patch: int) -> np.ndarray:
    """Z per seed 001 §4.1.2 (see the module docstring); vectorised over boundary pixels."""
    r = patch // 2
    H, W = labels.shape
    lab = np.pad(labels, r, mode="edge")
    zz = np.pad(z, r, mode="edge")
    ys, xs = np.nonzero(Y)
    if len(ys) == 0:
        return np.zeros((H, W), np.uint8)
    win_l = sliding_window_view(lab, (patch, patch))[ys, xs].reshape(len(ys), -1)
    win_z = sliding_window_view(zz, (patch, patch))[ys, xs].reshape(len(ys), -1)
    srt = np.sort(win_l, axis=1)
    n_seg = 1 + np.count_nonzero(np.diff(srt, axis=1), axis=1)
    a, b = srt[:, 0], srt[:, -1]
    in_a = win_l == a[:, None]
    in_b = win_l == b[:, None]
    mean_a = np.where(in_a, win_z, 0).sum(1) / np.maximum(in_a.sum(1), 1)
    mean_b = np.where(in_b, win_z, 0).sum(1) / np.maximum(in_b.sum(1), 1)
    higher = np.where(mean_a > mean_b, a, b)
    ones = (win_l == higher[:, None]) & (n_seg == 2)[:, None]
    zeros = np.broadcast_to((n_seg > 2)[:, None], ones.shape)
    dy, dx = np.divmod(np.arange(patch * patch), patch)
    py, px = ys[:, None] + dy[None] - r, xs[:, None] + dx[None] - r
    ok = (py >= 0) & (py < H) & (px >= 0) & (px < W)
    Zp = np.zeros((H, W), bool)
    Zn = np.zeros((H, W), bool)
    Zp[py[ones & ok], px[ones & ok]] = True
    Zn[py[zeros & ok], px[zeros & ok]] = True
    return (Zp & ~Zn & (Y == 0)).astype(np.uint8)


def labels_from_masks(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool visible masks -> (H, W) int32 labels 1..N (0: background)."""
    labels = np.zeros(shape, np.int32)
    for k, m in enumerate(masks, start=1):
        labels[m] = k
    return labels


def boundary_occlusion_maps(ds: Frames, index: int, target: dict[str, Any],
                            shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(Y, Z) float32 (H, W) maps of image ``index``: the dataset's own files (``msseg
    sim-data bin_picking`` writes ``boundaries_file``/``occlusions_file``) or, with a
    ``depth_file`` (metres, larger = farther), computed by seed 001's procedure.

    Raises:
        DatasetError: the image has neither maps nor depth.
    """
    ds, index = ds.locate(index)
    im = ds.images[index]
    if "boundaries_file" in im and "occlusions_file" in im:
        return (_binary_map(ds, im, "boundaries_file").astype(np.float32),
                _binary_map(ds, im, "occlusions_file").astype(np.float32))
    if "depth_file" in im:
        labels = labels_from_masks(target["masks"], shape)
        height = -np.load(ds.root / im["depth_file"], allow_pickle=False)
        Y = boundaries(labels)
        return Y.astype(np.float32), occlusion_map(labels, height, Y, DEPTH_OCCLUSION_PATCH).astype(np.float32)
    raise DatasetError(f"boundary and occlusion maps are needed; image {im['file_name']!r} has neither "
                       "boundaries_file/occlusions_file nor depth_file")


def draped_map(ds: Frames, index: int) -> np.ndarray | None:
    """(H, W) bool: the pixels of image ``index`` draped over another instance (``msseg
    sim-data bin_picking`` writes ``draped_file``), or None when the image has none.

    Raises:
        DatasetError: the file is named but cannot be read.
    """
    ds, index = ds.locate(index)
    im = ds.images[index]
    if "draped_file" not in im:
        return None
    return _binary_map(ds, im, "draped_file")


def _binary_map(ds: CocoFrames, im: dict[str, Any], key: str) -> np.ndarray:
    """(H, W) bool: the grey image file that ``im[key]`` names, nonzero pixels set.

    Raises:
        DatasetError: the file cannot be read.
    """
    path = ds.root / im[key]
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DatasetError(f"{key} {str(path)!r} of image {im['file_name']!r} cannot be read")
    return m > 0
