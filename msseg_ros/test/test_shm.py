"""Stale Fast DDS shared-memory segments are removed; a live participant's are kept."""
import os
import subprocess
import sys
import time

from msseg_ros.shm import SHM, clean_stale_segments

from conftest import fresh_domain


def _segments():
    return {p.name for p in SHM.glob("fastdds_*") if not p.name.endswith("_el")}


def test_killed_participant_segment_removed_live_one_kept():
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    code = "import rclpy, time; rclpy.init(); n = rclpy.create_node('shm_probe'); print('up', flush=True); time.sleep(60)"
    before = _segments()
    live = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    doomed = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert live.stdout.readline().strip() == "up" and doomed.stdout.readline().strip() == "up"
        time.sleep(0.5)
        mine = _segments() - before
        assert len([s for s in mine if not s.startswith("fastdds_port")]) >= 2, mine
        doomed.kill()
        doomed.wait()
        assert clean_stale_segments() >= 1
        left = _segments()
        assert any(s in left for s in mine if not s.startswith("fastdds_port"))  # the live one
        assert len([s for s in mine - left if not s.startswith("fastdds_port")]) >= 1  # the killed one
    finally:
        live.kill()
        live.wait()
    clean_stale_segments()
    assert not (_segments() - before), "everything of this test is gone once its processes are"
