"""A small named registry: models, frame sources and robot backends are chosen by a string.

Example::

    SEGMENTERS = Registry("segmenter", required=("__call__",))

    @SEGMENTERS.register("classic")
    class ClassicSegmenter: ...

    SEGMENTERS.get("classic")  # -> ClassicSegmenter
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from msseg_ros.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or callables).

    Args:
        kind: what the entries are, used in error messages (e.g. ``"frame source"``).
        required: attribute names every entry must provide; checked at registration.
    """

    def __init__(self, kind: str, required: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.required = required
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; duplicate names are refused."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered (by {self._entries[name]!r})"
            )
        missing = [attr for attr in self.required if not hasattr(obj, attr)]
        if missing:
            raise RegistryError(
                f"{self.kind} {name!r} lacks required attribute(s) {', '.join(missing)}"
            )
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
