"""``msseg run`` and ``msseg graph``: a cell's node graph, started or described."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from msseg_ros.cli.common import UsageError
from msseg_ros.graph import CELLS, MODES, ROBOTS, SEGMENTERS, GraphSpec, describe


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    run.add_argument("--one-process", action="store_true",
                     help="run every node in one process on one executor (like a ROS "
                          "component container): no frame copies between processes")
    run.add_argument("--no-respawn", action="store_true",
                     help="a node that dies stops the run (default: restart it, 3 times at most)")
    run.add_argument("--report", metavar="DIR", default=None,
                     help="write report.json (the KPIs at the end and over time) into DIR")
    run.set_defaults(func=cmd_run)

    graph = sub.add_parser("graph", help="print the node graph that `run` would start")
    _graph_args(graph)
    graph.add_argument("--json", action="store_true", help="machine-readable output")
    graph.set_defaults(func=cmd_graph)


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cell", choices=CELLS)
    p.add_argument("--mode", choices=MODES, default="sim")
    p.add_argument("--segmenter", choices=SEGMENTERS, default=None,
                   help="model type (default: maskrcnn; bicameral is seed 001's bin model)")
    p.add_argument("--robot", choices=ROBOTS, default=None,
                   help="robot backend (default: delta on the line, fanuc for bins)")
    p.add_argument("--bag", default=None, help="rosbag2 to replay (replay mode)")
    p.add_argument("--params-file", nargs="+", default=None, metavar="FILE",
                   help="cell parameter file (default: shipped); several are layered, later ones win "
                        "(e.g. config/sorting_line.yaml config/sorting_line_0p5mm.yaml: the seed's "
                        "0.5 mm line)")
    p.add_argument("--namespace", default="", help="ROS namespace for every node")
    p.add_argument("--shards", type=int, default=1, metavar="N",
                   help="N segmenters (segmenter_0 ...) share the frames, each segmenting its shard")
    p.add_argument("--only", nargs="+", default=[], metavar="NODE",
                   help="run only these nodes of the graph on this host (the others run elsewhere "
                        "on the same DDS domain; docs/deployment.md)")
    p.add_argument("--skip", nargs="+", default=[], metavar="NODE",
                   help="run the graph without these nodes (they run on another host)")


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
        shards=args.shards,
    ).subset(args.only, args.skip)


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
    from msseg_ros.cli.runner import GraphRunner, NodeDiedError, RespawnPolicy, parse_sets

    spec = _describe(args)
    sets = parse_sets(args.sets, spec)
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0 s, got {args.duration}")
    if spec.missing:
        names = ", ".join(n.name for n in spec.missing)
        print(f"msseg run: not in this version yet, not started: {names}", file=sys.stderr)
    if not spec.runnable:
        raise UsageError("no node of this graph is installed")
    preflight(spec)
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
    runner = GraphRunner(spec, sets, log=log, respawn=None if args.no_respawn else RespawnPolicy(),
                         one_process=args.one_process)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, runner.request_stop)
    monitor = KpiMonitor(spec.namespace, record=bool(args.report), latency=spec.mode != "replay").start()
    runner.start()
    started = ", ".join(rn.spec.name for rn in runner.nodes)
    print(f"msseg run: {spec.cell} ({spec.mode}) started: {started}", file=sys.stderr)
    # replay with no duration: until the bag has played, then until the frames still in
    # the pipeline are through (or until the replay reports an error: it will play nothing more)
    until = (lambda: monitor.node_message("replay") == "finished" or monitor.node_level("replay") == 2) \
        if spec.mode == "replay" and args.duration is None else None

    def progress() -> tuple[str | None, ...]:  # what the pipeline's nodes have handled so far
        return tuple(monitor.node_value(n, "frames") for n in ("segmenter", "grasp_selector"))

    try:
        if live_table:
            with Live(monitor.table(), console=console, refresh_per_second=1) as live:
                _wait_with(runner, args.duration, lambda: live.update(monitor.table()), 1.0, until, progress)
        else:
            _wait_with(runner, args.duration, lambda: print(monitor.line(), file=sys.stderr, flush=True), 10.0,
                       until, progress)
    except NodeDiedError as exc:  # the others are stopped; what was measured is kept
        monitor.stop()
        clean_stale_segments()
        console.print(monitor.table())
        if args.report:
            header = {**_report_header(spec, sets, args.one_process, runner.restarts),
                      "node_died": {"node": exc.node, "exit_code": exc.code}}
            files = monitor.write_report(args.report, header)
            print(f"msseg run: report in {args.report}: {', '.join(files)}", file=sys.stderr)
        print(f"msseg run: {exc}; stopped the graph", file=sys.stderr)
        return 1
    codes = runner.stop()
    monitor.stop()
    clean_stale_segments()  # a node killed after the grace period leaves its segment
    console.print(monitor.table())
    if runner.restarts:
        print("msseg run: restarted " + ", ".join(f"{n} x{k}" for n, k in runner.restarts.items()), file=sys.stderr)
    if args.report:
        header = _report_header(spec, sets, args.one_process, runner.restarts)
        files = monitor.write_report(args.report, header)
        print(f"msseg run: report in {args.report}: {', '.join(files)}", file=sys.stderr)
    bad = {n: c for n, c in codes.items() if c != 0}
    if bad:
        detail = ", ".join(f"{n} (exit {c}: {runner.killed[n]})" if n in runner.killed else f"{n} (exit {c})"
                           for n, c in bad.items())
        print(f"msseg run: nodes did not stop cleanly: {detail}", file=sys.stderr)
        return 1
    print(f"msseg run: stopped {len(codes)} node(s) cleanly", file=sys.stderr)
    return 0


def _report_header(spec: GraphSpec, sets: dict[str, dict], one_process: bool, restarts: dict) -> dict:
    """What a run's report says of its graph. ``segmenter`` is the model type the
    segmenters ran: the graph's, or a ``--set segmenter.model.type=...`` over it."""
    types = {v["model.type"] for n, v in sets.items() if n.split("_")[0] == "segmenter" and "model.type" in v}
    return {"cell": spec.cell, "mode": spec.mode, "segmenter": ",".join(sorted(types)) or spec.segmenter,
            "robot": spec.robot, "one_process": one_process, "hosted_nodes": [n.name for n in spec.nodes],
            "restarts": restarts}


