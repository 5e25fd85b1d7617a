"""Synthetic udev devices: real pyudev Device objects built from a property set, as udev would hand them over."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

import pyudev

_ENV_LOCK = threading.Lock()
_LIBC = ctypes.CDLL(None, use_errno=True)


def synthetic_device(
    context: pyudev.Context,
    *,
    action: str = "add",
    devnode: str = "/dev/video0",
    serial: str | None = "SN0001",
    capabilities: str | None = ":capture:",
    subsystem: str = "video4linux",
    **extra: str,
) -> pyudev.Device:
    """A pyudev Device for one video4linux event. ``serial=None``/``capabilities=None`` give a kernel-style
    event (no udev properties). libudev reads the process environment, so it is swapped for the call."""
    name = devnode.rsplit("/", 1)[-1]
    props = {
        "ACTION": action,
        "SUBSYSTEM": subsystem,
        "DEVNAME": devnode,
        "DEVPATH": f"/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/{subsystem}/{name}",
        "MAJOR": "81",
        "MINOR": name.removeprefix("video") if name.startswith("video") else "0",
        "SEQNUM": "1",
    }
    if capabilities is not None:
        props["ID_V4L_CAPABILITIES"] = capabilities
    if serial is not None:
        props.update({"ID_SERIAL_SHORT": serial, "ID_VENDOR": "Logitech,_Inc.", "ID_MODEL": "HD_Pro_Webcam_C920",
                      "ID_VENDOR_ID": "046d", "ID_MODEL_ID": "082d", "ID_V4L_PRODUCT": "HD Pro Webcam C920",
                      "ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0"})  # fmt: skip
    props.update(extra)
    with _ENV_LOCK:
        # libc's environment is swapped directly: after os.environ.clear()/update() glibc's environ kept bare
        # "KEY" entries that make libudev refuse every device but the first (EINVAL).
        saved = dict(os.environ)
        _replace_libc_environment(props)
        try:
            return pyudev.Devices.from_environment(context)
        finally:
            _replace_libc_environment(saved)


def _replace_libc_environment(values: dict[str, str]) -> None:
    _LIBC.clearenv()
    for key, value in values.items():
        if _LIBC.setenv(key.encode(), value.encode(), 1) != 0:
            raise OSError(ctypes.get_errno(), f"setenv({key}) failed")


class DeviceListContext:
    """Stands in for pyudev.Context.list_devices over a fixed set of (synthetic) devices."""

    def __init__(self, devices: list[Any]) -> None:
        self.devices = devices

    def list_devices(self, subsystem: str | None = None, **_: Any) -> list[Any]:
        return [d for d in self.devices if subsystem is None or d.subsystem == subsystem]
