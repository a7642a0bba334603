"""The parameter schema mechanism (no ROS).

A :class:`Param` is one ROS-typed parameter with its bounds; a :class:`Schema` is the
ordered set of a node's parameters. Values are validated strictly as ROS would type
them: a YAML ``1`` is an integer and is refused for a ``float`` parameter, because
rclpy would refuse it too (`InvalidParameterTypeException`).
"""
from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from msseg_ros.core.errors import ConfigError


class ParamError(ConfigError):
    """A parameter value is refused; the message names the parameter, value and reason."""


class ParamType(enum.Enum):
    """The ROS parameter types we use (rcl_interfaces/ParameterType)."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL_ARRAY = "bool[]"
    INT_ARRAY = "int[]"
    FLOAT_ARRAY = "float[]"
    STR_ARRAY = "str[]"

    @property
    def is_array(self) -> bool:
        return self.value.endswith("[]")

    @property
    def element(self) -> ParamType:
        return ParamType(self.value[:-2]) if self.is_array else self


def _check_scalar(kind: ParamType, value: Any, *, strict: bool) -> Any:
    """Return ``value`` as ``kind`` or raise TypeError with a short reason."""
    if kind is ParamType.BOOL:
        if isinstance(value, bool):
            return value
    elif kind is ParamType.INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is ParamType.FLOAT:
        if isinstance(value, float):
            return value
        if not strict and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    elif kind is ParamType.STR:
        if isinstance(value, str):
            return value
    raise TypeError(f"expected {kind.value}, got {type(value).__name__}")


@dataclass(frozen=True)
class Param:
    """One parameter.

    Args:
        name: dotted ROS name, e.g. ``"model.type"``.
        type: the ROS type.
        default: the default value (must itself be valid).
        description: what it is, with its unit.
        min, max: inclusive numeric bounds (for arrays, bounds of every element).
        choices: allowed values (strings or numbers).
        length: exact array length, or None for any.
        read_only: refused at run time once declared.
        check: extra validator; returns an error string or None.
    """

    name: str
    type: ParamType
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    length: int | None = None
    read_only: bool = False
    check: Callable[[Any], str | None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate(self.default)  # a schema with a bad default is a programming error

    def validate(self, value: Any, *, strict: bool = True) -> Any:
        """Return the value, type-checked (and int->float coerced unless ``strict``).

        Raises:
            ParamError: naming the parameter, the value and the reason.
        """
        try:
            out = self._validate(value, strict=strict)
        except (TypeError, ValueError) as exc:
            raise ParamError(f"parameter {self.name!r}: value {value!r} refused: {exc}") from None
        return out

    def _validate(self, value: Any, *, strict: bool) -> Any:
        if self.type.is_array:
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"expected {self.type.value}, got {type(value).__name__}")
            items = [_check_scalar(self.type.element, v, strict=strict) for v in value]
            if self.length is not None and len(items) != self.length:
                raise ValueError(f"expected {self.length} elements, got {len(items)}")
            for item in items:
                self._check_bounds(item)
            out: Any = items
        else:
            out = _check_scalar(self.type, value, strict=strict)
            self._check_bounds(out)
        if self.check is not None:
            reason = self.check(out)
            if reason:
                raise ValueError(reason)
        return out

    def _check_bounds(self, v: Any) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("must be finite")
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}")
        if self.min is not None and v < self.min:
            raise ValueError(f"must be >= {self.min}")
        if self.max is not None and v > self.max:
            raise ValueError(f"must be <= {self.max}")

    def bounds_text(self) -> str:
        parts = []
        if self.choices is not None:
            parts.append("{" + ", ".join(map(str, self.choices)) + "}")
        if self.min is not None or self.max is not None:
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            parts.append(f"[{lo}, {hi}]")
        if self.length is not None:
            parts.append(f"length {self.length}")
        if self.read_only:
            parts.append("read-only")
        return ", ".join(parts)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted names, as ROS does for YAML parameter files."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


class Schema:
    """The ordered, named set of one node's parameters.

    Args:
        node: the node name the schema belongs to.
        params: its parameters; names must be unique.
        checks: cross-parameter validators taking the full value dict, returning an
            error string or None (e.g. ``overlap_lines < frame_lines``).
    """

    def __init__(
        self,
        node: str,
        params: Iterable[Param],
        checks: Iterable[Callable[[Mapping[str, Any]], str | None]] = (),
    ) -> None:
        self.node = node
        self.params: dict[str, Param] = {}
        for p in params:
            if p.name in self.params:
                raise ValueError(f"schema {node!r}: parameter {p.name!r} declared twice")
            self.params[p.name] = p
        self.checks = tuple(checks)
        self.check_all(self.defaults())

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params.values())

    def __getitem__(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            raise ParamError(f"node {self.node!r} has no parameter {name!r}") from None

    def extend(self, *others: Schema) -> Schema:
        """A new schema with these parameters plus those of ``others`` (shared groups)."""
        params = list(self.params.values())
        checks = list(self.checks)
        for o in others:
            params.extend(o.params.values())
            checks.extend(o.checks)
        return Schema(self.node, params, checks)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params.values()}

    def default(self, name: str) -> Any:
        """The declared default of ``name``: what a core dataclass field of the same
        setting defaults to, so that the schema stays the one source."""
        return self[name].default

    def check(self, name: str, value: Any) -> Any:
        """``value`` validated against ``name``'s type and bounds (ParamError naming it)."""
        return self[name].validate(value, strict=False)

    def validate(self, values: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
        """Validate a flat dict of overrides; unknown names are refused. Returns the full set."""
        merged = self.defaults()
        for name, value in values.items():
            merged[name] = self[name].validate(value, strict=strict)
        self.check_all(merged)
        return merged

    def check_all(self, values: Mapping[str, Any]) -> None:
        for check in self.checks:
            reason = check(values)
            if reason:
                raise ParamError(f"node {self.node!r}: {reason}")

    def view(self, values: Mapping[str, Any]) -> ParamView:
        return ParamView.from_flat(values)


class ParamView:
    """Read-only typed attribute access to a flat parameter dict: ``view.model.type``."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> ParamView:
        root: dict[str, Any] = {}
        for name, value in values.items():
            node = root
            *groups, leaf = name.split(".")
            for g in groups:
                node = node.setdefault(g, {})
            node[leaf] = value

        def build(d: dict[str, Any]) -> ParamView:
            return cls({k: build(v) if isinstance(v, dict) else v for k, v in d.items()})

        return build(root)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"no parameter or group {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("parameters are read-only; set them through ROS")

    def __repr__(self) -> str:
        return f"ParamView({self._data!r})"
