"""Tabletop scenes: many different household objects on a table, seen obliquely (RGB).

Pretraining data for few-shot users (issue #13): the real photos such a user labels
(../shared/data/tabletop_rgbd: YCB-style objects on a table, a camera looking down at
roughly 30-60 degrees) show many products per scene, each with its own print, a table
that may not fill the frame, and a room behind it. The bin piles show one product from
straight above. Here each scene is drawn in image space with a simple perspective:

- a horizon row ``v_h``; a thing standing at row ``v`` (its foot) is drawn at scale
  ``(v - v_h) / (H - v_h)`` of its near size, so far objects are small and high;
- a table (a trapezoid narrowing towards the horizon) with a wood, laminate or cloth
  texture whose grain shrinks with distance; floor and wall around and behind it;
- objects of seven kinds (boxes showing their front and top, cylinders such as cans
  and cups with an elliptical rim, bottles, bowls, mugs with a handle, thin pens,
  irregular blobs; optionally drill-like tools and toy bricks), each with its own colours
  and print, shaded across its width,
  casting a soft contact shadow, drawn far to near, so nearer ones occlude;
- unlabelled clutter behind the table (furniture-like shapes): a model must learn that
  not every thing in the frame is an object to pick;
- with probability ``office``, an office behind the table (the real photos' rooms): a
  carpet floor, desks further back with papers and monitors on them, office chairs,
  cabinets, and boards or windows on the wall, all unlabelled. These draws come from
  a stream of their own, so ``office=0`` gives the same scenes as before it existed.

Ground truth: visible instance masks (labels), class-agnostic ("object"). Everything is
a function of (seed, scene index). Pixel units throughout; no metric geometry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.sim import replace_checked

#: the object kinds a scene draws from by default, and how often each is drawn
KINDS = ("box", "cylinder", "bottle", "bowl", "mug", "pen", "blob")
KIND_WEIGHTS = {"box": 0.2, "cylinder": 0.22, "bottle": 0.1, "bowl": 0.1, "mug": 0.12, "pen": 0.08, "blob": 0.18,
                "tool": 0.12, "brick": 0.1}


@dataclass(frozen=True)
class TabletopConfig:
    """Attributes:
        seed: world seed; scene k uses (seed, k).
        width, height: image size, px.
        min_objects, max_objects: objects placed per scene (fewer may stay visible).
        near_size: an object's typical height at the bottom row, px (scaled by perspective).
        clutter: the largest number of unlabelled shapes behind the table.
        noise: RGB noise, fraction of full scale.
        min_visible: an instance with fewer visible pixels is dropped from the labels.
        office: probability that a scene's room is an office (carpet, desks with papers,
            chairs, cabinets, boards), 0..1.
        kinds: the object kinds drawn, in proportion to ``KIND_WEIGHTS``: the seven of
            ``KINDS`` by default; also ``tool`` (a drill-like body, handle and battery)
            and ``brick`` (a toy brick with studs).
    """

    seed: int = 0
    width: int = 320
    height: int = 240
    min_objects: int = 3
    max_objects: int = 14
    near_size: float = 70.0
    clutter: int = 6
    noise: float = 0.02
    min_visible: int = 30
    office: float = 0.0
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ConfigError(f"tabletop image must be at least 32 x 32 px, got {self.width} x {self.height}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if self.near_size <= 4:
            raise ConfigError(f"near_size must be > 4 px, got {self.near_size}")
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = [k for k in self.kinds if k not in KIND_WEIGHTS]
        if unknown or not self.kinds:
            raise ConfigError(f"unknown object kind(s) {unknown}; kinds: {', '.join(KIND_WEIGHTS)}")
        if not 0.0 <= self.office <= 1.0:
            raise ConfigError(f"office is a probability in 0..1, got {self.office}")

    def with_overrides(self, **kw: Any) -> TabletopConfig:
        return replace_checked(self, "tabletop", **kw)


class TabletopWorld:
    """Scenes of ``config``: ``render(k)`` draws scene k."""

    def __init__(self, config: TabletopConfig | None = None) -> None:
        self.config = config or TabletopConfig()

    def render(self, k: int) -> dict[str, np.ndarray]:
        """Scene ``k``.

        Returns:
            rgb (H, W, 3) uint8; labels (H, W) int32, instance ids 1..N in drawing
            order (0: table, floor, wall or clutter), only instances of at least
            ``min_visible`` pixels, renumbered without gaps.
        """
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, int(k), 0x7AB1E])
        H, W = cfg.height, cfg.width
        v_h = rng.uniform(-0.3, 0.35) * H  # the horizon: above the frame for a steep view
        img, table, wall_row = _room(rng, H, W, v_h)
        if cfg.office > 0:
            office_rng = np.random.default_rng([cfg.seed, int(k), 0x0FF1CE])
            if office_rng.random() < cfg.office:
                _office(office_rng, img, table, v_h, wall_row)
        _clutter(rng, img, table, v_h, cfg.clutter)
        labels = np.zeros((H, W), np.int32)
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        rows, cols = np.nonzero(table)
        feet = []
        for _ in range(n):
            j = int(rng.integers(len(rows)))
            feet.append((float(rows[j]) + rng.uniform(0, 1), float(cols[j]) + rng.uniform(0, 1)))
        feet.sort()  # far (small row) first: nearer objects are drawn over them
        light = rng.uniform(-1, 1)  # the shading's bright side, -1 left .. 1 right
        weights = np.array([KIND_WEIGHTS[k] for k in cfg.kinds])
        for iid, (v, u) in enumerate(feet, start=1):
            scale = max(0.15, (v - v_h) / (H - v_h))
            size = cfg.near_size * scale * rng.uniform(0.5, 1.4)
            kind = cfg.kinds[int(rng.choice(len(cfg.kinds), p=weights / weights.sum()))]
            mask, colour = _draw_object(rng, kind, u, v, size, light, H, W)
            if not mask.any():
                continue
            _shadow(img, mask, rng)
            img[mask] = colour[mask]
            labels[mask] = iid
        img *= np.clip(1 + rng.uniform(-0.35, 0.35) * (np.linspace(-1, 1, W)[None, :]
                                                       + rng.uniform(-0.5, 0.5) * np.linspace(-1, 1, H)[:, None]),
                       0.3, 1.6)[..., None] * rng.uniform(0.7, 1.2)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9))
        img += rng.normal(0, cfg.noise, img.shape).astype(np.float32)
        ids, counts = np.unique(labels[labels > 0], return_counts=True)
        keep = ids[counts >= cfg.min_visible]
        out = np.zeros_like(labels)
        for new, old in enumerate(keep, start=1):
            out[labels == old] = new
        return {"rgb": (np.clip(img, 0, 1) * 255).astype(np.uint8), "labels": out}


# ---- the room ------------------------------------------------------------------------
def _room(rng: np.random.Generator, H: int, W: int, v_h: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The background image (H, W, 3) float32 in 0..1, the table's mask (H, W) bool and
    the row where the wall meets the floor (<= 0: no wall in the frame)."""
    vv, uu = np.mgrid[0:H, 0:W].astype(np.float32)
    img = _noise_texture(rng, H, W, rng.uniform(0.1, 0.7, 3), rng.uniform(0.05, 0.6, 3), rng.uniform(1, 6))  # floor
    wall_row = max(0.0, v_h + rng.uniform(0.02, 0.25) * H)
    if wall_row > 0:
        wall = _noise_texture(rng, H, W, rng.uniform(0.4, 0.95, 3), rng.uniform(0.3, 0.9, 3), rng.uniform(10, 40))
        img[vv < wall_row] = wall[vv < wall_row]
    # the table: a trapezoid from its near edge (at or below the frame) to its far edge
    far = rng.uniform(max(v_h, 0) + 0.05 * H, 0.45 * H)
    near = rng.uniform(0.95, 1.4) * H
    half_near = rng.uniform(0.5, 1.5) * W
    centre = rng.uniform(0.3, 0.7) * W
    shrink = (far - v_h) / max(near - v_h, 1.0)
    quad = np.array([[centre - half_near, near], [centre + half_near, near],
                     [centre + half_near * shrink + rng.uniform(-0.1, 0.1) * W, far],
                     [centre - half_near * shrink + rng.uniform(-0.1, 0.1) * W, far]], np.float32)
    table = np.zeros((H, W), np.uint8)
    cv2.fillPoly(table, [np.round(quad * 8).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=3)
    tmask = table.astype(bool)
    if tmask.sum() < 0.1 * H * W:  # too little table to stand things on: the whole lower frame
        tmask = vv > max(far, 0.2 * H)
    img[tmask] = _table_texture(rng, vv, uu, v_h)[tmask]
    return img, tmask, wall_row


def _noise_texture(rng: np.random.Generator, H: int, W: int, c1: np.ndarray, c2: np.ndarray,
                   sigma: float) -> np.ndarray:
    t = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), sigma)
    t = (t - t.min()) / (float(np.ptp(t)) + 1e-9)
    return (c1 * t[..., None] + c2 * (1 - t[..., None])).astype(np.float32)


