"""The robots of a cell: where they stand, what they reach, how fast they move.

All positions are in ``world`` (CONTRACT: x along the belt travel, z up) unless a name
says ``base``. Robot base frames are parallel to ``world`` (the deltas of a line hang
aligned with the belt; the FANUC user frame is the world frame shifted to its base), so
world -> base is a translation.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from msseg_ros.core.params.nodes import ROBOTS as _SCHEMA
from msseg_ros.core.params.schema import ParamError
from msseg_ros.core.robots.errors import RobotConfigError
from msseg_ros.core.robots.kinematics import Box, DeltaGeometry, PointLike, vec3


@dataclass(frozen=True)
class Speeds:
    """Motion timing shared by the planner (bridge) and the emulated controllers.

    Defaults and bounds are the ``speeds.*`` parameters' (core/params/nodes.py).

    Attributes:
        max_speed: m/s of the tool along a straight move.
        max_accel: m/s².
        approach_height: the tool comes down from this far above the pick point, m.
        grip_time: dwell with the gripper closed (or suction building up), s.
        place_time: from lifted to back at home ready for the next pick (carry to the
            bin or chute, release, return), s.
        latency: from the bridge's decision to the controller starting the move, s.
    """

    max_speed: float = _SCHEMA.default("speeds.max_speed")
    max_accel: float = _SCHEMA.default("speeds.max_accel")
    approach_height: float = _SCHEMA.default("speeds.approach_height")
    grip_time: float = _SCHEMA.default("speeds.grip_time")
    place_time: float = _SCHEMA.default("speeds.place_time")
    latency: float = _SCHEMA.default("speeds.latency")

    def __post_init__(self) -> None:
        for name in ("max_speed", "max_accel", "approach_height", "grip_time", "place_time", "latency"):
            try:
                _SCHEMA.check(f"speeds.{name}", getattr(self, name))
            except ParamError as exc:
                raise RobotConfigError(str(exc)) from None


@dataclass(frozen=True)
class RobotSpec:
    """One robot.

    Attributes:
        index: 1-based robot number (``robot`` in robot/pick_results; 0 = none).
        name: its name (logs, markers, diagnostics).
        base: base frame origin in world, m.
        window: (start, end) world x where it may pick along the belt, m; for a robot
            without a belt, the workspace's x range.
        workspace: the box its tool may go to, in its base frame, m.
        host, port: its controller's address.
        bins: the bins it can drop into; empty: any.
        home: tool position between picks, base frame (default: top centre of the workspace).
    """

    index: int
    name: str
    base: tuple[float, float, float]
    window: tuple[float, float]
    workspace: Box
    host: str = "127.0.0.1"
    port: int = 502
    bins: frozenset[int] = field(default_factory=frozenset)
    home: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        ws = self.workspace_world
        w0, w1 = self.window
        if not w0 < w1:
            raise RobotConfigError(f"robot {self.name}: window start {w0} must be < end {w1}")
        if w0 < ws.lo[0] - 1e-9 or w1 > ws.hi[0] + 1e-9:
            raise RobotConfigError(
                f"robot {self.name}: window [{w0}, {w1}] m leaves its workspace x range "
                f"[{ws.lo[0]:.3f}, {ws.hi[0]:.3f}] m")
        home = self.home
        if home is None:
            lo, hi = self.workspace.lo, self.workspace.hi
            home = ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2])
            object.__setattr__(self, "home", home)
        if not self.workspace.contains(home):
            raise RobotConfigError(f"robot {self.name}: home {home} is outside its workspace")

    @property
    def workspace_world(self) -> Box:
        return self.workspace.shifted(self.base)

    @property
    def home_world(self) -> np.ndarray:
        assert self.home is not None  # set by __post_init__
        return np.add(self.home, self.base)

    def to_base(self, p_world: PointLike) -> np.ndarray:
        return np.subtract(p_world, self.base)

    def to_world(self, p_base: PointLike) -> np.ndarray:
        return np.add(p_base, self.base)

    def sorts(self, bin_: int) -> bool:
        return not self.bins or bin_ in self.bins


def _bins(entry: str, name: str) -> frozenset[int]:
    entry = entry.strip()
    if not entry or entry == "*":
        return frozenset()
    try:
        return frozenset(int(b) for b in entry.replace(",", " ").split())
    except ValueError:
        raise RobotConfigError(f"robot {name}: bins {entry!r} must be bin numbers separated by spaces") from None


def robots_from_lists(*, names: Sequence[str], base_x: Sequence[float], base_y: Sequence[float],
                      base_z: Sequence[float], window_start: Sequence[float], window_end: Sequence[float],
                      hosts: Sequence[str], ports: Sequence[int], bins: Sequence[str],
                      workspace_min: Sequence[float], workspace_max: Sequence[float], geometry: DeltaGeometry | None = None) -> list[RobotSpec]:
    """Robots from the parallel per-robot lists of the ``robots.*`` parameters.

    Raises:
        RobotConfigError: lists of different lengths, a window outside the workspace,
            a workspace the delta cannot reach (when ``geometry`` is given), duplicate ports.
    """
    n = len(names)
    lists = {"base_x": base_x, "base_y": base_y, "base_z": base_z, "window_start": window_start,
             "window_end": window_end, "hosts": hosts, "ports": ports, "bins": bins}
    for key, values in lists.items():
        if len(values) != n:
            raise RobotConfigError(f"robots.{key} has {len(values)} entries for {n} robots "
                                   f"(robots.names: {list(names)}); give one per robot")
    if n == 0:
        raise RobotConfigError("robots.names is empty: configure at least one robot")
    box = Box(vec3(workspace_min), vec3(workspace_max))
    if geometry is not None:
        geometry.check_box(box)
    out = []
    for i in range(n):
        out.append(RobotSpec(index=i + 1, name=names[i], base=(base_x[i], base_y[i], base_z[i]),
                             window=(window_start[i], window_end[i]), workspace=box, host=hosts[i],
                             port=int(ports[i]), bins=_bins(bins[i], names[i])))
    addresses = [(r.host, r.port) for r in out]
    if len(set(addresses)) != n:
        raise RobotConfigError(f"robots share a controller address: {addresses}")
    return sorted(out, key=lambda r: r.window[0])


def line_robots(count: int, *, first_x: float = 1.0, spacing: float = 0.7, base_z: float = 1.0,
                window: float = 0.5, geometry: DeltaGeometry | None = None, port0: int = 15020,
                bins_per_robot: list[str] | None = None) -> list[RobotSpec]:
    """``count`` identical deltas spaced along the belt (benchmarks, tests)."""
    half = window / 2
    ws_half = max(0.3, half)
    return robots_from_lists(
        names=[f"delta_{i + 1}" for i in range(count)],
        base_x=[first_x + i * spacing for i in range(count)], base_y=[0.0] * count, base_z=[base_z] * count,
        window_start=[first_x + i * spacing - half for i in range(count)],
        window_end=[first_x + i * spacing + half for i in range(count)],
        hosts=["127.0.0.1"] * count, ports=[port0 + i for i in range(count)],
        bins=bins_per_robot or [""] * count,
        workspace_min=[-ws_half, -0.3, -base_z - 0.05], workspace_max=[ws_half, 0.3, -base_z + 0.3],
        geometry=geometry)

