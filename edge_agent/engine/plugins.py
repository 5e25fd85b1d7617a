"""One registry for pluggable parts (camera sources, inference backends, post-processors).

All three tables are declared the same way, so adding a fourth (or a plug-in to one) follows one pattern:

- the table lives in the package's ``base`` module (``sources/base.py: SOURCES``, ``backends/base.py:
  BACKENDS``, ``postprocess/base.py: POSTPROCESSORS``), beside the interface its plug-ins implement, so a plug-in
  module imports only ``base`` and never the package that loads it;
- each plug-in module registers its class or factory with ``@TABLE.register("key")``;
- the package's ``__init__`` lists its plug-in modules in one ``PLUGIN_MODULES`` tuple and loads them with
  :func:`import_plugins`. A plug-in whose optional dependency is missing (OpenVINO, OpenCV) is logged and
  skipped, never fatal (the way Frigate loads detectors); a missing module of our own is a bug and is raised.

What a plug-in knows about itself stays in the plug-in: a camera source says which spec strings it takes
(``accepts`` and ``priority``, see ``sources/base.py``), so the table that picks one never lists their forms."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from edgefleet.extras import is_missing_extra

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

    def unregister(self, key: str) -> T:
        """Take ``key`` out again (a plug-in that is unloaded, a test's own plug-in) and return what it was."""
        return self._items.pop(key)

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {key!r} (known: {known})") from None

    def keys(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """Every (key, plug-in) in the order they registered: the built-ins first, as their package loads them."""
        return list(self._items.items())

    def __contains__(self, key: object) -> bool:
        return key in self._items


def import_plugins(modules: Iterable[str]) -> list[str]:
    """Import plug-in modules by name; return those that loaded. A missing third-party dependency is logged and
    the plug-in skipped; an ImportError naming one of our own modules is raised, so a bug cannot pass for an
    optional runtime that is not installed."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if not is_missing_extra(exc):
                raise
            log.info("plug-in %s not available: %s", name, exc)
            continue
        loaded.append(name)
    return loaded
