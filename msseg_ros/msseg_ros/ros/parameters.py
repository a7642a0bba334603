"""Declare a :class:`~msseg_ros.core.params.Schema` on an rclpy node and guard every set.

Each parameter is declared with its type, description and, where ROS can express it, an
integer or floating-point range (ROS ranges need both bounds). Every set, including the
initial overrides from a parameter file, goes through the schema's validation; a refused
value returns ``SetParametersResult(successful=False, reason=...)``, which ``ros2 param
set`` prints and which makes a bad parameter file fail the node's start with the reason.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rcl_interfaces.msg import (
    ParameterType as RosType,
)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from msseg_ros.core.params import Param, ParamError, ParamType, ParamView, Schema

_ROS_TYPE = {
    ParamType.BOOL: RosType.PARAMETER_BOOL,
    ParamType.INT: RosType.PARAMETER_INTEGER,
    ParamType.FLOAT: RosType.PARAMETER_DOUBLE,
    ParamType.STR: RosType.PARAMETER_STRING,
    ParamType.BOOL_ARRAY: RosType.PARAMETER_BOOL_ARRAY,
    ParamType.INT_ARRAY: RosType.PARAMETER_INTEGER_ARRAY,
    ParamType.FLOAT_ARRAY: RosType.PARAMETER_DOUBLE_ARRAY,
    ParamType.STR_ARRAY: RosType.PARAMETER_STRING_ARRAY,
}


def descriptor(p: Param) -> ParameterDescriptor:
    """The ROS descriptor of one schema parameter."""
    d = ParameterDescriptor(
        name=p.name,
        type=_ROS_TYPE[p.type],
        description=p.description,
        read_only=p.read_only,
        dynamic_typing=False,
    )
    constraints = p.bounds_text()
    if constraints:
        d.additional_constraints = constraints
    if p.min is not None and p.max is not None and not p.type.is_array:
        if p.type is ParamType.INT:
            d.integer_range = [IntegerRange(from_value=int(p.min), to_value=int(p.max), step=0)]
        elif p.type is ParamType.FLOAT:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(p.min), to_value=float(p.max), step=0.0)
            ]
    return d


def _plain(value: Any) -> Any:
    """ROS array values arrive as array.array or numpy; the schema wants lists."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    return list(value)


#: A hook that may veto a change: gets (proposed full values, changed subset) and
#: returns an error string, or None to accept. Runs after the schema checks.
ChangeHook = Callable[[Mapping[str, Any], Mapping[str, Any]], "str | None"]


class SchemaParameters:
    """The declared parameters of one node, validated on every set.

    Attributes:
        values: the current flat values (updated only after a set is accepted).
        view: typed attribute access, e.g. ``params.view.model.type``.
    """

    def __init__(self, node: Node, schema: Schema, on_change: ChangeHook | None = None) -> None:
        self.node = node
        self.schema = schema
        self.on_change = on_change
        self.rejected = 0
        self.values: dict[str, Any] = schema.defaults()
        self._declaring = True
        node.add_on_set_parameters_callback(self._on_set)
        for p in schema:
            if p.type.is_array and not p.default:
                # rclpy infers BYTE_ARRAY from an empty list: declare the type explicitly
                ptype = Parameter.Type(_ROS_TYPE[p.type])
                node.declare_parameter(p.name, ptype, descriptor(p))
                try:
                    node.get_parameter(p.name)  # an override from a file or the command line
                except ParameterUninitializedException:
                    if not p.read_only:  # a read-only one stays unset in ROS: its value is []
                        node.set_parameters([Parameter(p.name, ptype, [])])
            else:
                node.declare_parameter(p.name, p.default, descriptor(p))
        # Overrides from a file passed the callback one at a time; check the combination.
        self.values = {p.name: self._current(p) for p in schema}
        schema.check_all(self.values)
        self._declaring = False
        self.view: ParamView = ParamView.from_flat(self.values)

    def _current(self, p: Param) -> Any:
        try:
            return _plain(self.node.get_parameter(p.name).value)
        except ParameterUninitializedException:
            return p.default

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        changed: dict[str, Any] = {}
        try:
            for param in params:
                if self._declaring and param.value is None:
                    continue  # a typed declaration without a value yet; set right after
                if param.name not in self.schema:
                    raise ParamError(f"node {self.schema.node!r} has no parameter {param.name!r}")
                changed[param.name] = self.schema[param.name].validate(_plain(param.value))
            proposed = {**self.values, **changed}
            if not self._declaring:
                self.schema.check_all(proposed)
                if self.on_change is not None:
                    reason = self.on_change(proposed, changed)
                    if reason:
                        raise ParamError(reason)
        except ParamError as exc:
            self.rejected += 1
            self.node.get_logger().warning(f"parameter change refused: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        if not self._declaring:
            self.values = proposed
            self.view = ParamView.from_flat(self.values)
        return SetParametersResult(successful=True)
