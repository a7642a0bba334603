"""The failed-spot rule of bin picks (core.robots.tabu)."""
import pytest

from msseg_ros.core.robots.tabu import TabuSpots


def test_a_failed_spot_blocks_its_radius():
    tabu = TabuSpots(radius=0.015)
    assert not tabu.blocks(0.10, 0.20)
    tabu.failed(0.10, 0.20)
    assert tabu.blocks(0.10, 0.20)
    assert tabu.blocks(0.11, 0.21)  # 14 mm away
    assert not tabu.blocks(0.116, 0.20)  # 16 mm away
    assert len(tabu) == 1


def test_a_success_keeps_the_newest_spots_and_clear_forgets_all():
    tabu = TabuSpots(radius=1.0, keep_after_success=2)
    for k in range(4):
        tabu.failed(10.0 * k, 0.0)
    tabu.succeeded()
    assert len(tabu) == 2 and not tabu.blocks(0.0, 0.0) and not tabu.blocks(10.0, 0.0)
    assert tabu.blocks(20.0, 0.0) and tabu.blocks(30.0, 0.0)
    short = TabuSpots(radius=1.0, keep_after_success=5, spots=[(0.0, 0.0)])
    short.succeeded()
    assert len(short) == 1  # fewer than kept: all stay
    none_kept = TabuSpots(radius=1.0, keep_after_success=0, spots=[(0.0, 0.0)])
    none_kept.succeeded()
    assert len(none_kept) == 0
    tabu.clear()
    assert len(tabu) == 0 and not tabu.blocks(20.0, 0.0)


@pytest.mark.parametrize("kwargs, message", [({"radius": 0.0}, "radius"),
                                             ({"radius": 1.0, "keep_after_success": -1}, "keep_after_success")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TabuSpots(**kwargs)
