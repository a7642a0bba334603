"""Every default has one source: the parameter schema for settings, core/cells.py for a
cell's classes and channels, the registries for the choosable types."""
import dataclasses

from msseg_ros import graph
from msseg_ros.core import cells
from msseg_ros.core.params.nodes import NODE_SCHEMAS, ROBOT_BRIDGE, ROBOTS, SORTING_CLASSES
from msseg_ros.core.robots.backends import (
    ROBOT_BACKENDS,
    BridgeSettings,
    DeltaOptions,
    FanucOptions,
)
from msseg_ros.core.robots.cell import Speeds
from msseg_ros.core.robots.kinematics import DeltaGeometry
from msseg_ros.core.segmentation.base import SEGMENTERS
from msseg_ros.core.sim import materials


def test_core_dataclasses_default_to_the_schema():
    speeds = Speeds()
    for f in dataclasses.fields(Speeds):
        assert getattr(speeds, f.name) == ROBOTS.default(f"speeds.{f.name}"), f.name
    geo = DeltaGeometry()
    for name in ("base_radius", "effector_radius", "upper_arm", "forearm"):
        assert getattr(geo, name) == ROBOTS.default(f"delta.{name}")
    s, d, fo = BridgeSettings(), DeltaOptions(), FanucOptions()
    assert (s.encoder_timeout, s.modbus_timeout, s.modbus_watchdog) == (
        ROBOT_BRIDGE.default("encoder_timeout"), ROBOT_BRIDGE.default("modbus.timeout"),
        ROBOT_BRIDGE.default("modbus.watchdog"))
    assert (d.timeout, d.watchdog, d.max_in_flight) == (
        s.modbus_timeout, s.modbus_watchdog, ROBOTS.default("max_in_flight"))
    assert (fo.override, fo.suction_port, fo.vacuum_port) == (s.fanuc_override, s.suction_port, s.vacuum_port)


def test_bounds_come_from_the_schema_too():
    import pytest

    from msseg_ros.core.robots.errors import RobotConfigError

    with pytest.raises(RobotConfigError, match="'speeds.max_accel': value 600.0 refused: must be <= 500"):
        Speeds(max_accel=600.0)


def test_choices_are_the_registries():
    assert tuple(NODE_SCHEMAS["segmenter"]["model.type"].choices) == tuple(SEGMENTERS.names()) == graph.SEGMENTERS
    assert sorted(NODE_SCHEMAS["robot_bridge"]["robot.type"].choices) == ROBOT_BACKENDS.names() == sorted(graph.ROBOTS)


def test_one_class_list_per_cell():
    line = list(cells.SORTING_LINE_CLASSES)
    assert SORTING_CLASSES == line and list(materials.CLASSES) == line
    assert SEGMENTERS.get("maskrcnn").default_config["classes"] == line
    assert SEGMENTERS.get("classic").default_config["classes"] == line
    assert SEGMENTERS.get("bicameral").default_config["classes"] == list(cells.BIN_PICKING_CLASSES)
    assert list(materials.CHANNELS) == list(cells.SORTING_LINE_CHANNELS)
