from pathlib import Path

import pytest

from msseg_ros.graph import GraphError, describe


def test_sorting_line_sim_defaults():
    g = describe("sorting_line")
    assert (g.segmenter, g.robot, g.namespace) == ("maskrcnn", "delta", "")
    assert [n.name for n in g.nodes] == [
        "cell_sim", "line_scanner", "segmenter", "grasp_selector", "robot_bridge"
    ]
    assert g.node("line_scanner").parameters == {"source": "sim"}
    assert g.node("segmenter").parameters == {"cell": "sorting_line", "model.type": "maskrcnn"}
    assert g.params_files[0].endswith("config/sorting_line.yaml")


def test_bin_picking_live_and_choices():
    g = describe("bin_picking", mode="live", segmenter="classic", robot="dry_run", namespace="cell1")
    assert [n.name for n in g.nodes] == ["camera", "segmenter", "grasp_selector", "robot_bridge"]
    assert g.node("camera").parameters == {"source": "live"}
    assert g.node("robot_bridge").parameters == {"cell": "bin_picking", "robot.type": "dry_run"}
    assert g.namespace == "/cell1"


def test_replay_replaces_sensor_and_sim():
    g = describe("sorting_line", mode="replay", bag="/data/run1")
    names = [n.name for n in g.nodes]
    assert "cell_sim" not in names and "line_scanner" not in names and names[0] == "replay"
    assert g.node("replay").parameters["topics"] == ["conveyor/joint_states", "line_scanner/frames"]
    assert g.robot == "dry_run"
    assert g.node("replay").parameters["wait_for_topics"] == []


def test_a_recorded_replay_waits_for_the_recorder_of_its_results():
    g = describe("sorting_line", mode="replay", bag="/data/run1", record="/tmp/does-not-exist-yet",
                 record_topics=["segmentation/detections", "line_scanner/frames"])
    # played topics are subscribed by the pipeline anyway; results only by the recorder
    assert g.node("replay").parameters["wait_for_topics"] == ["segmentation/detections"]
    assert g.node("replay").parameters["wait_for_nodes"] == ["segmenter", "grasp_selector"]


def test_a_replay_recording_every_topic_waits_for_the_cells_results():
    g = describe("sorting_line", mode="replay", bag="/data/run1", record="/tmp/does-not-exist-yet",
                 record_topics=[])
    assert g.node("recorder").parameters["topics"] == []  # every topic
    assert g.node("replay").parameters["wait_for_topics"] == [
        "segmentation/detections", "grasps/candidates", "robot/pick_results"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell": "kitchen"}, "unknown cell 'kitchen'; choose one of sorting_line, bin_picking"),
        ({"cell": "sorting_line", "mode": "fast"}, "unknown mode 'fast'"),
        ({"cell": "sorting_line", "segmenter": "yolo"}, "unknown segmenter 'yolo'"),
        ({"cell": "sorting_line", "mode": "replay"}, "replay mode needs a bag"),
        ({"cell": "sorting_line", "bag": "x"}, "a bag is only used in replay mode"),
        ({"cell": "sorting_line", "namespace": "a b"}, "invalid namespace 'a b'"),
    ],
)
def test_bad_choices(kwargs, message):
    cell = kwargs.pop("cell")
    with pytest.raises(GraphError, match=message):
        describe(cell, **kwargs)


def test_record_adds_a_recorder_node(tmp_path):
    from msseg_ros.graph import RECORD_TOPICS, GraphError, describe

    spec = describe("sorting_line", record=tmp_path / "bag")
    rec = spec.node("recorder")
    assert rec.executable == "recorder" and rec.installed
    assert rec.parameters["out"] == str(tmp_path / "bag")
    assert rec.parameters["topics"] == list(RECORD_TOPICS["sorting_line"])
    assert "line_scanner/frames" in rec.parameters["topics"]
    assert describe("bin_picking", record=tmp_path / "b2", record_topics=[]).node("recorder").parameters["topics"] == []
    (tmp_path / "old").mkdir()
    with pytest.raises(GraphError, match="already exists"):
        describe("sorting_line", record=tmp_path / "old")


def test_a_host_runs_a_subset_of_the_graph():
    spec = describe("sorting_line")
    assert [n.name for n in spec.subset(only=["segmenter"]).nodes] == ["segmenter"]
    rest = spec.subset(skip=["segmenter"])
    assert [n.name for n in rest.nodes] == ["cell_sim", "line_scanner", "grasp_selector", "robot_bridge"]
    assert rest.cell == spec.cell and rest.params_files == spec.params_files
    assert spec.subset() == spec
    with pytest.raises(GraphError, match="'segmentr' is not a node of this graph; its nodes: cell_sim"):
        spec.subset(only=["segmentr"])
    with pytest.raises(GraphError, match="no node left to run on this host"):
        spec.subset(only=["segmenter"], skip=["segmenter"])


def test_shards_get_the_cells_segmenter_section():
    """segmenter_0 ... do not match the parameter file's /**/segmenter: the description
    gives them that section itself, below its own values (model type, shard)."""
    from msseg_ros.graph import default_params_file, node_section

    section = node_section(default_params_file("sorting_line"), "segmenter")
    assert section["model.score_threshold"] == -1.0 and section["classic.min_area_px"] == 19
    spec = describe("sorting_line", segmenter="classic", shards=2)
    for k, node in enumerate(n for n in spec.nodes if n.executable == "segmenter"):
        assert node.name == f"segmenter_{k}"
        assert node.parameters["classic.min_area_px"] == section["classic.min_area_px"]
        assert node.parameters["model.type"] == "classic" and node.parameters["shard"] == [k, 2]
    (single,) = [n for n in describe("sorting_line").nodes if n.executable == "segmenter"]
    assert "classic.min_area_px" not in single.parameters  # the file reaches it by name


def test_parameter_files_layer_in_order_and_a_missing_one_is_named():
    g = describe("sorting_line", params_file=["config/sorting_line.yaml", "config/sorting_line_0p5mm.yaml"])
    assert [Path(f).name for f in g.params_files] == ["sorting_line.yaml", "sorting_line_0p5mm.yaml"]
    with pytest.raises(GraphError, match="nope.yaml"):
        describe("sorting_line", params_file=["config/sorting_line.yaml", "nope.yaml"])


def test_the_launch_argument_params_file_takes_several_files():
    from msseg_ros.graph import params_files_argument

    assert params_files_argument("") == []
    assert params_files_argument("a.yaml") == ["a.yaml"]
    assert params_files_argument(" config/sorting_line.yaml , config/sorting_line_0p5mm.yaml,") == [
        "config/sorting_line.yaml", "config/sorting_line_0p5mm.yaml"]
