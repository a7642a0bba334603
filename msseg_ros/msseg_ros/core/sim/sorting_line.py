"""The sorting-line world: scrap on a belt, seen by the profiler, the VNIR camera and the XRT.

The world is a pure function of (seed, belt coordinate). The belt is cut into slots of
``slot_length`` metres; the objects of slot k come from a generator seeded by (seed, k)
and never leave their slot, so any process can render or query any stretch of belt
without shared state. Sensor noise is seeded by (seed, line index): rendering lines one
by one or in chunks gives the same values.

Coordinates:
    belt coordinate ``b`` (m): the belt travel at which a point passes under the scanner.
    across ``c`` (m): distance from the belt's left edge (image column j has centre
        ``(j + 0.5) * pixel_size``).
    line index ``i``: the line at ``b = i * line_pitch``. A point at belt coordinate b is
        at world ``x = scanner_x + (p - b)`` when the belt travel is p.

Frames are ``(lines, columns, 11)`` float32 in the CONTRACT channel order; see
:mod:`msseg_ros.core.sim.materials` for units.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.sim import materials as mat
from msseg_ros.core.sim import replace_checked
from msseg_ros.core.sim.shapes import CLASS_FAMILIES, Shape, make_shape

CLASSES = mat.CLASSES
CHANNELS = mat.CHANNELS


@dataclass(frozen=True)
class SortingLineConfig:
    """Configuration of the sorting-line world (SI units unless the name says mm).

    Attributes:
        seed: world seed.
        belt_width: m (seed 000: 1096 px of 0.5 mm).
        pixel_size: across-belt pixel size, m (profiler grid: 0.5 mm).
        line_pitch: belt travel between lines, m.
        belt_speed: m/s, to turn ``feed_rate`` into objects per metre.
        feed_rate: objects per second arriving on the belt.
        class_mix: relative frequency of each class (CLASSES order).
        touch_rate: probability that an object is placed touching a previous one.
        overlap_rate: probability that an object is placed partly on top of another.
        size_scale: scales object lengths.
        slot_length: m; objects of one slot stay inside it.
        height_noise_mm, belt_roughness_mm: profiler noise and belt texture amplitude.
        vnir_noise: relative per-pixel reflectance noise.
        xray_noise: XRT noise, counts.
        illumination_drift: relative amplitude of the slow VNIR illumination drift.
    """

    seed: int = 0
    belt_width: float = 0.548
    pixel_size: float = 0.002
    line_pitch: float = 0.002
    belt_speed: float = 0.5
    feed_rate: float = 4.0
    class_mix: tuple[float, ...] = (1.0,) * len(CLASSES)
    touch_rate: float = 0.2
    overlap_rate: float = 0.0
    size_scale: float = 1.0
    slot_length: float = 0.25
    height_noise_mm: float = 0.08
    belt_roughness_mm: float = 0.2
    vnir_noise: float = 0.04
    xray_noise: float = 150.0
    illumination_drift: float = 0.03

    def __post_init__(self) -> None:
        positive = ("belt_width", "pixel_size", "line_pitch", "belt_speed", "size_scale", "slot_length")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ConfigError(f"sorting_line.{name} must be > 0, got {v!r}")
        for name in ("touch_rate", "overlap_rate"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"sorting_line.{name} must be in [0, 1], got {v!r}")
        if self.feed_rate < 0:
            raise ConfigError(f"sorting_line.feed_rate must be >= 0 objects/s, got {self.feed_rate!r}")
        mix = tuple(float(v) for v in self.class_mix)
        if len(mix) != len(CLASSES) or min(mix) < 0 or sum(mix) <= 0:
            raise ConfigError(
                f"sorting_line.class_mix needs {len(CLASSES)} weights >= 0 with a positive sum "
                f"(order: {', '.join(CLASSES)}), got {self.class_mix!r}"
            )
        object.__setattr__(self, "class_mix", mix)

    @classmethod
    def from_world(cls, world: Any, line_pitch: float | None = None) -> SortingLineConfig:
        """The world of the nodes' shared ``world.*`` parameters (any object with their
        attributes: seed, belt_width, pixel_size, design_speed, feed_rate, touch_rate,
        overlap_rate), rendered at ``line_pitch`` m (default: the dataclass's; objects do
        not depend on it, only the rendering does)."""
        return cls(seed=int(world.seed), belt_width=float(world.belt_width), pixel_size=float(world.pixel_size),
                   line_pitch=cls.line_pitch if line_pitch is None else float(line_pitch),
                   belt_speed=float(world.design_speed), feed_rate=float(world.feed_rate),
                   touch_rate=float(world.touch_rate), overlap_rate=float(world.overlap_rate))

    @property
    def columns(self) -> int:
        return int(round(self.belt_width / self.pixel_size))

    def with_overrides(self, **kw: Any) -> SortingLineConfig:
        """A copy with overrides; ``class_mix`` may also be a {class: weight} dict or a
        single class name (single-class images, as in the seed's dataset)."""
        mix = kw.get("class_mix")
        if isinstance(mix, str):
            mix = {mix: 1.0}
        if isinstance(mix, dict):
            unknown = set(mix) - set(CLASSES)
            if unknown:
                raise ConfigError(f"unknown class(es) {sorted(unknown)}; classes: {', '.join(CLASSES)}")
            kw["class_mix"] = tuple(float(mix.get(c, 0.0)) for c in CLASSES)
        return replace_checked(self, "sorting_line", **kw)


@dataclass
class ScrapObject:
    """One piece of scrap.

    Attributes:
        id: unique in the world (slot * 1000 + index in slot).
        cls: class name; ``class_id`` = CLASSES.index(cls) + 1.
        shape: geometry (mm, object frame).
        b, c: centre, belt coordinate and across-belt position, m.
        angle: rotation of the shape, rad.
        spectrum: reflectance (8,), counts.
        bulk: X-ray material.
        feature_spectra: reflectance of features 1..3 (trace, component, paint chip).
        rests_on: id of the object it lies on, or None.
    """

    id: int
    cls: str
    shape: Shape
    b: float
    c: float
    angle: float
    spectrum: np.ndarray
    bulk: mat.Bulk
    feature_spectra: dict[int, np.ndarray] = field(default_factory=dict)
    rests_on: int | None = None

    @property
    def class_id(self) -> int:
        return CLASSES.index(self.cls) + 1

    def evaluate(self, b_mm: np.ndarray, c_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shape fields at belt points (mm, absolute)."""
        dx, dy = b_mm - self.b * 1e3, c_mm - self.c * 1e3
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        return self.shape.evaluate(ca * dx + sa * dy, -sa * dx + ca * dy)


@dataclass
class Frame:
    """A rendered stretch of belt.

    Attributes:
        image: (lines, columns, 11) float32, CONTRACT channel order.
        labels: (lines, columns) int32, index into ``objects`` + 1 of the top object, 0 = belt.
        objects: the objects that appear, in label order.
        first_line: line index of row 0.
    """

    image: np.ndarray
    labels: np.ndarray
    objects: list[ScrapObject]
    first_line: int


class SortingLineWorld:
    """Deterministic scrap on a belt. See the module docstring for coordinates."""

    PLACEMENT_GRID_MM = 0.5

    def __init__(self, config: SortingLineConfig | None = None) -> None:
        self.config = config or SortingLineConfig()
        self._slot = functools.lru_cache(maxsize=256)(self._make_slot)
        rng = np.random.default_rng([self.config.seed, 0xBE17])
        self._rough = [(rng.uniform(5, 40), rng.uniform(5, 40), rng.uniform(0, 2 * np.pi))
                       for _ in range(4)]

    # ---- objects -----------------------------------------------------------------
    def slot_objects(self, k: int) -> list[ScrapObject]:
        """The objects of slot ``k`` (belt coordinates [k, k+1) * slot_length)."""
        return self._slot(int(k))

    def objects_between(self, b0: float, b1: float) -> list[ScrapObject]:
        """Objects whose footprint may reach belt coordinates [b0, b1) m."""
        L = self.config.slot_length
        out: list[ScrapObject] = []
        for k in range(math.floor(b0 / L), math.floor(b1 / L) + 1):
            out.extend(o for o in self.slot_objects(k)
                       if o.b + o.shape.radius / 1e3 >= b0 and o.b - o.shape.radius / 1e3 < b1)
        return out

    def _make_slot(self, k: int) -> list[ScrapObject]:
        cfg = self.config
        if k < 0 or cfg.feed_rate == 0:
            return []
        rng = np.random.default_rng([cfg.seed, k, 0x510])
        lam = cfg.feed_rate / cfg.belt_speed * cfg.slot_length
        n = int(rng.poisson(lam))
        g = self.PLACEMENT_GRID_MM
        rows, cols = int(cfg.slot_length * 1e3 / g), int(cfg.belt_width * 1e3 / g)
        occupied = np.zeros((rows, cols), bool)
        mix = np.array(cfg.class_mix) / sum(cfg.class_mix)
        placed: list[tuple[ScrapObject, np.ndarray, int, int]] = []
        for j in range(n):
            cls = str(rng.choice(CLASSES, p=mix))
            fam = CLASS_FAMILIES[cls]
            family = str(rng.choice(list(fam), p=np.array(list(fam.values())) / sum(fam.values())))
            shape = make_shape(family, rng, size=cfg.size_scale, painted=cls == "paint")
            angle = float(rng.uniform(0, 2 * np.pi))
            half = int(math.ceil(shape.radius / g)) + 1
            if 2 * half + 2 >= min(rows, cols):
                continue  # larger than the slot: not fed
            obj = self._dress(k * 1000 + j, cls, shape, angle, rng)
            local = np.arange(-half, half + 1) * g
            yy, xx = np.meshgrid(local, local, indexing="ij")  # (along, across), mm
            ca, sa = math.cos(angle), math.sin(angle)
            h, _, _ = shape.evaluate(ca * yy + sa * xx, -sa * yy + ca * xx)
            mask = h > 0
            mode = "free"
            if placed:
                u = rng.random()
                if u < cfg.touch_rate:
                    mode = "touch"
                elif u < cfg.touch_rate + cfg.overlap_rate:
                    mode = "overlap"
            spot = self._place(mode, mask, half, occupied, placed, rng)
            if spot is None:
                continue
            r0, c0, rests_on = spot
            occupied[r0 - half:r0 + half + 1, c0 - half:c0 + half + 1] |= mask
            obj.b = k * cfg.slot_length + (r0 + 0.5) * g / 1e3
            obj.c = (c0 + 0.5) * g / 1e3
            obj.rests_on = rests_on
            placed.append((obj, mask, r0, c0))
        return [p[0] for p in placed]

    def _place(self, mode: str, mask: np.ndarray, half: int, occupied: np.ndarray,
               placed: list[tuple[ScrapObject, np.ndarray, int, int]], rng: np.random.Generator
               ) -> tuple[int, int, int | None] | None:
        rows, cols = occupied.shape

        def fits(r0: int, c0: int, allow_overlap: bool = False) -> bool:
            if r0 - half < 0 or c0 - half < 0 or r0 + half >= rows or c0 + half >= cols:
                return False
            if allow_overlap:
                return True
            window = occupied[r0 - half:r0 + half + 1, c0 - half:c0 + half + 1]
            return not bool(np.any(window & mask))

        if mode in ("touch", "overlap"):
            other, _, orow, ocol = placed[int(rng.integers(len(placed)))]
            theta = rng.uniform(0, 2 * np.pi)
            d_row, d_col = math.cos(theta), math.sin(theta)
            reach = other.shape.radius / self.PLACEMENT_GRID_MM + half + 2
            if mode == "overlap":
                f = rng.uniform(0.35, 0.65)
                r0, c0 = int(round(orow + d_row * reach * f)), int(round(ocol + d_col * reach * f))
                if fits(r0, c0, allow_overlap=True):
                    return r0, c0, other.id
            else:
                last = None
                for step in np.arange(reach, 0, -1.0):  # slide in until contact
                    r0, c0 = int(round(orow + d_row * step)), int(round(ocol + d_col * step))
                    if not fits(r0, c0):
                        break
                    last = (r0, c0)
                if last is not None:
                    return last[0], last[1], None
        for _ in range(40):
            r0 = int(rng.integers(half, rows - half))
            c0 = int(rng.integers(half, cols - half))
            if fits(r0, c0):
                return r0, c0, None
        return None

    def _dress(self, oid: int, cls: str, shape: Shape, angle: float, rng: np.random.Generator) -> ScrapObject:
        spectrum = mat.object_spectrum(cls, rng)
        features: dict[int, np.ndarray] = {}
        if cls == "paint":
            substrate = str(rng.choice(mat.PAINT_SUBSTRATES))
            bulk = mat.BULK[substrate]
            base = mat.SPECTRA.get(substrate, mat.DIRT_SPECTRUM)
            features[3] = base * rng.lognormal(0, 0.2)
        else:
            bulk = mat.BULK[cls]
        if cls == "pcb":
            features[1] = mat.PCB_TRACE * rng.lognormal(0, 0.2)
            features[2] = mat.PCB_COMPONENT * rng.lognormal(0, 0.2)
        return ScrapObject(oid, cls, shape, 0.0, 0.0, angle, spectrum, bulk, features)

    # ---- rendering ---------------------------------------------------------------
    def render(self, first_line: int, n_lines: int) -> Frame:
        """Render lines ``first_line .. first_line + n_lines - 1``."""
        cfg = self.config
        if n_lines <= 0:
            raise ConfigError(f"n_lines must be > 0, got {n_lines}")
        W = cfg.columns
        # one extra line each side: the shading gradient is then the same whatever the chunking
        n_geo = n_lines + 2
        b = (first_line - 1 + np.arange(n_geo)) * cfg.line_pitch  # m
        c = (np.arange(W) + 0.5) * cfg.pixel_size
        b_mm, c_mm = b * 1e3, c * 1e3
        height = np.zeros((n_geo, W))
        att_lo = np.zeros((n_geo, W))
        att_hi = np.zeros((n_geo, W))
        spec = np.broadcast_to(mat.BELT_SPECTRUM, (n_geo, W, 8)).copy()
        labels = np.zeros((n_geo, W), np.int32)
        is_object = np.zeros((n_geo, W), bool)
        objects = self.objects_between(b[0], b[-1] + cfg.line_pitch)
        # lower objects first so a resting object covers what it lies on
        order = sorted(objects, key=lambda o: (o.rests_on is not None, o.id))
        shown: list[ScrapObject] = []
        for obj in order:
            r = obj.shape.radius
            i0 = max(0, int(np.searchsorted(b_mm, obj.b * 1e3 - r)))
            i1 = min(n_geo, int(np.searchsorted(b_mm, obj.b * 1e3 + r, side="right")))
            j0 = max(0, int((obj.c * 1e3 - r) / (cfg.pixel_size * 1e3)))
            j1 = min(W, int((obj.c * 1e3 + r) / (cfg.pixel_size * 1e3)) + 2)
            if i0 >= i1 or j0 >= j1:
                continue
            bb, cc = np.meshgrid(b_mm[i0:i1], c_mm[j0:j1], indexing="ij")
            h, t, feat = obj.evaluate(bb, cc)
            m = h > 0
            if not m.any():
                continue
            win = (slice(i0, i1), slice(j0, j1))
            base = height[win] if obj.rests_on is not None else 0.0
            height[win] = np.where(m, base + h, height[win])
            lo, hi = obj.bulk.attenuation_per_mm()
            att_lo[win] += lo * t
            att_hi[win] += hi * t
            s = np.broadcast_to(obj.spectrum, m.shape + (8,)).copy()
            for f, fs in obj.feature_spectra.items():
                s[feat == f] = fs
            spec[win] = np.where(m[..., None], s, spec[win])
            shown.append(obj)
            labels[win] = np.where(m, len(shown), labels[win])
            is_object[win] |= m
        gy, gx = np.gradient(height, cfg.line_pitch * 1e3, cfg.pixel_size * 1e3)
        core = slice(1, n_lines + 1)
        height, att_lo, att_hi, spec = height[core], att_lo[core], att_hi[core], spec[core]
        labels, is_object, b_mm = labels[core], is_object[core], b_mm[core]
        slope = np.hypot(gx[core], gy[core])
        # keep only objects that are still visible, relabel 1..n
        visible = np.unique(labels[labels > 0])
        remap = np.zeros(len(shown) + 1, np.int32)
        remap[visible] = np.arange(1, len(visible) + 1)
        labels = remap[labels]
        shown = [shown[v - 1] for v in visible]
        image = self._sense(first_line, b_mm, c_mm, height, slope, att_lo, att_hi, spec, is_object)
        return Frame(image, labels, shown, first_line)

    def _sense(self, first_line: int, b_mm: np.ndarray, c_mm: np.ndarray, height: np.ndarray, slope: np.ndarray,
               att_lo: np.ndarray, att_hi: np.ndarray, spec: np.ndarray, is_object: np.ndarray) -> np.ndarray:
        cfg = self.config
        n, W = height.shape
        noise = np.empty((n, W, 11))
        for i in range(n):  # per-line seeds: chunking does not change the values
            noise[i] = np.random.default_rng([cfg.seed, first_line + i, 0x5E45]).standard_normal((W, 11))
        rough = np.zeros((n, W))
        for fb, fc, ph in self._rough:
            rough += np.sin(b_mm[:, None] / fb + np.sin(c_mm[None, :] / fc) + ph)
        rough = cfg.belt_roughness_mm * (0.75 + 0.25 * rough / len(self._rough))
        out = np.empty((n, W, 11), np.float32)
        out[..., 0] = height + rough + cfg.height_noise_mm * noise[..., 0]
        # XRT: Beer-Lambert, detector PSF across the line (0.7 mm), noise
        sigma_px = 0.7 / 2.355 / (cfg.pixel_size * 1e3)
        for ch, att in ((1, att_lo), (2, att_hi)):
            t = mat.FULL_SCALE * mat.BELT_TRANSMISSION * np.exp(-att)
            if sigma_px > 0.3:
                t = cv2.GaussianBlur(t, (0, 0), sigmaX=sigma_px, sigmaY=1e-6)
            out[..., ch] = np.clip(t + cfg.xray_noise * noise[..., ch], 0, mat.FULL_SCALE)
        # VNIR: Lambertian shading from the surface normal, illumination drift, noise
        cos_n = 1.0 / np.sqrt(1 + slope * slope)
        shade = np.where(is_object, 0.55 + 0.45 * cos_n, 1.0)
        drift = 1 + cfg.illumination_drift * np.sin(2 * np.pi * b_mm / 3700.0 + cfg.seed)
        vnir = spec * (shade * drift[:, None])[..., None] * (1 + cfg.vnir_noise * noise[..., 3:])
        out[..., 3:] = np.clip(vnir, 0, mat.FULL_SCALE)
        return out
