"""Drawing results on frames, and a sink that writes them to a video file (``agent infer --save-video``)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import ConfigError
from edge_agent.engine.postprocess.results import Classification, Detection, Result

log = logging.getLogger(__name__)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_COLOURS = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (211, 188, 0), (255, 149, 0), (255, 55, 12), (236, 24, 0)]


def colour(index: int) -> tuple[int, int, int]:
    return _COLOURS[index % len(_COLOURS)]


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, fg=(255, 255, 255)) -> None:
    thickness = max(1, int(round(scale * 2)))
    cv2.putText(image, text, org, _FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, _FONT, scale, fg, thickness, cv2.LINE_AA)


def draw(image: np.ndarray, result: Result, status: str | None = None) -> np.ndarray:
    """Draw ``result`` (boxes with labels, or the top classes) and an optional status line onto ``image`` in
    place; return it."""
    h, w = image.shape[:2]
    scale = max(0.35, min(w, h) / 800)
    line = int(28 * scale) + 4
    y = line
    for item in result.results:
        if isinstance(item, Detection):
            x1, y1, x2, y2 = (int(round(v)) for v in item.box)
            c = colour(item.index)
            cv2.rectangle(image, (x1, y1), (x2, y2), c, max(1, int(2 * scale)))
            _text(image, f"{item.label} {item.score:.2f}", (x1 + 2, max(line, y1 - 4)), scale, c)
        elif isinstance(item, Classification):
            _text(image, f"{item.label} {item.score:.2f}", (6, y), scale)
            y += line
    if status:
        _text(image, status, (6, h - 8), scale * 0.8)
    return image


class VideoSink:
    """Writes every result's frame, annotated, to ``path`` (mp4v for .mp4, MJPG for .avi). Opens on the first
    frame, so the size is the camera's; frames of another size are resized to it."""

    def __init__(self, path: Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise ConfigError(f"--save-video needs a .mp4, .avi or .mkv file name, got {self.path.name}")
        if not self.path.parent.is_dir():
            raise ConfigError(f"cannot save video: folder {self.path.parent} does not exist")
        self.fps = fps if fps and fps > 0 else 30.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def __call__(self, result: Result) -> None:
        if result.image is None:
            return
        image = draw(result.image.copy(), result, f"#{result.frame_index}  {result.latency_ms:.1f} ms")
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, self._size)
            if not self._writer.isOpened():
                raise ConfigError(f"OpenCV cannot write video to {self.path}")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
