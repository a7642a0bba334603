"""The segmenter node over real rclpy: outputs match core, bad input is counted, and the
model is swapped at run time (or the swap refused with its reason)."""
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from msseg_interfaces.msg import InstanceArray
from msseg_ros.core.segmentation.loading import load_segmenter
from msseg_ros.core.segmentation.overlay import filter_score
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld
from msseg_ros.ros.image_codec import array_to_image, image_to_array
from msseg_ros.ros.nodes.segmenter import SegmenterNode
from msseg_ros.ros.qos import DIAGNOSTICS_QOS, results_qos, sensor_qos
from msseg_ros.ros.result_messages import msg_to_detections

from conftest import spin_until


@pytest.fixture
def graph(ros_context):
    import rclpy

    node = SegmenterNode(context=ros_context, parameter_overrides=[
        Parameter("model.type", value="classic"), Parameter("model.score_threshold", value=0.3),
        Parameter("diagnostics_period", value=0.2)])
    assert node.first_load_done.wait(60) and node.model is not None, node.model_error
    probe = rclpy.create_node("seg_probe", context=ros_context)
    got = {"inst": [], "det": [], "overlay": [], "diag": []}
    probe.create_subscription(Image, "segmentation/instances", got["inst"].append, results_qos())
    probe.create_subscription(InstanceArray, "segmentation/detections", got["det"].append, results_qos())
    probe.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, DIAGNOSTICS_QOS)
    pub = probe.create_publisher(Image, "line_scanner/frames", sensor_qos(1))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    assert spin_until(ex, lambda: pub.get_subscription_count() > 0, timeout=30)  # subscribed once loaded
    yield node, probe, pub, got, ex
    ex.shutdown()
    node.destroy_node()
    probe.destroy_node()


def _frame(seed=4):
    return SortingLineWorld(SortingLineConfig(seed=seed, feed_rate=12.0)).render(0, 250).image


def _send(pub, frame, stamp_sec=5, encoding=None):
    msg = array_to_image(frame, encoding)
    msg.header.stamp.sec = stamp_sec
    msg.header.frame_id = "line_scanner"
    pub.publish(msg)


def test_outputs_match_core(graph):
    node, probe, pub, got, ex = graph
    frame = _frame()
    assert spin_until(ex, lambda: pub.get_subscription_count() > 0, timeout=10)
    _send(pub, frame)
    assert spin_until(ex, lambda: got["inst"] and got["det"], timeout=30)
    labels = image_to_array(got["inst"][0])
    table = msg_to_detections(got["det"][0])
    assert got["inst"][0].encoding == "mono16" and got["inst"][0].header.stamp.sec == 5
    assert got["det"][0].header.frame_id == "line_scanner"
    expected = filter_score(load_segmenter("sorting_line_classic")(frame), 0.3)
    np.testing.assert_array_equal(labels, expected.labels)
    assert table["class_id"].tolist() == expected.class_ids.tolist() and len(table) > 3
    np.testing.assert_allclose(table["u"], expected.pick_points[:, 0], rtol=1e-6)
    assert np.isnan(table["affordance"]).all()
    assert node.counters["frames"] == 1 and node.counters["overlays"] == 0  # nobody subscribed


def test_binning_segments_a_fine_frame_on_the_models_grid(graph):
    """A 2 mm frame, each pixel repeated 4 x 4 (the 0.5 mm grid), with binning 4: the
    2 mm frame's instances, in 0.5 mm pixels (config/sorting_line_0p5mm.yaml)."""
    node, probe, pub, got, ex = graph
    node.set_parameters([Parameter("binning", value=4)])
    frame = _frame()
    fine = np.repeat(np.repeat(frame, 4, axis=0), 4, axis=1)
    _send(pub, fine)
    assert spin_until(ex, lambda: got["inst"] and got["det"], timeout=30)
    labels, table = image_to_array(got["inst"][0]), msg_to_detections(got["det"][0])
    coarse = filter_score(load_segmenter("sorting_line_classic")(frame), 0.3)
    assert labels.shape == (1000, 1096) and len(table) == len(coarse) > 3
    np.testing.assert_array_equal(labels[::4, ::4], coarse.labels)
    assert table["area"].tolist() == (16 * coarse.areas).tolist()
    np.testing.assert_allclose(table["u"], 4 * coarse.pick_points[:, 0] + 1.5, rtol=1e-6)
    assert (table["frame_width"][0], table["frame_height"][0]) == (1096, 1000)


