"""A line bag recorded before msseg_interfaces, when detections, candidates and pick results
were sensor_msgs/PointCloud2 tables, still replays its sensor topics: the replay node plays
exactly the bag's frames and encoder states, and the old result topics (whose type now
clashes with the typed messages) are left in the bag, not published."""
import subprocess
import sys

import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.typesys import Stores, get_typestore

from msseg_ros.core.recording import BagRecorder
from msseg_ros.core.replay import BagPlayback
from msseg_ros.graph import REPLAY_TOPICS
from msseg_ros.ros.msgtypes import message_class

from conftest import ROOT, spin_until

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
OLD_RESULT_TOPICS = ("/segmentation/detections", "/grasps/candidates", "/robot/pick_results")


def _header(ns: int, frame: str):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame)


def _old_line_bag(path):
    """Encoder states, 11-channel frames, and the results as PointCloud2 tables."""
    rng = np.random.default_rng(5)
    msgs = []
    for k in range(20):
        ns = 10**9 + k * 50_000_000
        js = T["sensor_msgs/msg/JointState"](header=_header(ns, "conveyor"), name=["belt"],
                                             position=np.array([0.025 * k]), velocity=np.array([0.5]),
                                             effort=np.zeros(0))
        msgs.append(("/conveyor/joint_states", "sensor_msgs/msg/JointState", ns, js))
        if k % 5 == 4:
            data = rng.random((6, 4, 11), dtype=np.float32)
            img = T["sensor_msgs/msg/Image"](header=_header(ns, "line_scanner"), height=6, width=4, encoding="32FC11",
                                             is_bigendian=0, step=4 * 11 * 4, data=data.view(np.uint8).ravel())
            msgs.append(("/line_scanner/frames", "sensor_msgs/msg/Image", ns, img))
            field = T["sensor_msgs/msg/PointField"](name="score", offset=0, datatype=7, count=1)
            for topic in OLD_RESULT_TOPICS:
                table = T["sensor_msgs/msg/PointCloud2"](
                    header=_header(ns, "world"), height=1, width=2, fields=[field], is_bigendian=False,
                    point_step=4, row_step=8, data=np.array([0.5, 0.9], np.float32).view(np.uint8), is_dense=True)
                msgs.append((topic, "sensor_msgs/msg/PointCloud2", ns + 1, table))
    with BagRecorder(path, "mcap") as bag:
        for topic, msgtype, _, _ in msgs:
            bag.add_topic(topic, msgtype)
        for topic, msgtype, ns, msg in msgs:
            bag.write(topic, ns, bytes(TS.serialize_cdr(msg, msgtype)))


def test_a_bag_with_pointcloud2_results_replays_its_sensor_topics(tmp_path, ros_context):
    import rclpy

    bag = tmp_path / "old_line"
    _old_line_bag(bag)
    play = BagPlayback(bag, list(REPLAY_TOPICS["sorting_line"]))
    expected: dict[str, list[bytes]] = {}
    for _, topic, raw in play.schedule(rate=1e9):
        expected.setdefault(topic, []).append(bytes(raw))
    assert {t: len(v) for t, v in expected.items()} == {"/conveyor/joint_states": 20, "/line_scanner/frames": 4}

    node = rclpy.create_node("bag_listener", context=ros_context)
    got: dict[str, list[bytes]] = {t: [] for t in expected}
    for topic, msgtype in (("/conveyor/joint_states", "sensor_msgs/msg/JointState"),
                           ("/line_scanner/frames", "sensor_msgs/msg/Image")):
        node.create_subscription(message_class(msgtype), topic, lambda raw, t=topic: got[t].append(bytes(raw)), QOS,
                                 raw=True)
    results = []  # the old tables are not played (they would clash with today's typed topics)
    for topic in OLD_RESULT_TOPICS:
        node.create_subscription(message_class("sensor_msgs/msg/PointCloud2"), topic, results.append, QOS, raw=True)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    topics = "[" + ",".join(REPLAY_TOPICS["sorting_line"]) + "]"
    proc = subprocess.Popen([sys.executable, "-m", "msseg_ros.ros.nodes.replay", "--ros-args", "-p", f"bag:={bag}",
                             "-p", f"topics:={topics}", "-p", "rate:=5.0", "-p", "wait_for_nodes:=[bag_listener]",
                             "-p", "wait_timeout:=30.0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)
    try:
        spin_until(ex, lambda: all(len(got[t]) >= len(expected[t]) for t in expected), timeout=90)
        spin_until(ex, lambda: False, timeout=0.5)  # nothing more may arrive
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
        ex.shutdown()
        node.destroy_node()
    assert got == expected, out[-2000:]
    assert results == []
