"""cell_sim: the simulated cell. Owns the physics in sim mode.

Sorting line: runs the belt and its encoder, serves one emulated delta controller per
configured robot (Modbus TCP on the robot's address), and scores every grip against
the world's ground truth. Bin picking: serves the emulated FANUC (RMI) and scores every
suction on the simulated pile (the camera's sim source replays the same picks).

Publishes:
    conveyor/joint_states (sensor_msgs/JointState, sensor QoS): ``name=[belt]``,
        ``position`` = belt travel (m), ``velocity`` (m/s), at ``belt.encoder_rate``.
        Sorting line only.
    sim/score (std_msgs/String, JSON, transient local): the KPIs, every ``scoring.period`` s.
    /diagnostics.
Subscribes grasps/candidates (which objects were detected).

``belt.speed`` may be changed at run time (0 stops the belt, as an operator would).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sensor_msgs.msg import JointState
from std_msgs.msg import String

from msseg_interfaces.msg import PickCandidateArray
from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.robots.delta_controller import ControllerLoop, DeltaController
from msseg_ros.core.robots.kinematics import Box, vec3
from msseg_ros.core.sim.belt import Belt
from msseg_ros.core.sim.scoring import BinScorer, LineScorer
from msseg_ros.core.sim.sorting_line import CLASSES, SortingLineWorld
from msseg_ros.ros.node_base import OK, WARN, MssegNode, run_node
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import ResultMessageError, msg_to_candidates
from msseg_ros.ros.robot_config import cell_robots


class CellSimNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("cell_sim", schema_for("cell_sim"), **kwargs)
        p = self.params
        self.belt: Belt | None = None
        self.servers: list[Any] = []
        self.loop: Any = None  # ControllerLoop on the line
        self.line_scorer: LineScorer | None = None
        self.bin_scorer: BinScorer | None = None
        self.rmi: Any = None  # EmulatedRmiController on the bin cell
        self.last_score: dict[str, Any] | None = None
        self.cell = cell_robots(p, p.cell)
        self._score_pub = self.create_publisher(String, "sim/score", latched_qos())
        if p.cell == "sorting_line":
            self.belt = Belt(speed=p.belt.speed, resolution=p.belt.encoder_resolution)
            self._joint_pub = self.create_publisher(JointState, "conveyor/joint_states", sensor_qos(10))
            self._last = time.monotonic()
            self._setup_line(p)
            self.create_timer(1.0 / p.belt.encoder_rate, self._tick)
        else:
            self._setup_bin(p)
        self.create_subscription(PickCandidateArray, "grasps/candidates", self._on_candidates, results_qos(50))
        self.create_timer(p.scoring.period, self._publish_score)

    # ---- set-up --------------------------------------------------------------------
    def _setup_line(self, p) -> None:
        from msseg_ros.core.sim.sorting_line import SortingLineConfig

        world = SortingLineWorld(SortingLineConfig.from_world(p.world))  # scored, not rendered: any pitch
        class_bins = {self.cell.classes[cid - 1]: b for cid, b in self.cell.class_bins.items()
                      if self.cell.classes[cid - 1] in CLASSES}
        end_x = max(r.window[1] for r in self.cell.robots) + 0.3
        self.line_scorer = LineScorer(world, class_bins, p.world.scanner_x, -p.world.belt_width / 2, end_x,
                                      p.scoring.warmup)
        if not p.emulate_controllers:
            return
        from msseg_ros.core.robots.modbus import DeltaModbusServer

        controllers = [DeltaController(r, self.cell.speeds, self._belt_reading, queue_size=self.cell.max_in_flight,
                                       geometry=self.cell.geometry, on_grip=self.line_scorer.on_grip)
                       for r in self.cell.robots]
        self.loop = ControllerLoop(controllers, time.monotonic).start()
        for r, c in zip(self.cell.robots, controllers, strict=True):
            self.servers.append(DeltaModbusServer(c, r.host, r.port).start())
        self.controllers = controllers
        self.get_logger().info(f"emulated delta controllers on {', '.join(f'{r.host}:{r.port}' for r in self.cell.robots)}")

    def _setup_bin(self, p) -> None:
        self.bin_scorer = BinScorer(p.sim.seed, p.sim.scene)
        if not p.emulate_controllers:
            return
        from msseg_ros.core.robots.rmi_server import EmulatedRmiController

        r = self.cell.robots[0]
        mm = lambda v: vec3([float(a) * 1000 for a in v])  # noqa: E731
        self.rmi = EmulatedRmiController(
            Box(mm(r.workspace.lo), mm(r.workspace.hi)), mm(r.home), host=r.host, port=r.port,
            accel_mm_s2=self.cell.speeds.max_accel * 1000, suction_port=p.fanuc.suction_port,
            vacuum_port=p.fanuc.vacuum_port,
            on_suction=lambda xyz_base: self._suction(tuple(r.to_world(xyz_base)))).start()
        self.get_logger().info(f"emulated FANUC (RMI) on {r.host}:{r.port}")

    def _suction(self, xyz: tuple[float, ...]) -> bool:
        assert self.bin_scorer is not None
        ok = self.bin_scorer.on_suction(xyz)
        self.get_logger().info(f"suction at world ({xyz[0]:.3f}, {xyz[1]:.3f}, {xyz[2]:.3f}) m: "
                               f"{'lifted' if ok else 'nothing lifted'}")
        return ok

    # ---- belt ----------------------------------------------------------------------
    @property
    def line_belt(self) -> Belt:
        """The belt; only the sorting line has one."""
        assert self.belt is not None, "the bin-picking cell has no belt"
        return self.belt

    def _belt_reading(self, now: float) -> tuple[float, float]:
        """The encoder as the controllers read it (their own clock, between ticks)."""
        b = self.line_belt
        return b.position + b.speed * max(0.0, now - self._last), b.speed

    def on_parameters_change(self, proposed: Mapping[str, Any], changed: Mapping[str, Any]):
        if "belt.speed" in changed and self.belt is not None:
            self._advance()  # integrate at the old speed up to now
            self.belt.set_speed(changed["belt.speed"])
        return None

    def _advance(self) -> None:
        now = time.monotonic()
        self.line_belt.advance(now - self._last)
        self._last = now

    def _tick(self) -> None:
        self._advance()
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "world"
        msg.name = ["belt"]
        msg.position = [self.line_belt.position]
        msg.velocity = [self.line_belt.speed]
        self._joint_pub.publish(msg)
        self.rate.tick()

    # ---- scoring -------------------------------------------------------------------
    def _on_candidates(self, msg: PickCandidateArray) -> None:
        if self.line_scorer is None:
            return
        try:
            rows = msg_to_candidates(msg)
        except ResultMessageError:
            self.counters["bad_candidates"] += 1
            return
        for r in rows:
            if r["belt_position"] == r["belt_position"]:
                self.line_scorer.on_candidate(float(r["x"]), float(r["y"]), float(r["belt_position"]),
                                              int(r["class_id"]), int(r["pick_id"]))

    def score(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        if self.line_scorer is not None:
            self.line_scorer.update(self.line_belt.position)
            kpis = self.line_scorer.kpis(elapsed)
            kpis["belt_position_m"] = round(self.line_belt.position, 3)
        else:
            assert self.bin_scorer is not None
            kpis = self.bin_scorer.kpis(elapsed)
        return {"cell": self.params.cell, "elapsed_s": round(elapsed, 1), **kpis}

    def _publish_score(self) -> None:
        self.last_score = self.score()
        self._score_pub.publish(String(data=json.dumps(self.last_score)))

    def diagnostics_status(self):
        s = self.last_score or self.score()  # the scoring timer's result, not a second pass
        flat = {k: v for k, v in s.items() if not isinstance(v, dict)}
        if self.belt is None:
            return OK, f"bin picking: {s['attempts']} picks", flat
        state = "stopped" if self.belt.speed == 0 else "running"
        flat["belt_speed_mps"] = self.belt.speed
        level = WARN if self.belt.speed == 0 else OK
        return level, f"belt {state}; {s['objects_scored']} objects scored", flat

    def destroy_node(self) -> None:
        for s in getattr(self, "servers", []):
            s.stop()
        if getattr(self, "loop", None) is not None:
            self.loop.stop()
        if getattr(self, "rmi", None) is not None:
            self.rmi.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(CellSimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
