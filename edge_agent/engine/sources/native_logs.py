"""Quiet the native video libraries. OpenCV and FFmpeg print to the process's stderr on every failed read or
reconnect attempt (``[h264 @ 0x...] no frame!``, ``[tcp @ 0x...] Connection refused``, ``[ WARN:0@5.3] global
cap.cpp``), dozens of lines a minute while a camera is away, in no format a log collector can parse. The capture
already logs one line per state change with the reason, so the raw lines add nothing but noise.

An operator debugging a camera can still get them back: a value already set in the environment for
``OPENCV_FFMPEG_LOGLEVEL`` (FFmpeg's av_log level) or ``OPENCV_LOG_LEVEL`` is left alone."""

from __future__ import annotations

import os
import threading

import cv2

_FFMPEG_QUIET = "-8"  # AV_LOG_QUIET
_lock = threading.Lock()
_done = False


def quiet_native_video_logs() -> None:
    """Idempotent; call before the first ``cv2.VideoCapture``: FFmpeg's level is read when its backend loads."""
    global _done
    with _lock:
        if _done:
            return
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", _FFMPEG_QUIET)
        if "OPENCV_LOG_LEVEL" not in os.environ:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        _done = True
