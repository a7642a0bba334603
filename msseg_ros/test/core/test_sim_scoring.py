"""cell_sim's ground-truth scoring of picks (sorting line and bin picking)."""
import pytest

from msseg_ros.core.sim.bin_pile import BinPileConfig
from msseg_ros.core.sim.scoring import BinScorer, LineScorer
from msseg_ros.core.sim.sorting_line import CLASSES, SortingLineConfig, SortingLineWorld

BINS = {"copper": 1, "laminated_zinc": 2, "zamak": 2, "brass": 3, "aluminium": 4, "nickel": 5}


def scorer():
    world = SortingLineWorld(SortingLineConfig(seed=3, feed_rate=4.0))
    return world, LineScorer(world, BINS, scanner_x=0.0, belt_y0=-0.274, end_x=4.0, warmup=0.0)


def grip_spot(o):
    """(b, c), m: the point of object o's footprint farthest from its edge; the centre
    (o.b, o.c) of a C-shaped part is off the part."""
    import cv2
    import numpy as np

    r = o.shape.radius * 1.5
    bb, cc = np.meshgrid(np.arange(-r, r, 0.5) + o.b * 1e3, np.arange(-r, r, 0.5) + o.c * 1e3)
    foot = (o.evaluate(bb, cc)[0] > 0).astype(np.uint8)
    k = np.unravel_index(np.argmax(cv2.distanceTransform(foot, cv2.DIST_L2, 5)), foot.shape)
    return bb[k] / 1e3, cc[k] / 1e3


def world_point(o, travel):
    """Where a spot on object o's footprint is in world at belt travel ``travel``."""
    b, c = grip_spot(o)
    return travel - b, c - 0.274


def centre_point(o, travel):
    """Where object o's shape centre is in world at belt travel ``travel``."""
    return travel - o.b, o.c - 0.274


def test_grips_are_scored_by_the_object_under_them():
    world, s = scorer()
    s.update(0.0)
    objs = [o for o in world.objects_between(0.5, 3.0) if o.rests_on is None and 0.5 <= o.b < 3.0]
    sorted_objs = [o for o in objs if o.cls in BINS]
    right, wrong = sorted_objs[0], sorted_objs[1]
    unsorted = next(o for o in objs if o.cls not in BINS)
    travel = 5.0
    s.on_candidate(travel - 0.5, 0.0, travel)  # the first detection at b = 0.5 m starts the scoring
    for i, o in enumerate(objs):
        s.on_candidate(*world_point(o, travel), travel, CLASSES.index(o.cls) + 1, pick_id=i + 100)
    s.on_candidate(*world_point(objs[0], travel), travel, 1, pick_id=100)  # the same pick again: once
    s.on_grip(1, 1, (*world_point(right, travel), 0.0), travel, BINS[right.cls])
    s.on_grip(2, 2, (*world_point(wrong, travel), 0.0), travel, BINS[wrong.cls] % 5 + 1)
    s.on_grip(2, 3, (*world_point(right, travel), 0.0), travel, 1)  # again: already picked
    s.on_grip(1, 4, (travel - 3.3, 0.27, 0.0), travel, 1)  # the belt's edge: nothing there
    s.update(3.0 + 4.0 + 0.01)  # everything up to b = 3 m has passed x = 4 m
    k = s.kpis(60.0)
    assert k["picked_right_bin"] == 1 and k["picked_wrong_bin"] == 1
    assert k["double_picks"] == 1 and k["empty_grips"] == 1
    assert k["never_detected"] == k["objects_scored"] - len(objs)
    assert min(f.obj.b for f in s.final) >= 0.5
    assert k["detected_not_picked"] == len([o for o in sorted_objs if o not in (right, wrong)])
    assert k["purity_by_bin"][str(BINS[right.cls])] in (1.0, 0.5)
    assert k["recovery"] == pytest.approx(1 / k["objects_to_sort"], abs=1e-4)
    assert k["picks_per_min_by_robot"] == {"1": 2.0, "2": 2.0}
    assert unsorted.cls not in BINS
    cont = k["contingency"]
    assert sum(n for row in cont.values() for n in row.values()) == len(objs)
    assert all(set(row) == {true} for true, row in cont.items())  # classified right here


