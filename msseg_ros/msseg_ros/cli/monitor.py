"""Live KPIs of a running graph for ``msseg run``: a ROS node in the CLI process listens
to sim/score (cell_sim's ground-truth scoring), robot/pick_results and /diagnostics, and
renders a rich table (refreshed each second on a terminal; a plain line every 10 s
otherwise). ``snapshot()`` is what goes into the report."""
from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any

import numpy as np
from rich.table import Table

from msseg_ros.core.telemetry import PickIdAudit

STATUS_NAMES = {0: "done", 1: "missed", 2: "failed", 3: "rejected", 4: "skipped"}


class KpiMonitor:
    def __init__(self, namespace: str = "", record: bool = False, latency: bool = True) -> None:
        """Args: record: also keep what the report needs (latency samples from
        grasps/candidates, the latest segmentation/overlay; subscribing to the overlay
        makes the segmenter draw it). latency: measure frame-to-candidates latency (off in
        replay, where stamps are the bag's, not this clock's)."""
        self.namespace = namespace.rstrip("/")
        self.record = record
        self.measure_latency = latency
        self.latencies: list[float] = []
        self.latency_times: list[float] = []  # s since the monitor started, per latency sample
        self._t0 = time.monotonic()
        self.overlay = None
        self.score: dict[str, Any] = {}
        self.nodes: dict[str, dict[str, str]] = {}
        self.levels: dict[str, int] = {}
        self.results: collections.Counter = collections.Counter()
        self.picks_by_robot: collections.Counter = collections.Counter()
        self.pick_ids = PickIdAudit()
        self.history: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> KpiMonitor:
        self._thread = threading.Thread(target=self._spin, name="kpi-monitor", daemon=True)
        self._thread.start()
        return self

    def _topic(self, name: str) -> str:
        return f"{self.namespace}/{name}" if self.namespace else name

    def _spin(self) -> None:
        try:
            import rclpy
            from diagnostic_msgs.msg import DiagnosticArray
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.signals import SignalHandlerOptions
            from std_msgs.msg import String

            from msseg_interfaces.msg import PickCandidateArray, PickResultArray
            from msseg_ros.ros.qos import DIAGNOSTICS_QOS, latched_qos, results_qos
            from msseg_ros.ros.result_messages import (
                ResultMessageError,
                msg_to_candidates,
                msg_to_results,
            )

            ctx = rclpy.Context()
            rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
            node = rclpy.create_node("msseg_run_monitor", context=ctx)

            def on_score(msg: String) -> None:
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    return
                with self._lock:
                    self.score = data
                    self.history.append({"t": round(time.monotonic() - self.started, 2), **data})

            def on_diag(msg) -> None:
                with self._lock:
                    for st in msg.status:
                        name = st.hardware_id.rsplit("/", 1)[-1] or st.name
                        self.nodes[name] = {kv.key: kv.value for kv in st.values} | {"_message": st.message}
                        self.levels[name] = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) \
                            else int(st.level)

            def on_results(msg) -> None:
                try:
                    rows = msg_to_results(msg)
                except ResultMessageError:
                    return
                with self._lock:
                    self.pick_ids.add_results(rows)
                    for r in rows:
                        self.results[STATUS_NAMES.get(int(r["status"]), "?")] += 1
                        if int(r["status"]) == 0:
                            self.picks_by_robot[int(r["robot"])] += 1

            def on_candidates(msg) -> None:
                try:
                    rows = msg_to_candidates(msg)
                except ResultMessageError:
                    rows = None
                with self._lock:
                    if rows is not None:
                        self.pick_ids.add_candidates(rows)
                if not self.measure_latency:
                    return
                now = node.get_clock().now().nanoseconds * 1e-9
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                with self._lock:
                    self.latencies.append(now - stamp)
                    self.latency_times.append(time.monotonic() - self._t0)

            def on_overlay(msg) -> None:
                with self._lock:
                    self.overlay = msg

            if self.record:
                from sensor_msgs.msg import Image

                from msseg_ros.ros.qos import sensor_qos

                node.create_subscription(PickCandidateArray, self._topic("grasps/candidates"), on_candidates, results_qos(50))
                node.create_subscription(Image, self._topic("segmentation/overlay"), on_overlay, sensor_qos(1))
            node.create_subscription(String, self._topic("sim/score"), on_score, latched_qos())
            node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, DIAGNOSTICS_QOS)
            node.create_subscription(PickResultArray, self._topic("robot/pick_results"), on_results, results_qos(100))
            ex = SingleThreadedExecutor(context=ctx)
            ex.add_node(node)
            while not self._stop.is_set():
                ex.spin_once(timeout_sec=0.1)
            node.destroy_node()
            ctx.try_shutdown()
        except Exception as exc:  # noqa: BLE001 - the graph runs on without its monitor
            self.error = f"KPI monitor stopped: {exc}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def node_message(self, name: str) -> str | None:
        """The latest /diagnostics message of node ``name``, or None before its first."""
        with self._lock:
            return self.nodes.get(name, {}).get("_message")

    def node_value(self, name: str, key: str) -> str | None:
        """One value of node ``name``'s latest /diagnostics (e.g. its ``frames`` counter), or None."""
        with self._lock:
            return self.nodes.get(name, {}).get(key)

    def node_level(self, name: str) -> int | None:
        """The latest /diagnostics level of node ``name`` (0 OK, 1 WARN, 2 ERROR), or None."""
        with self._lock:
            return self.levels.get(name)

    def snapshot(self, history: bool = True) -> dict[str, Any]:
        """Everything the report holds; ``history=False`` for the per-second table."""
        with self._lock:
            nodes = {n: dict(v) for n, v in self.nodes.items()}
            lat = np.asarray(self.latencies) * 1e3
            latency: dict[str, Any] = ({"frames": int(lat.size), "p50_ms": round(float(np.percentile(lat, 50)), 1),
                        "p90_ms": round(float(np.percentile(lat, 90)), 1)} if lat.size else {})
            if lat.size:  # per minute of the run: drift shows in a long run
                minute = (np.asarray(self.latency_times) // 60).astype(int)
                latency["by_minute"] = [
                    {"minute": int(m), "frames": int(np.sum(minute == m)),
                     "p50_ms": round(float(np.percentile(lat[minute == m], 50)), 1),
                     "p99_ms": round(float(np.percentile(lat[minute == m], 99)), 1)}
                    for m in np.unique(minute)]
            return {"score": dict(self.score), "pick_results": dict(self.results), "pipeline_latency": latency,
                    "picks_by_robot": {str(k): v for k, v in sorted(self.picks_by_robot.items())},
                    "pick_ids": self.pick_ids.summary(),
                    "nodes": nodes, "levels": dict(self.levels),
                    "history": list(self.history) if history else []}

    def write_report(self, folder, header: dict[str, Any]) -> list[str]:
        """report.json and the plots into ``folder``; returns the files written."""
        from pathlib import Path

        from msseg_ros.cli import report

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        snap = self.snapshot()
        written = []
        (out / "report.json").write_text(json.dumps({**header, **snap}, indent=2))
        written.append("report.json")
        if report.kpis_over_time(snap["history"], out / "kpis_over_time.png"):
            written.append("kpis_over_time.png")
        if report.contingency_heatmap(snap["score"].get("contingency", {}), out / "contingency.png"):
            written.append("contingency.png")
        with self._lock:
            latencies, overlay = list(self.latencies), self.overlay
        if report.latency_histogram(latencies, out / "latency_histogram.png"):
            written.append("latency_histogram.png")
        if overlay is not None:
            import cv2

            from msseg_ros.ros.image_codec import image_to_array

            rgb = image_to_array(overlay)
            cv2.imwrite(str(out / "overlay.png"), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
            written.append("overlay.png")
        return written

    # ---- rendering -----------------------------------------------------------------
    def table(self) -> Table:
        snap = self.snapshot(history=False)
        s, res = snap["score"], snap["pick_results"]
        t = Table(title=f"msseg run — {s.get('cell', '?')} — {time.monotonic() - self.started:.0f} s",
                  show_header=True, header_style="bold")
        t.add_column("KPI")
        t.add_column("value", justify="right")
        t.add_row("pick results", ", ".join(f"{k} {v}" for k, v in sorted(res.items())) or "—")
        if snap["picks_by_robot"]:
            t.add_row("picks by robot", ", ".join(f"#{k}: {v}" for k, v in snap["picks_by_robot"].items()))
        for key in ("objects_scored", "recovery", "purity", "never_detected", "detected_not_picked",
                    "picked_wrong_bin", "empty_grips", "attempts", "success_rate", "centred_rate",
                    "unoccluded_rate", "picks_per_min"):
            if key in s:
                t.add_row(key.replace("_", " "), _fmt(s[key]))
        for key in ("purity_by_bin", "recovery_by_class", "picks_per_min_by_robot"):
            if s.get(key):
                t.add_row(key.replace("_", " "), "  ".join(f"{k}: {_fmt(v)}" for k, v in s[key].items()))
        for name, values in sorted(snap["nodes"].items()):
            parts = []
            if "p50_ms" in values:
                parts.append(f"p50 {values['p50_ms']} ms")
            if values.get("rate_hz") not in (None, "0.0"):
                parts.append(f"{values['rate_hz']} Hz")
            for k in ("skipped_frames", "bad_encoding", "dropped_no_camera_info", "picks_per_min"):
                if values.get(k) not in (None, "0"):
                    parts.append(f"{k} {values[k]}")
            t.add_row(f"node {name}", f"{values.get('_message', '')}  " + ", ".join(parts))
        return t

    def line(self) -> str:
        snap = self.snapshot(history=False)
        s, res = snap["score"], snap["pick_results"]
        keys = ("objects_scored", "recovery", "purity", "attempts", "success_rate")
        kp = " ".join(f"{k}={_fmt(s[k])}" for k in keys if k in s)
        return (f"[kpi] t={time.monotonic() - self.started:.0f}s results={dict(res)} "
                f"robots={snap['picks_by_robot']} {kp}")


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
