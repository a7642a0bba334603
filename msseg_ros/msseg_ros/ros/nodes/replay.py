"""replay: a rosbag2 played back as raw CDR, with its original relative timing.

Each topic of the bag (filtered by ``topics``, renamed by ``remap``) is published with
its recorded bytes (no deserialisation), reliable and keep-all, so subscribers with any
QoS receive every message. Timing: the bag's relative timestamps divided by ``rate``,
from ``start_offset``; ``loop`` repeats. A type no installed interface package provides
is skipped with one warning; an empty bag is reported; a bag that cannot be read stops
the node at start with exit code 2 and the reason. At the end the node stays up and
says so in /diagnostics (so a graph does not lose a node).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.replay import BagError, BagPlayback
from msseg_ros.ros.msgtypes import message_class
from msseg_ros.ros.node_base import ERROR, OK, WARN, MssegNode, run_node

REPLAY_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
#: topics recorded from transient-local publishers, and camera_info (latched by convention),
#: are offered transient local, so that a subscriber that asks for it matches
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
LATCHED_TYPES = frozenset({"sensor_msgs/msg/CameraInfo"})


class ReplayNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("replay", schema_for("replay"), **kwargs)
        p = self.params
        if not p.bag:
            raise BagError("no bag given (parameter `bag`, or --bag / bag:=)")
        self.bag = BagPlayback(p.bag, list(p.topics))
        remap = dict(e.split("=", 1) for e in p.remap)
        self.publishers_by_topic = {}
        self.skipped: set[str] = set()
        for t in self.bag.topics:
            cls = message_class(t.msgtype)
            if cls is None:
                self.skipped.add(t.name)
                self.get_logger().warning(f"{t.name}: type {t.msgtype} is not installed here; skipped")
                continue
            qos = LATCHED_QOS if t.latched or t.msgtype in LATCHED_TYPES else REPLAY_QOS
            self.publishers_by_topic[t.name] = self.create_publisher(cls, remap.get(t.name, t.name), qos)
        self.state = "playing"
        self.error = ""
        if not self.bag.connections and p.topics:
            have = ", ".join(c.topic for c in self.bag.reader.connections) or "no topics"
            self.state, self.error = "failed", (f"bag {p.bag} holds none of the topics to play "
                                                f"({', '.join(p.topics)}); it has {have}")
            self.get_logger().error(self.error)
        elif self.bag.message_count == 0:
            self.get_logger().warning(f"bag {p.bag} is empty: nothing to play")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="replay", daemon=True)
        self._thread.start()

    def _waiting_for(self) -> list[str]:
        """The nodes of ``wait_for_nodes`` with no subscription to a played topic yet, and
        the topics of ``wait_for_topics`` with no subscription at all."""
        subscribed = {info.node_name for topic, pub in self.publishers_by_topic.items()
                      for info in self.get_subscriptions_info_by_topic(pub.topic_name)}
        topics = [self.resolve_topic_name(t) for t in self.params.wait_for_topics]
        return ([n for n in self.params.wait_for_nodes if n not in subscribed]
                + [t for t in topics if not self.get_subscriptions_info_by_topic(t)])

    def _play(self) -> None:
        p = self.params
        if self.state == "failed":
            return
        deadline = time.monotonic() + p.wait_timeout
        while self.publishers_by_topic and self._waiting_for():  # nothing to play: no wait
            if time.monotonic() > deadline:
                self.get_logger().warning(f"still no subscription from {', '.join(self._waiting_for())} "
                                          f"after {p.wait_timeout:g} s; playing anyway")
                break
            if self._stop.wait(0.1):
                return
        if self._stop.wait(p.delay):  # let subscribers match
            return
        start = time.monotonic()
        try:
            for offset, topic, raw in self.bag.schedule(p.rate, p.start_offset, p.loop, self.skipped):
                delay = start + offset - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                if self._stop.is_set():
                    return
                if not self.fits_transport(len(raw), f"{topic} message"):
                    continue
                self.publishers_by_topic[topic].publish(raw)
                self.counters["published"] += 1
                self.rate.tick()
        except BagError as exc:
            self.state, self.error = "failed", str(exc)
            self.get_logger().error(str(exc))
            return
        self.state = "finished"
        self.get_logger().info(f"replay finished: {self.counters['published']} messages")

    def diagnostics_status(self):
        extra = {"bag": self.params.bag, "state": self.state, "skipped_topics": ",".join(sorted(self.skipped)) or "-"}
        if self.state == "failed":
            return ERROR, self.error, extra
        if self.bag.message_count == 0:
            return WARN, "the bag is empty", extra
        return OK, self.state, extra

    def destroy_node(self) -> None:
        if hasattr(self, "_thread"):  # rclpy destroys a node whose __init__ failed
            self._stop.set()
            self._thread.join(timeout=5.0)
        if hasattr(self, "bag"):
            self.bag.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(ReplayNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
