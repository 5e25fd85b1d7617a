"""``rtsp://`` (and ``rtsps://``) streams through OpenCV's FFMPEG backend, with credentials kept out of every
identity, log line and error message."""

from __future__ import annotations

import os
import threading
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np

from edge_agent.errors import SourceError
from edge_agent.engine.sources.base import DEFAULT_PRIORITY, SOURCES, SourceProperties
from edge_agent.engine.sources.native_logs import quiet_native_video_logs

SCHEMES = ("rtsp", "rtsps")
_SECRET_QUERY_KEYS = {"password", "passwd", "pass", "pwd", "user", "username", "token", "auth", "key", "secret"}
_ENV_LOCK = threading.Lock()  # OpenCV reads its FFMPEG options from the environment at open time


def redact_url(url: str) -> str:
    """``rtsp://admin:pw@cam:554/s?token=x`` -> ``rtsp://***@cam:554/s?token=***``. Safe on malformed input."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    if parts.username is not None or parts.password is not None:
        netloc = f"***@{netloc}"
    query = urlencode(
        [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def validate_rtsp_url(url: str) -> None:
    """Raise SourceError (naming the redacted URL) unless ``url`` is an rtsp(s) URL with a host and a valid port."""
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SourceError(f"invalid RTSP URL {safe}: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise SourceError(f"not an RTSP URL: {safe} (expected rtsp:// or rtsps://)")
    if not parts.hostname:
        raise SourceError(f"invalid RTSP URL {safe}: no host")
    if port == 0:
        raise SourceError(f"invalid RTSP URL {safe}: port 0")


@SOURCES.register("rtsp")
class RtspSource:
    """An IP camera. ``transport`` chooses RTSP over TCP (default: survives lossy Wi-Fi) or UDP; the timeouts
    bound how long a dead camera can block the capture thread before it reconnects."""

    def __init__(
        self,
        url: str,
        *,
        transport: str | None = "tcp",
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        validate_rtsp_url(url)
        if transport not in (None, "tcp", "udp"):
            raise SourceError(f"RTSP transport must be tcp or udp, got {transport!r}")
        self._url = url
        self.identity = redact_url(url)
        self.transport = transport
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._properties: SourceProperties | None = None

    priority: ClassVar[int] = DEFAULT_PRIORITY

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """``rtsp://`` and ``rtsps://`` URLs, the scheme in any case."""
        return spec.lower().startswith(tuple(f"{scheme}://" for scheme in SCHEMES))

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> RtspSource:
        options.pop("camera", None)
        return cls(spec, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"RtspSource({self.identity!r})"

    def open(self) -> SourceProperties:
        if self._cap is not None and self._properties is not None:
            return self._properties
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000),
        ]  # fmt: skip
        quiet_native_video_logs()
        with _ENV_LOCK:
            previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
            if self.transport is not None:
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.transport}"
            try:
                cap = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)
            finally:
                if previous is None:
                    os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                else:
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot connect to {self.identity}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self._properties = SourceProperties(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None,
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None,
            fps=fps or None,
            is_live=True,
            extra={"kind": "rtsp", "transport": self.transport or "default"},
        )
        return self._properties

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceError(f"{self.identity} is not open")
        ok, image = self._cap.read()
        if not ok:
            raise SourceError(f"stream {self.identity} stopped delivering frames")
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._properties = None