def _table_texture(rng: np.random.Generator, vv: np.ndarray, uu: np.ndarray, v_h: float) -> np.ndarray:
    """Wood grain, laminate or cloth, its detail shrinking towards the horizon."""
    depth = 1.0 / np.maximum(vv - v_h, 1.0)  # ~ distance
    kind = rng.integers(3)
    base = rng.uniform(0.35, 0.9, 3) if kind else np.array([0.75, 0.55, 0.35]) * rng.uniform(0.6, 1.2)
    dark = base * rng.uniform(0.55, 0.9)
    if kind == 0:  # wood: grain along the table's depth, plank seams
        x = (uu - uu.shape[1] / 2) * depth * 200.0
        grain = 0.5 + 0.5 * np.sin(x * rng.uniform(0.2, 0.6) + 2.5 * np.sin(x * 0.05 + depth * 300))
        planks = (np.mod(x * rng.uniform(0.01, 0.03), 1.0) < 0.03).astype(np.float32)
        t = np.clip(0.7 * grain + planks, 0, 1)
    elif kind == 1:  # laminate: nearly flat, a soft sheen
        t = np.clip(0.5 + 0.3 * np.sin(depth * rng.uniform(100, 400)), 0, 1) * rng.uniform(0.1, 0.4)
    else:  # cloth: fine noise
        t = rng.random(vv.shape).astype(np.float32)
    return (dark * t[..., None] + base * (1 - t[..., None])).astype(np.float32)


