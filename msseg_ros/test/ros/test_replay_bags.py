"""The replay node on every real bag in ../shared/data/rosbag2_test_bags: what is published
(raw CDR, in another process) equals the bag, topic by topic, for the types installed here."""
import shutil
import subprocess
import sys
import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from msseg_ros.core.replay import BagPlayback
from msseg_ros.ros.msgtypes import message_class

from conftest import ROOT, SHARED, spin_until

BAGS = SHARED / "data" / "rosbag2_test_bags"
ALL = sorted(p.parent for p in BAGS.rglob("metadata.yaml")) if BAGS.is_dir() else []
pytestmark = pytest.mark.skipif(not ALL, reason="shared bags not present")
QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)


def _expected(bag):
    b = BagPlayback(bag)
    out, skipped = {}, set()
    for _, topic, raw in b.schedule(rate=1e9):
        msgtype = next(t.msgtype for t in b.topics if t.name == topic)
        if message_class(msgtype) is None:
            skipped.add(topic)
            continue
        out.setdefault(topic, []).append(raw)
    return out, skipped, {t.name: t.msgtype for t in b.topics}


def _replay(bag, *params):
    args = [sys.executable, "-m", "msseg_ros.ros.nodes.replay", "--ros-args", "-p", f"bag:={bag}",
            "-p", "rate:=20.0", "-p", "delay:=2.5", "-p", "remap:=[/rosout=/bag/rosout]",
            # play once this test's listener is seen subscribed (a fixed delay alone lost the
            # first messages on a slow CI machine)
            "-p", "wait_for_nodes:=[bag_listener]", "-p", "wait_timeout:=30.0"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def listener():
    """One context and node for all bags (re-creating a DDS participant per test in one
    process made some later subscriptions deaf; one participant is also cheaper)."""
    import rclpy

    from conftest import fresh_domain

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=fresh_domain())
    node = rclpy.create_node("bag_listener", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    yield node, ex
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)


@pytest.mark.parametrize("bag", ALL, ids=[str(p.relative_to(BAGS)) for p in ALL])
def test_replay_equals_bag(listener, bag):
    node, ex = listener
    expected, skipped, types = _expected(bag)
    got: dict[str, list[bytes]] = {t: [] for t in expected}
    subs = []
    for topic in expected:
        name = "/bag/rosout" if topic == "/rosout" else topic
        subs.append(node.create_subscription(message_class(types[topic]), name,
                                             lambda raw, t=topic: got[t].append(bytes(raw)), QOS, raw=True))
    proc = _replay(bag)
    try:
        total = sum(len(v) for v in expected.values())
        spin_until(ex, lambda: sum(len(v) for v in got.values()) >= total, timeout=60)
        spin_until(ex, lambda: False, timeout=3.0 if total == 0 else 0.3)  # nothing more may arrive
        for topic, raws in expected.items():
            assert len(got[topic]) == len(raws), f"{topic}: {len(got[topic])} received, {len(raws)} in the bag; all: { {k: len(v) for k, v in got.items()} }"
            cls = message_class(types[topic])
            # contents, not bytes: the transport may re-pad the CDR's end
            assert [deserialize_message(r, cls) for r in got[topic]] == [deserialize_message(r, cls) for r in raws]
        assert proc.poll() is None, "the node stays up after the end"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        for sub in subs:
            node.destroy_subscription(sub)
    assert proc.returncode == 0, err
    for topic in skipped:
        assert f"{topic}: type" in err and "skipped" in err
    if sum(len(v) for v in expected.values()) == 0 and not skipped:
        assert "is empty" in err


def test_corrupt_and_missing_bags_fail_clearly(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(BAGS / "rosbag2_py/test/resources/mcap/talker", broken)
    (broken / "talker.mcap").write_bytes((broken / "talker.mcap").read_bytes()[:300])
    for bag, message in [(tmp_path / "nope", "does not exist"), (broken, "")]:
        proc = _replay(bag)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        out, err = proc.communicate(timeout=30) if code is not None else ("", "")
        if code is None:  # opened: the corruption shows when reading, as an ERROR state
            proc.terminate()
            out, err = proc.communicate(timeout=30)
            assert "corrupt" in err or "cannot" in err, err
        else:
            assert code == 2 and (message in err) and "Traceback" not in err, err
        time.sleep(0.1)


def test_play_waits_for_a_subscription_on_each_wait_for_topic(listener):
    """A recorder that keeps a pipeline's results subscribes late (once their publishers
    exist); the bag must not start before, or the first results are lost."""
    node, ex = listener
    bag = BAGS / "rosbag2_py/test/resources/mcap/talker"
    expected, _, types = _expected(bag)
    topic = next(t for t in expected if t != "/rosout")  # /rosout is played as /bag/rosout
    cls = message_class(types[topic])
    got: list[bytes] = []
    sub = node.create_subscription(cls, topic, lambda raw: got.append(bytes(raw)), QOS, raw=True)
    proc = _replay(bag, "wait_for_topics:=[/results_probe]", "delay:=0.0")
    probe = None
    try:
        # the listener subscribes to the played topic, but nobody to the probe: nothing plays
        spin_until(ex, lambda: False, timeout=4.0)
        assert got == [] and proc.poll() is None
        probe = node.create_subscription(cls, "/results_probe", lambda raw: None, QOS, raw=True)
        spin_until(ex, lambda: len(got) >= len(expected[topic]), timeout=60)
        assert [deserialize_message(r, cls) for r in got] == [deserialize_message(r, cls) for r in expected[topic]]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        node.destroy_subscription(sub)
        if probe is not None:
            node.destroy_subscription(probe)
