"""Camera sources: one registry, one spec string per camera.

``open_source(spec)`` builds (and checks) a source without opening it; the capture thread opens it, or call
``source.open()`` yourself to fail fast (open() is idempotent, so the capture thread then reuses it)."""

from __future__ import annotations

from edge_agent.errors import SourceError
from edge_agent.engine.plugins import import_plugins
from edge_agent.engine.sources.base import SOURCES, DeviceGone, Frame, FrameSource, SourcePlugin, SourceProperties

PLUGIN_MODULES = (
    "edge_agent.engine.sources.synthetic",
    "edge_agent.engine.sources.video_file",
    "edge_agent.engine.sources.v4l2",
    "edge_agent.engine.sources.rtsp",
)
import_plugins(PLUGIN_MODULES)

__all__ = [
    "SOURCES", "DeviceGone", "Frame", "FrameSource", "SourcePlugin", "SourceProperties", "open_source", "plugin_for",
]  # fmt: skip


def plugin_for(spec: str) -> str:
    """The registry key that handles ``spec``: an explicit ``key:...`` prefix, else recognised by its form."""
    spec = spec.strip()
    lowered = spec.lower()
    if lowered == "synthetic" or lowered.startswith("synthetic:"):
        return "synthetic"
    if lowered.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if spec.startswith(("/dev/", "usb:", "serial:", "path:", "v4l2:")):
        return "v4l2"
    if lowered.startswith("file:"):
        return "file"
    if "://" in spec:
        raise SourceError(f"unsupported source URL scheme in {spec.split('://', 1)[0]}://... (use rtsp://)")
    prefix = spec.split(":", 1)[0]
    if ":" in spec and prefix in SOURCES and len(prefix) > 1:  # a third-party plug-in's own "key:..." spec
        return prefix
    return "file"


def open_source(spec: str, **options: object) -> FrameSource:
    """Build the source for ``spec`` (synthetic[:WxH[@FPS]], a video file, /dev/videoN, usb:N, serial:S,
    rtsp://...) with plug-in ``options`` (e.g. loop=True, realtime=False, width=1280). Raises SourceError."""
    if not spec or not spec.strip():
        raise SourceError("empty source spec: use synthetic, a video file, /dev/videoN, usb:N or rtsp://...")
    key = plugin_for(spec)
    try:
        plugin = SOURCES.get(key)
    except KeyError as exc:
        raise SourceError(f"camera source {key!r} is not available here: {exc.args[0]}") from None
    try:
        return plugin.from_spec(spec.strip(), **options)
    except TypeError as exc:  # an option the plug-in does not take
        raise SourceError(f"bad options for {key} source: {exc}") from None