def _clutter(rng: np.random.Generator, img: np.ndarray, table: np.ndarray, v_h: float, most: int) -> None:
    """Unlabelled furniture-like shapes off the table (behind or beside it)."""
    H, W = table.shape
    free = ~table
    if not free.any() or most <= 0:
        return
    rows, cols = np.nonzero(free)
    for _ in range(int(rng.integers(0, most + 1))):
        j = int(rng.integers(len(rows)))
        v, u = float(rows[j]), float(cols[j])
        s = max(0.2, (v - v_h) / (H - v_h)) * rng.uniform(30, 120)
        m = np.zeros((H, W), np.uint8)
        if rng.random() < 0.5:  # a chair- or cabinet-like block with legs
            x0, y0 = int(u - s / 2), int(v - s)
            cv2.rectangle(m, (x0, y0), (int(u + s / 2), int(v - s * 0.4)), 1, -1)
            for lx in (x0 + 2, int(u + s / 2) - 2):
                cv2.line(m, (lx, int(v - s * 0.4)), (lx, int(v)), 1, max(1, int(s / 15)))
        else:
            pts = _blob_points(rng, u, v - s / 2, s / 2, s / 2)
            cv2.fillPoly(m, [pts], 1)
        mask = m.astype(bool) & free
        img[mask] = (rng.uniform(0.05, 0.8, 3) * (0.8 + 0.2 * rng.random((int(mask.sum()), 1)))).astype(np.float32)


