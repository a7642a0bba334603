"""launch_testing: `sorting_line.launch.py mode:=sim` starts the graph, the belt moves,
and every process exits cleanly at shutdown.

Runs where launch_testing is installed (a ROS machine: `colcon test`, or `launch_test`).
Here it is skipped with that reason; test/test_runner.py checks the same behaviour on the
same graph description through `msseg run`, with real rclpy.
"""
import os
import unittest

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing is not installable from PyPI (needs a ROS install)"
)
import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from msseg_ros.graph import share_dir  # noqa: E402
from msseg_ros.ros.qos import sensor_qos  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    path = os.path.join(share_dir(), "launch", "sorting_line.launch.py")
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(path), launch_arguments={"mode": "sim"}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestBeltMoves(unittest.TestCase):
    def test_joint_states_arrive(self):
        rclpy.init()
        try:
            node = rclpy.create_node("launch_probe")
            got = []
            node.create_subscription(JointState, "conveyor/joint_states", got.append, sensor_qos(10))
            end = node.get_clock().now().nanoseconds + 20 * 10**9
            while len(got) < 10 and node.get_clock().now().nanoseconds < end:
                rclpy.spin_once(node, timeout_sec=0.1)
            self.assertGreaterEqual(len(got), 10)
            self.assertEqual(list(got[-1].name), ["belt"])
            self.assertGreater(got[-1].position[0], got[0].position[0])
        finally:
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestCleanExit(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2])
