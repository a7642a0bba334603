"""Robot backends, chosen by ``robot.type``: ``delta`` (Modbus TCP deltas along a belt),
``fanuc`` (one arm over a bin, RMI) and ``dry_run`` (the plan only, no controller).

The contract is :class:`RobotBackend`. A backend takes targets (``submit``) and belt
states (``update_belt``), and on each ``tick`` returns the picks that finished, each
exactly once. It owns the :class:`~msseg_ros.core.robots.lifecycle.PickLedger`, so no
pick_id is ever sent twice, whatever the controllers do. ``status`` returns a frozen
:class:`~msseg_ros.core.robots.status.BackendStatus` snapshot, safe on any thread.

Each backend has its own typed options (:class:`LineOptions`, :class:`DeltaOptions`,
:class:`FanucOptions`) and builds them from the cell and the bridge's settings in
``from_cell``; :func:`create_backend` is the one factory a node calls. A new backend is
one class registered in :data:`ROBOT_BACKENDS`.
"""
from __future__ import annotations

import collections
import math
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from msseg_ros.core.params.nodes import ROBOT_BRIDGE as _BRIDGE
from msseg_ros.core.params.nodes import ROBOTS as _ROBOTS
from msseg_ros.core.registry import Registry
from msseg_ros.core.robots import modbus_map as mm
from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.config import CellRobots
from msseg_ros.core.robots.delta_controller import CommandResult, ControllerState, DeltaCommand
from msseg_ros.core.robots.errors import ConnectionLost, ControllerError
from msseg_ros.core.robots.kinematics import DeltaGeometry, PointLike, Vec3
from msseg_ros.core.robots.ledger_store import LedgerStore
from msseg_ros.core.robots.lifecycle import STATE_OF, PickLedger, PickRecord, PickState
from msseg_ros.core.robots.modbus import DeltaModbusClient
from msseg_ros.core.robots.rmi import RmiClient, retry_connect
from msseg_ros.core.robots.scheduler import CLASS_NOT_SORTED, Scheduler
from msseg_ros.core.robots.status import BackendStatus, LinkState, RobotStatus
from msseg_ros.core.robots.tabu import TabuSpots
from msseg_ros.core.robots.tracking import WORKSPACE, BeltState, Target


@dataclass(frozen=True)
class Finished:
    """One finished pick attempt: a row of robot/pick_results."""

    pick_id: int
    robot: int
    state: PickState
    reason: str
    point: tuple[float, float, float]
    class_id: int
    bin: int


class RobotBackend(Protocol):
    """What the robot_bridge node calls; times are its clock, s."""

    def update_belt(self, belt: BeltState) -> None:
        """The newest belt state (cells with a belt)."""

    def submit(self, targets: Sequence[Target], now: float) -> None:
        """New pick candidates (a pick_id seen before is ignored)."""

    def tick(self, now: float) -> list[Finished]:
        """Advance; the picks that finished since the last tick, each exactly once."""

    def status(self) -> BackendStatus:
        """A snapshot for diagnostics."""

    def in_flight(self) -> list[PickRecord]:
        """Picks assigned or sent and not finished (markers)."""

    def close(self) -> None:
        """Stop threads and close links."""


@dataclass(frozen=True)
class BridgeSettings:
    """The robot_bridge's settings that backends read (``robot_bridge`` parameters).

    Attributes:
        beltless: the cell has no belt (targets do not move; no encoder is expected).
        encoder_timeout: s without a fresh belt state before sending stops.
        modbus_timeout, modbus_watchdog: per-client Modbus timeout and heartbeat watchdog, s.
        fanuc_override: the FANUC speed override, %.
        suction_port, vacuum_port: the FANUC's DOUT / DIN numbers.
        state_dir: where the pick ledger persists (``pick_ledger.sqlite``); "": memory only.
        min_pick_separation: see :class:`LineOptions`, m.
    """

    beltless: bool = False
    encoder_timeout: float = _BRIDGE.default("encoder_timeout")
    modbus_timeout: float = _BRIDGE.default("modbus.timeout")
    modbus_watchdog: float = _BRIDGE.default("modbus.watchdog")
    fanuc_override: int = _ROBOTS.default("fanuc.override")
    suction_port: int = _ROBOTS.default("fanuc.suction_port")
    vacuum_port: int = _ROBOTS.default("fanuc.vacuum_port")
    state_dir: str = ""
    min_pick_separation: float = _BRIDGE.default("min_pick_separation")

    @property
    def ledger_path(self) -> str:
        return str(Path(self.state_dir) / LEDGER_FILE) if self.state_dir else ""


