"""Spots where a bin pick gripped nothing, kept so that an unchanged pile does not get the
same failed pick again: the FANUC bridge's rule, which ``bin_picks.py`` replays offline.

Units are the caller's: ``radius`` in those of x and y (m in the world, or px).

An exemption for candidates lying higher than the failed pick (something lies on what
failed, so pick that) was tried on 2026-12-05 and dropped: the exempted candidates were as
often the failed object's own raised part, split off by the model, and the offline loop on
sim seed 1 fell from 0.748 to 0.722 ("Bin picks: why free objects look covered",
docs/models.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TabuSpots:
    """Failed pick spots (x, y).

    Args:
        radius: a candidate closer than this to a failed spot is blocked.
        keep_after_success: after a pick succeeds the pile has changed; the newest this
            many spots stay blocked (the others are let go).
    """

    radius: float
    keep_after_success: int = 5
    spots: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"tabu radius must be > 0, got {self.radius}")
        if self.keep_after_success < 0:
            raise ValueError(f"keep_after_success must be >= 0, got {self.keep_after_success}")

    def blocks(self, x: float, y: float) -> bool:
        """Whether a candidate at (x, y) is tabu."""
        return any(math.hypot(x - sx, y - sy) < self.radius for sx, sy in self.spots)

    def failed(self, x: float, y: float) -> None:
        """A pick at (x, y) gripped nothing."""
        self.spots.append((float(x), float(y)))

    def succeeded(self) -> None:
        """A pick lifted an object: only the newest ``keep_after_success`` spots stay."""
        del self.spots[:max(0, len(self.spots) - self.keep_after_success)]

    def clear(self) -> None:
        """Every candidate is tabu: start over."""
        self.spots.clear()

    def __len__(self) -> int:
        return len(self.spots)
