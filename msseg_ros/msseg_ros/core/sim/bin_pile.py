"""The bin-picking world: piles of one deformable product, seen from a top camera (2.5D).

In the spirit of seed 001's "Mikado" data (§5.1): instances of one product (sachets,
sticks or boxes) are dropped one after another into a bin; each rests on what is below
it and is deformed at random; a z-buffer gives the visible instance masks and the depth.
Instances do not tilt: one rests at the 75th percentile of the surface under it and
drapes over whatever sticks up higher (its underside follows that surface, its thickness
on top), so nothing interpenetrates and an instance dropped later lies above an earlier
one wherever they overlap, as the depth shows.
Textures, backgrounds and lighting are random per scene, so a model cannot just
subtract the background.

Geometry: a pinhole camera at ``camera_height`` above the bin bottom looks straight
down; ``pixel_size`` is the footprint of one pixel on the bottom, so fx = fy =
camera_height / pixel_size and the principal point is the image centre. The scene is
described in image space (instances are placed in pixels); ``depth`` is the distance
along the optical axis, m. A point of height z at pixel (u, v) is at
``X = (u - cx) * (camera_height - z) / fx``, ``Y = (v - cy) * (camera_height - z) / fy``
in the camera frame.

Ground truth (seed 001 §4.1.2): instance boundaries Y (a pixel whose right or lower
neighbour belongs to another instance or the background); occlusion map Z: for each
boundary pixel, the P x P patch around it is split into its segments; with two segments
the pixels of the higher one (mean height) are 1; patches with more than two segments are
0; boundary pixels are 0. Y and Z are disjoint by construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.learning.targets import boundaries, occlusion_map
from msseg_ros.core.sim import replace_checked

PRODUCTS = ("sachet", "stick", "box")
#: a visible pixel counts as draped over something where the surface under it lies more
#: than this above its instance's resting height, m
DRAPED_RISE = 0.002


@dataclass(frozen=True)
class BinPileConfig:
    """Attributes:
        seed: world seed; scene k uses (seed, k).
        width, height: image size, px.
        product: one of PRODUCTS, or "random" (one product per scene).
        min_instances, max_instances: pile size range (seed 001: up to ~31.5 per image).
        camera_height: m above the bin bottom.
        pixel_size: m per pixel on the bin bottom.
        occlusion_patch: P of the occlusion ground truth (odd).
        noise: RGB noise, fraction of full scale.
        depth_noise: standard deviation of the camera's depth noise, m (a structured-light
            sensor at 1 m: about 1 mm); the ground-truth ``depth`` of :meth:`Pile.render`
            has none, the camera source adds it.
    """

    seed: int = 0
    width: int = 256
    height: int = 256
    product: str = "random"
    min_instances: int = 8
    max_instances: int = 30
    camera_height: float = 1.0
    pixel_size: float = 0.002
    occlusion_patch: int = 5
    noise: float = 0.02
    depth_noise: float = 0.001

    def __post_init__(self) -> None:
        if self.product not in (*PRODUCTS, "random"):
            raise ConfigError(f"bin_picking.product must be one of {', '.join(PRODUCTS)}, random; "
                              f"got {self.product!r}")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ConfigError(f"bin_picking image size must be 16..4096 px, got {self.width}x{self.height}")
        if not 1 <= self.min_instances <= self.max_instances:
            raise ConfigError(f"need 1 <= min_instances <= max_instances, got "
                              f"{self.min_instances}, {self.max_instances}")
        if self.occlusion_patch < 3 or self.occlusion_patch % 2 == 0:
            raise ConfigError(f"occlusion_patch must be odd and >= 3, got {self.occlusion_patch}")
        if not (self.camera_height > 0 and self.pixel_size > 0):
            raise ConfigError("camera_height and pixel_size must be > 0 m")
        if not 0 <= self.depth_noise < 0.1:
            raise ConfigError(f"depth_noise must be 0..0.1 m, got {self.depth_noise}")

    def with_overrides(self, **kw: Any) -> BinPileConfig:
        return replace_checked(self, "bin_picking", **kw)

    def world_to_pixel(self, x: float, y: float, z: float = 0.0) -> tuple[float, float]:
        """The sim camera's pixel of world point (x, y, z), m. The camera hangs
        ``camera_height`` above the bin-bottom centre (world origin), looking down
        (optical x = world x, optical y = -world y), as in config/bin_picking.yaml."""
        fx, fy, cx, cy = self.intrinsics
        depth = self.camera_height - z
        return cx + fx * x / depth, cy + fy * (-y) / depth

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in px."""
        f = self.camera_height / self.pixel_size
        return f, f, (self.width - 1) / 2, (self.height - 1) / 2


