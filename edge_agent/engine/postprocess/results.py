"""What the pipeline hands to sinks: frozen values, cheap to pass between threads and to serialise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Classification:
    label: str
    score: float
    index: int


@dataclass(frozen=True)
class Detection:
    """``box`` is (x1, y1, x2, y2) in frame pixels; ``index`` is the class index."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    index: int = -1


@dataclass(frozen=True)
class Result:
    """One frame's outcome. ``captured_at`` is the frame's time.monotonic(); ``latency_ms`` runs from capture
    to the moment the result was handed to the sinks. ``image`` is the frame itself (BGR, by reference, for
    sinks that draw or store it); it is not part of the result's value or its dict/JSON form."""

    frame_index: int
    captured_at: float
    results: tuple[Classification | Detection, ...]
    inference_ms: float
    latency_ms: float
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def top(self) -> Classification | Detection | None:
        return self.results[0] if self.results else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frame_index": self.frame_index, "captured_at": self.captured_at,
                               "inference_ms": self.inference_ms, "latency_ms": self.latency_ms}
        out["results"] = [
            {"kind": "detection" if isinstance(r, Detection) else "classification", **asdict(r)}
            for r in self.results
        ]
        return out
