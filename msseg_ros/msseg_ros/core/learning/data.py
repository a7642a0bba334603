"""COCO instance datasets: ours (11-channel ``.npy`` frames) or any COCO with PNG/JPEG images.

``CocoFrames(annotation_json)`` yields (frame, target): frame ``(H, W, C)`` float32;
target ``{"masks": (N, H, W) bool, "labels": (N,) int64 category ids, "boxes": (N, 4)
float32 x0 y0 x1 y1, "image_id": int}``. Image paths are resolved against the dataset
root (the annotation file's folder, or its parent when it lives in ``annotations/``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from msseg_ros.core.errors import MssegError
from msseg_ros.core.learning.coco import decode_mask


class DatasetError(MssegError, ValueError):
    """A dataset cannot be read; the message names the file."""


def load_image(path: Path) -> np.ndarray:
    """(H, W, C) float32 from ``.npy`` (exact) or an image file (RGB order, native scale)."""
    if not path.is_file():
        raise DatasetError(f"image {str(path)!r} does not exist")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DatasetError(f"{str(path)!r} is not a plain numpy array file: {exc}") from None
    else:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise DatasetError(f"{str(path)!r} cannot be decoded as an image")
        if arr.ndim == 3 and arr.shape[2] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr.astype(np.float32)


class CocoFrames:
    """A COCO annotation file and its images, as (frame, target) pairs."""

    def __init__(self, annotation_file: str | Path, image_root: str | Path | None = None) -> None:
        self.path = Path(annotation_file)
        if not self.path.is_file():
            raise DatasetError(f"annotation file {str(self.path)!r} does not exist")
        try:
            doc = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{str(self.path)!r} is not JSON: {exc}") from None
        for key in ("images", "annotations", "categories"):
            if key not in doc:
                raise DatasetError(f"{str(self.path)!r} is not COCO: no {key!r}")
        self.doc = doc
        self.images = sorted(doc["images"], key=lambda im: im["id"])
        self.categories = sorted(doc["categories"], key=lambda c: c["id"])
        self.class_names = [c["name"] for c in self.categories]
        ids = [c.get("id") for c in self.categories]
        if ids != list(range(1, len(ids) + 1)):
            raise DatasetError(f"{str(self.path)!r}: category ids must be 1..{len(ids)} in order (a model's "
                               f"class k is category k); found {ids}")
        self.by_image: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in self.images}
        for a in doc["annotations"]:
            if a.get("image_id") not in self.by_image:
                raise DatasetError(f"{str(self.path)!r}: annotation {a.get('id')} refers to image_id "
                                   f"{a.get('image_id')!r}, which is not among the images")
            if a.get("category_id") not in range(1, len(ids) + 1):
                raise DatasetError(f"{str(self.path)!r}: annotation {a.get('id')} has category_id "
                                   f"{a.get('category_id')!r}; categories are 1..{len(ids)}")
            self.by_image[a["image_id"]].append(a)
        if image_root is not None:
            self.root = Path(image_root)
        elif self.path.parent.name == "annotations":
            self.root = self.path.parent.parent
        else:
            self.root = self.path.parent

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, i: int) -> Path:
        return self.root / self.images[i]["file_name"]

    def locate(self, i: int) -> tuple[CocoFrames, int]:
        """The COCO file holding item ``i``, and its index there (here: itself)."""
        return self, i

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        im = self.images[i]
        frame = load_image(self.image_path(i))
        H, W = frame.shape[:2]
        anns = [a for a in self.by_image.get(im["id"], []) if not a.get("iscrowd", 0)]
        masks = np.zeros((len(anns), H, W), bool)
        for k, a in enumerate(anns):
            seg = a["segmentation"]
            if isinstance(seg, dict):
                masks[k] = decode_mask(seg)
            else:  # polygons
                from pycocotools import mask as mu

                rles = mu.frPyObjects(seg, H, W)
                masks[k] = mu.decode(mu.merge(rles)).astype(bool)
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                           a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([a["category_id"] for a in anns], np.int64)
        return frame, {"masks": masks, "labels": labels, "boxes": boxes, "image_id": int(im["id"])}


class MixedFrames:
    """A training set with a second set's frames mixed in (rehearsal of pretraining data
    while fine-tuning on a few photos): items ``0..n-1`` are ``primary``'s, items
    ``n..n+m-1`` are ``rehearsal``'s. The trainer draws which rehearsal items each epoch
    visits. Both sets must name the same classes in the same order.
    """

    def __init__(self, primary: CocoFrames, rehearsal: CocoFrames) -> None:
        if primary.class_names != rehearsal.class_names:
            raise DatasetError(f"rehearsal set {str(rehearsal.path)!r} has classes {rehearsal.class_names}, the "
                               f"training set {str(primary.path)!r} {primary.class_names}; they must match")
        if len(rehearsal) == 0:
            raise DatasetError(f"rehearsal set {str(rehearsal.path)!r} has no images")
        self.primary, self.rehearsal = primary, rehearsal
        self.class_names = primary.class_names

    def __len__(self) -> int:
        return len(self.primary) + len(self.rehearsal)

    def locate(self, i: int) -> tuple[CocoFrames, int]:
        n = len(self.primary)
        return (self.primary, i) if i < n else (self.rehearsal, i - n)

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        ds, j = self.locate(i)
        return ds[j]


#: what a trainer iterates: one COCO file, or one with rehearsal frames mixed in
Frames = CocoFrames | MixedFrames
