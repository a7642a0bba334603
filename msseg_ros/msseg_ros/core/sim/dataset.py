"""``msseg sim-data``: synthetic datasets from the simulated cells.

Layout of OUT (same seed -> byte-identical files)::

    dataset.json                 what was generated: cell, config, channels, classes, format
    annotations/{learning,validation,test}.json   COCO, RLE masks, categories = classes
    images/NNNNNN.npy            sorting_line: (H, W, 11) float32, exact (np.load)
    images/NNNNNN.png            bin_picking, tabletop: RGB
    depth/NNNNNN.npy             bin_picking: (H, W) float32, m along the optical axis
    boundaries/NNNNNN.png        bin_picking: instance boundaries Y, 0/255
    occlusions/NNNNNN.png        bin_picking: occlusion map Z, 0/255
    draped/NNNNNN.png            bin_picking: pixels draped over another instance, 0/255
    previews/NNNNNN.png          the first few images: false colour / RGB with outlines
    previews/000000_channels.png sorting_line: all 11 channels of the first image
    summary.json                 per-class counts per split, per-channel mean and std

``tabletop`` is a world without a cell (core/sim/tabletop.py): oblique photos of many
household objects on a table, the pretraining data of the few-shot tabletop model.

Splits follow seed 000 §5.1 (learning / validation / test, default 50/25/25 %). With
``single_class`` each sorting-line image holds one class, as the seed's dataset did.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msseg_ros.core.sim.bin_pile import BinPileConfig
    from msseg_ros.core.sim.sorting_line import SortingLineConfig
    from msseg_ros.core.sim.tabletop import TabletopConfig

    WorldConfig = SortingLineConfig | BinPileConfig | TabletopConfig

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.learning.coco import annotations_from_labels, write_coco
from msseg_ros.core.segmentation.overlay import false_colour
from msseg_ros.core.sim import WORLDS, bin_pile, sorting_line, tabletop
from msseg_ros.core.sim.materials import CHANNELS, CLASSES
from msseg_ros.core.sim.preview import save_channel_sheet

SPLITS = ("learning", "validation", "test")
FORMAT_VERSION = 1


def parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise ConfigError(f"--split needs three fractions LS,VS,TS (e.g. 0.5,0.25,0.25), got {text!r}")
    total = sum(parts)
    if abs(total - 1.0) > 1e-3:
        raise ConfigError(f"--split fractions must add up to 1, got {text!r} (sum {total:g})")
    return (parts[0] / total, parts[1] / total, parts[2] / total)


def assign_splits(count: int, fractions: tuple[float, float, float], seed: int) -> list[str]:
    """A deterministic split of ``count`` images with the given fractions."""
    n_ls = int(round(fractions[0] * count))
    n_vs = int(round(fractions[1] * count))
    n_vs = min(n_vs, count - n_ls)
    order = np.random.default_rng([seed, 0x5917]).permutation(count)
    out = ["test"] * count
    for rank, idx in enumerate(order):
        out[idx] = "learning" if rank < n_ls else ("validation" if rank < n_ls + n_vs else "test")
    return out


class _Stats:
    """Running per-channel mean/std in float64."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.s = np.zeros(channels)
        self.s2 = np.zeros(channels)

    def add(self, n: int, s: np.ndarray, s2: np.ndarray) -> None:
        """Add one image's pixel count, channel sums and sums of squares."""
        self.n += n
        self.s += s
        self.s2 += s2

    def result(self) -> tuple[list[float], list[float]]:
        mean = self.s / max(self.n, 1)
        std = np.sqrt(np.maximum(self.s2 / max(self.n, 1) - mean ** 2, 0))
        return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def base_config(cell: str, overrides: dict[str, Any] | None = None) -> WorldConfig:
    """The world config of ``cell`` with ``overrides``; raises ConfigError naming a bad key."""
    overrides = dict(overrides or {})
    if cell == "sorting_line":
        return sorting_line.SortingLineConfig(feed_rate=12.0).with_overrides(**overrides)
    if cell == "bin_picking":
        return bin_pile.BinPileConfig().with_overrides(**overrides)
    if cell == "tabletop":
        return tabletop.TabletopConfig().with_overrides(**overrides)
    raise ConfigError(f"unknown world {cell!r}; choose one of {', '.join(WORLDS)}")


