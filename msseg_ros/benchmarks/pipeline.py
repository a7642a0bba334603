"""Pipeline overhead and keep-up of the simulated sorting line, at the demo configuration.

    python msseg_ros/benchmarks/pipeline.py [--duration 45] [--one-process] [--runtime onnxruntime]
        [--params-file config/sorting_line.yaml config/sorting_line_0p5mm.yaml] [--replay]

One `msseg run sorting_line --mode sim` (shipped Mask R-CNN, real processes and DDS),
then, in this process, the same model's forward time alone on frames of the same size.

1. Pipeline overhead = end-to-end latency / segmenter forward time (p50s). End-to-end:
   from the moment a line frame is complete (its stamp is row 0's acquisition, so the
   frame's own acquisition time, frame_lines x line_pitch / belt speed, is subtracted) to
   its candidates arriving in another process. 1.0 would be a free pipeline. The forward
   is timed on the frames the pipeline segmented (with ``--replay``: 12 of the bag's,
   spread over it; else 12 frames of the same simulated world), each as the node gives it
   to the model (binned by its ``binning``): the median over frames of each one's median.
   Mask R-CNN's time grows with the objects in a frame, so a frame of another feed rate
   would not do. Also reported: the overhead over the node's own call of the model
   (``model(frame, binning)``: the forward plus the model's configured post-processing,
   ``merge_touching_px`` and ``snap_px``, and the binning), i.e. what the graph adds.
2. Keep-up: real-time factor = frame period / per-frame work (segmenter + grasp selector
   p50): >= 1 keeps up with the belt. Dropped frames: frames the segmenter received but
   replaced by a newer one before it was free (its newest-frame policy), over the
   frames it received; frames published before its model was loaded are counted apart.

``--replay``: the sensor streams of a first sim run are recorded (``--record``, encoder
and frames), then the pipeline runs on that bag (``--mode replay``), so the simulated
scanner and world no longer share the 2 cores with it, as on a line whose sensor is
hardware. End-to-end is then measured by a probe in this process, by stamp: from the
moment the replay wrote a frame (it publishes each frame complete) to the moment the grasp
selector wrote its candidates, both the DDS samples' source timestamps (the writers' system
clock, one host). Arrival times at the probe would flatter the pipeline: the probe's own
thread wakes late for a frame, while the segmenter has both cores busy, and on time for
the candidates.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from msseg_ros.bench import add_json_argument, emit, median_time
from msseg_ros.core.params.files import node_parameters
from msseg_ros.core.paths import packaged
from msseg_ros.core.segmentation.base import InvalidFrameError, bin_frame
from msseg_ros.core.segmentation.loading import load_segmenter
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld
from msseg_ros.graph import default_params_file

FORWARD_FRAMES = 12  # frames the forward alone is timed on


def _line_params(params: list[str]) -> tuple[int, float, float, SortingLineConfig]:
    """frame_lines, line_pitch (m), belt speed (m/s) and the world the nodes start with
    under these parameter files."""
    scanner = node_parameters(params, "line_scanner")
    world = SortingLineConfig.from_world(scanner.world, scanner.line_pitch)
    return scanner.frame_lines, scanner.line_pitch, node_parameters(params, "cell_sim").belt.speed, world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=45.0, help="s of sorting line")
    ap.add_argument("--segmenter", default="maskrcnn")
    ap.add_argument("--one-process", action="store_true", help="msseg run --one-process")
    ap.add_argument("--runtime", default="torch", help="the segmenter's model.runtime (and the forward's)")
    ap.add_argument("--params-file", nargs="+", default=None, metavar="FILE",
                    help="the cell's parameter files, layered (default: the shipped one)")
    ap.add_argument("--replay", action="store_true", help="run the pipeline on a recorded bag of the sim's sensors")
    add_json_argument(ap)
    args = ap.parse_args()
    params = [str(packaged(f)) for f in args.params_file] if args.params_file else [default_params_file("sorting_line")]
    lines, pitch, speed, world = _line_params(params)
    overlap = node_parameters(params, "line_scanner").overlap_lines
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "msseg_ros.cli.main", "run", "sorting_line", "--quiet",
               "--segmenter", args.segmenter, "--duration", str(args.duration),
               "--set", f"segmenter.model.runtime={args.runtime}", "--params-file", *params,
               *(["--one-process"] if args.one_process else [])]
        probe_ms = None
        frame_msgs = None
        if args.replay:
            bag = str(Path(tmp) / "sensors")
            _run([*cmd, "--mode", "sim", "--report", str(Path(tmp) / "recorded"), "--record", bag,
                  "--record-topics", "conveyor/joint_states", "line_scanner/frames"])
            k = cmd.index("--duration")
            replay = cmd[:k] + cmd[k + 2:]  # until the bag has played
            report, probe_ms = _replay_with_probe([*replay, "--mode", "replay", "--bag", bag,
                                                   "--report", str(Path(tmp) / "report")], Path(tmp) / "report")
            frame_msgs = _bag_frames(bag, "/line_scanner/frames", FORWARD_FRAMES)
        else:
            _run([*cmd, "--mode", "sim", "--report", tmp])
            report = json.loads((Path(tmp) / "report.json").read_text())
    nodes = report["nodes"]
    seg, grasp = nodes["segmenter"], nodes["grasp_selector"]
    published = int(nodes["line_scanner"]["frames"]) if "line_scanner" in nodes else int(seg["frames"]) + int(
        seg.get("frames_skipped", 0))
    model = load_segmenter(seg["model"], runtime=args.runtime)
    if frame_msgs is not None:  # decoded as the segmenter node decodes them
        from msseg_ros.ros.nodes.segmenter import frame_from_image

        frames = [frame_from_image(m, model.in_channels) for m in frame_msgs]
    else:  # the world the sim ran (its seed and feed rate), frame after frame
        sim = SortingLineWorld(world)
        frames = [sim.render(k * (lines - overlap), lines).image for k in range(2, 2 + FORWARD_FRAMES)]
    binning = node_parameters(params, "segmenter").binning
    # what the node's model predicts on: the frame binned by its ``binning``, through the NaN
    # policy (the node's call fills NaN pixels first; a frame mostly NaN, such as the
    # scanner's first, it refuses, and so it is left out here too)
    kept, inputs = [], []
    for f in frames:
        try:
            inputs.append(model.check_frame(bin_frame(f, binning))[0])
        except InvalidFrameError:
            continue
        kept.append(f)
    if not inputs:
        sys.exit("pipeline benchmark: none of the sampled frames passes the NaN policy")
    frames = kept
    frame = frames[0]
    model_input = inputs[0]
    forward_ms = 1e3 * statistics.median(median_time(lambda x=x: model.predict(x), 3, warmup=1) for x in inputs)
    # the node's own call: predict plus the model's post-processing (merge_touching_px, snap_px) and binning
    call_ms = 1e3 * statistics.median(median_time(lambda f=f: model(f, binning=binning), 3, warmup=1) for f in frames)
    acquisition_ms = 1e3 * lines * pitch / speed
    e2e_ms = probe_ms if probe_ms is not None else report["pipeline_latency"]["p50_ms"] - acquisition_ms
    work_ms = float(seg["latency_p50_ms"]) + float(grasp["latency_p50_ms"])
    period_ms = 1e3 * lines * pitch / speed * (1 - overlap / lines)  # the belt's frame period
    received = int(seg["frames"]) + int(seg.get("frames_skipped", 0))
    dropped = int(seg.get("frames_skipped", 0)) / max(received, 1)
    mode = ("one process" if args.one_process else "a process per node") + (", replayed" if args.replay else "")
    print(f"sorting line at {1e3 * pitch:g} mm ({lines} x {world.columns} px frames), {args.segmenter} on "
          f"{args.runtime}, {mode}, {args.duration:g} s: "
          f"{published} frames published, "
          f"{received} received by the segmenter, {seg['frames']} segmented")
    if probe_ms is not None:
        print(f"end-to-end p50 (frame written -> its candidates written, DDS source timestamps): {e2e_ms:.0f} ms")
    else:
        print(f"end-to-end p50 (frame complete -> candidates): {e2e_ms:.0f} ms "
              f"(stamp -> candidates {report['pipeline_latency']['p50_ms']:.0f} ms, acquisition {acquisition_ms:.0f} ms)")
    print(f"segmenter forward alone p50: {forward_ms:.0f} ms (on {len(inputs)} of its frames, "
          f"{model_input.shape[1]} x {model_input.shape[0]} px); "
          f"with the model's post-processing (the node's call) {call_ms:.0f} ms; "
          f"in the node: {float(seg['latency_p50_ms']):.0f} ms; grasp selector {float(grasp['latency_p50_ms']):.1f} ms")
    print(f"overhead over the forward {e2e_ms / forward_ms:.2f}, over the model's call {e2e_ms / call_ms:.2f}")
    print(f"frame period {period_ms:.0f} ms, work per frame {work_ms:.0f} ms; dropped {dropped:.1%} of the "
          f"frames received; {published - received} published before the segmenter was ready")
    emit("pipeline", {"pipeline_overhead": e2e_ms / forward_ms, "keep_up_real_time_factor": period_ms / work_ms,
                      "dropped_frame_fraction": dropped, "pipeline_overhead_over_model_call": e2e_ms / call_ms},
         {"end_to_end_p50_ms": round(e2e_ms, 1), "forward_p50_ms": round(forward_ms, 1),
          "model_call_p50_ms": round(call_ms, 1), "forward_frames": len(inputs),
          "segmenter_node_p50_ms": float(seg["latency_p50_ms"]), "frame_period_ms": round(period_ms, 1),
          "frames_published": published, "frames_received": received, "replay": args.replay,
          "frames_segmented": int(seg["frames"]), "score": report["score"], "one_process": args.one_process,
          "runtime": args.runtime, "line_pitch_mm": 1e3 * pitch, "frame_shape": list(frame.shape),
          "binning": binning}, args.json)


def _bag_frames(bag: str, topic: str, count: int) -> list:
    """``count`` sensor_msgs/Image messages of ``topic``, spread evenly over the bag."""
    import numpy as np

    from msseg_ros.core.interfaces import typestore
    from msseg_ros.core.replay import BagPlayback

    store, playback = typestore(), BagPlayback(bag, [topic])
    try:
        raws = [raw for _, _, raw in playback.raw_messages({topic})]
    finally:
        playback.close()
    if not raws:
        sys.exit(f"pipeline benchmark: the recorded bag has no {topic} frames")
    picks = np.linspace(0, len(raws) - 1, min(count, len(raws))).round().astype(int)
    return [store.deserialize_cdr(raws[k], "sensor_msgs/msg/Image") for k in picks]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        sys.exit(f"pipeline benchmark: msseg run failed: {proc.stderr[-2000:]}")


def _replay_with_probe(cmd: list[str], report_dir: Path) -> tuple[dict, float]:
    """Run ``cmd`` (a replay) while a probe node here notes when each frame and its
    candidates were written (DDS source timestamps, ns), by stamp; returns the run's report
    and the p50 of the gaps, ms. Frames are taken raw (the stamp read from the CDR header),
    so the probe does not deserialise them."""
    import struct
    import threading

    import numpy as np
    import rclpy
    import rclpy.executors
    from sensor_msgs.msg import Image

    from msseg_interfaces.msg import PickCandidateArray
    from msseg_ros.graph import dds_environment
    from msseg_ros.ros.qos import results_qos, sensor_qos

    # the probe and the run share a DDS domain (the caller's, else 61: not the default 0, where a
    # user's own graph may run) and the large-frame profile, read by rclpy from this process's env
    env = dict(os.environ, **dds_environment(), ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "61"))
    os.environ.update(env)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("pipeline_probe", context=context)
    frames: dict[tuple[int, int], float] = {}
    candidates: dict[tuple[int, int], float] = {}

    def on_frame(raw: bytes, info: dict) -> None:  # CDR: 4 bytes of encapsulation, then header.stamp
        frames.setdefault(struct.unpack_from("<iI", raw, 4), info["source_timestamp"])

    def on_candidates(msg: PickCandidateArray, info: dict) -> None:
        candidates.setdefault((msg.header.stamp.sec, msg.header.stamp.nanosec), info["source_timestamp"])

    node.create_subscription(Image, "line_scanner/frames", on_frame, sensor_qos(10), raw=True)
    node.create_subscription(PickCandidateArray, "grasps/candidates", on_candidates, results_qos(100))
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    if proc.returncode != 0:
        sys.exit(f"pipeline benchmark: msseg run failed: {proc.stderr[-2000:]}")
    if any(t <= 0 for t in (*frames.values(), *candidates.values())):
        sys.exit("pipeline benchmark: the middleware gave no source timestamps (rmw_fastrtps does)")
    gaps = [1e-6 * (candidates[k] - frames[k]) for k in frames if k in candidates]
    if not gaps:
        sys.exit(f"pipeline benchmark: the probe saw {len(frames)} frames and {len(candidates)} candidate "
                 "messages, none of one frame")
    return json.loads((report_dir / "report.json").read_text()), float(np.median(gaps))


if __name__ == "__main__":
    main()