def preflight(spec: GraphSpec) -> None:
    """What can be checked before any node starts, refused as a usage error (exit 2):
    every parameter file parses as YAML; in replay mode, the bag opens and holds the
    cell's sensor topics."""
    import yaml

    from msseg_ros.core.replay import BagError, BagPlayback, topic_matches
    from msseg_ros.graph import REPLAY_TOPICS

    for f in spec.params_files:
        path = Path(f)  # graph.build resolved it (core.paths.packaged)
        if not path.is_file():
            raise UsageError(f"parameter file {f!r} does not exist")
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
            raise UsageError(f"parameter file {f!r} is not valid YAML{at}: "
                             f"{getattr(exc, 'problem', None) or exc}") from None
    if spec.mode != "replay" or spec.bag is None:
        return
    try:
        bag = BagPlayback(spec.bag)
    except BagError as exc:
        raise UsageError(str(exc)) from None
    try:
        wanted = REPLAY_TOPICS[spec.cell]
        present = [t for t in bag.topics if topic_matches(t.name, list(wanted))]
        if not present:
            have = ", ".join(t.name for t in bag.topics) or "no topics"
            raise UsageError(f"bag {spec.bag!r} holds none of the {spec.cell} sensor topics "
                             f"({', '.join(wanted)}); it has {have}")
        if sum(t.count for t in present) == 0:
            raise UsageError(f"bag {spec.bag!r} has no message on {', '.join(t.name for t in present)}")
    finally:
        bag.close()


#: seconds a replay run goes on after the bag has played, at least, and after the
#: pipeline's counters last moved (frames still in the pipeline; diagnostics come at ~1 Hz)
REPLAY_DRAIN_S = 5.0
#: ... and at most, however slowly a loaded machine drains its queues
REPLAY_DRAIN_MAX_S = 120.0


def _wait_with(runner, duration: float | None, every, period: float, until=None, progress=None) -> None:
    """runner.wait in slices, calling ``every`` between them; ``until()`` true ends the
    wait ``REPLAY_DRAIN_S`` after ``progress()`` (the pipeline's counters) last changed,
    and ``REPLAY_DRAIN_MAX_S`` after ``until()`` at the latest, so that on a slow machine
    the frames queued when the bag ended are still handled."""
    import time

    end = None if duration is None else time.monotonic() + duration
    next_every = time.monotonic() + period
    cap, last = None, None
    while True:
        if until is not None and until():
            end, until = time.monotonic() + REPLAY_DRAIN_S, None
            cap = time.monotonic() + REPLAY_DRAIN_MAX_S
            last = progress() if progress is not None else None
        elif cap is not None and progress is not None:
            seen = progress()
            if seen != last:  # still draining: wait on from now
                last = seen
                end = min(cap, time.monotonic() + REPLAY_DRAIN_S)
        now = time.monotonic()
        left = 0.5 if end is None else min(0.5, end - now)
        if left <= 0 or runner.wait(min(left, max(next_every - now, 0.01))):
            return
        if time.monotonic() >= next_every:
            next_every += period
            every()
