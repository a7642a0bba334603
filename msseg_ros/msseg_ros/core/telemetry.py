"""Counters, rates and latency statistics that nodes report in /diagnostics.

Plain Python so that they are unit-tested without ROS. Times are seconds from a
monotonic clock unless stated.
"""
from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

import numpy as np


class RateMeter:
    """Events per second over a sliding window.

    Args:
        window: window length, s.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._stamps: collections.deque[float] = collections.deque()

    def tick(self) -> None:
        self._stamps.append(self.clock())
        self._trim()

    def _trim(self) -> None:
        horizon = self.clock() - self.window
        while self._stamps and self._stamps[0] < horizon:
            self._stamps.popleft()

    @property
    def hz(self) -> float:
        self._trim()
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0


class LatencyStats:
    """Keeps the last ``size`` latencies (s) and reports them in milliseconds."""

    def __init__(self, size: int = 200) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, seconds: float) -> None:
        if math.isfinite(seconds):
            self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile (0..100) in ms; NaN when empty."""
        if not self._values:
            return math.nan
        xs = sorted(self._values)
        k = (len(xs) - 1) * q / 100.0
        lo, hi = math.floor(k), math.ceil(k)
        return 1000.0 * (xs[lo] + (xs[hi] - xs[lo]) * (k - lo))

    def summary(self) -> dict[str, float]:
        return {
            "latency_p50_ms": self.percentile_ms(50),
            "latency_p90_ms": self.percentile_ms(90),
            "latency_max_ms": self.percentile_ms(100),
        }


class Counters(collections.Counter[str]):
    """Named event counts (``counters['bad_encoding'] += 1``), reported as they are."""


class PickIdAudit:
    """Checks, from outside the nodes, that pick ids name one object each and end once.

    ``reused``: pick ids seen on candidates more than ``tolerance`` m apart on the belt
    (the line cell: belt-fixed coordinates ``(x - belt_position, y)``), i.e. one id given
    to two objects, as a grasp selector that lost its state on a restart would.
    ``ended_twice``: pick ids with more than one final result on robot/pick_results.
    """

    def __init__(self, tolerance: float = 0.05) -> None:
        self.tolerance = tolerance
        self._where: dict[int, tuple[float, float]] = {}
        self._reused: set[int] = set()
        self._ended: collections.Counter[int] = collections.Counter()

    def add_candidates(self, rows: np.ndarray) -> None:
        """Rows of the CANDIDATES table (x, y, m; belt_position, m, NaN off the line)."""
        for r in rows:
            p = float(r["belt_position"])
            if not math.isfinite(p):
                continue
            pid, here = int(r["pick_id"]), (float(r["x"]) - p, float(r["y"]))
            first = self._where.setdefault(pid, here)
            if math.dist(first, here) > self.tolerance:
                self._reused.add(pid)

    def add_results(self, rows: np.ndarray) -> None:
        """Rows of the PICK_RESULTS table."""
        for r in rows:
            self._ended[int(r["pick_id"])] += 1

    def summary(self) -> dict[str, int]:
        return {"issued": len(self._where), "reused": len(self._reused), "ended": len(self._ended),
                "ended_twice": sum(1 for n in self._ended.values() if n > 1)}
