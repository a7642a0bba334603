"""grasp_selector over real rclpy."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, JointState
from std_msgs.msg import Header

from msseg_interfaces.msg import InstanceArray, PickCandidateArray
from msseg_ros.core.segmentation.base import Instances
from msseg_ros.core.sim.sorting_line import CLASSES, SortingLineConfig, SortingLineWorld
from msseg_ros.ros.nodes.grasp_selector import GraspSelectorNode
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import detections_to_msg, msg_to_candidates
from msseg_ros.ros.stamps import from_seconds

from conftest import spin_until


def _setup(ros_context, overrides):
    import rclpy

    node = GraspSelectorNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    probe = rclpy.create_node("grasp_probe", context=ros_context)
    got = []
    probe.create_subscription(PickCandidateArray, "grasps/candidates", got.append, results_qos())
    pubs = {
        "det": probe.create_publisher(InstanceArray, "segmentation/detections", results_qos()),
        "joints": probe.create_publisher(JointState, "conveyor/joint_states", sensor_qos(100)),
        "info": probe.create_publisher(CameraInfo, "camera/camera_info", latched_qos()),
    }
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    assert spin_until(ex, lambda: pubs["det"].get_subscription_count() > 0)
    return node, probe, pubs, got, ex


def _send_frame(pubs, inst, stamp, table=None):
    header = Header(stamp=from_seconds(stamp))
    pubs["det"].publish(detections_to_msg(inst.to_table() if table is None else table, header))


def test_line_cell_candidates_match_the_world(ros_context):
    node, probe, pubs, got, ex = _setup(ros_context, {"line.scanner_x": 1.0})
    try:
        # belt at 0.5 m/s: position = 0.5 * t; the frame's row 0 was scanned at t = 10 s
        for k in range(0, 2001):
            t = 5.0 + k * 0.005
            js = JointState(name=["belt"], position=[0.5 * t])
            js.header.stamp = from_seconds(t)
            pubs["joints"].publish(js)
            if k % 200 == 0:
                ex.spin_once(timeout_sec=0)
        spin_until(ex, lambda: len(node.belt) > 1500, timeout=10)
        world = SortingLineWorld(SortingLineConfig(seed=8, feed_rate=10.0, touch_rate=0.0))
        first_line = 2500  # b = 5.0 m at 2 mm per line: scanned at t = 10 s
        frame = world.render(first_line, 250)
        inst = Instances.from_labels(frame.labels, [o.class_id for o in frame.objects], np.ones(len(frame.objects)))
        _send_frame(pubs, inst, 10.0)
        assert spin_until(ex, lambda: got, timeout=10)
        cand = msg_to_candidates(got[0])
        assert got[0].header.frame_id == "world" and len(cand) >= 1
        assert np.allclose(cand["belt_position"], 5.0, atol=1e-6)
        for row in cand:
            o = frame.objects[row["instance"] - 1]
            assert CLASSES[row["class_id"] - 1] == o.cls
            # at travel 5.0 the object (belt coordinate o.b) is at x = scanner_x - (o.b - 5.0)
            assert abs(row["x"] - (1.0 - (o.b - 5.0))) < 0.03
        sorted_first = [CLASSES[c - 1] in ("copper", "laminated_zinc", "zamak", "brass", "aluminium", "nickel")
                        for c in cand["class_id"]]
        assert sorted_first == sorted(sorted_first, reverse=True)  # unsorted classes last

        _send_frame(pubs, inst, 99.0)  # long after the buffered belt positions
        assert spin_until(ex, lambda: node.counters["stamp_outside_belt_buffer"] == 1, timeout=10)
        # the selector reads the frame size from the message, not from a label image:
        # instances in a frame of no size are refused and counted
        sizeless = inst.to_table()
        sizeless["frame_width"] = sizeless["frame_height"] = 0
        _send_frame(pubs, inst, 10.0, table=sizeless)
        assert spin_until(ex, lambda: node.counters["bad_detections"] == 1, timeout=10)
        assert not node.get_subscriptions_info_by_topic("segmentation/instances")
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_camera_cell_waits_for_camera_info(ros_context):
    node, probe, pubs, got, ex = _setup(ros_context, {"cell": "bin_picking",
                                                      "camera_extrinsics.translation": [0.0, 0.0, 1.0]})
    try:
        labels = np.zeros((100, 100), np.uint16)
        labels[40:60, 45:55] = 1  # centroid (49.5, 49.5)
        inst = Instances.from_labels(labels, [1], [0.9], [0.7])
        _send_frame(pubs, inst, 3.0)
        spin_until(ex, lambda: False, timeout=0.5)
        assert not got and len(node._waiting) == 1  # waiting
        info = CameraInfo(width=100, height=100, k=[500.0, 0, 49.5, 0, 500.0, 49.5, 0, 0, 1], d=[0.0] * 5)
        pubs["info"].publish(info)
        assert spin_until(ex, lambda: got, timeout=10)
        cand = msg_to_candidates(got[0])
        # camera 1 m above the plane z = 0, looking down, ray through the principal point
        assert np.allclose([cand["x"][0], cand["y"][0], cand["z"][0]], [0, 0, 0], atol=1e-6)
        assert cand["affordance"][0] == np.float32(0.7) and np.isnan(cand["belt_position"][0])
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_detections_without_camera_info_are_dropped_and_counted(ros_context):
    node, probe, pubs, got, ex = _setup(ros_context, {"cell": "bin_picking", "camera_info_timeout": 0.3})
    try:
        labels = np.zeros((50, 50), np.uint16)
        labels[10:20, 10:20] = 1
        _send_frame(pubs, Instances.from_labels(labels, [1], [0.9]), 4.0)
        assert spin_until(ex, lambda: node.counters["dropped_no_camera_info"] == 1, timeout=10)
        assert not got and not node._waiting
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_camera_cell_ranks_with_its_depth_image(ros_context):
    """Instance 1 (best affordance) lies under instance 2; with the frame's depth and
    instances images, 2 comes first and 1 last; a frame whose depth never comes is ranked
    by affordance after ``depth.wait``, and a depth image of the wrong size is counted."""
    from sensor_msgs.msg import Image

    from msseg_ros.ros.image_codec import array_to_image

    # a long wait: the check that nothing came out early holds on a slow machine too
    node, probe, pubs, got, ex = _setup(ros_context, {"cell": "bin_picking", "depth.topic": "camera/depth/image_raw",
                                                      "depth.wait": 3.0})
    depth_pub = probe.create_publisher(Image, "camera/depth/image_raw", sensor_qos(4))
    labels_pub = probe.create_publisher(Image, "segmentation/instances", results_qos())
    try:
        assert spin_until(ex, lambda: depth_pub.get_subscription_count() and labels_pub.get_subscription_count())
        labels = np.zeros((40, 60), np.uint16)
        height = np.zeros((40, 60), np.float32)
        labels[10:30, 5:25], height[10:30, 5:25] = 1, 0.01
        labels[12:28, 20:32], height[12:28, 20:32] = 2, 0.03
        labels[10:30, 40:55], height[10:30, 40:55] = 3, 0.02
        inst = Instances.from_labels(labels, [1, 1, 1], [0.9, 0.5, 0.6], [0.9, 0.5, 0.6])
        pubs["info"].publish(CameraInfo(width=60, height=40, k=[500.0, 0, 29.5, 0, 500.0, 19.5, 0, 0, 1],
                                        d=[0.0] * 5))
        assert spin_until(ex, lambda: node.camera is not None)

        def frame(stamp, depth=None):
            header = Header(stamp=from_seconds(stamp))
            _send_frame(pubs, inst, stamp)  # detections first: they wait for the images
            spin_until(ex, lambda: False, timeout=0.2)
            assert not got
            if depth is not None:
                depth_pub.publish(array_to_image(depth, "32FC1", header=header))
                labels_pub.publish(array_to_image(inst.labels, "mono16", header=header))
            assert spin_until(ex, lambda: got, timeout=10)
            return msg_to_candidates(got.pop())

        cand = frame(1.0, (1.0 - height).astype(np.float32))  # camera 1 m above the plane
        assert list(cand["instance"]) == [2, 3, 1] and node.counters["ranked_with_depth"] == 1
        cand = frame(2.0)  # no depth for this frame
        assert list(cand["instance"]) == [1, 3, 2] and node.counters["ranked_without_depth"] == 1
        cand = frame(3.0, np.ones((20, 20), np.float32))
        assert list(cand["instance"]) == [1, 3, 2] and node.counters["bad_depth"] == 1
        assert node.counters["ranked_without_depth"] == 2 and not node._waiting
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


@pytest.mark.parametrize("fallback, expected", [(0.005, 1), (0.0, 0)])
def test_a_frame_without_detections_takes_the_depths_blobs(ros_context, fallback, expected):
    """With ``depth.fallback_height``, an empty detection table and a depth image with one
    object give one candidate on that object (counted); without it, none."""
    from sensor_msgs.msg import Image

    from msseg_ros.ros.image_codec import array_to_image

    node, probe, pubs, got, ex = _setup(ros_context, {
        "cell": "bin_picking", "depth.topic": "camera/depth/image_raw", "depth.wait": 3.0,
        "depth.fallback_height": fallback})
    depth_pub = probe.create_publisher(Image, "camera/depth/image_raw", sensor_qos(4))
    labels_pub = probe.create_publisher(Image, "segmentation/instances", results_qos())
    try:
        assert spin_until(ex, lambda: depth_pub.get_subscription_count() and labels_pub.get_subscription_count())
        pubs["info"].publish(CameraInfo(width=60, height=40, k=[500.0, 0, 29.5, 0, 500.0, 19.5, 0, 0, 1],
                                        d=[0.0] * 5))
        assert spin_until(ex, lambda: node.camera is not None)
        height = np.zeros((40, 60), np.float32)
        height[10:30, 30:50] = 0.02
        nothing = Instances.from_labels(np.zeros((40, 60), np.uint16), [], [])
        header = Header(stamp=from_seconds(1.0))
        _send_frame(pubs, nothing, 1.0)
        depth_pub.publish(array_to_image((1.0 - height).astype(np.float32), "32FC1", header=header))
        labels_pub.publish(array_to_image(nothing.labels, "mono16", header=header))
        assert spin_until(ex, lambda: got, timeout=10)
        cand = msg_to_candidates(got.pop())
        assert len(cand) == expected and node.counters["depth_fallback_candidates"] == expected
        if expected:
            # the blob's centre (u 39.5, v 19.5 px, within a pixel) through the camera 1 m
            # above the plane: 2 mm a pixel
            assert abs(cand["x"][0] - (39.5 - 29.5) / 500.0) <= 0.0011
            assert abs(cand["y"][0]) <= 0.0011 and cand["class_id"][0] == 1
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
