"""Instance masks from depth: objects standing on a table plane (RGB-D frames).

For a user with an RGB-D camera and a handful of real photos: the table is the largest
plane (RANSAC, scikit-image), objects are what stands more than ``min_height_mm`` above it
over the table's extent (a point's foot on the plane falls in the image convex hull of the
table's pixels: a cart or a chair beside the table is not on it), and touching objects are split where the depth jumps. The
masks are a first draft to be checked by eye (:func:`overlay`) and mended by hand
(:func:`mend`) before they are trusted as ground truth.

Frames: depth (H, W) in millimetres, 0 = invalid; the camera's pinhole intrinsics
(fx, fy, cx, cy in px). Points are in the camera's optical frame (x right, y down, z
forward), metres.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from msseg_ros.core.errors import MssegError


class DepthLabelError(MssegError):
    """A depth frame that gives no table plane, or a mend that names what is not there."""


@dataclass(frozen=True)
class DepthLabelOptions:
    """Args:
        min_height_mm: a point this far above the table (towards the camera) is an object.
        plane_tolerance_mm: RANSAC inlier distance.
        edge_mm: neighbouring pixels whose depths differ by more than this are on two
            objects (or an object and what lies behind it).
        min_area_px: instances smaller than this are dropped (noise, specks).
        seed: RANSAC's random seed (labels are repeatable).
    """

    min_height_mm: float = 12.0
    plane_tolerance_mm: float = 8.0
    edge_mm: float = 8.0
    min_area_px: int = 300
    seed: int = 0


class _Plane:
    """n . p + d = 0 with |n| = 1, fitted to (N, 3) points (skimage.measure.ransac model)."""

    def __init__(self) -> None:
        self.params: tuple[np.ndarray, float] | None = None

    @classmethod
    def from_estimate(cls, points: np.ndarray) -> _Plane:
        plane = cls()
        plane.estimate(points)
        return plane

    def __bool__(self) -> bool:
        return self.params is not None

    def estimate(self, points: np.ndarray) -> bool:
        centre = points.mean(axis=0)
        _, s, vt = np.linalg.svd(points - centre, full_matrices=False)
        if len(s) < 2 or s[1] < 1e-9:  # collinear sample
            self.params = None
            return False
        n = vt[-1]
        self.params = (n, float(-n @ centre))
        return True

    def residuals(self, points: np.ndarray) -> np.ndarray:
        assert self.params is not None
        n, d = self.params
        return np.abs(points @ n + d)


def back_project(depth_mm: np.ndarray, intrinsics: Sequence[float]) -> np.ndarray:
    """(H, W, 3) points, m, in the camera's optical frame; NaN where depth is 0."""
    fx, fy, cx, cy = intrinsics
    H, W = depth_mm.shape
    z = np.where(depth_mm > 0, depth_mm.astype(np.float64) / 1000.0, np.nan)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)


