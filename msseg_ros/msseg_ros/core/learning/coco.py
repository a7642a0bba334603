"""COCO instance annotations with RLE masks (pycocotools encodes them).

Our datasets add one image field: ``channels`` (11 for sorting-line frames stored as
``.npy``); everything else is plain COCO, so any COCO tool can read the annotations.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool -> COCO RLE with ``counts`` as a str (JSON-safe)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    r = dict(rle)
    if isinstance(r["counts"], str):
        r["counts"] = r["counts"].encode("ascii")
    return mask_utils.decode(r).astype(bool)


def annotations_from_labels(labels: np.ndarray, class_ids: list[int], image_id: int,
                            first_ann_id: int, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One annotation per instance label 1..n of ``labels`` (``class_ids[k-1]`` its class)."""
    anns: list[dict[str, Any]] = []
    for k, cid in enumerate(class_ids, start=1):
        m = labels == k
        if not m.any():
            continue
        rle = encode_mask(m)
        x, y, w, h = (float(v) for v in mask_utils.toBbox({**rle, "counts": rle["counts"].encode()}))
        ann = {
            "id": first_ann_id + len(anns),
            "image_id": image_id,
            "category_id": int(cid),
            "segmentation": rle,
            "area": int(m.sum()),
            "bbox": [x, y, w, h],
            "iscrowd": 0,
        }
        if extra:
            ann.update(extra[k - 1])
        anns.append(ann)
    return anns


def write_coco(path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]], categories: list[str],
               info: dict[str, Any]) -> None:
    doc = {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "object"}
                       for i, n in enumerate(categories)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
