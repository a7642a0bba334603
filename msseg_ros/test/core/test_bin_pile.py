import numpy as np
import pytest

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.learning.targets import boundaries, occlusion_map
from msseg_ros.core.sim.bin_pile import PRODUCTS, BinPileConfig, BinPileWorld

CFG = BinPileConfig(seed=3, width=96, height=96, min_instances=6, max_instances=12)


@pytest.mark.parametrize("product", PRODUCTS)
def test_deterministic_render_and_gt_shapes(product):
    cfg = CFG.with_overrides(product=product)
    a = BinPileWorld(cfg).scene(2).render()
    b = BinPileWorld(cfg).scene(2).render()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["rgb"].shape == (96, 96, 3) and a["rgb"].dtype == np.uint8
    assert a["depth"].dtype == np.float32 and a["labels"].dtype == np.int32
    assert not np.array_equal(a["rgb"], BinPileWorld(cfg).scene(3).render()["rgb"])


def test_gt_consistency():
    for k in range(4):
        r = BinPileWorld(CFG).scene(k).render()
        assert not np.any(r["boundaries"] & r["occlusions"]), "Y and Z must be disjoint"
        assert r["occlusions"].sum() > 0 and r["boundaries"].sum() > 0
        obj = r["labels"] > 0
        assert np.all(r["depth"][obj] < CFG.camera_height)
        assert np.all(r["depth"][~obj] == np.float32(CFG.camera_height))


def test_draped_pixels_lie_on_an_instance_dropped_earlier():
    """A pixel is draped where its instance lies higher than it rests: over something
    dropped before it. The first instance dropped lies on the floor and drapes nowhere."""
    seen = 0
    for k in range(4):
        pile = BinPileWorld(CFG).scene(k)
        r = pile.render()
        draped = r["draped"] > 0
        assert r["draped"].dtype == np.uint8 and not np.any(draped & (r["labels"] == 0))
        below = np.zeros(draped.shape, bool)  # footprints of the instances dropped so far
        for inst in pile.instances:
            mine = draped & (r["labels"] == inst.id)
            assert not np.any(mine & ~below), f"scene {k}: instance {inst.id} drapes over nothing"
            seen += int(mine.sum())
            below |= inst.footprint
        assert not np.any(draped & (r["labels"] == pile.instances[0].id))
    assert seen > 0


def test_occlusion_procedure_on_a_known_case():
    labels = np.zeros((12, 12), np.int32)
    z = np.zeros((12, 12))
    labels[:, 6:] = 2
    z[:, 6:] = 0.05  # instance 2 stands above the bin bottom
    Y = boundaries(labels)
    assert np.array_equal(np.nonzero(Y.any(0))[0], [5])  # column 5: right neighbour differs
    Z = occlusion_map(labels, z, Y, patch=5)
    assert Z[:, 6:8].all() and not Z[:, 8:].any()  # the higher side, within the 5x5 patch
    assert not Z[:, :6].any()
    # a third segment in the patch: that patch is set to 0
    labels[5:7, 3:6] = 3
    z[5:7, 3:6] = 0.02
    Y = boundaries(labels)
    Z = occlusion_map(labels, z, Y, patch=5)
    assert not np.any(Y & Z)
    assert not Z[5, 6] and Z[0, 6]


def test_pick_physics():
    pile = BinPileWorld(CFG.with_overrides(product="box")).scene(1)
    labels, _ = pile.heights()
    n = len(pile.instances)
    free = [i for i in pile.instances if i.id not in pile.occluded_ids(labels)]
    target = free[0]
    vv, uu = np.nonzero(labels == target.id)
    out = pile.pick(float(uu.mean()), float(vv.mean()), cup_radius_px=2)
    assert out.instance == target.id and out.unoccluded and out.centred and out.success
    assert len(pile.instances) == n - 1 and target.id not in pile.heights()[0]
    # the bin bottom: nothing happens
    bottom = np.argwhere(pile.heights()[0] == 0)[0]
    miss = pile.pick(float(bottom[1]), float(bottom[0]))
    assert miss.instance is None and not miss.success and len(pile.instances) == n - 1
    # an occluded instance is pinned: not lifted, the pile is unchanged
    labels, _ = pile.heights()
    pinned = [i for i in pile.instances if i.id in pile.occluded_ids(labels) and (labels == i.id).sum() > 4]
    vv, uu = np.nonzero(labels == pinned[0].id)
    out = pile.pick(float(uu[0]), float(vv[0]), cup_radius_px=1)
    assert out.instance == pinned[0].id and not out.unoccluded and not out.success
    assert len(pile.instances) == n - 1


def test_bad_config_named():
    with pytest.raises(ConfigError, match="product must be one of sachet, stick, box, random"):
        BinPileConfig(product="bottle")
    with pytest.raises(ConfigError, match="occlusion_patch must be odd"):
        BinPileConfig(occlusion_patch=4)
    with pytest.raises(ConfigError, match="unknown bin_picking option 'colour'"):
        CFG.with_overrides(colour=1)


@pytest.mark.parametrize("scene", [0, 1, 2])
def test_a_pile_can_always_be_emptied_from_the_top(scene):
    """Picking an unpinned instance at its visible centre, again and again, empties the
    pile: no two instances pin each other (a pile that could not be emptied stalled a
    5-minute bin run after 13 picks)."""
    from scipy import ndimage

    pile = BinPileWorld(CFG).scene(scene)
    n = len(pile.instances)
    for _ in range(n):
        labels, _ = pile.heights()
        pinned = pile.occluded_ids(labels)
        free = [i for i in pile.instances if i.id not in pinned and (labels == i.id).any()]
        assert free, f"{len(pile.instances)} instances left, all pinned"
        inside = ndimage.distance_transform_edt(labels == free[0].id)
        v, u = np.unravel_index(np.argmax(inside), inside.shape)
        assert pile.pick(float(u), float(v), cup_radius_px=1).success  # a small pile: a small cup
    assert pile.instances == []


@pytest.mark.parametrize("product", ["sachet", "stick", "box"])
def test_nothing_interpenetrates_what_is_dropped_later_lies_above(product):
    """Where two footprints overlap, the instance dropped later is above the earlier one
    by at least its own thickness, so it is the one seen there and the depth shows it
    lying on top (until 2026-12-04 an instance rested at one height and an earlier one
    could poke through it: pinned under it, yet higher)."""
    pile = BinPileWorld(CFG.with_overrides(product=product)).scene(4)
    labels, z = pile.heights()
    overlaps = 0
    for k, low in enumerate(pile.instances):
        for high in pile.instances[k + 1:]:
            both = low.footprint & high.footprint
            if both.any():
                overlaps += 1
                assert (high.z[both] - low.z[both] >= high.relief[both] - 1e-12).all()
    assert overlaps >= 5
    last = pile.instances[-1]
    assert (labels[last.footprint] == last.id).all()  # the last one dropped is seen whole
