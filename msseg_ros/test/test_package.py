"""The package metadata a ROS machine relies on: package.xml, setup.py, launch files."""
import configparser
import py_compile
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points

from msseg_ros.graph import NODE_EXECUTABLES, executable_available

from conftest import ROOT


def test_package_xml_format3_ament_python_with_deps():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "msseg_ros"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {
        "rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs",
        "diagnostic_msgs", "python3-numpy", "python3-opencv", "launch", "launch_ros",
    } <= exec_deps
    test_deps = {e.text for e in root.findall("test_depend")}
    assert {"launch_testing", "launch_testing_ros", "python3-pytest", "ament_flake8"} <= test_deps


def test_console_scripts_cover_every_node_and_msseg():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("msseg") == "msseg_ros.cli.main:main"
    present = [n for n in NODE_EXECUTABLES if executable_available(n)]
    assert "cell_sim" in present
    for node in present:
        assert scripts.get(node) == f"msseg_ros.ros.nodes.{node}:main", node
    node_files = {p.stem for p in (ROOT / "msseg_ros/ros/nodes").glob("*.py")} - {"__init__"}
    assert node_files <= set(NODE_EXECUTABLES), "a node module not in the graph's list"


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/msseg_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/msseg_ros"
    assert (ROOT / "resource" / "msseg_ros").is_file()


def test_launch_files_compile_and_use_the_graph():
    launches = sorted((ROOT / "launch").glob("*.launch.py"))
    assert [p.name for p in launches] == ["bin_picking.launch.py", "sorting_line.launch.py"]
    for p in launches:
        py_compile.compile(str(p), doraise=True)
        assert "cell_launch_description" in p.read_text()
