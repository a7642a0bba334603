"""camera: frames from a registered source, with camera_info.

Publishes camera/image_raw (rgb8, sensor QoS) and camera/camera_info (the same stamp and
frame_id; transient-local so that late subscribers get it); a source with depth (sim)
also camera/depth/image_raw (32FC1, m along the optical axis, NaN = no value, registered
to the colour frame: REP 118), with the same header. Continuous at ``fps``, or in
``on_pick`` mode one frame at start and one per finished pick on robot/pick_results.
A source that fails to read is counted and retried; the end of a non-looping file source
stops publishing (reported in /diagnostics).
"""
from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import CameraInfo, Image

from msseg_interfaces.msg import PickResultArray
from msseg_ros.core import tables
from msseg_ros.core.geometry.camera import CameraModel
from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.sensing.sources import SourceError, open_source
from msseg_ros.ros.image_codec import array_to_image
from msseg_ros.ros.node_base import ERROR, OK, WARN, MssegNode, run_node
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import ResultMessageError, msg_to_results


def camera_info_msg(model: CameraModel, header) -> CameraInfo:
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = model.width, model.height
    msg.distortion_model = "plumb_bob"
    msg.d = [float(v) for v in model.D]
    msg.k = [float(v) for v in model.K.ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(model.K[0, 0]), 0.0, float(model.K[0, 2]), 0.0,
             0.0, float(model.K[1, 1]), float(model.K[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class CameraNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("camera", schema_for("camera"), **kwargs)
        p = self.params
        name = "device" if p.source == "live" else p.source
        self.source = open_source(name, p.uri, loop=p.loop, seed=p.sim.seed, scene=p.sim.scene)
        self.model = CameraModel.from_yaml(p.camera_info_url) if p.camera_info_url else self.source.camera_model()
        self.ended = False
        self._img_pub = self.create_publisher(Image, "camera/image_raw", sensor_qos(1))
        self._info_pub = self.create_publisher(CameraInfo, "camera/camera_info", latched_qos())
        self._depth_pub = self.create_publisher(Image, "camera/depth/image_raw", sensor_qos(1))
        if p.trigger == "continuous":
            self._timer = self.create_timer(1.0 / p.fps, self.capture)
        else:
            self.create_subscription(PickResultArray, "robot/pick_results", self._on_pick, results_qos())
            self._first = self.create_timer(0.5, self._capture_once)
            self.create_timer(0.5, self._retrigger)
        self._last_capture = time.monotonic()

    def _retrigger(self) -> None:
        if time.monotonic() - self._last_capture > self.params.trigger_timeout:
            self.counters["retriggers"] += 1
            self.capture()

    def _capture_once(self) -> None:
        self._first.cancel()
        self.capture()

    def _on_pick(self, msg: PickResultArray) -> None:
        try:
            results = msg_to_results(msg)
        except ResultMessageError as exc:
            self.counters["bad_pick_results"] += 1
            self.get_logger().warning(f"pick_results ignored: {exc}")
            return
        if not len(results):
            return
        if hasattr(self.source, "apply_world_pick"):  # the sim pile loses what was picked
            for r in results[results["status"] == tables.PickStatus.DONE]:
                self.counters["picks_applied"] += 1
                self.source.apply_world_pick(float(r["x"]), float(r["y"]), float(r["z"]))
        self.capture()

    def capture(self) -> None:
        self._last_capture = time.monotonic()
        if self.ended:
            return
        try:
            frame = self.source.read()
        except SourceError as exc:
            self.counters["read_errors"] += 1
            self.get_logger().warning(str(exc), throttle_duration_sec=5.0)
            return
        if frame is None:
            self.ended = True
            self.get_logger().info("source ended")
            return
        msg = array_to_image(frame, "rgb8")
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params.frame_id
        if not self.fits_transport(len(msg.data), "frame"):
            return
        depth = self.source.depth()
        self._img_pub.publish(msg)
        if depth is not None:
            depth_msg = array_to_image(depth, "32FC1", header=msg.header)
            if self.fits_transport(len(depth_msg.data), "depth image"):  # 4 bytes a pixel: larger than the rgb8 frame
                self._depth_pub.publish(depth_msg)
                self.counters["depth_frames"] += 1
        if self.model is not None:
            self._info_pub.publish(camera_info_msg(self.model, msg.header))
        self.counters["frames"] += 1
        self.rate.tick()

    def diagnostics_status(self):
        if self.model is None:
            return WARN, "no camera_info (set camera_info_url)", {}
        if self.ended:
            return WARN, "source ended", {}
        if self.counters["read_errors"] and not self.counters["frames"]:
            return ERROR, "source gives no frames", {}
        return OK, f"{self.params.source} source, {self.params.trigger}", {}

    def destroy_node(self) -> None:
        if hasattr(self, "source"):  # rclpy destroys a node whose __init__ failed
            self.source.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
