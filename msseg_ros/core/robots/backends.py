"""Robot backends, chosen by ``robot.type``: ``delta`` (Modbus TCP deltas along a belt),
``fanuc`` (one arm over a bin, RMI) and ``dry_run`` (the plan only, no controller).

A backend takes targets (:meth:`RobotBackend.submit`) and belt states, and on each
:meth:`RobotBackend.tick` returns the picks that finished, each exactly once. It owns
the :class:`~msseg_ros.core.robots.lifecycle.PickLedger`, so no pick_id is ever sent
twice, whatever the controllers do.
"""
from __future__ import annotations

import collections
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from msseg_ros.core.registry import Registry
from msseg_ros.core.robots import modbus_map as mm
from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.delta_controller import CommandResult, DeltaCommand
from msseg_ros.core.robots.errors import ConnectionLost, ControllerError
from msseg_ros.core.robots.kinematics import DeltaGeometry, PointLike
from msseg_ros.core.robots.lifecycle import STATE_OF, PickLedger, PickRecord, PickState
from msseg_ros.core.robots.modbus import DeltaModbusClient
from msseg_ros.core.robots.rmi import RmiClient, retry_connect
from msseg_ros.core.robots.scheduler import CLASS_NOT_SORTED, Scheduler
from msseg_ros.core.robots.tracking import WORKSPACE, BeltState, Target

ROBOT_BACKENDS: Registry[Any] = Registry("robot backend", required=("submit", "tick", "status", "close"))


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


class RobotBackend:
    """Base: the ledger, the finished list, and diagnostics counters."""

    def __init__(self, robots: list[RobotSpec], speeds: Speeds) -> None:
        self.robots, self.speeds = robots, speeds
        self.ledger = PickLedger()
        self._finished: list[Finished] = []
        self.picks_done: collections.Counter[Any] = collections.Counter()  # robot -> done

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

    def submit(self, targets: list[Target], now: float) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> list[Finished]:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {}

    def in_flight(self) -> list[PickRecord]:
        return self.ledger.in_state(PickState.ASSIGNED, PickState.SENT)

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        pass


class LineBackend(RobotBackend):
    """Robots along a belt: scheduling and tracking, sending left to subclasses.

    Args:
        encoder_timeout: without a belt state newer than this (s), nothing new is sent
            (an encoder stall); pending targets wait, and are dropped once they have left
            every window.
        beltless: a cell without a belt (targets do not move; no encoder is expected).
    """

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, *, max_in_flight: int = 4,
                 class_values: dict[int, float] | None = None, geometry: DeltaGeometry | None = None,
                 encoder_timeout: float = 0.5, beltless: bool = False, **_: Any) -> None:
        super().__init__(robots, speeds)
        self.beltless = beltless
        self.scheduler = Scheduler(robots, speeds, max_in_flight, class_values, geometry)
        self.encoder_timeout = encoder_timeout
        self.belt: BeltState | None = None
        self.encoder_stalled = False
        self.stalls = 0

    def update_belt(self, belt: BeltState) -> None:
        self.belt = belt

    def submit(self, targets: list[Target], now: float) -> None:
        for t in targets:
            if not self._valid(t):
                continue  # seen before (an overlapping frame), or not finite
            reason = self.scheduler.add(t)
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
            if not self.encoder_stalled and self.belt is not None:
                self.stalls += 1
            self.encoder_stalled = self.belt is not None
            return self._drain()
        self.encoder_stalled = False
        assert self.belt is not None  # fresh implies a belt sample
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


@ROBOT_BACKENDS.register("dry_run")
class DryRunBackend(LineBackend):
    """No controller: each pick 'happens' as planned (replay, planning checks)."""

    def _dispatch(self, rec: PickRecord, now: float) -> None:
        self.ledger.mark_sent(rec.target.pick_id)

    def _poll(self, now: float) -> None:
        for rec in self.ledger.in_state(PickState.SENT):
            if rec.plan is not None and now >= rec.plan.t_done:
                self._robot_finished(rec.target.pick_id, PickState.DONE, "", rec.robot)

    def status(self) -> dict[str, Any]:
        return {"robots": {r.name: {"state": "dry_run", "queued": self.scheduler.lane(r.index).queued}
                           for r in self.robots}}


