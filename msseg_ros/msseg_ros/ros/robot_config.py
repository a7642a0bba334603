"""Core robot dataclasses built from node parameters (robot_bridge and cell_sim).

The schema (core/params/nodes.py: ROBOTS, ROBOT_BRIDGE, SORTING) is the one declaration of
these settings; this module is where the ROS side turns a node's parameter view into the
typed values core takes.
"""
from __future__ import annotations

import math

from msseg_ros.core.grasping.select import parse_bins, parse_weights
from msseg_ros.core.params import ParamView
from msseg_ros.core.robots.backends import BridgeSettings
from msseg_ros.core.robots.cell import Speeds, robots_from_lists
from msseg_ros.core.robots.config import CellRobots
from msseg_ros.core.robots.errors import RobotConfigError
from msseg_ros.core.robots.kinematics import DeltaGeometry, vec3


def cell_robots(p: ParamView, cell: str) -> CellRobots:
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
    places = {i // 3 + 1: vec3(flat[i:i + 3]) for i in range(0, len(flat) - 2, 3)}
    return CellRobots(robots, speeds, geometry, class_bins, values, classes, places, p.max_in_flight)


def bridge_settings(p: ParamView) -> BridgeSettings:
    """The robot_bridge's settings that its backend reads."""
    return BridgeSettings(beltless=p.cell != "sorting_line", encoder_timeout=p.encoder_timeout,
                          modbus_timeout=p.modbus.timeout, modbus_watchdog=p.modbus.watchdog,
                          fanuc_override=p.fanuc.override, suction_port=p.fanuc.suction_port,
                          vacuum_port=p.fanuc.vacuum_port, state_dir=p.state_dir,
                          min_pick_separation=p.min_pick_separation)
