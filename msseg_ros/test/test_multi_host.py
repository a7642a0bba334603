"""The graph across two hosts: two network namespaces joined by a veth pair, DDS over UDP
(config/dds/fastdds_multi_host.xml: no shared memory), discovery by multicast on the link.
The segmenter runs on one host (``msseg run --only segmenter``), the rest of the sorting
line on the other (``--skip segmenter``); candidates must flow and robots pick."""
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from conftest import ROOT, fresh_domain

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _ip(*args: str, ns: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def hosts():
    """Two "hosts" (network namespaces) on 10.77.<k>.0/24 joined by a veth pair, each with
    a multicast route on the link; removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    tag = uuid.uuid4().hex[:6]
    a, b = f"msseg_a_{tag}", f"msseg_b_{tag}"
    made = _ip("netns", "add", a)
    if made.returncode != 0:
        pytest.skip(f"network namespaces cannot be created here: {made.stderr.strip()}")
    try:
        _ip("netns", "add", b)
        subnet = f"10.77.{int(tag[:2], 16)}"
        steps = [(None, ("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")),
                 (None, ("link", "set", f"va{tag}", "netns", a)), (None, ("link", "set", f"vb{tag}", "netns", b))]
        for ns, dev, addr in ((a, f"va{tag}", f"{subnet}.1"), (b, f"vb{tag}", f"{subnet}.2")):
            steps += [(ns, ("addr", "add", f"{addr}/24", "dev", dev)), (ns, ("link", "set", dev, "up")),
                      (ns, ("link", "set", "lo", "up")), (ns, ("route", "add", "224.0.0.0/4", "dev", dev))]
        for ns, args in steps:
            done = _ip(*args, ns=ns)
            assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"
        yield a, b, f"{subnet}.1", f"{subnet}.2"
    finally:
        _ip("netns", "del", a)
        _ip("netns", "del", b)


def _msseg_in(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "msseg_ros.cli.main", *args]


def test_the_segmenter_on_another_host(hosts, tmp_path):
    a, b, _, _ = hosts
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               FASTDDS_DEFAULT_PROFILES_FILE=str(ROOT / "config" / "dds" / "fastdds_multi_host.xml"))
    env.pop("ROS_STATIC_PEERS", None)
    # the classic model: light to load and run, so that a slow machine still picks in time
    seg = subprocess.Popen(_msseg_in(a, "run", "sorting_line", "--segmenter", "classic", "--only", "segmenter",
                                     "--duration", "150",
                                     "--quiet", "--report", str(tmp_path / "a")),
                           env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rest = subprocess.run(_msseg_in(b, "run", "sorting_line", "--segmenter", "classic", "--skip", "segmenter",
                                        "--duration", "120",
                                        "--quiet", "--report", str(tmp_path / "b")),
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
    finally:
        seg.terminate()
        seg_out, _ = seg.communicate(timeout=120)
    assert rest.returncode == 0, rest.stderr[-3000:]
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["hosted_nodes"] == ["cell_sim", "line_scanner", "grasp_selector", "robot_bridge"]
    # the segmenter's diagnostics and its detections crossed the link; robots picked
    assert "segmenter" in report["nodes"], list(report["nodes"])
    assert int(report["nodes"]["segmenter"]["frames"]) > 0
    assert report["pick_results"].get("done", 0) > 0, report["pick_results"]
    assert report["score"]["objects_scored"] > 0
    assert "started: segmenter" in seg_out, seg_out[-2000:]
