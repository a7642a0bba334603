"""Human-readable parameter references generated from the schemas (docs/parameters.md)."""
from __future__ import annotations

from collections.abc import Iterable

from msseg_ros.core.params.nodes import NODE_SCHEMAS


def _fmt(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value).replace("True", "true").replace(
        "False", "false"
    )


def markdown(nodes: Iterable[str] | None = None) -> str:
    """The parameter reference as Markdown, one table per node."""
    lines = [
        "# Node parameters",
        "",
        "Generated from `msseg_ros/core/params/nodes.py` by `msseg params --markdown`;",
        "a test fails when this file and the schemas differ. Units are SI (REP-103).",
        "",
    ]
    for name in nodes or sorted(NODE_SCHEMAS):
        lines += [f"## {name}", "", "| parameter | type | default | bounds | description |",
                  "|---|---|---|---|---|"]
        for p in NODE_SCHEMAS[name]:
            desc = p.description.replace("|", "\\|")
            lines.append(
                f"| `{p.name}` | {p.type.value} | `{_fmt(p.default)}` | {p.bounds_text()} | {desc} |"
            )
        lines.append("")
    return "\n".join(lines)


def table(nodes: Iterable[str]) -> str:
    """A plain-text listing for the terminal."""
    out = []
    for name in nodes:
        out.append(f"{name}:")
        for p in NODE_SCHEMAS[name]:
            bounds = f"  {p.bounds_text()}" if p.bounds_text() else ""
            out.append(f"  {p.name:<28} {p.type.value:<8} = {_fmt(p.default):<16}{bounds}")
            out.append(f"      {p.description}")
    return "\n".join(out)