#: the pick ledger's file in a bridge's state folder
LEDGER_FILE = "pick_ledger.sqlite"

#: why a target on the belt spot of a target already taken is skipped
NEAR_ANOTHER_PICK = "near_another_pick"
#: the outcome of a pick left open by a previous process (it may or may not have happened)
LOST_IN_RESTART = "lost_in_restart"


@dataclass(frozen=True)
class LineOptions:
    """Robots along a belt (and the dry run).

    Attributes:
        max_in_flight: picks a robot may have queued.
        class_values: class id -> value, for the scheduler's choice between targets.
        geometry: delta geometry for reach checks (None: workspace boxes only).
        encoder_timeout: without a belt state newer than this (s), nothing new is sent
            (an encoder stall); pending targets wait, and are dropped once they have left
            every window.
        beltless: a cell without a belt (targets do not move; no encoder is expected).
        ledger_path: the persistent pick ledger (sqlite); "": memory only.
        min_pick_separation: a target whose spot on the belt is closer than this (m) to
            one already taken (queued, sent or done, also before a restart; not one that ended without its object: missed, refused, failed for a known reason) is skipped
            (``near_another_pick``): one object under two pick_ids is picked once; 0 or
            beltless: off.
    """

    max_in_flight: int = _ROBOTS.default("max_in_flight")
    class_values: Mapping[int, float] | None = None
    geometry: DeltaGeometry | None = None
    encoder_timeout: float = _BRIDGE.default("encoder_timeout")
    beltless: bool = False
    ledger_path: str = ""
    min_pick_separation: float = _BRIDGE.default("min_pick_separation")

    @classmethod
    def line_fields(cls, cell: CellRobots, settings: BridgeSettings) -> dict[str, Any]:
        return {"max_in_flight": cell.max_in_flight, "class_values": cell.class_values,
                "geometry": cell.geometry, "encoder_timeout": settings.encoder_timeout,
                "beltless": settings.beltless, "ledger_path": settings.ledger_path,
                "min_pick_separation": settings.min_pick_separation}


@dataclass(frozen=True)
class DeltaOptions(LineOptions):
    """Deltas over Modbus TCP. ``timeout`` and ``watchdog``: per-client Modbus timeout and
    heartbeat watchdog, s."""

    timeout: float = _BRIDGE.default("modbus.timeout")
    watchdog: float = _BRIDGE.default("modbus.watchdog")


@dataclass(frozen=True)
class FanucOptions:
    """One FANUC arm over RMI.

    Attributes:
        place_positions: bin -> world (x, y, z), m.
        override: controller speed override, %.
        suction_port, vacuum_port: DOUT / DIN numbers.
        max_in_flight: RMI instructions outstanding at once.
        connect_attempts: connection attempts before a pick fails as unreachable.
        ledger_path: the persistent pick ledger (sqlite); "": memory only.
    """

    place_positions: Mapping[int, Vec3] = field(default_factory=dict)
    override: int = _ROBOTS.default("fanuc.override")
    suction_port: int = _ROBOTS.default("fanuc.suction_port")
    vacuum_port: int = _ROBOTS.default("fanuc.vacuum_port")
    max_in_flight: int = 2  # RMI instructions outstanding; FANUC allows up to 8 (RMIT-028)
    connect_attempts: int = 5
    ledger_path: str = ""


