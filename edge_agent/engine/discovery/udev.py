"""The only module that talks to udev (pyudev): listing cameras and opening a netlink monitor."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from edge_agent.engine.discovery.info import CameraInfo, camera_from_device

log = logging.getLogger(__name__)
SUBSYSTEM = "video4linux"
UDEV_CONTROL_SOCKET = "/run/udev/control"
_NUMBER = re.compile(r"(\d+)")


def _natural(devnode: str) -> list[object]:
    """/dev/video2 before /dev/video10."""
    return [int(part) if part.isdigit() else part for part in _NUMBER.split(devnode)]


def list_cameras(context: Any = None) -> list[CameraInfo]:
    """Capture-capable video4linux devices udev knows now, sorted by /dev node. ``context`` is a
    pyudev.Context or anything with the same ``list_devices(subsystem=...)``."""
    if context is None:
        import pyudev

        context = pyudev.Context()
    cameras = []
    for device in context.list_devices(subsystem=SUBSYSTEM):
        info = camera_from_device(device)
        if info.devnode and info.is_capture:
            cameras.append(info)
        else:
            log.debug("skipping %s: capabilities %s", info.devnode or device, info.capabilities or "unknown")
    return sorted(cameras, key=lambda c: _natural(c.devnode))


def udev_running() -> bool:
    """udevd listens on its control socket; without it, udev-sourced monitor events never come."""
    return os.path.exists(UDEV_CONTROL_SOCKET)


def open_monitor(context: Any = None, source: str | None = None) -> tuple[Any, str]:
    """A started pyudev Monitor for video4linux and the event source it uses: ``udev`` (events with udev's
    properties, serial included) when udevd runs, else ``kernel`` (raw uevents: only the /dev node)."""
    import pyudev

    context = context or pyudev.Context()
    sources = [source] if source else (["udev", "kernel"] if udev_running() else ["kernel", "udev"])
    last: Exception | None = None
    for name in sources:
        try:
            monitor = pyudev.Monitor.from_netlink(context, source=name)
            monitor.filter_by(SUBSYSTEM)
            monitor.start()
        except (OSError, ValueError) as exc:
            log.info("udev monitor with source=%s unavailable: %s", name, exc)
            last = exc
            continue
        return monitor, name
    raise OSError(f"no udev monitor could be opened: {last}")


def refresh(device: Any, context: Any = None) -> Any:
    """Re-read a device from sysfs and the udev database (a kernel event lacks udev's properties)."""
    import pyudev

    try:
        return pyudev.Devices.from_sys_path(context or device.context, device.sys_path)
    except Exception:  # noqa: BLE001 - gone already, or no udev database: keep what the event said
        return device
