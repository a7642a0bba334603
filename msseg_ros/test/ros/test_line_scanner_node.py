"""line_scanner driven by the real cell_sim belt, over real rclpy."""
import subprocess
import sys

import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from msseg_ros.core.sim.sorting_line import SortingLineWorld
from msseg_ros.ros.image_codec import image_to_array
from msseg_ros.ros.nodes.cell_sim import CellSimNode
from msseg_ros.ros.nodes.line_scanner import LineScannerNode, world_config
from msseg_ros.ros.qos import sensor_qos
from msseg_ros.ros.stamps import to_seconds

from conftest import ROOT, spin_until


def test_frames_are_the_world_at_the_encoder_lines(ros_context):
    import rclpy

    world = [Parameter("world.seed", value=5), Parameter("world.feed_rate", value=12.0)]
    sim = CellSimNode(context=ros_context, parameter_overrides=[Parameter("belt.speed", value=2.0), *world])
    scanner = LineScannerNode(context=ros_context, parameter_overrides=[
        *world, Parameter("frame_lines", value=100), Parameter("overlap_lines", value=10)])
    probe = rclpy.create_node("frames_probe", context=ros_context)
    got = []
    probe.create_subscription(Image, "line_scanner/frames", got.append, sensor_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    for n in (sim, scanner, probe):
        ex.add_node(n)
    try:
        assert spin_until(ex, lambda: len(got) >= 3, timeout=40)
        frames = [image_to_array(m) for m in got[:3]]
        assert got[0].encoding == "32FC11" and frames[0].shape == (100, 274, 11)
        assert got[0].header.frame_id == "line_scanner"
        stamps = [to_seconds(m.header.stamp) for m in got[:3]]
        assert stamps[0] < stamps[1] < stamps[2]
        # stride 90 lines = 0.18 m at 2 m/s: 0.09 s apart
        assert 0.05 < stamps[1] - stamps[0] < 0.2
        w = SortingLineWorld(world_config(scanner.params))
        starts = [next(k * 90 for k in range(200) if np.array_equal(f[0], w.render(k * 90, 1).image[0])) for f in frames]
        assert starts[1] - starts[0] == 90 and starts[2] - starts[1] == 90
        np.testing.assert_array_equal(frames[0], w.render(starts[0], 100).image)
        np.testing.assert_array_equal(frames[0][90:], frames[1][:10])  # the overlap
        assert scanner.assembler.counters["gap_lines"] == 0

        assert sim.set_parameters([Parameter("belt.speed", value=0.0)])[0].successful
        spin_until(ex, lambda: False, timeout=0.5)
        n, lines = len(got), scanner.assembler.counters["lines"]
        spin_until(ex, lambda: False, timeout=1.0)
        assert len(got) == n and scanner.assembler.counters["lines"] == lines  # stopped: nothing
    finally:
        ex.shutdown()
        for n in (sim, scanner, probe):
            n.destroy_node()


def test_live_source_is_refused_with_reason():
    out = subprocess.run([sys.executable, "-m", "msseg_ros.ros.nodes.line_scanner", "--ros-args",
                          "-p", "source:=live"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2
    assert "no line-scan SDK backend is installed" in out.stderr and "Traceback" not in out.stderr
