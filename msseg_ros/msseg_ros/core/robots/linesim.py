"""A time-stepped simulation of a picking line without ROS or sockets: the bridge's
scheduler feeding emulated delta controllers on a simulated clock. Used by the Multipick
benchmark (benchmarks/multipick.py) and its tests.

:func:`upper_bound` computes, from the same arrival sequence, a bound no schedule can
beat: each robot is cut into slots of its shortest possible cycle (at most one pick can
start per slot), an object may use a slot of a robot if a pick could start in it while
the object is reachable, and a maximum bipartite matching (scipy) counts the picks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.delta_controller import DeltaCommand, DeltaController
from msseg_ros.core.robots.kinematics import DeltaGeometry, move_time
from msseg_ros.core.robots.scheduler import Scheduler
from msseg_ros.core.robots.tracking import BeltState, Target
from msseg_ros.core.tables import PickStatus

_NAMES = {PickStatus.DONE: "done", PickStatus.MISSED: "missed", PickStatus.FAILED: "failed",
          PickStatus.REJECTED: "rejected", PickStatus.SKIPPED: "skipped"}


@dataclass(frozen=True)
class Arrival:
    """An object seen at the scanner (world x = ``x``) at belt travel ``belt``; its
    candidate reaches the bridge ``delay`` s later."""

    pick_id: int
    belt: float
    x: float
    y: float
    delay: float


def arrivals(rate: float, duration: float, belt_speed: float, belt_width: float, delay: float,
             seed: int = 0) -> list[Arrival]:
    """Poisson arrivals of ``rate`` objects/s over ``duration`` s, uniform across the belt
    (5 cm from the edges)."""
    rng = np.random.default_rng(seed)
    out: list[Arrival] = []
    t, i = 0.0, 1
    while True:
        t += rng.exponential(1.0 / rate)
        if t >= duration:
            return out
        y = float(rng.uniform(-belt_width / 2 + 0.05, belt_width / 2 - 0.05))
        out.append(Arrival(i, t * belt_speed, 0.0, y, delay))
        i += 1


@dataclass
class LineResult:
    objects: int
    picked: int
    by_robot: dict[int, int]
    unpicked: dict[str, int]  # dropped by the scheduler, by reason
    outcomes: dict[str, int]  # controller outcomes of the picks sent
    duration: float

    @property
    def fraction(self) -> float:
        return self.picked / self.objects if self.objects else float("nan")


def simulate(robots: list[RobotSpec], speeds: Speeds, objects: list[Arrival], belt_speed: float, *,
             max_in_flight: int = 2, geometry: DeltaGeometry | None = None, step: float = 0.005,
             schedule_every: int = 4, tail: float = 20.0) -> LineResult:
    """Run the line until every object has left the last window."""
    belt = lambda t: (belt_speed * t, belt_speed)  # noqa: E731
    ctrls = {r.index: DeltaController(r, speeds, belt, queue_size=max_in_flight, geometry=geometry) for r in robots}
    sched = Scheduler(robots, speeds, max_in_flight=max_in_flight, geometry=geometry)
    by_time = sorted(objects, key=lambda a: a.belt / belt_speed + a.delay)
    seen: dict[int, int] = {}
    done: dict[int, int] = {r.index: 0 for r in robots}
    end = (max(a.belt for a in objects) / belt_speed + tail) if objects else 0.0
    outcomes: dict[str, int] = {}
    k, t, n = 0, 0.0, 0
    by_id = {a.pick_id: a for a in objects}
    while t <= end:
        n += 1
        while k < len(by_time) and by_time[k].belt / belt_speed + by_time[k].delay <= t:
            a = by_time[k]
            sched.add(Target(a.pick_id, a.x, a.y, 0.0, a.belt, 1, 1))
            k += 1
        plans = sched.step(BeltState(belt_speed * t, belt_speed, t), t)[0] if n % schedule_every == 0 else []
        for p in plans:  # the bridge ticks every schedule_every steps (50 Hz by default)
            r = sched.lane(p.robot).robot
            a = by_id[p.pick_id]
            ctrls[p.robot].submit(DeltaCommand(a.pick_id, a.x - r.base[0], a.y - r.base[1], -r.base[2], a.belt, 1), t)
        for idx, c in ctrls.items():
            c.advance(t)
            while c.results:
                pid, st = c.results.popleft()
                if pid in seen:
                    continue
                seen[pid] = st
                outcomes[_NAMES[st]] = outcomes.get(_NAMES[st], 0) + 1
                sched.finished(idx)
                if st == PickStatus.DONE:
                    done[idx] += 1
        t += step
    picked = sum(done.values())
    return LineResult(len(objects), picked, done, dict(sched.unpicked), outcomes, end)


def upper_bound(robots: list[RobotSpec], speeds: Speeds, objects: list[Arrival], belt_speed: float) -> int:
    """Picks no schedule can exceed on this arrival sequence (see the module docstring)."""
    if not objects:
        return 0
    dz = move_time(speeds.approach_height, speeds.max_speed, speeds.max_accel)
    cols: list[tuple[int, int]] = []  # (robot index, slot)
    col_of: dict[tuple[int, int], int] = {}
    rows, cols_idx = [], []
    for r in robots:
        home_z = r.home_world[2]
        # shortest busy time of one pick: straight down from home, grip, lift, place
        c_min = move_time(max(0.0, home_z - speeds.approach_height), speeds.max_speed, speeds.max_accel) \
            + 2 * dz + speeds.grip_time + speeds.place_time
        # longest move from home to any approach point of the window
        ws = r.workspace_world
        far = max(np.linalg.norm(np.subtract(c, r.home_world)) for c in ws.corners())
        t_max = move_time(float(far), speeds.max_speed, speeds.max_accel)
        w0, w1 = r.window
        ws_y = (ws.lo[1], ws.hi[1])
        for i, a in enumerate(objects):
            if not ws_y[0] <= a.y <= ws_y[1]:
                continue
            t_seen = a.belt / belt_speed + a.delay + speeds.latency
            t_enter = (a.belt + w0 - a.x) / belt_speed
            t_exit = (a.belt + w1 - a.x) / belt_speed
            lo = max(t_seen, t_enter - t_max)
            hi = t_exit - dz - speeds.grip_time
            if hi < lo:
                continue
            for s in range(math.floor(lo / c_min), math.floor(hi / c_min) + 1):
                key = (r.index, s)
                if key not in col_of:
                    col_of[key] = len(cols)
                    cols.append(key)
                rows.append(i)
                cols_idx.append(col_of[key])
    if not rows:
        return 0
    m = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols_idx)), shape=(len(objects), len(cols)))
    match = maximum_bipartite_matching(m, perm_type="column")
    return int(np.count_nonzero(match >= 0))