def _office(rng: np.random.Generator, img: np.ndarray, table: np.ndarray, v_h: float, wall_row: float) -> None:
    """An office around the table, unlabelled, drawn far to near off the table only:
    carpet, boards or windows on the wall, desks with papers and monitors, chairs and
    cabinets. ``img`` (H, W, 3) float32 is drawn on in place."""
    H, W = table.shape
    free = ~table
    vv, uu = np.mgrid[0:H, 0:W].astype(np.float32)
    floor = free & (vv >= wall_row)
    # carpet: fine speckle in two or three colours, maybe a faint weave
    base, fleck = rng.uniform(0.1, 0.55, 3), rng.uniform(0.05, 0.7, 3)
    speck = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), rng.uniform(0.4, 1.2))
    speck = (speck - speck.min()) / (float(np.ptp(speck)) + 1e-9)
    if rng.random() < 0.5:
        speck = 0.7 * speck + 0.3 * (np.mod(uu + vv * rng.uniform(-1, 1), rng.uniform(3, 8)) < 1.5)
    carpet = base * (1 - speck[..., None]) + fleck * speck[..., None]
    img[floor] = carpet[floor]
    if wall_row > 4:  # boards, windows, doors on the wall
        for _ in range(int(rng.integers(0, 4))):
            x0, w = rng.uniform(-0.1, 0.9) * W, rng.uniform(0.1, 0.4) * W
            y1 = rng.uniform(0.3, 1.0) * wall_row
            y0 = y1 - rng.uniform(0.2, 0.9) * wall_row
            m = np.zeros((H, W), np.uint8)
            cv2.rectangle(m, (int(x0), int(y0)), (int(x0 + w), int(y1)), 1, -1)
            m = m.astype(bool) & free & (vv < wall_row)
            img[m] = rng.uniform(0.5, 1.0) * (0.9 + 0.1 * rng.random(3))
    rows, cols = np.nonzero(floor)
    if not len(rows):
        return
    items = []
    for _ in range(int(rng.integers(1, 8))):
        j = int(rng.integers(len(rows)))
        items.append((float(rows[j]), float(cols[j]), ("desk", "chair", "chair", "cabinet")[int(rng.integers(4))]))
    items.sort()  # far first
    for v, u, what in items:
        s = max(0.15, (v - v_h) / (H - v_h)) * rng.uniform(80, 200)
        m = np.zeros((H, W), np.uint8)  # 1: frame or body, 2: surface, 3: paper, 4: screen
        if what == "desk":
            top = v - s * 0.5
            w, d = s * rng.uniform(1.0, 2.5), s * rng.uniform(0.1, 0.3)
            quad = np.array([[u - w / 2, top], [u + w / 2, top], [u + w / 2 * 0.9, top - d], [u - w / 2 * 0.9, top - d]])
            for lx in (u - w / 2 + 2, u + w / 2 - 2):
                cv2.line(m, (int(lx), int(top)), (int(lx), int(v)), 1, max(1, int(s / 25)))
            cv2.rectangle(m, (int(u - w / 2), int(top)), (int(u + w / 2), int(top + max(2, s * 0.04))), 1, -1)
            cv2.fillPoly(m, [quad.round().astype(np.int32)], 2)
            for _ in range(int(rng.integers(0, 6))):  # papers and monitors on the desk
                pu, pv = u + rng.uniform(-0.45, 0.45) * w, top - rng.uniform(0.1, 0.9) * d
                pw = s * rng.uniform(0.1, 0.3)
                if rng.random() < 0.7:
                    a = rng.uniform(0, np.pi)
                    corners = np.array([[np.cos(a + b) * pw, np.sin(a + b) * pw * 0.3] for b in (0.6, 2.5, 3.7, 5.7)])
                    cv2.fillPoly(m, [(corners + [pu, pv]).round().astype(np.int32)], 3)
                else:
                    cv2.rectangle(m, (int(pu - pw), int(pv - pw * 1.2)), (int(pu + pw), int(pv)), 4, -1)
        elif what == "chair":
            seat_v = v - s * 0.35
            w = s * rng.uniform(0.35, 0.6)
            cv2.ellipse(m, (int(u), int(seat_v)), (max(1, int(w / 2)), max(1, int(w / 6))), 0, 0, 360, 2, -1)
            back = rng.uniform(-0.2, 0.2) * w
            cv2.rectangle(m, (int(u - w * 0.45 + back), int(seat_v - s * rng.uniform(0.3, 0.6))),
                          (int(u + w * 0.45 + back), int(seat_v)), 2, -1)
            cv2.line(m, (int(u), int(seat_v)), (int(u), int(v - s * 0.05)), 1, max(1, int(s / 30)))
            for a in np.linspace(0, 2 * np.pi, 5, endpoint=False) + rng.uniform(0, 1):
                cv2.line(m, (int(u), int(v - s * 0.05)), (int(u + np.cos(a) * w * 0.5), int(v + np.sin(a) * w * 0.12)),
                         1, max(1, int(s / 35)))
        else:  # a cabinet or bin, often a loud colour
            w, h = s * rng.uniform(0.3, 0.7), s * rng.uniform(0.4, 1.0)
            cv2.rectangle(m, (int(u - w / 2), int(v - h)), (int(u + w / 2), int(v)), 2, -1)
        m[~free] = 0
        frame, surface = rng.uniform(0.02, 0.35, 3), rng.uniform(0.05, 0.95, 3)
        for part, colour in ((1, frame), (2, surface), (3, rng.uniform(0.8, 1.0) * np.ones(3)),
                             (4, rng.uniform(0.0, 0.15, 3))):
            sel = m == part
            if sel.any():
                img[sel] = (colour * (0.85 + 0.15 * rng.random((int(sel.sum()), 1)))).astype(np.float32)


