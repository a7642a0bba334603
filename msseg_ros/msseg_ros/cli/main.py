"""``msseg``: the command-line entry point.

Each command group lives in its own module, which adds its parsers and names the
function that runs each command; this module only assembles them and maps errors to exit
codes: 0 ok, 2 bad usage or input (one line on stderr, no traceback), 1 failure.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from msseg_ros import __version__
from msseg_ros.cli import bag_commands, graph_commands, model_commands, tool_commands
from msseg_ros.cli.common import CliParser, UsageError
from msseg_ros.core.errors import MssegError
from msseg_ros.graph import GraphError

#: the command modules, in the order their commands are listed by ``msseg --help``
COMMAND_MODULES = (graph_commands, bag_commands, model_commands, tool_commands)


def build_parser() -> CliParser:
    parser = CliParser(
        prog="msseg",
        description="msseg_ros: multi-sensor instance segmentation to robot picks.",
    )
    parser.add_argument("--version", action="version", version=f"msseg_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
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
