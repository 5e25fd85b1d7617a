"""Video files through OpenCV: read as fast as decoded (not live) or paced at the file's fps, optionally looping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from edge_agent.errors import EndOfStream, SourceError
from edge_agent.engine.sources.base import FALLBACK_PRIORITY, SOURCES, SourceProperties
from edge_agent.engine.sources.native_logs import quiet_native_video_logs
from edge_agent.engine.sources.pacing import Pacer


@SOURCES.register("file")
class VideoFileSource:
    """A file decoded by OpenCV. Without ``loop`` the end raises :class:`EndOfStream`; with it, reading wraps to
    the first frame. ``realtime=True`` plays it at its own fps and marks it live (frames may then be dropped)."""

    def __init__(
        self,
        path: str | Path,
        *,
        loop: bool = False,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f"video file not found: {self.path}")
        if not self.path.is_file():
            raise SourceError(f"video source {self.path} is not a file")
        self.loop, self.realtime = loop, realtime
        self.identity = f"file:{self.path.resolve()}"
        self._clock, self._sleep = clock, sleep
        self._cap: cv2.VideoCapture | None = None
        self._pacer: Pacer | None = None
        self._since_rewind = 0
        self._properties: SourceProperties | None = None

    priority: ClassVar[int] = FALLBACK_PRIORITY

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """``file:...``, and any other spec that is not a URL: asked last, it is the fallback for plain paths."""
        return spec.lower().startswith("file:") or "://" not in spec

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> VideoFileSource:
        options.pop("camera", None)
        path = spec[len("file:") :] if spec.startswith("file:") else spec
        return cls(path, **options)  # type: ignore[arg-type]

    def open(self) -> SourceProperties:
        if self._cap is not None and self._properties is not None:
            return self._properties
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        quiet_native_video_logs()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video file {self.path}: not a format OpenCV can decode")
        self._cap = cap
        self._since_rewind = 0
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self._pacer = Pacer(fps if fps > 0 else 30.0, clock=self._clock, sleep=self._sleep) if self.realtime else None
        self._properties = SourceProperties(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None,
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None,
            fps=fps or None,
            is_live=self.realtime,
            extra={"kind": "file", "frame_count": str(int(cap.get(cv2.CAP_PROP_FRAME_COUNT))), "loop": str(self.loop)},
        )
        return self._properties

    def read(self) -> np.ndarray:
        cap = self._cap
        if cap is None:
            raise SourceError(f"{self.identity} is not open")
        if self._pacer is not None:
            self._pacer.wait()
        ok, image = cap.read()
        if ok:
            self._since_rewind += 1
            return image
        if not self.loop:
            raise EndOfStream(f"end of video file {self.path} after {self._since_rewind} frames")
        if self._since_rewind == 0:
            raise SourceError(f"video file {self.path} has no decodable frames")
        self._rewind()
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        if not ok:
            raise SourceError(f"video file {self.path}: no frame after rewinding to the start")
        self._since_rewind = 1
        return image

    def _rewind(self) -> None:
        """Seek to frame 0; some containers refuse to seek, so reopen the file then."""
        assert self._cap is not None
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self.close()
            self.open()
        self._since_rewind = 0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._properties = None
