"""Scheduling picks over several robots along one belt.

Upstream-first greedy with a value priority by class: at each step, pending targets are
taken by decreasing value (class priority x score), then most-downstream first (the most
urgent); each goes to the first robot upstream that sorts its bin, has room in its queue
(``max_in_flight``), and can intercept it after the picks already planned for it (its
cycle time). A target that no robot can take any more is dropped with its reason:

    * ``class_not_sorted``: no robot sorts its bin (status 4, skipped);
    * ``workspace``: outside every robot's workspace (status 3, rejected);
    * ``out_of_window``: even an idle robot could not have met it in its window;
    * ``capacity``: a robot could have met it, but all were busy (both status 1, missed).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.kinematics import DeltaGeometry
from msseg_ros.core.robots.tracking import (
    NOT_YET,
    OUT_OF_WINDOW,
    WORKSPACE,
    BeltState,
    Plan,
    Target,
    plan_pick,
)

CLASS_NOT_SORTED = "class_not_sorted"
CAPACITY = "capacity"


@dataclass
class RobotLane:
    """The scheduler's view of one robot."""

    robot: RobotSpec
    free_at: float = float("-inf")
    queued: int = 0  # assigned and not finished
    available: bool = True  # connected and not in error
    picks: int = 0


@dataclass
class _Pending:
    target: Target
    value: float
    reachable_if_idle: bool = False
    checked: bool = False
    reasons: set[Any] = field(default_factory=set)


class Scheduler:
    """Args:
        robots: the robots (any order; sorted upstream first).
        speeds: motion timing.
        max_in_flight: picks a robot may have queued (assigned, not finished).
        class_values: class_id -> value weight (default 1).
        geometry: delta geometry for reach checks (None: workspace box only).
        slack: timing margin of every plan, s (see ``plan_pick``).
    """

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, max_in_flight: int = 4,
                 class_values: dict[int, float] | None = None, geometry: DeltaGeometry | None = None,
                 slack: float = 0.03) -> None:
        self.lanes = [RobotLane(r) for r in sorted(robots, key=lambda r: r.window[0])]
        self.speeds = speeds
        self.max_in_flight = max_in_flight
        self.class_values = class_values or {}
        self.geometry = geometry
        self.slack = slack
        self.pending: dict[int, _Pending] = {}
        self.unpicked: collections.Counter[Any] = collections.Counter()

    def lane(self, robot_index: int) -> RobotLane:
        for lane in self.lanes:
            if lane.robot.index == robot_index:
                return lane
        raise KeyError(robot_index)

    def add(self, target: Target) -> str | None:
        """Queue a target; returns a reason if it is refused at once
        (``class_not_sorted`` or ``workspace``)."""
        lanes = [ln for ln in self.lanes if target.bin and ln.robot.sorts(target.bin)]
        if not lanes:
            self.unpicked[CLASS_NOT_SORTED] += 1
            return CLASS_NOT_SORTED
        if not any(self._in_lateral_reach(ln.robot, target) for ln in lanes):
            self.unpicked[WORKSPACE] += 1
            return WORKSPACE
        self.pending[target.pick_id] = _Pending(target, self.class_values.get(target.class_id, 1.0) * target.score)
        return None

    def _in_lateral_reach(self, robot: RobotSpec, t: Target) -> bool:
        ws = robot.workspace_world
        return ws.lo[1] <= t.y <= ws.hi[1] and ws.lo[2] <= t.z <= ws.hi[2]

    def step(self, belt: BeltState, now: float) -> tuple[list[Plan], list[tuple[Target, str]]]:
        """Assign what can be assigned now; drop what can no longer be picked.

        Returns:
            (plans to send now, [(target, reason) dropped]).
        """
        plans: list[Plan] = []
        dropped: list[tuple[Target, str]] = []
        travel = belt.at(now)
        order = sorted(self.pending.values(), key=lambda p: (-p.value, -p.target.x_at(travel)))
        # the object must still be in a window when a grip could end
        margin = max(belt.speed, 0.0) * (self.speeds.latency + self.speeds.grip_time)
        for item in order:
            t = item.target
            x_now = t.x_at(travel)
            lanes = [ln for ln in self.lanes if ln.robot.sorts(t.bin) and x_now + margin <= ln.robot.window[1]]
            if not item.checked:  # once: could an idle robot have met it when it arrived?
                item.checked = True
                for lane in lanes:
                    idle = plan_pick(lane.robot, self.speeds, t, belt, now, now, self.geometry)
                    if isinstance(idle, Plan) or idle == NOT_YET:
                        item.reachable_if_idle = True
                        break
                    item.reasons.add(idle)
            for lane in lanes:
                if not lane.available or lane.queued >= self.max_in_flight:
                    continue
                plan = plan_pick(lane.robot, self.speeds, t, belt, lane.free_at, now, self.geometry, self.slack)
                if isinstance(plan, Plan):
                    lane.free_at = plan.t_done
                    lane.queued += 1
                    plans.append(plan)
                    del self.pending[t.pick_id]
                    break
                if plan == WORKSPACE:
                    item.reasons.add(plan)
            else:
                if not lanes or item.reasons == {WORKSPACE}:
                    if item.reachable_if_idle:
                        reason = CAPACITY
                    elif item.reasons == {WORKSPACE}:
                        reason = WORKSPACE
                    else:
                        reason = OUT_OF_WINDOW
                    self.unpicked[reason] += 1
                    dropped.append((t, reason))
                    del self.pending[t.pick_id]
        return plans, dropped

    def finished(self, robot_index: int) -> None:
        """A pick of this robot ended (any outcome)."""
        lane = self.lane(robot_index)
        lane.queued = max(0, lane.queued - 1)
        if lane.queued == 0:
            lane.free_at = float("-inf")

    def set_available(self, robot_index: int, available: bool) -> None:
        self.lane(robot_index).available = available