class BackendBase:
    """What every backend shares: the ledger, the finished list, the done counts, and an
    error counter guarded by a lock (a worker thread may count while ``status`` reads)."""

    kind = ""

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, ledger_path: str = "") -> None:
        self.robots, self.speeds = robots, speeds
        self.ledger = PickLedger(store=LedgerStore(ledger_path) if ledger_path else None)
        self._reopened = self.ledger.restore()
        self._finished: list[Finished] = []
        self.picks_done: collections.Counter[int] = collections.Counter()  # robot -> done
        self._errors: collections.Counter[str] = collections.Counter()
        self._status_lock = threading.Lock()

    @classmethod
    def from_cell(cls, cell: CellRobots, settings: BridgeSettings) -> BackendBase:
        """Build the backend with its options from the cell and the bridge settings."""
        raise NotImplementedError

    def _settle_restored(self) -> None:
        """Picks left open by the previous process: not sent -> missed; sent -> failed,
        as their outcome cannot be known (a backend whose controller remembers them, the
        delta, overrides this and asks the controller). Each ends exactly once."""
        for rec in self._reopened:
            state = PickState.FAILED if rec.state == PickState.SENT else PickState.MISSED
            self._finish(rec.target.pick_id, state, LOST_IN_RESTART, rec.robot)
        self._reopened = []

    def count_error(self, kind: str, n: int = 1) -> None:
        with self._status_lock:
            self._errors[kind] += n

    @property
    def errors(self) -> dict[str, int]:
        """A copy of the error counts."""
        with self._status_lock:
            return dict(self._errors)

    def robot_statuses(self) -> tuple[RobotStatus, ...]:
        raise NotImplementedError

    @property
    def encoder_stalled(self) -> bool:
        return False

    def status(self) -> BackendStatus:
        robots = self.robot_statuses()
        with self._status_lock:
            errors = dict(self._errors)
        return BackendStatus(self.kind, robots, errors, dict(self.picks_done), dict(self.ledger.counters),
                             len(self.in_flight()), self.encoder_stalled)

    def _finish(self, pick_id: int, state: PickState, reason: str = "", robot: int | None = None) -> PickRecord | None:
        rec = self.ledger.finish(pick_id, state, reason, robot)
        if rec is None:
            return None
        t = rec.target
        point = rec.plan.point if rec.plan is not None else (t.x, t.y, t.z)
        self._finished.append(Finished(pick_id, rec.robot, state, reason, point, t.class_id, t.bin))
        if state == PickState.DONE:
            self.picks_done[rec.robot] += 1
        return rec

    def _valid(self, t: Target) -> bool:
        """Record ``t``; a non-finite position is rejected (a result, never a pick)."""
        if self.ledger.add(t) is None:
            return False
        if not all(math.isfinite(v) for v in (t.x, t.y, t.z)):
            self._finish(t.pick_id, PickState.REJECTED, "non_finite")
            return False
        return True

    def _drain(self) -> list[Finished]:
        out, self._finished = self._finished, []
        return out

    def update_belt(self, belt: BeltState) -> None:  # noqa: B027 - optional for cells without a belt
        pass

    def submit(self, targets: Sequence[Target], now: float) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> list[Finished]:
        raise NotImplementedError

    def in_flight(self) -> list[PickRecord]:
        return self.ledger.in_state(PickState.ASSIGNED, PickState.SENT)

    def close(self) -> None:
        if self.ledger.store is not None:
            self.ledger.store.close()


