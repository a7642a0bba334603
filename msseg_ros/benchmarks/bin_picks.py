"""Bin picking offline: how often the first pick a bin model ranks lifts an object.

    python msseg_ros/benchmarks/bin_picks.py [--piles 300] [--first-seed 1000] [--area-weights 1 0.15 0]
        [--no-depth | --depth-only] [--loop N [--sim-seed S]]

Each pile is scene 0 of a simulated bin (``BinPileWorld``, seeds ``--first-seed`` on)
from which a random number of instances was first lifted from the top, so fill levels
range from full to one left. The model (default: the shipped ``bin_picking_bicameral``)
segments the camera's view with the cell's settings (config/bin_picking.yaml:
``segmenter.bicameral.*``; the grasp selector's ``min_area_px`` and ``min_score``), the
grasp selector's ranking (``core.grasping.select.ranked``) puts one candidate first, and
the simulated pile says what cell_sim's suction cup (5 px) would do there. For each
affordance area weight w (s1 + w s2; the seed: 1), the share of piles where that first
pick lifts an object, and why the others fail (pinned under another instance, the bin
bottom, too little contact). Each weight is measured twice: ranked on the RGB model's
output alone, and with the cell's depth ranking (grasp selector ``depth.*``:
core.grasping.depth) on the camera's depth image with the sim's sensor noise.

``--loop N``: the closed loop instead, offline, on the cell's simulated bins (seed
``--sim-seed``, the cell's default 0; scenes 0 .. N-1, each full at the start, as
``msseg run bin_picking --mode sim`` meets them): frame, segment, rank, skip candidates
within the FANUC bridge's tabu radius of a failed pick (its rule, core.robots.tabu: every
failed spot until a pick succeeds, then the last 5; all tabu: start over), pick, until the
pile is empty or 4 attempts per instance were made. The success rate is picks that lifted over
attempts, as cell_sim scores the run.
With depth, each failed pick of an object something lies on is
counted by what the depth showed (``why_pinned``): ``pinned_seen`` (the picked mask's own
edges showed the cover, yet no better candidate was left), ``pinned_split`` (they did not,
the true object's edges did: the model split it and the piece picked lies away from what
covers it) or ``pinned_unseen`` (neither did). Each ``pinned_seen`` pick is counted once
more by why no free object was picked instead (``why_no_free_pick``): ``seen_free_flagged``
(one was detected, but the depth flagged its mask as covered), ``seen_free_tabu`` (detected,
not flagged, but within the tabu radius of a failed spot), ``seen_free_missed``,
``seen_no_free`` or ``seen_free_ranked_lower``.

No ROS: the core the nodes call, on the same piles for every weight, so the weights
compare like for like. A 60-s ``msseg run bin_picking`` adds the loop (the next frame
after each pick, the bridge's tabu on failed spots) and its timing.
"""
import argparse
import collections

import numpy as np
from tqdm import tqdm

from msseg_ros.bench import add_json_argument, emit
from msseg_ros.core.geometry.camera import Plane, Pose
from msseg_ros.core.grasping.depth import DepthRanking, HeightMapper, apply_depth, covered_share
from msseg_ros.core.grasping.select import Filters, ranked
from msseg_ros.core.params.files import node_parameters
from msseg_ros.core.robots.backends import FanucBackend
from msseg_ros.core.robots.tabu import TabuSpots
from msseg_ros.core.segmentation.loading import load_segmenter
from msseg_ros.core.sensing.sources import SimSource
from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld, Pile
from msseg_ros.core.sim.scoring import BinScorer
from msseg_ros.graph import default_params_file, node_section


def emptied_from_the_top(pile: Pile, count: int, rng: np.random.Generator) -> None:
    """Lift ``count`` instances, each an unpinned one picked at random, at its most
    interior visible pixel (a pile is always emptied this way: test_bin_pile)."""
    from scipy import ndimage

    for _ in range(count):
        labels, _ = pile.heights()
        pinned = pile.occluded_ids(labels)
        free = [i for i in pile.instances if i.id not in pinned and (labels == i.id).any()]
        inside = ndimage.distance_transform_edt(labels == free[int(rng.integers(len(free)))].id)
        v, u = np.unravel_index(np.argmax(inside), inside.shape)
        pile.pick(float(u), float(v), cup_radius_px=1)


