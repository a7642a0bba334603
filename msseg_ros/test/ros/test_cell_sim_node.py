"""cell_sim over real rclpy: the belt at the encoder rate, stopped and restarted at run time."""
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from msseg_ros.ros.nodes.cell_sim import CellSimNode
from msseg_ros.ros.qos import sensor_qos

from conftest import spin_until


def test_belt_stop_and_start(ros_context):
    import rclpy

    sim = CellSimNode(context=ros_context, parameter_overrides=[Parameter("belt.speed", value=0.5)])
    probe = rclpy.create_node("belt_probe", context=ros_context)
    got = []
    probe.create_subscription(JointState, "conveyor/joint_states", got.append, sensor_qos(50))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(sim)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: len(got) >= 100, timeout=20)
        pos = np.array([m.position[0] for m in got])
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got])
        assert got[0].name == ["belt"] and got[0].header.frame_id == "world"
        assert np.all(np.diff(pos) >= 0), "belt travel is monotonic"
        assert 0.002 < np.median(np.diff(stamps)) < 0.009, "about 200 Hz"
        assert abs(np.round(pos[-1] / 1e-4) * 1e-4 - pos[-1]) < 1e-9, "whole encoder counts"
        speed = (pos[-1] - pos[0]) / (stamps[-1] - stamps[0])
        assert 0.3 < speed < 0.7

        assert sim.set_parameters([Parameter("belt.speed", value=0.0)])[0].successful
        got.clear()
        spin_until(ex, lambda: len(got) >= 40, timeout=20)
        stopped = [m.position[0] for m in got[5:]]
        assert max(stopped) - min(stopped) == 0.0 and got[-1].velocity[0] == 0.0

        assert sim.set_parameters([Parameter("belt.speed", value=1.0)])[0].successful
        got.clear()
        spin_until(ex, lambda: len(got) >= 60, timeout=20)
        assert got[-1].position[0] > stopped[-1] and got[-1].velocity[0] == 1.0
        refused = sim.set_parameters([Parameter("belt.speed", value=-1.0)])[0]
        assert not refused.successful and sim.belt.speed == 1.0
    finally:
        ex.shutdown()
        sim.destroy_node()
        probe.destroy_node()
