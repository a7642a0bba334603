"""Run a cell's graph as processes: the engine of ``msseg run``.

Each node of :func:`msseg_ros.graph.describe` is started from its console_script with
``--ros-args``: the node name, the namespace, the cell's parameter file, then a
generated file with the graph's and the user's overrides (so values keep their exact
ROS types). Their output is forwarded line by line, prefixed with the node name.

The runner stops every node with SIGTERM on Ctrl-C, SIGTERM or ``duration`` and waits
for them for a grace period (``STOP_GRACE_S``, 10 s); a node still running then is killed
(SIGKILL) and named with what it was doing (starting or running, and its last log line).
A node stops within a fraction of a second in any phase (see ``node_base.run_node``), so
the grace period is only reached by a hung node. SIGTERM, not SIGINT: a node signalled
before Python has imported msseg_ros (which installs the node's handler) then simply
ends (exit -15, counted as a clean stop during start-up) instead of raising
KeyboardInterrupt inside the interpreter's own start-up. A node that died on its own is
reported by name.

Respawn (:class:`RespawnPolicy`, on in ``msseg run``): a node that dies while the graph
runs is started again after a delay that doubles each time, up to ``max_restarts``; the
restart is logged and the node reports its count (``restarts``) in /diagnostics. A node
that refused its configuration (exit 2) is not restarted: it would refuse it again. The
robot bridge and the grasp selector get a per-run state folder (the pick ledger; the
pick-id tracker), so a restarted bridge never sends a pick twice and a restarted
selector never issues a pick_id twice.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.params.nodes import NODE_SCHEMAS
from msseg_ros.graph import OWN_PROCESS, GraphSpec, NodeSpec, dds_environment


class NodeDiedError(RuntimeError):
    """A node exited while the graph was meant to be running."""

    def __init__(self, node: str, code: int) -> None:
        super().__init__(f"node {node!r} died with exit code {code}")
        self.node, self.code = node, code


def parse_sets(items: list[str], spec: GraphSpec) -> dict[str, dict[str, Any]]:
    """Parse ``NODE.PARAM=VALUE`` overrides (VALUE in YAML) and validate them.

    Returns:
        ``{node: {param: value}}`` with values typed per the node's schema.

    Raises:
        ConfigError: bad syntax, an unknown node or parameter, or an invalid value.
    """
    nodes = {n.name: n for n in spec.nodes}
    # `segmenter.X` sets X on every shard (segmenter_0 ...) when the graph has shards
    shards = [n for n in nodes if n.startswith("segmenter_") and nodes[n].executable == "segmenter"]
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        node, dot, param = key.partition(".")
        if not sep or not dot or not param:
            raise ConfigError(f"--set {item!r}: expected NODE.PARAM=VALUE")
        if node == "segmenter" and node not in nodes and shards:
            for shard in shards:
                out.setdefault(shard, {}).update(parse_sets([f"{shard}.{param}={raw}"], spec)[shard])
            continue
        if node not in nodes:
            raise ConfigError(
                f"--set {item!r}: no node {node!r} in this graph; nodes: {', '.join(nodes)}"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        schema = NODE_SCHEMAS.get(nodes[node].executable)
        if schema is None:
            raise ConfigError(f"--set {item!r}: node {node!r} is not installed yet")
        if param not in schema:
            raise ConfigError(
                f"--set {item!r}: node {node!r} has no parameter {param!r} "
                f"(see `msseg params {nodes[node].executable}`)"
            )
        if schema[param].type.value == "str" and not isinstance(value, str):
            value = raw  # `--set n.p=123` for a string parameter means the string "123"
        try:
            out.setdefault(node, {})[param] = schema[param].validate(value, strict=False)
        except ConfigError as exc:
            raise ConfigError(f"--set {item!r}: {exc}") from None
    return out


def overrides_yaml(spec: GraphSpec, sets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The overrides parameter file: the graph's parameters, then the user's ``--set``."""
    doc: dict[str, Any] = {}
    for node in spec.nodes:
        params = {**node.parameters, **sets.get(node.name, {})}
        if params:
            doc[f"/**/{node.name}"] = {"ros__parameters": dict(params)}
    return doc


