"""Deterministic simulated cells: the belt, the sorting-line world, the bin pile; and
tabletop scenes (pretraining data, no cell)."""
from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from msseg_ros.core.errors import ConfigError

C = TypeVar("C", bound="DataclassInstance")

#: the worlds ``msseg sim-data`` renders: the two cells', and tabletop scenes
WORLDS = ("sorting_line", "bin_picking", "tabletop")


def replace_checked(config: C, kind: str, **overrides: Any) -> C:
    """A copy of a config dataclass with ``overrides``; an unknown key is refused with
    the list of valid ones (``kind`` names the config in the message)."""
    names = {f.name for f in fields(config)}
    for key in overrides:
        if key not in names:
            raise ConfigError(f"unknown {kind} option {key!r}; options: {', '.join(sorted(names))}")
    return replace(config, **overrides)
