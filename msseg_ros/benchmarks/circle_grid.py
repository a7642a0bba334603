"""Ray-plane geometry on real images: the 10x10 circle grid of ../shared/data/calibration_circle_grid.

    python msseg_ros/benchmarks/circle_grid.py [--spacing 0.0254]

The plane: the target's own plane, from cv2.solvePnP of the 100 detected centres against
the grid model (spacing from the dataset's cal_data.yaml, 25.4 mm), with the dataset's
nominal intrinsics (fx = fy = 550, cx = 320, cy = 240; not calibrated). Each centre's ray
(msseg_ros CameraModel) is intersected with that plane (msseg_ros pixels_to_plane) and the
distances between grid neighbours are compared with the spacing. PnP fixes the plane's
pose and the overall scale, so the mean spacing matches by construction; the spread and
the maximum error measure how consistently rays map to the plane across the image.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from msseg_ros.core.geometry.camera import CameraModel, Plane, Pose, pixels_to_plane

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "calibration_circle_grid"


def measure(image: Path, spacing: float, camera: CameraModel) -> dict | None:
    gray = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    found, centres = cv2.findCirclesGrid(gray, (10, 10), flags=cv2.CALIB_CB_SYMMETRIC_GRID)
    if not found:
        return None
    centres = centres.reshape(-1, 2).astype(np.float64)
    grid = np.array([[c * spacing, r * spacing, 0.0] for r in range(10) for c in range(10)])
    ok, rvec, tvec = cv2.solvePnP(grid, centres, camera.K, camera.D)
    reproj, _ = cv2.projectPoints(grid, rvec, tvec, camera.K, camera.D)
    rms = float(np.sqrt(np.mean(np.sum((reproj.reshape(-1, 2) - centres) ** 2, axis=1))))
    target_in_camera = Pose(cv2.Rodrigues(rvec)[0], tvec.ravel())
    camera_in_target = target_in_camera.inverse()
    pts, why = pixels_to_plane(camera, camera_in_target, centres, Plane([0, 0, 0], [0, 0, 1]))
    pts = pts.reshape(10, 10, 3)
    d = np.concatenate([np.linalg.norm(np.diff(pts, axis=1), axis=2).ravel(),
                        np.linalg.norm(np.diff(pts, axis=0), axis=2).ravel()])
    return {"image": image.name, "distance_m": float(np.linalg.norm(tvec)), "reprojection_rms_px": rms,
            "spacing_mean_mm": 1000 * d.mean(), "spacing_std_mm": 1000 * d.std(),
            "max_error_mm": 1000 * np.abs(d - spacing).max(), "rejected_rays": int(np.sum(why != ""))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacing", type=float, default=0.0254)
    args = ap.parse_args()
    cam = CameraModel.from_values(550.0, 550.0, 320.0, 240.0, 640, 480)
    rows = [r for p in sorted(DATA.glob("images/*.png"), key=lambda p: int(p.stem)) if (r := measure(p, args.spacing, cam))]
    print(f"{'image':>7} {'dist m':>7} {'reproj px':>9} {'mean mm':>8} {'std mm':>7} {'max err mm':>10}")
    for r in rows:
        print(f"{r['image']:>7} {r['distance_m']:>7.3f} {r['reprojection_rms_px']:>9.2f} {r['spacing_mean_mm']:>8.2f} "
              f"{r['spacing_std_mm']:>7.2f} {r['max_error_mm']:>10.2f}")
    print(f"{len(rows)}/15 images; mean std {np.mean([r['spacing_std_mm'] for r in rows]):.2f} mm, "
          f"worst error {max(r['max_error_mm'] for r in rows):.2f} mm")


if __name__ == "__main__":
    main()
