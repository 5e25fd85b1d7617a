"""One registry for pluggable parts (camera sources, inference backends, post-processors).

Each plug-in module registers itself with ``@SOURCES.register("key")``; a plug-in whose optional dependency
is missing is logged and skipped by :func:`import_plugins`, never fatal (the way Frigate loads detectors)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class PluginTable(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if key in self._items and self._items[key] is not item:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = item
            return item

        return decorator

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {key!r} (known: {known})") from None

    def keys(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


def import_plugins(modules: Iterable[str]) -> list[str]:
    """Import plug-in modules by name; return those that loaded. Missing optional dependencies are logged."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.info("plug-in %s not available: %s", name, exc)
            continue
        loaded.append(name)
    return loaded
