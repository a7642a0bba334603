"""Writing rosbag2 bags of raw CDR messages (no ROS here): what ``msseg record`` and the
recorder node use.

``rosbags`` writes the bag: mcap (the default, as ``ros2 bag record``) or sqlite3,
metadata version 9. Message definitions come from rosbags' typestore of the ROS
distribution the installed interfaces belong to (Kilted) and from msseg_interfaces' .msg
files (``core.interfaces``), so a bag is readable by
``ros2 bag``, Foxglove and ``rosbags`` alike. Messages are stored exactly as received.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msseg_ros.core.errors import MssegError

if TYPE_CHECKING:
    from rosbags.interfaces import Qos

    from msseg_ros.core.geometry.camera import CameraModel

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

        from msseg_ros.core.interfaces import typestore

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
        self.typestore = typestore()  # Kilted's, and msseg_interfaces'
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds
            raise RecordError(f"cannot create bag {str(self.path)!r}: {exc}") from None
        self._connections: dict[str, Any] = {}
        self.types: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.bytes = 0
        self.closed = False

    def can_record(self, msgtype: str) -> bool:
        """Whether ``msgtype`` (``pkg/msg/Name``) has a definition to store with the bag."""
        return msgtype in self.typestore.fielddefs

    def add_topic(self, topic: str, msgtype: str, latched: bool = False) -> None:
        """Open a connection for ``topic``; raises RecordError for a type without a definition.

        ``latched``: its publishers were transient local (stored in the bag's offered QoS,
        so that replay offers it the same way and late subscribers still get it)."""
        if topic in self._connections:
            if self.types[topic] != msgtype:
                raise RecordError(f"{topic}: already recorded as {self.types[topic]}, not {msgtype}")
            return
        if not self.can_record(msgtype):
            raise RecordError(f"{topic}: no message definition for {msgtype} in the Kilted typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                               offered_qos_profiles=[_offered_qos(latched)])
        self.types[topic] = msgtype

    def write(self, topic: str, stamp_ns: int, raw: bytes | memoryview) -> None:
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

    def __exit__(self, *exc: object) -> None:
        self.close()


def _offered_qos(latched: bool) -> Qos:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1 if latched else 10, QosReliability.RELIABLE,
               QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def images_to_bag(images: list[str | Path], out: str | Path, camera: CameraModel, *, rate: float = 2.0,
                  start_ns: int = 1_700_000_000_000_000_000, storage: str = "mcap",
                  image_topic: str = "/camera/image_raw", info_topic: str = "/camera/camera_info") -> int:
    """Write image files as a camera stream: ``image_topic`` (rgb8) and ``info_topic``
    (``camera``'s intrinsics, plumb_bob) with the same stamp, one frame every 1/``rate`` s
    from ``start_ns``. Returns the number of frames.

    Args:
        images: image files in play order (PNG/JPEG; colour or grey, 8 bit).
        camera: a :class:`~msseg_ros.core.geometry.camera.CameraModel`; every image must
            have its size.

    Raises:
        RecordError: no images, an unreadable image, a size other than the camera's.
    """
    import cv2
    import numpy as np

    if not images:
        raise RecordError("no images given")
    if rate <= 0:
        raise RecordError(f"rate must be > 0 Hz, got {rate}")

    def read(path: str | Path) -> np.ndarray:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise RecordError(f"{str(path)!r} cannot be read as an image")
        if img.shape[:2] != (camera.height, camera.width):
            raise RecordError(f"{str(path)!r} is {img.shape[1]}x{img.shape[0]} px, the camera_info says "
                              f"{camera.width}x{camera.height}")
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))

    bag = BagRecorder(out, storage)
    try:
        ts = bag.typestore
        Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
        Image, CameraInfo = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/CameraInfo"]
        RoI = ts.types["sensor_msgs/msg/RegionOfInterest"]
        bag.add_topic(image_topic, "sensor_msgs/msg/Image")
        bag.add_topic(info_topic, "sensor_msgs/msg/CameraInfo", latched=True)
        K = np.asarray(camera.K, np.float64)
        P = np.array([K[0, 0], K[0, 1], K[0, 2], 0.0, 0.0, K[1, 1], K[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0])
        for i, path in enumerate(images):  # one image in memory at a time
            rgb = read(path)
            stamp = start_ns + round(i * 1e9 / rate)
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=camera.frame_id)
            image = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8",
                          is_bigendian=0, step=rgb.shape[1] * 3, data=rgb.reshape(-1))
            info = CameraInfo(header=header, height=camera.height, width=camera.width, distortion_model="plumb_bob",
                              d=np.asarray(camera.D, np.float64), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P,
                              binning_x=0, binning_y=0,
                              roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            bag.write(image_topic, stamp, ts.serialize_cdr(image, "sensor_msgs/msg/Image"))
            bag.write(info_topic, stamp, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    except BaseException:
        bag.close()
        shutil.rmtree(bag.path, ignore_errors=True)  # no half-written bag left behind
        raise
    bag.close()
    return len(images)