# ---- objects -------------------------------------------------------------------------
def _blob_points(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    r = 1 + np.convolve(np.r_[rng.normal(0, 0.25, 24)], np.ones(5) / 5, mode="same")
    return np.stack([cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)], 1).round().astype(np.int32)


def _print(rng: np.random.Generator, H: int, W: int, u0: float, v0: float, size: float) -> np.ndarray:
    """An object's own surface print (H, W, 3): a base colour, maybe stripes or bands,
    maybe a label of small 'text' blocks, in object-local coordinates."""
    vv, uu = np.mgrid[0:H, 0:W].astype(np.float32)
    x, y = (uu - u0) / max(size, 1.0), (vv - v0) / max(size, 1.0)
    base = rng.uniform(0.05, 1.0, 3)
    if rng.random() < 0.3:  # a saturated primary-ish colour, like most packaging
        base = np.clip(base * np.eye(3)[rng.integers(3)] * 1.5 + 0.1, 0, 1)
    out = np.broadcast_to(base, (H, W, 3)).astype(np.float32).copy()
    r = rng.random()
    if r < 0.3:
        band = np.abs(y + rng.uniform(-0.5, 0.2)) < rng.uniform(0.1, 0.3)
        out[band] = rng.uniform(0, 1, 3)
    elif r < 0.5:
        stripes = np.mod(x * rng.uniform(3, 12), 1.0) < rng.uniform(0.2, 0.5)
        out[stripes] = rng.uniform(0, 1, 3)
    if rng.random() < 0.6:  # 'text': small blocks in a contrasting colour
        ink = 1 - base if rng.random() < 0.5 else rng.uniform(0, 1, 3)
        cell = rng.uniform(0.05, 0.12)
        blocks = (np.mod(x, cell * 2) < cell * rng.uniform(0.5, 1.2)) & (np.mod(y, cell * 3) < cell)
        blocks &= (np.abs(x - rng.uniform(-0.2, 0.2)) < rng.uniform(0.1, 0.35)) & (np.abs(y + 0.2) < 0.25)
        out[blocks] = ink
    return out


