"""Emulated controllers and the bridge's backends over real TCP on loopback: Modbus TCP
deltas and the FANUC RMI arm, with the faults the bridge must survive."""
import time

import pytest

from msseg_ros.core.robots.backends import DeltaBackend, DeltaOptions, FanucBackend, FanucOptions
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.delta_controller import (
    CommandResult,
    ControllerLoop,
    ControllerState,
    DeltaCommand,
    DeltaController,
)
from msseg_ros.core.robots.errors import ConnectionLost, ControllerError
from msseg_ros.core.robots.kinematics import Box, DeltaGeometry
from msseg_ros.core.robots.lifecycle import PickState
from msseg_ros.core.robots.modbus import DeltaModbusClient, DeltaModbusServer
from msseg_ros.core.robots.rmi import (
    E_ALREADY_CONNECTED,
    E_DESTINATION,
    E_HOLD,
    E_OVERRIDE,
    E_SEQUENCE,
    RmiClient,
)
from msseg_ros.core.robots.rmi_server import EmulatedRmiController
from msseg_ros.core.robots.tracking import BeltState, Target
from msseg_ros.core.tables import PickStatus

from conftest import free_ports, wait_until

GEO = DeltaGeometry()
SPEEDS = Speeds()


class SimBelt:
    """A belt at ``speed`` m/s from the moment it is made (monotonic clock)."""

    def __init__(self, speed: float = 0.5) -> None:
        self.t0, self.speed, self.frozen = time.monotonic(), speed, None

    def __call__(self, t: float):
        return self.speed * (t - self.t0), self.speed

    def state(self) -> BeltState:
        now = time.monotonic()
        p, v = self(now)
        return BeltState(p, v, self.frozen if self.frozen is not None else now)


# ---- the emulated delta controller on a simulated clock ------------------------------
def test_delta_controller_times_moves_and_reports_outcomes():
    robot = line_robots(1, first_x=2.0, geometry=GEO)[0]
    belt = lambda t: (0.5 * t, 0.5)  # noqa: E731
    grips = []
    c = DeltaController(robot, SPEEDS, belt, geometry=GEO, on_grip=lambda *a: grips.append(a))
    # object at world x 0.5 at belt 0: base-frame x = 0.5 - 2.0
    assert c.submit(DeltaCommand(1, -1.5, 0.1, -1.0, 0.0, 2), now=0.0) == CommandResult.ACCEPTED
    assert c.submit(DeltaCommand(1, -1.5, 0.1, -1.0, 0.0, 2), now=0.0) == CommandResult.DUPLICATE
    assert c.submit(DeltaCommand(2, -1.5, 0.9, -1.0, 0.0, 2), now=0.0) == CommandResult.WORKSPACE
    # an object already far downstream: missed
    assert c.submit(DeltaCommand(3, 0.0, 0.0, -1.0, -20.0, 1), now=0.0) == CommandResult.ACCEPTED
    for k in range(1000):
        c.advance(k * 0.01)
    results = dict(c.results)
    assert results == {2: PickStatus.REJECTED, 1: PickStatus.DONE, 3: PickStatus.MISSED}
    (robot_i, pick_id, point, travel, bin_), = grips
    w0, w1 = robot.window
    assert (robot_i, pick_id, bin_) == (1, 1, 2) and w0 <= point[0] <= w1
    assert point[0] == pytest.approx(0.5 + travel, abs=1e-9) and point[1] == pytest.approx(0.1)
    c.inject_fault()
    assert c.submit(DeltaCommand(4, -1.5, 0.0, -1.0, 0.0, 1), now=10.0) == CommandResult.IN_ERROR


