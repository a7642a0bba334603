"""Conveyor tracking: where a candidate is at a given belt travel, and when a robot can
meet it.

A candidate is valid as of its stamp, at belt travel ``p_d``: its world position then is
``(x_d, y, z)``. At belt travel ``p`` it is at ``x_d + (p - p_d)`` (the belt moves +x).
:func:`plan_pick` solves for the intercept, counting the latency, the move from home,
the descent, and the grip; a pick is accepted only if the object is still inside the
robot's reach window when the grip ends (the grip-time margin).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.kinematics import DeltaGeometry, move_time, vec3


@dataclass(frozen=True)
class BeltState:
    """Belt travel ``position`` (m) at time ``stamp`` (s), moving at ``speed`` (m/s)."""

    position: float
    speed: float
    stamp: float

    def at(self, t: float) -> float:
        return self.position + self.speed * (t - self.stamp)

    def time_at(self, position: float) -> float | None:
        """When the belt reaches ``position``; None if it never will at this speed."""
        if position <= self.position:
            return self.stamp if self.speed >= 0 else None
        if self.speed <= 0:
            return None
        return self.stamp + (position - self.position) / self.speed


@dataclass(frozen=True)
class Target:
    """A pick candidate as the bridge keeps it.

    Attributes:
        pick_id: unique id from grasp_selector.
        x, y, z: world position, m, valid at belt travel ``belt_position``.
        belt_position: m; NaN off a belt (the target does not move).
        class_id, bin: its class and destination bin (0: not sorted).
        score: ranking value (score x class priority).
    """

    pick_id: int
    x: float
    y: float
    z: float
    belt_position: float
    class_id: int
    bin: int
    score: float = 1.0

    @property
    def on_belt(self) -> bool:
        return self.belt_position == self.belt_position  # not NaN

    def x_at(self, belt_travel: float) -> float:
        return self.x + (belt_travel - self.belt_position) if self.on_belt else self.x

    def point_at(self, belt_travel: float) -> np.ndarray:
        return np.array([self.x_at(belt_travel), self.y, self.z])


@dataclass(frozen=True)
class Plan:
    """A feasible pick. Times are on the planner's clock (s); ``point`` is the world
    position where the grip ends."""

    robot: int
    pick_id: int
    t_start: float
    t_arrive: float
    t_grip: float
    t_done: float
    point: tuple[float, float, float]


# reasons a plan is impossible
NOT_YET = "not_yet"  # upstream of the window and the belt is not bringing it (stopped)
OUT_OF_WINDOW = "out_of_window"
WORKSPACE = "workspace"


def plan_pick(robot: RobotSpec, speeds: Speeds, target: Target, belt: BeltState, t_free: float,
              now: float, geometry: DeltaGeometry | None = None, slack: float = 0.0) -> Plan | str:
    """Plan ``robot`` picking ``target``, the robot being free from ``t_free``.

    ``slack`` (s): the grip must also fit if it ends this much later (the bridge plans
    with the controller's control-loop period, so that a controller starting a few ms
    later than planned still meets the object).

    Returns:
        a :class:`Plan`, or a reason string: ``out_of_window`` (the object leaves the
        window, less the grip margin, before the robot can grip it), ``workspace`` (the
        pick point lies outside the workspace box or the delta's reach), ``not_yet``
        (the object is upstream of the window and the belt is stopped).
    """
    t_ready = max(t_free, now + speeds.latency)
    home = robot.home_world
    w0, w1 = robot.window
    dz = move_time(speeds.approach_height, speeds.max_speed, speeds.max_accel)

    def approach(t: float) -> np.ndarray:
        p = target.point_at(belt.at(t))
        p[2] += speeds.approach_height
        return p

    t_arrive = t_ready + move_time(float(np.linalg.norm(approach(t_ready) - home)), speeds.max_speed, speeds.max_accel)
    for _ in range(8):  # fixed point: the belt is much slower than the tool
        t_next = t_ready + move_time(float(np.linalg.norm(approach(t_arrive) - home)), speeds.max_speed,
                                     speeds.max_accel)
        if abs(t_next - t_arrive) < 1e-6:
            break
        t_arrive = t_next
    if target.on_belt and target.x_at(belt.at(t_arrive)) < w0:
        t_enter = belt.time_at(target.belt_position + (w0 - target.x))
        if t_enter is None:
            return NOT_YET
        t_arrive = max(t_arrive, t_enter)
    t_grip = t_arrive + dz + speeds.grip_time
    grip = target.point_at(belt.at(t_grip))
    # 1 µm slack: stamps are epoch seconds (~1e9 s), so belt positions carry ~1e-7 m of rounding
    late = target.x_at(belt.at(t_grip + slack))
    if late > w1 + 1e-6 or target.x_at(belt.at(t_arrive)) < w0 - 1e-6:
        return OUT_OF_WINDOW
    ws = robot.workspace_world
    for p in (grip, approach(t_arrive), target.point_at(belt.at(t_arrive))):
        if not ws.contains(p, tol=1e-6):
            return WORKSPACE
        if geometry is not None and not geometry.reachable(robot.to_base(p)):
            return WORKSPACE
    t_start = t_arrive - move_time(float(np.linalg.norm(approach(t_arrive) - home)), speeds.max_speed,
                                   speeds.max_accel)
    t_done = t_grip + dz + speeds.place_time
    return Plan(robot.index, target.pick_id, max(t_start, t_ready), t_arrive, t_grip, t_done,
                vec3(grip))
