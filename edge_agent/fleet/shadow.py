"""Shadow evaluation: the new model runs beside the serving one on the same live frames before any switch.

A sample check proves a model runs; it says nothing of whether it still sees what the current one sees. So a
rollout may ask (the desired twin's ``properties["shadow"]`` = ``{window_s, min_agreement}``) for the new model
to be run for ``window_s`` seconds on the frames the current one is serving, and compared: top-1 class for
classification, boxes for detection (a box agrees when one of the other side's boxes of the same class overlaps
it with IoU >= 0.5; a frame's agreement is matched pairs over the larger box count, 1.0 when both are empty), with
the latency of both. The current model keeps serving throughout. The shadow never holds the live pipeline up:
the pipeline's sink hands a frame over only when the shadow worker is idle, so on a slow device the shadow
sees a sample of the frames (``skipped`` counts the rest). The comparison decides; the host acts on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.engine.interface import StagedModel

log = logging.getLogger(__name__)
IOU_MATCH = 0.5
MAX_WINDOW_S = 3600.0


@dataclass(frozen=True)
class ShadowPolicy:
    """What the rollout asked for; None from :meth:`from_properties` when it asked for no shadow run."""

    window_s: float
    min_agreement: float

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any] | None) -> "ShadowPolicy | None":
        """The desired twin's ``shadow`` block; a malformed one is refused (ValueError), not ignored: an
        operator who asked for a comparison must not get a switch without one."""
        block = (properties or {}).get("shadow")
        if block is None:
            return None
        if not isinstance(block, Mapping):
            raise ValueError(f"properties.shadow must be an object, got {block!r}"[:200])
        window, agreement = block.get("window_s"), block.get("min_agreement", 0.0)
        if not _real(window) or not 0 < window <= MAX_WINDOW_S:
            raise ValueError(f"properties.shadow.window_s must be a number in (0, {MAX_WINDOW_S:g}], got {window!r}")
        if not _real(agreement) or not 0 <= agreement <= 1:
            raise ValueError(f"properties.shadow.min_agreement must be a number in [0, 1], got {agreement!r}")
        return cls(float(window), float(agreement))


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


# -- agreement ---------------------------------------------------------------------------------------------------
def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 for degenerate ones."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_agreement(current: Sequence[Any], new: Sequence[Any], threshold: float = IOU_MATCH) -> float:
    """Matched pairs over the larger count. Pairs are taken greedily, best IoU first, each box at most once, only
    within one class (``index``, else ``label``)."""
    if not current and not new:
        return 1.0
    pairs = sorted(((iou(a.box, b.box), i, j) for i, a in enumerate(current) for j, b in enumerate(new)
                    if _class_of(a) == _class_of(b)), reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    return len(used_a) / max(len(current), len(new))


def _class_of(item: Any) -> Any:
    index = getattr(item, "index", -1)
    return index if index is not None and index >= 0 else getattr(item, "label", None)


def frame_agreement(current: Sequence[Any], new: Sequence[Any]) -> float:
    """1.0 or 0.0 on the top-1 class for classification; :func:`box_agreement` for detections."""
    if any(hasattr(r, "box") for r in (*current, *new)):
        return box_agreement(current, new)
    if not current or not new:
        return 1.0 if not current and not new else 0.0
    return 1.0 if _class_of(current[0]) == _class_of(new[0]) else 0.0


# -- the run -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShadowResult:
    agreement: float | None
    frames: int
    skipped: int
    failed: int
    p50_ms_current: float | None
    p95_ms_current: float | None
    p50_ms_new: float | None
    p95_ms_new: float | None
    window_s: float
    min_agreement: float

    @property
    def reason(self) -> str | None:
        """Why the new model must not switch in; None when it may."""
        if self.failed:
            return f"shadow: the new model failed on {self.failed} live frame(s)"
        if self.agreement is None:
            return f"shadow: no live frame compared in {self.window_s:g}s"
        if self.agreement < self.min_agreement:
            return f"shadow agreement {self.agreement:.3f} < {self.min_agreement:g}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"agreement": self.agreement, "frames": self.frames, "skipped": self.skipped, "failed": self.failed,
                "p50_ms_current": self.p50_ms_current, "p95_ms_current": self.p95_ms_current,
                "p50_ms_new": self.p50_ms_new, "p95_ms_new": self.p95_ms_new, "min_agreement": self.min_agreement}


@dataclass
class ShadowRun:
    """One window: :meth:`offer` is the live pipeline's sink (never waits); :meth:`run` does the comparisons on
    the calling thread until the window is over (or ``cancel`` is set) and returns the verdict."""

    staged: StagedModel
    policy: ShadowPolicy
    on_frame: Callable[[], None] = lambda: None  # each comparison: the update is making progress
    cancel: threading.Event = field(default_factory=threading.Event)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _pending: Any = None
    _busy: bool = False
    _open: bool = True
    skipped: int = 0

    def offer(self, result: Any) -> None:
        """Take this frame if the shadow is idle; otherwise it is skipped (the live pipeline never waits)."""
        image = getattr(result, "image", None)
        with self._cond:
            if not self._open or image is None:
                return
            if self._busy or self._pending is not None:
                self.skipped += 1
                return
            self._pending = result
            self._cond.notify()

    def run(self, clock: Callable[[], float] = time.monotonic) -> ShadowResult:
        deadline = clock() + self.policy.window_s
        scores: list[float] = []
        current_ms: list[float] = []
        new_ms: list[float] = []
        failed = 0
        while not self.cancel.is_set():
            with self._cond:
                remaining = deadline - clock()
                if self._pending is None and remaining > 0:
                    self._cond.wait(min(remaining, 0.25))
                result, self._pending = self._pending, None
                self._busy = result is not None
            if result is None:
                if clock() >= deadline:
                    break
                continue
            try:
                outputs, elapsed_ms = self.staged.run(result.image)
                scores.append(frame_agreement(result.results, outputs))
                current_ms.append(float(result.inference_ms))
                new_ms.append(float(elapsed_ms))
            except Exception:  # noqa: BLE001 - whatever the runtime raises is the new model failing
                log.exception("the shadow model failed on frame %s", getattr(result, "frame_index", "?"))
                failed += 1
            finally:
                with self._cond:
                    self._busy = False
            self.on_frame()
        with self._cond:
            self._open = False
            self._pending = None
        return ShadowResult(round(float(np.mean(scores)), 4) if scores else None, len(scores), self.skipped,
                            failed, _pct(current_ms, 50), _pct(current_ms, 95), _pct(new_ms, 50), _pct(new_ms, 95),
                            self.policy.window_s, self.policy.min_agreement)


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None
