"""grasp_selector: detections -> pick candidates in ``world``, best first.

Subscribes segmentation/detections (the table carries the frame size and which instances
reach the frame's last row), and, per cell, conveyor/joint_states (line: a time-indexed
belt position buffer) or camera/camera_info (camera: detections wait for it up to
``camera_info_timeout``, then are dropped and counted). A camera cell with
``depth.topic`` set also subscribes that depth image and segmentation/instances (the
only case that needs the label image): detections wait up to ``depth.wait`` for both of
their frame (same stamp), then rank by what lies on what and how high
(core.grasping.depth); those that waited in vain rank without depth and are counted.
With ``depth.min_pick_height`` > 0, candidates on the floor are dropped (counted:
below_min_pick_height). With ``depth.fallback_height`` > 0, a frame without detections,
or with only detections on the floor, takes the depth's blobs as candidates (counted:
depth_fallback_frames, depth_fallback_candidates).
Publishes grasps/candidates (msseg_interfaces/PickCandidateArray, frame ``world``, the
input's stamp), grasps/poses (same order, tool z down) and grasps/markers.
The geometry and ranking live in msseg_ros.core.grasping.select.
"""
from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Pose as PoseMsg
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import CameraInfo, Image, JointState
from visualization_msgs.msg import Marker, MarkerArray

from msseg_interfaces.msg import InstanceArray, PickCandidateArray
from msseg_ros.core.errors import ConfigError
from msseg_ros.core.geometry.belt import BeltBuffer, OutOfBufferError
from msseg_ros.core.geometry.camera import CameraModel, Plane, Pose
from msseg_ros.core.grasping.depth import DepthImageError, DepthRanking, HeightMapper, apply_depth
from msseg_ros.core.grasping.select import (
    DepthOrder,
    Filters,
    LineGeometry,
    PickIdTracker,
    camera_candidates,
    line_candidates,
)
from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.segmentation.overlay import class_colours
from msseg_ros.ros.image_codec import ImageCodecError, image_to_array
from msseg_ros.ros.node_base import OK, WARN, MssegNode, run_node
from msseg_ros.ros.qos import latched_qos, results_qos, sensor_qos
from msseg_ros.ros.result_messages import ResultMessageError, candidates_to_msg, msg_to_detections
from msseg_ros.ros.stamps import to_seconds


def camera_model_from_info(msg: CameraInfo) -> CameraModel:
    return CameraModel(np.array(msg.k, np.float64).reshape(3, 3), np.array(msg.d[:5], np.float64),
                       msg.width, msg.height, msg.header.frame_id or "camera_optical_frame")


class GraspSelectorNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("grasp_selector", schema_for("grasp_selector"), **kwargs)
        self._waiting: dict[tuple[int, int], tuple[float, InstanceArray]] = {}  # for camera_info, depth
        self.camera: CameraModel | None = None
        self._heights: HeightMapper | None = None
        #: the latest depth and instances images by stamp, for the detections of their frame
        self._depth_images: collections.OrderedDict[tuple[int, int], Image] = collections.OrderedDict()
        self._label_images: collections.OrderedDict[tuple[int, int], Image] = collections.OrderedDict()
        self.belt = BeltBuffer(self.params.line.buffer_span)
        self.tracker = PickIdTracker(self.params.line.match_radius)
        self.next_id = 1
        self._state_file = Path(self.params.state_dir) / "tracker.json" if self.params.state_dir else None
        self._load_state()
        self.core_counters: collections.Counter[str] = collections.Counter()
        self._configure(self.params)
        self._cand_pub = self.create_publisher(PickCandidateArray, "grasps/candidates", results_qos())
        self._pose_pub = self.create_publisher(PoseArray, "grasps/poses", results_qos())
        self._marker_pub = self.create_publisher(MarkerArray, "grasps/markers", results_qos())
        self.create_subscription(InstanceArray, "segmentation/detections", self._on_detections, results_qos())
        if self.params.cell == "sorting_line":
            self.create_subscription(JointState, "conveyor/joint_states", self._on_joints, sensor_qos(100))
        else:
            self.create_subscription(CameraInfo, "camera/camera_info", self._on_info, latched_qos())
            if self.uses_depth:
                self.create_subscription(Image, self.params.depth.topic, self._on_depth, sensor_qos(4))
                self.create_subscription(Image, "segmentation/instances", self._on_labels, results_qos())
        self.create_timer(0.05, self._expire)

    @property
    def uses_depth(self) -> bool:
        return self.params.cell == "bin_picking" and bool(self.params.depth.topic)

    def _configure(self, p) -> None:
        self.filters = Filters.from_params(p)
        self.line = LineGeometry.from_params(p.line)
        self.plane = Plane(np.asarray(p.plane.point, float), np.asarray(p.plane.normal, float))
        self.camera_pose = Pose.from_xyz_quat(list(p.camera_extrinsics.translation),
                                              list(p.camera_extrinsics.rotation))
        self.depth_ranking = DepthRanking.from_params(p.depth)
        self._heights = None  # the pose or plane may have changed

    def on_parameters_change(self, proposed, changed):
        from msseg_ros.core.errors import MssegError
        from msseg_ros.core.params import ParamView

        try:
            self._configure(ParamView.from_flat(proposed))
        except MssegError as exc:
            return str(exc)
        return None

    # ---- inputs ------------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        if "belt" in msg.name:
            self.belt.add(to_seconds(msg.header.stamp), float(msg.position[msg.name.index("belt")]))

    def _on_info(self, msg: CameraInfo) -> None:
        if len(msg.k) == 9 and msg.k[0] > 0:
            camera = camera_model_from_info(msg)
            if self.camera is None or not (np.array_equal(camera.K, self.camera.K)
                                           and np.array_equal(camera.D, self.camera.D)
                                           and (camera.width, camera.height) == (self.camera.width,
                                                                                 self.camera.height)):
                self.camera, self._heights = camera, None
            self._drain()
        else:
            self.counters["bad_camera_info"] += 1

    def _key(self, header) -> tuple[int, int]:
        return (header.stamp.sec, header.stamp.nanosec)

    def _on_depth(self, msg: Image) -> None:
        self._keep(self._depth_images, msg)

    def _on_labels(self, msg: Image) -> None:
        self._keep(self._label_images, msg)

    def _keep(self, images: collections.OrderedDict[tuple[int, int], Image], msg: Image) -> None:
        images[self._key(msg.header)] = msg
        while len(images) > 8:
            images.popitem(last=False)
        self._drain()

    def _ready(self, key: tuple[int, int]) -> bool:
        return self.camera is not None and (not self.uses_depth or (key in self._depth_images
                                                                   and key in self._label_images))

    def _on_detections(self, msg: InstanceArray) -> None:
        key = self._key(msg.header)
        if self.params.cell == "bin_picking" and not self._ready(key):
            self._waiting[key] = (time.monotonic(), msg)  # for camera_info, or the frame's depth
            return
        self.process(msg)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, (t, msg) in sorted(self._waiting.items()):
            if self.camera is None:
                if now - t > self.params.camera_info_timeout:
                    del self._waiting[key]
                    self.counters["dropped_no_camera_info"] += 1
            elif now - t > self.params.depth.wait:
                del self._waiting[key]
                self.process(msg)

    def _drain(self) -> None:
        for key in sorted(k for k in self._waiting if self._ready(k)):
            self.process(self._waiting.pop(key)[1])

    def _with_depth(self, det: np.ndarray, key: tuple[int, int]) -> tuple[np.ndarray, DepthOrder | None]:
        """The frame's detections with pick pixels on their masks' tops, and its depth
        evidence; or the detections as they came and None (counted) when its images did
        not come or cannot be used: then the candidates rank as without depth."""
        depth_msg, label_msg = self._depth_images.get(key), self._label_images.get(key)
        if depth_msg is None or label_msg is None:
            self.counters["ranked_without_depth"] += 1
            return det, None
        try:
            assert self.camera is not None  # frames wait for camera_info
            if self._heights is None:
                self._heights = HeightMapper(self.camera, self.camera_pose, self.plane)
            heights = self._heights(image_to_array(depth_msg))
            moved, evidence = apply_depth(det, image_to_array(label_msg), heights, self.depth_ranking)
            if evidence.from_blobs and len(moved):  # the model saw nothing (or only the floor): blobs stand in
                self.counters["depth_fallback_frames"] += 1
                self.counters["depth_fallback_candidates"] += len(moved)
        except (ImageCodecError, DepthImageError) as exc:
            self.counters["bad_depth"] += 1
            self.counters["ranked_without_depth"] += 1
            self.get_logger().warning(f"depth not used: {exc}", throttle_duration_sec=5.0)
            return det, None
        self.counters["ranked_with_depth"] += 1
        return moved, (self.depth_ranking, evidence)

    # ---- work --------------------------------------------------------------------
    def process(self, det_msg: InstanceArray) -> None:
        t0 = time.perf_counter()
        try:
            det = msg_to_detections(det_msg)
        except ResultMessageError as exc:
            self.counters["bad_detections"] += 1
            self.get_logger().warning(f"detections ignored: {exc}")
            return
        header = det_msg.header
        if self.params.cell == "sorting_line":
            try:
                p0 = self.belt.position_at(to_seconds(header.stamp))
            except OutOfBufferError as exc:
                self.counters["stamp_outside_belt_buffer"] += 1
                self.get_logger().warning(f"frame skipped: {exc}", throttle_duration_sec=5.0)
                return
            cand = line_candidates(det, p0, self.line, self.filters, self.tracker, self.core_counters)
        else:
            assert self.camera is not None  # frames wait for camera_info
            depth = None
            if self.uses_depth:
                det, depth = self._with_depth(det, self._key(header))
            cand, self.next_id = camera_candidates(det, self.camera, self.camera_pose, self.plane, self.filters,
                                                   self.next_id, self.core_counters, depth)
        self._save_state()
        header.frame_id = "world"
        self._cand_pub.publish(candidates_to_msg(cand, header))
        self._publish_poses(cand, header)
        self.counters["frames"] += 1
        self.counters["candidates"] += len(cand)
        self.latency.add(time.perf_counter() - t0)
        self.rate.tick()

    def _load_state(self) -> None:
        if self._state_file is None or not self._state_file.is_file():
            return
        try:
            state = json.loads(self._state_file.read_text())
            self.tracker.load_state(state["tracker"])
            self.next_id = max(self.next_id, int(state["next_id"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"grasp selector state {str(self._state_file)!r} cannot be read: {exc}") from None
        self.counters["restored_tracks"] += len(self.tracker.seen)
        self.get_logger().info(f"restored: next pick_id {max(self.next_id, self.tracker.next_id)}, "
                               f"{len(self.tracker.seen)} tracked objects")

    def _save_state(self) -> None:
        """After each frame: written to a temporary file, then renamed (a crash leaves the
        old state or the new one, never half of one)."""
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tracker": self.tracker.to_state(), "next_id": self.next_id}))
        os.replace(tmp, self._state_file)

    def _publish_poses(self, cand: np.ndarray, header) -> None:
        poses = PoseArray(header=header)
        markers = MarkerArray(markers=[Marker(header=header, ns="grasps", action=Marker.DELETEALL)])
        colours = class_colours(len(self.filters.classes) or 1)
        for k, row in enumerate(cand):
            pose = PoseMsg()
            pose.position.x, pose.position.y, pose.position.z = (float(row[c]) for c in ("x", "y", "z"))
            pose.orientation.x, pose.orientation.w = 1.0, 0.0  # tool z down: 180 deg about x
            poses.poses.append(pose)
            m = Marker(header=header, ns="grasps", id=int(row["pick_id"]), type=Marker.SPHERE, action=Marker.ADD)
            m.pose = pose
            m.scale.x = m.scale.y = m.scale.z = 0.02 if k else 0.03
            c = colours[int(row["class_id"]) % len(colours)]
            m.color.r, m.color.g, m.color.b, m.color.a = c[0] / 255, c[1] / 255, c[2] / 255, 1.0
            markers.markers.append(m)
        self._pose_pub.publish(poses)
        self._marker_pub.publish(markers)

    def diagnostics_status(self):
        extra = dict(self.core_counters)
        extra["waiting"] = len(self._waiting)
        if self.params.cell == "bin_picking" and self.camera is None:
            return WARN, "waiting for camera/camera_info", extra
        if self.params.cell == "sorting_line" and len(self.belt) == 0:
            return WARN, "no belt position yet (conveyor/joint_states)", extra
        return OK, "selecting grasps", extra


def main(args: list[str] | None = None) -> int:
    return run_node(GraspSelectorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
