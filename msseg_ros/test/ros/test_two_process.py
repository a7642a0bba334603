"""An 11-channel frame published in one process is received and decoded in another (real DDS)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from msseg_ros.ros.image_codec import image_to_array
from msseg_ros.ros.qos import sensor_qos

from conftest import spin_until

sys.path.insert(0, str(Path(__file__).parent))
from publish_frame import frame  # noqa: E402


@pytest.mark.parametrize("h, w", [(120, 256), (1000, 1096)], ids=["1.35MB", "seed-size-48MB"])
def test_frame_crosses_processes(ros_context, h, w):
    """The second case is the seed's full 11-channel frame (1000 x 1096 x 11 float32)."""
    import rclpy

    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "publish_frame.py"),
                             "7", str(h), str(w)], stderr=subprocess.PIPE, text=True)
    try:
        node = rclpy.create_node("frame_listener", context=ros_context)
        got = []
        node.create_subscription(Image, "line_scanner/frames", got.append, sensor_qos(1))
        ex = SingleThreadedExecutor(context=ros_context)
        ex.add_node(node)
        ok = spin_until(ex, lambda: len(got) >= 2 or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, f"the publisher died: {proc.stderr.read()[-1500:]}"
        assert ok and len(got) >= 2, "no frame received"
        msg = got[-1]
        assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == (
            "32FC11", h, w, "line_scanner")
        np.testing.assert_array_equal(image_to_array(msg), frame(7, h, w))
        ex.shutdown()
        node.destroy_node()
    finally:
        proc.kill()
        proc.wait()
