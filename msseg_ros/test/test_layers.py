"""msseg_ros/core must never import ROS (statically, nor at import time)."""
import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

ROS_MODULES = {
    "rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs",
    "diagnostic_msgs", "builtin_interfaces", "launch", "launch_ros", "rosidl_runtime_py",
}
CORE = ROOT / "msseg_ros" / "core"


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_core_sources_import_no_ros():
    offenders = [
        f"{p.relative_to(ROOT)}: {mod}"
        for p in sorted(CORE.rglob("*.py"))
        for mod in _imports(p)
        if mod.split(".")[0] in ROS_MODULES
    ]
    assert offenders == []


def test_importing_all_of_core_loads_no_ros():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in CORE.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(ROS_MODULES)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert len(modules) >= 8


def test_graph_and_cli_parser_import_without_ros():
    code = (
        "import sys, msseg_ros.graph, msseg_ros.cli.main, msseg_ros.cli.runner\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
