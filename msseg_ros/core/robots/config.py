"""Robots, speeds, geometry and class -> bin from the ``robots.*`` / ``speeds.*`` /
``delta.*`` / ``fanuc.*`` / ``classes*`` parameters (core/params/nodes.py: ROBOTS, SORTING),
shared by robot_bridge and cell_sim."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from msseg_ros.core.grasping.select import parse_bins, parse_weights
from msseg_ros.core.robots.cell import RobotSpec, Speeds, robots_from_lists
from msseg_ros.core.robots.errors import RobotConfigError
from msseg_ros.core.robots.kinematics import DeltaGeometry


@dataclass(frozen=True)
class CellRobots:
    robots: list[RobotSpec]
    speeds: Speeds
    geometry: DeltaGeometry | None
    class_bins: dict[int, int]  # class_id -> bin (absent: not sorted)
    class_values: dict[int, float]
    classes: list[str]
    place_positions: dict[int, tuple[float, float, float]]
    max_in_flight: int

    def bin_of(self, class_id: int) -> int:
        return self.class_bins.get(int(class_id), 0)


def cell_robots(p: Any, cell: str) -> CellRobots:
    """From a node's parameter view; ``cell`` picks delta geometry checks (sorting line)."""
    r, s = p.robots, p.speeds
    geometry = None
    if cell == "sorting_line":
        lo, hi = p.delta.joint_limits_deg
        geometry = DeltaGeometry(p.delta.base_radius, p.delta.effector_radius, p.delta.upper_arm, p.delta.forearm,
                                 math.radians(lo), math.radians(hi))
    robots = robots_from_lists(names=r.names, base_x=r.base_x, base_y=r.base_y, base_z=r.base_z,
                               window_start=r.window_start, window_end=r.window_end, hosts=r.hosts, ports=r.ports,
                               bins=r.bins, workspace_min=r.workspace_min, workspace_max=r.workspace_max,
                               geometry=geometry)
    speeds = Speeds(s.max_speed, s.max_accel, s.approach_height, s.grip_time, s.place_time, s.latency)
    classes = list(p.classes)
    bins = parse_bins(p.classes_to_bins)
    unknown = set(bins) - set(classes)
    if unknown:
        raise RobotConfigError(f"classes_to_bins names unknown classes {sorted(unknown)}; classes: {classes}")
    class_bins = {classes.index(c) + 1: b for c, b in bins.items()}
    values = {classes.index(c) + 1: w for c, w in parse_weights(p.class_priority).items() if c in classes}
    flat = list(p.fanuc.place_positions)
    places = {i // 3 + 1: tuple(flat[i:i + 3]) for i in range(0, len(flat) - 2, 3)}
    return CellRobots(robots, speeds, geometry, class_bins, values, classes, places, p.max_in_flight)