def test_overlay_only_while_subscribed(graph):
    node, probe, pub, got, ex = graph
    probe.create_subscription(Image, "segmentation/overlay", got["overlay"].append, sensor_qos(1))
    assert spin_until(ex, lambda: node._overlay_pub.get_subscription_count() > 0, timeout=10)
    assert spin_until(ex, lambda: pub.get_subscription_count() > 0, timeout=10)
    _send(pub, _frame())
    assert spin_until(ex, lambda: got["overlay"], timeout=30)
    ov = got["overlay"][0]
    assert ov.encoding == "rgb8" and (ov.height, ov.width) == (250, 274)


def test_overlays_are_rate_capped(graph):
    """At 0.01 Hz, of three frames segmented within 100 s one gets an overlay."""
    node, probe, pub, got, ex = graph
    assert node.set_parameters([Parameter("overlay_max_rate", value=0.01)])[0].successful
    probe.create_subscription(Image, "segmentation/overlay", got["overlay"].append, sensor_qos(5))
    assert spin_until(ex, lambda: node._overlay_pub.get_subscription_count() > 0, timeout=10)
    for k in range(1, 4):
        _send(pub, _frame(seed=k), stamp_sec=k)
        assert spin_until(ex, lambda k=k: node.counters["frames"] == k, timeout=30)
    assert spin_until(ex, lambda: got["overlay"], timeout=10)
    assert node.counters["overlays"] == 1 and node.counters["overlays_skipped"] == 2


def test_bad_frames_are_counted_not_fatal(graph):
    node, probe, pub, got, ex = graph
    assert spin_until(ex, lambda: pub.get_subscription_count() > 0, timeout=10)
    _send(pub, np.zeros((32, 32, 3), np.float32))  # 3 channels for an 11-channel model
    assert spin_until(ex, lambda: node.counters["bad_encoding"] == 1, timeout=20)
    nan = _frame()
    nan[:200] = np.nan
    _send(pub, nan)
    assert spin_until(ex, lambda: node.counters["bad_frames"] == 1, timeout=20)
    assert "pixels are NaN or inf" in node.last_error
    got["diag"].clear()
    assert spin_until(ex, lambda: any(d.status[0].level == DiagnosticStatus.WARN for d in got["diag"]), timeout=10)
    _send(pub, _frame())
    assert spin_until(ex, lambda: node.counters["frames"] == 1, timeout=30)  # still working


def test_an_unexpected_error_loses_the_frame_not_the_worker(graph):
    """A bug or a library's own exception inside the model call (injected here): the frame
    is counted as lost with the error named, and the worker segments the next one."""
    node, probe, pub, got, ex = graph
    assert spin_until(ex, lambda: pub.get_subscription_count() > 0, timeout=10)
    model, real = node.model, node.model.predict

    def broken(frame):
        raise RuntimeError("boom")

    model.predict = broken
    _send(pub, _frame())
    assert spin_until(ex, lambda: node.counters["frame_errors"] == 1, timeout=20)
    assert node.last_error == "RuntimeError: boom" and node.counters["frames"] == 0
    model.predict = real
    _send(pub, _frame(), stamp_sec=6)
    assert spin_until(ex, lambda: node.counters["frames"] == 1, timeout=30)


def test_live_swap_refused_then_accepted(graph):
    node, probe, pub, got, ex = graph
    old = node.model
    r = node.set_parameters([Parameter("model.weights", value="/nope.safetensors")])[0]
    assert not r.successful and "model not loaded" in r.reason and "does not exist" in r.reason
    assert node.model is old and node.params.model.weights == ""
    r = node.set_parameters([Parameter("model.type", value="bicameral")])[0]  # no such shipped model for the line
    assert not r.successful and node.model is old
    r = node.set_parameters([Parameter("classic.min_area_px", value=200)])[0]
    assert r.successful and node.model is not old and node.model.config["min_area_px"] == 200


