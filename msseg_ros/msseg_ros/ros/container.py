"""Several msseg nodes in one process (``msseg run --one-process``), in the spirit of a ROS
component container: frames are not copied between processes, torch is imported once,
and one executor spins every node (rclpy's EventsExecutor: node_base.run_nodes).

    python -m msseg_ros.ros.container GRAPH.json

GRAPH.json is a list of ``{"executable": NAME, "ros_args": [...]}``: each node's module
``msseg_ros.ros.nodes.NAME`` and the ``--ros-args`` a node process would get (its name,
namespace, parameter files and remappings), which become the node's own ``cli_args``.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msseg_ros.core.errors import ConfigError
from msseg_ros.ros.node_base import MssegNode, run_nodes


def node_class(executable: str) -> type[MssegNode]:
    """The node class defined in ``msseg_ros.ros.nodes.{executable}``."""
    try:
        module = importlib.import_module(f"msseg_ros.ros.nodes.{executable}")
    except ImportError as exc:
        raise ConfigError(f"no node {executable!r}: {exc}") from None
    found = [c for _, c in inspect.getmembers(module, inspect.isclass)
             if issubclass(c, MssegNode) and c is not MssegNode and c.__module__ == module.__name__]
    if len(found) != 1:
        raise ConfigError(f"module {module.__name__} defines {len(found)} node classes, expected 1")
    return found[0]


def factories(graph: list[dict[str, Any]]) -> list[Callable[[], MssegNode]]:
    """A constructor per node of ``graph``, each with its own ``--ros-args``."""
    out: list[Callable[[], MssegNode]] = []
    for entry in graph:
        cls = node_class(entry["executable"])
        out.append(functools.partial(cls, cli_args=["--ros-args", *entry["ros_args"]]))
    return out


#: modules a node imports from a worker thread after the executor has started, imported
#: here first: beside a busy executor an import gets little of the GIL (a
#: segmenter was still importing torch 30 s after start, its frames all lost)
PRELOAD = {"segmenter": ("torch", "torchvision", "msseg_ros.core.segmentation.loading")}


def preload(graph: list[dict[str, Any]]) -> list[str]:
    """Import the :data:`PRELOAD` modules of ``graph``'s nodes; returns their names."""
    names = sorted({m for entry in graph for m in PRELOAD.get(entry["executable"], ())})
    for name in names:
        importlib.import_module(name)
    return names


def write_graph(path: Path, entries: list[tuple[str, list[str]]]) -> Path:
    """Write GRAPH.json: ``entries`` are (executable, that node's ``--ros-args`` without
    the ``--ros-args`` itself)."""
    path.write_text(json.dumps([{"executable": e, "ros_args": list(a)} for e, a in entries], indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m msseg_ros.ros.container GRAPH.json", file=sys.stderr)
        return 2
    try:
        graph = json.loads(Path(argv[0]).read_text())
        made = factories(graph)
        preload(graph)
    except (OSError, ValueError, KeyError, ConfigError) as exc:
        print(f"[container] configuration refused: {exc}", file=sys.stderr)
        return 2
    return run_nodes(made)


if __name__ == "__main__":
    raise SystemExit(main())