def _free_visible(pile: Pile, labels: np.ndarray) -> list[int]:
    """Ids of the visible instances nothing lies on."""
    pinned = pile.occluded_ids(labels)
    return [i for i in np.unique(labels).tolist() if i and i not in pinned]


def depth_ranked(inst, height: np.ndarray | None, depth_ranking: DepthRanking, filters: Filters) -> np.ndarray:
    """The candidates of one frame's instances as the grasp selector ranks them: with a
    height map, on their masks' tops by depth, and the depth's own blobs when the model
    found nothing (``fallback_height``); without one (None), by the model alone."""
    det, depth = inst.to_table(), None
    if height is not None:
        det, evidence = apply_depth(det, inst.labels, height, depth_ranking)
        depth = (depth_ranking, evidence)
    return ranked(det, filters, depth=depth)


def run_loop(pile: Pile, predict, rank, heights, noise_rng: np.random.Generator, cup: float,
             explain: DepthRanking | None = None) -> collections.Counter:
    """One pile picked in the closed loop until empty (or 4 attempts per instance):
    attempts, lifted, failures by cause and the longest run of failures.

    ``explain``: the depth ranking in use; each pick of an object something lies on is then
    counted by what the depth showed (:func:`why_pinned`)."""
    tabu = TabuSpots(FanucBackend.TABU_RADIUS_M / pile.config.pixel_size, FanucBackend.TABU_LENGTH)
    c: collections.Counter = collections.Counter()
    streak, limit = 0, 4 * len(pile.instances)
    while pile.instances and c["attempts"] < limit:
        view = pile.render()
        height = heights(view["depth"] + noise_rng.normal(0.0, pile.config.depth_noise, view["depth"].shape))
        inst = predict(view["rgb"])
        det = rank(inst, height)
        fresh = [r for r in det if not tabu.blocks(r["u"], r["v"])]
        if not fresh:
            if not len(det):
                c["no_candidate"] += 1
                break
            tabu.clear()  # every candidate failed before: start over
            continue
        out = pile.pick(float(fresh[0]["u"]), float(fresh[0]["v"]), cup)
        c["attempts"] += 1
        if out.success:
            c["lifted"] += 1
            streak = 0
            tabu.succeeded()
        else:
            c["bin_bottom" if out.instance is None else "pinned" if not out.unoccluded else "poor_contact"] += 1
            if explain is not None and out.instance is not None and not out.unoccluded and len(inst):
                why = why_pinned(int(fresh[0]["instance"]), inst.labels, out.instance, view["labels"], height,
                                 explain)
                c[why] += 1
                if why == "pinned_seen":  # a failed pick leaves the pile as it was: its free objects still are
                    c[why_no_free_pick(det, inst.labels, _free_visible(pile, view["labels"]), view["labels"], height,
                                       explain, tabu)] += 1
            tabu.failed(float(fresh[0]["u"]), float(fresh[0]["v"]))
            streak += 1
            c["longest_failure_run"] = max(c["longest_failure_run"], streak)
    return c


def why_pinned(chosen: int, labels: np.ndarray, true_id: int, true_labels: np.ndarray, height: np.ndarray,
               ranking: DepthRanking) -> str:
    """Why an instance something lies on was picked: ``pinned_seen`` (its mask's own edges
    showed the cover: every candidate left was covered, or tabu), ``pinned_split`` (its
    mask's edges did not, the true object's did: the model split the object and the piece
    picked lies away from what covers it) or ``pinned_unseen`` (the true object's edges
    did not show it either: the depth cannot tell)."""
    own = covered_share(labels, height, ranking.step, ranking.reach_px)
    true = covered_share(true_labels, height, ranking.step, ranking.reach_px)
    if chosen < len(own) and own[chosen] > ranking.max_covered:
        return "pinned_seen"
    return "pinned_split" if true[true_id] > ranking.max_covered else "pinned_unseen"


