"""robot_bridge: pick candidates -> robot commands -> pick results.

Subscribes grasps/candidates (msseg_interfaces/PickCandidateArray, frame ``world``) and, on the sorting
line, conveyor/joint_states (the belt the candidates are tracked on). The backend is
chosen by ``robot.type`` from ``ROBOT_BACKENDS``: ``delta`` (Modbus TCP deltas along the
belt), ``fanuc`` (RMI arm over a bin) or ``dry_run`` (the plan only).

Publishes:
    robot/pick_results (msseg_interfaces/PickResultArray, frame ``world``): one row per
        finished attempt, each pick_id once; ``robot`` 0 = no robot took it.
    robot/markers (MarkerArray): reach windows, robot names, picks in flight.
    robot/result_markers (MarkerArray): each finished pick for 30 s, coloured by status (RViz).
    /diagnostics: connection state per robot, queue, picks/min, unpicked reasons.

Safety: nothing outside a robot's workspace box is ever commanded (rejected, status 3),
and no pick_id is ever sent twice (the ledger refuses it). The bridge is not a safety
system; the controllers' own limits, fencing and e-stops stay in charge.
"""
from __future__ import annotations

import collections
import math
import time
from typing import Any

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from msseg_interfaces.msg import PickCandidateArray, PickResultArray
from msseg_ros.core import tables
from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.robots.backends import Finished, RobotBackend, create_backend
from msseg_ros.core.robots.lifecycle import STATUS_OF, PickState
from msseg_ros.core.robots.tracking import BeltState, Target
from msseg_ros.ros.node_base import ERROR, OK, WARN, MssegNode, run_node
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import ResultMessageError, msg_to_candidates, results_to_msg
from msseg_ros.ros.robot_config import bridge_settings, cell_robots
from msseg_ros.ros.stamps import to_seconds

_STATE_COLOURS = {PickState.ASSIGNED: (1.0, 0.8, 0.0), PickState.SENT: (0.1, 0.9, 0.2)}


def results_table(rows: list[Finished]) -> np.ndarray:
    out = tables.empty(tables.PICK_RESULTS, len(rows))
    for i, r in enumerate(rows):
        out[i] = (r.point[0], r.point[1], r.point[2], r.pick_id, r.robot, r.class_id, r.bin, STATUS_OF[r.state])
    return out



#: pick result marker colours by status (done, missed, failed, rejected, skipped), RGB
_STATUS_COLOURS = ((0.1, 0.8, 0.1), (1.0, 0.6, 0.0), (0.9, 0.1, 0.1), (0.8, 0.1, 0.8), (0.6, 0.6, 0.6))


def _result_markers(results, header) -> MarkerArray:
    """A cube per finished pick at its pick point (``world``), coloured by status, shown
    for 30 s."""
    out = MarkerArray()
    for row in results:
        m = Marker(header=header, ns="pick_results", id=int(row["pick_id"]) % 2**31, type=Marker.CUBE,
                   action=Marker.ADD)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(row[c]) for c in ("x", "y", "z"))
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 0.04
        m.color.r, m.color.g, m.color.b = _STATUS_COLOURS[min(int(row["status"]), len(_STATUS_COLOURS) - 1)]
        m.color.a = 0.8
        m.lifetime.sec = 30
        out.markers.append(m)
    return out


class RobotBridgeNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("robot_bridge", schema_for("robot_bridge"), **kwargs)
        p = self.params
        self.cell = cell_robots(p, p.cell)
        kind = p.robot.type
        if kind == "fanuc" and p.cell != "bin_picking":
            self.get_logger().warning("the fanuc backend picks one candidate at a time, without belt tracking")
        self.backend: RobotBackend = create_backend(kind, self.cell, bridge_settings(p))
        self.kind = kind
        self.unpicked: collections.Counter[str] = collections.Counter()
        self.done_times: collections.deque[float] = collections.deque()
        self._results_pub = self.create_publisher(PickResultArray, "robot/pick_results", results_qos(100))
        self._marker_pub = self.create_publisher(MarkerArray, "robot/markers", latched_qos())
        self._result_marker_pub = self.create_publisher(MarkerArray, "robot/result_markers", results_qos(10))
        self.create_subscription(PickCandidateArray, "grasps/candidates", self._on_candidates, results_qos(50))
        if p.cell == "sorting_line":
            self.create_subscription(JointState, "conveyor/joint_states", self._on_joints, sensor_qos(10))
        self.create_timer(1.0 / p.tick_rate, self._tick)
        self.create_timer(0.5, self._publish_markers)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joints(self, msg: JointState) -> None:
        try:
            i = list(msg.name).index("belt")
            pos, vel = float(msg.position[i]), float(msg.velocity[i]) if len(msg.velocity) > i else 0.0
        except (ValueError, IndexError):
            self.counters["bad_joint_states"] += 1
            return
        if not (math.isfinite(pos) and math.isfinite(vel)):
            self.counters["bad_joint_states"] += 1
            return
        self.backend.update_belt(BeltState(pos, vel, to_seconds(msg.header.stamp)))

    def _on_candidates(self, msg: PickCandidateArray) -> None:
        t0 = time.monotonic()
        try:
            rows = msg_to_candidates(msg)
        except ResultMessageError as exc:
            self.counters["bad_candidates"] += 1
            self.get_logger().warning(f"candidates ignored: {exc}", throttle_duration_sec=5.0)
            return
        if msg.header.frame_id and msg.header.frame_id != "world":
            self.counters["bad_candidates"] += 1
            self.get_logger().warning(f"candidates in frame {msg.header.frame_id!r} ignored: expected 'world'",
                                      throttle_duration_sec=5.0)
            return
        targets = [Target(int(r["pick_id"]), float(r["x"]), float(r["y"]), float(r["z"]), float(r["belt_position"]),
                          int(r["class_id"]), self.cell.bin_of(int(r["class_id"])), float(r["score"]))
                   for r in rows]
        self.counters["candidates"] += len(targets)
        self.backend.submit(targets, self._now())
        self.latency.add(time.monotonic() - t0)

    def _tick(self) -> None:
        finished = self.backend.tick(self._now())
        if not finished:
            return
        for f in finished:
            if f.state == PickState.DONE:
                self.done_times.append(time.monotonic())
                self.rate.tick()
            elif f.reason:
                self.unpicked[f.reason] += 1
        header = Header(frame_id="world", stamp=self.get_clock().now().to_msg())
        table = results_table(finished)
        self._results_pub.publish(results_to_msg(table, header))
        self._result_marker_pub.publish(_result_markers(table, header))
        self.counters["results"] += len(finished)

    def _publish_markers(self) -> None:
        header_stamp = self.get_clock().now().to_msg()
        out = [Marker(ns="robot_picks", action=Marker.DELETEALL)]
        out[0].header.frame_id = "world"
        for r in self.cell.robots:
            ws = r.workspace_world
            w0, w1 = r.window
            m = Marker(ns="reach_windows", id=r.index, type=Marker.CUBE, action=Marker.ADD)
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (w0 + w1) / 2, (ws.lo[1] + ws.hi[1]) / 2, 0.005
            m.pose.orientation.w = 1.0
            m.scale.x, m.scale.y, m.scale.z = w1 - w0, ws.hi[1] - ws.lo[1], 0.01
            m.color.r, m.color.g, m.color.b, m.color.a = 0.2, 0.5, 1.0, 0.25
            t = Marker(ns="robot_names", id=r.index, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=r.name)
            t.pose.position.x, t.pose.position.y, t.pose.position.z = r.base[0], r.base[1], r.base[2] + 0.1
            t.pose.orientation.w = 1.0
            t.scale.z = 0.08
            t.color.r = t.color.g = t.color.b = t.color.a = 1.0
            out += [m, t]
        for rec in self.backend.in_flight():
            if rec.plan is None and rec.state != PickState.SENT:
                continue
            x, y, z = rec.plan.point if rec.plan is not None else (rec.target.x, rec.target.y, rec.target.z)
            m = Marker(ns="robot_picks", id=int(rec.target.pick_id) % 2**31, type=Marker.SPHERE, action=Marker.ADD)
            m.pose.position.x, m.pose.position.y, m.pose.position.z = x, y, z
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 0.03
            m.color.r, m.color.g, m.color.b = _STATE_COLOURS.get(rec.state, (1.0, 1.0, 1.0))
            m.color.a = 0.9
            out.append(m)
        for m in out:
            m.header.frame_id = "world"
            m.header.stamp = header_stamp
        self._marker_pub.publish(MarkerArray(markers=out))

    def picks_per_minute(self) -> float:
        now = time.monotonic()
        while self.done_times and self.done_times[0] < now - 60.0:
            self.done_times.popleft()
        span = min(60.0, now - self.started)
        return 60.0 * len(self.done_times) / span if span > 1.0 else 0.0

    def diagnostics_status(self) -> tuple[int, str, dict[str, Any]]:
        st = self.backend.status()
        extra: dict[str, Any] = {"backend": self.kind, "picks_per_min": round(self.picks_per_minute(), 1),
                                 **st.key_values()}
        extra.update({f"unpicked_{k}": v for k, v in self.unpicked.items()})
        if st.encoder_stalled:
            return WARN, "encoder stalled: nothing new is sent", extra
        down = st.down
        if down and len(down) == len(st.robots):
            return ERROR, f"no robot available ({', '.join(down)})", extra
        if down:
            return WARN, f"robots down: {', '.join(down)}", extra
        return OK, f"{self.kind}: {len(st.robots)} robot(s)", extra

    def destroy_node(self) -> None:
        if hasattr(self, "backend"):
            self.backend.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(RobotBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
