"""Parameter schemas: every node's parameters declared once, with type, default, bounds.

The schema is plain Python so that the CLI, the launch files, the docs generator and
the drift test can all read it without ROS. ``msseg_ros.ros.parameters`` turns a schema
into declared, validated ROS parameters.
"""
from msseg_ros.core.params.schema import (
    Param,
    ParamError,
    ParamType,
    ParamView,
    Schema,
    flatten,
)

__all__ = ["Param", "ParamError", "ParamType", "ParamView", "Schema", "flatten"]
