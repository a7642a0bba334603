"""The pick lifecycle: pending -> assigned -> sent -> done / missed / failed / rejected
(or skipped). A :class:`PickLedger` is the bridge's single record of every pick_id.

Invariants:
    * a pick_id is sent at most once, ever: :meth:`PickLedger.mark_sent` raises
      :class:`DuplicatePickError` for an id already sent, even after it finished;
    * a pick finishes once: a second outcome for the same id (a controller repeating a
      result after a reconnect) is ignored and counted;
    * with a :class:`~msseg_ros.core.robots.ledger_store.LedgerStore`, both hold across
      restarts: every change is on disk before the bridge acts on it, and a new ledger
      on the same file knows every pick_id (:meth:`PickLedger.restore`).
"""
from __future__ import annotations

import collections
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from msseg_ros.core.robots.errors import DuplicatePickError
from msseg_ros.core.robots.ledger_store import LedgerStore, StoredPick
from msseg_ros.core.robots.tracking import Plan, Target
from msseg_ros.core.tables import PickStatus


class PickState(enum.Enum):
    PENDING = "pending"  # waiting for a robot
    ASSIGNED = "assigned"
    SENT = "sent"
    DONE = "done"
    MISSED = "missed"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        return self not in (PickState.PENDING, PickState.ASSIGNED, PickState.SENT)


STATUS_OF = {
    PickState.DONE: PickStatus.DONE,
    PickState.MISSED: PickStatus.MISSED,
    PickState.FAILED: PickStatus.FAILED,
    PickState.REJECTED: PickStatus.REJECTED,
    PickState.SKIPPED: PickStatus.SKIPPED,
}
STATE_OF = {v: k for k, v in STATUS_OF.items()}


@dataclass
class PickRecord:
    target: Target
    state: PickState = PickState.PENDING
    robot: int = 0
    plan: Plan | None = None
    reason: str = ""  # why it ended as it did (unpicked reasons, controller errors)

    @property
    def status(self) -> int:
        return STATUS_OF[self.state]


class PickLedger:
    """Every pick the bridge has seen, keyed by pick_id.

    Args:
        keep: finished records kept for look-ups; older ones are dropped (their ids stay
            in the sent set), so a long run does not grow without bound.
        store: where every change is written (None: this process's memory only).
    """

    def __init__(self, keep: int = 10000, store: LedgerStore | None = None) -> None:
        self.records: dict[int, PickRecord] = {}
        self.keep = keep
        self.store = store
        self._known: set[int] = set()  # finished before a restart: refused as candidates
        self._sent: set[int] = set()
        self._open: set[int] = set()  # pick_ids not finished: what the per-tick scans visit
        self._finished_order: collections.deque[int] = collections.deque()
        #: targets of the store's picks that were done or still open at a restart (their
        #: objects may still be on the belt: see LineBackend's min_pick_separation)
        self.restored_taken: list[Target] = []
        self.counters: collections.Counter[Any] = collections.Counter()

    def __contains__(self, pick_id: int) -> bool:
        return pick_id in self.records

    def __getitem__(self, pick_id: int) -> PickRecord:
        return self.records[pick_id]

    def _save(self, rec: PickRecord) -> None:
        if self.store is not None:
            self.store.put(StoredPick(rec.target, rec.state.value, rec.robot, rec.reason), final=rec.state.final)

    def restore(self) -> list[PickRecord]:
        """Load the store (a restart): finished picks become known ids (refused as new
        candidates, never sent); unfinished ones become open records again, in their
        stored state, and are returned for the backend to settle (a controller may still
        report them; otherwise their outcome is lost in the restart)."""
        if self.store is None:
            return []
        reopened = []
        for row in self.store.load():
            state, pid = PickState(row.state), row.target.pick_id
            if state in (PickState.DONE, PickState.PENDING, PickState.ASSIGNED, PickState.SENT):
                self.restored_taken.append(row.target)
            if state.final:
                self._known.add(pid)
                continue
            rec = PickRecord(row.target, state, row.robot, None, row.reason)
            self.records[pid] = rec
            self._open.add(pid)
            if state == PickState.SENT:
                self._sent.add(pid)
            reopened.append(rec)
        self.counters["restored_finished"] += len(self._known)
        self.counters["restored_open"] += len(reopened)
        return reopened

    def add(self, target: Target) -> PickRecord | None:
        """Record a new target; None (and counted) if the pick_id is already known."""
        pid = target.pick_id
        if pid in self.records or pid in self._sent or pid in self._known:
            self.counters["repeated_candidates"] += 1
            return None
        rec = PickRecord(target)
        self.records[pid] = rec
        self._open.add(pid)
        self._save(rec)
        return rec

    def assign(self, pick_id: int, plan: Plan) -> None:
        rec = self.records[pick_id]
        rec.state, rec.robot, rec.plan = PickState.ASSIGNED, plan.robot, plan
        self._save(rec)

    def mark_sent(self, pick_id: int) -> None:
        """Call just before the command leaves; raises if this id was ever sent. With a
        store, the sent mark is on disk when this returns."""
        if pick_id in self._sent or pick_id in self._known:
            self.counters["duplicate_sends_refused"] += 1
            raise DuplicatePickError(f"pick {pick_id} was already sent; a pick is never sent twice")
        self._sent.add(pick_id)
        rec = self.records[pick_id]
        rec.state = PickState.SENT
        self._save(rec)

    def was_sent(self, pick_id: int) -> bool:
        return pick_id in self._sent

    def finish(self, pick_id: int, state: PickState, reason: str = "", robot: int | None = None) -> PickRecord | None:
        """Set the outcome; None if the pick is unknown or already finished (counted)."""
        rec = self.records.get(pick_id)
        if rec is None:
            self.counters["unknown_results"] += 1
            return None
        if rec.state.final:
            self.counters["repeated_results"] += 1
            return None
        rec.state, rec.reason = state, reason
        if robot is not None:
            rec.robot = robot
        self._save(rec)
        self._open.discard(pick_id)
        self._finished_order.append(pick_id)
        while len(self._finished_order) > self.keep:
            old = self._finished_order.popleft()
            self.records.pop(old, None)
            self._known.add(old)  # its id stays refused
        self.counters[state.value] += 1
        if reason:
            self.counters[f"reason_{reason}"] += 1
        return rec

    def in_state(self, *states: PickState, robot: int | None = None) -> list[PickRecord]:
        """Records in ``states``; open states are found from the open index, not a full scan."""
        pool: Iterable[PickRecord]
        if all(not st.final for st in states):
            pool = (self.records[pid] for pid in self._open)
        else:
            pool = self.records.values()
        return [r for r in pool if r.state in states and (robot is None or r.robot == robot)]
