"""Shape families of scrap pieces, as analytic height and X-ray thickness profiles.

A shape is evaluated at object-local coordinates (mm, origin at its centre, before the
object's rotation). It returns, per point:

* ``height``: top surface above the belt, mm (0 outside the footprint);
* ``thickness``: material the X-rays cross vertically, mm (a tube is hollow, a lying
  cylinder is thickest on its axis);
* ``feature``: 0 for the bulk surface, 1 copper trace, 2 component (PCB), 3 paint chip
  showing the substrate.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.path import Path as MplPath

FAMILIES = ("wire", "tube", "sheet", "profile", "fitting", "diecast", "board", "disk", "chunk")

#: Shape families of each class, with weights (seed 000 Appendix I: wires and tubes of
#: copper, zinc sheets and profiles, brass fittings, die-cast zamak, boards, coins...).
CLASS_FAMILIES = {
    "copper": {"wire": 0.5, "tube": 0.2, "sheet": 0.3},
    "laminated_zinc": {"sheet": 0.6, "profile": 0.4},
    "paint": {"sheet": 0.5, "profile": 0.3, "diecast": 0.2},
    "brass": {"fitting": 0.5, "diecast": 0.3, "tube": 0.2},
    "aluminium": {"sheet": 0.4, "profile": 0.3, "diecast": 0.3},
    "pcb": {"board": 1.0},
    "nickel": {"disk": 0.5, "sheet": 0.5},
    "rubber": {"chunk": 0.6, "tube": 0.4},
    "zamak": {"diecast": 1.0},
}


@dataclass
class Shape:
    """One piece's geometry in its own frame (mm).

    Attributes:
        family: one of FAMILIES.
        radius: bounding-circle radius, mm (every footprint point is within it).
        p: the family's parameters.
    """

    family: str
    radius: float
    p: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(height, thickness, feature) at local points ``x, y`` (same shape), mm."""
        return _EVAL[self.family](self, x, y)


