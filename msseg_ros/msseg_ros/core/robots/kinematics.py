"""Delta-robot kinematics, workspace boxes and move timing.

A 3-arm parallel delta (Clavel). Base frame: origin at the centre of the motor plane,
z up, the effector below (z < 0); arm i is mounted at angle ``i * 120°`` about z, its
motor axis tangent to the base circle. A joint angle θ is 0 with the upper arm
horizontal and positive pointing down.

Closed forms: the inverse solves, per arm, ``d·cosθ + z·sinθ = M`` in the arm's plane
(the forearm sphere cut by that plane); the forward intersects the three forearm spheres
(trilateration), keeping the lower solution.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msseg_ros.core.params.nodes import ROBOTS as _SCHEMA
from msseg_ros.core.robots.errors import RobotConfigError, WorkspaceError

_ARM_ANGLES = (0.0, 2 * math.pi / 3, 4 * math.pi / 3)


#: an (x, y, z) point or vector, m
Vec3 = tuple[float, float, float]
#: what a function taking a point accepts: a tuple, a list or an (3,) array
PointLike = Sequence[float] | np.ndarray


def vec3(v: PointLike) -> Vec3:
    """``v`` as a tuple of three floats; raises ValueError unless it has three values."""
    x, y, z = (float(a) for a in v)
    return (x, y, z)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, m. ``lo`` and ``hi`` are (x, y, z)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.lo) != 3 or len(self.hi) != 3 or any(a >= b for a, b in zip(self.lo, self.hi, strict=True)):
            raise RobotConfigError(f"workspace box needs lo < hi on x, y and z, got lo={self.lo} hi={self.hi}")

    def contains(self, p: PointLike, tol: float = 1e-9) -> bool:
        return all(lo - tol <= v <= hi + tol for v, lo, hi in zip(vec3(p), self.lo, self.hi, strict=True))

    def shifted(self, offset: PointLike) -> Box:
        o = vec3(offset)
        return Box(vec3([a + d for a, d in zip(self.lo, o, strict=True)]),
                   vec3([b + d for b, d in zip(self.hi, o, strict=True)]))

    def corners(self) -> np.ndarray:
        return np.array([[x, y, z] for x in (self.lo[0], self.hi[0]) for y in (self.lo[1], self.hi[1])
                         for z in (self.lo[2], self.hi[2])])


@dataclass(frozen=True)
class DeltaGeometry:
    """Delta robot dimensions, m, and joint limits, rad.

    Defaults are the ``delta.*`` parameters' (core/params/nodes.py): a 1.1 m-reach
    industrial picker.
    """

    base_radius: float = _SCHEMA.default("delta.base_radius")
    effector_radius: float = _SCHEMA.default("delta.effector_radius")
    upper_arm: float = _SCHEMA.default("delta.upper_arm")
    forearm: float = _SCHEMA.default("delta.forearm")
    joint_min: float = math.radians(_SCHEMA.default("delta.joint_limits_deg")[0])
    joint_max: float = math.radians(_SCHEMA.default("delta.joint_limits_deg")[1])

    def __post_init__(self) -> None:
        for name in ("base_radius", "effector_radius", "upper_arm", "forearm"):
            if not getattr(self, name) > 0:
                raise RobotConfigError(f"delta.{name} must be > 0 m, got {getattr(self, name)!r}")
        if not self.joint_min < self.joint_max:
            raise RobotConfigError(f"delta joint limits need min < max, got {self.joint_min}, {self.joint_max}")

    def inverse(self, p: PointLike) -> np.ndarray:
        """Joint angles (3,), rad, that put the effector centre at ``p`` (base frame, m).

        Raises:
            WorkspaceError: the point is out of reach or needs a joint beyond its limits.
        """
        x, y, z = (float(v) for v in p)
        out = np.empty(3)
        for i, phi in enumerate(_ARM_ANGLES):
            c, s = math.cos(phi), math.sin(phi)
            xr, yr = c * x + s * y, -s * x + c * y  # the point in arm i's frame
            d = self.base_radius - self.effector_radius - xr
            m = (self.forearm ** 2 - d * d - self.upper_arm ** 2 - yr * yr - z * z) / (2 * self.upper_arm)
            rho = math.hypot(d, z)
            if rho == 0 or abs(m) > rho:
                raise WorkspaceError(f"point ({x:.4f}, {y:.4f}, {z:.4f}) m is out of reach of arm {i + 1}")
            # d·cosθ + z·sinθ = ρ·cos(θ − γ), γ = atan2(z, d); γ + acos(m/ρ) is the
            # elbow-out branch (the other one folds the arm up inside the base).
            theta = math.atan2(z, d) + math.acos(m / rho)
            if not self.joint_min <= theta <= self.joint_max:
                raise WorkspaceError(
                    f"point ({x:.4f}, {y:.4f}, {z:.4f}) m needs joint {i + 1} at {math.degrees(theta):.1f}°, "
                    f"outside [{math.degrees(self.joint_min):.1f}, {math.degrees(self.joint_max):.1f}]°")
            out[i] = theta
        return out

    def elbows(self, theta: Sequence[float] | np.ndarray) -> np.ndarray:
        """Elbow positions (3, 3) in the base frame for joint angles ``theta`` (rad)."""
        out = np.empty((3, 3))
        for i, (phi, t) in enumerate(zip(_ARM_ANGLES, theta, strict=True)):
            r = self.base_radius + self.upper_arm * math.cos(t)
            out[i] = (r * math.cos(phi), r * math.sin(phi), -self.upper_arm * math.sin(t))
        return out

    def forward(self, theta: Sequence[float] | np.ndarray) -> np.ndarray:
        """Effector centre (3,) in the base frame, m, for joint angles ``theta`` (rad).

        Raises:
            WorkspaceError: the three forearm spheres do not meet (an impossible pose).
        """
        centres = self.elbows(theta)
        for i, phi in enumerate(_ARM_ANGLES):  # shift by the effector joint offset
            centres[i, 0] -= self.effector_radius * math.cos(phi)
            centres[i, 1] -= self.effector_radius * math.sin(phi)
        p1, p2, p3 = centres
        ex = p2 - p1
        d = np.linalg.norm(ex)
        ex = ex / d
        i_ = ex @ (p3 - p1)
        ey = p3 - p1 - i_ * ex
        ey = ey / np.linalg.norm(ey)
        ez = np.cross(ex, ey)
        j = ey @ (p3 - p1)
        r = self.forearm
        xx = d / 2  # equal radii
        yy = (i_ * i_ + j * j) / (2 * j) - i_ * xx / j
        zz2 = r * r - xx * xx - yy * yy
        if zz2 < 0:
            raise WorkspaceError(f"joint angles {np.degrees(theta).round(2).tolist()}° give no effector pose")
        base = p1 + xx * ex + yy * ey
        a, b = base + math.sqrt(zz2) * ez, base - math.sqrt(zz2) * ez
        return a if a[2] < b[2] else b

    def reachable(self, p: PointLike) -> bool:
        try:
            self.inverse(p)
        except WorkspaceError:
            return False
        return True

    def check_box(self, box: Box, samples: int = 5) -> None:
        """Raise :class:`RobotConfigError` unless every point of a grid over ``box`` is reachable."""
        axes = [np.linspace(lo, hi, samples) for lo, hi in zip(box.lo, box.hi, strict=True)]
        for x in axes[0]:
            for y in axes[1]:
                for z in axes[2]:
                    if not self.reachable((x, y, z)):
                        raise RobotConfigError(
                            f"workspace box lo={box.lo} hi={box.hi} is not inside the delta's reach: "
                            f"({x:.3f}, {y:.3f}, {z:.3f}) m cannot be reached")


def move_time(distance: float, max_speed: float, max_accel: float) -> float:
    """Time, s, of a straight move of ``distance`` m with a trapezoidal speed profile
    (rest to rest, ``max_speed`` m/s, ``max_accel`` m/s²)."""
    distance = abs(distance)
    if distance == 0:
        return 0.0
    if distance >= max_speed ** 2 / max_accel:
        return distance / max_speed + max_speed / max_accel
    return 2.0 * math.sqrt(distance / max_accel)
