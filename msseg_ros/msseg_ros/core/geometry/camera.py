"""Pinhole camera with plumb_bob distortion, rays, poses and ray-plane intersection.

Frames: ``camera_optical_frame`` is z forward, x right, y down (REP-103); pixel (u, v):
u = column, v = row, origin at the top-left pixel centre. Units: metres, radians.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from msseg_ros.core.errors import MssegError

#: a tuple, a list or an array of numbers
PointLike = Sequence[float] | np.ndarray


class GeometryError(MssegError, ValueError):
    """Invalid geometry input; the message names the value."""


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics ``K`` (3x3), plumb_bob ``D`` (k1, k2, p1, p2, k3), image size (px)."""

    K: np.ndarray
    D: np.ndarray
    width: int
    height: int
    frame_id: str = "camera_optical_frame"

    @classmethod
    def from_values(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                    D: Sequence[float] = (0.0, 0.0, 0.0, 0.0, 0.0)) -> CameraModel:
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        return cls(K, np.asarray(D, np.float64), int(width), int(height))

    @classmethod
    def from_yaml(cls, path: str | Path) -> CameraModel:
        """Read a ROS camera_info YAML (the camera_calibration format)."""
        import yaml

        p = Path(path)
        if not p.is_file():
            raise GeometryError(f"camera_info file {str(p)!r} does not exist")
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise GeometryError(f"{str(p)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
        try:
            K = np.array(doc["camera_matrix"]["data"], np.float64).reshape(3, 3)
            D = np.array(doc.get("distortion_coefficients", {}).get("data", [0] * 5), np.float64)
            w, h = int(doc["image_width"]), int(doc["image_height"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GeometryError(f"{str(p)!r} is not a camera_info YAML: {exc}") from None
        model = doc.get("distortion_model", "plumb_bob")
        if (model != "plumb_bob" and np.any(D)) or np.any(D[5:]):
            raise GeometryError(f"{str(p)!r}: distortion model {model!r} with {len(D)} coefficients is "
                                "not supported (plumb_bob, 5 coefficients)")
        return cls(K, D, w, h)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in the camera frame -> (N, 2) distorted pixels."""
        pts = np.asarray(points_cam, np.float64).reshape(-1, 1, 3)
        px, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), self.K, self.D)
        return px.reshape(-1, 2)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) distorted pixels -> (N, 3) unit rays in the camera frame (undistorted)."""
        px = np.asarray(pixels, np.float64).reshape(-1, 2)
        fx, fy, cx, cy, skew = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2], self.K[0, 1]
        yd = (px[:, 1] - cy) / fy
        xd = (px[:, 0] - cx - skew * yd) / fx
        k1, k2, p1, p2, k3 = (list(self.D) + [0.0] * 5)[:5]
        x, y = xd.copy(), yd.copy()
        # invert plumb_bob by fixed-point iteration, to convergence (OpenCV's Python
        # undistortPoints stops after 5 iterations: not enough for 0.1 mm)
        for _ in range(100):
            r2 = x * x + y * y
            radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            nx, ny = (xd - dx) / radial, (yd - dy) / radial
            done = max(np.abs(nx - x).max(initial=0), np.abs(ny - y).max(initial=0)) < 1e-14
            x, y = nx, ny
            if done:
                break
        rays = np.column_stack([x, y, np.ones(len(x))])
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def quaternion_to_matrix(q_xyzw: PointLike) -> np.ndarray:
    x, y, z, w = np.asarray(q_xyzw, np.float64) / np.linalg.norm(q_xyzw)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclass(frozen=True)
class Pose:
    """A rigid transform parent <- child: ``p_parent = R @ p_child + t``."""

    R: np.ndarray
    t: np.ndarray

    @classmethod
    def from_xyz_quat(cls, xyz: PointLike, q_xyzw: PointLike) -> Pose:
        if not np.isclose(np.linalg.norm(q_xyzw), 1.0, atol=1e-3):
            raise GeometryError(f"quaternion {list(q_xyzw)} is not unit length")
        return cls(quaternion_to_matrix(q_xyzw), np.asarray(xyz, np.float64))

    def apply(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) @ self.R.T + self.t

    def rotate(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, np.float64) @ self.R.T

    def inverse(self) -> Pose:
        return Pose(self.R.T, -self.R.T @ self.t)

    def __matmul__(self, other: Pose) -> Pose:
        return Pose(self.R @ other.R, self.R @ other.t + self.t)


@dataclass(frozen=True)
class Plane:
    """A plane through ``point`` with unit ``normal`` (world frame)."""

    point: np.ndarray
    normal: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, np.float64)
        if not np.isfinite(n).all() or np.linalg.norm(n) < 1e-9:
            raise GeometryError(f"plane normal {list(self.normal)} is not a direction")
        object.__setattr__(self, "normal", n / np.linalg.norm(n))
        object.__setattr__(self, "point", np.asarray(self.point, np.float64))


#: reasons a ray has no valid intersection
PARALLEL, BEHIND, INVALID = "parallel", "behind", "invalid"


def intersect(origin: np.ndarray, directions: np.ndarray, plane: Plane, eps: float = 1e-9
              ) -> tuple[np.ndarray, np.ndarray]:
    """Intersect rays ``origin + s * d`` (s > 0) with ``plane``.

    Returns:
        points (N, 3) (NaN where invalid) and reasons (N,) of str: "" when valid,
        "parallel" (ray parallel to the plane), "behind" (the plane is behind the origin)
        or "invalid" (a non-finite ray, e.g. from a NaN pixel).
    """
    d = np.asarray(directions, np.float64).reshape(-1, 3)
    denom = d @ plane.normal
    s = np.where(np.abs(denom) > eps, ((plane.point - origin) @ plane.normal) / np.where(np.abs(denom) > eps, denom, 1), np.nan)
    finite = np.isfinite(d).all(axis=1)
    reasons = np.where(~finite, INVALID, np.where(np.abs(denom) <= eps, PARALLEL, np.where(s <= 0, BEHIND, "")))
    pts = origin + s[:, None] * d
    pts[reasons != ""] = np.nan
    return pts, reasons


def pixels_to_plane(camera: CameraModel, camera_in_world: Pose, pixels: np.ndarray, plane: Plane
                    ) -> tuple[np.ndarray, np.ndarray]:
    """World points where the rays of ``pixels`` meet ``plane``; see :func:`intersect`."""
    rays_world = camera_in_world.rotate(camera.rays(pixels))
    return intersect(camera_in_world.t, rays_world, plane)
