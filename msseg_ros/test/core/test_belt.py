import pytest

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.sim.belt import Belt


def test_travel_is_quantised_and_monotonic():
    b = Belt(speed=0.5, resolution=1e-3)
    positions = []
    for _ in range(100):
        b.advance(0.005)
        positions.append(b.position)
    assert positions == sorted(positions)
    assert b.counts == 250 and abs(b.position - 0.25) < 1e-12
    b.set_speed(0.0)
    b.advance(10.0)
    assert b.counts == 250  # a stopped belt does not move


def test_bad_values_named():
    with pytest.raises(ConfigError, match="belt speed must be a finite value >= 0 m/s, got -1"):
        Belt(speed=-1)
    with pytest.raises(ConfigError, match="encoder resolution must be > 0 m, got 0"):
        Belt(resolution=0)
    with pytest.raises(ConfigError, match="time step must be >= 0 s"):
        Belt().advance(-0.1)
