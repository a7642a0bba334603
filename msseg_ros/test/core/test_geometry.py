import numpy as np
import pytest

from msseg_ros.core.geometry.belt import BeltBuffer, OutOfBufferError
from msseg_ros.core.geometry.camera import (
    BEHIND,
    PARALLEL,
    CameraModel,
    GeometryError,
    Plane,
    Pose,
    intersect,
    pixels_to_plane,
)

CAM = CameraModel.from_values(600.0, 610.0, 322.0, 241.0, 640, 480, D=(-0.25, 0.08, 0.001, -0.0015, -0.01))


def test_project_then_intersect_recovers_points_within_0_1_mm():
    """Exact synthetic calibration, distortion included: 3D -> pixel -> ray -> plane."""
    cam_in_world = Pose.from_xyz_quat([0.1, -0.05, 1.2], [1.0, 0.0, 0.0, 0.0])  # looking down
    plane = Plane([0, 0, 0.05], [0, 0, 1])
    rng = np.random.default_rng(0)
    world = np.column_stack([rng.uniform(-0.35, 0.55, 200), rng.uniform(-0.3, 0.2, 200), np.full(200, 0.05)])
    pix = CAM.project(cam_in_world.inverse().apply(world))
    inside = (pix[:, 0] > 0) & (pix[:, 0] < 640) & (pix[:, 1] > 0) & (pix[:, 1] < 480)
    assert inside.sum() > 100
    back, reasons = pixels_to_plane(CAM, cam_in_world, pix[inside], plane)
    assert (reasons == "").all()
    assert np.abs(back - world[inside]).max() < 1e-4


def test_rejects_parallel_and_behind():
    plane = Plane([0, 0, 0], [0, 0, 1])
    pts, why = intersect(np.array([0, 0, 1.0]), np.array([[1, 0, 0], [0, 0, 1], [0, 0, -1.0]]), plane)
    assert why.tolist() == [PARALLEL, BEHIND, ""]
    assert np.isnan(pts[:2]).all() and np.allclose(pts[2], [0, 0, 0])
    with pytest.raises(GeometryError, match="is not a direction"):
        Plane([0, 0, 0], [0, 0, 0])
    with pytest.raises(GeometryError, match="not unit length"):
        Pose.from_xyz_quat([0, 0, 0], [0, 0, 0, 2])


def test_camera_info_yaml(tmp_path):
    p = tmp_path / "cam.yaml"
    p.write_text("image_width: 640\nimage_height: 480\ncamera_name: top\n"
                 "camera_matrix: {rows: 3, cols: 3, data: [600, 0, 320, 0, 600, 240, 0, 0, 1]}\n"
                 "distortion_model: plumb_bob\n"
                 "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n")
    cam = CameraModel.from_yaml(p)
    assert cam.width == 640 and cam.K[0, 0] == 600 and cam.D[0] == 0.1
    p.write_text("image_width: 640\n")
    with pytest.raises(GeometryError, match="is not a camera_info YAML"):
        CameraModel.from_yaml(p)


def test_belt_buffer_interpolates_and_refuses_outside():
    b = BeltBuffer(span=1.0)
    for k in range(200):
        b.add(k * 0.005, 1.0 * k * 0.005)  # 1 m/s at 200 Hz
    assert b.position_at(0.5025) == pytest.approx(0.5025, abs=1e-12)
    b.add(0.1, 5.0)  # out of order: ignored and counted
    assert b.out_of_order == 1
    with pytest.raises(OutOfBufferError, match="outside the buffered span"):
        b.position_at(2.0)
    with pytest.raises(OutOfBufferError, match="outside"):
        b.position_at(-0.1)
    assert len(b) == 200 and BeltBuffer().__len__() == 0