def _depth_arms(args: argparse.Namespace) -> tuple[bool, ...]:
    """Which rankings to measure: without depth, with it, or both."""
    return (False,) if args.no_depth else (True,) if args.depth_only else (False, True)


def why_no_free_pick(det: np.ndarray, labels: np.ndarray, free: list[int], true_labels: np.ndarray,
                     height: np.ndarray, ranking: DepthRanking, tabu: TabuSpots) -> str:
    """A ``pinned_seen`` pick: why no object free of cover was picked instead.
    ``seen_free_flagged``: one was detected (a mask at IoU >= 0.5 with it) but the depth
    flagged that mask as covered; ``seen_free_tabu``: one was detected, not flagged, but its
    pick pixel was within the bridge's tabu radius of a failed spot;
    ``seen_free_ranked_lower``: one was detected, neither flagged nor tabu, yet ranked below
    (not expected: the ranking puts flagged masks last); ``seen_free_missed``: none was
    detected (or it was filtered out); ``seen_no_free``: every visible object was covered.
    Where free objects differ, the first of ranked_lower, tabu, flagged is named.
    ``det``: the frame's ranked candidates; ``tabu``: the failed spots before this pick."""
    if not free:
        return "seen_no_free"
    own = covered_share(labels, height, ranking.step, ranking.reach_px)
    rows = {int(r["instance"]): r for r in det}
    causes = set()
    for f in free:
        truth = true_labels == f
        ids, counts = np.unique(labels[truth], return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist(), strict=True):
            if i == 0 or i not in rows or n / float((truth | (labels == i)).sum()) < 0.5:
                continue
            if own[i] > ranking.max_covered:
                causes.add("seen_free_flagged")
            elif tabu.blocks(rows[i]["u"], rows[i]["v"]):
                causes.add("seen_free_tabu")
            else:
                causes.add("seen_free_ranked_lower")
    for cause in ("seen_free_ranked_lower", "seen_free_tabu", "seen_free_flagged"):
        if cause in causes:
            return cause
    return "seen_free_missed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--piles", type=int, default=300)
    ap.add_argument("--first-seed", type=int, default=1000, help="pile seeds first-seed, first-seed + 1, ...")
    ap.add_argument("--weights", default="bin_picking_bicameral", help="checkpoint or shipped model name")
    ap.add_argument("--area-weights", type=float, nargs="+", default=[1.0, 0.15, 0.0],
                    help="affordance area weights w to compare (s1 + w s2)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--no-depth", action="store_true", help="only the ranking without depth")
    which.add_argument("--depth-only", action="store_true", help="only the ranking with depth")
    ap.add_argument("--loop", type=int, default=0, metavar="N",
                    help="the closed loop on the cell's first N bins instead of first picks")
    ap.add_argument("--sim-seed", type=int, default=0,
                    help="--loop: the cell's sim seed (camera.sim.seed and cell_sim.sim.seed of the graph run)")
    add_json_argument(ap)
    args = ap.parse_args()
    params = default_params_file("bin_picking")
    options = {k.removeprefix("bicameral."): v for k, v in node_section(params, "segmenter").items()
               if k.startswith("bicameral.")}
    seg = load_segmenter(args.weights, overrides=options)
    selector = node_parameters(params, "grasp_selector")
    filters = Filters.from_params(selector)
    depth_ranking = DepthRanking.from_params(selector.depth)
    cup = BinScorer().cup_radius_px
    outcomes = {(w, d): collections.Counter() for w in args.area_weights
                for d in _depth_arms(args)}
    rng = np.random.default_rng(0)
    noise_rng = np.random.default_rng(1)
    config = BinPileConfig()
    camera = SimSource(seed=0).camera_model()
    heights = HeightMapper(camera, Pose.from_xyz_quat(list(selector.camera_extrinsics.translation),
                                                      list(selector.camera_extrinsics.rotation)),
                           Plane(np.asarray(selector.plane.point), np.asarray(selector.plane.normal)))
    if args.loop:
        return _loop(args, seg, filters, depth_ranking, heights, cup, options)
    for seed in tqdm(range(args.first_seed, args.first_seed + args.piles), desc="piles", unit="pile"):
        pile = BinPileWorld(BinPileConfig(seed=seed)).scene(0)
        emptied_from_the_top(pile, int(rng.integers(0, len(pile.instances))), rng)
        view = pile.render()
        pinned = pile.occluded_ids(view["labels"])
        height = heights(view["depth"] + noise_rng.normal(0.0, config.depth_noise, view["depth"].shape))
        for w in args.area_weights:
            seg.config["area_weight"] = w
            inst = seg(view["rgb"])
            for with_depth in _depth_arms(args):
                det = depth_ranked(inst, height if with_depth else None, depth_ranking, filters)
                if len(det) == 0:
                    outcomes[w, with_depth]["no_candidate"] += 1
                    continue
                out = pile.outcome(float(det["u"][0]), float(det["v"][0]), cup, view["labels"], pinned)
                why = ("lifted" if out.success else "bin_bottom" if out.instance is None
                       else "pinned" if not out.unoccluded else "poor_contact")
                outcomes[w, with_depth][why] += 1
    print(f"{args.piles} piles (seeds {args.first_seed}..{args.first_seed + args.piles - 1}), {args.weights}, "
          f"options {options}, depth {depth_ranking}: first pick lifts an object")

    def name(w: float, with_depth: bool) -> str:
        return f"w{w:g}" + ("_depth" if with_depth else "")

    for (w, with_depth), c in outcomes.items():
        print(f"  area weight {w:g}{', depth' if with_depth else ''}: {c['lifted'] / args.piles:.3f}  ({dict(c)})")
    emit("bin_picks", {f"first_pick_success_{name(*v)}": c["lifted"] / args.piles for v, c in outcomes.items()},
         {"piles": args.piles, "first_seed": args.first_seed, "weights": args.weights, "options": options,
          "depth": vars(depth_ranking) if not args.no_depth else None,
          "outcomes": {name(*v): dict(c) for v, c in outcomes.items()}}, args.json)



