"""The issue's 'done when', over real processes, DDS and TCP: `msseg run` of the sim
sorting line picks with several deltas (Modbus TCP) and scores against the world; the
sim bin-picking cell completes open-loop pick cycles against the emulated FANUC (RMI)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import fresh_domain

# two 40 s runs; the guard is generous because a loaded 2-core machine starts five node
# processes slowly (CI once needed more than 180 s for one)
pytestmark = pytest.mark.timeout(480)


def run_msseg(args, tmp_path, timeout):
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    try:
        proc = subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", *args, "--report", str(tmp_path)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:  # a hang guard, not a speed goal: show where it was
        tail = (exc.stderr or b"")[-3000:]
        pytest.fail(f"msseg run still running after {timeout} s; its stderr ended with:\n"
                    f"{tail.decode(errors='replace') if isinstance(tail, bytes) else tail}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "report.json").read_text()), proc.stderr


def test_sim_sorting_line_picks_with_several_robots(tmp_path):
    report, err = run_msseg(["run", "sorting_line", "--mode", "sim", "--duration", "40", "--quiet",
                             "--segmenter", "classic"], tmp_path, 360)
    score = report["score"]
    done_by_robot = {int(k): v for k, v in report["picks_by_robot"].items()}
    print("sorting line:", {k: score[k] for k in ("objects_scored", "recovery", "purity")}, done_by_robot)
    assert sum(1 for v in done_by_robot.values() if v > 0) >= 2, report["picks_by_robot"]
    # How many objects reach the scorer depends on how fast the graph starts on this machine
    # (CI saw 44 in 40 s, a dev machine ~60): a floor, not a throughput figure.
    assert score["objects_scored"] >= 25
    assert score["purity"] >= 0.7 and score["recovery"] >= 0.4  # sanity; the figures are in the notes
    assert score["double_picks"] == 0
    assert report["pick_results"].get("done", 0) >= 15
    assert "picks by robot" in err  # the KPI table was printed


def test_sim_bin_picking_completes_cycles_against_the_emulated_fanuc(tmp_path):
    report, _ = run_msseg(["run", "bin_picking", "--mode", "sim", "--duration", "40", "--quiet"], tmp_path, 360)
    score = report["score"]
    print("bin picking:", score)
    assert score["attempts"] >= 5  # open-loop cycles: capture, detect, pick, observe
    results = report["pick_results"]
    assert sum(results.values()) >= score["attempts"] - 1  # every attempt reported (one may be in flight)
    assert abs(results.get("done", 0) - score["successes"]) <= 1  # the bridge agrees with the sim
