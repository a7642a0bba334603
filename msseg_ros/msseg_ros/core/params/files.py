"""ROS 2 parameter files read without ROS: what a node would get from ``--params-file``.

A parameter file maps node names (``/**``, ``/**/segmenter``, ``/segmenter`` or
``segmenter``) to ``ros__parameters``. ``/**`` is shared by every node; here a node takes
from it only the names its schema declares, then its own section, validated against its
schema (types, bounds, cross checks) with every other parameter at its declared default.

Several files layer as ROS's repeated ``--params-file`` does: a later file's value of a
parameter replaces an earlier one's (an overlay such as ``config/sorting_line_0p5mm.yaml``
names only what it changes).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.params.schema import ParamError, ParamView, flatten

#: the section every node reads
_SHARED = "/**"

#: one parameter file, or several layered (later ones win)
ParamsFiles = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def as_file_list(params_files: ParamsFiles) -> list[Path]:
    """``params_files`` as a list of paths (one path given alone is a list of one)."""
    if isinstance(params_files, (str, os.PathLike)):
        return [Path(params_files)]
    return [Path(f) for f in params_files]


def read_sections(params_files: ParamsFiles) -> dict[str, dict[str, Any]]:
    """Each section's ``ros__parameters`` (nested as in the files), by the files' keys;
    with several files, a later file's values replace an earlier one's, name by name."""
    merged: dict[str, dict[str, Any]] = {}
    for path in as_file_list(params_files):
        for key, params in _read_file(path).items():
            _merge(merged.setdefault(key, {}), params)
    return merged


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    import yaml

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


def node_parameters(params_files: ParamsFiles, executable: str, node: str | None = None) -> ParamView:
    """The validated parameters node ``node`` (default: ``executable``) of that executable
    starts with under these files (layered): declared defaults, then ``/**``, then its own
    section.

    Raises:
        ParamError: a value of the wrong type or out of bounds, or a name of the node's own
            section that its schema does not declare.
    """
    schema = schema_for(executable)
    sections = read_sections(params_files)
    values = {k: v for k, v in flatten(sections.get(_SHARED, {})).items() if k in schema}
    values.update(node_section(sections, node or executable))  # a name it does not declare: ParamError
    return schema.view(schema.validate(values, strict=False))
