"""``msseg record`` and ``msseg bag-images``: rosbag2 files from a running graph or from images."""
from __future__ import annotations

import argparse
import signal
import sys

from msseg_ros.cli.common import UsageError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    rec = sub.add_parser("record", help="record topics of a running graph into a rosbag2 (mcap)")
    rec.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to record (none: every topic)")
    rec.add_argument("--out", required=True, metavar="BAG", help="bag folder to create (must not exist)")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    rec.add_argument("--duration", type=float, default=None, metavar="S",
                     help="stop after S seconds (default: until Ctrl-C)")
    rec.add_argument("--namespace", default="", help="namespace that relative topic names resolve in")
    rec.set_defaults(func=cmd_record)

    bi = sub.add_parser("bag-images", help="write image files as a camera rosbag2 (image_raw + camera_info)")
    bi.add_argument("images", nargs="+", help="image files, in play order (PNG/JPEG)")
    bi.add_argument("--out", required=True, metavar="BAG", help="bag folder to create (must not exist)")
    bi.add_argument("--camera-info", required=True, metavar="YAML",
                    help="the camera's intrinsics (ROS camera_info YAML)")
    bi.add_argument("--rate", type=float, default=2.0, help="frames per second (default 2)")
    bi.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    bi.add_argument("--namespace", default="camera", help="topics NAMESPACE/image_raw and NAMESPACE/camera_info")
    bi.set_defaults(func=cmd_bag_images)


def cmd_record(args: argparse.Namespace) -> int:
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions
    from rich.console import Console
    from rich.table import Table

    from msseg_ros.ros.nodes.recorder import RecorderNode

    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0 s, got {args.duration}")
    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        overrides = [Parameter("out", value=args.out), Parameter("storage", value=args.storage)]
        if args.topics:
            overrides.append(Parameter("topics", value=list(args.topics)))
        node = RecorderNode(namespace=args.namespace or None, parameter_overrides=overrides)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        end = None if args.duration is None else time.monotonic() + args.duration
        print(f"msseg record: writing {args.out} ({args.storage}); Ctrl-C to stop", file=sys.stderr)
        last = time.monotonic()
        while not stop["now"] and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
            if time.monotonic() - last >= 5.0:
                last = time.monotonic()
                print(f"msseg record: {sum(node.bag.counts.values())} messages, "
                      f"{node.bag.bytes / 1e6:.1f} MB", file=sys.stderr, flush=True)
        bag = node.bag
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    t = Table(title=f"{args.out} ({args.storage})")
    t.add_column("topic")
    t.add_column("type")
    t.add_column("messages", justify="right")
    for topic, n in sorted(bag.counts.items()):
        t.add_row(topic, bag.types[topic], str(n))
    for topic in sorted(set(bag.types) - set(bag.counts)):
        t.add_row(topic, bag.types[topic], "0")
    Console(stderr=True).print(t)
    if not bag.counts:
        print("msseg record: no message was received (is the graph running, on this ROS_DOMAIN_ID?)",
              file=sys.stderr)
        return 1
    return 0


def cmd_bag_images(args: argparse.Namespace) -> int:
    from msseg_ros.core.geometry.camera import CameraModel
    from msseg_ros.core.recording import images_to_bag

    camera = CameraModel.from_yaml(args.camera_info)
    ns = "/" + args.namespace.strip("/")
    n = images_to_bag(sorted(args.images), args.out, camera, rate=args.rate, storage=args.storage,
                      image_topic=f"{ns}/image_raw", info_topic=f"{ns}/camera_info")
    print(f"msseg bag-images: {n} frames ({camera.width}x{camera.height}, {args.rate:g} Hz) -> {args.out}: "
          f"{ns}/image_raw, {ns}/camera_info", file=sys.stderr)
    return 0
