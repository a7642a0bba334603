"""The recorder node on real rclpy + DDS: what was published is in the bag, byte for byte
and with its type, for reliable, best-effort and latched publishers; `msseg record` does
the same from the command line; a bag folder that exists is refused (exit 2)."""
import subprocess
import sys
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import String

from msseg_ros.core.replay import BagPlayback
from msseg_ros.ros.nodes.recorder import RecorderNode
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos

from conftest import ROOT, spin_until


def _image(i):
    return Image(height=2, width=3, encoding="mono8", step=3, data=bytes(range(i, i + 6)))


def test_records_reliable_best_effort_and_latched_topics(ros_context, tmp_path):
    import rclpy

    talker = rclpy.create_node("talker", context=ros_context)
    chatter = talker.create_publisher(String, "chatter", results_qos(10))
    frames = talker.create_publisher(Image, "cam/image", sensor_qos(1))
    score = talker.create_publisher(String, "score", latched_qos())
    score.publish(String(data="latched before the recorder started"))
    bag_path = tmp_path / "bag"
    recorder = RecorderNode(context=ros_context, parameter_overrides=[
        Parameter("out", value=str(bag_path)), Parameter("storage", value="sqlite3"),
        Parameter("topics", value=["chatter", "cam/image", "score", "never_published"]),
        Parameter("discovery_period", value=0.1)])
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(talker)
    ex.add_node(recorder)
    assert spin_until(ex, lambda: len(recorder.subscriptions_by_topic) == 3, 10.0), recorder.subscriptions_by_topic
    assert spin_until(ex, lambda: recorder.bag.counts["/score"] == 1, 5.0)  # transient local: kept
    spin_until(ex, lambda: False, 1.0)  # let the new subscriptions match
    sent_chatter = [String(data=f"hello {i}") for i in range(20)]
    sent_frames = [_image(i) for i in range(5)]
    for i, m in enumerate(sent_chatter):
        chatter.publish(m)
        if i % 4 == 0:
            frames.publish(sent_frames[i // 4])
        spin_until(ex, lambda: False, 0.02)
    assert spin_until(ex, lambda: recorder.bag.counts["/chatter"] == 20, 5.0), recorder.bag.counts
    level, message, _ = recorder.diagnostics_status()
    assert "no publisher yet for /never_published" in message
    recorder.destroy_node()
    talker.destroy_node()
    play = BagPlayback(bag_path)
    types = {t.name: t.msgtype for t in play.topics}
    assert types == {"/chatter": "std_msgs/msg/String", "/cam/image": "sensor_msgs/msg/Image",
                     "/score": "std_msgs/msg/String"}
    assert {t.name: t.latched for t in play.topics} == {"/chatter": False, "/cam/image": False, "/score": True}
    got = {}
    for _, topic, raw in play.schedule(rate=1e9):
        got.setdefault(topic, []).append(bytes(raw))
    assert got["/chatter"] == [serialize_message(m) for m in sent_chatter]  # reliable: all, in order
    # best effort: a subset, compared decoded (CDR padding bytes are not initialised by rclpy)
    sent_pixels = [bytes(m.data) for m in sent_frames]
    recorded = [deserialize_message(r, Image) for r in got["/cam/image"]]
    assert recorded and all(bytes(m.data) in sent_pixels and m.encoding == "mono8" and m.width == 3 for m in recorded)
    assert got["/score"] == [serialize_message(String(data="latched before the recorder started"))]


def test_msseg_record_cli(ros_context, tmp_path):
    import rclpy

    talker = rclpy.create_node("talker", context=ros_context)
    pub = talker.create_publisher(String, "chatter", results_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(talker)
    proc = subprocess.Popen([sys.executable, "-m", "msseg_ros.cli.main", "record", "chatter",
                             "--out", str(tmp_path / "bag"), "--duration", "6"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # start-up and discovery
    n = 0
    while proc.poll() is None and n < 200:
        pub.publish(String(data=f"m{n}"))
        n += 1
        spin_until(ex, lambda: False, 0.02)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "/chatter" in err and "std_msgs/msg/String" in err  # the summary table
    play = BagPlayback(tmp_path / "bag")
    (topic,) = play.topics
    assert topic.name == "/chatter" and topic.count > 20
    assert (tmp_path / "bag" / "bag.mcap").is_file()  # mcap by default
    again = subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", "record", "--out", str(tmp_path / "bag"),
                            "--duration", "1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    talker.destroy_node()
