"""The parameter schema of every node, keyed by executable name.

This is the single declaration: nodes declare these on start, ``msseg run --set`` and
``msseg params`` read them, docs/parameters.md is generated from them, and a test
checks config/*.yaml against them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msseg_ros.core import cells
from msseg_ros.core.params.schema import Param, ParamType, Schema
from msseg_ros.core.segmentation.base import RUNTIMES, SEGMENTERS

T = ParamType
CELLS = ("sorting_line", "bin_picking")

#: Parameters every node has (declared by the node base).
BASE = Schema(
    "base",
    [
        Param("diagnostics_period", T.FLOAT, 1.0, "Period of /diagnostics messages, s.",
              min=0.05, max=60.0),
    ],
)

#: The transport's largest message: maxMessageSize of config/dds/fastdds_large_frames.xml.
DDS_MAX_MESSAGE_BYTES = 64 * 2**20

#: Parameters of every node that publishes frames (line_scanner, camera, replay).
FRAME_PUBLISHER = Schema(
    "frame_publisher",
    [
        Param("max_message_bytes", T.INT, DDS_MAX_MESSAGE_BYTES,
              "Largest message published, bytes (the DDS transport's limit, maxMessageSize of "
              "config/dds/fastdds_large_frames.xml). A larger one is not sent into a transport that "
              "would drop it: it is counted (messages_too_large in /diagnostics) and logged.",
              min=1024, max=2**31 - 1, read_only=True),
    ],
)

CHANNELS_11 = ["height_mm", "xray_low", "xray_high", "vnir_433", "vnir_497", "vnir_561", "vnir_626",
               "vnir_691", "vnir_778", "vnir_866", "vnir_955"]

#: The sorting-line world, shared (under /** in config) by every node that renders or
#: scores it: the same values give the same world in every process.
WORLD = Schema(
    "world",
    [
        Param("world.seed", T.INT, 0, "Seed of the sorting-line world.", min=0, max=2**31 - 1, read_only=True),
        Param("world.belt_width", T.FLOAT, 0.548, "Belt width, m.", min=0.05, max=5.0, read_only=True),
        Param("world.pixel_size", T.FLOAT, 0.002, "Across-belt pixel size, m.", min=1e-4, max=0.05,
              read_only=True),
        Param("world.feed_rate", T.FLOAT, 4.0, "Objects per second fed onto the belt.", min=0.0, max=100.0,
              read_only=True),
        Param("world.design_speed", T.FLOAT, 0.5, "Belt speed the feed rate refers to, m/s "
              "(object spacing = design_speed / feed_rate).", min=0.01, max=5.0, read_only=True),
        Param("world.touch_rate", T.FLOAT, 0.2, "Share of objects placed touching another.", min=0.0, max=1.0,
              read_only=True),
        Param("world.overlap_rate", T.FLOAT, 0.0, "Share of objects placed on another.", min=0.0, max=1.0,
              read_only=True),
        Param("world.scanner_x", T.FLOAT, 0.0, "world x of the scan line, m (the sim scores picks in "
              "belt coordinates from it; = grasp_selector line.scanner_x).", min=-100.0, max=100.0, read_only=True),
    ],
)

CELL_SIM = Schema(
    "cell_sim",
    [
        Param("cell", T.STR, "sorting_line", "Which cell this simulator runs.",
              choices=CELLS, read_only=True),
        Param("belt.speed", T.FLOAT, 0.5,
              "Belt speed, m/s; may change at run time (0 stops the belt).", min=0.0, max=5.0),
        Param("belt.encoder_rate", T.FLOAT, 200.0,
              "Rate of conveyor/joint_states, Hz.", min=100.0, max=2000.0, read_only=True),
        Param("belt.encoder_resolution", T.FLOAT, 1e-4,
              "Belt travel per encoder count, m; positions are whole counts.",
              min=1e-6, max=1e-2, read_only=True),
        Param("emulate_controllers", T.BOOL, True, "Serve emulated robot controllers on the robots' "
              "addresses (deltas over Modbus TCP, the FANUC over RMI).", read_only=True),
        Param("scoring.warmup", T.FLOAT, 0.5, "Scoring starts this much belt after the first "
              "detection (the pipeline is filling), m.", min=0.0, max=1000.0, read_only=True),
        Param("scoring.period", T.FLOAT, 1.0, "Period of sim/score, s.", min=0.1, max=60.0, read_only=True),
    ],
)

#: The simulated bin (bin-picking cell), shared by the camera's sim source and cell_sim,
#: which replay the same picks on the same piles.
BIN_SIM = Schema(
    "bin_sim",
    [
        Param("sim.seed", T.INT, 0, "Simulated bin: seed of the piles.", min=0, max=2**31 - 1, read_only=True),
        Param("sim.scene", T.INT, 0, "Simulated bin: first pile.", min=0, max=2**31 - 1, read_only=True),
    ],
)

CAMERA = Schema(
    "camera",
    [
        Param("source", T.STR, "images", "Frame source: images, video, device, sim; "
              "live is an alias of device.", choices=("images", "video", "device", "sim", "live"),
              read_only=True),
        Param("uri", T.STR, "", "Folder/glob (images), file (video), index or URL (device).",
              read_only=True),
        Param("loop", T.BOOL, True, "Restart file sources at their end.", read_only=True),
        Param("fps", T.FLOAT, 5.0, "Capture rate in continuous mode, Hz.", min=0.1, max=120.0),
        Param("trigger", T.STR, "continuous",
              "continuous: at fps; on_pick: one frame at start and one per finished pick "
              "(robot/pick_results), the open-loop bin-picking cycle.", choices=("continuous", "on_pick")),
        Param("trigger_timeout", T.FLOAT, 5.0, "on_pick: capture again when no pick result came for this "
              "long, s (a frame lost while the graph starts, or no candidate in it).", min=0.1, max=3600.0),
        Param("camera_info_url", T.STR, "",
              "camera_info YAML (camera_calibration format); empty: the source's own intrinsics.",
              read_only=True),
        Param("frame_id", T.STR, "camera_optical_frame", "frame_id of image and camera_info.",
              read_only=True),
    ],
)

LINE_SCANNER = Schema(
    "line_scanner",
    [
        Param("source", T.STR, "sim", "Line source: sim (the simulated world) or live (a line-scan "
              "SDK backend; none is installed here).", choices=("sim", "live"), read_only=True),
        Param("channels", T.STR_ARRAY, CHANNELS_11, "Channel names, in frame order.", read_only=True),
        Param("line_pitch", T.FLOAT, 0.002, "Belt travel between lines, m.", min=1e-5, max=0.05, read_only=True),
        Param("frame_lines", T.INT, 250, "Rows per frame.", min=8, max=20000, read_only=True),
        Param("overlap_lines", T.INT, 25, "Rows shared by consecutive frames.", min=0, max=10000, read_only=True),
        Param("max_gap_lines", T.INT, 50, "An encoder jump of more lines is a gap (NaN rows).",
              min=1, max=100000, read_only=True),
        Param("block_rate", T.FLOAT, 20.0, "Rate at which acquired lines are read as a block, Hz.",
              min=1.0, max=1000.0, read_only=True),
        Param("frame_id", T.STR, "line_scanner", "frame_id of the frames.", read_only=True),
        Param("calibration.dark", T.FLOAT_ARRAY, [0.0] * 11, "Dark reference per channel (raw units).",
              read_only=True),
        Param("calibration.white", T.FLOAT_ARRAY, [1.0] * 11, "White / air reference per channel.",
              read_only=True),
        Param("calibration.scale", T.FLOAT_ARRAY, [1.0] * 11,
              "Calibrated value of the white reference (65535 for reflectance and X-ray).", read_only=True),
    ],
    checks=[
        lambda v: None if v["overlap_lines"] < v["frame_lines"] else "overlap_lines must be < frame_lines",
        lambda v: None if len(v["calibration.dark"]) == len(v["calibration.white"]) == len(v["calibration.scale"])
        == len(v["channels"]) else "calibration.dark/white/scale need one value per channel",
        lambda v: None if all(w != d for w, d in zip(v["calibration.white"], v["calibration.dark"], strict=False))
        else "calibration.white and calibration.dark must differ on every channel",
    ],
)

SORTING_CLASSES = list(cells.SORTING_LINE_CLASSES)

def _shard(v: list[int]) -> str | None:
    if len(v) != 2:
        return f"expected [k, N], got {v}"
    k, n = v
    return None if n >= 1 and 0 <= k < n else f"[k, N] needs N >= 1 and 0 <= k < N, got {v}"


SEGMENTER = Schema(
    "segmenter",
    [
        Param("cell", T.STR, "sorting_line", "Cell; an empty model.weights means the shipped "
              "model CELL_TYPE (e.g. sorting_line_maskrcnn).", choices=CELLS, read_only=True),
        Param("input_topic", T.STR, "line_scanner/frames",
              "Frames to segment (sensor_msgs/Image), relative name.", read_only=True),
        Param("input_depth", T.INT, 1, "Frames kept waiting, in order, while the model is busy (and the "
              "subscription's depth); the oldest drops out when full, counted as frames_skipped. 1: the "
              "newest only (live); msseg run's replay mode sets 10.",
              min=1, max=100, read_only=True),
        Param("shard", T.INT_ARRAY, [0, 1], "[k, N]: this instance is shard k of N segmenters on one frame "
              "stream and segments only the frames of its shard (msseg_ros/core/shards.py); [0, 1]: all.",
              read_only=True, check=_shard),
        Param("threads", T.INT, 0, "Threads of torch's (and the exported runtimes') CPU inference; 0: torch's "
              "default (every core). Shards on one host split the cores.", min=0, max=1024, read_only=True),
        Param("binning", T.INT, 1, "Average each N x N block of pixels before the model, as a sensor's "
              "binning, and bring the detections back to the frame's pixels. For frames finer than the "
              "model's grid: 4 puts the seed's 0.5 mm line on the shipped line models' 2 mm grid "
              "(config/sorting_line_0p5mm.yaml), at that grid's cost.", min=1, max=16),
        Param("overlay_max_rate", T.FLOAT, 2.0, "Most overlays drawn per second, Hz (0: every frame); "
              "drawn on a thread of its own, after the frame's results, only while someone subscribes.", min=0.0, max=1000.0),
        Param("model.type", T.STR, "classic", "Model type.", choices=tuple(SEGMENTERS.names())),
        Param("model.weights", T.STR, "",
              "Checkpoint (.safetensors path) or shipped model name; empty: the cell's default."),
        Param("model.device", T.STR, "auto", "Inference device.", choices=("auto", "cpu", "cuda")),
        Param("model.runtime", T.STR, "torch", "Inference runtime of torch models: torch; onnxruntime or "
              "openvino (the model exported to ONNX once, cached next to its checkpoint; CPU); "
              "openvino_bf16 (the same in bfloat16, CPUs with bf16 instructions only; measured: bicameral "
              "the same mask AP at 2x OpenVINO f32's speed, line Mask R-CNN 0.024 mask AP lost); "
              "onnxruntime_int8 (its int8 quantisation, after `msseg quantize`).",
              choices=tuple(RUNTIMES.names())),
        Param("model.score_threshold", T.FLOAT, -1.0, "Instances scoring lower are dropped; -1: the "
              "model's calibrated operating_threshold (0.5 when it has none).", min=-1.0, max=1.0),
        Param("model.classes", T.STR_ARRAY, [], "Class names; empty: the checkpoint's."),
        Param("model.merge_touching_px", T.INT, -1, "Instances of one class whose masks touch along at "
              "least this many pixel edges are joined into one (a model's pieces of one object would get "
              "a pick each: a double pick); 0: off; -1: the model's own setting (its checkpoint's "
              "config, see its card).", min=-1, max=10_000),
        Param("model.merge_gap_px", T.INT, -1, "Background gap, px, that may lie between two pieces joined "
              "by model.merge_touching_px (a model's masks of one object often stop short of each other); "
              "-1: the model's own setting.", min=-1, max=16),
        Param("model.class_head", T.BOOL, True, "Run the checkpoint's class head when it has one (each "
              "instance's class from its mask's pooled channels: docs/models.md, \"The class head\"); false: "
              "the network's own classes."),
        Param("bicameral.alpha", T.FLOAT, 0.1, "Boundary threshold α (seed 001 §4.4).", min=0.0, max=1.0),
        Param("bicameral.beta", T.FLOAT, 0.1, "Occlusion threshold β.", min=0.0, max=1.0),
        Param("bicameral.patch", T.INT, 9, "Affordance patch P, px (odd).", min=1, max=63,
              check=lambda v: None if v % 2 else "must be odd"),
        Param("bicameral.area_weight", T.FLOAT, -1.0, "Weight w of the area term of the affordance "
              "s1 + w s2 that ranks the picks (seed 001: 1); -1: the model's own (its checkpoint's config, "
              "see its card).", min=-1.0, max=10.0),
        Param("maskrcnn.mask_threshold", T.FLOAT, 0.5, "Mask probability threshold.", min=0.0, max=1.0),
        Param("embeddings.fg_threshold", T.FLOAT, 0.5, "Seed-map value above which a pixel is foreground.",
              min=0.0, max=1.0),
        Param("embeddings.seed_threshold", T.FLOAT, 0.5, "Seed-map value an instance's seed must exceed.",
              min=0.0, max=1.0),
        Param("embeddings.min_pixels", T.INT, 8, "Smallest instance, px.", min=1, max=10**7),
        Param("classic.height_threshold_mm", T.FLOAT, 1.0, "Height threshold, mm.", min=0.0, max=100.0),
        Param("classic.min_area_px", T.INT, 19, "Minimum blob area, px.", min=0, max=10**7),
    ],
)

def _pairs(v: list[str]) -> str | None:
    for e in v:
        name, sep, val = e.partition("=")
        if not sep or not name.strip():
            return f"entry {e!r}: expected NAME=VALUE"
        try:
            float(val)
        except ValueError:
            return f"entry {e!r}: {val!r} is not a number"
    return None


#: Classes and bins, shared (under /** in config) by grasp_selector, robot_bridge and cell_sim.
SORTING = Schema(
    "sorting",
    [
        Param("classes", T.STR_ARRAY, SORTING_CLASSES, "Class names, by class id (1-based)."),
        Param("classes_to_bins", T.STR_ARRAY,
              ["copper=1", "laminated_zinc=2", "zamak=2", "brass=3", "aluminium=4", "nickel=5"],
              "CLASS=BIN; classes not listed are not sorted (seed 000: PCB, rubber, paint).", check=_pairs),
        Param("class_priority", T.STR_ARRAY, [], "CLASS=WEIGHT multiplying the score when ranking "
              "candidates and scheduling picks.", check=_pairs),
    ],
)

GRASP_SELECTOR = Schema(
    "grasp_selector",
    [
        Param("cell", T.STR, "sorting_line", "Cell: line (belt mapping) or camera (plane) geometry.",
              choices=CELLS, read_only=True),
        Param("min_area_px", T.INT, 0, "Smaller instances are dropped, px.", min=0, max=10**7),
        Param("min_score", T.FLOAT, 0.0, "Lower-scoring instances are dropped.", min=0.0, max=1.0),
        Param("camera_info_timeout", T.FLOAT, 2.0, "Detections waiting for camera/camera_info are dropped after, s.",
              min=0.05, max=60.0),
        Param("line.scanner_x", T.FLOAT, 0.0, "x of the scan line in world, m.", min=-100.0, max=100.0),
        Param("line.line_pitch", T.FLOAT, 0.002, "Belt travel between lines, m (= line_scanner's).",
              min=1e-5, max=0.05),
        Param("line.pixel_size", T.FLOAT, 0.002, "Pixel size across the belt, m (= world.pixel_size).",
              min=1e-5, max=0.05),
        Param("line.belt_y_offset", T.FLOAT, -0.274, "world y of the belt's left edge (column 0), m.",
              min=-100.0, max=100.0),
        Param("line.pick_z", T.FLOAT, 0.0, "z of the pick point on the belt, m.", min=-10.0, max=10.0),
        Param("state_dir", T.STR, "", "Folder where the pick-id tracker persists (tracker.json), so a "
              "restarted selector issues no pick_id twice; empty: memory only (msseg run gives each run one).",
              read_only=True),
        Param("line.edge_margin_px", T.INT, 3, "An instance ending this close (px) to a frame's last row is "
              "taken as still being scanned, one starting this close to row 0 as seen whole in the previous "
              "frame (a mask may fall short of the edge by a few px); line_scanner.overlap_lines must exceed "
              "the longest object by twice this.", min=0, max=1000),
        Param("line.match_radius", T.FLOAT, 0.02, "Same object in two frames if closer than, m (when "
              "their belt footprints do not already match).",
              min=0.0, max=1.0),
        Param("line.buffer_span", T.FLOAT, 30.0, "Seconds of belt positions kept.", min=1.0, max=3600.0),
        Param("plane.point", T.FLOAT_ARRAY, [0.0, 0.0, 0.0], "A point of the work plane in world, m.",
              length=3, min=-100.0, max=100.0),
        Param("plane.normal", T.FLOAT_ARRAY, [0.0, 0.0, 1.0], "Normal of the work plane.", length=3,
              check=lambda v: None if sum(x * x for x in v) > 1e-12 else "must not be zero"),
        Param("camera_extrinsics.translation", T.FLOAT_ARRAY, [0.0, 0.0, 1.0],
              "Camera optical frame origin in world, m.", length=3, min=-100.0, max=100.0),
        Param("camera_extrinsics.rotation", T.FLOAT_ARRAY, [1.0, 0.0, 0.0, 0.0],
              "Camera optical frame orientation in world, quaternion x y z w (default: looking down).",
              length=4, check=lambda v: None if abs(sum(x * x for x in v) - 1) < 1e-3 else "must be a unit quaternion"),
        Param("depth.topic", T.STR, "", "Camera cells: a depth image registered to the colour frames "
              "(REP 118: 32FC1 m or 16UC1 mm, the frame's size and stamp); with it, candidates something lies "
              "on rank last and higher ones first (core.grasping.depth). Empty: rank without depth.",
              read_only=True),
        Param("depth.wait", T.FLOAT, 0.5, "Detections wait this long for their frame's depth and instances "
              "images, s; then they are ranked without depth (counted: ranked_without_depth).",
              min=0.0, max=10.0),
        Param("depth.step", T.FLOAT, 0.005, "A neighbour higher than an instance's edge by more than this "
              "lies on it, m.", min=0.0005, max=0.5),
        Param("depth.reach_px", T.INT, 3, "How far outside a mask that neighbour is looked for, px.", min=1, max=50),
        Param("depth.max_covered", T.FLOAT, 0.02, "Instances with a larger share of their edge covered rank "
              "after all others.", min=0.0, max=1.0),
        Param("depth.height_weight", T.FLOAT, 30.0, "Added to the rank key per m of pick height above the "
              "work plane (30: 3 cm weigh as much as a whole unit of affordance; 0: height ignored).",
              min=0.0, max=10000.0),
        Param("depth.top_band", T.FLOAT, 0.008, "Each pick pixel moves to the most interior pixel of its "
              "mask's part within this of the mask's top, m (a mask that joins an instance with one it lies on: "
              "the upper one); 0: the segmenter's pick pixels.", min=0.0, max=1.0),
        Param("depth.fallback_height", T.FLOAT, 0.0, "A frame without detections takes the depth's own blobs "
              "higher than this above the work plane as candidates of the first class, m (an object the model "
              "misses must not stop the cell; the camera must see only the bin). 0: off.", min=0.0, max=1.0),
        Param("depth.fallback_min_area", T.INT, 30, "Depth blobs smaller than this are no candidates, px.",
              min=1, max=10_000_000),
        Param("depth.min_pick_height", T.FLOAT, 0.0, "Candidates whose pick point lies lower than this above "
              "the work plane are the floor, not objects: dropped (counted: below_min_pick_height); when "
              "every detection is, the depth's own blobs stand in (depth.fallback_height), m. 0: off.",
              min=0.0, max=1.0),
    ],
)

def _per_robot(v: Mapping[str, Any]) -> str | None:
    n = len(v["robots.names"])
    for k in ("robots.base_x", "robots.base_y", "robots.base_z", "robots.window_start", "robots.window_end",
              "robots.hosts", "robots.ports", "robots.bins"):
        if len(v[k]) != n:
            return f"{k} has {len(v[k])} entries for {n} robots (robots.names); give one per robot"
    if any(a >= b for a, b in zip(v["robots.window_start"], v["robots.window_end"], strict=False)):
        return "every robots.window_start must be < its robots.window_end"
    if len(v["fanuc.place_positions"]) % 3:
        return "fanuc.place_positions needs 3 values (x y z) per bin"
    return None


#: The robots of the cell, shared (under /** in config) by robot_bridge and cell_sim (which
#: emulates their controllers). Per-robot values are parallel lists, one entry per robot.
ROBOTS = Schema(
    "robots",
    [
        Param("robots.names", T.STR_ARRAY, ["delta_1"], "Robot names, one per robot (robot number = "
              "position in this list, 1-based).", read_only=True),
        Param("robots.base_x", T.FLOAT_ARRAY, [2.0], "Base frame origin x in world, m, per robot.",
              min=-100.0, max=100.0, read_only=True),
        Param("robots.base_y", T.FLOAT_ARRAY, [0.0], "Base origin y in world, m.", min=-100.0, max=100.0,
              read_only=True),
        Param("robots.base_z", T.FLOAT_ARRAY, [1.0], "Base origin z in world, m.", min=-100.0, max=100.0,
              read_only=True),
        Param("robots.window_start", T.FLOAT_ARRAY, [1.75], "Reach window along the belt: start x in "
              "world, m (inside the workspace).", min=-100.0, max=100.0, read_only=True),
        Param("robots.window_end", T.FLOAT_ARRAY, [2.25], "Reach window end x in world, m.", min=-100.0,
              max=100.0, read_only=True),
        Param("robots.hosts", T.STR_ARRAY, ["127.0.0.1"], "Controller address per robot.", read_only=True),
        Param("robots.ports", T.INT_ARRAY, [15020], "Controller TCP port per robot (Modbus; RMI: the "
              "connect port, the session port being the next one).", min=1, max=65535, read_only=True),
        Param("robots.bins", T.STR_ARRAY, [""], "Bins each robot serves, e.g. \"1 2\"; empty: all.",
              read_only=True),
        Param("robots.workspace_min", T.FLOAT_ARRAY, [-0.3, -0.3, -1.05], "Workspace box, low corner, in each "
              "robot's base frame, m. Nothing outside it is ever commanded.", length=3, min=-100.0, max=100.0,
              read_only=True),
        Param("robots.workspace_max", T.FLOAT_ARRAY, [0.3, 0.3, -0.75], "Workspace box, high corner, m.",
              length=3, min=-100.0, max=100.0, read_only=True),
        Param("max_in_flight", T.INT, 4, "Picks a robot may have queued (sent, not finished); FANUC: RMI "
              "instructions in flight.", min=1, max=8, read_only=True),
        Param("speeds.max_speed", T.FLOAT, 4.0, "Tool speed, m/s.", min=0.01, max=20.0, read_only=True),
        Param("speeds.max_accel", T.FLOAT, 30.0, "Tool acceleration, m/s².", min=0.01, max=500.0, read_only=True),
        Param("speeds.approach_height", T.FLOAT, 0.05, "The tool descends from this far above the pick, m.",
              min=0.0, max=1.0, read_only=True),
        Param("speeds.grip_time", T.FLOAT, 0.1, "Grip dwell, s (also the margin before the window end).",
              min=0.0, max=10.0, read_only=True),
        Param("speeds.place_time", T.FLOAT, 0.4, "Lifted to ready again (carry, release, return), s.",
              min=0.0, max=60.0, read_only=True),
        Param("speeds.latency", T.FLOAT, 0.05, "Decision to motion start, s.", min=0.0, max=10.0, read_only=True),
        Param("delta.base_radius", T.FLOAT, 0.20, "Delta: motor circle radius, m.", min=0.01, max=5.0,
              read_only=True),
        Param("delta.effector_radius", T.FLOAT, 0.05, "Delta: effector joint radius, m.", min=0.001, max=5.0,
              read_only=True),
        Param("delta.upper_arm", T.FLOAT, 0.40, "Delta: upper arm length, m.", min=0.01, max=5.0, read_only=True),
        Param("delta.forearm", T.FLOAT, 0.90, "Delta: forearm length, m.", min=0.01, max=5.0, read_only=True),
        Param("delta.joint_limits_deg", T.FLOAT_ARRAY, [-40.0, 95.0], "Delta: joint angle limits, degrees "
              "(0 = upper arm horizontal, positive down).", length=2, min=-180.0, max=180.0, read_only=True),
        Param("fanuc.place_positions", T.FLOAT_ARRAY, [0.0, 0.5, 0.3], "FANUC: where each bin is, world x y z "
              "per bin (bin 1 first), m.", min=-100.0, max=100.0, read_only=True),
        Param("fanuc.override", T.INT, 100, "FANUC: speed override, %.", min=1, max=100, read_only=True),
        Param("fanuc.suction_port", T.INT, 1, "FANUC: DOUT of the suction.", min=1, max=10000, read_only=True),
        Param("fanuc.vacuum_port", T.INT, 1, "FANUC: DIN of the vacuum sensor.", min=1, max=10000, read_only=True),
    ],
    checks=[_per_robot],
)

ROBOT_BRIDGE = Schema(
    "robot_bridge",
    [
        Param("robot.type", T.STR, "dry_run", "Backend: delta (Modbus TCP), fanuc (RMI), dry_run (plan only).",
              choices=("delta", "fanuc", "dry_run"), read_only=True),
        Param("cell", T.STR, "sorting_line", "Cell.", choices=CELLS, read_only=True),
        Param("tick_rate", T.FLOAT, 50.0, "Scheduling and controller polling rate, Hz.", min=1.0, max=1000.0,
              read_only=True),
        Param("encoder_timeout", T.FLOAT, 0.5, "No belt position for this long (s) is an encoder stall: "
              "nothing new is sent.", min=0.01, max=60.0),
        Param("modbus.timeout", T.FLOAT, 0.3, "Modbus request timeout, s.", min=0.01, max=10.0, read_only=True),
        Param("modbus.watchdog", T.FLOAT, 1.0, "Heartbeat unchanged this long (s): the controller is stale.",
              min=0.05, max=60.0, read_only=True),
        Param("min_pick_separation", T.FLOAT, 0.025, "Belt line: a target closer than this (m, on the belt) to "
              "one already taken is skipped (near_another_pick), so an object that perception gave two pick_ids "
              "(a split mask, a tracker miss) is picked once; 0: off.", min=0.0, max=0.5, read_only=True),
        Param("state_dir", T.STR, "", "Folder of the persistent pick ledger (pick_ledger.sqlite), so a restarted "
              "bridge never sends a pick twice; empty: memory only (msseg run gives each run one).",
              read_only=True),
    ],
)

REPLAY = Schema(
    "replay",
    [
        Param("bag", T.STR, "", "rosbag2 folder (sqlite3 or mcap; split bags too).", read_only=True),
        Param("rate", T.FLOAT, 1.0, "Playback speed: 2.0 plays twice as fast.", min=0.001, max=10000.0,
              read_only=True),
        Param("loop", T.BOOL, False, "Start again at the end.", read_only=True),
        Param("delay", T.FLOAT, 1.0, "Wait before playing, s, so that subscribers are matched "
              "(messages published before discovery are lost).", min=0.0, max=3600.0, read_only=True),
        Param("start_offset", T.FLOAT, 0.0, "Skip this many seconds of the bag.", min=0.0, max=1e9,
              read_only=True),
        Param("wait_for_nodes", T.STR_ARRAY, [], "Before playing, wait until each of these nodes subscribes "
              "to a played topic (a segmenter subscribes once its model is loaded).", read_only=True),
        Param("wait_for_topics", T.STR_ARRAY, [], "Before playing, also wait until each of these topics has a "
              "subscription (e.g. the results a recorder keeps: what is published before it subscribes is "
              "lost).", read_only=True),
        Param("wait_timeout", T.FLOAT, 120.0, "Longest wait for wait_for_nodes and wait_for_topics, s; then play "
              "anyway, with a "
              "warning.", min=0.0, max=3600.0, read_only=True),
        Param("topics", T.STR_ARRAY, [], "Topics to play (empty: all).", read_only=True),
        Param("remap", T.STR_ARRAY, [], "FROM=TO topic renames.", read_only=True,
              check=lambda v: next((f"entry {e!r}: expected FROM=TO" for e in v if "=" not in e), None)),
    ],
)

RECORDER = Schema(
    "recorder",
    [
        Param("out", T.STR, "", "Bag folder to create (it must not exist).", read_only=True),
        Param("storage", T.STR, "mcap", "Bag storage.", choices=("mcap", "sqlite3"), read_only=True),
        Param("topics", T.STR_ARRAY, [], "Topics to record, relative names resolve in the node's namespace "
              "(empty: every topic seen, except /rosout and /parameter_events).", read_only=True),
        Param("discovery_period", T.FLOAT, 0.5, "How often new publishers are looked for, s.", min=0.05,
              max=60.0, read_only=True),
        Param("queue_depth", T.INT, 100, "Messages a subscription holds while the bag is written.",
              min=1, max=100000, read_only=True),
    ],
)

#: executable name -> full schema (node parameters plus BASE)
NODE_SCHEMAS: dict[str, Schema] = {
    s.node: s.extend(BASE)
    for s in (CELL_SIM.extend(WORLD, BIN_SIM, ROBOTS, SORTING), LINE_SCANNER.extend(WORLD, FRAME_PUBLISHER),
              CAMERA.extend(BIN_SIM, FRAME_PUBLISHER), SEGMENTER, GRASP_SELECTOR.extend(SORTING),
              ROBOT_BRIDGE.extend(ROBOTS, SORTING), REPLAY.extend(FRAME_PUBLISHER), RECORDER)
}


def schema_for(executable: str) -> Schema:
    try:
        return NODE_SCHEMAS[executable]
    except KeyError:
        known = ", ".join(sorted(NODE_SCHEMAS))
        raise KeyError(f"no parameter schema for node {executable!r}; known: {known}") from None