def _largest_plane(flat: np.ndarray, options: DepthLabelOptions) -> tuple[np.ndarray, float] | None:
    from skimage.measure import ransac

    rng = np.random.default_rng(options.seed)
    sample = flat[rng.choice(len(flat), min(len(flat), 20_000), replace=False)]
    model, _ = ransac(sample, _Plane, min_samples=3, residual_threshold=options.plane_tolerance_mm / 1000.0,
                      max_trials=500, rng=options.seed)
    if model is None or not model:
        return None
    n, d = model.params
    return (-n, -d) if d < 0 else (n, d)  # the camera on the positive side


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the largest 4-connected region of ``mask`` (all False when empty)."""
    from skimage.measure import label as cc_label

    regions = cc_label(mask, connectivity=1)
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    return (regions == int(np.argmax(sizes))) & mask


def table_plane(points: np.ndarray, options: DepthLabelOptions) -> tuple[np.ndarray, float, np.ndarray]:
    """The table: of the planes parallel (within 20 degrees) to the largest plane in view
    whose pixels form one region of at least 10 % of the frame (a slab through the
    objects' tops does not), the one nearest the camera (a table stands above the floor).
    Returns (normal towards the camera, d, (H, W) bool inliers); raises DepthLabelError
    when no plane qualifies."""
    valid = np.isfinite(points[..., 2])
    flat = points[valid]
    if len(flat) < 100:
        raise DepthLabelError(f"only {len(flat)} pixels have depth: no table plane to find")
    tol = options.plane_tolerance_mm / 1000.0
    planes: list[tuple[np.ndarray, float, np.ndarray]] = []
    left = np.ones(len(flat), bool)
    for _ in range(3):  # the floor, the table, one more
        if left.sum() < 0.05 * len(flat):
            break
        found = _largest_plane(flat[left], options)
        if found is None:
            break
        n, d = found
        on = np.abs(flat @ n + d) < tol
        if on.mean() < 0.05:
            break
        planes.append((n, d, on))
        left &= ~on
    if not planes:
        raise DepthLabelError("no plane holds 5 % of the pixels: no table in view")

    def region_share(on: np.ndarray) -> float:
        image = np.zeros(valid.shape, bool)
        image[valid] = on
        return float(_largest_region(image).sum()) / valid.size

    first = planes[0][0]
    level = [p for p in planes if abs(float(p[0] @ first)) > np.cos(np.radians(20))
             and region_share(p[2]) >= 0.1]
    if not level:
        raise DepthLabelError("no plane in view forms one region of 10 % of the frame: no table")
    n, d, on = min(level, key=lambda p: p[1])
    inliers = np.zeros(valid.shape, bool)
    inliers[valid] = on
    return n, d, inliers


def label_objects(depth_mm: np.ndarray, intrinsics: Sequence[float],
                  options: DepthLabelOptions | None = None) -> np.ndarray:
    """(H, W) int32 instance labels (0 = table or beyond, 1..n objects) of the objects
    standing on the table in ``depth_mm`` (H, W, mm, 0 = invalid)."""
    from scipy import ndimage
    from skimage.measure import label as cc_label
    from skimage.morphology import convex_hull_image

    o = options or DepthLabelOptions()
    depth_mm = np.asarray(depth_mm)
    if depth_mm.ndim != 2:
        raise DepthLabelError(f"a depth frame is (H, W); got shape {depth_mm.shape}")
    pts = back_project(depth_mm, intrinsics)
    n, d, on_plane = table_plane(pts, o)
    height = pts @ n + d  # m, NaN where no depth
    table = convex_hull_image(_largest_region(on_plane))
    above = np.nan_to_num(height, nan=0.0) > o.min_height_mm / 1000.0
    # on the table: the point's foot on the plane (p - h n) projects into the table's extent
    foot = pts - np.nan_to_num(height)[..., None] * n
    fx, fy, cx, cy = intrinsics
    with np.errstate(invalid="ignore", divide="ignore"):
        fu = np.rint(fx * foot[..., 0] / foot[..., 2] + cx)
        fv = np.rint(fy * foot[..., 1] / foot[..., 2] + cy)
    H, W = depth_mm.shape
    inside = np.isfinite(fu) & np.isfinite(fv) & (fu >= 0) & (fu < W) & (fv >= 0) & (fv < H)
    on_table = np.zeros(inside.shape, bool)
    on_table[inside] = table[fv[inside].astype(int), fu[inside].astype(int)]
    above &= on_table
    # holes in an object's depth (dark or shiny surfaces) belong to it when they are enclosed
    above = ndimage.binary_fill_holes(ndimage.binary_closing(above, iterations=2))
    z = depth_mm.astype(np.float64)
    # object boundaries: depth jumps between valid neighbours, and the invalid pixels
    # depth cameras leave along occlusion edges
    jump = z <= 0
    for axis in (0, 1):
        a, b = np.moveaxis(z, axis, 0)[:-1], np.moveaxis(z, axis, 0)[1:]
        edge = (np.abs(a - b) > o.edge_mm) & (a > 0) & (b > 0)
        j = np.moveaxis(jump, axis, 0)
        j[:-1] |= edge
        j[1:] |= edge
    jump = ndimage.binary_dilation(jump, iterations=1)
    markers = cc_label(above & ~jump, connectivity=1)
    counts = np.bincount(markers.ravel())
    small = counts < o.min_area_px // 4
    small[0] = False
    markers[small[markers]] = 0
    labels = _grow(markers, above, z)
    keep = np.bincount(labels.ravel()) >= o.min_area_px
    keep[0] = False
    remap = np.zeros(len(keep), np.int32)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    return remap[labels]


def _grow(markers: np.ndarray, mask: np.ndarray, z: np.ndarray, max_steps: int = 200) -> np.ndarray:
    """Grow ``markers`` over ``mask`` one pixel a step; a pixel joins the neighbouring
    marker whose median depth is nearest its own (any neighbour where it has no depth),
    so a boundary pixel goes to the object it lies on, not the one behind or in front."""
    labels = markers.copy()
    n = int(labels.max())
    if n == 0:
        return labels
    from scipy import ndimage

    index = np.arange(1, n + 1)
    median = np.zeros(n + 1)
    median[1:] = ndimage.median(np.where(z > 0, z, np.nan), labels, index)
    median = np.nan_to_num(median, nan=0.0)
    H, W = labels.shape
    for _ in range(max_steps):
        todo = mask & (labels == 0)
        if not todo.any():
            break
        best = np.full(labels.shape, np.inf)
        pick = np.zeros(labels.shape, labels.dtype)
        padded = np.pad(labels, 1)
        for dv, du in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nb = padded[1 + dv:1 + dv + H, 1 + du:1 + du + W]
            cost = np.where(nb > 0, np.where(z > 0, np.abs(z - median[nb]), 0.0), np.inf)
            better = cost < best
            best[better], pick[better] = cost[better], nb[better]
        grow = todo & np.isfinite(best)
        if not grow.any():
            break
        labels[grow] = pick[grow]
    return labels


#: the hand edits :func:`mend` applies, in this order
EDITS = ("cut", "move", "crop", "merge", "hull", "drop", "boxes", "polygons")


def _region(shape: tuple[int, ...], coords: Sequence[float]) -> np.ndarray:
    """(H, W) bool: the box x0, y0, x1, y1 (4 numbers) or the polygon x, y, x, y, ... (6 or
    more, even), px."""
    import cv2

    region = np.zeros(shape[:2], np.uint8)
    if len(coords) == 4:
        x0, y0, x1, y1 = (int(round(c)) for c in coords)
        region[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 1
    elif len(coords) >= 6 and len(coords) % 2 == 0:
        cv2.fillPoly(region, [np.rint(np.asarray(coords, np.float64).reshape(-1, 2)).astype(np.int32)], 1)
    else:
        raise DepthLabelError(f"{list(coords)}: a box is x0, y0, x1, y1 and a polygon x, y, x, y, x, y, ...")
    return region > 0


def mend(labels: np.ndarray, edits: Mapping[str, Any]) -> np.ndarray:
    """Apply hand edits to ``labels`` (H, W) and return them relabelled 1..n in raster
    order of the kept labels.

    ``edits`` keys (all optional), label numbers as :func:`label_objects` gave them:
        ``drop``: [labels] not objects (a shadow, the table's edge);
        ``merge``: [[a, b, ...]] pieces of one object;
        ``move``: [[label, to, box or polygon]]: the pixels of ``label`` there go to
            ``to`` (a piece of one object grown onto its neighbour);
        ``crop``: [[label, x0, y0, x1, y1]] the pixels of ``label`` outside the box are
            not the object (a patch of table or shadow grown onto it);
        ``boxes``: [[x0, y0, x1, y1]] objects the depth missed (flat or dark), px; each
            box's pixels not yet labelled become a new object (check it by eye);
        ``polygons``: [[x, y, x, y, ...]] a new object drawn by hand: its pixels, whatever
            they were (a thin pen lying flat, a can standing in a bowl);
        ``cut``: [[label, x0, y0, x1, y1]] or [[label, x, y, x, y, x, y, ...]]: the pixels
            of ``label`` in the box or polygon become a new object (two objects at one
            depth, side by side);
        ``hull``: [labels] whose mask becomes its convex hull, less other objects' pixels
            (a bowl's inside, a dark or transparent part the depth camera missed).
    Applied in this order: cut, move, crop, merge, hull, drop, boxes, polygons; labels named
    are those of the draft. Raises DepthLabelError for a label that does not exist.
    """
    unknown = set(edits) - set(EDITS)
    if unknown:
        raise DepthLabelError(f"unknown edit {sorted(unknown)[0]!r}; edits: {', '.join(EDITS)}")
    out = np.asarray(labels).astype(np.int32).copy()
    present = set(np.unique(out).tolist()) - {0}

    def check(lab: int) -> int:
        if lab not in present:
            raise DepthLabelError(f"edit names label {lab}, but the frame has labels {sorted(present)}")
        return int(lab)

    nxt = max(present, default=0) + 1
    for lab, *shape in edits.get("cut", []):
        out[_region(out.shape, shape) & (out == check(lab))] = nxt
        nxt += 1
    for lab, to, *shape in edits.get("move", []):
        out[_region(out.shape, shape) & (out == check(lab))] = check(to)
    for lab, *box in edits.get("crop", []):
        out[~_region(out.shape, box) & (out == check(lab))] = 0
    for group in edits.get("merge", []):
        first = check(group[0])
        for lab in group[1:]:
            out[out == check(lab)] = first
    if edits.get("hull"):
        from skimage.morphology import convex_hull_image

        for lab in edits["hull"]:
            m = out == check(lab)
            out[convex_hull_image(m) & (out == 0)] = lab
    for lab in edits.get("drop", []):
        out[out == check(lab)] = 0
    for box in edits.get("boxes", []):
        out[_region(out.shape, box) & (out == 0)] = nxt
        nxt += 1
    for poly in edits.get("polygons", []):
        if len(poly) < 6:
            raise DepthLabelError(f"a polygon needs 3 or more points (x, y, ...); got {poly}")
        out[_region(out.shape, poly)] = nxt
        nxt += 1
    kept = [lab for lab in np.unique(out) if lab]
    remap = np.zeros(int(out.max()) + 1, np.int32)
    remap[kept] = np.arange(1, len(kept) + 1)
    return remap[out]


def overlay(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``rgb`` with each instance tinted, outlined and numbered by its
    label (what :func:`mend`'s edits refer to), and ticks every 50 px along the borders
    (to read edit coordinates off)."""
    import cv2

    out = rgb.astype(np.float32).copy()
    rng = np.random.default_rng(7)
    colours = rng.integers(60, 255, (int(labels.max()) + 1, 3))
    for lab in range(1, int(labels.max()) + 1):
        m = labels == lab
        if not m.any():
            continue
        out[m] = 0.55 * out[m] + 0.45 * colours[lab]
    out = out.astype(np.uint8)
    for lab in range(1, int(labels.max()) + 1):
        m = (labels == lab).astype(np.uint8)
        if not m.any():
            continue
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
        vv, uu = np.nonzero(m)
        cv2.putText(out, str(lab), (int(uu.mean()) - 6, int(vv.mean()) + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (0, 0, 0), 3)
        cv2.putText(out, str(lab), (int(uu.mean()) - 6, int(vv.mean()) + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 1)
    H, W = labels.shape
    for x in range(50, W, 50):
        cv2.line(out, (x, 0), (x, 8 if x % 100 else 14), (255, 255, 0), 1)
        cv2.line(out, (x, H - 1), (x, H - (9 if x % 100 else 15)), (255, 255, 0), 1)
    for y in range(50, H, 50):
        cv2.line(out, (0, y), (8 if y % 100 else 14, y), (255, 255, 0), 1)
        cv2.line(out, (W - 1, y), (W - (9 if y % 100 else 15), y), (255, 255, 0), 1)
    return out


def read_intrinsics(spec: str) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy), px, from ``"fx,fy,cx,cy"``, a ROS camera_info YAML, or a JSON file
    with ``fx``, ``fy`` and ``cx``/``cy`` (or ``x_offset``/``y_offset``)."""
    import json
    from pathlib import Path

    parts = spec.split(",")
    if len(parts) == 4:
        try:
            fx, fy, cx, cy = (float(p) for p in parts)
            return fx, fy, cx, cy
        except ValueError:
            pass
    p = Path(spec)
    if not p.is_file():
        raise DepthLabelError(f"intrinsics {spec!r}: neither four numbers fx,fy,cx,cy nor a file")
    if p.suffix.lower() in (".yaml", ".yml"):
        from msseg_ros.core.geometry.camera import CameraModel

        K = CameraModel.from_yaml(p).K
        return float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    try:
        doc = json.loads(p.read_text())
        return (float(doc["fx"]), float(doc["fy"]), float(doc.get("cx", doc.get("x_offset"))),
                float(doc.get("cy", doc.get("y_offset"))))
    except (ValueError, KeyError, TypeError) as exc:
        raise DepthLabelError(f"{spec!r} is not an intrinsics JSON (fx, fy, cx, cy): {exc}") from None


def write_dataset(pairs: Sequence[tuple[str, str]], intrinsics: Sequence[float], out: str,
                  edits: Mapping[str, Mapping[str, Any]] | None = None, test: Sequence[str] = (),
                  options: DepthLabelOptions | None = None, category: str = "object") -> dict[str, Any]:
    """Label RGB-D ``pairs`` ((rgb path, depth path), depth as 16-bit PNG, mm) and write a
    COCO dataset whose images stay where they are (use ``data.image_root``: the folder of
    the RGB images): ``out/annotations/{all,train,test}.json`` (``test``: RGB file names
    held out), ``out/depth/*.npy`` (float32 metres, invalid pixels set to the farthest
    depth; each image's ``depth_file``, an absolute path, from which the bicameral model's
    boundary and occlusion targets are computed) and ``out/overlays/*.png``, each instance numbered as ``edits`` name them
    (``edits``: RGB file name -> :func:`mend` edits).

    Returns a summary: images, instances, instances per image, edited images."""
    from pathlib import Path

    import cv2

    from msseg_ros.core.learning.coco import annotations_from_labels, write_coco

    o = options or DepthLabelOptions()
    edits = dict(edits or {})
    root = Path(out)
    (root / "overlays").mkdir(parents=True, exist_ok=True)
    folders = {str(Path(rgb).parent.resolve()) for rgb, _ in pairs}
    if len(folders) > 1:
        raise DepthLabelError(f"the RGB images must share one folder (the dataset's image_root); got {sorted(folders)}")
    names = {Path(rgb).name for rgb, _ in pairs}
    for what, given in (("edits", set(edits)), ("test images", set(test))):
        if given - names:
            raise DepthLabelError(f"{what} for images not given: {sorted(given - names)}")
    images: dict[str, list[dict[str, Any]]] = {"all": [], "train": [], "test": []}
    anns: dict[str, list[dict[str, Any]]] = {"all": [], "train": [], "test": []}
    per_image: dict[str, int] = {}
    for image_id, (rgb_path, depth_path) in enumerate(pairs, start=1):
        name = Path(rgb_path).name
        rgb = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        if rgb is None or depth is None:
            raise DepthLabelError(f"cannot read {rgb_path if rgb is None else depth_path}")
        if depth.dtype != np.uint16 or depth.ndim != 2 or depth.shape != rgb.shape[:2]:
            raise DepthLabelError(f"{depth_path}: depth must be a 16-bit single-channel PNG (mm) of "
                                  f"the RGB's size {rgb.shape[1]} x {rgb.shape[0]}; got {depth.dtype} {depth.shape}")
        auto = label_objects(depth, intrinsics, o)
        cv2.imwrite(str(root / "overlays" / f"auto_{name}"), overlay(rgb[..., ::-1], auto)[..., ::-1])
        labels = mend(auto, edits[name]) if name in edits else auto
        if name in edits:
            cv2.imwrite(str(root / "overlays" / f"mended_{name}"), overlay(rgb[..., ::-1], labels)[..., ::-1])
        n = int(labels.max())
        per_image[name] = n
        metres = depth.astype(np.float32) / 1000.0
        metres[depth == 0] = metres.max()
        depth_file = (root / "depth" / f"{Path(name).stem}.npy").resolve()
        depth_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(depth_file, metres)
        img = {"id": image_id, "file_name": name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
               "depth_file": str(depth_file)}
        a = annotations_from_labels(labels, [1] * n, image_id, first_ann_id=1 + len(anns["all"]))
        for split in ("all", "test" if name in test else "train"):
            images[split].append(img)
            anns[split].extend(a)
    info = {"description": "instance masks from depth on a table plane (msseg label-depth); hand "
                           "edits applied to the images named in 'edited'", "edited": sorted(edits),
            "options": {k: getattr(o, k) for k in o.__dataclass_fields__}}
    for split in ("all", "train", "test"):
        write_coco(root / "annotations" / f"{split}.json", images[split], anns[split], [category], info)
    return {"images": len(pairs), "instances": len(anns["all"]), "per_image": per_image,
            "edited": sorted(edits), "image_root": folders.pop() if folders else None}
