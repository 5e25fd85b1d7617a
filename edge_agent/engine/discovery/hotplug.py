"""Hot-plug: watch video4linux add/remove events and hand them on as CameraInfo.

The event source is anything with ``poll(timeout) -> device | None`` (pyudev's Monitor has it), so tests and
the simulator feed synthetic pyudev devices through :class:`DeviceEventQueue` instead of real hardware."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.engine.discovery.info import CameraInfo, camera_from_device
from edge_agent.engine.discovery.udev import SUBSYSTEM

log = logging.getLogger(__name__)
CameraCallback = Callable[[CameraInfo], None]


class DeviceEventSource(Protocol):
    def poll(self, timeout: float | None = None) -> Any: ...


class DeviceEventQueue:
    """An in-process event source: ``push(device)`` where udev would have delivered it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def push(self, device: Any) -> None:
        self._queue.put(device)

    def poll(self, timeout: float | None = None) -> Any:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class HotplugWatcher:
    """Calls ``on_added``/``on_removed`` (on its own thread) for video4linux capture nodes. It remembers what it
    saw so a remove event that carries no udev properties (kernel source) still names the camera's serial."""

    def __init__(
        self,
        on_added: CameraCallback,
        on_removed: CameraCallback,
        monitor: DeviceEventSource | None = None,
        *,
        context: Any = None,
        known: list[CameraInfo] | None = None,
        poll_interval_s: float = 0.25,
    ) -> None:
        self.on_added, self.on_removed = on_added, on_removed
        self._monitor = monitor
        self._context = context
        self.source = "injected" if monitor is not None else None
        self._known: dict[str, CameraInfo] = {c.devnode: c for c in known or []}
        self._poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HotplugWatcher:
        """Open the real udev monitor unless one was injected (raises OSError/ImportError if none can be)."""
        if self._monitor is None:
            from edge_agent.engine.discovery.udev import open_monitor

            self._monitor, self.source = open_monitor(self._context)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hotplug", daemon=True)
        self._thread.start()
        log.info("watching camera hot-plug (source=%s)", self.source)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.source in ("udev", "kernel"):
            self._monitor = None  # pyudev closes the netlink socket when the Monitor is freed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                device = self._monitor.poll(timeout=self._poll_interval_s)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - a broken socket: report it and stop watching
                log.exception("hot-plug monitor failed; hot-plug disabled")
                return
            if device is not None:
                try:
                    self.handle(device)
                except Exception:  # noqa: BLE001 - one bad event or listener must not end the watch
                    log.exception("hot-plug event for %s failed", getattr(device, "device_node", device))

    def handle(self, device: Any) -> None:
        """Turn one udev device event into on_added/on_removed (ignoring other subsystems and metadata nodes)."""
        if getattr(device, "subsystem", None) != SUBSYSTEM:
            return
        action = getattr(device, "action", None)
        info = camera_from_device(device)
        if not info.devnode:
            return
        if action == "add":
            if not info.capabilities and self.source == "kernel":
                from edge_agent.engine.discovery.udev import refresh

                info = camera_from_device(refresh(device, self._context))
            if info.capabilities and not info.is_capture:
                log.debug("ignoring non-capture node %s (%s)", info.devnode, ":".join(info.capabilities))
                return
            self._known[info.devnode] = info
            self.on_added(info)
        elif action == "remove":
            seen = self._known.pop(info.devnode, None)
            if info.capabilities and not info.is_capture:
                return
            if seen is not None and not info.serial:
                info = seen
            self.on_removed(info)
