"""cell_sim: the simulated cell. Owns the physics in sim mode.

Publishes:
    conveyor/joint_states (sensor_msgs/JointState, sensor QoS): ``name=[belt]``,
        ``position`` = belt travel (m), ``velocity`` (m/s), at ``belt.encoder_rate``.
        Sorting line only.
    /diagnostics.

``belt.speed`` may be changed at run time (0 stops the belt, as an operator would).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sensor_msgs.msg import JointState

from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.sim.belt import Belt
from msseg_ros.ros.node_base import OK, MssegNode, run_node
from msseg_ros.ros.qos import sensor_qos


class CellSimNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("cell_sim", schema_for("cell_sim"), **kwargs)
        p = self.params
        self.belt = None
        if p.cell == "sorting_line":
            self.belt = Belt(speed=p.belt.speed, resolution=p.belt.encoder_resolution)
            self._joint_pub = self.create_publisher(JointState, "conveyor/joint_states", sensor_qos(10))
            self._last = time.monotonic()
            self.create_timer(1.0 / p.belt.encoder_rate, self._tick)

    def on_parameters_change(self, proposed: Mapping[str, Any], changed: Mapping[str, Any]):
        if "belt.speed" in changed and self.belt is not None:
            self._advance()  # integrate at the old speed up to now
            self.belt.set_speed(changed["belt.speed"])
        return None

    def _advance(self) -> None:
        now = time.monotonic()
        self.belt.advance(now - self._last)
        self._last = now

    def _tick(self) -> None:
        self._advance()
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "world"
        msg.name = ["belt"]
        msg.position = [self.belt.position]
        msg.velocity = [self.belt.speed]
        self._joint_pub.publish(msg)
        self.rate.tick()

    def diagnostics_status(self):
        if self.belt is None:
            return OK, f"{self.params.cell}: no belt in this cell", {}
        state = "stopped" if self.belt.speed == 0 else "running"
        return OK, f"belt {state}", {
            "belt_position_m": round(self.belt.position, 4),
            "belt_speed_mps": self.belt.speed,
        }


def main(args: list[str] | None = None) -> int:
    return run_node(CellSimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