def _loop(args: argparse.Namespace, seg, filters: Filters, depth_ranking: DepthRanking, heights, cup: float,
          options: dict) -> None:
    totals = {}
    for w in args.area_weights:
        seg.config["area_weight"] = w
        for with_depth in _depth_arms(args):
            def rank(inst, height, with_depth=with_depth):
                return depth_ranked(inst, height if with_depth else None, depth_ranking, filters)

            total: collections.Counter = collections.Counter()
            noise_rng = np.random.default_rng(1)
            for scene in tqdm(range(args.loop), desc=f"w {w:g}{' depth' if with_depth else ''}", unit="bin"):
                c = run_loop(BinPileWorld(BinPileConfig(seed=args.sim_seed)).scene(scene), seg, rank, heights,
                             noise_rng, cup, depth_ranking if with_depth else None)
                longest = c.pop("longest_failure_run", 0)
                total.update(c)
                total["longest_failure_run"] = max(total["longest_failure_run"], longest)
            totals[w, with_depth] = total
    print(f"closed loop on bins 0..{args.loop - 1} of the cell's sim (seed {args.sim_seed}), {args.weights}, options {options}, "
          f"depth {depth_ranking}: picks that lifted over attempts")

    def name(w: float, with_depth: bool) -> str:
        return f"w{w:g}" + ("_depth" if with_depth else "")

    for (w, with_depth), c in totals.items():
        print(f"  area weight {w:g}{', depth' if with_depth else ''}: {c['lifted'] / max(c['attempts'], 1):.3f}  "
              f"({dict(c)})")
    emit("bin_picks", {f"loop_success_{name(*v)}": c["lifted"] / max(c["attempts"], 1) for v, c in totals.items()},
         {"bins": args.loop, "sim_seed": args.sim_seed, "weights": args.weights, "options": options,
          "depth": vars(depth_ranking) if not args.no_depth else None,
          "outcomes": {name(*v): dict(c) for v, c in totals.items()}}, args.json)


if __name__ == "__main__":
    main()
