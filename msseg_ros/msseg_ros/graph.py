"""The node graph of each cell: one description shared by the launch files and ``msseg run``.

``describe(cell, mode=..., segmenter=..., robot=...)`` returns a :class:`GraphSpec`: which
nodes run, from which executables, with which parameter files, parameter overrides and
remappings. ``launch/*.launch.py`` turn it into ``launch_ros`` Nodes; ``msseg run`` spawns
the same console_scripts as processes. Neither adds nodes of its own, so they cannot
drift apart.

Only the standard library (and PyYAML, which every ROS 2 launch environment has, when
shards are described) is imported here: setup.py and launch files import this.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msseg_ros.core.params.files import as_file_list
from msseg_ros.core.paths import packaged, share_dir
from msseg_ros.core.segmentation.base import SEGMENTERS as _SEGMENTER_TYPES

CELLS = ("sorting_line", "bin_picking")
MODES = ("sim", "replay", "live")
#: the registered model types (the registry is the one list; listing imports no torch)
SEGMENTERS = tuple(_SEGMENTER_TYPES.names())
ROBOTS = ("delta", "fanuc", "dry_run")

#: Every node executable of the package (console_scripts of the same name).
NODE_EXECUTABLES = (
    "cell_sim",
    "line_scanner",
    "camera",
    "replay",
    "recorder",
    "segmenter",
    "grasp_selector",
    "robot_bridge",
)

#: Per cell: its sensor node, and the default segmenter and robot.
CELL_DEFAULTS = {
    "sorting_line": {"sensor": "line_scanner", "segmenter": "maskrcnn", "robot": "delta"},
    "bin_picking": {"sensor": "camera", "segmenter": "maskrcnn", "robot": "fanuc"},
}

#: frames a replay's segmenter keeps waiting (its ``input_depth``; live: 1, the newest):
#: the bag plays in real time, and a segmenter slower than that for a while catches up
#: instead of skipping frames (10 line frames at 0.5 mm are 480 MB)
REPLAY_INPUT_DEPTH = 10

#: Sensor topics a replay publishes into the pipeline, per cell.
REPLAY_TOPICS = {
    "sorting_line": ("conveyor/joint_states", "line_scanner/frames"),
    "bin_picking": ("camera/image_raw", "camera/camera_info", "camera/depth/image_raw"),  # depth: if recorded
}

#: what ``record`` keeps by default: the sensor streams (to replay them) and the results
#: computed from them (to compare a replay with the run that was recorded)
RECORD_TOPICS = {
    cell: (*topics, "segmentation/detections", "grasps/candidates", "robot/pick_results")
    for cell, topics in REPLAY_TOPICS.items()
}


#: Nodes that keep a process of their own with ``one_process``: the simulated world (it
#: stands for the belt and the robots, not for the cell's software, and in the same
#: interpreter its 200 Hz encoder timer would compete for the GIL with the pipeline).
OWN_PROCESS = ("cell_sim",)


class GraphError(ValueError):
    """An invalid choice for the graph; the message names it and the valid ones."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        name: the node name (also its key in parameter files).
        executable: the console_script that runs it.
        parameters: overrides applied after the parameter files, flat dotted names.
        remappings: (from, to) topic remappings.
    """

    name: str
    executable: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()

    @property
    def installed(self) -> bool:
        """Whether this package provides the node yet."""
        return executable_available(self.executable)


@dataclass(frozen=True)
class GraphSpec:
    """A whole graph: what ``msseg run`` starts and what the launch file launches."""

    cell: str
    mode: str
    segmenter: str
    robot: str
    namespace: str
    params_files: tuple[str, ...]
    nodes: tuple[NodeSpec, ...]
    bag: str | None = None
    rviz: bool = False

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def runnable(self) -> tuple[NodeSpec, ...]:
        """The nodes whose executables exist in this installation."""
        return tuple(n for n in self.nodes if n.installed)

    @property
    def missing(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if not n.installed)

    def subset(self, only: Sequence[str] = (), skip: Sequence[str] = ()) -> GraphSpec:
        """The part of the graph one host runs: the nodes named in ``only`` (all when
        empty) less those in ``skip``. The other hosts run the rest, on the same DDS
        domain (docs/deployment.md).

        Raises:
            GraphError: a name that is not a node of this graph, or nothing left to run.
        """
        names = [n.name for n in self.nodes]
        for name in (*only, *skip):
            if name not in names:
                raise GraphError(f"{name!r} is not a node of this graph; its nodes: {', '.join(names)}")
        kept = tuple(n for n in self.nodes if (not only or n.name in only) and n.name not in skip)
        if not kept:
            raise GraphError("no node left to run on this host (--only / --skip)")
        return dataclasses.replace(self, nodes=kept)


def executable_available(executable: str) -> bool:
    return importlib.util.find_spec(f"msseg_ros.ros.nodes.{executable}") is not None


def default_params_file(cell: str) -> str:
    return str(share_dir() / "config" / f"{cell}.yaml")


def params_files_argument(value: str) -> list[str]:
    """The launch argument ``params_file``: one file, or several separated by commas
    (layered in that order, later ones win); empty: [] (the cell's default)."""
    return [f.strip() for f in value.split(",") if f.strip()]


def dds_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the nodes' DDS: the shipped Fast DDS profile for large frames
    (config/dds/fastdds_large_frames.xml), unless the user already chose a profile."""
    environ = dict(os.environ if environ is None else environ)
    if "FASTDDS_DEFAULT_PROFILES_FILE" in environ or "FASTRTPS_DEFAULT_PROFILES_FILE" in environ:
        return {}
    profile = share_dir() / "config" / "dds" / "fastdds_large_frames.xml"
    return {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)} if profile.is_file() else {}


def node_section(params_files: str | Sequence[str], node: str) -> dict[str, Any]:
    """The ``ros__parameters`` of node ``node`` in a parameter file, or several layered
    (under ``/**/node``, ``/node`` or ``node``), flattened to dotted names (``model.type``)."""
    from msseg_ros.core.params import files

    return files.node_section(files.read_sections(params_files), node)


def _choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise GraphError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}")
    return value


def _namespace(ns: str) -> str:
    ns = (ns or "").strip().strip("/")
    for part in ns.split("/") if ns else ():
        if not part or not (part[0].isalpha() or part[0] == "_") or not all(
            c.isalnum() or c == "_" for c in part
        ):
            raise GraphError(f"invalid namespace {ns!r}: use letters, digits, '_' and '/'")
    return "/" + ns if ns else ""


def describe(
    cell: str,
    *,
    mode: str = "sim",
    segmenter: str | None = None,
    robot: str | None = None,
    params_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    bag: str | os.PathLike | None = None,
    rviz: bool = False,
    namespace: str = "",
    record: str | os.PathLike | None = None,
    record_topics: tuple[str, ...] | list[str] | None = None,
    shards: int = 1,
) -> GraphSpec:
    """The graph of ``cell`` in ``mode``.

    Args:
        cell: ``sorting_line`` or ``bin_picking``.
        mode: ``sim`` (cell_sim owns the physics and emulated controllers), ``replay``
            (sensor topics from ``bag``) or ``live`` (hardware sources and controllers).
        segmenter: model type for the segmenter (default per cell).
        robot: robot backend for the bridge (default per cell; ``dry_run`` in replay).
        params_file: the cell's parameter file (default ``config/<cell>.yaml``), or several
            layered as ROS layers repeated ``--params-file``: a later file's values win
            (``[config/sorting_line.yaml, config/sorting_line_0p5mm.yaml]``).
        bag: a rosbag2 folder or file; required in replay mode.
        rviz: also start RViz (launch file only).
        namespace: a ROS namespace for every node.
        record: also record a rosbag2 (mcap) into this new folder.
        record_topics: what to record (default :data:`RECORD_TOPICS` of the cell; an
            empty sequence: every topic).
        shards: segmenter instances sharing the frames (``segmenter_0`` ...
            ``segmenter_{N-1}``, parameter ``shard: [k, N]``); 1: one ``segmenter``.

    Raises:
        GraphError: an unknown choice, a missing bag in replay mode, a missing parameter
            file, a bad namespace.
    """
    _choice("cell", cell, CELLS)
    _choice("mode", mode, MODES)
    defaults = CELL_DEFAULTS[cell]
    segmenter = _choice("segmenter", segmenter or defaults["segmenter"], SEGMENTERS)
    robot = _choice("robot", robot or ("dry_run" if mode == "replay" else defaults["robot"]), ROBOTS)
    if mode == "replay":
        if not bag:
            raise GraphError("replay mode needs a bag (--bag PATH / bag:=PATH)")
        bag = str(bag)
    elif bag:
        raise GraphError(f"a bag is only used in replay mode, not in {mode!r}")
    if not 1 <= shards <= 16:
        raise GraphError(f"shards must be in 1..16, got {shards}")
    segmenters = ["segmenter"] if shards == 1 else [f"segmenter_{k}" for k in range(shards)]
    params = [str(packaged(f)) for f in as_file_list(params_file or [])] or [default_params_file(cell)]
    for f in params:
        if not Path(f).is_file():
            raise GraphError(f"parameter file {f!r} does not exist")

    nodes: list[NodeSpec] = []
    if mode == "sim":
        nodes.append(NodeSpec("cell_sim", "cell_sim", {"cell": cell}))
    record_topics = RECORD_TOPICS[cell] if record_topics is None else tuple(record_topics)
    if mode == "replay":
        # a recorder subscribes to the results once their publishers exist: what the
        # pipeline publishes before that is lost, so the bag waits for it too
        # (recording every topic, record_topics empty: the cell's results are among them)
        kept = record_topics or RECORD_TOPICS[cell]
        results = [t for t in kept if t not in REPLAY_TOPICS[cell]] if record else []
        nodes.append(
            NodeSpec(
                "replay",
                "replay",
                {"bag": bag, "topics": list(REPLAY_TOPICS[cell]), "loop": False,
                 "wait_for_nodes": [*segmenters, "grasp_selector"], "wait_for_topics": results},
            )
        )
    else:
        sensor = defaults["sensor"]
        nodes.append(NodeSpec(sensor, sensor, {"source": "sim" if mode == "sim" else "live"}))
    # shard nodes (segmenter_k) do not match the file's /**/segmenter section: they get it here
    shared = {} if shards == 1 else node_section(params, "segmenter")
    for k, name in enumerate(segmenters):
        # shards on one host split its cores (override with --set segmenter.threads=N)
        shard = {} if shards == 1 else {"shard": [k, shards], "threads": max(1, (os.cpu_count() or 1) // shards)}
        # a replay queues frames rather than skipping them: a loaded machine still segments all
        queue = {"input_depth": REPLAY_INPUT_DEPTH} if mode == "replay" else {}
        nodes.append(NodeSpec(name, "segmenter", {**shared, "cell": cell, "model.type": segmenter, **shard, **queue}))
    nodes.append(NodeSpec("grasp_selector", "grasp_selector", {"cell": cell}))
    nodes.append(NodeSpec("robot_bridge", "robot_bridge", {"cell": cell, "robot.type": robot}))
    if record:
        if Path(record).exists():
            raise GraphError(f"record: {str(record)!r} already exists; choose a new bag folder")
        nodes.append(NodeSpec("recorder", "recorder", {"out": os.path.abspath(record), "topics": list(record_topics)}))
    return GraphSpec(
        cell=cell,
        mode=mode,
        segmenter=segmenter,
        robot=robot,
        namespace=_namespace(namespace),
        params_files=tuple(params),
        nodes=tuple(nodes),
        bag=str(bag) if mode == "replay" and bag is not None else None,
        rviz=bool(rviz),
    )