_ANSWER_STATE = {
    CommandResult.WORKSPACE: (PickState.REJECTED, "controller_workspace"),
    CommandResult.BAD_VALUE: (PickState.REJECTED, "controller_bad_value"),
    CommandResult.IN_ERROR: (PickState.FAILED, "controller_in_error"),
    CommandResult.QUEUE_FULL: (PickState.FAILED, "controller_queue_full"),
    CommandResult.DUPLICATE: (PickState.FAILED, "controller_duplicate"),
}


@ROBOT_BACKENDS.register("delta")
class DeltaBackend(LineBackend):
    """Deltas over Modbus TCP (one client per robot, register map in modbus_map).

    Args:
        timeout, watchdog: per-client Modbus timeout and heartbeat watchdog, s.
    """

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, *, timeout: float = 0.3, watchdog: float = 1.0,
                 **kw: Any) -> None:
        super().__init__(robots, speeds, **kw)
        self.clients = {r.index: DeltaModbusClient(r.host, r.port, timeout=timeout, watchdog=watchdog)
                        for r in robots}
        self.controller_state: dict[int, int] = {r.index: -1 for r in robots}
        self.controller_error: dict[int, int] = {r.index: 0 for r in robots}
        self.uncertain: set[int] = set()  # robots whose last send failed: reconcile
        self.errors: collections.Counter[Any] = collections.Counter()

    def _dispatch(self, rec: PickRecord, now: float) -> None:
        robot = self.scheduler.lane(rec.robot).robot
        t = rec.target
        base = robot.base
        cmd = DeltaCommand(t.pick_id, t.x - base[0], t.y - base[1], t.z - base[2], t.belt_position, t.bin)
        self.ledger.mark_sent(t.pick_id)  # from here on, never again
        try:
            answer = self.clients[robot.index].send(cmd)
        except ConnectionLost as exc:
            self.errors["send_lost"] += 1
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
                self.errors["poll_lost"] += 1
                self.last_error = str(exc)
                self.scheduler.set_available(robot.index, False)
                continue
            self.controller_state[robot.index] = status.state
            self.controller_error[robot.index] = status.error
            ok = client.state == "connected" and status.state != 2
            self.scheduler.set_available(robot.index, ok)
            for pick_id, st in status.results:
                rec = self.ledger.records.get(pick_id)
                if rec is not None and rec.robot == robot.index and not rec.state.final:
                    state = STATE_OF.get(st, PickState.FAILED)
                    reason = {PickState.FAILED: "controller_error", PickState.MISSED: "left_window",
                              PickState.REJECTED: "controller_workspace"}.get(state, "")
                    self._robot_finished(pick_id, state, reason, robot.index)
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
                self.errors["reconciled_lost"] += 1
                self._robot_finished(rec.target.pick_id, PickState.FAILED, "lost_in_disconnect", robot.index)

    def status(self) -> dict[str, Any]:
        names = {0: "idle", 1: "busy", 2: "error", -1: "unknown"}
        return {"robots": {r.name: {"state": self.clients[r.index].state,
                                    "controller": names.get(self.controller_state[r.index], "?"),
                                    "error_code": self.controller_error[r.index],
                                    "queued": self.scheduler.lane(r.index).queued,
                                    "reconnects": self.clients[r.index].reconnects} for r in self.robots},
                "errors": dict(self.errors)}

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


