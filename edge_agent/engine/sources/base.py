"""The frame-source interface every camera plug-in implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from edge_agent.errors import SourceError
from edge_agent.engine.plugins import PluginTable


@dataclass(frozen=True)
class Frame:
    """One captured frame. ``image`` is HxWx3 uint8 BGR (OpenCV's order); ``index`` counts frames read from
    this source since the agent started (monotonic across reconnects); ``captured_at`` is time.monotonic()."""

    image: np.ndarray
    index: int
    captured_at: float
    source_id: str


@dataclass(frozen=True)
class SourceProperties:
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    is_live: bool = True
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class FrameSource(Protocol):
    """``identity`` is stable across reboots and re-plugging (a serial, a redacted URL, a file path)."""

    identity: str

    def open(self) -> SourceProperties: ...

    def read(self) -> np.ndarray:
        """Return the next HxWx3 uint8 BGR image; raise SourceError (or EndOfStream) on failure."""
        ...

    def close(self) -> None: ...


class DeviceGone(SourceError):
    """The camera's device node is not there (unplugged, or never connected): wait for it rather than retry."""


DEFAULT_PRIORITY = 0
FALLBACK_PRIORITY = -100
"""The file source's: it takes any spec that is not a URL, so every other plug-in is asked first."""


class SourcePlugin(Protocol):
    """What a registered plug-in is: a class that builds a source from its spec string, and says which spec
    strings it takes, so :func:`~edge_agent.engine.sources.plugin_for` asks the plug-ins instead of knowing their
    forms. ``accepts`` and ``priority`` are optional for third-party plug-ins: without ``accepts`` a plug-in is
    reached by its explicit ``key:...`` prefix alone; ``priority`` (default :data:`DEFAULT_PRIORITY`) orders
    the asking, highest first, plug-ins of equal priority in the order they registered (built-ins first)."""

    priority: ClassVar[int]

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """Whether ``spec`` (stripped) is one of this plug-in's forms. Cheap and side-effect free: no I/O."""
        ...

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> FrameSource: ...


SOURCES: PluginTable[type[SourcePlugin]] = PluginTable("camera source")
"""Every camera plug-in registers here with ``@SOURCES.register("key")``; :func:`open_source` picks by spec."""