def test_bin_scorer_lifts_an_unoccluded_instance_at_its_centre():
    cfg = BinPileConfig(seed=0)
    s = BinScorer(seed=0, scene=0)
    labels = s.pile.render()["labels"]
    occluded = s.pile.occluded_ids(labels)
    free = next(i for i in s.pile.instances if i.id not in occluded and (labels == i.id).sum() > 200)
    import numpy as np

    vv, uu = np.nonzero(labels == free.id)
    # the visible pixel farthest from the instance's border: the cup fits there
    import cv2

    dist = cv2.distanceTransform((labels == free.id).astype(np.uint8), cv2.DIST_L2, 5)
    v, u = np.unravel_index(np.argmax(dist), dist.shape)
    fx, fy, cx, cy = cfg.intrinsics
    x, y = (u - cx) / fx, -(v - cy) / fy
    assert cfg.world_to_pixel(x, y) == pytest.approx((u, v))
    n = len(s.pile.instances)
    assert s.on_suction((x, y, 0.0)) is True
    assert len(s.pile.instances) == n - 1
    bv, bu = np.argwhere(s.pile.render()["labels"] == 0)[0]  # a patch of bare bin bottom
    assert s.on_suction(((bu - cx) / fx, -(bv - cy) / fy, 0.0)) is False
    k = s.kpis(30.0)
    assert (k["attempts"], k["successes"], k["failed_bin_bottom"]) == (2, 1, 1)
    assert k["success_rate"] == 0.5 and k["centred_rate"] == 0.5


def test_each_double_pick_is_given_its_cause():
    world, s = scorer()
    s.update(0.0)
    objs = [o for o in world.objects_between(0.5, 3.0) if o.rests_on is None and 0.5 <= o.b < 3.0][:4]
    a, b, c, d = objs
    frame1, frame2 = 5.0, 5.4  # two frames' belt positions; the world moves with the belt
    s.on_candidate(frame1 - 0.5, 0.0, frame1)  # starts the scoring
    s.on_candidate(*world_point(a, frame1), frame1, 1, pick_id=10)
    s.on_candidate(*world_point(a, frame1), frame1, 1, pick_id=11)  # a second detection of a
    s.on_candidate(*world_point(b, frame1), frame1, 1, pick_id=20)
    s.on_candidate(*world_point(b, frame2), frame2, 1, pick_id=21)  # b again, a new id
    s.on_candidate(*world_point(c, frame1), frame1, 1, pick_id=30)
    s.on_candidate(*world_point(d, frame1), frame1, 1, pick_id=40)
    grip = 6.0
    s.on_grip(1, 10, (*world_point(a, grip), 0.0), grip, 1)
    s.on_grip(2, 11, (*world_point(a, grip), 0.0), grip, 1)  # one_frame
    s.on_grip(1, 20, (*world_point(b, grip), 0.0), grip, 1)
    s.on_grip(2, 21, (*world_point(b, grip), 0.0), grip, 1)  # two_frames
    s.on_grip(1, 30, (*world_point(c, grip), 0.0), grip, 1)
    s.on_grip(2, 30, (*world_point(c, grip), 0.0), grip, 1)  # same_pick_id
    s.on_grip(2, 40, (*world_point(c, grip), 0.0), grip, 1)  # d's id, gripped on c: other_object
    s.on_grip(2, 99, (*world_point(c, grip), 0.0), grip, 1)  # no candidate had 99
    k = s.kpis(60.0)
    assert k["double_picks"] == 5
    assert k["double_pick_causes"] == {"same_pick_id": 1, "one_frame": 1, "two_frames": 1, "other_object": 1,
                                       "unknown_pick_id": 1}
    seps = k["double_pick_separations_mm"]  # grips at each object's centre: the same spot
    assert len(seps) == 5 and max(seps) < 0.01
    s.update(20.0)  # long past: the ids' origins are forgotten, the counts stay
    assert s._id_origin == {} and s.kpis(60.0)["double_pick_causes"]["one_frame"] == 1


def test_a_grip_beside_every_footprint_picks_nothing_however_near_a_centre():
    world, s = scorer()
    objs = [o for o in world.objects_between(0.5, 6.0) if 0.5 <= o.b < 6.0]

    def on_any(b, c):
        import numpy as np

        b_mm, c_mm = np.array([b * 1e3]), np.array([c * 1e3])
        return any(o.evaluate(b_mm, c_mm)[0][0] > 0 for o in objs)

    # a part whose shape centre is off every footprint (a C- or L-shaped part, or a ring)
    hollow = next(o for o in objs if o.rests_on is None and not on_any(o.b, o.c))
    travel = 9.0
    s.on_candidate(travel - 0.5, 0.0, travel)
    s.on_grip(1, 1, (*centre_point(hollow, travel), 0.0), travel, 1)
    assert (s.empty_grips, s.double_picks) == (1, 0)
    assert hollow.id not in s.outcomes or not s.outcomes[hollow.id].picked_by
    # the scoring before 2026-12-04 credited it to the part, 30 mm being near enough
    world, old = scorer()
    old.centre_tolerance = 0.03
    old.on_candidate(travel - 0.5, 0.0, travel)
    old.on_grip(1, 1, (*centre_point(hollow, travel), 0.0), travel, 1)
    assert old.empty_grips == 0 and old.outcomes[hollow.id].picked_by == 1
    # on its material it is a pick
    s.on_grip(2, 2, (*world_point(hollow, travel), 0.0), travel, 1)
    assert s.outcomes[hollow.id].picked_by == 2