@dataclass
class Instance:
    """One product instance: pose in px and its surface above its own base (m)."""

    id: int
    u: float
    v: float
    angle: float
    footprint: np.ndarray = field(repr=False)  # (H, W) bool
    relief: np.ndarray = field(repr=False)  # (H, W) m, surface above the base on the footprint
    local: tuple[np.ndarray, np.ndarray] = field(repr=False)  # local coords (for textures)
    base: float = 0.0
    z: np.ndarray | None = field(default=None, repr=False)  # (H, W) surface height, -inf off


@dataclass(frozen=True)
class PickOutcome:
    """What a suction cup descending at (u, v) does.

    Attributes:
        instance: the instance under the cup (its id), or None for the bin bottom.
        contact: fraction of the cup's disk on that instance's visible surface.
        centred: the cup is fully on the instance (contact >= 0.9).
        unoccluded: nothing lies on any part of the instance.
        success: the instance was lifted out (contact >= 0.7 and unoccluded).
    """

    instance: int | None
    contact: float
    centred: bool
    unoccluded: bool
    success: bool


class Pile:
    """A pile of instances; ``render()`` gives the camera view and ground truth."""

    def __init__(self, config: BinPileConfig, rng: np.random.Generator, product: str) -> None:
        self.config = config
        self.product = product
        self.rng = rng
        H, W = config.height, config.width
        self.vv, self.uu = np.mgrid[0:H, 0:W].astype(np.float64)
        self.instances: list[Instance] = []
        self.palette = _palette(rng)
        self.background = _background(rng, H, W)
        self.light = rng.normal(size=3) * np.array([0.5, 0.5, 0.0]) + np.array([0, 0, 1.0])
        self.light /= np.linalg.norm(self.light)
        self.gain = rng.uniform(0.75, 1.15)
        n = int(rng.integers(config.min_instances, config.max_instances + 1))
        for k in range(n):
            self.instances.append(self._make_instance(k + 1))
        self.settle()

    # ---- construction --------------------------------------------------------------
    def _make_instance(self, iid: int) -> Instance:
        cfg, rng = self.config, self.rng
        s = min(cfg.width, cfg.height) / 256.0  # sizes are given for a 256 px image
        margin = 0.08 * min(cfg.width, cfg.height)
        u = rng.uniform(margin, cfg.width - margin)
        v = rng.uniform(margin, cfg.height - margin)
        angle = rng.uniform(0, np.pi)
        dx, dy = self.uu - u, self.vv - v
        ca, sa = math.cos(angle), math.sin(angle)
        x, y = ca * dx + sa * dy, -sa * dx + ca * dy
        # low-frequency warp: a deformed instance
        x = x + rng.normal(0, 2.0) * np.sin(y / (20 * s) + rng.uniform(0, 6))
        y = y + rng.normal(0, 0.004) * x * x / s
        if self.product == "sachet":
            a, b = rng.uniform(22, 34) * s, rng.uniform(14, 22) * s
            qx, qy = np.abs(x) / a, np.abs(y) / b
            fp = (qx ** 4 + qy ** 4) < 1
            relief = 0.018 * np.clip((1 - qx ** 4) * (1 - qy ** 4), 0, 1) ** 0.5
        elif self.product == "stick":
            a, b = rng.uniform(45, 70) * s, rng.uniform(6, 10) * s
            qx, qy = np.abs(x) / a, np.abs(y) / b
            fp = (qx ** 8 + qy ** 2) < 1
            relief = 0.012 * np.sqrt(np.clip(1 - qy ** 2, 0, 1))
        else:  # box
            a, b = rng.uniform(18, 30) * s, rng.uniform(12, 20) * s
            qx, qy = np.abs(x) / a, np.abs(y) / b
            fp = (qx < 1) & (qy < 1)
            relief = 0.03 * (1 - 0.15 * np.clip(np.maximum(qx, qy) - 0.85, 0, 1) / 0.15)
        relief = np.where(fp, relief + 0.002, 0.0)
        return Instance(iid, u, v, angle, fp, relief, (x / s, y / s))

    def settle(self) -> None:
        """Drop every instance, in order, onto what is below it (z-buffer): it rests at
        the 75th percentile of the surface under its footprint and drapes over what is
        higher (until 2026-12-04 it cut through that instead: an earlier instance then
        poked through a later one, which lay on it yet looked lower)."""
        H, W = self.config.height, self.config.width
        surface = np.zeros((H, W))
        for inst in self.instances:
            under = surface[inst.footprint]
            inst.base = float(np.percentile(under, 75)) if under.size else 0.0
            z = np.full((H, W), -np.inf)
            z[inst.footprint] = np.maximum(inst.base, under) + inst.relief[inst.footprint]
            inst.z = z
            surface = np.maximum(surface, np.where(inst.footprint, z, 0.0))

    # ---- ground truth ------------------------------------------------------------
    def heights(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, z): the visible instance id per pixel (0 = bin) and its height, m."""
        H, W = self.config.height, self.config.width
        if not self.instances:
            return np.zeros((H, W), np.int32), np.zeros((H, W))
        stack = np.stack([i.z for i in self.instances if i.z is not None])
        top = np.argmax(stack, axis=0)
        z = np.take_along_axis(stack, top[None], 0)[0]
        ids = np.array([i.id for i in self.instances])
        labels = np.where(np.isfinite(z) & (z > -np.inf), ids[top], 0).astype(np.int32)
        return labels, np.where(labels > 0, z, 0.0)

    def occluded_ids(self, labels: np.ndarray) -> set[int]:
        """Instances more than 2 % of whose footprint is covered by instances that lie on
        them (dropped later: :meth:`settle`); the last one dropped is never pinned, so a
        pile can always be emptied from the top."""
        out = set()
        later: set[int] = set()
        for inst in reversed(self.instances):
            area = inst.footprint.sum()
            if area and later:
                covered = np.isin(labels[inst.footprint], list(later)).sum()
                if covered > 0.02 * area:
                    out.add(inst.id)
            later.add(inst.id)
        return out

    def render(self) -> dict[str, np.ndarray]:
        """The camera view and its ground truth.

        Returns:
            rgb (H, W, 3) uint8; depth (H, W) float32 m; labels (H, W) int32 (instance ids,
            0 = bin); boundaries (H, W) uint8 {0,1}; occlusions (H, W) uint8 {0,1};
            draped (H, W) uint8 {0,1}: :meth:`draped`.
        """
        cfg = self.config
        labels, z = self.heights()
        depth = (cfg.camera_height - z).astype(np.float32)
        rgb = self._shade(labels, z)
        Y = boundaries(labels)
        Z = occlusion_map(labels, z, Y, cfg.occlusion_patch)
        return {"rgb": rgb, "depth": depth, "labels": labels, "boundaries": Y, "occlusions": Z,
                "draped": self.draped(labels)}

    def draped(self, labels: np.ndarray, rise: float = DRAPED_RISE) -> np.ndarray:
        """(H, W) uint8 {0,1}: visible pixels where an instance lies draped over something
        more than ``rise`` m above its resting height (:meth:`settle`): the raised parts
        that an RGB model's masks tend to leave out (docs/models.md, "A mask loss weighted
        where instances meet"). ``labels``: the visible instance ids (:meth:`heights`)."""
        out = np.zeros(labels.shape, np.uint8)
        for inst in self.instances:
            if inst.z is None:
                continue
            raised = inst.footprint & (inst.z - inst.relief > inst.base + rise) & (labels == inst.id)
            out[raised] = 1
        return out

    def _shade(self, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        rng = self.rng
        albedo = self.background.copy()
        for inst in self.instances:
            m = labels == inst.id
            if m.any():
                albedo[m] = _texture(self.palette, inst.local[0][m], inst.local[1][m])
        gy, gx = np.gradient(z / self.config.pixel_size)
        n = np.stack([-gx, -gy, np.ones_like(z)], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        lambert = np.clip(n @ self.light, 0, 1)
        # contact shadows: darker where the surface drops steeply nearby
        drop = cv2.GaussianBlur(z.astype(np.float32), (0, 0), 2.0) - z
        ao = np.clip(1 - 25 * np.clip(drop, 0, None), 0.5, 1)
        spec = np.where(labels > 0, lambert ** 40 * 0.35, 0) if self.product == "sachet" else None
        img = albedo * (0.35 + 0.65 * lambert[..., None]) * ao[..., None] * self.gain
        if spec is not None:
            img = img + spec[..., None]
        img = img + rng.normal(0, self.config.noise, img.shape)
        return (np.clip(img, 0, 1) * 255).astype(np.uint8)

    # ---- physics -----------------------------------------------------------------
    def outcome(self, u: float, v: float, cup_radius_px: float = 5.0,
                labels: np.ndarray | None = None, pinned: set[int] | None = None) -> PickOutcome:
        """What a suction cup descending at pixel (u, v) would do, the pile unchanged: it
        lifts the instance under it when that is not pinned (:meth:`occluded_ids`) and
        covers at least 70 % of the cup's disk. ``labels`` and ``pinned``: this pile's
        :meth:`heights` labels and their :meth:`occluded_ids`, when already computed."""
        if labels is None:
            labels, _ = self.heights()
        H, W = labels.shape
        iu, iv = int(round(u)), int(round(v))
        if not (0 <= iu < W and 0 <= iv < H) or labels[iv, iu] == 0:
            return PickOutcome(None, 0.0, False, False, False)
        iid = int(labels[iv, iu])
        disk = (self.uu - u) ** 2 + (self.vv - v) ** 2 <= cup_radius_px ** 2
        contact = float(np.mean(labels[disk] == iid))
        unoccluded = iid not in (self.occluded_ids(labels) if pinned is None else pinned)
        return PickOutcome(iid, contact, contact >= 0.9, unoccluded, contact >= 0.7 and unoccluded)

    def pick(self, u: float, v: float, cup_radius_px: float = 5.0) -> PickOutcome:
        """A suction cup descends at pixel (u, v) (:meth:`outcome`). A successful pick
        removes the instance and the rest of the pile settles."""
        out = self.outcome(u, v, cup_radius_px)
        if out.success:
            self.instances = [i for i in self.instances if i.id != out.instance]
            self.settle()
        return out


def _palette(rng: np.random.Generator) -> dict[str, Any]:
    """One product texture per scene: base colour, stripes, spots, a label patch."""
    return {
        "base": rng.uniform(0.15, 0.95, 3),
        "stripe": rng.uniform(0.05, 0.95, 3),
        "spot": rng.uniform(0.05, 0.95, 3),
        "freq": rng.uniform(0.08, 0.35),
        "stripe_width": rng.uniform(0.1, 0.5),
        "spot_freq": rng.uniform(0.1, 0.3),
        "label": rng.uniform(0, 1, 3),
        "label_size": rng.uniform(4, 10),
    }


def _texture(p: dict[str, Any], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Colours at instance-local coordinates (so the print rotates with the instance)."""
    out = np.broadcast_to(p["base"], x.shape + (3,)).copy()
    stripes = np.mod(x * p["freq"], 1.0) < p["stripe_width"]
    out[stripes] = p["stripe"]
    spots = (np.sin(x * p["spot_freq"]) * np.sin(y * p["spot_freq"])) > 0.7
    out[spots] = p["spot"]
    lab = (np.abs(x) < p["label_size"]) & (np.abs(y) < p["label_size"] * 0.6)
    out[lab] = p["label"]
    return out


def _background(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """A random bin-bottom texture: smooth noise, tiles or wood-like grain."""
    kind = rng.integers(3)
    c1, c2 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    vv, uu = np.mgrid[0:H, 0:W] / max(H, W)
    if kind == 0:
        noise = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), rng.uniform(3, 12))
        t = (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    elif kind == 1:
        f = rng.uniform(4, 16)
        t = ((np.floor(uu * f) + np.floor(vv * f)) % 2).astype(float)
    else:
        t = 0.5 + 0.5 * np.sin(uu * rng.uniform(20, 60) + 3 * np.sin(vv * rng.uniform(3, 9)))
    return c1 * t[..., None] + c2 * (1 - t[..., None])


class BinPileWorld:
    """Scenes of ``config``; ``scene(k)`` is a fresh, deterministic pile."""

    def __init__(self, config: BinPileConfig | None = None) -> None:
        self.config = config or BinPileConfig()

    def scene(self, k: int) -> Pile:
        rng = np.random.default_rng([self.config.seed, int(k), 0xB1A])
        product = self.config.product
        if product == "random":
            product = PRODUCTS[int(rng.integers(len(PRODUCTS)))]
        return Pile(self.config, rng, product)
