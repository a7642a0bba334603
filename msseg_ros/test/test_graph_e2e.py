"""End to end over real processes and DDS: the sim sorting line, from the belt encoder to
grasps/candidates, checked against the world's ground truth."""
import numpy as np
import yaml
from rclpy.executors import SingleThreadedExecutor

from msseg_interfaces.msg import PickCandidateArray
from msseg_ros.cli.runner import GraphRunner, parse_sets
from msseg_ros.core.params.files import node_parameters
from msseg_ros.core.sim.sorting_line import CLASSES, SortingLineWorld
from msseg_ros.graph import describe
from msseg_ros.ros.nodes.line_scanner import world_config
from msseg_ros.ros.qos import results_qos
from msseg_ros.ros.result_messages import msg_to_candidates

from conftest import ROOT, spin_until

#: Tolerance of a candidate's position against its object's shape centre: the mask
#: centroid of an irregular piece is not its shape centre (same bound as the core test).
POSITION_TOLERANCE_M = 0.03


def _world():
    doc = yaml.safe_load((ROOT / "config" / "sorting_line.yaml").read_text())
    return SortingLineWorld(world_config(node_parameters(ROOT / "config" / "sorting_line.yaml", "line_scanner"))), doc


def test_sim_line_candidates_match_ground_truth(ros_context):
    import rclpy

    spec = describe("sorting_line", segmenter="classic")
    sets = parse_sets(["cell_sim.belt.speed=1.0", "segmenter.model.score_threshold=0.5"], spec)
    node = rclpy.create_node("e2e_probe", context=ros_context)
    got = []
    node.create_subscription(PickCandidateArray, "grasps/candidates", got.append, results_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    logs = []
    with GraphRunner(spec, sets, log=lambda n, line: logs.append((n, line))) as runner:
        assert {"cell_sim", "line_scanner", "segmenter", "grasp_selector"} <= {rn.spec.name for rn in runner.nodes}
        ok = spin_until(ex, lambda: sum(len(msg_to_candidates(m)) for m in got) >= 15, timeout=90)
        codes = runner.stop()
    assert ok, f"too few candidates; logs: {logs[-10:]}"
    assert all(c == 0 for c in codes.values()), codes
    world, doc = _world()
    scanner_x = doc["/**/grasp_selector"]["ros__parameters"]["line"]["scanner_x"]
    y0 = doc["/**/grasp_selector"]["ros__parameters"]["line"]["belt_y_offset"]
    right = near = 0
    ids = set()
    for msg in got:
        assert msg.header.frame_id == "world"
        for row in msg_to_candidates(msg):
            b = row["belt_position"] + (scanner_x - row["x"])  # the belt coordinate of the pick point
            c = row["y"] - y0
            objs = world.objects_between(b - 0.2, b + 0.2)
            d, o = min((np.hypot(o.b - b, o.c - c), o) for o in objs)
            near += d < POSITION_TOLERANCE_M
            right += d < POSITION_TOLERANCE_M and CLASSES[row["class_id"] - 1] == o.cls
            ids.add(int(row["pick_id"]))
    n = sum(len(msg_to_candidates(m)) for m in got)
    print(f"e2e: {n} candidates, {len(ids)} pick ids, {near} within {POSITION_TOLERANCE_M} m, {right} right class")
    assert near / n >= 0.9, f"{near}/{n} candidates within {POSITION_TOLERANCE_M} m of an object"
    assert right / n >= 0.8, f"{right}/{n} candidates of the right class"


def test_sim_bin_picking_candidates_land_on_instances(ros_context):
    """Candidates of the sim bin-picking graph, projected back into the camera, fall on a
    product instance of the pile's ground truth (not the bin bottom)."""
    import rclpy

    from msseg_ros.core.geometry.camera import Pose
    from msseg_ros.core.sensing.sources import open_source
    from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld

    spec = describe("bin_picking")
    node = rclpy.create_node("e2e_bins_probe", context=ros_context)
    got = []
    node.create_subscription(PickCandidateArray, "grasps/candidates", got.append, results_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    logs = []
    with GraphRunner(spec, {}, log=lambda n, line: logs.append((n, line))) as runner:
        ok = spin_until(ex, lambda: len(got) >= 1, timeout=90)
        codes = runner.stop()
    assert ok and all(c == 0 for c in codes.values()), (codes, [entry for entry in logs if codes.get(entry[0])][-40:])
    doc = yaml.safe_load((ROOT / "config" / "bin_picking.yaml").read_text())
    ext = doc["/**/grasp_selector"]["ros__parameters"]["camera_extrinsics"]
    cam_in_world = Pose.from_xyz_quat(ext["translation"], ext["rotation"])
    camera = open_source("sim", seed=0).camera_model()
    labels, heights = BinPileWorld(BinPileConfig(seed=0)).scene(0).heights()
    cand = msg_to_candidates(got[0])  # the first frame: the untouched pile of scene 0
    assert len(cand) >= 3 and np.allclose(cand["z"], 0.0, atol=1e-6)
    px = camera.project(cam_in_world.inverse().apply(np.column_stack([cand["x"], cand["y"], cand["z"]])))
    on = [labels[int(round(v)), int(round(u))] > 0 for u, v in px]
    print(f"e2e bins: {len(cand)} candidates, {sum(on)} on an instance; best affordance {cand['affordance'][0]:.2f}")
    assert np.mean(on) >= 0.8
    # the cell ranks with its RGB-D camera's depth (config: grasp_selector depth.*): the top
    # of the pile first, bar instances something lies on (by affordance alone, the first
    # candidate is one of the lowest, 3 cm above the bin bottom)
    top = [float(heights[int(round(v)), int(round(u))]) for u, v in px]
    assert top[0] >= np.percentile(top, 75), top
