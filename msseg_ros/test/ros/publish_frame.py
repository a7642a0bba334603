"""Helper process for test_two_process: publishes one seeded 32FC11 frame until killed.

Usage: python publish_frame.py SEED HEIGHT WIDTH
"""
import sys
import time

import numpy as np
import rclpy
from sensor_msgs.msg import Image

from msseg_ros.ros.image_codec import array_to_image
from msseg_ros.ros.qos import sensor_qos


def frame(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(height, width, 11)).astype(np.float32)


def main() -> None:
    seed, h, w = map(int, sys.argv[1:4])
    rclpy.init()
    node = rclpy.create_node("frame_publisher")
    pub = node.create_publisher(Image, "line_scanner/frames", sensor_qos(1))
    msg = array_to_image(frame(seed, h, w))
    msg.header.frame_id = "line_scanner"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
