"""The base of every msseg_ros node.

Why a plain ``rclpy.node.Node`` and not a lifecycle node: the graph must start the same
way under ``ros2 launch``, ``ros2 run`` and ``msseg run`` without a lifecycle manager,
and every state a lifecycle would expose (model loaded, controller connected, source
open) changes at run time anyway: a model swap or a dropped controller happens while the
node is active. So each node starts active, never crashes on bad configuration or input,
refuses bad parameter changes with their reason, and reports its state (OK / WARN /
ERROR, with the reason) in /diagnostics at about 1 Hz. A node that cannot do its job
(an unloadable model, say) stays up in ERROR until a valid parameter is set.

The base provides:
    * the schema-declared parameters (``self.params`` -> typed view);
    * /diagnostics at ``diagnostics_period`` s, from ``counters``, ``rate``, ``latency``
      and the subclass's :meth:`diagnostics_status`;
    * :func:`run_node`, a ``main`` that shuts down cleanly on SIGINT and SIGTERM.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from msseg_ros.core.errors import MssegError
from msseg_ros.core.params import ParamView, Schema
from msseg_ros.core.params.nodes import BASE as BASE_SCHEMA
from msseg_ros.core.telemetry import Counters, LatencyStats, RateMeter
from msseg_ros.ros.parameters import SchemaParameters
from msseg_ros.ros.qos import DIAGNOSTICS_QOS

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class MssegNode(Node):
    """A node with schema parameters, diagnostics and counters.

    Subclasses pass their schema (the base parameters are added if missing) and override
    :meth:`diagnostics_status` and, to react to or veto run-time parameter changes,
    :meth:`on_parameters_change`.
    """

    def __init__(self, node_name: str, schema: Schema, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.schema = schema if "diagnostics_period" in schema else schema.extend(BASE_SCHEMA)
        self.counters = Counters()
        self.rate = RateMeter()
        self.latency = LatencyStats()
        self.started = time.monotonic()
        self._schema_params = SchemaParameters(self, self.schema, self._on_change)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._diag_timer = self.create_timer(self.params.diagnostics_period, self.publish_diagnostics)

    @property
    def params(self) -> ParamView:
        """Typed, read-only view of the current parameters."""
        return self._schema_params.view

    def _on_change(self, proposed: Mapping[str, Any], changed: Mapping[str, Any]) -> str | None:
        reason = self.on_parameters_change(proposed, changed)
        if reason is None and "diagnostics_period" in changed:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(changed["diagnostics_period"], self.publish_diagnostics)
        return reason

    def on_parameters_change(
        self, proposed: Mapping[str, Any], changed: Mapping[str, Any]
    ) -> str | None:
        """Apply a validated change, or return why it is refused (the old values stay)."""
        return None

    def fits_transport(self, size: int, what: str) -> bool:
        """Whether a message of ``size`` bytes may be published (``max_message_bytes``); a
        larger one is counted (``messages_too_large``) and logged instead of vanishing in
        the transport."""
        limit = int(self.params.max_message_bytes)
        if size <= limit:
            return True
        self.counters["messages_too_large"] += 1
        self.get_logger().error(f"{what} of {size} bytes not published: larger than max_message_bytes "
                                f"({limit} bytes, the DDS transport's limit)", throttle_duration_sec=5.0)
        return False

    def diagnostics_status(self) -> tuple[int, str, dict[str, Any]]:
        """(level, message, extra key-values) for this node's status. Override."""
        return OK, "running", {}

    def publish_diagnostics(self) -> None:
        level, message, extra = self.diagnostics_status()
        values: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "rate_hz": round(self.rate.hz, 2),
            "parameter_sets_refused": self._schema_params.rejected,
            "restarts": int(os.environ.get("MSSEG_RESTARTS", "0") or 0),  # set by msseg run's respawn
        }
        if len(self.latency):
            values.update({k: round(v, 2) for k, v in self.latency.summary().items()})
        values.update(self.counters)
        values.update(extra)
        status = DiagnosticStatus(
            level=level,
            name=f"msseg_ros: {self.get_fully_qualified_name()}",
            message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node and spin it until SIGINT/SIGTERM; the body of every node's ``main``.

    Stopping is prompt in every phase: a stop requested before the node exists returns at
    once (nothing to tear down); a node's slow start-up work (a model load) runs off the
    executor thread, so a stop during it is seen within one spin (0.1 s). In a process
    started by ``msseg run`` (MSSEG_NODE_PROCESS=1) the process then ends with
    ``os._exit`` once the node is destroyed and rclpy shut down: nothing is left to
    flush, and interpreter finalisation (torch's, or a loader thread still importing)
    would only delay the stop.

    Returns the process exit code: 0 after a signal, 2 when the node refuses its
    configuration (the reason is logged as one line), 1 on an unexpected error.
    """
    return run_nodes([factory], args)


def run_nodes(factories: Sequence[Callable[[], Node]], args: list[str] | None = None) -> int:
    """:func:`run_node` for several nodes in this one process (``msseg run
    --one-process``): created in order, spun by one executor (:func:`_many_nodes_executor`;
    long work runs in the nodes' own threads), destroyed in reverse order. A node that
    refuses its configuration stops them all (exit 2)."""
    node_process = os.environ.get("MSSEG_NODE_PROCESS") == "1"
    try:
        code = _run_nodes(factories, args)
    except BaseException:
        if not node_process:
            raise
        # e.g. a message to the output of a parent that was killed (BrokenPipeError): with
        # nobody to report to, end here; letting it reach interpreter finalisation would
        # wait for every non-daemon thread a node started, possibly forever
        code = 1
    return _finish(code, node_process)


def _run_nodes(factories: Sequence[Callable[[], Node]], args: list[str] | None) -> int:
    """The body of :func:`run_nodes`; returns the exit code."""
    from msseg_ros import STOP_REQUESTED as stop  # may already be set during start-up
    from msseg_ros import request_stop

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    if stop.is_set():  # asked to stop while importing: no DDS entity exists yet
        print("stopped during start-up (before the node was created)", file=sys.stderr, flush=True)
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    nodes: list[Node] = []
    code = 0
    try:
        for factory in factories:
            if stop.is_set():
                break
            node = factory()
            nodes.append(node)
            node.get_logger().info("ready")
        executor = SingleThreadedExecutor() if len(nodes) == 1 else _many_nodes_executor(len(nodes))
        for node in nodes:
            executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
        for node in nodes:
            node.get_logger().info("shutting down")
        executor.shutdown(timeout_sec=1.0)
    except (MssegError, InvalidParameterTypeException, InvalidParameterValueException) as exc:
        label = _node_label(nodes[-1] if len(nodes) == len(factories) else None)
        print(f"[{label}] configuration refused: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    finally:
        for node in reversed(nodes):
            try:
                node.destroy_node()
            except Exception as exc:  # noqa: BLE001 - reported; the process still ends cleanly
                print(f"[{_node_label(node)}] error while shutting down: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                code = code or 1
        if rclpy.ok():
            rclpy.shutdown()
        for s, h in previous.items():
            signal.signal(s, h)
    return code


def _many_nodes_executor(count: int) -> Executor:
    """The executor of a process hosting several nodes: rclpy's EventsExecutor (its wait
    loop in C++). rclpy's MultiThreadedExecutor rebuilds its wait set in Python on every
    wake-up; with a cell's nodes (three 200 Hz encoder subscriptions, a 50 Hz bridge tick)
    it fell behind, and the line scanner lost almost every encoder message: frames of NaN.
    Work that takes long runs in the nodes' own threads (the segmenter's model, the
    FANUC worker), so one executor thread is enough. MultiThreadedExecutor where rclpy
    lacks it."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return MultiThreadedExecutor(num_threads=count + 1)
    return EventsExecutor()


def _finish(code: int, node_process: bool) -> int:
    if node_process:
        from msseg_ros import stopped_in_time

        stopped_in_time()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # the reader is gone: nothing left to tell
                pass
        os._exit(code)
    return code


def _node_label(node: Node | None) -> str:
    return node.get_name() if node is not None else "node"