# ---- Modbus TCP ------------------------------------------------------------------------
@pytest.fixture
def delta_line():
    """Two emulated deltas on loopback, their controller loop, and the shared belt."""
    port = free_ports(2)
    robots = line_robots(2, first_x=1.0, spacing=0.7, geometry=GEO, port0=port)
    belt = SimBelt(0.5)
    ctrls = [DeltaController(r, SPEEDS, belt, geometry=GEO) for r in robots]
    loop = ControllerLoop(ctrls, time.monotonic).start()
    servers = [DeltaModbusServer(c, r.host, r.port).start() for r, c in zip(robots, ctrls, strict=True)]
    yield robots, belt, ctrls, servers
    for s in servers:
        s.stop()
    loop.stop()


def test_modbus_client_sends_and_watchdog_catches_a_frozen_controller(delta_line):
    robots, belt, ctrls, _ = delta_line
    cl = DeltaModbusClient(robots[0].host, robots[0].port, watchdog=0.3)
    st = cl.read_status()
    assert st.state == 0 and cl.state == "connected"
    p, _ = belt(time.monotonic())
    assert cl.send(DeltaCommand(11, -0.3, 0.0, -1.0, p, 1)) == CommandResult.ACCEPTED
    assert cl.read_status().queue == (11,)
    ctrls[0].heartbeat_frozen = True
    # polled, not slept: a cycle that ran between the last read and the freeze counts as a
    # fresh beat, and on a loaded machine the loop may run one more after it
    deadline = time.monotonic() + 10.0
    while cl.state != "stale" and time.monotonic() < deadline:
        cl.read_status()
        time.sleep(0.05)
    assert cl.state == "stale"
    with pytest.raises(ConnectionLost, match="heartbeat stopped"):
        cl.send(DeltaCommand(12, -0.3, 0.0, -1.0, p, 1))
    assert ctrls[0].received[12] == 0


