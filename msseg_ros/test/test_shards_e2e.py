"""Two segmenter shards on one recorded bag give the candidates one segmenter gave: the
same detections per frame, the same pick points, and one pick_id per object whatever shard
saw it (the grasp selector takes the shards' frames in any order)."""
import json

import numpy as np
import pytest

from conftest import bag_results, run_msseg

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _by_stamp(bag, topic):
    return {stamp: table for stamp, (_, table) in bag_results(bag, topic).items()}


def test_two_shards_give_the_candidates_of_one_segmenter(tmp_path):
    live, sharded = tmp_path / "live", tmp_path / "sharded"
    run_msseg("run", "sorting_line", "--mode", "sim", "--segmenter", "classic", "--duration", "30", "--quiet",
           "--record", str(live))
    run_msseg("run", "sorting_line", "--mode", "replay", "--bag", str(live), "--segmenter", "classic", "--shards", "2",
           "--quiet", "--report", str(tmp_path / "report"), "--record", str(sharded), "--record-topics",
           "segmentation/detections", "grasps/candidates")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    frames = {k: int(report["nodes"][f"segmenter_{k}"]["frames"]) for k in (0, 1)}
    assert all(v > 0 for v in frames.values()), frames  # both shards segmented

    det_live = _by_stamp(live, "/segmentation/detections")
    det_sharded = _by_stamp(sharded, "/segmentation/detections")
    common = sorted(set(det_live) & set(det_sharded))
    assert len(common) >= 0.9 * len(det_live) and len(common) >= 3, (len(det_live), len(det_sharded))
    for stamp in common:
        a, b = det_live[stamp], det_sharded[stamp]
        assert len(a) == len(b), stamp
        for name in a.dtype.names:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} at {stamp}")

    cand_live = _by_stamp(live, "/grasps/candidates")
    cand_sharded = _by_stamp(sharded, "/grasps/candidates")
    both = sorted(set(cand_live) & set(cand_sharded))
    # completeness floor, not the check (the equalities below are): on a loaded 2-core CI
    # machine 35 of 39 frames' candidates were in both bags (the rest not recorded in one run)
    assert len(both) >= 0.75 * len(cand_live) and len(both) >= 2, (len(cand_live), len(cand_sharded))
    ids: dict[int, int] = {}  # live pick_id -> sharded pick_id: one object, one id, in both runs
    for stamp in both:
        a, b = cand_live[stamp], cand_sharded[stamp]
        for name in ("x", "y", "z", "class_id"):
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=f"{name} at {stamp}")
        # the belt's travel at the frame's stamp, interpolated in the encoder samples the
        # selector got: they are best-effort, and a loaded machine once lost the one at the
        # stamp in the live run (2.039991 against 2.04 m): within 0.1 mm, not bit-equal
        np.testing.assert_allclose(a["belt_position"], b["belt_position"], rtol=0, atol=1e-4,
                                   err_msg=f"belt_position at {stamp}")
        for pa, pb in zip(a["pick_id"], b["pick_id"], strict=True):
            assert ids.setdefault(int(pa), int(pb)) == int(pb), f"object {pa} got two ids in the sharded run"
    assert len(set(ids.values())) == len(ids), "two objects share an id in the sharded run"
