"""The pick ledger on disk: sqlite in WAL mode, one row per pick_id.

A robot bridge that restarts (a crash, a respawn) opens the same file and learns every
pick_id it has seen, so none is sent twice and each ends exactly once. A state change is
committed before the bridge acts on it (``synchronous=FULL`` for the sent mark: the row
says "sent" before the command leaves). Rows older than ``keep`` finished picks are
deleted as new ones finish.
"""
from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from msseg_ros.core.robots.errors import RobotConfigError
from msseg_ros.core.robots.tracking import Target

SCHEMA = """
CREATE TABLE IF NOT EXISTS picks (
    pick_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    robot INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    x REAL, y REAL, z REAL, belt_position REAL,
    class_id INTEGER, bin INTEGER, score REAL,
    seq INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class StoredPick:
    """One row: the pick's state and the target it was made from."""

    target: Target
    state: str
    robot: int
    reason: str


def _float(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) else float("nan")


def _row(r: tuple[object, ...]) -> StoredPick:
    target = Target(int(str(r[0])), _float(r[4]), _float(r[5]), _float(r[6]), _float(r[7]),
                    int(str(r[8] or 0)), int(str(r[9] or 0)), _float(r[10]))
    return StoredPick(target, str(r[1]), int(str(r[2])), str(r[3]))


class LedgerStore:
    """An sqlite file of pick states; safe to share between the bridge's threads.

    Args:
        path: the database file (its folder is created).
        keep: finished rows kept; older finished rows are deleted.

    Raises:
        RobotConfigError: the file cannot be opened or is not a ledger.
    """

    def __init__(self, path: str | Path, keep: int = 100_000) -> None:
        self.path = Path(path)
        self.keep = keep
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(SCHEMA)
            self._seq = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM picks").fetchone()[0])
        except sqlite3.Error as exc:
            raise RobotConfigError(f"pick ledger {str(self.path)!r} cannot be used: {exc}") from None

    def load(self) -> list[StoredPick]:
        """Every stored pick, in the order they were last changed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT pick_id, state, robot, reason, x, y, z, belt_position, class_id, bin, score "
                "FROM picks ORDER BY seq").fetchall()
        return [_row(r) for r in rows]

    def put(self, pick: StoredPick, final: bool = False) -> None:
        """Insert or update one pick, committed when this returns."""
        t = pick.target
        with self._lock:
            self._seq += 1
            self._db.execute(
                "INSERT INTO picks (pick_id, state, robot, reason, x, y, z, belt_position, class_id, bin, score, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(pick_id) DO UPDATE SET "
                "state=excluded.state, robot=excluded.robot, reason=excluded.reason, seq=excluded.seq",
                (t.pick_id, pick.state, pick.robot, pick.reason, t.x, t.y, t.z, t.belt_position,
                 t.class_id, t.bin, t.score, self._seq))
            if final and self._seq % 1000 == 0:  # prune now and then, oldest finished first
                self._db.execute(
                    "DELETE FROM picks WHERE state IN ('done', 'missed', 'failed', 'rejected', 'skipped') AND seq < "
                    "(SELECT seq FROM picks WHERE state IN ('done', 'missed', 'failed', 'rejected', 'skipped') "
                    "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (self.keep,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
