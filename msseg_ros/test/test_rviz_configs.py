"""The shipped RViz configs: they parse, use the `world` frame, show what the issue asks
for, name only contract topics, and ask for QoS the publishers can match (a reliable
subscription to a best-effort publisher, or a transient-local one to a volatile
publisher, would silently show nothing)."""
import re

import pytest
import yaml

from msseg_ros.graph import share_dir

from conftest import REPO, ROOT

NODES = ROOT / "msseg_ros" / "ros" / "nodes"
PUBLISHER = re.compile(r'create_publisher\(\s*\w+,\s*"([^"]+)",\s*(\w+)\(')


def _publisher_qos():
    """topic -> the qos helper its publisher uses (sensor_qos, results_qos, latched_qos)."""
    out = {}
    for src in NODES.glob("*.py"):
        for topic, helper in PUBLISHER.findall(src.read_text()):
            out["/" + topic] = helper
    return out


def _contract_topics():
    text = (REPO / "docs" / "contract.md").read_text()
    return {"/" + t for t in re.findall(r"^\| `([^`]+)`", text, re.M)} | \
           {"/" + t for t in re.findall(r"`([a-z_]+/[a-z_]+)`", text)}


@pytest.mark.parametrize("cell", ["sorting_line", "bin_picking"])
def test_rviz_config(cell):
    path = share_dir() / "config" / "rviz" / f"{cell}.rviz"
    doc = yaml.safe_load(path.read_text())
    vm = doc["Visualization Manager"]
    assert vm["Global Options"]["Fixed Frame"] == "world"
    displays = {d["Topic"]["Value"]: d for d in vm["Displays"] if "Topic" in d}
    kinds = {t: d["Class"].rsplit("/", 1)[1] for t, d in displays.items()}
    assert kinds["/segmentation/overlay"] == "Image" and kinds["/segmentation/instances"] == "Image"
    # the typed result topics reach RViz as markers: candidates by class, results by status
    assert kinds["/robot/result_markers"] == "MarkerArray" and "/grasps/candidates" not in kinds
    assert kinds["/grasps/markers"] == "MarkerArray" and kinds["/robot/markers"] == "MarkerArray"  # reach windows
    contract, qos = _contract_topics(), _publisher_qos()
    for topic, d in displays.items():
        assert topic in contract, f"{topic} is not a contract topic"
        helper = qos[topic]
        if helper == "sensor_qos":
            assert d["Topic"]["Reliability Policy"] == "Best Effort", topic
        if d["Topic"]["Durability Policy"] == "Transient Local":
            assert helper == "latched_qos", topic


def test_msseg_rviz_prints_the_config_path():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", "rviz", "bin_picking", "--print"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("config/rviz/bin_picking.rviz")
