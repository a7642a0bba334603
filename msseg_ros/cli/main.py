"""``msseg``: the command-line entry point.

Exit codes: 0 ok, 2 bad usage or input (one line on stderr, no traceback), 1 failure.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from msseg_ros import __version__
from msseg_ros.core.errors import MssegError
from msseg_ros.graph import CELLS, MODES, ROBOTS, SEGMENTERS, GraphError, describe

DEFAULT_BENCHMARKS = ("pipeline", "model_speed", "multipick")


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too, but keep it one line
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="msseg",
        description="msseg_ros: multi-sensor instance segmentation to robot picks.",
    )
    parser.add_argument("--version", action="version", version=f"msseg_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    rec = sub.add_parser("record", help="record topics of a running graph into a rosbag2 (mcap)")
    rec.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to record (none: every topic)")
    rec.add_argument("--out", required=True, metavar="BAG", help="bag folder to create (must not exist)")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    rec.add_argument("--duration", type=float, default=None, metavar="S",
                     help="stop after S seconds (default: until Ctrl-C)")
    rec.add_argument("--namespace", default="", help="namespace that relative topic names resolve in")

    be = sub.add_parser("bench", help="run benchmarks/ and print the ratios each measures in one run")
    be.add_argument("names", nargs="*", metavar="NAME",
                    help=f"benchmarks to run (default: {', '.join(DEFAULT_BENCHMARKS)})")
    be.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    be.add_argument("--out", default=None, metavar="FILE", help="write every result as one JSON file")

    rv = sub.add_parser("rviz", help="open RViz with the cell's shipped config (or print its path)")
    rv.add_argument("cell", choices=CELLS)
    rv.add_argument("--print", action="store_true", help="only print the config's path")

    bi = sub.add_parser("bag-images", help="write image files as a camera rosbag2 (image_raw + camera_info)")
    bi.add_argument("images", nargs="+", help="image files, in play order (PNG/JPEG)")
    bi.add_argument("--out", required=True, metavar="BAG", help="bag folder to create (must not exist)")
    bi.add_argument("--camera-info", required=True, metavar="YAML",
                    help="the camera's intrinsics (ROS camera_info YAML)")
    bi.add_argument("--rate", type=float, default=2.0, help="frames per second (default 2)")
    bi.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    bi.add_argument("--namespace", default="camera", help="topics NAMESPACE/image_raw and NAMESPACE/camera_info")

    run = sub.add_parser("run", help="start a cell's node graph (sim, replay or live)")
    _graph_args(run)
    run.add_argument("--duration", type=float, default=None, metavar="S",
                     help="stop after S seconds (default: until Ctrl-C; in replay mode, "
                     "until the bag has played and the pipeline has drained)")
    run.add_argument("--record", metavar="BAG", default=None,
                     help="also record a rosbag2 (mcap) into the new folder BAG")
    run.add_argument("--record-topics", nargs="*", default=None, metavar="TOPIC",
                     help="topics for --record (default: the sensor streams, detections, "
                     "candidates and pick results; none given: every topic)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.PARAM=VALUE",
                     help="override a node parameter (VALUE is YAML); repeatable")
    run.add_argument("--quiet", action="store_true", help="do not forward the nodes' logs")
    run.add_argument("--report", metavar="DIR", default=None,
                     help="write report.json (the KPIs at the end and over time) into DIR")

    graph = sub.add_parser("graph", help="print the node graph that `run` would start")
    _graph_args(graph)
    graph.add_argument("--json", action="store_true", help="machine-readable output")

    data = sub.add_parser("sim-data", help="write a synthetic dataset (COCO, RLE masks)")
    data.add_argument("cell", choices=CELLS)
    data.add_argument("--out", required=True, help="output folder (must be empty or new)")
    data.add_argument("--count", type=int, required=True, help="number of images")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                      help="world option (VALUE is YAML), e.g. pixel_size=0.001; repeatable")
    data.add_argument("--single-class", action="store_true",
                      help="one class per sorting-line image, as the seed's dataset")
    data.add_argument("--split", default="0.5,0.25,0.25", metavar="LS,VS,TS",
                      help="learning/validation/test fractions (default 0.5,0.25,0.25)")
    data.add_argument("--lines", type=int, default=250, help="sorting_line: lines per image")
    data.add_argument("--previews", type=int, default=4, help="PNG previews of the first images")
    data.add_argument("--force", action="store_true", help="write into a non-empty folder")
    data.add_argument("--workers", type=int, default=1,
                      help="render in this many processes (same files whatever the number)")

    tr = sub.add_parser("train", help="train a model (maskrcnn, bicameral or classic)")
    tr.add_argument("config", nargs="?", help="training config YAML (model/data/train/out)")
    tr.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config key, e.g. train.epochs=3; repeatable")
    tr.add_argument("--resume", action="store_true", help="continue the run in `out`")

    ev = sub.add_parser("eval", help="evaluate a model on a COCO dataset")
    ev.add_argument("weights", help="checkpoint (.safetensors) or shipped model name")
    ev.add_argument("--data", required=True, help="COCO annotation file")
    ev.add_argument("--out", default=None, help="folder for metrics.json and plots")
    ev.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    ev.add_argument("--score-threshold", type=float, default=0.75,
                    help="contingency table threshold (seed 000: 0.75)")
    ev.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    ev.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override at load time (e.g. score_threshold=0.3)")

    models = sub.add_parser("models", help="list models, show their config and size")
    msub = models.add_subparsers(dest="models_command", metavar="list|info", parser_class=_Parser)
    msub.required = True
    msub.add_parser("list", help="registered model types and shipped checkpoints")
    info = msub.add_parser("info", help="a model's config and parameter counts")
    info.add_argument("name", help="a model type, a shipped model or a checkpoint path")
    info.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    info.add_argument("--json", action="store_true")

    params = sub.add_parser("params", help="list node parameters: type, default, bounds")
    params.add_argument("node", nargs="?", help="node executable (default: all)")
    params.add_argument("--markdown", action="store_true",
                        help="print the docs/parameters.md reference")
    return parser


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cell", choices=CELLS)
    p.add_argument("--mode", choices=MODES, default="sim")
    p.add_argument("--segmenter", choices=SEGMENTERS, default=None,
                   help="model type (default: maskrcnn on the line, bicameral for bins)")
    p.add_argument("--robot", choices=ROBOTS, default=None,
                   help="robot backend (default: delta on the line, fanuc for bins)")
    p.add_argument("--bag", default=None, help="rosbag2 to replay (replay mode)")
    p.add_argument("--params-file", default=None, help="cell parameter file (default: shipped)")
    p.add_argument("--namespace", default="", help="ROS namespace for every node")


def _describe(args: argparse.Namespace):
    return describe(
        args.cell,
        mode=args.mode,
        segmenter=args.segmenter,
        robot=args.robot,
        params_file=args.params_file,
        bag=args.bag,
        namespace=args.namespace,
        record=getattr(args, "record", None),
        record_topics=getattr(args, "record_topics", None),
    )


def cmd_graph(args: argparse.Namespace) -> int:
    spec = _describe(args)
    if args.json:
        out = {
            "cell": spec.cell, "mode": spec.mode, "segmenter": spec.segmenter,
            "robot": spec.robot, "namespace": spec.namespace,
            "params_files": list(spec.params_files), "bag": spec.bag,
            "nodes": [
                {"name": n.name, "executable": n.executable, "parameters": n.parameters,
                 "remappings": [list(r) for r in n.remappings], "installed": n.installed}
                for n in spec.nodes
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{spec.cell} / {spec.mode}: segmenter={spec.segmenter} robot={spec.robot} "
          f"namespace={spec.namespace or '/'}")
    print(f"params: {', '.join(spec.params_files)}")
    for n in spec.nodes:
        state = "" if n.installed else "   (not in this version yet)"
        overrides = " ".join(f"{k}:={v}" for k, v in n.parameters.items())
        print(f"  {n.name:<15} exe={n.executable:<15} {overrides}{state}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from msseg_ros.cli.runner import GraphRunner, NodeDiedError, parse_sets

    spec = _describe(args)
    sets = parse_sets(args.sets, spec)
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0 s, got {args.duration}")
    if spec.missing:
        names = ", ".join(n.name for n in spec.missing)
        print(f"msseg run: not in this version yet, not started: {names}", file=sys.stderr)
    if not spec.runnable:
        raise UsageError("no node of this graph is installed")
    from rich.console import Console
    from rich.live import Live

    from msseg_ros.cli.monitor import KpiMonitor

    console = Console(stderr=True)
    live_table = console.is_terminal and not args.quiet
    if args.quiet:
        log = lambda name, line: None  # noqa: E731
    elif live_table:
        log = lambda name, line: console.print(f"[{name}] {line}", markup=False, highlight=False)  # noqa: E731
    else:
        log = None
    from msseg_ros.shm import clean_stale_segments

    clean_stale_segments()  # left in /dev/shm (RAM) by graphs that were killed
    runner = GraphRunner(spec, sets, log=log)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, runner.request_stop)
    monitor = KpiMonitor(spec.namespace, record=bool(args.report), latency=spec.mode != "replay").start()
    runner.start()
    started = ", ".join(rn.spec.name for rn in runner.nodes)
    print(f"msseg run: {spec.cell} ({spec.mode}) started: {started}", file=sys.stderr)
    # replay with no duration: until the bag has played, then a few seconds for the
    # frames still in the pipeline
    until = (lambda: monitor.node_message("replay") == "finished") \
        if spec.mode == "replay" and args.duration is None else None
    try:
        if live_table:
            with Live(monitor.table(), console=console, refresh_per_second=1) as live:
                _wait_with(runner, args.duration, lambda: live.update(monitor.table()), 1.0, until)
        else:
            _wait_with(runner, args.duration, lambda: print(monitor.line(), file=sys.stderr, flush=True), 10.0,
                       until)
    except NodeDiedError as exc:
        monitor.stop()
        print(f"msseg run: {exc}; stopped the graph", file=sys.stderr)
        return 1
    codes = runner.stop()
    monitor.stop()
    clean_stale_segments()  # a node killed after the grace period leaves its segment
    console.print(monitor.table())
    if args.report:
        header = {"cell": spec.cell, "mode": spec.mode, "segmenter": spec.segmenter, "robot": spec.robot}
        files = monitor.write_report(args.report, header)
        print(f"msseg run: report in {args.report}: {', '.join(files)}", file=sys.stderr)
    bad = {n: c for n, c in codes.items() if c != 0}
    if bad:
        detail = ", ".join(f"{n} (exit {c})" for n, c in bad.items())
        print(f"msseg run: nodes did not stop cleanly: {detail}", file=sys.stderr)
        return 1
    print(f"msseg run: stopped {len(codes)} node(s) cleanly", file=sys.stderr)
    return 0


REPLAY_DRAIN_S = 5.0


def _wait_with(runner, duration: float | None, every, period: float, until=None) -> None:
    """runner.wait in slices, calling ``every`` between them; ``until()`` true ends the
    wait ``REPLAY_DRAIN_S`` later."""
    import time

    end = None if duration is None else time.monotonic() + duration
    next_every = time.monotonic() + period
    while True:
        if until is not None and until():
            end, until = time.monotonic() + REPLAY_DRAIN_S, None
        now = time.monotonic()
        left = 0.5 if end is None else min(0.5, end - now)
        if left <= 0 or runner.wait(min(left, max(next_every - now, 0.01))):
            return
        if time.monotonic() >= next_every:
            next_every += period
            every()


def cmd_record(args: argparse.Namespace) -> int:
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions
    from rich.console import Console
    from rich.table import Table

    from msseg_ros.ros.nodes.recorder import RecorderNode

    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0 s, got {args.duration}")
    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        overrides = [Parameter("out", value=args.out), Parameter("storage", value=args.storage)]
        if args.topics:
            overrides.append(Parameter("topics", value=list(args.topics)))
        node = RecorderNode(namespace=args.namespace or None, parameter_overrides=overrides)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        end = None if args.duration is None else time.monotonic() + args.duration
        print(f"msseg record: writing {args.out} ({args.storage}); Ctrl-C to stop", file=sys.stderr)
        last = time.monotonic()
        while not stop["now"] and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
            if time.monotonic() - last >= 5.0:
                last = time.monotonic()
                print(f"msseg record: {sum(node.bag.counts.values())} messages, "
                      f"{node.bag.bytes / 1e6:.1f} MB", file=sys.stderr, flush=True)
        bag = node.bag
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    t = Table(title=f"{args.out} ({args.storage})")
    t.add_column("topic")
    t.add_column("type")
    t.add_column("messages", justify="right")
    for topic, n in sorted(bag.counts.items()):
        t.add_row(topic, bag.types[topic], str(n))
    for topic in sorted(set(bag.types) - set(bag.counts)):
        t.add_row(topic, bag.types[topic], "0")
    Console(stderr=True).print(t)
    if not bag.counts:
        print("msseg record: no message was received (is the graph running, on this ROS_DOMAIN_ID?)",
              file=sys.stderr)
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from msseg_ros.graph import share_dir

    folder = share_dir() / "benchmarks"
    available = {p.stem: p for p in sorted(folder.glob("*.py"))}
    if args.list:
        for name, path in available.items():
            text = path.read_text()
            doc = text.split('"""')[1].strip().splitlines()[0] if '"""' in text else ""
            print(f"{name:20s} {doc}")
        return 0
    names = args.names or list(DEFAULT_BENCHMARKS)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UsageError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    results, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"== {name} ==", flush=True)
            out = Path(tmp) / f"{name}.json"
            code = subprocess.call([sys.executable, str(available[name]), "--json", str(out)])
            if code != 0:
                failed.append(name)
            elif out.is_file():
                results.append(json.loads(out.read_text()))
    t = Table(title="msseg bench: ratios, each measured within one run")
    t.add_column("benchmark")
    t.add_column("ratio")
    t.add_column("value", justify="right")
    for r in results:
        for key, value in r["ratios"].items():
            t.add_row(r["name"], key, f"{value:.3f}")
    Console().print(t)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if failed:
        print(f"msseg bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_rviz(args: argparse.Namespace) -> int:
    import os
    import shutil

    from msseg_ros.graph import share_dir

    config = share_dir() / "config" / "rviz" / f"{args.cell}.rviz"
    if not config.is_file():
        raise UsageError(f"no RViz config at {config} (is the package installed?)")
    if args.print:
        print(config)
        return 0
    rviz = shutil.which("rviz2")
    if rviz is None:
        print(f"msseg rviz: rviz2 is not installed here (it comes with a ROS desktop install); "
              f"on a ROS machine run: rviz2 -d {config}", file=sys.stderr)
        return 1
    os.execv(rviz, [rviz, "-d", str(config)])
    return 0  # not reached


def cmd_bag_images(args: argparse.Namespace) -> int:
    from msseg_ros.core.geometry.camera import CameraModel
    from msseg_ros.core.recording import images_to_bag

    camera = CameraModel.from_yaml(args.camera_info)
    ns = "/" + args.namespace.strip("/")
    n = images_to_bag(sorted(args.images), args.out, camera, rate=args.rate, storage=args.storage,
                      image_topic=f"{ns}/image_raw", info_topic=f"{ns}/camera_info")
    print(f"msseg bag-images: {n} frames ({camera.width}x{camera.height}, {args.rate:g} Hz) -> {args.out}: "
          f"{ns}/image_raw, {ns}/camera_info", file=sys.stderr)
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from msseg_ros.core.params.docs import markdown, table
    from msseg_ros.core.params.nodes import NODE_SCHEMAS

    if args.node and args.node not in NODE_SCHEMAS:
        raise UsageError(
            f"msseg params: unknown node {args.node!r}; nodes: {', '.join(sorted(NODE_SCHEMAS))}"
        )
    names = [args.node] if args.node else sorted(NODE_SCHEMAS)
    print(markdown(names) if args.markdown else table(names))
    return 0


def parse_key_values(items: list[str], what: str = "--set") -> dict:
    """``KEY=VALUE`` items (VALUE in YAML) -> dict; raises UsageError on bad syntax."""
    import yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UsageError(f"{what} {item!r}: value is not valid YAML") from None
        out[key.strip()] = tuple(value) if isinstance(value, list) else value
    return out


def cmd_sim_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from msseg_ros.core.sim.dataset import base_config, generate, parse_split

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UsageError(f"--out {str(out)!r} is not empty; use --force to write into it")
    if args.count < 1:
        raise UsageError(f"--count must be >= 1, got {args.count}")
    if args.lines < 8:
        raise UsageError(f"--lines must be >= 8, got {args.lines}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    split = parse_split(args.split)
    overrides = parse_key_values(args.sets)
    base_config(args.cell, overrides)  # refuse a bad option before writing anything
    with tqdm(total=args.count, desc=f"sim-data {args.cell}", unit="img") as bar:
        summary = generate(args.cell, out, args.count, args.seed, overrides,
                           single_class=args.single_class, split=split, lines=args.lines,
                           previews=args.previews, progress=bar.update, workers=args.workers)
    console = Console()
    counts = summary["instances_per_class"]
    t = Table(title=f"{args.cell}: {args.count} images in {out}")
    t.add_column("class")
    for s in counts:
        t.add_column(f"{s} ({summary['images_per_split'][s]} img)", justify="right")
    for cls in next(iter(counts.values())):
        t.add_row(cls, *(str(counts[s][cls]) for s in counts))
    console.print(t)
    c = Table(title="per-channel statistics (all images)")
    c.add_column("channel")
    c.add_column("mean", justify="right")
    c.add_column("std", justify="right")
    for name, m, sd in zip(summary["channels"], summary["channel_mean"], summary["channel_std"],
                           strict=True):
        c.add_row(name, f"{m:.4g}", f"{sd:.4g}")
    console.print(c)
    console.print(f"summary: {out / 'summary.json'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from msseg_ros.core.learning.train import load_train_config, train

    cfg = load_train_config(args.config, parse_key_values(args.sets))
    state = train(cfg, resume=args.resume, log=lambda m: print(m, flush=True))
    print(f"model: {cfg['out']}/model.safetensors ({state['step']} steps)")
    return 0


def _print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    s = metrics["summary"]
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in s.items():
        t.add_row(k, "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
    c = Table(title=f"per class (score >= {s['score_threshold']}, mask IoU >= 0.5)")
    for col in ("class", "ground truth", "precision", "recall"):
        c.add_column(col, justify="right" if col != "class" else "left")
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f} %"

    for name, r in metrics["per_class"].items():
        c.add_row(name, str(r["ground_truth"]), fmt(r["precision"]), fmt(r["recall"]))
    con = Console()
    con.print(t)
    con.print(c)


def cmd_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from msseg_ros.core.learning.data import CocoFrames, DatasetError
    from msseg_ros.core.learning.evaluate import evaluate, save_plots
    from msseg_ros.core.segmentation.loading import load_segmenter

    if not 0 <= args.score_threshold <= 1:
        raise UsageError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    try:
        ds = CocoFrames(args.data)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    seg = load_segmenter(args.weights, device=args.device, overrides=parse_key_values(args.sets))
    if len(seg.classes) != len(ds.class_names):
        raise UsageError(f"the model has {len(seg.classes)} classes but the dataset {len(ds.class_names)}")
    metrics = evaluate(seg, ds, limit=args.limit or None, score_threshold=args.score_threshold, progress=True)
    metrics["model"] = {"weights": args.weights, "config": seg.config}
    _print_metrics(metrics, f"{args.weights} on {args.data}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        for p in save_plots(metrics, out):
            print(f"plot: {p}")
        print(f"metrics: {out / 'metrics.json'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import json

    from msseg_ros.core.segmentation.base import SEGMENTERS
    from msseg_ros.core.segmentation.loading import (
        DEFAULTS,
        load_segmenter,
        parameter_counts,
        shipped_models,
    )

    if args.models_command == "list":
        print("model types: " + ", ".join(SEGMENTERS.names()))
        shipped = shipped_models()
        print("shipped models: " + (", ".join(shipped) if shipped else "none"))
        return 0
    sets = parse_key_values(args.sets)
    sets = {k: list(v) if isinstance(v, tuple) else v for k, v in sets.items()}
    if args.name in SEGMENTERS:
        if args.name == "classic":
            cfg = SEGMENTERS.get("classic").validate_config({**DEFAULTS["classic"], **sets})
            K, D, F = len(cfg["classes"]), cfg["rff_components"], len(cfg["feature_channels"])
            total = 2 * F + F * D + D + K * D + K + 2 * (K + 1) + K * (K + 1) + K
            counts = (total, total)
        else:
            seg = load_segmenter(config={**DEFAULTS[args.name], **sets})
            cfg, counts = seg.config, parameter_counts(seg)
    else:
        seg = load_segmenter(args.name, overrides=sets)
        cfg, counts = seg.config, parameter_counts(seg)
    if args.json:
        print(json.dumps({"name": args.name, "config": cfg, "parameters": {"total": counts[0], "trainable": counts[1]}},
                         indent=1))
        return 0
    print(f"{args.name}: {cfg['type']}, {counts[0]:,} parameters ({counts[1]:,} trainable)")
    for k, v in cfg.items():
        print(f"  {k}: {v}")
    return 0


COMMANDS = {"run": cmd_run, "record": cmd_record, "bag-images": cmd_bag_images, "rviz": cmd_rviz, "bench": cmd_bench, "graph": cmd_graph, "params": cmd_params, "sim-data": cmd_sim_data,
            "train": cmd_train, "eval": cmd_eval, "models": cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, GraphError, MssegError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `msseg models info X | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