def test_joining_touching_pieces_is_set_live_and_in_the_line_config(graph):
    """model.merge_touching_px / merge_gap_px reach the model's config (live, like any
    model.* parameter); -1 keeps the checkpoint's own setting (the line's Mask R-CNN joins,
    its classic model does not), and the line's config leaves it to the model."""
    import yaml

    from conftest import ROOT

    node, probe, pub, got, ex = graph
    assert node.params.model.merge_touching_px == -1
    own = node.model.config["merge_touching_px"]  # the checkpoint's
    r = node.set_parameters([Parameter("model.merge_touching_px", value=3), Parameter("model.merge_gap_px", value=1)])
    assert all(x.successful for x in r)
    assert node.model.config["merge_touching_px"] == 3 and node.model.config["merge_gap_px"] == 1
    r = node.set_parameters([Parameter("model.merge_gap_px", value=40)])[0]
    assert not r.successful and "merge_gap_px" in r.reason and node.model.config["merge_gap_px"] == 1
    r = node.set_parameters([Parameter("model.merge_touching_px", value=-1), Parameter("model.merge_gap_px", value=-1)])
    assert all(x.successful for x in r) and node.model.config["merge_touching_px"] == own
    line = yaml.safe_load((ROOT / "config" / "sorting_line.yaml").read_text())["/**/segmenter"]["ros__parameters"]
    assert "merge_touching_px" not in line["model"] and "merge_gap_px" not in line["model"]
    from msseg_ros.core.segmentation.loading import load_segmenter

    assert load_segmenter("sorting_line_maskrcnn").config["merge_touching_px"] > 0  # joins (8: its card)
    assert load_segmenter("sorting_line_classic").config["merge_touching_px"] == 0



def test_class_head_is_a_live_model_parameter(graph):
    """model.class_head reloads the model like any model.* parameter; the line's classic
    model has no head, so either value runs it as it is."""
    node, probe, pub, got, ex = graph
    assert node.params.model.class_head is True
    old = node.model
    r = node.set_parameters([Parameter("model.class_head", value=False)])[0]
    assert r.successful and node.model is not old and node.model.class_head is None
    assert node.model.config.get("class_head", None) is None


def test_first_model_loads_off_the_executor_and_the_input_waits_for_it(ros_context):
    """A stop must be answered during a slow first load: the node exists (and spins) before
    its model is loaded, says so in diagnostics, refuses model changes meanwhile, and
    subscribes to its input only once the model is there."""
    import threading

    from msseg_ros.ros.nodes import segmenter as seg_module

    gate = threading.Event()
    real = seg_module.SegmenterNode._load

    def slow_load(self, values):
        gate.wait(30)  # the load takes as long as the test wants
        return real(self, values)

    node = None
    try:
        seg_module.SegmenterNode._load = slow_load
        node = SegmenterNode(context=ros_context, parameter_overrides=[Parameter("model.type", value="classic")])
        ex = SingleThreadedExecutor(context=ros_context)
        ex.add_node(node)
        for _ in range(5):
            ex.spin_once(timeout_sec=0.05)
        assert node.model is None and not node.first_load_done.is_set()
        assert node.diagnostics_status()[:2] == (DiagnosticStatus.WARN, "loading the model")
        assert node.get_subscriptions_info_by_topic("line_scanner/frames") == []
        r = node.set_parameters([Parameter("classic.min_area_px", value=200)])[0]
        assert not r.successful and "still loading" in r.reason
        gate.set()
        assert node.first_load_done.wait(60) and node.model is not None
        assert spin_until(ex, lambda: len(node.get_subscriptions_info_by_topic("line_scanner/frames")) == 1, 10)
        ex.shutdown()
    finally:
        seg_module.SegmenterNode._load = real
        gate.set()
        if node is not None:
            node.destroy_node()


def test_cuda_without_a_gpu_is_refused_with_its_reason(graph):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    node, *_ = graph
    old = node.model
    r = node.set_parameters([Parameter("model.device", value="cuda")])[0]
    assert not r.successful and "torch sees no CUDA device" in r.reason
    assert node.model is old and node.params.model.device != "cuda"


def test_a_swap_to_a_model_for_other_frames_is_refused(graph, tmp_path):
    """Frames of 11 channels arrive: a 3-channel model would drop every one; refused."""
    node, probe, pub, got, ex = graph
    _send(pub, _frame())
    assert spin_until(ex, lambda: node.input_channels == 11, timeout=10)
    old = node.model
    r = node.set_parameters_atomically([Parameter("model.weights", value="bin_picking_bicameral"),
                                        Parameter("model.type", value="bicameral")])
    assert not r.successful and "takes 3 channel(s) but the frames on line_scanner/frames have 11" in r.reason
    assert node.model is old


