"""core/robots: delta kinematics, conveyor tracking, scheduling, the pick ledger, the
register map. Pure functions, no sockets."""
import math

import numpy as np
import pytest

from msseg_ros.core.robots import modbus_map as mm
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.errors import DuplicatePickError, RobotConfigError, WorkspaceError
from msseg_ros.core.robots.kinematics import Box, DeltaGeometry, move_time
from msseg_ros.core.robots.lifecycle import PickLedger, PickState
from msseg_ros.core.robots.scheduler import CAPACITY, CLASS_NOT_SORTED, Scheduler
from msseg_ros.core.robots.tracking import (
    NOT_YET,
    OUT_OF_WINDOW,
    WORKSPACE,
    BeltState,
    Plan,
    Target,
    plan_pick,
)

GEO = DeltaGeometry()


def test_inverse_and_forward_kinematics_round_trip():
    rng = np.random.default_rng(0)
    pts = rng.uniform([-0.3, -0.3, -1.05], [0.3, 0.3, -0.75], size=(200, 3))
    for p in pts:
        theta = GEO.inverse(p)
        assert np.all(theta >= GEO.joint_min) and np.all(theta <= GEO.joint_max)
        assert np.allclose(GEO.forward(theta), p, atol=1e-9)


def test_symmetric_point_gives_equal_joints():
    theta = GEO.inverse((0.0, 0.0, -1.0))
    assert np.allclose(theta, theta[0]) and 0 < theta[0] < math.pi / 2


def test_out_of_reach_and_joint_limits_are_named():
    with pytest.raises(WorkspaceError, match=r"out of reach of arm"):
        GEO.inverse((0.0, 0.0, -2.0))
    with pytest.raises(WorkspaceError, match=r"needs joint \d at .* outside"):
        DeltaGeometry(joint_max=math.radians(30)).inverse((0.0, 0.0, -1.0))
    with pytest.raises(RobotConfigError, match="cannot be reached"):
        GEO.check_box(Box((-0.3, -0.3, -1.3), (0.3, 0.3, -0.75)))


def test_move_time_trapezoid():
    assert move_time(0.0, 4.0, 30.0) == 0.0
    assert move_time(0.3, 4.0, 30.0) == pytest.approx(2 * math.sqrt(0.3 / 30))  # never reaches 4 m/s
    assert move_time(2.0, 4.0, 30.0) == pytest.approx(2.0 / 4.0 + 4.0 / 30.0)


ROBOTS = line_robots(2, first_x=2.0, spacing=0.7, geometry=GEO)
SPEEDS = Speeds()


def target(pid=1, x=0.5, y=0.0, belt=0.0, cls=1, bin_=1, score=1.0):
    return Target(pid, x, y, 0.0, belt, cls, bin_, score)


def test_plan_meets_the_object_inside_the_window_less_the_grip_margin():
    belt = BeltState(0.0, 0.5, 0.0)
    plan = plan_pick(ROBOTS[0], SPEEDS, target(x=0.5), belt, t_free=0.0, now=0.0, geometry=GEO)
    assert isinstance(plan, Plan)
    w0, w1 = ROBOTS[0].window
    # the object enters the window at t = (w0 - 0.5) / 0.5 = 2.5 s; the robot waits for it
    assert plan.t_arrive == pytest.approx((w0 - 0.5) / 0.5)
    assert w0 <= plan.point[0] <= w1
    assert plan.point[0] == pytest.approx(0.5 + 0.5 * plan.t_grip)  # x_d + (p - p_d)
    assert plan.t_done > plan.t_grip > plan.t_arrive > plan.t_start >= 0.0


def test_plan_refuses_late_objects_and_stopped_belts_and_lateral_misses():
    belt = BeltState(10.0, 0.5, 0.0)  # the candidate was at x=0.5 when the belt read 0.0
    assert plan_pick(ROBOTS[0], SPEEDS, target(x=0.5), belt, 0.0, 0.0, GEO) == OUT_OF_WINDOW
    stopped = BeltState(0.0, 0.0, 0.0)
    assert plan_pick(ROBOTS[0], SPEEDS, target(x=0.5), stopped, 0.0, 0.0, GEO) == NOT_YET
    assert plan_pick(ROBOTS[0], SPEEDS, target(x=0.5, y=0.5), BeltState(0.0, 0.5, 0.0), 0.0, 0.0, GEO) == WORKSPACE


def test_grip_margin_rejects_an_object_that_would_leave_during_the_grip():
    w1 = ROBOTS[0].window[1]
    belt = BeltState(0.0, 0.5, 0.0)
    # arrives just before the window end: the grip would end past it
    late = target(x=w1 - 0.5 * SPEEDS.latency - 0.01)
    assert plan_pick(ROBOTS[0], SPEEDS, late, belt, 0.0, 0.0, GEO) == OUT_OF_WINDOW


def test_scheduler_upstream_first_then_downstream_when_busy():
    s = Scheduler(ROBOTS, SPEEDS, max_in_flight=1, geometry=GEO)
    belt = BeltState(0.0, 0.5, 0.0)
    s.add(target(1, x=0.5))
    s.add(target(2, x=0.45))
    plans, dropped = s.step(belt, 0.0)
    assert [(p.pick_id, p.robot) for p in plans] == [(1, 1), (2, 2)]
    assert dropped == []


