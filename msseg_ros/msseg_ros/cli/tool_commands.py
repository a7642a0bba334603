"""``msseg bench``, ``msseg rviz`` and ``msseg params``: benchmarks, RViz and the parameter reference."""
from __future__ import annotations

import argparse
import json
import sys

from msseg_ros.cli.common import UsageError
from msseg_ros.graph import CELLS

#: what ``msseg bench`` runs without names
DEFAULT_BENCHMARKS = ("pipeline", "model_speed", "multipick")

def add_parsers(sub: argparse._SubParsersAction) -> None:
    be = sub.add_parser("bench", help="run benchmarks/ and print the ratios each measures in one run")
    be.add_argument("names", nargs="*", metavar="NAME",
                    help=f"benchmarks to run (default: {', '.join(DEFAULT_BENCHMARKS)})")
    be.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    be.add_argument("--out", default=None, metavar="FILE", help="write every result as one JSON file")
    be.set_defaults(func=cmd_bench)

    rv = sub.add_parser("rviz", help="open RViz with the cell's shipped config (or print its path)")
    rv.add_argument("cell", choices=CELLS)
    rv.add_argument("--print", action="store_true", help="only print the config's path")
    rv.set_defaults(func=cmd_rviz)

    params = sub.add_parser("params", help="list node parameters: type, default, bounds")
    params.add_argument("node", nargs="?", help="node executable (default: all)")
    params.add_argument("--markdown", action="store_true",
                        help="print the docs/parameters.md reference")
    params.set_defaults(func=cmd_params)


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