class LineBackend(BackendBase):
    """Robots along a belt: scheduling and tracking, sending left to subclasses."""

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, options: LineOptions = LineOptions()) -> None:
        super().__init__(robots, speeds, options.ledger_path)
        self.options = options
        self.beltless = options.beltless
        self.scheduler = Scheduler(robots, speeds, options.max_in_flight,
                                   dict(options.class_values) if options.class_values else None, options.geometry)
        self.encoder_timeout = options.encoder_timeout
        self.belt: BeltState | None = None
        self._encoder_stalled = False
        self.stalls = 0
        #: belt spots (x - belt_position, y, pick_id) of the targets taken, newest last: a
        #: later target on one of them is the same object under another pick_id
        self._taken: collections.deque[tuple[float, float, int]] = collections.deque()
        for t in self.ledger.restored_taken:
            self._take(t)
        self._settle_restored()

    @classmethod
    def from_cell(cls, cell: CellRobots, settings: BridgeSettings) -> LineBackend:
        return cls(cell.robots, cell.speeds, LineOptions(**LineOptions.line_fields(cell, settings)))

    @property
    def encoder_stalled(self) -> bool:
        return self._encoder_stalled

    def update_belt(self, belt: BeltState) -> None:
        self.belt = belt

    @staticmethod
    def _spot(t: Target) -> tuple[float, float]:
        """Where ``t`` is on the belt: x at zero travel, and y (m)."""
        return t.x - t.belt_position, t.y

    def _guards_spots(self) -> bool:
        # off a belt the spot of a pick may hold the next object (a pile), so no guard
        return self.options.min_pick_separation > 0 and not self.beltless

    def _take(self, t: Target) -> None:
        if self._guards_spots() and math.isfinite(t.belt_position):
            self._taken.append((*self._spot(t), t.pick_id))

    def _still_there(self, pick_id: int) -> bool:
        """The pick ended without its object: missed, refused, or failed for a known
        reason (not an outcome lost in a restart, which may have been a pick)."""
        rec = self.ledger.records.get(pick_id)
        if rec is None or not rec.state.final:
            return False
        return rec.state in (PickState.MISSED, PickState.REJECTED, PickState.SKIPPED) or (
            rec.state == PickState.FAILED and rec.reason != LOST_IN_RESTART)

    def _near_taken(self, t: Target) -> bool:
        if not self._guards_spots() or not math.isfinite(t.belt_position):
            return False
        r = self.options.min_pick_separation
        c, y = self._spot(t)
        return any(math.hypot(c - c0, y - y0) < r and not self._still_there(pid) for c0, y0, pid in self._taken)

    def _forget_passed_spots(self, belt: BeltState) -> None:
        """Spots past every window (with a metre of margin) can meet no new target."""
        if self.beltless or not self._taken:
            return
        end = max(r.window[1] for r in self.robots) + 1.0
        while self._taken and self._taken[0][0] + belt.position > end:
            self._taken.popleft()

    def submit(self, targets: Sequence[Target], now: float) -> None:
        for t in targets:
            if not self._valid(t):
                continue  # seen before (an overlapping frame), or not finite
            if self._near_taken(t):
                self._finish(t.pick_id, PickState.SKIPPED, NEAR_ANOTHER_PICK)
                continue
            reason = self.scheduler.add(t)
            if reason is None:
                self._take(t)
            if reason == CLASS_NOT_SORTED:
                self._finish(t.pick_id, PickState.SKIPPED, reason)
            elif reason == WORKSPACE:
                self._finish(t.pick_id, PickState.REJECTED, reason)

    def tick(self, now: float) -> list[Finished]:
        self._poll(now)
        if self.beltless:
            self.belt = BeltState(0.0, 0.0, now)
        fresh = self.belt is not None and now - self.belt.stamp <= self.encoder_timeout
        if not fresh:
            if not self._encoder_stalled and self.belt is not None:
                self.stalls += 1
            self._encoder_stalled = self.belt is not None
            return self._drain()
        self._encoder_stalled = False
        assert self.belt is not None  # fresh implies a belt sample
        self._forget_passed_spots(self.belt)
        plans, dropped = self.scheduler.step(self.belt, now)
        for target, reason in dropped:
            self._finish(target.pick_id, PickState.REJECTED if reason == WORKSPACE else PickState.MISSED, reason)
        for plan in plans:
            self.ledger.assign(plan.pick_id, plan)
            self._dispatch(self.ledger[plan.pick_id], now)
        return self._drain()

    def _robot_finished(self, pick_id: int, state: PickState, reason: str, robot: int) -> None:
        if self._finish(pick_id, state, reason, robot) is not None:
            self.scheduler.finished(robot)

    def _poll(self, now: float) -> None:
        raise NotImplementedError

    def _dispatch(self, rec: PickRecord, now: float) -> None:
        raise NotImplementedError


