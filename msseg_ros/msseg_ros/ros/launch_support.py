"""Build a ROS 2 launch description from :func:`msseg_ros.graph.describe`.

Used by ``launch/*.launch.py`` on a ROS machine (``launch`` and ``launch_ros`` come from
apt there). The arguments mirror ``msseg run``: mode, segmenter, robot, params_file, bag,
rviz, namespace, record, shards, one_process. Nothing here decides which nodes run: the graph
description does.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from msseg_ros.graph import (
    CELL_DEFAULTS,
    MODES,
    OWN_PROCESS,
    ROBOTS,
    SEGMENTERS,
    dds_environment,
    describe,
    params_files_argument,
    share_dir,
)

#: seconds before a dead node is started again (msseg run doubles it each time)
RESPAWN_DELAY_S = 1.0


def _nodes(context: LaunchContext, cell: str) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    spec = describe(
        cell,
        mode=arg("mode"),
        segmenter=arg("segmenter") or None,
        robot=arg("robot") or None,
        params_file=params_files_argument(arg("params_file")) or None,
        bag=arg("bag") or None,
        rviz=arg("rviz").lower() in ("true", "1", "yes"),
        namespace=arg("namespace"),
        record=arg("record") or None,
        shards=int(arg("shards")),
    )
    actions: list = []
    if spec.missing:
        names = ", ".join(n.name for n in spec.missing)
        actions.append(LogInfo(msg=f"msseg_ros: not in this version yet, not started: {names}"))
    state_root = tempfile.mkdtemp(prefix="msseg_launch_")  # per launch, as msseg run's per run
    one_process = arg("one_process").lower() in ("true", "1", "yes")
    together = [n for n in spec.runnable if n.executable not in OWN_PROCESS] if one_process else []
    if together:
        actions.append(_container(spec, together, state_root))
    for n in spec.runnable:
        if n in together:
            continue
        params = dict(n.parameters)
        if n.executable in ("robot_bridge", "grasp_selector"):  # ledgers that survive a respawn
            params.setdefault("state_dir", os.path.join(state_root, n.name))
        actions.append(
            Node(
                package="msseg_ros",
                executable=n.executable,
                name=n.name,
                namespace=spec.namespace or None,
                parameters=[*spec.params_files, params],
                remappings=list(n.remappings),
                output="screen",
                emulate_tty=True,
                respawn=True,  # as msseg run: a dead node comes back (its state from state_dir)
                respawn_delay=RESPAWN_DELAY_S,
            )
        )
    if spec.rviz:
        rviz_config = share_dir() / "config" / "rviz" / f"{cell}.rviz"
        rviz_args = ["-d", str(rviz_config)] if rviz_config.is_file() else []
        actions.append(
            Node(package="rviz2", executable="rviz2", name="rviz2",
                 namespace=spec.namespace or None, arguments=rviz_args, output="screen")
        )
    return actions


def _container(spec, nodes: list, state_root: str) -> Node:
    """``one_process:=true``: ``nodes`` in one msseg_container process (as ``msseg run
    --one-process``), each with its own parameters, remappings and state folder."""
    import yaml

    from msseg_ros.ros.container import write_graph

    entries = []
    for n in nodes:
        params = dict(n.parameters)
        if n.executable in ("robot_bridge", "grasp_selector"):
            params.setdefault("state_dir", os.path.join(state_root, n.name))
        own = os.path.join(state_root, f"{n.name}.params.yaml")
        with open(own, "w") as f:
            yaml.safe_dump({f"/**/{n.name}": {"ros__parameters": params}}, f)
        args = ["-r", f"__node:={n.name}", *(["-r", f"__ns:={spec.namespace}"] if spec.namespace else [])]
        for p in (*spec.params_files, own):
            args += ["--params-file", p]
        for src, dst in n.remappings:
            args += ["-r", f"{src}:={dst}"]
        entries.append((n.executable, args))
    graph = write_graph(Path(state_root) / "graph.json", entries)
    return Node(package="msseg_ros", executable="msseg_container", name="msseg_container",
                arguments=[str(graph)], output="screen", emulate_tty=True,
                respawn=True, respawn_delay=RESPAWN_DELAY_S)


def cell_launch_description(cell: str) -> LaunchDescription:
    """The launch description of ``cell`` (``sorting_line`` or ``bin_picking``)."""
    d = CELL_DEFAULTS[cell]
    return LaunchDescription(
        [
            DeclareLaunchArgument("mode", default_value="sim", choices=list(MODES),
                                  description="sim | replay | live"),
            DeclareLaunchArgument("segmenter", default_value=d["segmenter"],
                                  choices=list(SEGMENTERS), description="model type"),
            DeclareLaunchArgument("robot", default_value="",
                                  choices=["", *ROBOTS],
                                  description=f"robot backend (default {d['robot']}; "
                                  "dry_run in replay)"),
            DeclareLaunchArgument("params_file", default_value="",
                                  description=f"parameter file (default config/{cell}.yaml); "
                                  "several, comma-separated, are layered (later ones win)"),
            DeclareLaunchArgument("bag", default_value="", description="rosbag2 for replay"),
            DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                                  description="open RViz"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace"),
            DeclareLaunchArgument("record", default_value="",
                                  description="also record a rosbag2 (mcap) into this new folder"),
            DeclareLaunchArgument("shards", default_value="1",
                                  description="segmenters sharing the frames (segmenter_0 ...)"),
            DeclareLaunchArgument("one_process", default_value="false", choices=["true", "false"],
                                  description="the cell's nodes in one process (msseg run --one-process)"),
            *[SetEnvironmentVariable(k, v) for k, v in dds_environment().items()],
            OpaqueFunction(function=_nodes, args=[cell]),
        ]
    )
