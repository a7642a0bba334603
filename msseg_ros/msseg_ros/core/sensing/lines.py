"""Encoder-triggered line acquisition and frame assembly (the line scanner's core).

One line is acquired every ``line_pitch`` metres of belt travel: line i at travel
``i * line_pitch``. Frames hold ``frame_lines`` rows; consecutive frames share
``overlap_lines`` rows, so frame k starts at line ``k * (frame_lines - overlap_lines)``.

* Belt stopped: no new lines.
* Reverse motion: no line is acquired twice; acquisition resumes once the belt passes
  the furthest position seen.
* Encoder jump (a dropped message, a glitch): lines up to ``max_gap_lines`` are
  acquired at interpolated stamps; a bigger jump marks the missing lines as gaps (NaN
  rows, counted), never silently invented.
* Calibration, per channel: ``(raw - dark) / (white - dark) * scale`` (dark/white
  reference to reflectance counts; X-ray normalisation to 65535 with dark 0, white = air).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from msseg_ros.core.sim.sorting_line import SortingLineConfig

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.registry import Registry


@dataclass
class LineRequest:
    """Lines to acquire: indices, their acquisition stamps (s), and which are gaps."""

    indices: np.ndarray
    stamps: np.ndarray
    gaps: np.ndarray


@dataclass
class AssembledFrame:
    first_line: int
    stamp: float  # acquisition time of row 0, s
    image: np.ndarray  # (frame_lines, W, C) float32
    gap_lines: int


@dataclass
class LineAssembler:
    line_pitch: float
    frame_lines: int
    overlap_lines: int = 0
    max_gap_lines: int = 50
    counters: dict[str, Any] = field(default_factory=lambda: {"lines": 0, "gap_lines": 0, "reverse_msgs": 0,
                                                     "stopped_msgs": 0, "frames": 0})

    def __post_init__(self) -> None:
        if not self.line_pitch > 0:
            raise ConfigError(f"line_pitch must be > 0 m, got {self.line_pitch!r}")
        if not 0 <= self.overlap_lines < self.frame_lines:
            raise ConfigError(f"need 0 <= overlap_lines < frame_lines, got {self.overlap_lines}, {self.frame_lines}")
        self.next_line: int | None = None
        self.last: tuple[float, float] | None = None  # (stamp, position) of the furthest sample
        self.rows: dict[int, tuple[float, np.ndarray | None]] = {}
        self.next_frame = 0

    @property
    def stride(self) -> int:
        return self.frame_lines - self.overlap_lines

    def feed(self, stamp: float, position: float) -> LineRequest:
        """An encoder sample; returns the lines to acquire now."""
        empty = LineRequest(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
        if self.last is None:
            self.last = (stamp, position)
            self.next_line = math.floor(position / self.line_pitch) + 1
            self.next_frame = math.ceil(self.next_line / self.stride)
            return empty
        t0, p0 = self.last
        if position < p0:
            self.counters["reverse_msgs"] += 1
            return empty
        if position == p0:
            self.counters["stopped_msgs"] += 1
            self.last = (stamp, p0)
            return empty
        last_line = math.floor(position / self.line_pitch + 1e-9)
        assert self.next_line is not None  # set with self.last
        idx = np.arange(self.next_line, last_line + 1, dtype=np.int64)
        self.last = (stamp, position)
        if len(idx) == 0:
            return empty
        self.next_line = last_line + 1
        travel = idx * self.line_pitch
        stamps = t0 + (travel - p0) / (position - p0) * (stamp - t0)
        gaps = np.zeros(len(idx), bool)
        if len(idx) > self.max_gap_lines:
            gaps[:-1] = True  # only the line at the current position is real
        self.counters["gap_lines"] += int(gaps.sum())
        return LineRequest(idx, stamps, gaps)

    def add(self, index: int, stamp: float, line: np.ndarray | None) -> list[AssembledFrame]:
        """Store an acquired line (None for a gap); returns frames that became complete."""
        self.rows[int(index)] = (stamp, line)
        self.counters["lines"] += 1
        out = []
        while True:
            first = self.next_frame * self.stride
            need = range(first, first + self.frame_lines)
            if not all(i in self.rows for i in need):
                break
            stack, gaps = [], 0
            width_ref = next((r[1] for i in need if (r := self.rows[i])[1] is not None), None)
            for i in need:
                s, ln = self.rows[i]
                if ln is None:
                    gaps += 1
                    ln = np.full_like(width_ref, np.nan) if width_ref is not None else None
                stack.append(ln)
            if width_ref is None:  # the whole frame is a gap: nothing to publish
                self.next_frame += 1
                continue
            out.append(AssembledFrame(first, self.rows[first][0],
                                      np.stack([ln for ln in stack if ln is not None]).astype(np.float32), gaps))
            self.counters["frames"] += 1
            self.next_frame += 1
            for i in list(self.rows):
                if i < self.next_frame * self.stride:
                    del self.rows[i]
        return out


def calibrate(raw: np.ndarray, dark: np.ndarray, white: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-channel ``(raw - dark) / (white - dark) * scale`` on (..., C)."""
    span = np.asarray(white, np.float64) - np.asarray(dark, np.float64)
    if np.any(span == 0):
        raise ConfigError("calibration white and dark references must differ on every channel")
    return ((raw - dark) / span * scale).astype(np.float32)


class LineSource:
    """Interface of line sources: ``lines(indices)`` -> (n, W, C) float32 raw lines."""

    channels: int
    width: int

    def lines(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _line_sources() -> Registry[Callable[..., LineSource]]:
    reg: Registry[Callable[..., LineSource]] = Registry("line source", required=("lines",))

    @reg.register("sim")
    class SimLineSource(LineSource):
        """Lines of the deterministic sorting-line world."""

        def __init__(self, world_config: SortingLineConfig) -> None:
            from msseg_ros.core.sim.sorting_line import SortingLineWorld

            self.world = SortingLineWorld(world_config)
            self.channels = 11
            self.width = world_config.columns

        def lines(self, indices: np.ndarray) -> np.ndarray:
            idx = np.asarray(indices, np.int64)
            out = np.empty((len(idx), self.width, self.channels), np.float32)
            start = 0
            while start < len(idx):  # render runs of consecutive lines at once
                end = start + 1
                while end < len(idx) and idx[end] == idx[end - 1] + 1:
                    end += 1
                out[start:end] = self.world.render(int(idx[start]), end - start).image
                start = end
            return out

    @reg.register("live")
    class LiveLineSource(LineSource):
        """A vendor line-scan SDK would plug in here, behind this interface."""

        def __init__(self, world_config: SortingLineConfig | None = None) -> None:
            raise ConfigError("no line-scan SDK backend is installed on this machine; "
                              "the available line source is 'sim'")

    return reg


LINE_SOURCES = _line_sources()
