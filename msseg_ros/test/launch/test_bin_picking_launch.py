"""launch_testing: `bin_picking.launch.py mode:=sim` starts and every process exits cleanly.

Skipped where launch_testing cannot be imported (see test_sorting_line_launch.py).
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
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from msseg_ros.graph import share_dir  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    path = os.path.join(share_dir(), "launch", "bin_picking.launch.py")
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(path), launch_arguments={"mode": "sim"}.items()),
        launch.actions.TimerAction(period=3.0, actions=[launch_testing.actions.ReadyToTest()]),
    ])


class TestStarted(unittest.TestCase):
    def test_nodes_running(self, proc_output):
        proc_output.assertWaitFor("cell_sim", timeout=20, stream="stderr")


@launch_testing.post_shutdown_test()
class TestCleanExit(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2])