def _draw_object(rng: np.random.Generator, kind: str, u: float, v: float, size: float, light: float,
                 H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """One object standing at (u, v): its mask (H, W) bool and colours (H, W, 3), shaded."""
    m = np.zeros((H, W), np.uint8)  # 1: body, 2: top or rim (lighter), 3: inside (darker)
    tilt = rng.uniform(0.25, 0.6)  # how much of a horizontal circle the camera sees
    w = size * rng.uniform(0.4, 0.9)
    h = size * rng.uniform(0.6, 1.5)
    if kind == "box":
        w, d = size * rng.uniform(0.5, 1.2), size * rng.uniform(0.2, 0.6) * tilt
        dx = rng.uniform(-0.4, 0.4) * w
        front = np.array([[u - w / 2, v], [u + w / 2, v], [u + w / 2, v - h], [u - w / 2, v - h]])
        top = np.array([[u - w / 2, v - h], [u + w / 2, v - h], [u + w / 2 + dx, v - h - d], [u - w / 2 + dx, v - h - d]])
        cv2.fillPoly(m, [front.round().astype(np.int32)], 1)
        cv2.fillPoly(m, [top.round().astype(np.int32)], 2)
    elif kind in ("cylinder", "mug", "bottle"):
        if kind == "bottle":
            h, w = size * rng.uniform(1.2, 2.0), size * rng.uniform(0.3, 0.5)
        ry = w / 2 * tilt
        cv2.ellipse(m, (round(u), round(v)), (round(w / 2), max(1, round(ry))), 0, 0, 180, 1, -1)
        cv2.rectangle(m, (round(u - w / 2), round(v - h)), (round(u + w / 2), round(v)), 1, -1)
        if kind == "bottle":  # shoulder and neck
            neck = w * rng.uniform(0.25, 0.45)
            cv2.rectangle(m, (round(u - neck / 2), round(v - h * 1.3)), (round(u + neck / 2), round(v - h)), 1, -1)
            cv2.ellipse(m, (round(u), round(v - h)), (round(w / 2), max(1, round(w / 3))), 0, 180, 360, 1, -1)
        else:
            cv2.ellipse(m, (round(u), round(v - h)), (round(w / 2), max(1, round(ry))), 0, 0, 360, 2, -1)
            if kind == "mug" or rng.random() < 0.5:  # open top: the inside shows
                cv2.ellipse(m, (round(u), round(v - h)), (max(1, round(w / 2 * 0.85)), max(1, round(ry * 0.8))),
                            0, 0, 360, 3, -1)
        if kind == "mug":
            side = 1 if rng.random() < 0.5 else -1
            cv2.ellipse(m, (round(u + side * w / 2), round(v - h / 2)), (max(2, round(w / 4)), max(2, round(h / 4))),
                        0, -90 * side, 90 * side if side > 0 else 270, 1, max(1, round(w / 10)))
    elif kind == "bowl":
        w = size * rng.uniform(0.8, 1.6)
        ry = w / 2 * tilt
        hb = size * rng.uniform(0.2, 0.45)
        cv2.ellipse(m, (round(u), round(v - hb)), (round(w / 2), max(1, round(ry))), 0, 0, 360, 2, -1)
        cv2.ellipse(m, (round(u), round(v - hb)), (round(w / 2), max(1, round(ry + hb))), 0, 0, 180, 1, -1)
        cv2.ellipse(m, (round(u), round(v - hb)), (max(1, round(w / 2 * 0.9)), max(1, round(ry * 0.85))), 0, 0, 360, 3, -1)
    elif kind == "pen":
        length = size * rng.uniform(0.8, 1.6)
        a = rng.uniform(0, np.pi)
        dx, dy = np.cos(a) * length / 2, np.sin(a) * length / 2 * tilt
        cv2.line(m, (round(u - dx), round(v - dy)), (round(u + dx), round(v + dy)), 1,
                 max(2, round(size * rng.uniform(0.06, 0.12))))
    elif kind == "tool":  # a drill: a long body, a slanted handle, a battery block at the foot
        w, hb = size * rng.uniform(0.8, 1.3), size * rng.uniform(0.25, 0.4)
        h = size * rng.uniform(0.8, 1.2)
        side = 1 if rng.random() < 0.5 else -1
        x0 = u - side * w * 0.3
        cv2.rectangle(m, (round(x0 - w / 2), round(v - h)), (round(x0 + w / 2), round(v - h + hb)), 1, -1)
        cv2.circle(m, (round(x0 - side * w / 2), round(v - h + hb / 2)), max(1, round(hb / 2)), 1, -1)
        grip = np.array([[u - hb * 0.35, v - h + hb], [u + hb * 0.35, v - h + hb],
                         [u + hb * 0.35 + side * hb * 0.3, v - hb * 0.6], [u - hb * 0.35 + side * hb * 0.3, v - hb * 0.6]])
        cv2.fillPoly(m, [grip.round().astype(np.int32)], 3)
        cv2.rectangle(m, (round(u - hb * 0.7), round(v - hb * 0.7)), (round(u + hb * 0.9), round(v)), 3, -1)
    elif kind == "brick":  # a toy brick: a low box with studs on its top
        w, d = size * rng.uniform(0.5, 1.1), size * rng.uniform(0.2, 0.4) * tilt
        h = size * rng.uniform(0.25, 0.45)
        front = np.array([[u - w / 2, v], [u + w / 2, v], [u + w / 2, v - h], [u - w / 2, v - h]])
        top = np.array([[u - w / 2, v - h], [u + w / 2, v - h], [u + w / 2, v - h - d], [u - w / 2, v - h - d]])
        cv2.fillPoly(m, [front.round().astype(np.int32)], 1)
        cv2.fillPoly(m, [top.round().astype(np.int32)], 2)
        studs = int(rng.integers(2, 5))
        r = max(1.0, w / studs * 0.3)
        for j in range(studs):
            cx = u - w / 2 + (j + 0.5) * w / studs
            cv2.rectangle(m, (round(cx - r), round(v - h - d / 2 - r * 0.8)), (round(cx + r), round(v - h - d / 2)), 1, -1)
            cv2.ellipse(m, (round(cx), round(v - h - d / 2 - r * 0.8)), (max(1, round(r)), max(1, round(r * tilt))),
                        0, 0, 360, 2, -1)
    else:  # blob: a fruit, a toy, a sponge
        rx, ry = size * rng.uniform(0.25, 0.6), size * rng.uniform(0.2, 0.5)
        cv2.fillPoly(m, [_blob_points(rng, u, v - ry, rx, ry)], 1)
    colour = _print(rng, H, W, u, v - h / 2, size)
    # shading across the width: a lit side and a dark side (a curved or turned surface)
    across = np.clip((np.arange(W, dtype=np.float32) - u) / max(w / 2, 1.0), -1, 1)
    curved = kind in ("cylinder", "mug", "bottle", "bowl", "blob")
    shade = (0.75 + 0.25 * light * across) if curved else np.full(W, 0.9 + 0.1 * light * np.sign(across + 1e-6))
    if curved:
        shade = shade * (0.8 + 0.2 * np.sqrt(1 - across ** 2))
    colour *= shade[None, :, None]
    colour[m == 2] = np.clip(colour[m == 2] * rng.uniform(1.05, 1.3), 0, 1)
    colour[m == 3] = colour[m == 3] * rng.uniform(0.35, 0.7)
    if rng.random() < 0.3:  # a specular highlight on glossy things
        hl = (np.abs(np.arange(W) - (u + light * w * 0.25)) < max(1.0, w * 0.05))[None, :] & (m > 0)
        colour[hl] = np.clip(colour[hl] + 0.35, 0, 1)
    return m > 0, colour


def _shadow(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """A soft dark contact shadow below and beside an object's footprint."""
    ys, xs = np.nonzero(mask)
    footprint = np.zeros(mask.shape, np.float32)
    bottom, width = int(ys.max()), int(xs.max() - xs.min() + 1)
    cv2.ellipse(footprint, (int(xs.mean() + rng.uniform(-0.3, 0.3) * width), bottom),
                (max(1, int(width * 0.6)), max(1, int(width * 0.15))), 0, 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(footprint, (0, 0), max(1.0, width * 0.1))
    img *= (1 - rng.uniform(0.3, 0.6) * soft)[..., None]