@ROBOT_BACKENDS.register("fanuc")
class FanucBackend(RobotBackend):
    """One FANUC arm over a bin, in open-loop cycles: the best candidate of the newest
    frame is picked while the arm is idle; the others of that frame are dropped (the next
    frame, taken after this pick, supersedes them).

    The pick: approach above, descend, suction on (DOUT), dwell, lift, check the vacuum
    (DIN); if held: carry above the class's bin, release; return home. A dropped link,
    a system fault or HOLD aborts the sequence; after recovery the vacuum tells whether
    the part is held (then it is placed: done) or not (failed). The pick is never resent.

    Args:
        place_positions: bin -> world (x, y, z), m.
        speed: tool speed, m/s; override: controller speed override, %.
        suction_port, vacuum_port: DOUT / DIN numbers.
    """

    def __init__(self, robots: list[RobotSpec], speeds: Speeds, *, place_positions: dict[int, tuple[Any, ...]] | None = None,
                 override: int = 100, suction_port: int = 1, vacuum_port: int = 1, max_in_flight: int = 2,
                 connect_attempts: int = 5, **_: Any) -> None:
        super().__init__(robots, speeds)
        if len(robots) != 1:
            raise ControllerError(f"the fanuc backend drives one arm, {len(robots)} configured")
        self.robot = robots[0]
        self.place_positions = place_positions or {}
        self.override, self.suction_port, self.vacuum_port = override, suction_port, vacuum_port
        self.client = RmiClient(self.robot.host, self.robot.port, max_in_flight=max_in_flight)
        self.connect_attempts = connect_attempts
        self.state = "disconnected"
        self.errors: collections.Counter[Any] = collections.Counter()
        self.last_error = ""
        self.tabu: collections.deque[Any] = collections.deque(maxlen=self.TABU_LENGTH)
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._results: queue.Queue[Any] = queue.Queue()
        self._busy = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="fanuc", daemon=True)
        self._worker.start()

    # world m <-> user frame mm (user frame = world shifted to the robot base)
    def _mm(self, p: PointLike) -> tuple[float, float, float]:
        b = self.robot.to_base(p)
        return (float(b[0]) * 1000, float(b[1]) * 1000, float(b[2]) * 1000)

    #: a pick that gripped nothing makes its spot tabu for the next few cycles, so an
    #: unchanged scene does not get the same failed pick again
    TABU_RADIUS_M, TABU_LENGTH = 0.015, 5

    def submit(self, targets: list[Target], now: float) -> None:
        if self._busy.is_set() or not targets:
            return
        fresh = [t for t in targets if not any(math.hypot(t.x - x, t.y - y) < self.TABU_RADIUS_M
                                               for x, y in self.tabu)]
        if len(fresh) < len(targets):
            self.errors["tabu_skipped"] += len(targets) - len(fresh)
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
                self.tabu.append((rec.target.x, rec.target.y))
        return self._drain()

    # ---- worker ------------------------------------------------------------------
    def _ensure_session(self) -> None:
        if self.client.connected and self.state == "ready":
            try:
                self.client.drain()
                return
            except ConnectionLost:
                self.errors["session_terminated"] += 1
            except ControllerError:
                self.errors["fault_while_idle"] += 1
                self.state = "recovering"
        if not self.client.connected:
            self.state = "connecting"
            retry_connect(self.client, attempts=self.connect_attempts)
        self.client.fault = None
        status = self.client.status()
        if not status.get("ServoReady", 1) or status.get("RMIMotionStatus") or self.state == "recovering":
            self.client.recover()  # a fault or a program left running: abort, reset, initialize
        else:
            self.client.initialize()
        self.client.set_override(self.override)
        self.client.set_frames(1, 1)
        self.state = "ready"

    def _run(self) -> None:
        next_try = 0.0
        while not self._stop.is_set():
            try:
                target = self._jobs.get(timeout=0.2)
            except queue.Empty:
                if self.state != "ready" and time.monotonic() >= next_try:  # connect ahead of the first pick
                    next_try = time.monotonic() + 2.0
                    try:
                        self._ensure_session()
                    except (ConnectionLost, ControllerError) as exc:
                        self.state = "disconnected"
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
            self.state = "disconnected"
            self.errors["connect"] += 1
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
            self.errors["connection_lost" if isinstance(exc, ConnectionLost) else f"error_{exc.code}"] += 1
            self.last_error = str(exc)
            self.state = "recovering"
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
            self.state = "ready"
            if self.client.read_din(self.vacuum_port):
                self._place(t)
                return PickState.DONE, "completed_after_recovery"
            self.client.write_dout(self.suction_port, False)
            self.client.wait(self.client.linear(self._mm(self.robot.home_world), self.speeds.max_speed * 1000))
            return PickState.FAILED, "aborted_by_fault"
        except (ConnectionLost, ControllerError) as exc:
            self.state = "disconnected"
            self.last_error = str(exc)
            self.client.close()
            return PickState.FAILED, "controller_unreachable"

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def status(self) -> dict[str, Any]:
        return {"robots": {self.robot.name: {"state": self.state, "busy": self.busy,
                                             "session_port": self.client.session_port}},
                "errors": dict(self.errors)}

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=5.0)
        if self.client.connected:
            self.client.disconnect()