def drive(backend, belt, until, timeout=20.0):
    """Tick a line backend against the belt until ``until(finished)``; returns all finished."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until(got):
        backend.update_belt(belt.state())
        got += backend.tick(time.monotonic())
        time.sleep(0.01)
    return got


def test_delta_backend_picks_with_both_robots_each_pick_once(delta_line):
    robots, belt, ctrls, _ = delta_line
    be = DeltaBackend(robots, SPEEDS, DeltaOptions(max_in_flight=1, geometry=GEO, watchdog=1.0))
    p = belt.state().position
    # three objects side by side upstream of the windows: robot 1 cannot take them all
    be.submit([Target(i, 0.3, -0.2 + 0.2 * (i - 1), 0.0, p, 1, 1) for i in (1, 2, 3)], time.monotonic())
    got = drive(be, belt, lambda g: len(g) >= 3)
    be.close()
    assert sorted(f.pick_id for f in got) == [1, 2, 3]
    done = [f for f in got if f.state == PickState.DONE]
    assert {f.robot for f in done} == {1, 2}
    # one queue slot each and three objects abreast: the third cannot be met in time
    (left,) = [f for f in got if f.state != PickState.DONE]
    assert (left.state, left.reason, left.robot) == (PickState.MISSED, "capacity", 0)
    assert all(c.received[i] <= 1 for c in ctrls for i in (1, 2, 3))
    assert sum(c.received[f.pick_id] for c in ctrls for f in done) == 2


def test_controller_drop_mid_pick_reconciles_without_resending(delta_line):
    robots, belt, ctrls, servers = delta_line
    be = DeltaBackend(robots[:1], SPEEDS, DeltaOptions(max_in_flight=2, geometry=GEO, timeout=0.2))
    p = belt.state().position
    be.submit([Target(21, 0.6, 0.0, 0.0, p, 1, 1), Target(22, 0.55, 0.1, 0.0, p, 1, 1)], time.monotonic())
    drive(be, belt, lambda g: ctrls[0].received[21] and ctrls[0].received[22], timeout=5)
    servers[0].stop()  # the controller drops off the network mid-pick; it keeps working
    lost = drive(be, belt, lambda g: False, timeout=0.6)
    assert lost == [] and be.clients[1].state == "disconnected"
    servers[0].start()
    got = drive(be, belt, lambda g: len(g) >= 2, timeout=20)
    be.close()
    assert sorted(f.pick_id for f in got) == [21, 22]
    assert {f.state for f in got} == {PickState.DONE}  # outcomes reconciled from the controller
    assert ctrls[0].received[21] == ctrls[0].received[22] == 1  # never resent
    assert be.clients[1].reconnects >= 1


def test_controller_error_fails_its_picks_and_others_take_over(delta_line):
    robots, belt, ctrls, _ = delta_line
    be = DeltaBackend(robots, SPEEDS, DeltaOptions(max_in_flight=2, geometry=GEO))
    p = belt.state().position
    be.submit([Target(31, 0.5, 0.0, 0.0, p, 1, 1)], time.monotonic())
    drive(be, belt, lambda g: ctrls[0].received[31], timeout=5)
    ctrls[0].inject_fault()
    got = drive(be, belt, lambda g: len(g) >= 1, timeout=5)
    assert [(f.pick_id, f.state, f.reason) for f in got] == [(31, PickState.FAILED, "controller_error")]
    assert be.status().robot("delta_1").controller == ControllerState.ERROR
    p = belt.state().position
    be.submit([Target(32, 0.5, 0.0, 0.0, p, 1, 1)], time.monotonic())
    got = drive(be, belt, lambda g: len(g) >= 1, timeout=20)
    be.close()
    assert [(f.pick_id, f.robot, f.state) for f in got] == [(32, 2, PickState.DONE)]
    assert ctrls[0].received[32] == 0


def test_encoder_stall_holds_commands_then_late_ones_are_missed(delta_line):
    robots, belt, ctrls, _ = delta_line
    be = DeltaBackend(robots, SPEEDS, DeltaOptions(geometry=GEO, encoder_timeout=0.2))
    be.update_belt(belt.state())
    p = belt.state().position
    stale = belt.state()
    be.submit([Target(41, 0.0, 0.0, 0.0, p, 1, 1)], time.monotonic())
    time.sleep(0.3)  # no encoder update since: a stall
    assert be.tick(time.monotonic()) == [] and be.encoder_stalled
    assert sum(c.received[41] for c in ctrls) == 0  # nothing sent on a stale encoder
    be.belt = stale
    time.sleep(4.0)  # meanwhile the belt carried the object past both windows
    got = drive(be, belt, lambda g: len(g) >= 1, timeout=5)
    be.close()
    assert [(f.pick_id, f.state, f.robot) for f in got] == [(41, PickState.MISSED, 0)]
    assert not be.encoder_stalled and be.stalls == 1


def test_outside_workspace_rejected_and_late_candidates_missed(delta_line):
    robots, belt, ctrls, _ = delta_line
    be = DeltaBackend(robots, SPEEDS, DeltaOptions(geometry=GEO))
    p = belt.state().position
    be.submit([Target(51, 0.5, 0.45, 0.0, p, 1, 1),  # beyond the workspace across the belt
               Target(52, 0.5, 0.0, 0.0, p - 10.0, 1, 1),  # seen 10 m of belt ago: long gone
               Target(53, 0.5, float("nan"), 0.0, p, 1, 1)], time.monotonic())
    got = drive(be, belt, lambda g: len(g) >= 3, timeout=5)
    be.close()
    by_id = {f.pick_id: (f.state, f.reason, f.robot) for f in got}
    assert by_id == {51: (PickState.REJECTED, "workspace", 0), 52: (PickState.MISSED, "out_of_window", 0),
                     53: (PickState.REJECTED, "non_finite", 0)}
    assert all(c.received[i] == 0 for c in ctrls for i in (51, 52, 53))


# ---- FANUC RMI --------------------------------------------------------------------------
@pytest.fixture
def fanuc():
    port = free_ports(2)
    robot = line_robots(1, first_x=0.0)[0]
    from dataclasses import replace

    robot = replace(robot, port=port, base=(-0.7, 0.0, 0.0), window=(-0.35, 0.35),
                    workspace=Box((0.35, -0.6, -0.02), (1.05, 0.6, 0.6)), home=None)
    lifted = []
    emu = EmulatedRmiController(Box((350, -600, -20), (1050, 600, 600)), (700, 0, 600), port=port,
                                accel_mm_s2=20000, on_suction=lambda xyz: (lifted.append(xyz), True)[1]).start()
    yield robot, emu, lifted
    emu.stop()


FAST = Speeds(max_speed=3.0, max_accel=20.0, approach_height=0.05, grip_time=0.05, place_time=0.0, latency=0.0)


def fanuc_pick(be, pick_id, x=0.1, y=0.05, timeout=20.0):
    be.submit([Target(pick_id, x, y, 0.0, float("nan"), 1, 1)], time.monotonic())
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = be.tick(time.monotonic())
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"pick {pick_id} did not finish; status {be.status()}")


def test_rmi_protocol_is_enforced(fanuc):
    robot, emu, _ = fanuc
    c = RmiClient(port=robot.port)
    assert c.connect() == robot.port + 1
    with pytest.raises(ControllerError) as e:
        RmiClient(port=robot.port).connect()
    assert e.value.code == E_ALREADY_CONNECTED
    c.initialize()
    assert c.status()["NextSequenceID"] == 1
    with pytest.raises(ControllerError) as e:
        c.set_override(101)
    assert e.value.code == E_OVERRIDE
    with pytest.raises(ControllerError) as e:
        c.wait(c.linear((5000, 0, 100), 500))
    assert e.value.code == E_DESTINATION
    c.next_sequence += 1  # a gap: the controller holds
    with pytest.raises(ControllerError) as e:
        c.wait(c.linear((700, 0, 300), 1000))
    assert e.value.code == E_SEQUENCE
    with pytest.raises(ControllerError) as e:
        c.wait(c.linear((700, 0, 300), 1000))
    assert e.value.code == E_HOLD and emu.hold
    c.recover()
    c.wait(c.linear((700, 0, 300), 1000))
    assert c.read_position() == (700.0, 0.0, 300.0)
    c.disconnect()


def test_fanuc_pick_cycle_and_sequence_gap_recovery(fanuc):
    robot, emu, lifted = fanuc
    be = FanucBackend([robot], FAST, FanucOptions(place_positions={1: (0.0, 0.5, 0.3)}))
    (f,) = fanuc_pick(be, 1)
    assert (f.pick_id, f.state) == (1, PickState.DONE)
    assert lifted[-1] == pytest.approx((0.8, 0.05, 0.0))  # user frame = world - base
    seqs = [p["SequenceID"] for p in emu.packets if "Instruction" in p]
    assert seqs == list(range(1, len(seqs) + 1))
    be.client.next_sequence += 3  # a client-side gap: HOLD, then abort/reset/initialize
    (f,) = fanuc_pick(be, 2)
    assert f.state == PickState.FAILED and not emu.hold
    (f,) = fanuc_pick(be, 3, x=-0.1)
    assert f.state == PickState.DONE
    be.close()


def test_fanuc_unsolicited_system_fault_then_recovery(fanuc):
    robot, emu, _ = fanuc
    be = FanucBackend([robot], FAST, FanucOptions(place_positions={1: (0.0, 0.5, 0.3)}))
    be.submit([Target(1, 0.1, 0.0, 0.0, float("nan"), 1, 1)], time.monotonic())
    assert wait_until(lambda: len(emu.motions) >= 1, 10)
    emu.system_fault()
    got = []
    assert wait_until(lambda: got.extend(be.tick(time.monotonic())) or got, 15)
    assert got[0].pick_id == 1 and got[0].state in (PickState.FAILED, PickState.DONE)
    assert be.errors[f"error_{2556935}"] == 1
    (f,) = fanuc_pick(be, 2)
    assert f.state == PickState.DONE
    be.close()


def test_fanuc_drop_mid_motion_no_duplicate_pick(fanuc):
    robot, emu, lifted = fanuc
    be = FanucBackend([robot], FAST, FanucOptions(place_positions={1: (0.0, 0.5, 0.3)}))
    fanuc_pick(be, 1)
    approaches_before = sum(1 for _, p in emu.motions if p == pytest.approx((800.0, 50.0, 50.0)))
    emu.drop_on_next_motion()
    (f,) = fanuc_pick(be, 2, x=0.12, y=0.0)
    assert f.pick_id == 2 and f.state in (PickState.FAILED, PickState.DONE)
    assert be.client.connected and emu.connected  # reconnected
    pick_moves = [p for _, p in emu.motions if p[:2] == pytest.approx((820.0, 0.0))]
    assert len(pick_moves) <= 2  # approach and descent at most once each: never re-approached
    assert approaches_before >= 1
    emu.terminate()  # the controller's idle timeout closes the session
    (f,) = fanuc_pick(be, 3, x=-0.05)
    assert f.state == PickState.DONE
    assert be.ledger.counters["duplicate_sends_refused"] == 0
    be.close()


def test_rmi_outstanding_limit_and_hold_to_the_letter(fanuc):
    """RMIT-028: at most 8 instructions outstanding, on both sides; after HOLD the client
    sends nothing new until it resets, and the controller refuses anything sent anyway."""
    from msseg_ros.core.robots.errors import RobotConfigError
    from msseg_ros.core.robots.rmi import E_INVALID_INSTRUCTION, MAX_OUTSTANDING

    robot, emu, _ = fanuc
    with pytest.raises(RobotConfigError, match="RMIT-028"):
        RmiClient(port=robot.port, max_in_flight=MAX_OUTSTANDING + 1)
    c = RmiClient(port=robot.port, max_in_flight=MAX_OUTSTANDING)
    c.connect()
    c.initialize()
    seqs = [c.wait_time(0.3) for _ in range(MAX_OUTSTANDING)]  # all 8 outstanding at once
    assert seqs == list(range(1, 9)) and len(c.in_flight) == MAX_OUTSTANDING
    c.max_in_flight = MAX_OUTSTANDING + 1  # a client that breaks the rule: the controller refuses
    ninth = c.wait_time(0.3)
    with pytest.raises(ControllerError) as e:
        c.wait(ninth)
    assert e.value.code == E_INVALID_INSTRUCTION
    for s in seqs:
        c.wait(s)  # the 8 complete normally
    c.recover()
    c.max_in_flight = 2
    c.next_sequence += 1  # a gap: HOLD
    with pytest.raises(ControllerError) as e:
        c.wait(c.wait_time(0.01))
    assert e.value.code == E_SEQUENCE and c.held and emu.hold
    with pytest.raises(ControllerError, match="in HOLD") as e:  # the client sends nothing new
        c.wait_time(0.01)
    assert e.value.code == E_HOLD
    seq = c.next_sequence  # sent anyway, bypassing the client: the controller refuses it
    c._send({"Instruction": "FRC_WaitTime", "SequenceID": seq, "Time": 0.01})
    c.next_sequence += 1
    c.in_flight.add(seq)
    with pytest.raises(ControllerError) as e:
        c.wait(seq)
    assert e.value.code == E_HOLD
    c.recover()
    assert not c.held and not emu.hold
    c.wait(c.wait_time(0.01))
    c.disconnect()


def test_a_restarted_delta_bridge_settles_from_its_ledger_and_never_resends(delta_line, tmp_path):
    """A bridge sends picks, then dies without closing anything (a kill -9). A new bridge
    on the same ledger file: the picks the controllers still hold or finished are settled
    from their status, none is sent again, re-offered candidates are refused, and every
    pick_id ends exactly once over both lives."""
    robots, belt, ctrls, _ = delta_line
    ledger = str(tmp_path / "state" / "pick_ledger.sqlite")
    first = DeltaBackend(robots, SPEEDS, DeltaOptions(max_in_flight=2, geometry=GEO, ledger_path=ledger))
    p = belt.state().position
    targets = [Target(61 + k, 0.3, -0.2 + 0.2 * k, 0.0, p, 1, 1) for k in range(3)]
    first.submit(targets, time.monotonic())
    got_first = drive(first, belt, lambda g: sum(c.received[i] for c in ctrls for i in (61, 62, 63)) >= 2)
    sent = {i for i in (61, 62, 63) if first.ledger.was_sent(i)}
    assert sent, (first.status(), first.ledger.counters, got_first)  # the first life sent some picks, then "dies"
    for c in first.clients.values():
        c.close()  # the process is gone: its sockets close; nothing else is cleaned up
    second = DeltaBackend(robots, SPEEDS, DeltaOptions(max_in_flight=2, geometry=GEO, ledger_path=ledger))
    assert second.ledger.counters["restored_open"] + second.ledger.counters["restored_finished"] == 3
    second.submit(targets, time.monotonic())  # the grasp selector offers them again
    assert second.ledger.counters["repeated_candidates"] == 3
    got_second = drive(second, belt, lambda g: not second.in_flight())
    second.close()
    ended = [f.pick_id for f in got_first + got_second]
    assert sorted(ended) == [61, 62, 63]  # each exactly once, over both lives
    assert all(c.received[i] <= 1 for c in ctrls for i in (61, 62, 63))  # never resent
    assert sum(c.received[i] for c in ctrls for i in (61, 62, 63)) == len(sent)


def test_fanuc_tries_each_failed_spot_once_until_a_pick_succeeds():
    """Seven candidates, ranked the same in every frame, the first six pinned (nothing is
    gripped there): each is tried once before any again, so the seventh is reached (with
    only the last 5 failed spots tabu, the first came back after six failures and the
    pile cycled). After a success only the last 5 failed spots stay tabu."""
    from dataclasses import replace

    port = free_ports(2)
    robot = replace(line_robots(1, first_x=0.0)[0], port=port, base=(-0.7, 0.0, 0.0), window=(-0.35, 0.35),
                    workspace=Box((0.35, -0.6, -0.02), (1.05, 0.6, 0.6)), home=None)
    spots = [0.10 + 0.03 * k for k in range(7)]  # world x, m: 30 mm apart (tabu radius 15 mm)
    liftable = {6}
    emu = EmulatedRmiController(Box((350, -600, -20), (1050, 600, 600)), (700, 0, 600), port=port,
                                accel_mm_s2=20000,
                                on_suction=lambda xyz: any(abs(xyz[0] - (0.7 + spots[k])) < 0.005
                                                           for k in liftable)).start()
    be = FanucBackend([robot], FAST, FanucOptions(place_positions={1: (0.0, 0.5, 0.3)}))
    try:
        tried = []
        for frame in range(8):  # each frame: the same seven spots under new pick ids
            ids = {100 * frame + k: k for k in range(7)}
            be.submit([Target(i, spots[k], 0.05, 0.0, float("nan"), 1, 1) for i, k in ids.items()],
                      time.monotonic())
            got: list = []
            assert wait_until(lambda got=got: got.extend(be.tick(time.monotonic())) or got, 20), be.status()
            tried.append((ids[got[0].pick_id], got[0].state))
            if got[0].state == PickState.DONE:
                break
        assert [k for k, _ in tried] == [0, 1, 2, 3, 4, 5, 6]
        assert [s for _, s in tried] == [PickState.FAILED] * 6 + [PickState.DONE]
        assert len(be.tabu) == 5  # spots 1-5: 0 is the oldest failure, let go after the success
        be.submit([Target(900 + k, spots[k], 0.05, 0.0, float("nan"), 1, 1) for k in range(7)], time.monotonic())
        got = []
        assert wait_until(lambda: got.extend(be.tick(time.monotonic())) or got, 20)
        assert got[0].pick_id == 900
    finally:
        be.close()
        emu.stop()