def generate(cell: str, out: Path, count: int, seed: int, overrides: dict[str, Any] | None = None,
             single_class: bool = False, split: tuple[float, float, float] = (0.5, 0.25, 0.25),
             previews: int = 4, lines: int = 250,
             progress: Callable[[int], None] | None = None, workers: int = 1) -> dict[str, Any]:
    """Write a dataset; returns the summary. See the module docstring for the layout.

    ``workers`` > 1 renders images in that many processes; every image depends only on
    (seed, index), so the files are byte-identical whatever the number of workers.
    """
    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    splits = assign_splits(count, split, seed)
    base = base_config(cell, overrides)
    if cell == "sorting_line":
        categories, channels = list(CLASSES), list(CHANNELS)
    else:
        # one product per scene and class-agnostic models (seed 001): one category
        categories, channels = ["object"], ["red", "green", "blue"]
    images: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    anns: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    counts = {s: dict.fromkeys(categories, 0) for s in SPLITS}
    stats = _Stats(len(channels))
    for d in ("images", "annotations", "previews"):
        (out / d).mkdir(parents=True, exist_ok=True)
    if cell == "bin_picking":
        for d in ("depth", "boundaries", "occlusions", "draped"):
            (out / d).mkdir(exist_ok=True)
    job = partial(_write_image, cell, base, out, seed, single_class, lines, previews)
    next_ann = 1
    pool = ProcessPoolExecutor(workers) if workers > 1 and count > 1 else None
    try:
        # map() keeps the order, so annotation ids and statistics do not depend on workers
        results = pool.map(job, range(count), chunksize=4) if pool else map(job, range(count))
        for i, (img_entry, new, (n, s1, s2)) in enumerate(results):
            s = splits[i]
            for a in new:
                a["id"] = next_ann
                next_ann += 1
                counts[s][categories[a["category_id"] - 1]] += 1
            anns[s].extend(new)
            images[s].append(img_entry)
            stats.add(n, s1, s2)
            if progress:
                progress(1)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(base).items()}
    info = {"description": f"msseg_ros synthetic {cell}", "version": str(FORMAT_VERSION),
            "seed": seed, "cell": cell}
    for s in SPLITS:
        if images[s]:
            write_coco(out / "annotations" / f"{s}.json", images[s], anns[s], categories, info)
    mean, std = stats.result()
    summary = {
        "cell": cell, "count": count, "seed": seed,
        "images_per_split": {s: len(images[s]) for s in SPLITS},
        "instances_per_class": counts,
        "channels": channels, "channel_mean": mean, "channel_std": std,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    meta = {
        "format_version": FORMAT_VERSION, "cell": cell, "count": count, "seed": seed,
        "single_class": single_class, "split": list(split), "config": config,
        "channels": channels, "classes": categories,
        "image_format": {"sorting_line": "float32 .npy (H, W, C), read with numpy.load; exact",
                         "bin_picking": "RGB PNG; depth float32 .npy in m; Y/Z maps PNG 0/255",
                         "tabletop": "RGB PNG"}[cell],
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")
    return summary


def _write_image(cell: str, base: WorldConfig, out: Path, seed: int, single_class: bool, lines: int, previews: int,
                 i: int) -> tuple[dict[str, Any], list[dict[str, Any]], tuple[int, np.ndarray, np.ndarray]]:
    """Render image ``i``, write its files; returns its COCO image entry, its annotations
    (ids numbered from 1; the caller renumbers) and its channel sums (n, sum, sum of squares)."""
    name = f"{i:06d}"
    if isinstance(base, sorting_line.SortingLineConfig):
        cfg = base.with_overrides(seed=int(np.random.default_rng([seed, i]).integers(2**31)))
        if single_class:
            cfg = cfg.with_overrides(class_mix=CLASSES[i % len(CLASSES)])
        frame = sorting_line.SortingLineWorld(cfg).render(0, lines)
        np.save(out / "images" / f"{name}.npy", frame.image, allow_pickle=False)
        labels, class_ids = frame.labels, [o.class_id for o in frame.objects]
        extra = [{"object_id": int(o.id), "belt_b": round(float(o.b), 6)} for o in frame.objects]
        img_entry = {"id": i + 1, "file_name": f"images/{name}.npy", "height": int(labels.shape[0]),
                     "width": int(labels.shape[1]), "channels": len(CHANNELS)}
        pixels = frame.image
        preview = false_colour(frame.image)
    elif isinstance(base, tabletop.TabletopConfig):
        r = tabletop.TabletopWorld(base.with_overrides(seed=seed)).render(i)
        cv2.imwrite(str(out / "images" / f"{name}.png"), cv2.cvtColor(r["rgb"], cv2.COLOR_RGB2BGR))
        labels = r["labels"]
        class_ids = [1] * int(labels.max())
        extra = None
        img_entry = {"id": i + 1, "file_name": f"images/{name}.png", "height": int(labels.shape[0]),
                     "width": int(labels.shape[1]), "channels": 3}
        pixels = r["rgb"].astype(np.float64) / 255.0
        preview = r["rgb"]
    else:
        pile = bin_pile.BinPileWorld(base.with_overrides(seed=seed)).scene(i)
        r = pile.render()
        cv2.imwrite(str(out / "images" / f"{name}.png"), cv2.cvtColor(r["rgb"], cv2.COLOR_RGB2BGR))
        np.save(out / "depth" / f"{name}.npy", r["depth"], allow_pickle=False)
        cv2.imwrite(str(out / "boundaries" / f"{name}.png"), r["boundaries"] * 255)
        cv2.imwrite(str(out / "occlusions" / f"{name}.png"), r["occlusions"] * 255)
        cv2.imwrite(str(out / "draped" / f"{name}.png"), r["draped"] * 255)
        ids = sorted(int(v) for v in np.unique(r["labels"]) if v)
        labels = np.searchsorted(ids, r["labels"]) + 1
        labels[r["labels"] == 0] = 0
        class_ids = [1] * len(ids)
        occluded = pile.occluded_ids(r["labels"])
        extra = [{"instance_id": k, "occluded": k in occluded} for k in ids]
        img_entry = {"id": i + 1, "file_name": f"images/{name}.png", "height": int(labels.shape[0]),
                     "width": int(labels.shape[1]), "channels": 3, "product": pile.product,
                     "depth_file": f"depth/{name}.npy", "boundaries_file": f"boundaries/{name}.png",
                     "occlusions_file": f"occlusions/{name}.png", "draped_file": f"draped/{name}.png"}
        pixels = r["rgb"].astype(np.float64) / 255.0
        preview = r["rgb"]
    new = annotations_from_labels(labels, class_ids, i + 1, 1, extra)
    if i < previews:
        cv2.imwrite(str(out / "previews" / f"{name}.png"), cv2.cvtColor(_outline(preview, labels), cv2.COLOR_RGB2BGR))
        if cell == "sorting_line" and i == 0:
            save_channel_sheet(frame.image, out / "previews" / f"{name}_channels.png", labels,
                               title=f"{name}: the 11 channels")
    x = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64)
    return img_entry, new, (len(x), x.sum(0), (x * x).sum(0))


def _outline(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The image with each instance's outline drawn in a colour of its own."""
    out = rgb.copy()
    colours = np.random.default_rng(0).integers(64, 256, (int(labels.max()) + 1, 3))
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge &= labels > 0
    out[edge] = colours[labels[edge]]
    return out