class DryRunBackend(LineBackend):
    """No controller: each pick 'happens' as planned (replay, planning checks)."""

    kind = "dry_run"

    def _dispatch(self, rec: PickRecord, now: float) -> None:
        self.ledger.mark_sent(rec.target.pick_id)

    def _poll(self, now: float) -> None:
        for rec in self.ledger.in_state(PickState.SENT):
            if rec.plan is not None and now >= rec.plan.t_done:
                self._robot_finished(rec.target.pick_id, PickState.DONE, "", rec.robot)

    def robot_statuses(self) -> tuple[RobotStatus, ...]:
        return tuple(RobotStatus(r.name, LinkState.NO_CONTROLLER, queued=self.scheduler.lane(r.index).queued)
                     for r in self.robots)


_ANSWER_STATE = {
    CommandResult.WORKSPACE: (PickState.REJECTED, "controller_workspace"),
    CommandResult.BAD_VALUE: (PickState.REJECTED, "controller_bad_value"),
    CommandResult.IN_ERROR: (PickState.FAILED, "controller_in_error"),
    CommandResult.QUEUE_FULL: (PickState.FAILED, "controller_queue_full"),
    CommandResult.DUPLICATE: (PickState.FAILED, "controller_duplicate"),
}


class DeltaBackend(LineBackend):
    """Deltas over Modbus TCP (one client per robot, register map in modbus_map)."""

    kind = "delta"

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, options: DeltaOptions = DeltaOptions()) -> None:
        super().__init__(robots, speeds, options)
        self.clients = {r.index: DeltaModbusClient(r.host, r.port, timeout=options.timeout, watchdog=options.watchdog)
                        for r in robots}
        self.controller_state: dict[int, ControllerState | None] = {r.index: None for r in robots}
        self.controller_error: dict[int, int] = {r.index: 0 for r in robots}
        self.uncertain: set[int] = set()  # robots whose last send failed: reconcile
        self.last_error = ""
        # picks this bridge sent before a restart: the controller may have them queued or
        # finished; the first status read of each robot settles them (see _reconcile)
        for rec in self.ledger.in_state(PickState.SENT):
            self.uncertain.add(rec.robot)

    @classmethod
    def from_cell(cls, cell: CellRobots, settings: BridgeSettings) -> DeltaBackend:
        return cls(cell.robots, cell.speeds, DeltaOptions(**LineOptions.line_fields(cell, settings),
                                                          timeout=settings.modbus_timeout,
                                                          watchdog=settings.modbus_watchdog))

    def _settle_restored(self) -> None:
        """Unsent picks of the previous process are missed; sent ones are left open for
        the controllers to settle (``_reconcile`` at the first status read)."""
        for rec in self._reopened:
            if rec.state != PickState.SENT:
                self._finish(rec.target.pick_id, PickState.MISSED, LOST_IN_RESTART, rec.robot)
        self._reopened = []

    def _dispatch(self, rec: PickRecord, now: float) -> None:
        robot = self.scheduler.lane(rec.robot).robot
        t = rec.target
        base = robot.base
        cmd = DeltaCommand(t.pick_id, t.x - base[0], t.y - base[1], t.z - base[2], t.belt_position, t.bin)
        self.ledger.mark_sent(t.pick_id)  # from here on, never again
        try:
            answer = self.clients[robot.index].send(cmd)
        except ConnectionLost as exc:
            self.count_error("send_lost")
            self.uncertain.add(robot.index)
            self.scheduler.set_available(robot.index, False)
            self.last_error = str(exc)
            return
        if answer != CommandResult.ACCEPTED:
            state, reason = _ANSWER_STATE.get(CommandResult(answer), (PickState.FAILED, f"controller_answer_{answer}"))
            self._robot_finished(t.pick_id, state, reason, robot.index)

    def _poll(self, now: float) -> None:
        for robot in self.robots:
            client = self.clients[robot.index]
            try:
                status = client.read_status()
            except ConnectionLost as exc:
                self.count_error("poll_lost")
                self.last_error = str(exc)
                self.scheduler.set_available(robot.index, False)
                continue
            try:
                controller: ControllerState | None = ControllerState(status.state)
            except ValueError:  # a value outside the register map: not usable
                controller = None
                self.count_error("unknown_controller_state")
            self.controller_state[robot.index] = controller
            self.controller_error[robot.index] = status.error
            ok = (client.state == LinkState.CONNECTED and controller is not None
                  and controller != ControllerState.ERROR)
            self.scheduler.set_available(robot.index, ok)
            for pick_id, st in status.results:
                rec = self.ledger.records.get(pick_id)
                if rec is not None and rec.robot == robot.index and not rec.state.final:
                    outcome = STATE_OF.get(st, PickState.FAILED)
                    reason = {PickState.FAILED: "controller_error", PickState.MISSED: "left_window",
                              PickState.REJECTED: "controller_workspace"}.get(outcome, "")
                    self._robot_finished(pick_id, outcome, reason, robot.index)
            if client.just_reconnected or robot.index in self.uncertain:
                self._reconcile(robot, status)
                client.just_reconnected = False
                self.uncertain.discard(robot.index)

    def _reconcile(self, robot: RobotSpec, status: mm.Status) -> None:
        """After a reconnect or a failed send: every pick sent to this robot is either
        queued there, has a result (filed above), or never arrived: failed, not resent."""
        queued = set(status.queue)
        for rec in self.ledger.in_state(PickState.SENT, robot=robot.index):
            if rec.target.pick_id not in queued:
                self.count_error("reconciled_lost")
                self._robot_finished(rec.target.pick_id, PickState.FAILED, "lost_in_disconnect", robot.index)

    def robot_statuses(self) -> tuple[RobotStatus, ...]:
        return tuple(RobotStatus(r.name, LinkState(self.clients[r.index].state), self.controller_state[r.index],
                                 self.controller_error[r.index], self.scheduler.lane(r.index).queued,
                                 self.clients[r.index].reconnects) for r in self.robots)

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
        super().close()


