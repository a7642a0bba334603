"""BagRecorder: what it writes reads back (rosbags and our replay reader), byte for byte,
in both storages; bad requests are refused with the reason."""
import pytest
from rosbags.typesys import Stores, get_typestore

from msseg_ros.core.recording import BagRecorder, RecordError
from msseg_ros.core.replay import BagPlayback

TS = get_typestore(Stores.ROS2_KILTED)
STRING = TS.types["std_msgs/msg/String"]


def _raw(text):
    return bytes(TS.serialize_cdr(STRING(data=text), "std_msgs/msg/String"))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_reads_back_exactly(tmp_path, storage):
    sent = [_raw(f"msg {i}") for i in range(7)]
    with BagRecorder(tmp_path / "deep" / "bag", storage) as bag:  # missing parents are made
        bag.add_topic("/chatter", "std_msgs/msg/String")
        bag.add_topic("/chatter", "std_msgs/msg/String")  # again: harmless
        for i, raw in enumerate(sent):
            bag.write("/chatter", 1_000_000_000 + i * 100_000_000, raw)
        assert bag.counts["/chatter"] == 7 and bag.bytes == sum(map(len, sent))
    play = BagPlayback(tmp_path / "deep" / "bag")
    assert [(t.name, t.msgtype, t.count) for t in play.topics] == [("/chatter", "std_msgs/msg/String", 7)]
    got = list(play.schedule(rate=1.0))
    assert [raw for _, _, raw in got] == sent
    assert [round(off, 3) for off, _, _ in got] == [round(0.1 * i, 3) for i in range(7)]  # timing kept


def test_refusals(tmp_path):
    with pytest.raises(RecordError, match="unknown storage 'rosbag1'"):
        BagRecorder(tmp_path / "a", "rosbag1")
    (tmp_path / "exists").mkdir()
    with pytest.raises(RecordError, match="already exists"):
        BagRecorder(tmp_path / "exists")
    with BagRecorder(tmp_path / "b") as bag:
        assert not bag.can_record("my_msgs/msg/Unknown")
        with pytest.raises(RecordError, match="no message definition for my_msgs/msg/Unknown"):
            bag.add_topic("/x", "my_msgs/msg/Unknown")
        with pytest.raises(RecordError, match="/y: not added"):
            bag.write("/y", 0, b"")
        bag.add_topic("/z", "std_msgs/msg/String")
        with pytest.raises(RecordError, match="already recorded as std_msgs/msg/String"):
            bag.add_topic("/z", "sensor_msgs/msg/Image")
    with pytest.raises(RecordError, match="is closed"):
        bag.write("/z", 0, _raw("late"))


def test_images_to_bag_refuses_a_wrong_size_and_leaves_no_half_bag(tmp_path):
    import cv2
    import numpy as np

    from msseg_ros.core.geometry.camera import CameraModel
    from msseg_ros.core.recording import images_to_bag

    camera = CameraModel.from_values(50.0, 50.0, 16.0, 12.0, 32, 24)
    good, wrong = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(good), np.full((24, 32, 3), (10, 20, 30), np.uint8))  # BGR on disk
    cv2.imwrite(str(wrong), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(RecordError, match="b.png' is 10x10 px, the camera_info says 32x24"):
        images_to_bag([good, wrong], tmp_path / "bag", camera)
    assert not (tmp_path / "bag").exists()
    assert images_to_bag([good, good], tmp_path / "ok", camera, rate=4.0) == 2
    play = BagPlayback(tmp_path / "ok")
    assert {t.name: t.count for t in play.topics} == {"/camera/image_raw": 2, "/camera/camera_info": 2}
    offsets = [off for off, topic, _ in play.schedule(rate=1.0) if topic == "/camera/image_raw"]
    assert offsets == pytest.approx([0.0, 0.25])
    raw = next(r for _, topic, r in play.schedule(rate=1e9) if topic == "/camera/image_raw")
    img = TS.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert img.encoding == "rgb8" and bytes(img.data[:3]) == bytes([30, 20, 10])  # RGB order
