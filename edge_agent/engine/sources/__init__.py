"""Camera sources: one registry, one spec string per camera; each plug-in says which specs it takes.

``open_source(spec)`` builds (and checks) a source without opening it; the capture thread opens it, or call
``source.open()`` yourself to fail fast (open() is idempotent, so the capture thread then reuses it)."""

from __future__ import annotations

from edge_agent.errors import SourceError
from edge_agent.engine.plugins import import_plugins
from edge_agent.engine.sources.base import (
    DEFAULT_PRIORITY, FALLBACK_PRIORITY, SOURCES, DeviceGone, Frame, FrameSource, SourcePlugin, SourceProperties,
)

PLUGIN_MODULES = (
    "edge_agent.engine.sources.synthetic",
    "edge_agent.engine.sources.video_file",
    "edge_agent.engine.sources.v4l2",
    "edge_agent.engine.sources.rtsp",
)
import_plugins(PLUGIN_MODULES)

__all__ = [
    "DEFAULT_PRIORITY", "FALLBACK_PRIORITY", "SOURCES", "DeviceGone", "Frame", "FrameSource", "SourcePlugin",
    "SourceProperties", "open_source", "plugin_for",
]  # fmt: skip


def plugin_for(spec: str) -> str:
    """The key of the plug-in that takes ``spec``: the one an explicit ``key:...`` prefix names, else the first
    whose ``accepts`` says yes, highest ``priority`` first (the file source, lowest, takes any path). A URL
    nobody takes is refused here, rather than being opened as a file."""
    spec = spec.strip()
    prefix = spec.split(":", 1)[0]
    if ":" in spec and len(prefix) > 1 and prefix in SOURCES:  # one letter is a Windows drive, as in C:video.mp4
        return prefix
    ranked = sorted(SOURCES.items(), key=lambda item: -getattr(item[1], "priority", DEFAULT_PRIORITY))
    for key, plugin in ranked:
        accepts = getattr(plugin, "accepts", None)
        if accepts is not None and accepts(spec):
            return key
    if "://" in spec:
        raise SourceError(f"unsupported source URL scheme in {spec.split('://', 1)[0]}://... (use rtsp://)")
    raise SourceError(f"no camera source takes {spec!r} (loaded: {', '.join(SOURCES.keys()) or 'none'})")


def open_source(spec: str, **options: object) -> FrameSource:
    """Build the source for ``spec`` (synthetic[:WxH[@FPS]], a video file, /dev/videoN, usb:N, serial:S,
    rtsp://...) with plug-in ``options`` (e.g. loop=True, realtime=False, width=1280). Raises SourceError."""
    if not spec or not spec.strip():
        raise SourceError("empty source spec: use synthetic, a video file, /dev/videoN, usb:N or rtsp://...")
    key = plugin_for(spec)
    plugin = SOURCES.get(key)  # plugin_for answers only with a registered key
    try:
        return plugin.from_spec(spec.strip(), **options)
    except TypeError as exc:  # an option the plug-in does not take
        raise SourceError(f"bad options for {key} source: {exc}") from None