def find_executable(name: str) -> list[str]:
    """The command that runs console_script ``name``: this environment's script when it
    exists (pip/venv or colcon's lib/msseg_ros), else ``python -m`` of the node module."""
    candidates = [Path(sys.executable).parent / name]
    prefix = os.environ.get("COLCON_PREFIX_PATH", "").split(os.pathsep)[0]
    if prefix:
        candidates.append(Path(prefix) / "msseg_ros" / "lib" / "msseg_ros" / name)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return [str(c)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", f"msseg_ros.ros.nodes.{name}"]


def node_command(node: NodeSpec, spec: GraphSpec, overrides_file: str | None) -> list[str]:
    cmd = [*find_executable(node.executable), "--ros-args", "-r", f"__node:={node.name}"]
    if spec.namespace:
        cmd += ["-r", f"__ns:={spec.namespace}"]
    for f in spec.params_files:
        cmd += ["--params-file", f]
    if overrides_file:
        cmd += ["--params-file", overrides_file]
    for src, dst in node.remappings:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


#: The name ``msseg run --one-process`` gives its one process (in logs and restarts).
ONE_PROCESS = "one_process"

#: Seconds a node is given to stop before it is killed. A node stops within a second when
#: it gets a core; 5 s was once too short for a starved one (the line scanner, the suite
#: run beside a training and an evaluation on 2 cores), so the margin is wide.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class RespawnPolicy:
    """Restart a dead node ``max_restarts`` times at most, after ``delay`` s, doubling."""

    max_restarts: int = 3
    delay: float = 1.0


@dataclass
class RunningNode:
    """One node's process, its output threads, and what it was last seen doing."""

    spec: NodeSpec
    process: subprocess.Popen
    threads: list[threading.Thread] = field(default_factory=list)
    ready: bool = False  #: it logged "ready" (its constructor finished)
    last_line: str = ""
    restarts: int = 0
    command: list[str] = field(default_factory=list)  #: what started it (and restarts it)

    def doing(self) -> str:
        phase = "running" if self.ready else "still starting"
        return f"{phase}; last log line: {self.last_line!r}" if self.last_line else phase

    def clean_exit(self, code: int) -> bool:
        """0, or SIGTERM's default action on a node signalled before its handler existed."""
        return code == 0 or (code == -signal.SIGTERM and not self.ready)


class GraphRunner:
    """Starts, watches and stops the processes of one graph.

    Args:
        spec: the graph.
        sets: validated ``--set`` overrides, ``{node: {param: value}}``.
        log: where forwarded lines go (called with ``(node_name, line)``).
        env: extra environment variables for the nodes.
        respawn: restart dead nodes (None: a dead node stops the graph).
        one_process: run the cell's nodes in one process (``msseg_ros.ros.container``),
            spun by one executor (the sim world, ``OWN_PROCESS``, keeps its
            own); respawn then restarts that process.
    """

    def __init__(
        self,
        spec: GraphSpec,
        sets: Mapping[str, Mapping[str, Any]] | None = None,
        log: Callable[[str, str], None] | None = None,
        env: Mapping[str, str] | None = None,
        respawn: RespawnPolicy | None = None,
        one_process: bool = False,
    ) -> None:
        self.spec = spec
        self.one_process = one_process
        self.respawn = respawn
        self.sets = dict(sets or {})
        self.log = log or _print_line
        self.env = {**os.environ, **dds_environment(), "PYTHONUNBUFFERED": "1",
                    "RCUTILS_COLORIZED_OUTPUT": "0", "MSSEG_NODE_PROCESS": "1", **(env or {})}
        self.nodes: list[RunningNode] = []
        #: nodes killed by :meth:`stop` -> what each was doing (shown even when ``log`` is silent)
        self.killed: dict[str, str] = {}
        self._stop = threading.Event()
        self._tmp = tempfile.TemporaryDirectory(prefix="msseg_run_")

    def start(self) -> None:
        for f in self.spec.params_files:
            if not Path(f).is_file():
                raise ConfigError(f"parameter file {f!r} does not exist")
        doc = overrides_yaml(self.spec, self.sets)
        for node in self.spec.runnable:  # the bridge's pick ledger lives as long as the run
            if node.executable in ("robot_bridge", "grasp_selector"):
                params = doc.setdefault(f"/**/{node.name}", {"ros__parameters": {}})["ros__parameters"]
                params.setdefault("state_dir", str(Path(self._tmp.name) / node.name))
        self._overrides = None
        if doc:
            self._overrides = str(Path(self._tmp.name) / "overrides.yaml")
            Path(self._overrides).write_text(yaml.safe_dump(doc, sort_keys=False))
        together = [n for n in self.spec.runnable if n.executable not in OWN_PROCESS] if self.one_process else []
        if together:
            from msseg_ros.ros.container import write_graph

            graph_file = write_graph(Path(self._tmp.name) / "graph.json", [
                (n.executable, node_command(n, self.spec, self._overrides)[len(find_executable(n.executable)) + 1:])
                for n in together])
            self.nodes.append(self._spawn(NodeSpec(ONE_PROCESS, "container"), 0,
                                          [sys.executable, "-m", "msseg_ros.ros.container", str(graph_file)]))
        for node in self.spec.runnable:
            if node not in together:
                self.nodes.append(self._spawn(node, 0))

    def _spawn(self, node: NodeSpec, restarts: int, command: list[str] | None = None) -> RunningNode:
        command = command or node_command(node, self.spec, self._overrides)
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**self.env, "MSSEG_RESTARTS": str(restarts), "MSSEG_PARENT_PID": str(os.getpid())},
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the runner only; it stops the nodes
        )
        running = RunningNode(node, proc, restarts=restarts, command=command)
        for stream in (proc.stdout, proc.stderr):
            t = threading.Thread(target=self._forward, args=(running, stream), daemon=True)
            t.start()
            running.threads.append(t)
        return running

    @property
    def restarts(self) -> dict[str, int]:
        """Restarts so far, by node."""
        return {rn.spec.name: rn.restarts for rn in self.nodes if rn.restarts}

    def _forward(self, node: RunningNode, stream: IO[str]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            if line.endswith("]: ready"):
                node.ready = True
            if line.strip():
                node.last_line = line.strip()[-160:]
            self.log(node.spec.name, line)

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def wait(self, duration: float | None = None, poll: float = 0.1) -> bool:
        """Block until ``duration`` elapses or a stop is requested; True if stopped.

        Raises:
            NodeDiedError: a node exited on its own first (the others are then stopped).
        """
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stop.is_set():
            for i, rn in enumerate(self.nodes):
                code = rn.process.poll()
                if code is None:
                    continue
                policy = self.respawn
                if policy is None or code == 2 or rn.restarts >= policy.max_restarts:
                    self.stop()
                    raise NodeDiedError(rn.spec.name, code)
                delay = policy.delay * 2 ** rn.restarts
                self.log(rn.spec.name, f"died with exit code {code} ({rn.doing()}); restarting "
                         f"({rn.restarts + 1}/{policy.max_restarts}) in {delay:g} s")
                if self._stop.wait(delay):
                    return True
                self.nodes[i] = self._spawn(rn.spec, rn.restarts + 1, rn.command)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._stop.wait(poll)
        return True

    def stop(self, grace: float = STOP_GRACE_S) -> dict[str, int]:
        """SIGTERM every node, SIGKILL what is left after ``grace`` s.

        Returns:
            exit codes by node name; a node that ended by SIGTERM before it had
            installed its handler (still starting) counts as 0.
        """
        for rn in self.nodes:
            if rn.process.poll() is None:
                rn.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        codes: dict[str, int] = {}
        for rn in self.nodes:
            try:
                code = rn.process.wait(max(0.0, deadline - time.monotonic()))
                codes[rn.spec.name] = 0 if rn.clean_exit(code) else code
            except subprocess.TimeoutExpired:
                doing = rn.doing()
                rn.process.kill()
                codes[rn.spec.name] = rn.process.wait()
                self.killed[rn.spec.name] = f"killed after {grace:g} s, {doing}"
                self.log(rn.spec.name, f"did not stop within {grace:g} s ({doing}); killed")
            for t in rn.threads:
                t.join(timeout=1.0)
        self._tmp.cleanup()
        return codes

    def __enter__(self) -> GraphRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if any(rn.process.poll() is None for rn in self.nodes):
            self.stop()


def _print_line(name: str, line: str) -> None:
    print(f"[{name}] {line}", flush=True)