def _seg_distance(x: np.ndarray, y: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance from points to a polyline ``pts`` (k, 2)."""
    d = np.full(x.shape, np.inf)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
        vx, vy = bx - ax, by - ay
        t = np.clip(((x - ax) * vx + (y - ay) * vy) / max(vx * vx + vy * vy, 1e-9), 0, 1)
        d = np.minimum(d, np.hypot(x - ax - t * vx, y - ay - t * vy))
    return d


def _cyl(d: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    inside = d < r
    half = np.sqrt(np.clip(r * r - d * d, 0, None))
    return inside, half


def _wire(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inside, half = _cyl(_seg_distance(x, y, s.p["pts"]), s.p["r"])
    h = np.where(inside, s.p["r"] + half, 0.0)
    return h, np.where(inside, 2 * half, 0.0), np.zeros(x.shape, np.uint8)


def _tube(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _seg_distance(x, y, s.p["pts"])
    inside, half = _cyl(d, s.p["r"])
    inner = np.sqrt(np.clip(s.p["ri"] ** 2 - d * d, 0, None))
    h = np.where(inside, s.p["r"] + half, 0.0)
    return h, np.where(inside, 2 * (half - inner), 0.0), np.zeros(x.shape, np.uint8)


def _in_poly(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    pts = np.column_stack([x.ravel(), y.ravel()])
    return MplPath(poly).contains_points(pts).reshape(x.shape)


def _sheet(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inside = _in_poly(x, y, s.p["poly"])
    lift = s.p["bend"] * (x / s.radius) ** 2  # a curled sheet rests on its middle
    h = np.where(inside, s.p["t"] + lift, 0.0)
    return h, np.where(inside, s.p["t"], 0.0), _chips(s, x, y, inside)


def _profile(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, t, wall = s.p["a"], s.p["b"], s.p["t"], s.p["wall"]
    inside = (np.abs(x) < a / 2) & (np.abs(y) < b / 2)
    on_wall = inside & (y > b / 2 - t)
    h = np.where(on_wall, wall, np.where(inside, t, 0.0))
    return h, h.copy(), _chips(s, x, y, inside)


def _fitting(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rho = np.hypot(x, y)
    inside = (rho < s.p["R"]) & (rho > s.p["Ri"])
    h = np.where(inside, s.p["H"], 0.0)
    return h, h.copy(), np.zeros(x.shape, np.uint8)


def _diecast(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = (x / s.p["a"]) ** 2 + (y / s.p["b"]) ** 2
    inside = q < 1
    h = np.where(inside, s.p["H"] * np.sqrt(np.clip(1 - q, 0, 1)) ** 0.5, 0.0)
    return h, h * s.p["fill"], _chips(s, x, y, inside)


def _board(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, length, t = s.p["w"], s.p["l"], s.p["t"]
    inside = (np.abs(x) < w / 2) & (np.abs(y) < length / 2)
    feature = np.zeros(x.shape, np.uint8)
    trace = inside & ((np.mod(x * s.p["trace_freq"] + s.p["trace_phase"], 1.0) < 0.18)
                      | (np.mod(y * s.p["trace_freq"], 1.0) < 0.12))
    feature[trace] = 1
    h = np.where(inside, t, 0.0)
    thick = h.copy()
    for cx, cy, cw, cl, ch in s.p["components"]:
        comp = inside & (np.abs(x - cx) < cw / 2) & (np.abs(y - cy) < cl / 2)
        feature[comp] = 2
        h = np.where(comp, t + ch, h)
        thick = np.where(comp, t + 0.4 * ch, thick)  # mostly plastic bodies
    return h, thick, feature


def _disk(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inside = np.hypot(x, y) < s.p["R"]
    h = np.where(inside, s.p["t"], 0.0)
    return h, h.copy(), np.zeros(x.shape, np.uint8)


def _chunk(s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    theta = np.arctan2(y, x)
    r_edge = s.p["R"] * (1 + sum(a * np.cos(k * theta + ph) for k, a, ph in s.p["harm"]))
    q = (np.hypot(x, y) / r_edge) ** 2
    inside = q < 1
    h = np.where(inside, s.p["H"] * np.sqrt(np.clip(1 - q, 0, 1)), 0.0)
    return h, h.copy(), np.zeros(x.shape, np.uint8)


def _chips(s: Shape, x: np.ndarray, y: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Paint chips: spots where the substrate shows (feature 3)."""
    f = np.zeros(x.shape, np.uint8)
    for cx, cy, cr in s.p.get("chips", ()):
        f[inside & (np.hypot(x - cx, y - cy) < cr)] = 3
    return f


_EVAL: dict[str, Callable[[Shape, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "wire": _wire, "tube": _tube, "sheet": _sheet, "profile": _profile, "fitting": _fitting,
    "diecast": _diecast, "board": _board, "disk": _disk, "chunk": _chunk,
}


def _walk(rng: np.random.Generator, length: float, kinks: int) -> np.ndarray:
    """A gently bending polyline of total ``length`` mm centred on the origin."""
    n = kinks + 1
    angles = np.cumsum(rng.normal(0, 0.6, n))
    steps = np.column_stack([np.cos(angles), np.sin(angles)]) * (length / n)
    pts = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
    return pts - pts.mean(axis=0)


def make_shape(family: str, rng: np.random.Generator, size: float = 1.0, painted: bool = False) -> Shape:
    """Draw a shape of ``family``; ``size`` scales its lengths (not thicknesses)."""
    p: dict[str, Any] = {}
    if family in ("wire", "tube"):
        if family == "wire":
            p["r"] = rng.uniform(0.8, 3.0)
            length = rng.uniform(40, 140) * size
        else:
            p["r"] = rng.uniform(4.0, 10.0)
            p["ri"] = p["r"] - rng.uniform(0.8, 1.8)
            length = rng.uniform(25, 90) * size
        p["pts"] = _walk(rng, length, int(rng.integers(1, 4)))
        radius = float(np.max(np.hypot(*p["pts"].T))) + p["r"]
    elif family == "sheet":
        n = int(rng.integers(4, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(12, 40, n) * size
        poly = np.column_stack([rad * np.cos(ang), rad * np.sin(ang) * rng.uniform(0.5, 1.0)])
        p.update(poly=poly, t=rng.uniform(0.6, 3.0), bend=rng.uniform(0, 4))
        radius = float(np.max(np.hypot(*poly.T)))
    elif family == "profile":
        p.update(a=rng.uniform(40, 100) * size, b=rng.uniform(12, 30) * size,
                 t=rng.uniform(1.2, 3.0), wall=rng.uniform(8, 20))
        radius = float(np.hypot(p["a"], p["b"]) / 2)
    elif family == "fitting":
        p["R"] = rng.uniform(8, 24) * size
        p.update(Ri=p["R"] * rng.uniform(0.55, 0.8), H=rng.uniform(5, 15))
        radius = p["R"]
    elif family == "diecast":
        p.update(a=rng.uniform(10, 28) * size, b=rng.uniform(8, 20) * size,
                 H=rng.uniform(5, 18), fill=rng.uniform(0.5, 0.9))
        radius = max(p["a"], p["b"])
    elif family == "board":
        p.update(w=rng.uniform(30, 90) * size, l=rng.uniform(20, 60) * size, t=1.6,
                 trace_freq=rng.uniform(0.15, 0.4), trace_phase=rng.uniform(0, 1))
        comps = []
        for _ in range(int(rng.integers(2, 7))):
            comps.append((rng.uniform(-0.4, 0.4) * p["w"], rng.uniform(-0.4, 0.4) * p["l"],
                          rng.uniform(3, 12), rng.uniform(3, 12), rng.uniform(1.5, 8)))
        p["components"] = comps
        radius = float(np.hypot(p["w"], p["l"]) / 2)
    elif family == "disk":
        p.update(R=rng.uniform(8, 16) * size, t=rng.uniform(1.0, 3.0))
        radius = p["R"]
    elif family == "chunk":
        p.update(R=rng.uniform(10, 25) * size, H=rng.uniform(4, 15),
                 harm=[(k, rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)])
        radius = p["R"] * 1.4
    else:
        raise ValueError(f"unknown shape family {family!r}; families: {', '.join(FAMILIES)}")
    if painted and family in ("sheet", "profile", "diecast"):
        p["chips"] = [(rng.uniform(-0.5, 0.5) * radius, rng.uniform(-0.5, 0.5) * radius,
                       rng.uniform(1.5, 5.0)) for _ in range(int(rng.integers(0, 4)))]
    return Shape(family, float(radius), p)
