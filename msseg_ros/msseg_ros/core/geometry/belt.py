"""Belt position as a function of time, from encoder messages (tf2 is not available).

A :class:`BeltBuffer` keeps (stamp s, position m) samples, monotonic in time, and
interpolates linearly. A stamp outside the buffered span is an error
(:class:`OutOfBufferError`), never an extrapolated guess.
"""
from __future__ import annotations

import bisect
from collections import deque

from msseg_ros.core.errors import MssegError


class OutOfBufferError(MssegError, LookupError):
    """The stamp lies outside the buffered span; the message gives both."""


class BeltBuffer:
    """Args: span: how many seconds of history to keep."""

    def __init__(self, span: float = 10.0) -> None:
        self.span = span
        self._t: deque[float] = deque()
        self._p: deque[float] = deque()
        self.out_of_order = 0

    def add(self, stamp: float, position: float) -> None:
        if self._t and stamp <= self._t[-1]:
            self.out_of_order += 1  # late or duplicate sample: ignored
            return
        self._t.append(stamp)
        self._p.append(position)
        while self._t and self._t[0] < stamp - self.span:
            self._t.popleft()
            self._p.popleft()

    def __len__(self) -> int:
        return len(self._t)

    def position_at(self, stamp: float) -> float:
        """Belt travel (m) at ``stamp`` (s), linearly interpolated."""
        if not self._t:
            raise OutOfBufferError(f"no belt position yet (asked for t={stamp:.6f} s)")
        if stamp < self._t[0] or stamp > self._t[-1]:
            raise OutOfBufferError(
                f"t={stamp:.6f} s is outside the buffered span [{self._t[0]:.6f}, {self._t[-1]:.6f}] s"
            )
        i = bisect.bisect_left(self._t, stamp)
        if self._t[i] == stamp:
            return self._p[i]
        t0, t1, p0, p1 = self._t[i - 1], self._t[i], self._p[i - 1], self._p[i]
        return p0 + (p1 - p0) * (stamp - t0) / (t1 - t0)
