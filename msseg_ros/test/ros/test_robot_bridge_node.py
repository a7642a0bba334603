"""robot_bridge over real rclpy, with an emulated delta controller on loopback (Modbus TCP)."""
import time

import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from msseg_interfaces.msg import PickCandidateArray, PickResultArray
from msseg_ros.core import tables
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.delta_controller import ControllerLoop, DeltaController
from msseg_ros.core.robots.kinematics import DeltaGeometry
from msseg_ros.core.robots.modbus import DeltaModbusServer
from msseg_ros.core.tables import PickStatus
from msseg_ros.ros.nodes.robot_bridge import RobotBridgeNode
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import candidates_to_msg, msg_to_results
from msseg_ros.ros.stamps import from_seconds

from conftest import free_ports, spin_until


def test_bridge_picks_rejects_and_skips(ros_context):
    import rclpy

    port = free_ports(1)
    geo = DeltaGeometry()
    (robot,) = line_robots(1, first_x=1.0, geometry=geo, port0=port)
    t0 = time.time()
    belt = lambda t: (0.5 * (t - t0m), 0.5)  # noqa: E731
    t0m = time.monotonic()
    ctrl = DeltaController(robot, Speeds(), belt, geometry=geo)
    loop = ControllerLoop([ctrl], time.monotonic).start()
    server = DeltaModbusServer(ctrl, robot.host, robot.port).start()
    params = {"robot.type": "delta", "cell": "sorting_line", "robots.names": ["d1"], "robots.base_x": [1.0],
              "robots.base_y": [0.0], "robots.base_z": [1.0], "robots.window_start": [0.75],
              "robots.window_end": [1.25], "robots.hosts": ["127.0.0.1"], "robots.ports": [port],
              "robots.bins": [""]}
    node = RobotBridgeNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = rclpy.create_node("bridge_probe", context=ros_context)
    results, markers = [], []
    probe.create_subscription(PickResultArray, "robot/pick_results", results.append, results_qos(100))
    probe.create_subscription(MarkerArray, "robot/markers", markers.append, latched_qos())
    cand_pub = probe.create_publisher(PickCandidateArray, "grasps/candidates", results_qos())
    joint_pub = probe.create_publisher(JointState, "conveyor/joint_states", sensor_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)

    def publish_belt():
        now = time.time()
        js = JointState(name=["belt"], position=[0.5 * (now - t0)], velocity=[0.5])
        js.header.stamp = from_seconds(now)
        joint_pub.publish(js)

    probe.create_timer(0.01, publish_belt)
    try:
        assert spin_until(ex, lambda: cand_pub.get_subscription_count() > 0 and node.backend.belt is not None)
        cand = tables.empty(tables.CANDIDATES, 4)
        now = time.time()
        p = 0.5 * (now - t0)
        cand["pick_id"] = [1, 2, 3, 4]
        cand["x"] = [0.3, 0.3, 0.3, 0.2]
        cand["y"] = [0.0, 0.6, 0.1, 0.0]  # 2: across the belt, outside the workspace
        cand["z"] = 0.0
        cand["class_id"] = [1, 1, 3, 1]  # class 3 (paint) is not sorted
        cand["score"] = 0.9
        cand["belt_position"] = p
        header = Header(frame_id="world", stamp=from_seconds(now))
        cand_pub.publish(candidates_to_msg(cand, header))
        cand_pub.publish(candidates_to_msg(cand, header))  # the same objects again: ignored

        def rows():
            out = [msg_to_results(m) for m in results]
            return np.concatenate(out) if out else tables.empty(tables.PICK_RESULTS)

        assert spin_until(ex, lambda: len(rows()) >= 4, timeout=20)
        spin_until(ex, lambda: False, timeout=0.5)
        r = rows()
        by_id = {int(x["pick_id"]): x for x in r}
        assert sorted(by_id) == [1, 2, 3, 4] and len(r) == 4  # each pick once
        assert by_id[1]["status"] == PickStatus.DONE and by_id[1]["robot"] == 1 and by_id[1]["bin"] == 1
        assert 0.75 <= by_id[1]["x"] <= 1.25  # picked inside the reach window, in world
        assert by_id[2]["status"] == PickStatus.REJECTED and by_id[2]["robot"] == 0
        assert by_id[3]["status"] == PickStatus.SKIPPED
        assert ctrl.received[1] == 1 and ctrl.received[2] == 0 and ctrl.received[3] == 0
        assert results[0].header.frame_id == "world"
        assert node.backend.ledger.counters["repeated_candidates"] == 4
        ns = {m.ns for msg in markers for m in msg.markers}
        assert {"reach_windows", "robot_names"} <= ns
        # a candidate table in the wrong frame is refused and counted
        cand_pub.publish(candidates_to_msg(cand[:1], Header(frame_id="camera_optical_frame", stamp=header.stamp)))
        assert spin_until(ex, lambda: node.counters["bad_candidates"] == 1)
    finally:
        node.destroy_node()
        probe.destroy_node()
        server.stop()
        loop.stop()
