"""The picking-line simulation behind the Multipick benchmark, and its upper bound."""
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.kinematics import DeltaGeometry
from msseg_ros.core.robots.linesim import arrivals, simulate, upper_bound

GEO = DeltaGeometry()


def test_light_load_is_almost_all_picked_and_the_bound_holds():
    robots = line_robots(4, first_x=2.0, geometry=GEO)
    objs = arrivals(3.0, 10.0, 0.5, 0.548, delay=1.5, seed=1)
    res = simulate(robots, Speeds(), objs, 0.5, geometry=GEO)
    bound = upper_bound(robots, Speeds(), objs, 0.5)
    assert res.picked <= bound <= len(objs)
    assert res.fraction >= 0.9
    assert sum(res.by_robot.values()) == res.picked
    assert res.by_robot[1] >= res.by_robot[4]  # upstream first


def test_an_overloaded_robot_is_bounded_below_the_arrivals():
    robots = line_robots(1, first_x=2.0, geometry=GEO)
    objs = arrivals(8.0, 10.0, 0.5, 0.548, delay=1.5, seed=2)
    res = simulate(robots, Speeds(), objs, 0.5, geometry=GEO)
    bound = upper_bound(robots, Speeds(), objs, 0.5)
    assert res.picked <= bound < len(objs) / 2  # one robot cannot take 8 objects/s
    assert res.unpicked.get("capacity", 0) > 0
    assert res.picked / bound > 0.5
