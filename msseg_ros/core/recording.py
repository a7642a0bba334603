"""Writing rosbag2 bags of raw CDR messages (no ROS here): what ``msseg record`` and the
recorder node use.

``rosbags`` writes the bag: mcap (the default, as ``ros2 bag record``) or sqlite3,
metadata version 9. Message definitions come from rosbags' typestore of the ROS
distribution the installed interfaces belong to (Kilted), so a bag is readable by
``ros2 bag``, Foxglove and ``rosbags`` alike. Messages are stored exactly as received.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from msseg_ros.core.errors import MssegError

STORAGES = ("mcap", "sqlite3")


class RecordError(MssegError, ValueError):
    """A bag cannot be created or a topic cannot be recorded; the message says why."""


class BagRecorder:
    """A rosbag2 being written.

    Args:
        path: the bag folder to create; it must not exist yet.
        storage: ``mcap`` or ``sqlite3``.

    Raises:
        RecordError: an unknown storage, or ``path`` already exists.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        if storage not in STORAGES:
            raise RecordError(f"unknown storage {storage!r}; choose {' or '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise RecordError(f"bag {str(self.path)!r} already exists; choose a new folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordError(f"cannot create bag {str(self.path)!r}: {exc}") from None
        self.storage = storage
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds
            raise RecordError(f"cannot create bag {str(self.path)!r}: {exc}") from None
        self._connections: dict[str, object] = {}
        self.types: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.bytes = 0
        self.closed = False

    def can_record(self, msgtype: str) -> bool:
        """Whether ``msgtype`` (``pkg/msg/Name``) has a definition to store with the bag."""
        return msgtype in self.typestore.fielddefs

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Open a connection for ``topic``; raises RecordError for a type without a definition."""
        if topic in self._connections:
            if self.types[topic] != msgtype:
                raise RecordError(f"{topic}: already recorded as {self.types[topic]}, not {msgtype}")
            return
        if not self.can_record(msgtype):
            raise RecordError(f"{topic}: no message definition for {msgtype} in the Kilted typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self.types[topic] = msgtype

    def write(self, topic: str, stamp_ns: int, raw: bytes) -> None:
        """Store one serialized (CDR) message of ``topic`` received at ``stamp_ns``."""
        if self.closed:
            raise RecordError(f"bag {str(self.path)!r} is closed")
        try:
            conn = self._connections[topic]
        except KeyError:
            raise RecordError(f"{topic}: not added to the bag (add_topic first)") from None
        self._writer.write(conn, int(stamp_ns), bytes(raw))
        self.counts[topic] += 1
        self.bytes += len(raw)

    def close(self) -> None:
        """Finish the bag (metadata.yaml); a bag that was never closed cannot be read."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
