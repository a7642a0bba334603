"""segmenter: frames in, instances out, with the model swappable at run time.

Subscribes:
    ``input_topic`` (sensor_msgs/Image; 32FC11 on the line, rgb8/bgr8 from the camera),
    sensor QoS of depth ``input_depth``. At most ``input_depth`` frames wait, in order; a
    frame pushed out by a newer one before it was processed is counted as skipped (depth
    1, live: always the newest frame; a replay queues more, so that a loaded machine
    segments every frame of the bag).
Publishes:
    segmentation/instances (mono16, same header), segmentation/detections (msseg_interfaces/InstanceArray
    table), segmentation/overlay (rgb8, only while someone subscribes, at most
    ``overlay_max_rate`` a second, drawn on a thread of its own once the frame's results are
    out, so drawing never delays them), /diagnostics.

Changing any ``model.*``, ``bicameral.*``, ``maskrcnn.*`` or ``classic.*`` parameter loads
the new model next to the running one, then swaps the reference; an invalid value or an
unloadable file is refused with its reason and the old model keeps running. A node that
could not load its first model stays up in ERROR until a valid parameter is set.

Bad input (wrong encoding or channel count, undecodable image, too many NaN) is logged,
counted in /diagnostics and skipped; it never stops the node.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sensor_msgs.msg import Image

from msseg_interfaces.msg import InstanceArray

if TYPE_CHECKING:
    from msseg_ros.core.segmentation.base import Segmenter

from msseg_ros.core.errors import MssegError
from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.segmentation.base import InferenceError
from msseg_ros.core.segmentation.overlay import filter_score, render_overlay
from msseg_ros.core.shards import frame_shard
from msseg_ros.ros.image_codec import (
    ImageCodecError,
    array_to_image,
    image_to_array,
    parse_encoding,
)
from msseg_ros.ros.node_base import ERROR, OK, WARN, MssegNode, run_node
from msseg_ros.ros.qos import results_qos, sensor_qos
from msseg_ros.ros.result_messages import detections_to_msg


def _model_groups() -> tuple[str, ...]:
    """Parameter prefixes whose change reloads the model: ``model.`` and each model type's
    group (named after the type, as the schema declares them)."""
    from msseg_ros.core.segmentation.base import SEGMENTERS

    return ("model.", *(f"{name}." for name in SEGMENTERS.names()))


MODEL_GROUPS = _model_groups()


def frame_from_image(msg: Image, channels: int):
    """Decode an Image into the model's (H, W, C) float32 layout, or raise MssegError."""
    arr = image_to_array(msg)
    if arr.ndim == 2:
        arr = arr[..., None]
    enc = msg.encoding
    if enc.startswith("bgr"):
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    if enc in ("rgba8", "bgra8", "rgba16", "bgra16") and channels == 3:
        arr = arr[..., :3]
    if arr.shape[2] != channels:
        raise ImageCodecError(f"encoding {enc!r} has {arr.shape[2]} channel(s); the model takes {channels}")
    return arr.astype("float32", copy=False)


def model_selection(values: Mapping[str, Any]):
    """The node's flat parameters (``model.type``, ``bicameral.alpha``, ...) as the typed
    :class:`~msseg_ros.core.segmentation.loading.ModelSelection` core loads from."""
    from msseg_ros.core.segmentation.base import SEGMENTERS
    from msseg_ros.core.segmentation.loading import ModelSelection

    kind = values["model.type"]
    prefix = f"{SEGMENTERS.get(kind).param_group}."
    return ModelSelection(
        cell=values["cell"], type=kind, weights=values["model.weights"], device=values["model.device"],
        runtime=values.get("model.runtime", "torch"),
        score_threshold=values["model.score_threshold"], classes=tuple(values.get("model.classes") or ()),
        merge_touching_px=values.get("model.merge_touching_px", -1), merge_gap_px=values.get("model.merge_gap_px", -1),
        class_head=values.get("model.class_head", True),
        options={k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)})


def _channels_of(msg: Image) -> int | None:
    """Channels of an Image from its encoding (``32FC11`` -> 11, ``rgb8`` -> 3), or None."""
    try:
        channels = parse_encoding(msg.encoding).channels
    except ImageCodecError:
        return None
    return 3 if msg.encoding in ("rgba8", "bgra8", "rgba16", "bgra16") else channels


