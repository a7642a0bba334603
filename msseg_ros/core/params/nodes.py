"""The parameter schema of every node, keyed by executable name.

This is the single declaration: nodes declare these on start, ``msseg run --set`` and
``msseg params`` read them, docs/parameters.md is generated from them, and a test
checks config/*.yaml against them.
"""
from __future__ import annotations

from msseg_ros.core.params.schema import Param, ParamType, Schema

T = ParamType
CELLS = ("sorting_line", "bin_picking")

#: Parameters every node has (declared by the node base).
BASE = Schema(
    "base",
    [
        Param("diagnostics_period", T.FLOAT, 1.0, "Period of /diagnostics messages, s.",
              min=0.05, max=60.0),
    ],
)

CELL_SIM = Schema(
    "cell_sim",
    [
        Param("cell", T.STR, "sorting_line", "Which cell this simulator runs.",
              choices=CELLS, read_only=True),
        Param("seed", T.INT, 0, "Seed of the simulated world.", min=0, max=2**31 - 1,
              read_only=True),
        Param("belt.speed", T.FLOAT, 0.5,
              "Belt speed, m/s; may change at run time (0 stops the belt).", min=0.0, max=5.0),
        Param("belt.encoder_rate", T.FLOAT, 200.0,
              "Rate of conveyor/joint_states, Hz.", min=100.0, max=2000.0, read_only=True),
        Param("belt.encoder_resolution", T.FLOAT, 1e-4,
              "Belt travel per encoder count, m; positions are whole counts.",
              min=1e-6, max=1e-2, read_only=True),
    ],
)

#: executable name -> full schema (node parameters plus BASE)
NODE_SCHEMAS: dict[str, Schema] = {
    s.node: s.extend(BASE) for s in (CELL_SIM,)
}


def schema_for(executable: str) -> Schema:
    try:
        return NODE_SCHEMAS[executable]
    except KeyError:
        known = ", ".join(sorted(NODE_SCHEMAS))
        raise KeyError(f"no parameter schema for node {executable!r}; known: {known}") from None
