"""QoS profiles of the contract.

Sensor streams are best-effort, keep-last, with a depth parameter (default 1 for
frames, so a slow consumer always works on the newest frame). Results and pick
commands are reliable. /diagnostics is reliable with a small history.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def sensor_qos(depth: int = 1) -> QoSProfile:
    """Frames, joint states and other high-rate streams: newest wins."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(1, int(depth)),
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def results_qos(depth: int = 10) -> QoSProfile:
    """Detections, candidates, pick results and commands: nothing silently lost."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(1, int(depth)),
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def latched_qos() -> QoSProfile:
    """Rarely changing data a late subscriber still needs (e.g. camera_info, static markers)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


DIAGNOSTICS_QOS = results_qos(depth=10)
