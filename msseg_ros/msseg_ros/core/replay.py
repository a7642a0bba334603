"""Reading rosbag2 bags for replay (no ROS here): topics, counts and a timed schedule.

``rosbags`` reads sqlite3 and mcap storage, metadata versions 4 and up, and split bags.
The schedule yields raw CDR messages with the wall-clock offset (s) at which to publish
each: original relative timing divided by ``rate``, starting ``start_offset`` seconds
into the bag, repeated when ``loop`` is set.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msseg_ros.core.errors import MssegError


class BagError(MssegError, ValueError):
    """A bag cannot be opened or read; the message names the path and the reason."""


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str  # e.g. std_msgs/msg/String
    count: int
    latched: bool = False  # recorded from transient-local publishers


def _latched(connection: Any) -> bool:
    from rosbags.interfaces import QosDurability

    profiles = getattr(getattr(connection, "ext", None), "offered_qos_profiles", None) or []
    return bool(profiles) and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in profiles)


def topic_matches(name: str, filters: list[str]) -> bool:
    return not filters or name.lstrip("/") in {f.lstrip("/") for f in filters}


class BagPlayback:
    """A bag opened for replay.

    Args:
        path: the bag folder (or its metadata's folder).
        topics: names to play (leading '/' optional); empty: all.
    """

    def __init__(self, path: str | Path, topics: list[str] | None = None) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {str(self.path)!r} does not exist")
        try:
            self.reader = Reader(self.path)
            self.reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds
            reason = " ".join(str(exc).split())  # one line (YAML errors come with a drawing)
            raise BagError(f"bag {str(self.path)!r} cannot be opened: {reason}") from None
        self.filters = list(topics or [])
        self.connections = [c for c in self.reader.connections if topic_matches(c.topic, self.filters)]

    @property
    def topics(self) -> list[BagTopic]:
        seen: dict[str, BagTopic] = {}
        for c in self.connections:
            prev = seen.get(c.topic)
            seen[c.topic] = BagTopic(c.topic, c.msgtype, c.msgcount + (prev.count if prev else 0),
                                     _latched(c) or bool(prev and prev.latched))
        return sorted(seen.values(), key=lambda t: t.name)

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics)

    @property
    def duration(self) -> float:
        return self.reader.duration / 1e9 if self.reader.message_count else 0.0

    def raw_messages(self, topics: set[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, ns, raw) for ``topics``, in bag order.

        rosbags (0.11) pairs the metadata's connections with each file's by comparing QoS
        profiles structurally; older bags write an infinite duration as 0 in one place
        and as INT32_MAX in the other, so nothing matches and no message is yielded (the
        real rosbag2 'talker' bags). Passing each file's own connections avoids that.
        """
        storages = getattr(getattr(self.reader, "storage", None), "storages", None)
        if storages is None:
            conns = [c for c in self.reader.connections if c.topic in topics]
        else:
            conns = [c for st in storages for c in st.connections if c.topic in topics]
        for conn, ts, raw in self.reader.messages(connections=conns):
            yield conn.topic, ts, raw

    def schedule(self, rate: float = 1.0, start_offset: float = 0.0, loop: bool = False,
                 skip: set[str] | None = None) -> Iterator[tuple[float, str, bytes]]:
        """(wall offset s, topic, raw CDR) in bag order; see the module docstring."""
        if not rate > 0:
            raise BagError(f"rate must be > 0, got {rate}")
        skip = skip or set()
        topics = {c.topic for c in self.connections if c.topic not in skip}
        if not topics:  # rosbags reads every connection when given none
            return
        base = 0.0
        while True:
            first = None
            origin = None  # the first message's time: metadata start times can be wrong
            last = 0.0
            try:
                for topic, ts, raw in self.raw_messages(topics):
                    origin = ts if origin is None else origin
                    t = (ts - origin) / 1e9 - start_offset
                    if t < 0:
                        continue
                    if first is None:
                        first = t
                    last = t - first
                    yield base + last / rate, topic, bytes(raw)
            except Exception as exc:  # noqa: BLE001
                raise BagError(f"bag {str(self.path)!r} is corrupt: {exc}") from None
            if not loop or first is None:
                return
            base += last / rate + 0.001

    def close(self) -> None:
        self.reader.close()
