"""ROS 2 parameter files read without ROS: what a node would get from ``--params-file``.

A parameter file maps node names (``/**``, ``/**/segmenter``, ``/segmenter`` or
``segmenter``) to ``ros__parameters``. ``/**`` is shared by every node; here a node takes
from it only the names its schema declares, then its own section, validated against its
schema (types, bounds, cross checks) with every other parameter at its declared default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.params.schema import ParamError, ParamView, flatten

#: the section every node reads
_SHARED = "/**"


def read_sections(params_file: str | Path) -> dict[str, dict[str, Any]]:
    """Each section's ``ros__parameters`` (nested as in the file), by the file's keys."""
    import yaml

    path = Path(params_file)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParamError(f"cannot read parameter file {str(path)!r}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ParamError(f"parameter file {str(path)!r} holds no mapping of node names")
    return {str(k): (v or {}).get("ros__parameters") or {} for k, v in doc.items() if isinstance(v, dict)}


def node_section(sections: dict[str, dict[str, Any]], node: str) -> dict[str, Any]:
    """Node ``node``'s own parameters (under ``/**/node``, ``/node`` or ``node``),
    flattened to dotted names (``model.type``); {} when the file has none."""
    for key in (f"/**/{node}", f"/{node}", node):
        if key in sections:
            return flatten(sections[key])
    return {}


def node_parameters(params_file: str | Path, executable: str, node: str | None = None) -> ParamView:
    """The validated parameters node ``node`` (default: ``executable``) of that executable
    starts with under this file: declared defaults, then ``/**``, then its own section.

    Raises:
        ParamError: a value of the wrong type or out of bounds, or a name of the node's own
            section that its schema does not declare.
    """
    schema = schema_for(executable)
    sections = read_sections(params_file)
    values = {k: v for k, v in flatten(sections.get(_SHARED, {})).items() if k in schema}
    values.update(node_section(sections, node or executable))  # a name it does not declare: ParamError
    return schema.view(schema.validate(values, strict=False))
