"""One camera kept running across unplug/replug: a capture thread plus a hot-plug watcher.

The camera is tracked by its identity (serial, or by-path id). When it disappears the capture waits and an
event is reported; when a device with the same identity appears, at any /dev node, the capture reopens on it and
frame indexes keep counting. The agent never restarts for it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.engine.capture import CaptureThread
from edge_agent.engine.capture_state import CaptureStats, ReconnectPolicy
from edge_agent.engine.discovery.hotplug import DeviceEventSource, HotplugWatcher
from edge_agent.engine.discovery.info import CameraInfo
from edge_agent.errors import SourceError
from edge_agent.engine.sources import Frame, FrameSource, open_source, plugin_for

log = logging.getLogger(__name__)
SourceFactory = Callable[[str, CameraInfo | None], FrameSource]
_USB = re.compile(r"^usb:(\d+)$")


@dataclass(frozen=True)
class CameraEvent:
    """Something to report upstream: ``camera_removed``, ``camera_returned``, ``hotplug_unavailable``."""

    name: str
    camera_id: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_event_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``edgefleet.protocol.Event`` (kind="camera")."""
        return {"kind": "camera", "camera_id": self.camera_id, "message": self.message,
                "data": {"event": self.name, **self.data}}  # fmt: skip


def default_source_factory(spec: str, camera: CameraInfo | None) -> FrameSource:
    return open_source(spec, camera=camera) if camera is not None else open_source(spec)


def _udev_cameras() -> list[CameraInfo]:
    try:
        from edge_agent.engine.discovery.udev import list_cameras

        return list_cameras()
    except Exception as exc:  # noqa: BLE001 - no pyudev/udev: devices are then opened by /dev path only
        log.info("cannot list cameras through udev: %s", exc)
        return []


class CameraManager:
    """``CameraManager(spec).start()``, then ``get_latest()`` as from a CaptureThread. ``watch`` (default: on for
    local cameras or when a ``monitor`` is given) enables hot-plug; ``source_factory(spec_or_devnode, camera)``
    builds sources (tests map /dev nodes to synthetic sources); ``cameras`` lists udev's cameras now."""

    def __init__(
        self,
        spec: str,
        *,
        source_factory: SourceFactory = default_source_factory,
        monitor: DeviceEventSource | None = None,
        watch: bool | None = None,
        context: Any = None,
        cameras: Callable[[], list[CameraInfo]] = _udev_cameras,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        on_state: Callable[[str, str], None] | None = None,
        on_event: Callable[[CameraEvent], None] | None = None,
        drop_frames: bool | None = None,
    ) -> None:
        self.spec = spec
        self._factory, self._monitor, self._context, self._cameras = source_factory, monitor, context, cameras
        self._watch = watch if watch is not None else (monitor is not None or plugin_for(spec) == "v4l2")
        self._reconnect, self._on_state, self._on_event, self._drop_frames = reconnect, on_state, on_event, drop_frames
        self.identity: str | None = None
        self.devnode: str | None = None
        self.capture: CaptureThread | None = None
        self.watcher: HotplugWatcher | None = None

    def start(self) -> CameraManager:
        known = self._cameras() if plugin_for(self.spec) == "v4l2" else []
        camera = _match(self.spec, known)
        source = self._factory(self.spec, camera)
        self.identity = source.identity
        self.devnode = camera.devnode if camera else (self.spec if self.spec.startswith("/dev/") else None)
        self.capture = CaptureThread(source, reconnect=self._reconnect, on_state=self._on_state,
                                     drop_frames=self._drop_frames)  # fmt: skip
        if self._watch:
            self.watcher = HotplugWatcher(self._added, self._removed, self._monitor, context=self._context, known=known)
            try:
                self.watcher.start()
            except (ImportError, OSError) as exc:
                self.watcher = None
                self._emit("hotplug_unavailable", f"hot-plug disabled: {exc}", {})
        self.capture.start()
        return self

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.capture is not None:
            self.capture.stop()

    def __enter__(self) -> CameraManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        return self.capture.state if self.capture else "idle"

    def stats(self) -> CaptureStats:
        assert self.capture is not None, "start() first"
        return self.capture.stats()

    # what the pipeline reads from a capture, so a CameraManager can stand in for a CaptureThread
    @property
    def captured(self) -> int:
        return self.capture.captured if self.capture else 0

    @property
    def dropped(self) -> int:
        return self.capture.dropped if self.capture else 0

    @property
    def finished(self) -> bool:
        return self.capture.finished if self.capture else False

    def get_latest(self, timeout: float, after_index: int | None = None) -> Frame | None:
        assert self.capture is not None, "start() first"
        return self.capture.get_latest(timeout, after_index)

    def _is_ours(self, info: CameraInfo) -> bool:
        return info.identity == self.identity or (self.devnode is not None and info.devnode == self.devnode
                                                  and not info.serial)  # fmt: skip

    def _removed(self, info: CameraInfo) -> None:
        if self.capture is None or not self._is_ours(info):
            return
        message = f"camera {self.identity} removed ({info.devnode}); waiting for it to come back"
        self.capture.pause_for_device(message)
        self._emit("camera_removed", message, {"devnode": info.devnode, "serial": info.serial})

    def _added(self, info: CameraInfo) -> None:
        if self.capture is None:
            return
        if info.identity != self.identity:
            log.info("ignoring camera %s at %s: this pipeline runs %s", info.identity, info.devnode, self.identity)
            return
        try:
            source = self._factory(info.devnode, info)
        except SourceError as exc:
            self._emit("camera_error", f"camera {self.identity} is back at {info.devnode} but: {exc}", {})
            return
        self.devnode = info.devnode
        message = f"camera {self.identity} is back at {info.devnode}"
        self.capture.resume(source, message)
        self._emit("camera_returned", message, {"devnode": info.devnode, "serial": info.serial})

    def _emit(self, name: str, message: str, data: dict[str, Any]) -> None:
        log.info("%s", message)
        if self._on_event is not None:
            try:
                self._on_event(CameraEvent(name, self.identity or self.spec, message, data))
            except Exception:  # noqa: BLE001 - a broken listener must not stop hot-plug handling
                log.exception("on_event callback failed")


def _match(spec: str, cameras: list[CameraInfo]) -> CameraInfo | None:
    """The udev facts for a camera spec (/dev/videoN, usb:N, serial:S, path:P), if udev lists it."""
    spec = spec[len("v4l2:") :] if spec.startswith("v4l2:") else spec
    if m := _USB.match(spec):
        n = int(m.group(1))
        return cameras[n] if n < len(cameras) else None
    return next((c for c in cameras if spec in (c.devnode, c.identity)), None)
