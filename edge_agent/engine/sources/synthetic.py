"""``synthetic``: a deterministic moving test pattern with the frame number drawn in.

It stands in for a camera wherever none exists (tests, the demo, the fleet simulator, benchmarks): frame ``n`` of a
given size and seed is always the same image, and by default frames come at the stated fps like a live camera."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable
from typing import ClassVar

import cv2
import numpy as np

from edge_agent.errors import SourceError
from edge_agent.engine.sources.base import DEFAULT_PRIORITY, SOURCES, SourceProperties
from edge_agent.engine.sources.pacing import Pacer

_SPEC = re.compile(r"^synthetic(?::(?:(?P<w>\d+)x(?P<h>\d+))?(?:@(?P<fps>\d+(?:\.\d+)?))?)?$")
_NAME = re.compile(r"^synthetic:[A-Za-z][A-Za-z0-9_.-]*$")
_BARS = 8


def parse_synthetic_spec(spec: str) -> tuple[int | None, int | None, float | None]:
    """``synthetic``, ``synthetic:WxH``, ``synthetic:@FPS`` or ``synthetic:WxH@FPS`` -> (width, height, fps)."""
    m = _SPEC.match(spec.strip())
    if m is None:
        raise SourceError(
            f"bad synthetic source spec {spec!r}: expected synthetic, synthetic:WxH, synthetic:WxH@FPS or synthetic:NAME"
        )
    w, h, fps = m.group("w"), m.group("h"), m.group("fps")
    return (int(w) if w else None, int(h) if h else None, float(fps) if fps else None)


@SOURCES.register("synthetic")
class SyntheticSource:
    """Colour bars scrolling sideways, a bouncing white square and ``#n`` in the corner.

    ``realtime=False`` produces frames as fast as they are read and marks the source as not live, so a capture
    thread hands on every frame instead of dropping (useful to measure a pipeline's own throughput)."""

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        *,
        seed: int = 0,
        realtime: bool = True,
        identity: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if width < 16 or height < 16 or width > 8192 or height > 8192:
            raise SourceError(f"synthetic frame size {width}x{height} is out of range (16..8192 per side)")
        if not fps > 0:
            raise SourceError(f"synthetic fps must be positive, got {fps}")
        self.width, self.height, self.fps, self.seed, self.realtime = width, height, float(fps), seed, realtime
        suffix = f"/seed{seed}" if seed else ""
        self.identity = identity or f"synthetic:{width}x{height}@{self.fps:g}{suffix}"
        self._pacer = Pacer(self.fps, clock=clock, sleep=sleep)
        self._base = self._background()
        rng = np.random.default_rng(seed + 1)
        self._square_start = rng.integers(0, 1 << 16, size=2)
        self._next = 0
        self._open = False

    priority: ClassVar[int] = DEFAULT_PRIORITY

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """``synthetic`` and ``synthetic:...``, in any case."""
        lowered = spec.lower()
        return lowered == "synthetic" or lowered.startswith("synthetic:")

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> SyntheticSource:
        if _NAME.match(spec.strip()):  # synthetic:NAME - a named camera (simulated fleets) with its own pattern
            name = spec.strip().split(":", 1)[1]
            options.setdefault("seed", zlib.crc32(name.encode()))
            options.setdefault("identity", spec.strip())
            options.pop("camera", None)
            return cls(**options)  # type: ignore[arg-type]
        w, h, fps = parse_synthetic_spec(spec)
        kwargs: dict[str, object] = {k: v for k, v in (("width", w), ("height", h), ("fps", fps)) if v is not None}
        kwargs.update(options)
        kwargs.pop("camera", None)  # the camera manager passes udev facts; a test pattern has none
        return cls(**kwargs)  # type: ignore[arg-type]

    def _background(self) -> np.ndarray:
        """Two widths of colour bars under a vertical brightness ramp, so frame n is a cheap slice of it."""
        palette = np.random.default_rng(self.seed).integers(40, 256, size=(_BARS, 3)).astype(np.float32)
        columns = (np.arange(2 * self.width) * _BARS // self.width) % _BARS
        ramp = np.linspace(1.0, 0.35, self.height, dtype=np.float32)
        return (ramp[:, None, None] * palette[columns][None, :, :]).astype(np.uint8)

    def render(self, n: int) -> np.ndarray:
        """Frame ``n``: a pure function of (size, seed, n)."""
        shift = (n * max(1, self.width // 64)) % self.width
        image = self._base[:, shift : shift + self.width].copy()
        side = max(4, min(self.width, self.height) // 6)
        x = _bounce(int(self._square_start[0]) + 3 * n, self.width - side)
        y = _bounce(int(self._square_start[1]) + 2 * n, self.height - side)
        image[y : y + side, x : x + side] = 255
        scale = max(0.3, self.height / 320)
        origin = (max(2, self.width // 80), self.height - max(4, self.height // 40))
        text = f"#{n}"
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(2, int(4 * scale)), cv2.LINE_AA)
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(scale)), cv2.LINE_AA)
        return image

    def open(self) -> SourceProperties:
        self._open = True
        self._pacer.reset()
        return SourceProperties(
            width=self.width,
            height=self.height,
            fps=self.fps,
            is_live=self.realtime,
            extra={"kind": "synthetic", "seed": str(self.seed)},
        )

    def read(self) -> np.ndarray:
        if not self._open:
            raise SourceError(f"{self.identity} is not open")
        if self.realtime:
            self._pacer.wait()
        image = self.render(self._next)
        self._next += 1
        return image

    def close(self) -> None:
        self._open = False


def _bounce(position: int, span: int) -> int:
    """Triangle wave over [0, span]: the square moves back and forth instead of wrapping around."""
    if span <= 0:
        return 0
    p = position % (2 * span)
    return p if p <= span else 2 * span - p
