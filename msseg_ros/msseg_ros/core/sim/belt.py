"""The conveyor belt and its incremental encoder.

The belt's travel is integrated from its speed; the encoder reports whole counts, so
positions are multiples of ``resolution``. Travel is monotonic: the encoder counter's
wrap is handled here (it is an unbounded Python int), as the contract requires of the
encoder source.
"""
from __future__ import annotations

from dataclasses import dataclass

from msseg_ros.core.errors import ConfigError


@dataclass
class Belt:
    """A belt moving along world +x.

    Attributes:
        speed: m/s, >= 0.
        resolution: m per encoder count, > 0.
        travel: exact integrated travel, m.
    """

    speed: float = 0.5
    resolution: float = 1e-4
    travel: float = 0.0

    def __post_init__(self) -> None:
        self.set_speed(self.speed)
        if not self.resolution > 0:
            raise ConfigError(f"encoder resolution must be > 0 m, got {self.resolution!r}")

    def set_speed(self, speed: float) -> None:
        if not 0.0 <= speed < float("inf"):
            raise ConfigError(f"belt speed must be a finite value >= 0 m/s, got {speed!r}")
        self.speed = float(speed)

    def advance(self, dt: float) -> None:
        """Move the belt for ``dt`` seconds at the current speed."""
        if dt < 0:
            raise ConfigError(f"time step must be >= 0 s, got {dt!r}")
        self.travel += self.speed * dt

    @property
    def counts(self) -> int:
        """Encoder counts since start."""
        return int(self.travel // self.resolution)

    @property
    def position(self) -> float:
        """Encoder-quantised belt travel, m (what conveyor/joint_states reports)."""
        return self.counts * self.resolution
