"""An emulated delta-robot controller with conveyor tracking.

It stands in for the real controller in sim mode and in tests, behind the same Modbus
register map (:mod:`msseg_ros.core.robots.modbus_map`). It keeps a queue of commands;
when free, it plans the head command against its own encoder (the belt callable), times
the move from distance, speed and acceleration (trapezoidal), refuses poses outside its
workspace, grips where the object actually is when the grip ends, and reports each pick
as done, missed (the object left the window) or rejected (workspace).

Time is whatever ``now`` the caller passes (``time.monotonic`` in a live emulation, a
simulated clock in benchmarks); :meth:`DeltaController.advance` is the control loop.
"""
from __future__ import annotations

import collections
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.kinematics import DeltaGeometry
from msseg_ros.core.robots.tracking import (
    NOT_YET,
    OUT_OF_WINDOW,
    BeltState,
    Plan,
    Target,
    plan_pick,
)
from msseg_ros.core.tables import PickStatus

#: (position m, speed m/s) of the belt at time t
BeltReader = Callable[[float], tuple[float, float]]
#: on_grip(robot_index, pick_id, world point (x, y, z), belt travel at the grip, bin)
GripHook = Callable[[int, int, tuple[float, float, float], float, int], None]


class ControllerState(enum.IntEnum):
    IDLE = 0
    BUSY = 1
    ERROR = 2


class CommandResult(enum.IntEnum):
    """Answer to a command (status register ``command_result``)."""

    ACCEPTED = 0
    QUEUE_FULL = 1
    DUPLICATE = 2  # this pick_id was received before
    WORKSPACE = 3  # y / z outside the workspace box
    IN_ERROR = 4  # the controller is in error; reset it first
    BAD_VALUE = 5  # NaN or a bin of 0


class ErrorCode(enum.IntEnum):
    NONE = 0
    SERVO_FAULT = 10  # injected fault: drives off, picks in progress fail


@dataclass(frozen=True)
class DeltaCommand:
    """A pick command. ``x, y, z``: base frame, m, valid at belt travel ``belt_position``."""

    pick_id: int
    x: float
    y: float
    z: float
    belt_position: float
    bin: int


@dataclass
class _Job:
    cmd: DeltaCommand
    target: Target
    plan: Plan
    gripped: bool = False


