"""Frames across hosts: latency and loss of sensor frames over UDP between two network
namespaces (two "hosts" joined by a veth pair), as the segmenter on another host sees them.

    sudo python msseg_ros/benchmarks/multi_host.py [--sizes 1.35 48] [--frames 20] [--rate 1]

For each frame size (MB; 1.35: seed 001's RGB-D pile frame, 48: seed 000's 11-channel
1000 x 1096 line frame) a publisher in host A sends ``--frames`` 32FC1 Images at
``--rate`` Hz with the contract's sensor QoS (best effort, keep last 1); a subscriber in
host B records each frame's arrival. Both hosts share one clock, so latency is arrival
minus header stamp. Each size is measured with the multi-host profile
(config/dds/fastdds_multi_host.xml) under two socket-buffer limits: the kernel default
``net.core.rmem_max`` / ``wmem_max`` (what a new host has) and 32 MiB (what
docs/deployment.md asks for); the limits are restored afterwards. Needs root (ip netns,
sysctl).

Ratios: ``delivered_{size}MB_{buffers}`` (frames received / sent).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from msseg_ros.bench import add_json_argument, emit

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "dds" / "fastdds_multi_host.xml"
SYSCTLS = ("net.core.rmem_max", "net.core.wmem_max")
BIG_BUFFERS = 33554432


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)


def make_hosts() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    a, b = f"mh_a_{tag}", f"mh_b_{tag}"
    _run("ip", "netns", "add", a)
    _run("ip", "netns", "add", b)
    _run("ip", "link", "add", f"ma{tag}", "type", "veth", "peer", "name", f"mb{tag}")
    for ns, dev, addr in ((a, f"ma{tag}", "10.78.0.1"), (b, f"mb{tag}", "10.78.0.2")):
        _run("ip", "link", "set", dev, "netns", ns)
        for args in (("addr", "add", f"{addr}/24", "dev", dev), ("link", "set", dev, "up"),
                     ("link", "set", "lo", "up"), ("route", "add", "224.0.0.0/4", "dev", dev)):
            _run("ip", "netns", "exec", ns, "ip", *args)
    return a, b


def _sysctl(name: str, value: int | None = None) -> int:
    if value is not None:
        _run("sysctl", "-q", "-w", f"{name}={value}")
    return int(subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, check=True).stdout)


# ---- the two roles, run inside the namespaces ------------------------------------------
def publish(size_mb: float, frames: int, rate: float) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from msseg_ros.ros.image_codec import array_to_image
    from msseg_ros.ros.qos import sensor_qos

    rclpy.init()
    node = rclpy.create_node("frame_source")
    pub = node.create_publisher(Image, "line_scanner/frames", sensor_qos(1))
    width = 1096
    rows = max(1, int(size_mb * 1e6 / (4 * width)))
    frame = np.random.default_rng(0).random((rows, width), np.float32)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(2.0)  # discovery of the reader's locators completes
    for k in range(frames):
        msg = array_to_image(frame, "32FC1")
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = str(k)
        pub.publish(msg)
        time.sleep(1.0 / rate)
    time.sleep(3.0)
    node.destroy_node()
    rclpy.shutdown()


def subscribe(seconds: float, out: str) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from msseg_ros.ros.qos import sensor_qos

    rclpy.init()
    node = rclpy.create_node("frame_sink")
    got: list[dict] = []

    def on_frame(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds * 1e-9
        sent = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        got.append({"index": int(msg.header.frame_id), "latency_s": now - sent, "bytes": len(msg.data)})

    node.create_subscription(Image, "line_scanner/frames", on_frame, sensor_qos(1))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    Path(out).write_text(json.dumps(got))
    node.destroy_node()
    rclpy.shutdown()


# ---- the measurement -------------------------------------------------------------------
def measure(a: str, b: str, size_mb: float, frames: int, rate: float, domain: int) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    me = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "got.json"
        seconds = frames / rate + 25
        sink = subprocess.Popen(["ip", "netns", "exec", b, *me, "--role", "sub", "--seconds", str(seconds),
                                 "--out", str(out)], env=env)
        time.sleep(3.0)
        subprocess.run(["ip", "netns", "exec", a, *me, "--role", "pub", "--size", str(size_mb), "--frames",
                        str(frames), "--rate", str(rate)], env=env, check=True, timeout=seconds + 60)
        sink.wait(timeout=seconds + 60)
        got = json.loads(out.read_text()) if out.is_file() else []
    lat = np.array([g["latency_s"] for g in got]) * 1e3
    return {"sent": frames, "received": len(got), "delivered": len(got) / frames,
            "latency_p50_ms": round(float(np.median(lat)), 1) if lat.size else None,
            "latency_max_ms": round(float(lat.max()), 1) if lat.size else None,
            "frame_bytes": got[0]["bytes"] if got else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1.35, 48.0], metavar="MB")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1.0, help="frames per second")
    ap.add_argument("--role", choices=("pub", "sub"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    add_json_argument(ap)
    args = ap.parse_args()
    if args.role == "pub":
        publish(args.size, args.frames, args.rate)
        return
    if args.role == "sub":
        subscribe(args.seconds, args.out)
        return
    if os.geteuid() != 0:
        raise SystemExit("multi_host: needs root (network namespaces, sysctl)")
    original = {s: _sysctl(s) for s in SYSCTLS}
    a, b = make_hosts()
    ratios: dict[str, float] = {}
    figures: dict[str, dict] = {"kernel_default_buffers": original}
    try:
        domain = 140
        for buffers in ("default", "32MiB"):
            for s in SYSCTLS:
                _sysctl(s, original[s] if buffers == "default" else max(original[s], BIG_BUFFERS))
            for size in args.sizes:
                domain += 1
                r = measure(a, b, size, args.frames, args.rate, domain)
                key = f"{size:g}MB_{buffers}"
                ratios[f"delivered_{key}"] = r["delivered"]
                figures[key] = r
                print(f"{size:g} MB at {args.rate:g} Hz, socket buffers {buffers}: {r['received']}/{r['sent']} "
                      f"frames, latency p50 {r['latency_p50_ms']} ms, max {r['latency_max_ms']} ms", flush=True)
    finally:
        for s, v in original.items():
            _sysctl(s, v)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    emit("multi_host", ratios, figures, args.json)


if __name__ == "__main__":
    main()