class SegmenterNode(MssegNode):
    """The first model loads on a thread of its own (importing torch and building a
    network takes seconds), so the node answers a stop at once; the input subscription is
    created once that model is loaded. A graph waiting for the segmenter (a replay) can
    therefore wait for its subscription."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("segmenter", schema_for("segmenter"), **kwargs)
        self.model: Segmenter | None = None
        self.model_error = ""
        self.model_name = ""
        #: instances scoring lower are dropped: model.score_threshold, or the model's own
        self.score_threshold = 0.5
        self._last_overlay = -1e9
        self.last_error = ""
        self.last_error_time = -1e9
        self.input_channels: int | None = None  # of the last frame received
        #: set once the first model load has finished, loaded or not
        self.first_load_done = threading.Event()
        self._inst_pub = self.create_publisher(Image, "segmentation/instances", results_qos())
        self._det_pub = self.create_publisher(InstanceArray, "segmentation/detections", results_qos())
        self._overlay_pub = self.create_publisher(Image, "segmentation/overlay", sensor_qos(1))
        self._pending: collections.deque[Image] = collections.deque(maxlen=self.params.input_depth)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="segmenter-worker", daemon=True)
        self._worker.start()
        #: the newest (frame, instances, classes, header) to draw: overlays are drawn on a
        #: thread of their own, after the frame's results are out (not on the frame path)
        self._overlay_job: tuple[Any, Any, Any, Any] | None = None
        self._overlay_lock = threading.Lock()
        self._overlay_wake = threading.Event()
        self._overlay_worker = threading.Thread(target=self._draw_overlays, name="segmenter-overlay", daemon=True)
        self._overlay_worker.start()
        self._subscribe_timer = self.create_timer(0.1, self._subscribe_when_loaded)

    def _subscribe_when_loaded(self) -> None:
        if not self.first_load_done.is_set():
            return
        self._subscribe_timer.cancel()
        p = self.params
        self.create_subscription(Image, p.input_topic, self._on_frame, sensor_qos(p.input_depth))

    def _first_load(self) -> None:
        if self.params.threads > 0:
            import torch

            torch.set_num_threads(self.params.threads)
        try:
            self._load(self._parameters_flat())
        except Exception as exc:  # noqa: BLE001 - any failure leaves the node up, in ERROR
            self.model_error = f"model not loaded: {type(exc).__name__}: {exc}"
            self.get_logger().error(self.model_error)
        finally:
            self.first_load_done.set()

    def _parameters_flat(self) -> dict:
        return dict(self._schema_params.values)

    def _load(self, values: Mapping[str, Any]) -> str | None:
        from msseg_ros.core.segmentation.base import operating_threshold
        from msseg_ros.core.segmentation.loading import load_selected

        try:
            selection = model_selection(values)
            model = load_selected(selection)
            threshold = (selection.score_threshold if selection.score_threshold >= 0
                         else operating_threshold(model.config))
            if self.input_channels is not None and model.in_channels != self.input_channels:
                raise MssegError(f"{selection.weights_name} takes {model.in_channels} channel(s) but the frames on "
                                 f"{self.params.input_topic} have {self.input_channels}")
        except (MssegError, KeyError, ValueError, OSError) as exc:
            reason = f"model not loaded: {exc}"
            if self.model is None:
                self.model_error = reason
                self.get_logger().error(reason)
            return reason
        self.model = model  # the swap: one reference assignment
        self.score_threshold = threshold
        self.model_error = ""
        self.model_name = selection.weights_name
        self.get_logger().info(f"model {self.model_name} ({model.type_name}, {model.in_channels} ch) on {model.device} "
                               f"({model.runtime}), "
                               f"score threshold {threshold:g}")
        return None

    def on_parameters_change(self, proposed: Mapping[str, Any], changed: Mapping[str, Any]) -> str | None:
        if any(k.startswith(MODEL_GROUPS) for k in changed):
            if not self.first_load_done.is_set():
                return "the first model is still loading; set model parameters once it has loaded"
            return self._load(proposed)
        return None

    def _on_frame(self, msg: Image) -> None:
        self.input_channels = _channels_of(msg)
        k, n = self.params.shard
        if n > 1 and frame_shard(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, n) != k:
            self.counters["frames_other_shard"] += 1
            return
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.counters["frames_skipped"] += 1  # the oldest waiting frame drops out
            self._pending.append(msg)
        self._wake.set()

    def _work(self) -> None:
        self._first_load()
        while not self._stop.is_set():
            if not self._wake.wait(0.2):
                continue
            with self._lock:
                msg = self._pending.popleft() if self._pending else None
                if not self._pending:
                    self._wake.clear()
            if msg is not None:
                try:
                    self.process(msg)
                except Exception as exc:  # noqa: BLE001 - a bug or a library's own error: the frame is lost, never the worker
                    self.counters["frame_errors"] += 1
                    self.last_error, self.last_error_time = f"{type(exc).__name__}: {exc}", time.monotonic()
                    self.get_logger().error(f"frame lost: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    def process(self, msg: Image) -> None:
        model = self.model
        if model is None:
            self.counters["frames_without_model"] += 1
            return
        t0 = time.perf_counter()
        try:
            frame = frame_from_image(msg, model.in_channels)
            inst = model(frame, binning=self.params.binning)
        except MssegError as exc:
            kind = ("bad_encoding" if isinstance(exc, ImageCodecError)
                    else "inference_errors" if isinstance(exc, InferenceError) else "bad_frames")
            self.counters[kind] += 1
            self.last_error, self.last_error_time = str(exc), time.monotonic()
            self.get_logger().warning(f"frame skipped: {exc}", throttle_duration_sec=5.0)
            return
        inst = filter_score(inst, self.score_threshold)
        self._inst_pub.publish(array_to_image(inst.labels, "mono16", header=msg.header))
        self._det_pub.publish(detections_to_msg(inst.to_table(), msg.header, model.classes, inst.labels.shape))
        if self._overlay_pub.get_subscription_count() > 0 and self._overlay_due():
            with self._overlay_lock:  # a job not yet drawn is replaced
                self._overlay_job = (frame, inst, model.classes, msg.header)
            self._overlay_wake.set()
        self.counters["frames"] += 1
        self.counters["instances"] += len(inst)
        if inst.invalid_pixels:
            self.counters["invalid_pixels"] += inst.invalid_pixels
        self.latency.add(time.perf_counter() - t0)
        self.rate.tick()

    def _draw_overlays(self) -> None:
        while not self._stop.is_set():
            if not self._overlay_wake.wait(0.2):
                continue
            self._overlay_wake.clear()
            with self._overlay_lock:
                job, self._overlay_job = self._overlay_job, None
            if job is None:
                continue
            frame, inst, classes, header = job
            try:
                image = array_to_image(render_overlay(frame, inst, classes), "rgb8", header=header)
                self.counters["overlays"] += 1
                self._overlay_pub.publish(image)
            except Exception as exc:  # noqa: BLE001 - a picture for people: never stops the node
                self.counters["overlay_errors"] += 1
                self.get_logger().warning(f"overlay not drawn: {exc}", throttle_duration_sec=5.0)

    def _overlay_due(self) -> bool:
        """At most ``overlay_max_rate`` overlays a second (a picture for people, not worth
        frame time); the frames in between are counted as ``overlays_skipped``."""
        rate = self.params.overlay_max_rate
        now = time.monotonic()
        if rate > 0 and now - self._last_overlay < 1.0 / rate:
            self.counters["overlays_skipped"] += 1
            return False
        self._last_overlay = now
        return True

    def diagnostics_status(self):
        extra = {"model": self.model_name or "-", "device": self.model.device if self.model else "-",
                 "shard": "{}/{}".format(*self.params.shard),
                 "runtime": self.model.runtime if self.model else "-",
                 "score_threshold": self.score_threshold}
        if not self.first_load_done.is_set():
            return WARN, "loading the model", extra
        if self.model is None:
            return ERROR, self.model_error or "no model", extra
        if self.last_error:
            extra["last_error"] = self.last_error
        if time.monotonic() - self.last_error_time < 10.0:
            return WARN, "bad input frames in the last 10 s (see counters)", extra
        return OK, "segmenting", extra

    def destroy_node(self) -> None:
        if hasattr(self, "_worker"):  # rclpy destroys a node whose __init__ failed
            self._stop.set()
            self._wake.set()
            self._overlay_wake.set()
            if self.first_load_done.is_set():  # a load in progress is not waited for
                self._worker.join(timeout=1.0)  # the frame in progress
            self._overlay_worker.join(timeout=1.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(SegmenterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
