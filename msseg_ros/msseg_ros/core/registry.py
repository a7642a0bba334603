"""A small named registry: models, frame sources and robot backends are chosen by a string.

Example::

    SEGMENTERS = Registry("segmenter", required=("__call__",))

    @SEGMENTERS.register("classic")
    class ClassicSegmenter: ...

    SEGMENTERS.add_lazy("maskrcnn", "msseg_ros.core.segmentation.maskrcnn:MaskRCNNSegmenter")

    SEGMENTERS.get("classic")  # -> ClassicSegmenter

A lazy entry names its module and attribute; the module is imported by the first
:meth:`Registry.get`. So listing the names (a CLI's choices, a parameter's allowed
values) never imports torch.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from msseg_ros.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or callables).

    Args:
        kind: what the entries are, used in error messages (e.g. ``"frame source"``).
        required: attribute names every entry must provide; checked at registration
            (for a lazy entry: when it is first loaded).
    """

    def __init__(self, kind: str, required: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.required = required
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; duplicate names are refused."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def _check_name(self, name: str) -> None:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries or name in self._lazy:
            by = self._entries.get(name, self._lazy.get(name))
            raise RegistryError(f"{self.kind} {name!r} is already registered (by {by!r})")

    def _check_attributes(self, name: str, obj: Any) -> None:
        missing = [attr for attr in self.required if not hasattr(obj, attr)]
        if missing:
            raise RegistryError(
                f"{self.kind} {name!r} lacks required attribute(s) {', '.join(missing)}"
            )

    def add(self, name: str, obj: T) -> None:
        self._check_name(name)
        self._check_attributes(name, obj)
        self._entries[name] = obj

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``name`` as ``"package.module:attribute"``, imported on first use."""
        self._check_name(name)
        module, sep, attr = target.partition(":")
        if not sep or not module or not attr:
            raise RegistryError(f"{self.kind} {name!r}: target {target!r} is not 'module:attribute'")
        self._lazy[name] = target

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        if name in self._lazy:
            return self._load(name)
        known = ", ".join(self.names()) or "none"
        raise RegistryError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def _load(self, name: str) -> T:
        module, _, attr = self._lazy[name].partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(f"{self.kind} {name!r} cannot be loaded from {self._lazy[name]!r}: {exc}") from exc
        self._check_attributes(name, obj)
        del self._lazy[name]
        self._entries[name] = obj
        return obj

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a plugin being unloaded; tests that register their own)."""
        if name not in self:
            raise RegistryError(f"unknown {self.kind} {name!r}; nothing to remove")
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    def names(self) -> list[str]:
        return sorted([*self._entries, *self._lazy])

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries) + len(self._lazy)
