"""The pick ledger on disk (sqlite, WAL): a restart knows every pick_id; each ends once."""
import sqlite3

import pytest

from msseg_ros.core.robots.backends import DryRunBackend, LineOptions
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.errors import DuplicatePickError, RobotConfigError
from msseg_ros.core.robots.ledger_store import LedgerStore
from msseg_ros.core.robots.lifecycle import PickLedger, PickState
from msseg_ros.core.robots.tracking import Target


def _t(pid):
    return Target(pid, 0.5, 0.0, 0.0, 0.0, 1, 1, 0.9)


def test_a_new_ledger_on_the_same_file_knows_every_pick(tmp_path):
    path = tmp_path / "l.sqlite"
    a = PickLedger(store=LedgerStore(path))
    for pid in (1, 2, 3):
        a.add(_t(pid))
    a.mark_sent(1)
    a.mark_sent(2)
    a.finish(2, PickState.DONE, robot=1)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    b = PickLedger(store=LedgerStore(path))  # the process died; a new one starts
    reopened = {r.target.pick_id: r.state for r in b.restore()}
    assert reopened == {1: PickState.SENT, 3: PickState.PENDING}
    assert b[1].target == _t(1)
    for pid in (1, 2, 3):
        assert b.add(_t(pid)) is None  # offered again: refused
    assert b.counters["repeated_candidates"] == 3
    with pytest.raises(DuplicatePickError):
        b.mark_sent(1)
    with pytest.raises(DuplicatePickError):
        b.mark_sent(2)  # finished before the restart: never sent again


def test_restarted_backend_ends_each_open_pick_once_as_lost_in_restart(tmp_path):
    path = str(tmp_path / "l.sqlite")
    robots = line_robots(1)
    first = DryRunBackend(robots, Speeds(), LineOptions(beltless=True, ledger_path=path))
    first.submit([_t(7), _t(8)], 0.0)
    first.ledger.mark_sent(7)  # 7 left; 8 not yet sent when the process dies
    second = DryRunBackend(robots, Speeds(), LineOptions(beltless=True, ledger_path=path))
    ended = {(f.pick_id, f.state, f.reason) for f in second.tick(0.0)}
    assert ended == {(7, PickState.FAILED, "lost_in_restart"), (8, PickState.MISSED, "lost_in_restart")}
    assert second.tick(0.1) == []
    third = DryRunBackend(robots, Speeds(), LineOptions(beltless=True, ledger_path=path))
    assert third.tick(0.0) == []  # settled once: a third life has nothing to report
    for be in (first, second, third):
        be.close()


def test_a_file_that_is_no_ledger_is_refused(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RobotConfigError, match="cannot be used"):
        LedgerStore(bad)


def _on_belt(pid, x, y, belt):
    """A target at world (x, y) as of belt travel ``belt``."""
    return Target(pid, x, y, 0.0, belt, 1, 1, 0.9)


def test_one_object_under_two_pick_ids_is_taken_once_even_after_a_restart(tmp_path):
    from msseg_ros.core.robots.backends import NEAR_ANOTHER_PICK

    path = str(tmp_path / "l.sqlite")
    robots = line_robots(2)
    first = DryRunBackend(robots, Speeds(), LineOptions(ledger_path=path, min_pick_separation=0.025))
    # pick 1 at belt spot x - travel = -1.0; pick 2 is the same spot seen 0.3 m of travel later
    first.submit([_on_belt(1, 0.0, 0.05, 1.0), _on_belt(2, 0.3 + 0.01, 0.05 + 0.01, 1.3)], 0.0)
    ended = first.tick(0.0)
    assert [(f.pick_id, f.state, f.reason) for f in ended] == [(2, PickState.SKIPPED, NEAR_ANOTHER_PICK)]
    first.submit([_on_belt(3, 0.0, 0.05 + 0.03, 1.0)], 0.0)  # 3 cm across: another object
    assert first.tick(0.0) == [] and 3 in first.scheduler.pending
    first.ledger.mark_sent(1)  # 1 leaves for a robot; the process dies before its outcome
    first.close()
    second = DryRunBackend(robots, Speeds(), LineOptions(ledger_path=path, min_pick_separation=0.025))
    assert {(f.pick_id, f.state) for f in second.tick(0.0)} == {(1, PickState.FAILED), (3, PickState.MISSED)}
    # pick 1's spot again under a new id: 1 may have been picked, so not again; 3 was never
    # sent, so its object is still there to pick
    second.submit([_on_belt(4, 0.5, 0.05, 1.5), _on_belt(5, 0.5, 0.08, 1.5)], 0.0)
    assert [(f.pick_id, f.reason) for f in second.tick(0.0)] == [(4, NEAR_ANOTHER_PICK)]
    assert 5 in second.scheduler.pending
    second.close()
    off = DryRunBackend(robots, Speeds(), LineOptions(min_pick_separation=0.0))
    off.submit([_on_belt(1, 0.0, 0.05, 1.0), _on_belt(2, 0.3, 0.05, 1.3)], 0.0)
    assert off.tick(0.0) == [] and set(off.scheduler.pending) == {1, 2}


def test_spots_that_passed_every_window_are_forgotten():
    from msseg_ros.core.robots.tracking import BeltState

    robots = line_robots(1)
    be = DryRunBackend(robots, Speeds(), LineOptions(min_pick_separation=0.025))
    be.submit([_on_belt(1, 0.0, 0.05, 0.0)], 0.0)
    assert len(be._taken) == 1
    end = max(r.window[1] for r in robots)
    be.update_belt(BeltState(end + 1.5, 0.5, 0.0))
    be.tick(0.0)
    assert len(be._taken) == 0
