"""Both packages built by colcon (from PyPI) into a temporary workspace, as on a ROS
machine: the ament install layout, then a node run from the install with its params file."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("colcon_core") is None,
    reason="colcon is not installed (pip install -e './msseg_ros[dev]' brings it)")]

VENV = Path(sys.prefix)
NODES = ("camera", "cell_sim", "grasp_selector", "line_scanner", "replay", "robot_bridge", "segmenter")


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(VENV), AMENT_PREFIX_PATH=str(VENV),
               PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "colcon", "build", "--base-paths", str(REPO),
           "--build-base", str(ws / "build"), "--install-base", str(ws / "install"),
           "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
           "--event-handlers", "console_direct-"]
    done = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # the standard two-package layout: colcon finds both by crawling the repository, and
    # nothing else (not the venv's packages, not tools/build_interfaces.sh's build folder)
    assert "Finished <<< msseg_interfaces" in done.stdout and "Finished <<< msseg_ros" in done.stdout
    assert done.stdout.count("Finished <<<") == 2, done.stdout[-4000:]
    return ws / "install"


def test_ament_install_layout(install):
    share = install / "msseg_ros" / "share" / "msseg_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "sorting_line.launch.py").is_file()
    assert (share / "config" / "sorting_line.yaml").is_file() and (share / "config" / "models").is_dir()
    index = install / "msseg_ros" / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "msseg_ros").is_file()
    for node in NODES:
        assert os.access(install / "msseg_ros" / "lib" / "msseg_ros" / node, os.X_OK), node
    interfaces = install / "msseg_interfaces"
    assert (interfaces / "share" / "msseg_interfaces" / "msg" / "InstanceArray.msg").is_file()
    assert (interfaces / "share" / "ament_index" / "resource_index" / "packages" / "msseg_interfaces").is_file()
    assert list((interfaces / "lib").glob("libmsseg_interfaces__rosidl_typesupport_c.so"))


def _install_env(install: Path) -> dict[str, str]:
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    paths = [str(install / pkg / site) for pkg in ("msseg_ros", "msseg_interfaces")]
    libs = [str(install / "msseg_interfaces" / "lib"), str(VENV / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), LD_LIBRARY_PATH=os.pathsep.join(libs),
                AMENT_PREFIX_PATH=os.pathsep.join([str(install / "msseg_ros"), str(install / "msseg_interfaces"),
                                                   str(VENV)]))


def test_a_node_from_the_install_publishes(install, ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from msseg_ros.ros.qos import sensor_qos

    from conftest import spin_until

    env = _install_env(install)  # on the probe's DDS domain (ros_context set ROS_DOMAIN_ID)
    share = install / "msseg_ros" / "share" / "msseg_ros"
    where = subprocess.run([sys.executable, "-c", "import msseg_ros, msseg_interfaces; print(msseg_ros.__file__); "
                            "print(msseg_interfaces.__file__)"], env=env, cwd=install, capture_output=True, text=True,
                           timeout=120)
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(line.startswith(str(install)) for line in where.stdout.split()), where.stdout
    node = install / "msseg_ros" / "lib" / "msseg_ros" / "cell_sim"
    proc = subprocess.Popen([sys.executable, str(node), "--ros-args", "--params-file",
                             str(share / "config" / "sorting_line.yaml"), "-p", "cell:=sorting_line"], env=env, cwd=install,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = rclpy.create_node("colcon_probe", context=ros_context)
    got = []
    probe.create_subscription(JointState, "conveyor/joint_states", got.append, sensor_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: len(got) >= 5, timeout=120), proc.stdout.read() if proc.poll() is not None else ""
        assert got[-1].name == ["belt"] and got[-1].position[0] >= got[0].position[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        ex.shutdown()
        probe.destroy_node()
