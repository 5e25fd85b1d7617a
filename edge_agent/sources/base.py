"""The frame-source interface every camera plug-in implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


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
