"""The node base over real rclpy: schema parameters, refused sets, diagnostics, exit codes."""
import subprocess
import sys

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from msseg_ros.ros.nodes.cell_sim import CellSimNode

from conftest import ROOT, spin_until


@pytest.fixture
def sim(ros_context):
    import rclpy

    node = CellSimNode(context=ros_context, parameter_overrides=[
        Parameter("belt.speed", value=1.0), Parameter("diagnostics_period", value=0.2)])
    client = rclpy.create_node("probe", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(client)
    yield node, client, ex
    ex.shutdown()
    node.destroy_node()
    client.destroy_node()


def _call(ex, client, srv_type, name, request):
    cli = client.create_client(srv_type, name)
    assert cli.wait_for_service(timeout_sec=10)
    future = cli.call_async(request)
    assert spin_until(ex, future.done, timeout=10)
    return future.result()


def _set(ex, client, name, value_msg):
    req = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value_msg)])
    return _call(ex, client, SetParameters, "/cell_sim/set_parameters", req).results[0]


def test_typed_view_reads_overrides(sim):
    node, _, _ = sim
    assert node.params.belt.speed == 1.0 and node.params.cell == "sorting_line"
    assert node.belt.speed == 1.0


def test_set_through_service_valid_and_refused(sim):
    node, client, ex = sim
    ok = _set(ex, client, "belt.speed", ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                       double_value=0.0))
    assert ok.successful and node.params.belt.speed == 0.0 and node.belt.speed == 0.0

    bad = _set(ex, client, "belt.speed", ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                        double_value=9.0))
    assert not bad.successful
    assert "belt.speed" in bad.reason and "9.0" in bad.reason
    assert node.params.belt.speed == 0.0  # the old value stays

    wrong_type = _set(ex, client, "belt.speed", ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value="fast"))
    assert not wrong_type.successful and node.params.belt.speed == 0.0

    ro = _set(ex, client, "world.seed", ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                 integer_value=5))
    assert not ro.successful and node.params.world.seed == 0


def test_schema_choices_checks_and_veto(ros_context):
    """What ROS descriptors cannot express (choices, custom checks, a node's veto) is
    refused by the schema callback, with the reason, and counted."""
    from msseg_ros.core.params import Param, ParamType, Schema
    from msseg_ros.ros.node_base import MssegNode

    class Swapper(MssegNode):
        def __init__(self):
            super().__init__("swapper", Schema("swapper", [
                Param("model.type", ParamType.STR, "classic", "", choices=("classic", "maskrcnn")),
                Param("patch", ParamType.INT, 9, "", check=lambda v: None if v % 2 else "must be odd"),
            ]), context=ros_context)
            self.applied = []

        def on_parameters_change(self, proposed, changed):
            if proposed["model.type"] == "maskrcnn" and proposed["patch"] > 9:
                return "maskrcnn cannot use patch > 9"
            self.applied.append(dict(changed))
            return None

    node = Swapper()
    try:
        r = node.set_parameters([Parameter("model.type", value="yolo")])[0]
        assert not r.successful and "must be one of classic, maskrcnn" in r.reason
        r = node.set_parameters([Parameter("patch", value=8)])[0]
        assert not r.successful and "value 8 refused: must be odd" in r.reason
        assert node.set_parameters([Parameter("patch", value=11)])[0].successful
        r = node.set_parameters([Parameter("model.type", value="maskrcnn")])[0]
        assert not r.successful and r.reason == "maskrcnn cannot use patch > 9"
        assert node.params.model.type == "classic" and node.params.patch == 11
        assert node.applied == [{"patch": 11}]
        assert node._schema_params.rejected == 3
        assert node.get_parameter("model.type").value == "classic"
    finally:
        node.destroy_node()


def test_descriptors_carry_bounds_and_description(sim):
    _, client, ex = sim
    res = _call(ex, client, DescribeParameters, "/cell_sim/describe_parameters",
                DescribeParameters.Request(names=["belt.speed", "cell"]))
    speed, cell = res.descriptors
    assert speed.floating_point_range[0].from_value == 0.0
    assert speed.floating_point_range[0].to_value == 5.0
    assert "m/s" in speed.description
    assert cell.read_only and "sorting_line" in cell.additional_constraints


def test_diagnostics_published(sim):
    node, client, ex = sim
    got = []
    from msseg_ros.ros.qos import DIAGNOSTICS_QOS

    client.create_subscription(DiagnosticArray, "/diagnostics", got.append, DIAGNOSTICS_QOS)
    assert spin_until(ex, lambda: len(got) >= 2, timeout=10)
    status = got[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == "msseg_ros: /cell_sim" and status.message.startswith("belt running")
    assert float(values["belt_speed_mps"]) == 1.0 and float(values["rate_hz"]) > 50
    assert "uptime_s" in values and "parameter_sets_refused" in values


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("/**/cell_sim:\n  ros__parameters:\n    belt:\n      speed: 7.5\n", "belt.speed"),
        ("/**/cell_sim:\n  ros__parameters:\n    belt:\n      speed: 1\n", "belt.speed"),
        ("/**/cell_sim:\n  ros__parameters:\n    cell: kitchen\n", "kitchen"),
    ],
)
def test_bad_parameter_file_exits_2_with_reason(tmp_path, yaml_text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text)
    out = subprocess.run(
        [sys.executable, "-m", "msseg_ros.ros.nodes.cell_sim", "--ros-args", "--params-file", str(f)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr
    assert "configuration refused" in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr


def test_empty_string_array_parameters_accept_values(ros_context, tmp_path):
    """rclpy would type an empty-list default as BYTE_ARRAY and refuse strings."""
    from msseg_ros.ros.nodes.grasp_selector import GraspSelectorNode

    node = GraspSelectorNode(context=ros_context, parameter_overrides=[
        Parameter("class_priority", value=["brass=2.0"])])
    try:
        assert node.params.class_priority == ["brass=2.0"]
        assert node.set_parameters([Parameter("class_priority", value=["copper=3"])])[0].successful
        assert node.filters.priority == {"copper": 3.0}
        assert node.set_parameters([Parameter("class_priority", value=["copper"])])[0].successful is False
    finally:
        node.destroy_node()
    f = tmp_path / "p.yaml"
    f.write_text("/**/replay:\n  ros__parameters:\n    topics: [a, b]\n")
    out = subprocess.run([sys.executable, "-m", "msseg_ros.ros.nodes.replay", "--ros-args", "--params-file", str(f)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "no bag given" in out.stderr and "Traceback" not in out.stderr
