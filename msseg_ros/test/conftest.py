"""Shared fixtures. Every ROS test runs on real rclpy + Fast DDS, kept on this host and
on a domain ID of its own so that parallel runs do not hear each other."""
from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: the msseg_ros package folder (package.xml, setup.py, config/, launch/, test/)
ROOT = Path(__file__).resolve().parent.parent
#: the repository: both packages (msseg_ros/, msseg_interfaces/), docs/, tools/, README.md
REPO = ROOT.parent
SHARED = REPO.parent / "shared"

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(10, 100)))
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
# the same Fast DDS profile `msseg run` uses, so large frames cross processes whole
from msseg_ros.graph import dds_environment  # noqa: E402

os.environ.update(dds_environment())


def pytest_sessionstart(session):
    from msseg_ros.shm import clean_stale_segments

    clean_stale_segments()  # what killed processes of earlier runs left in /dev/shm (RAM)


def pytest_sessionfinish(session, exitstatus):
    from msseg_ros.shm import clean_stale_segments

    clean_stale_segments()


#: Each ROS test gets a DDS domain of its own (cycling through the safe range 1..101), so
#: participants a previous test left behind in this process or on this host cannot
#: interfere (seen: later subscriptions that never matched).
_DOMAINS = itertools.cycle(range(1, 102))
for _ in range(random.Random(os.getpid()).randrange(101)):
    next(_DOMAINS)


def fresh_domain() -> int:
    d = next(_DOMAINS)
    os.environ["ROS_DOMAIN_ID"] = str(d)  # for the processes the test starts
    return d


@pytest.fixture
def ros_context():
    """An initialised rclpy context on a fresh DDS domain, shut down after the test."""
    import rclpy

    before = os.environ.get("ROS_DOMAIN_ID")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=fresh_domain())
    yield ctx
    if ctx.ok():
        rclpy.shutdown(context=ctx)
    if before is not None:
        os.environ["ROS_DOMAIN_ID"] = before


def wait_until(predicate, timeout: float, period: float = 0.01) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` s pass (no executor)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


def spin_until(executor, predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step)
    return bool(predicate())


@pytest.fixture
def python_exe() -> str:
    return sys.executable


def free_ports(n: int = 1) -> int:
    """A port p such that p .. p+n-1 are free on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + n > 65535:
            continue
        try:
            socks = []
            for i in range(n):
                t = socket.socket()
                t.bind(("127.0.0.1", p + i))
                socks.append(t)
            return p
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free ports")


def run_msseg(*args: str, timeout: float = 280) -> subprocess.CompletedProcess:
    """``msseg ARGS`` from the repository root on a fresh DDS domain; asserts exit 0."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()))
    proc = subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def bag_results(bag, topic: str) -> dict:
    """The result tables recorded on ``topic`` (/segmentation/detections or
    /grasps/candidates) by stamp: {(sec, nanosec): (frame_id, table)}."""
    from rclpy.serialization import deserialize_message

    from msseg_ros.core.replay import BagPlayback
    from msseg_ros.ros.result_messages import TOPIC_TYPES, msg_to_candidates, msg_to_detections

    decode = {"/segmentation/detections": msg_to_detections, "/grasps/candidates": msg_to_candidates}[topic]
    out = {}
    for _, _, raw in BagPlayback(bag, [topic]).schedule(rate=1e9):
        msg = deserialize_message(raw, TOPIC_TYPES[topic.lstrip("/")])
        out[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (msg.header.frame_id, decode(msg))
    return out


def assert_same_outputs(ref, got, atol: float, rtol: float) -> None:
    """Two engines' output tuples agree: same count and shapes, float tensors within
    ``atol`` / ``rtol``, integer tensors equal."""
    import numpy as np
    import torch

    assert len(got) == len(ref)
    for a, b in zip(ref, got, strict=True):
        assert a.shape == b.shape
        if a.is_floating_point():
            np.testing.assert_allclose(b.numpy(), a.numpy(), atol=atol, rtol=rtol)
        else:
            assert torch.equal(a, b)
