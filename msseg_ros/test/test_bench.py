"""`msseg bench` runs the scripts in benchmarks/ and collects the ratios they measure."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, ROOT, SHARED


def _msseg(*args):
    return subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_bench_runs_a_benchmark_and_collects_its_ratio(tmp_path):
    out = tmp_path / "bench.json"
    r = _msseg("bench", "multipick", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    (result,) = json.loads(out.read_text())
    ratio = result["ratios"]["picked_over_upper_bound"]
    assert result["name"] == "multipick" and 0.5 < ratio <= 1.0  # never above its own upper bound
    assert result["figures"]["picked"] <= result["figures"]["upper_bound"] <= result["figures"]["objects"]
    assert "picked_over_upper_bound" in r.stdout  # the summary table


def test_bench_list_and_unknown_name():
    listed = _msseg("bench", "--list")
    assert listed.returncode == 0
    for name in ("pipeline", "model_speed", "multipick", "soak", "stop_latency", "double_picks"):
        assert name in listed.stdout
    from msseg_ros.cli.tool_commands import DEFAULT_BENCHMARKS

    for slow in ("soak", "stop_latency", "double_picks"):  # minutes each: only when asked for
        assert slow not in DEFAULT_BENCHMARKS
    bad = _msseg("bench", "nope")
    assert bad.returncode == 2 and "unknown benchmark(s) nope" in bad.stderr


def test_pick_ids_benchmark_follows_objects_across_frames(tmp_path):
    """benchmarks/pick_ids.py on 20 s of the line with the classic model: every object
    found gets one pick id (its masks are height blobs), and the figures add up."""
    out, cases = tmp_path / "ids.json", tmp_path / "cases.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pick_ids.py"), "--minutes", "0.33",
                        "--models", "classic", "--json", str(out), "--cases", str(cases)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    fig = result["figures"]["classic"]
    assert result["figures"]["frames"] == 30  # 10 m of belt, 0.34 m new per frame
    assert 50 < fig["objects_with_candidates"] <= fig["objects"]
    assert fig["candidates"] >= fig["objects_with_candidates"]
    assert fig["objects_with_two_ids"] == 0 and fig["ids_on_two_objects"] == 0
    assert fig["selector_counters"]["seen_again"] > 0  # the overlap shows objects twice
    assert result["ratios"]["classic_objects_with_two_ids_per_1000_objects"] == 0.0
    assert json.loads(cases.read_text()) == {"classic": []}
    curve = fig["sorting_by_min_score"]
    assert [p["min_score"] for p in curve] == sorted(p["min_score"] for p in curve)
    assert all(a["picks"] >= b["picks"] for a, b in zip(curve, curve[1:], strict=False))  # higher: fewer
    assert all(0.5 < p["purity"] <= 1.0 and 0.0 <= p["recovery"] <= 1.0 for p in curve)


def test_bin_picks_benchmark_accounts_for_every_pile(tmp_path):
    """benchmarks/bin_picks.py: per area weight, without and with depth, each pile's first
    pick is lifted or fails for a named reason, and the ratio is the lifted share."""
    out = tmp_path / "bin_picks.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bin_picks.py"), "--piles", "3",
                        "--area-weights", "1", "0", "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["figures"]["options"]["alpha"] == result["figures"]["options"]["beta"] == 0.3  # the cell's
    assert result["figures"]["depth"]["height_weight"] == 30.0  # the cell's
    for w in ("w1", "w0", "w1_depth", "w0_depth"):
        counts = result["figures"]["outcomes"][w]
        assert sum(counts.values()) == 3
        assert set(counts) <= {"lifted", "pinned", "bin_bottom", "poor_contact", "no_candidate"}
        assert result["ratios"][f"first_pick_success_{w}"] == counts.get("lifted", 0) / 3


def test_bin_picks_closed_loop_accounts_for_every_attempt(tmp_path):
    """benchmarks/bin_picks.py --loop: each attempt on the cell's first bin lifted an
    object or failed for a named reason, and the ratio is lifted over attempts."""
    out = tmp_path / "loop.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bin_picks.py"), "--loop", "1",
                        "--area-weights", "0.1", "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["figures"]["sim_seed"] == 0  # the cell's default bins
    for name in ("w0.1", "w0.1_depth"):
        c = result["figures"]["outcomes"][name]
        failed = sum(c.get(k, 0) for k in ("pinned", "bin_bottom", "poor_contact"))
        assert c["attempts"] == c["lifted"] + failed and c["lifted"] >= 5
        assert result["ratios"][f"loop_success_{name}"] == c["lifted"] / c["attempts"]
    why = result["figures"]["outcomes"]["w0.1_depth"]  # each pinned pick with depth, explained once
    explained = sum(why.get(k, 0) for k in ("pinned_seen", "pinned_split", "pinned_unseen"))
    assert explained == why.get("pinned", 0)
    seen = sum(why.get(k, 0) for k in ("seen_free_flagged", "seen_free_tabu", "seen_free_missed", "seen_no_free",
                                     "seen_free_ranked_lower"))
    assert seen == why.get("pinned_seen", 0)  # and each seen cover, once more by why no free pick
    assert not any(k.startswith("pinned_") for k in result["figures"]["outcomes"]["w0.1"])  # RGB only: not asked


def test_gan_comparison_base_stops_at_its_time_limit_and_counts_as_done(tmp_path):
    """benchmarks/gan_comparison.py --base-only --base-minutes: the bins base stops at the
    time limit, short of its step budget, and keeps a model; a rerun whose --base-steps is
    the step it reached trains nothing more, and no arm runs (seeds can then run side by
    side from that base)."""
    for name, seed, split in (("bins_train", 1, "0.5,0.5,0"), ("bins_test", 97, "0,0,1")):
        r = _msseg("sim-data", "bin_picking", "--out", str(tmp_path / "data" / name), "--count", "4",
                   "--seed", str(seed), "--split", split)
        assert r.returncode == 0, r.stderr[-2000:]
    script = [sys.executable, str(ROOT / "benchmarks" / "gan_comparison.py"), "--cells", "bins", "--base-only"]
    r = subprocess.run(script + ["--base-steps", "100000", "--base-minutes", "0.05"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    base = tmp_path / "runs" / "gan_comparison" / "bins" / "base"
    state = json.loads((base / "state.json").read_text())
    assert state["step"] < 100000 and (base / "model.safetensors").is_file()
    stamp = (base / "state.json").stat().st_mtime_ns
    r = subprocess.run(script + ["--base-steps", str(state["step"])], capture_output=True, text=True,
                       cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "$ msseg train" not in r.stdout and (base / "state.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in base.parent.iterdir()) == ["base"]  # no arm


def test_pipeline_benchmark_on_replayed_sensors(tmp_path):
    """benchmarks/pipeline.py --replay: a sim run records the sensors, the pipeline runs on
    that bag, and a probe pairs each frame with its candidates by stamp."""
    out = tmp_path / "pipeline.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pipeline.py"), "--duration", "12", "--replay",
                        "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "frame written -> its candidates written, DDS source timestamps" in r.stdout
    result = json.loads(out.read_text())
    fig = result["figures"]
    assert fig["replay"] is True and fig["frames_segmented"] >= 5
    assert result["ratios"]["dropped_frame_fraction"] == 0  # a replay's segmenter lets frames wait in order
    assert fig["end_to_end_p50_ms"] > 0 and fig["forward_p50_ms"] > 0
    assert result["ratios"]["pipeline_overhead"] == pytest.approx(fig["end_to_end_p50_ms"] / fig["forward_p50_ms"],
                                                                  rel=0.01)
    assert result["ratios"]["pipeline_overhead_over_model_call"] == pytest.approx(
        fig["end_to_end_p50_ms"] / fig["model_call_p50_ms"], rel=0.01)
    assert 1 <= fig["forward_frames"] <= 12  # the forward is timed on the bag's own frames
    assert f"on {fig['forward_frames']} of its frames" in r.stdout


@pytest.mark.skipif(not (SHARED / "data" / "tabletop_rgbd").is_dir(), reason="needs ../shared/data/tabletop_rgbd")
def test_few_shot_folds_test_every_real_photo_once(tmp_path):
    """benchmarks/few_shot.py --folds 3: three label-depth splits whose test photos are
    disjoint and cover all nine, each trained on the other six; each figure is the mean of
    the three folds' and keeps each fold's value. A shipped start given by name."""
    script = [sys.executable, str(ROOT / "benchmarks" / "few_shot.py"), "--models", "maskrcnn"]
    out, record = tmp_path / "fs", tmp_path / "fs.json"
    r = subprocess.run(script + ["--arms", "zero_shot", "--folds", "3", "--starts", "tabletop_pretrained_maskrcnn",
                                 "--out", str(out), "--json", str(record)],
                       capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    tested: list[str] = []
    for data in (out / "data", out / "fold1" / "data", out / "fold2" / "data"):
        split = {s: {im["file_name"] for im in json.loads((data / "annotations" / f"{s}.json").read_text())["images"]}
                 for s in ("train", "test")}
        assert len(split["test"]) == 3 and len(split["train"]) == 6 and not split["test"] & split["train"]
        tested += sorted(split["test"])
    assert sorted(tested) == [f"image_{k:04d}_rgb.png" for k in range(9)]
    result = json.loads(record.read_text())
    assert [sorted(f) for f in result["figures"]["folds"]] == [sorted(tested[k:k + 3]) for k in (0, 3, 6)]
    arm = result["figures"]["results"]["maskrcnn"]["zero_shot_tabletop_pretrained_maskrcnn"]
    per_fold = [f["segm_AP"] for f in arm["per_fold"]]
    assert len(per_fold) == 3 and all(0.05 < ap < 0.9 for ap in per_fold)  # generated scenes alone find some
    assert arm["segm_AP"] == pytest.approx(sum(per_fold) / 3) and arm["segm_AP_sd"] > 0
    assert result["ratios"] == {}  # no fine-tuned arm ran
    assert "segm_AP per fold" in (out / "table.md").read_text()
    r = subprocess.run(script + ["--starts", str(tmp_path / "none.safetensors"), "--out", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode != 0 and "--starts not found" in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "few_shot.py"), "--models", "maskrcnn", "bicameral",
                        "--starts", "tabletop_pretrained_maskrcnn"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode != 0 and "give one --models" in r.stderr


def test_model_speed_runs_the_shipped_line_model_with_its_class_head(tmp_path):
    """benchmarks/model_speed.py builds the unfolded network from the checkpoint's own
    tensors (the class head's are not the network's) and reports naive over ours."""
    out = tmp_path / "speed.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model_speed.py"), "--frames", "1",
                        "--repeats", "1", "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["name"] == "model_speed" and result["ratios"]["naive_over_ours"] > 0