class DeltaController:
    """Args:
        robot: the robot it drives (base, window, workspace).
        speeds: motion timing.
        belt: the encoder.
        queue_size: commands it holds (the rest is refused with QUEUE_FULL).
        geometry: delta dimensions (reach checks).
        on_grip: called when a grip closes on the belt (the sim scores it).
    """

    RESULTS = 8  # size of the results ring (register map)

    def __init__(self, robot: RobotSpec, speeds: Speeds, belt: BeltReader, *, queue_size: int = 4,
                 geometry: DeltaGeometry | None = None, on_grip: GripHook | None = None) -> None:
        self.robot, self.speeds, self.belt = robot, speeds, belt
        self.queue_size = queue_size
        self.geometry = geometry
        self.on_grip = on_grip
        self.lock = threading.RLock()
        self.queue: collections.deque[DeltaCommand] = collections.deque()
        self.job: _Job | None = None
        self.free_at = float("-inf")
        self.error = ErrorCode.NONE
        self.heartbeat = 0
        self.heartbeat_frozen = False
        self.received: collections.Counter[Any] = collections.Counter()  # pick_id -> times received
        self.results: collections.deque[tuple[int, int]] = collections.deque(maxlen=self.RESULTS)
        self.result_count = 0
        self.last_accepted = 0
        self.last_done = 0
        self.done = 0
        self.grips: list[tuple[int, tuple[float, float, float]]] = []

    # ---- commands ----------------------------------------------------------------
    def submit(self, cmd: DeltaCommand, now: float) -> CommandResult:
        with self.lock:
            self.received[cmd.pick_id] += 1
            if self.received[cmd.pick_id] > 1:
                return CommandResult.DUPLICATE
            if self.error:
                self._result(cmd.pick_id, PickStatus.FAILED)
                return CommandResult.IN_ERROR
            values = (cmd.x, cmd.y, cmd.z, cmd.belt_position)
            if any(v != v for v in values) or cmd.bin == 0:
                self._result(cmd.pick_id, PickStatus.REJECTED)
                return CommandResult.BAD_VALUE
            ws = self.robot.workspace
            if not (ws.lo[1] <= cmd.y <= ws.hi[1] and ws.lo[2] <= cmd.z <= ws.hi[2]):
                self._result(cmd.pick_id, PickStatus.REJECTED)
                return CommandResult.WORKSPACE
            if len(self.queue) >= self.queue_size:
                return CommandResult.QUEUE_FULL
            self.queue.append(cmd)
            self.last_accepted = cmd.pick_id
            self.advance(now)
            return CommandResult.ACCEPTED

    def inject_fault(self, code: ErrorCode = ErrorCode.SERVO_FAULT) -> None:
        """Drives off: the pick in progress and the queued ones fail."""
        with self.lock:
            self.error = code
            if self.job is not None:
                self._result(self.job.cmd.pick_id, PickStatus.FAILED)
                self.job = None
            while self.queue:
                self._result(self.queue.popleft().pick_id, PickStatus.FAILED)

    def reset(self) -> None:
        with self.lock:
            self.error = ErrorCode.NONE

    # ---- control loop ------------------------------------------------------------
    def belt_state(self, now: float) -> BeltState:
        p, v = self.belt(now)
        return BeltState(p, v, now)

    def advance(self, now: float) -> None:
        """Run the controller up to ``now``."""
        with self.lock:
            if not self.heartbeat_frozen:
                self.heartbeat = (self.heartbeat + 1) & 0xFFFF
            if self.error:
                return
            while True:
                if self.job is not None:
                    if not self._progress(self.job, now):
                        return
                    self.job = None
                if not self.queue:
                    return
                if not self._start(self.queue[0], now):
                    return

    def _start(self, cmd: DeltaCommand, now: float) -> bool:
        belt = self.belt_state(now)
        base = self.robot.base
        target = Target(cmd.pick_id, cmd.x + base[0], cmd.y + base[1], cmd.z + base[2], cmd.belt_position, 0, cmd.bin)
        plan = plan_pick(self.robot, self.speeds, target, belt, max(self.free_at, now - self.speeds.latency),
                         now - self.speeds.latency, self.geometry)
        if plan == NOT_YET:
            return False  # belt stopped upstream of the window: wait
        self.queue.popleft()
        if not isinstance(plan, Plan):
            self._result(cmd.pick_id, PickStatus.MISSED if plan == OUT_OF_WINDOW else PickStatus.REJECTED)
            return True
        self.job = _Job(cmd, target, plan)
        return True

    def _progress(self, job: _Job, now: float) -> bool:
        """True when the job has ended."""
        if not job.gripped and now >= job.plan.t_grip:
            p, v = self.belt(now)
            travel = p - v * (now - job.plan.t_grip)  # belt travel when the grip closed
            point = job.target.point_at(travel)
            w0, w1 = self.robot.window
            if not (w0 - 0.005 <= point[0] <= w1 + 0.005):  # the belt did not bring it where planned
                self._result(job.cmd.pick_id, PickStatus.MISSED)
                self.free_at = now
                return True
            job.gripped = True
            xyz = (float(point[0]), float(point[1]), float(point[2]))
            self.grips.append((job.cmd.pick_id, xyz))
            if self.on_grip is not None:
                self.on_grip(self.robot.index, job.cmd.pick_id, xyz, travel, job.cmd.bin)
        if job.gripped and now >= job.plan.t_done:
            self._result(job.cmd.pick_id, PickStatus.DONE)
            self.done += 1
            self.last_done = job.cmd.pick_id
            self.free_at = job.plan.t_done
            return True
        return False

    def _result(self, pick_id: int, status: int) -> None:
        self.results.append((pick_id, int(status)))
        self.result_count = (self.result_count + 1) & 0xFFFF

    # ---- status ------------------------------------------------------------------
    @property
    def state(self) -> ControllerState:
        if self.error:
            return ControllerState.ERROR
        return ControllerState.BUSY if (self.job or self.queue) else ControllerState.IDLE

    def queued_ids(self) -> list[int]:
        with self.lock:
            ids = [self.job.cmd.pick_id] if self.job else []
            return ids + [c.pick_id for c in self.queue]


class ControllerLoop:
    """Runs ``advance`` of one or more controllers every ``period`` s on a thread."""

    def __init__(self, controllers: list[DeltaController], clock: Callable[[], float], period: float = 0.005) -> None:
        self.controllers, self.clock, self.period = controllers, clock, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delta-controllers", daemon=True)

    def start(self) -> ControllerLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            now = self.clock()
            for c in self.controllers:
                c.advance(now)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
