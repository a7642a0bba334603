"""Hostile input, as a user would give it: one clear line, exit code 2 for bad usage or
input (checked before any node starts where possible), nothing hung, results kept."""
import json
import os
import signal
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from msseg_ros.core.geometry.camera import CameraModel
from msseg_ros.core.recording import images_to_bag

from conftest import ROOT, fresh_domain

MSSEG = [sys.executable, "-m", "msseg_ros.cli.main"]


def _msseg(*args, timeout=120):
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    return subprocess.run([*MSSEG, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)


def _one_line_error(out, code=2):
    assert out.returncode == code, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def camera_bag(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cam")
    img = folder / "a.png"
    cv2.imwrite(str(img), np.full((40, 60, 3), 128, np.uint8))
    assert images_to_bag([img, img], folder / "bag", CameraModel.from_values(50, 50, 30, 20, 60, 40)) == 2
    return folder / "bag"


def _folder_with(folder, name, text):
    folder.mkdir()
    (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda tmp, cam: tmp / "nowhere", "does not exist"),
    (lambda tmp, cam: (tmp / "empty").mkdir() or tmp / "empty", "cannot be opened"),
    (lambda tmp, cam: _folder_with(tmp / "meta", "metadata.yaml", "rosbag2_bagfile_information: ["),
     "cannot be opened"),
    (lambda tmp, cam: cam, "holds none of the sorting_line sensor topics"),
])
def test_bad_bags_are_refused_before_the_graph_starts(tmp_path, camera_bag, make, message):
    out = _msseg("run", "sorting_line", "--mode", "replay", "--bag", str(make(tmp_path, camera_bag)))
    line = _one_line_error(out)
    assert message in line and "started:" not in out.stderr  # refused before any node started


def test_a_parameter_file_with_a_yaml_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/cell_sim:\n  ros__parameters:\n    belt: {speed: [1\n")
    line = _one_line_error(_msseg("run", "sorting_line", "--params-file", str(bad)))
    assert "is not valid YAML (line" in line


def test_sim_data_refuses_a_negative_seed_and_bad_splits(tmp_path):
    assert "--seed must be >= 0, got -5" in _one_line_error(
        _msseg("sim-data", "sorting_line", "--out", str(tmp_path / "a"), "--count", "2", "--seed", "-5"))
    assert "must add up to 1" in _one_line_error(
        _msseg("sim-data", "sorting_line", "--out", str(tmp_path / "b"), "--count", "2", "--split", "0.5,0.5,0.5"))


@pytest.mark.parametrize("edit, message", [
    (lambda doc: doc["annotations"][0].update(category_id=42), "has category_id 42; categories are 1..9"),
    (lambda doc: doc["annotations"][0].update(image_id=9999), "refers to image_id 9999"),
])
def test_eval_refuses_an_inconsistent_coco_file(tmp_path, edit, message):
    out = _msseg("sim-data", "sorting_line", "--out", str(tmp_path / "d"), "--count", "2", "--lines", "40",
                 "--previews", "0", "--split", "1,0,0")
    assert out.returncode == 0, out.stderr
    ann = tmp_path / "d" / "annotations" / "learning.json"
    doc = json.loads(ann.read_text())
    edit(doc)
    ann.write_text(json.dumps(doc))
    assert message in _one_line_error(_msseg("eval", "sorting_line_classic", "--data", str(ann)))


def _child(parent: int, name: str) -> int:
    """The pid of ``parent``'s child process whose command line names ``name``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and name in cmd:
            return int(entry)
    raise AssertionError(f"no child {name!r} of {parent}")


def test_a_killed_node_still_leaves_the_kpis_and_the_report(tmp_path):
    """Without respawn, kill -9 the robot bridge mid-run: the run stops the rest, exits 1
    naming it, and still prints the KPI table and writes the report (with which node died)."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    proc = subprocess.Popen([*MSSEG, "run", "sorting_line", "--segmenter", "classic", "--no-respawn",
                             "--report", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    err: list[str] = []
    out_lines: list[str] = []
    ready = threading.Event()

    def read(stream, into):
        for line in stream:
            into.append(line)
            if "[robot_bridge]: ready" in line:
                ready.set()

    readers = [threading.Thread(target=read, args=(proc.stderr, err), daemon=True),
               threading.Thread(target=read, args=(proc.stdout, out_lines), daemon=True)]
    for t in readers:
        t.start()
    try:
        assert ready.wait(120), "".join(err + out_lines)[-3000:]
        os.kill(_child(proc.pid, "robot_bridge"), signal.SIGKILL)
        assert proc.wait(timeout=120) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    for t in readers:
        t.join(timeout=60)  # the pipes close when the run has ended: everything is read
    text = "".join(err)
    assert "node 'robot_bridge' died with exit code -9" in text
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["node_died"] == {"node": "robot_bridge", "exit_code": -9}
    assert "KPI" in "".join(out_lines) + text


def test_killed_nodes_are_respawned_and_no_pick_is_sent_twice(tmp_path):
    """kill -9 the robot bridge, the grasp selector, then the segmenter, during one sim
    run: each comes back, the run goes on to its end (exit 0), the bridge settles its picks
    from its ledger, the grasp selector resumes its pick ids from its saved state (no id is
    given to a second object), no pick id ends twice and no object is picked twice."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    proc = subprocess.Popen([*MSSEG, "run", "sorting_line", "--segmenter", "classic", "--duration", "45",
                             "--report", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    lines: list[str] = []
    seen = {"ready": threading.Event(), "results": threading.Event(), "bridge_back": threading.Event(),
            "selector_back": threading.Event()}

    def read(stream):
        for line in stream:
            lines.append(line)
            if "[robot_bridge]: ready" in line:
                (seen["bridge_back"] if seen["ready"].is_set() and seen["results"].is_set() else seen["ready"]).set()
            if "results={" in line and "'done'" in line:
                seen["results"].set()
            if "[grasp_selector]: restored: next pick_id" in line:
                seen["selector_back"].set()

    readers = [threading.Thread(target=read, args=(stream,), daemon=True) for stream in (proc.stdout, proc.stderr)]
    for t in readers:
        t.start()
    try:
        assert seen["ready"].wait(120), "".join(lines)[-3000:]
        assert seen["results"].wait(60), "".join(lines)[-3000:]  # picks are being made
        os.kill(_child(proc.pid, "robot_bridge"), signal.SIGKILL)
        assert seen["bridge_back"].wait(60), "".join(lines)[-3000:]
        os.kill(_child(proc.pid, "grasp_selector"), signal.SIGKILL)
        assert seen["selector_back"].wait(60), "".join(lines)[-3000:]
        os.kill(_child(proc.pid, "segmenter"), signal.SIGKILL)
        assert proc.wait(timeout=180) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    for t in readers:
        t.join(timeout=60)
    text = "".join(lines)
    assert "died with exit code -9" in text and "restarting (1/3)" in text
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["restarts"] == {"robot_bridge": 1, "grasp_selector": 1, "segmenter": 1}
    assert report["score"]["double_picks"] == 0
    ids = report["pick_ids"]
    assert ids["issued"] > 0 and ids["ended"] > 0
    assert ids["reused"] == 0 and ids["ended_twice"] == 0, ids
    assert report["score"]["objects_scored"] > 0
