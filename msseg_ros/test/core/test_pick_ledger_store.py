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
