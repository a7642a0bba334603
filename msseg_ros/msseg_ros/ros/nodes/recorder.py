"""recorder: chosen topics of a running graph written to a rosbag2 (mcap by default).

Every ``discovery_period`` s the node looks for publishers of the requested topics (or of
every topic, when ``topics`` is empty) and subscribes to each new one with raw CDR, so the
bytes are stored exactly as published, stamped with their receive time (as ``ros2 bag
record``). The subscription's QoS follows the publishers': reliable when all of them are,
transient local when all of them are (so latched topics such as ``sim/score`` are kept),
else best effort / volatile, which matches any publisher. A type with no definition in
the Kilted typestore is skipped with one warning. The bag is closed, and readable, when
the node stops (SIGINT/SIGTERM); an existing ``out`` is refused at start (exit 2).
"""
from __future__ import annotations

from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.recording import BagRecorder, RecordError
from msseg_ros.ros.msgtypes import message_class
from msseg_ros.ros.node_base import OK, WARN, MssegNode, run_node

ALWAYS_SKIPPED = frozenset({"/rosout", "/parameter_events"})


class RecorderNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", schema_for("recorder"), **kwargs)
        p = self.params
        if not p.out:
            raise RecordError("no bag folder given (parameter `out`, or msseg record --out)")
        self.wanted = {self.resolve_topic_name(t) for t in p.topics}
        self.bag = BagRecorder(p.out, p.storage)
        self.subscriptions_by_topic: dict[str, Any] = {}
        self.skipped: set[str] = set()
        self.discover()
        self.create_timer(p.discovery_period, self.discover)
        what = ", ".join(sorted(self.wanted)) if self.wanted else "every topic"
        self.get_logger().info(f"recording {what} into {p.out} ({p.storage})")

    def discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.subscriptions_by_topic or topic in self.skipped or topic in ALWAYS_SKIPPED:
                continue
            if self.wanted and topic not in self.wanted:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: nothing to record yet
            msgtype = types[0]
            cls = message_class(msgtype)
            if cls is None or not self.bag.can_record(msgtype):
                self.skipped.add(topic)
                self.get_logger().warning(f"{topic}: type {msgtype} cannot be recorded here; skipped")
                continue
            qos = _qos_for(publishers, self.params.queue_depth)
            self.bag.add_topic(topic, msgtype, latched=qos.durability == DurabilityPolicy.TRANSIENT_LOCAL)
            self.subscriptions_by_topic[topic] = self.create_subscription(
                cls, topic, lambda raw, t=topic: self._on_message(t, raw), qos, raw=True)
            self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, raw: bytes) -> None:
        self.bag.write(topic, self.get_clock().now().nanoseconds, raw)
        self.counters["messages"] += 1
        self.rate.tick()

    def diagnostics_status(self):
        extra = {"bag": self.params.out, "storage": self.params.storage, "megabytes": round(self.bag.bytes / 1e6, 1),
                 **{f"count {t}": n for t, n in sorted(self.bag.counts.items())}}
        missing = sorted(self.wanted - set(self.subscriptions_by_topic) - self.skipped)
        if missing:
            return WARN, f"no publisher yet for {', '.join(missing)}", extra
        return OK, f"{sum(self.bag.counts.values())} messages on {len(self.subscriptions_by_topic)} topics", extra

    def destroy_node(self) -> None:
        if hasattr(self, "bag"):  # rclpy destroys a node whose __init__ failed
            self.bag.close()
            counts = ", ".join(f"{t} {n}" for t, n in sorted(self.bag.counts.items())) or "nothing"
            self.get_logger().info(f"bag {self.params.out} closed: {counts}")
        super().destroy_node()


def _qos_for(publishers, depth: int) -> QoSProfile:
    """The most demanding QoS every publisher of a topic is compatible with."""
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