class FanucBackend(BackendBase):
    """One FANUC arm over a bin, in open-loop cycles: the best candidate of the newest
    frame is picked while the arm is idle; the others of that frame are dropped (the next
    frame, taken after this pick, supersedes them).

    The pick: approach above, descend, suction on (DOUT), dwell, lift, check the vacuum
    (DIN); if held: carry above the class's bin, release; return home. A dropped link,
    a system fault or HOLD aborts the sequence; after recovery the vacuum tells whether
    the part is held (then it is placed: done) or not (failed). The pick is never resent.

    The worker thread changes ``state`` and counts errors; :meth:`status` reads them
    under the status lock.
    """

    kind = "fanuc"

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, options: FanucOptions = FanucOptions()) -> None:
        super().__init__(robots, speeds, options.ledger_path)
        if len(robots) != 1:
            raise ControllerError(f"the fanuc backend drives one arm, {len(robots)} configured")
        self.robot = robots[0]
        self.options = options
        self.place_positions = dict(options.place_positions)
        self.override, self.suction_port, self.vacuum_port = options.override, options.suction_port, options.vacuum_port
        self.client = RmiClient(self.robot.host, self.robot.port, max_in_flight=options.max_in_flight)
        self.connect_attempts = options.connect_attempts
        self._state = LinkState.DISCONNECTED
        self.last_error = ""
        self.tabu = TabuSpots(self.TABU_RADIUS_M, self.TABU_LENGTH)
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._results: queue.Queue[Any] = queue.Queue()
        self._busy = threading.Event()
        self._stop = threading.Event()
        self._settle_restored()
        self._worker = threading.Thread(target=self._run, name="fanuc", daemon=True)
        self._worker.start()

    @classmethod
    def from_cell(cls, cell: CellRobots, settings: BridgeSettings) -> FanucBackend:
        return cls(cell.robots, cell.speeds, FanucOptions(
            place_positions=cell.place_positions, override=settings.fanuc_override,
            suction_port=settings.suction_port, vacuum_port=settings.vacuum_port,
            ledger_path=settings.ledger_path))

    @property
    def state(self) -> LinkState:
        with self._status_lock:
            return self._state

    @state.setter
    def state(self, value: LinkState) -> None:
        with self._status_lock:
            self._state = value

    # world m <-> user frame mm (user frame = world shifted to the robot base)
    def _mm(self, p: PointLike) -> tuple[float, float, float]:
        b = self.robot.to_base(p)
        return (float(b[0]) * 1000, float(b[1]) * 1000, float(b[2]) * 1000)

    #: a pick that gripped nothing makes its spot (within TABU_RADIUS_M) tabu until a pick
    #: succeeds, so an unchanged scene gets each failed pick once (with only the last 5 kept,
    #: a pile with more pinned candidates ranked first cycled through them for good); after a
    #: success the scene has changed, and the last TABU_LENGTH failed spots stay tabu
    #: (core/robots/tabu.py)
    TABU_RADIUS_M, TABU_LENGTH = 0.015, 5

    def submit(self, targets: Sequence[Target], now: float) -> None:
        if self._busy.is_set() or not targets:
            return
        fresh = [t for t in targets if not self.tabu.blocks(t.x, t.y)]
        if len(fresh) < len(targets):
            self.count_error("tabu_skipped", len(targets) - len(fresh))
        if not fresh:
            self.tabu.clear()  # every candidate failed before: start over
            return
        t = fresh[0]
        if not self._valid(t):
            return
        if not t.bin:
            self._finish(t.pick_id, PickState.SKIPPED, CLASS_NOT_SORTED, self.robot.index)
            return
        ws = self.robot.workspace_world
        approach = (t.x, t.y, t.z + self.speeds.approach_height)
        if not (ws.contains((t.x, t.y, t.z)) and ws.contains(approach)):
            self._finish(t.pick_id, PickState.REJECTED, WORKSPACE, self.robot.index)
            return
        if t.bin not in self.place_positions or not ws.contains(self.place_positions[t.bin]):
            self._finish(t.pick_id, PickState.REJECTED, "bin_outside_workspace", self.robot.index)
            return
        self.ledger[t.pick_id].robot = self.robot.index
        self.ledger.mark_sent(t.pick_id)
        self._busy.set()
        self._jobs.put(t)

    def tick(self, now: float) -> list[Finished]:
        while True:
            try:
                pick_id, state, reason = self._results.get_nowait()
            except queue.Empty:
                break
            rec = self._finish(pick_id, state, reason, self.robot.index)
            if rec is not None and reason == "nothing_gripped":
                self.tabu.failed(rec.target.x, rec.target.y)
            elif rec is not None and state == PickState.DONE:
                self.tabu.succeeded()
        return self._drain()

    # ---- worker ------------------------------------------------------------------
    def _ensure_session(self) -> None:
        if self.client.connected and self.state == LinkState.READY:
            try:
                self.client.drain()
                return
            except ConnectionLost:
                self.count_error("session_terminated")
            except ControllerError:
                self.count_error("fault_while_idle")
                self.state = LinkState.RECOVERING
        if not self.client.connected:
            self.state = LinkState.CONNECTING
            retry_connect(self.client, attempts=self.connect_attempts)
        self.client.fault = None
        status = self.client.status()
        if not status.get("ServoReady", 1) or status.get("RMIMotionStatus") or self.state == LinkState.RECOVERING:
            self.client.recover()  # a fault or a program left running: abort, reset, initialize
        else:
            self.client.initialize()
        self.client.set_override(self.override)
        self.client.set_frames(1, 1)
        self.state = LinkState.READY

    def _run(self) -> None:
        next_try = 0.0
        while not self._stop.is_set():
            try:
                target = self._jobs.get(timeout=0.2)
            except queue.Empty:
                if self.state != LinkState.READY and time.monotonic() >= next_try:  # connect ahead of the first pick
                    next_try = time.monotonic() + 2.0
                    try:
                        self._ensure_session()
                    except (ConnectionLost, ControllerError) as exc:
                        self.state = LinkState.DISCONNECTED
                        self.last_error = str(exc)
                        self.client.close()
                continue
            try:
                state, reason = self._pick(target)
            except Exception as exc:  # noqa: BLE001 - reported as a failed pick, never lost
                state, reason = PickState.FAILED, f"bridge_error: {exc}"
            self._results.put((target.pick_id, state, reason))
            self._busy.clear()

    def _pick(self, t: Target) -> tuple[PickState, str]:
        try:
            self._ensure_session()
        except (ConnectionLost, ControllerError) as exc:
            self.state = LinkState.DISCONNECTED
            self.count_error("connect")
            self.last_error = str(exc)
            return PickState.FAILED, "controller_unreachable"
        s = self.speeds
        v = s.max_speed * 1000
        c = self.client
        try:
            c.linear(self._mm((t.x, t.y, t.z + s.approach_height)), v)
            c.wait(c.linear(self._mm((t.x, t.y, t.z)), v / 4))
            c.write_dout(self.suction_port, True)
            c.wait_time(s.grip_time)
            c.wait(c.linear(self._mm((t.x, t.y, t.z + s.approach_height)), v / 4))
            if not c.read_din(self.vacuum_port):
                c.write_dout(self.suction_port, False)
                c.wait(c.linear(self._mm(self.robot.home_world), v))
                return PickState.FAILED, "nothing_gripped"
            self._place(t)
            return PickState.DONE, ""
        except (ConnectionLost, ControllerError) as exc:
            self.count_error("connection_lost" if isinstance(exc, ConnectionLost) else f"error_{exc.code}")
            self.last_error = str(exc)
            self.state = LinkState.RECOVERING
            return self._reconcile(t)

    def _place(self, t: Target) -> None:
        c, v = self.client, self.speeds.max_speed * 1000
        place = np.asarray(self.place_positions[t.bin], dtype=float)
        c.wait(c.linear(self._mm(place), v))
        c.write_dout(self.suction_port, False)
        c.wait(c.linear(self._mm(self.robot.home_world), v))

    def _reconcile(self, t: Target) -> tuple[PickState, str]:
        """After a fault: recover the session, then ask the vacuum whether the part is held."""
        try:
            if not self.client.connected:
                retry_connect(self.client, attempts=self.connect_attempts)
            self.client.recover()
            self.client.set_override(self.override)
            self.state = LinkState.READY
            if self.client.read_din(self.vacuum_port):
                self._place(t)
                return PickState.DONE, "completed_after_recovery"
            self.client.write_dout(self.suction_port, False)
            self.client.wait(self.client.linear(self._mm(self.robot.home_world), self.speeds.max_speed * 1000))
            return PickState.FAILED, "aborted_by_fault"
        except (ConnectionLost, ControllerError) as exc:
            self.state = LinkState.DISCONNECTED
            self.last_error = str(exc)
            self.client.close()
            return PickState.FAILED, "controller_unreachable"

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def robot_statuses(self) -> tuple[RobotStatus, ...]:
        return (RobotStatus(self.robot.name, self.state, busy=self.busy, session_port=self.client.session_port),)

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=5.0)
        if self.client.connected:
            self.client.disconnect()
        super().close()


ROBOT_BACKENDS: Registry[type[BackendBase]] = Registry("robot backend", required=("from_cell", "submit", "tick"))
ROBOT_BACKENDS.add("dry_run", DryRunBackend)
ROBOT_BACKENDS.add("delta", DeltaBackend)
ROBOT_BACKENDS.add("fanuc", FanucBackend)


def create_backend(kind: str, cell: CellRobots, settings: BridgeSettings) -> RobotBackend:
    """The backend ``kind`` for ``cell``, with its options built from ``settings``.

    Raises:
        RegistryError: an unknown kind (the message lists the registered ones).
        RobotConfigError / ControllerError: a configuration the backend refuses.
    """
    return ROBOT_BACKENDS.get(kind).from_cell(cell, settings)
