"""Small real video files written with OpenCV, for source and capture tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 64, 48


def write_video(path: Path, frames: int, *, fps: float = 10.0) -> Path:
    """An mp4v file whose frame i is filled with grey level 20*i (so tests can tell frames apart)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), "OpenCV could not create an mp4v writer"
    for i in range(frames):
        writer.write(np.full((HEIGHT, WIDTH, 3), 20 * i, np.uint8))
    writer.release()
    return path


def grey_level(image: np.ndarray) -> int:
    """Which frame of write_video() this is, by its mean brightness (mp4v is lossy, so rounded)."""
    return round(float(image.mean()) / 20)