def test_scheduler_value_priority_and_reasons():
    values = {2: 5.0}  # class 2 is worth more
    s = Scheduler(ROBOTS[:1], SPEEDS, max_in_flight=1, class_values=values, geometry=GEO)
    belt = BeltState(0.0, 0.5, 0.0)
    s.add(target(1, x=0.5, cls=1))
    s.add(target(2, x=0.49, cls=2, bin_=2))
    plans, _ = s.step(belt, 0.0)
    assert [p.pick_id for p in plans] == [2]
    assert s.add(target(3, bin_=0)) == CLASS_NOT_SORTED
    assert s.add(target(4, y=0.9)) == WORKSPACE
    # the robot stays busy: target 1 drifts past the window -> capacity (an idle robot could have)
    _, dropped = s.step(BeltState(0.0, 0.5, 0.0), 4.0)
    assert dropped == [(target(1, x=0.5, cls=1), CAPACITY)]
    s.add(target(5, x=0.5))
    _, dropped = s.step(BeltState(30.0, 0.5, 0.0), 60.0)
    assert dropped[0][1] == OUT_OF_WINDOW


def test_ledger_never_sends_twice_and_finishes_once():
    led = PickLedger()
    t = target(7)
    assert led.add(t) is not None and led.add(t) is None
    led.assign(7, Plan(1, 7, 0, 1, 2, 3, (0, 0, 0)))
    led.mark_sent(7)
    with pytest.raises(DuplicatePickError, match="pick 7 was already sent"):
        led.mark_sent(7)
    assert led.finish(7, PickState.DONE) is not None
    assert led.finish(7, PickState.FAILED) is None
    assert led.counters["repeated_results"] == 1 and led[7].state == PickState.DONE
    with pytest.raises(DuplicatePickError):
        led.mark_sent(7)  # even after it finished


def test_register_map_round_trip():
    regs = mm.encode_command(123456, 0.125, -0.25, -1.0, 1234.5678, 3, 65535)
    assert len(regs) == mm.COMMAND_COUNT and all(0 <= r <= 0xFFFF for r in regs)
    pid, x, y, z, belt, bin_, hs = mm.decode_command(regs)
    assert (pid, bin_, hs) == (123456, 3, 65535) and belt == 1234.5678
    assert (x, y, z) == pytest.approx((0.125, -0.25, -1.0))
    status = mm.encode_status(heartbeat=5, state=1, error=0, queued=2, last_accepted=9, last_done=8, handshake=4,
                              answer=0, result_count=12, done=10, results=[(i, i % 5) for i in range(1, 12)],
                              queue=[9, 10])
    st = mm.Status.decode(status)
    assert len(status) == mm.STATUS_COUNT
    assert st.results == tuple((i, i % 5) for i in range(4, 12))  # the last 8, oldest first
    assert st.queue == (9, 10) and st.last_done == 8


def test_plans_do_not_depend_on_the_clock_epoch():
    """ROS stamps are epoch seconds (~1.8e9 s): rounding must not turn a pick into a miss."""
    for t0 in (0.0, 1.8e9, 1795263170.0645733):
        belt = BeltState(0.19640493392944336, 0.5, t0)
        plan = plan_pick(ROBOTS[0], SPEEDS, target(x=0.3, belt=0.1917203664779663), belt, t0, t0 + 0.005, GEO)
        assert isinstance(plan, Plan), (t0, plan)
        assert plan.point[0] == pytest.approx(ROBOTS[0].window[0] + 0.5 * (plan.t_grip - plan.t_arrive), abs=1e-5)


def test_dry_run_backend_without_a_belt_picks_in_place():
    from dataclasses import replace

    from msseg_ros.core.robots.backends import DryRunBackend, LineOptions

    robot = replace(ROBOTS[0], base=(-0.7, 0.0, 0.0), window=(-0.35, 0.35),
                    workspace=Box((0.35, -0.6, -0.02), (1.05, 0.6, 0.6)), home=None)
    be = DryRunBackend([robot], Speeds(max_speed=2.0, max_accel=5.0), LineOptions(beltless=True))
    be.submit([Target(1, 0.1, 0.05, 0.0, float("nan"), 1, 1)], 100.0)
    assert be.tick(100.0) == [] and [r.state for r in be.in_flight()] == [PickState.SENT]
    (f,) = be.tick(110.0)
    assert (f.pick_id, f.robot, f.state) == (1, 1, PickState.DONE)
    assert f.point == pytest.approx((0.1, 0.05, 0.0))


def test_ledger_stays_bounded_and_scans_only_open_picks():
    led = PickLedger(keep=3)
    for i in range(1, 11):
        led.add(target(i))
        led.assign(i, Plan(1, i, 0, 1, 2, 3, (0, 0, 0)))
        led.mark_sent(i)
        if i != 5:
            led.finish(i, PickState.DONE)
    assert sorted(led.records) == [5, 8, 9, 10]  # the open one and the last 3 finished
    assert [r.target.pick_id for r in led.in_state(PickState.SENT)] == [5]
    with pytest.raises(DuplicatePickError):
        led.mark_sent(1)  # forgotten record, still never sent again
    assert led.add(target(2)) is None