def test_runtime_swapped_live_or_refused_with_its_reason(graph, tmp_path, monkeypatch):
    """The classic model runs in Python only: onnxruntime is refused and it keeps running;
    Mask R-CNN on onnxruntime is accepted live and its detections equal torch's."""
    from msseg_ros.core.segmentation.runtimes import OnnxRuntime

    if OnnxRuntime.unavailable_reason():
        pytest.skip("onnxruntime not installed")
    monkeypatch.setenv("MSSEG_CACHE", str(tmp_path))  # exports of shipped models go to the user cache
    monkeypatch.setattr("msseg_ros.core.segmentation.runtimes.engine_cache_dir",
                        lambda path: tmp_path / "runtimes")
    node, probe, pub, got, ex = graph
    old = node.model
    r = node.set_parameters([Parameter("model.runtime", value="onnxruntime")])[0]
    assert not r.successful and "classic models run in Python only, not on onnxruntime" in r.reason
    assert node.model is old and node.params.model.runtime == "torch"
    r = node.set_parameters_atomically([Parameter("model.type", value="maskrcnn"),
                                        Parameter("model.runtime", value="onnxruntime")])
    assert r.successful, r.reason
    assert node.model.runtime == "onnxruntime" and list((tmp_path / "runtimes").glob("maskrcnn-*.onnx"))
    frame = _frame()
    _send(pub, frame)
    assert spin_until(ex, lambda: got["det"], timeout=60)
    table = msg_to_detections(got["det"][-1])
    expected = filter_score(load_segmenter("sorting_line_maskrcnn")(frame), node.score_threshold)
    assert table["class_id"].tolist() == expected.class_ids.tolist()
    np.testing.assert_allclose(table["score"], expected.scores, atol=1e-3)
    # finite but absurd values: the RPN keeps no proposal and ONNX Runtime fails (torch gives
    # no instance): the frame is counted and lost with the runtime's reason, the node goes on
    _send(pub, np.full_like(frame, 3e38), stamp_sec=6)
    assert spin_until(ex, lambda: node.counters["inference_errors"] == 1, timeout=30)
    assert "ONNX Runtime failed on this frame" in node.last_error and node.counters["frame_errors"] == 0
    frames = node.counters["frames"]
    _send(pub, frame, stamp_sec=7)
    assert spin_until(ex, lambda: node.counters["frames"] == frames + 1, timeout=30)


@pytest.mark.parametrize("depth, processed, skipped", [(1, [1, 6], 4), (3, [1, 4, 5, 6], 2)])
def test_frames_wait_in_order_up_to_input_depth(ros_context, depth, processed, skipped):
    """While the worker segments frame 1, frames 2-6 arrive: ``input_depth`` of them wait
    and are segmented in order, the older ones are counted as skipped (depth 1, live:
    only the newest; a replay's depth lets a loaded machine segment every frame)."""
    import threading

    node = SegmenterNode(context=ros_context, parameter_overrides=[
        Parameter("model.type", value="classic"), Parameter("input_depth", value=depth)])
    try:
        assert node.first_load_done.wait(60) and node.model is not None, node.model_error
        busy, release, seen = threading.Event(), threading.Event(), []
        real = node.process

        def held(msg):
            seen.append(msg.header.stamp.sec)
            if len(seen) == 1:
                busy.set()
                assert release.wait(30)
            real(msg)

        node.process = held
        frame = array_to_image(np.zeros((40, 32, 11), np.float32))
        for k in range(1, 7):
            msg = Image()
            msg.header.stamp.sec, msg.height, msg.width = k, frame.height, frame.width
            msg.encoding, msg.step, msg.data = frame.encoding, frame.step, frame.data
            node._on_frame(msg)
            if k == 1:
                assert busy.wait(30)  # the worker holds frame 1; 2-6 queue behind it
        release.set()
        deadline = time.monotonic() + 30
        while len(seen) < len(processed) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # nothing more may come
        assert seen == processed and node.counters["frames_skipped"] == skipped
    finally:
        node.destroy_node()


def test_a_replay_queues_frames_a_live_run_takes_the_newest():
    from msseg_ros.graph import REPLAY_INPUT_DEPTH, describe

    assert describe("sorting_line", mode="replay", bag="/data/run1").node("segmenter").parameters[
        "input_depth"] == REPLAY_INPUT_DEPTH > 1
    assert "input_depth" not in describe("sorting_line", mode="sim").node("segmenter").parameters
