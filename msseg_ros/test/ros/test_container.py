"""msseg_container: several nodes in one process (msseg run --one-process)."""
import json
import subprocess
import sys

import pytest

from msseg_ros.core.errors import ConfigError
from msseg_ros.ros.container import factories, node_class
from msseg_ros.ros.nodes.grasp_selector import GraspSelectorNode
from msseg_ros.ros.nodes.segmenter import SegmenterNode

from conftest import ROOT


def test_node_classes_by_executable():
    assert node_class("segmenter") is SegmenterNode
    assert node_class("grasp_selector") is GraspSelectorNode
    with pytest.raises(ConfigError, match="no node 'nope'"):
        node_class("nope")
    made = factories([{"executable": "segmenter", "ros_args": ["-r", "__node:=seg2"]}])
    assert made[0].func is SegmenterNode and made[0].keywords["cli_args"] == ["--ros-args", "-r", "__node:=seg2"]


@pytest.mark.parametrize("content, message", [
    ("not json", "configuration refused"),
    (json.dumps([{"executable": "nope", "ros_args": []}]), "no node 'nope'"),
    (json.dumps([{"ros_args": []}]), "configuration refused"),
])
def test_a_bad_graph_file_is_refused_with_exit_2(tmp_path, content, message):
    graph = tmp_path / "graph.json"
    graph.write_text(content)
    out = subprocess.run([sys.executable, "-m", "msseg_ros.ros.container", str(graph)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and message in out.stderr
