"""camera over real rclpy, on the real tabletop frames in ../shared/data/tabletop_rgbd."""
import json

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from msseg_interfaces.msg import PickResultArray
from msseg_ros.core import tables
from msseg_ros.core.sensing.sources import SourceError, open_source
from msseg_ros.ros.image_codec import image_to_array
from msseg_ros.ros.nodes.camera import CameraNode
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import results_to_msg

from conftest import SHARED, spin_until

TABLETOP = SHARED / "data" / "tabletop_rgbd"
pytestmark = pytest.mark.skipif(not TABLETOP.is_dir(), reason="shared data not present")


@pytest.fixture
def camera_info_yaml(tmp_path):
    p = json.loads((TABLETOP / "camera_params.json").read_text())
    f = tmp_path / "tabletop.yaml"
    f.write_text(
        f"image_width: {p['img_width']}\nimage_height: {p['img_height']}\ncamera_name: tabletop\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: [{p['fx']}, 0, {p['x_offset']}, 0, {p['fy']}, "
        f"{p['y_offset']}, 0, 0, 1]}}\ndistortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    return f


def _run(ros_context, overrides, extra=None):
    import rclpy

    node = CameraNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    probe = rclpy.create_node("cam_probe", context=ros_context)
    got = {"img": [], "info": []}
    probe.create_subscription(Image, "camera/image_raw", got["img"].append, sensor_qos(10))
    probe.create_subscription(CameraInfo, "camera/camera_info", got["info"].append, latched_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    return node, probe, got, ex


def test_real_frames_with_camera_info(ros_context, camera_info_yaml):
    node, probe, got, ex = _run(ros_context, {"source": "images", "uri": str(TABLETOP / "png" / "*_rgb.png"),
                                              "fps": 20.0, "camera_info_url": str(camera_info_yaml)})
    try:
        assert spin_until(ex, lambda: len(got["img"]) >= 3 and len(got["info"]) >= 3, timeout=20)
        img = got["img"][0]
        assert img.encoding == "rgb8" and (img.width, img.height) == (640, 480)
        assert img.header.frame_id == "camera_optical_frame"
        first = cv2.cvtColor(cv2.imread(str(TABLETOP / "png" / "image_0000_rgb.png")), cv2.COLOR_BGR2RGB)
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["info"]}
        match = [m for m in got["img"] if (m.header.stamp.sec, m.header.stamp.nanosec) in stamps]
        assert match, "camera_info carries the image's stamp"
        np.testing.assert_array_equal(image_to_array(got["img"][0]), first)
        assert got["info"][0].k[0] == pytest.approx(612.937) and got["info"][0].k[5] == pytest.approx(248.158)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_on_pick_trigger(ros_context, camera_info_yaml):
    node, probe, got, ex = _run(ros_context, {"source": "images", "uri": str(TABLETOP / "png"),
                                              "trigger": "on_pick", "camera_info_url": str(camera_info_yaml)})
    try:
        pub = probe.create_publisher(PickResultArray,
                                     "robot/pick_results", results_qos())
        assert spin_until(ex, lambda: len(got["img"]) == 1, timeout=20)  # one at start
        spin_until(ex, lambda: False, timeout=1.0)
        assert len(got["img"]) == 1  # then nothing until a pick finishes
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0, timeout=10)
        pub.publish(results_to_msg(tables.empty(tables.PICK_RESULTS, 1), Header()))
        assert spin_until(ex, lambda: len(got["img"]) == 2, timeout=20)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_frame_over_the_transport_limit_is_counted_not_sent(ros_context, camera_info_yaml):
    """A 640 x 480 rgb8 frame is 921,600 bytes; with a limit below that, nothing is sent
    and every captured frame is counted (a frame must not vanish in the transport)."""
    node, probe, got, ex = _run(ros_context, {"source": "images", "uri": str(TABLETOP / "png" / "*_rgb.png"),
                                              "fps": 20.0, "camera_info_url": str(camera_info_yaml),
                                              "max_message_bytes": 900_000})
    diags = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    try:
        def counted():
            values = [{kv.key: kv.value for kv in st.values} for d in diags for st in d.status
                      if st.name.endswith("/camera")]
            return any(int(v.get("messages_too_large", 0)) >= 3 for v in values)

        assert spin_until(ex, counted, timeout=30)
        assert got["img"] == [] and node.counters["frames"] == 0
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_transport_limit_is_the_dds_profiles():
    from msseg_ros.core.params.nodes import DDS_MAX_MESSAGE_BYTES
    from msseg_ros.core.paths import share_dir

    text = (share_dir() / "config" / "dds" / "fastdds_large_frames.xml").read_text()
    assert f"<maxMessageSize>{DDS_MAX_MESSAGE_BYTES}</maxMessageSize>" in text


def test_sources_errors_and_sim():
    with pytest.raises(SourceError, match="no image files found"):
        open_source("images", "/nonexistent/*.png")
    with pytest.raises(SourceError, match="does not exist"):
        open_source("video", "/nonexistent.mp4")
    with pytest.raises(SourceError, match="cannot be opened"):
        open_source("device", "/dev/video99")
    assert open_source("images", str(TABLETOP / "png")).depth() is None  # an RGB source
    sim = open_source("sim", seed=3)
    assert sim.depth() is None  # nothing read yet
    frame = sim.read()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    depth = sim.depth()  # registered to that frame: the pile's true depth plus ~1 mm of noise
    truth = sim.pile.render()["depth"]
    assert depth.shape == (256, 256) and depth.dtype == np.float32
    assert 0.0005 < float(np.std(depth - truth)) < 0.002 and float(depth.max()) <= 1.01
    assert sim.camera_model().K[0, 0] == pytest.approx(500.0)


def test_sim_depth_over_the_transport_limit_is_counted_not_sent(ros_context):
    """The sim's 256 x 256 depth image (32FC1, 262,144 bytes) is larger than its rgb8 frame
    (196,608 bytes): with a limit between the two, frames go out and depth images are
    counted, not sent."""
    node, probe, got, ex = _run(ros_context, {"source": "sim", "fps": 20.0, "max_message_bytes": 200_000})
    depths = []
    probe.create_subscription(Image, "camera/depth/image_raw", depths.append, sensor_qos(10))
    try:
        assert spin_until(ex, lambda: len(got["img"]) >= 3, timeout=30)
        assert depths == [] and node.counters["depth_frames"] == 0
        assert node.counters["messages_too_large"] >= 3
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
