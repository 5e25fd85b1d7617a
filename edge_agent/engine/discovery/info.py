"""What the agent knows about one camera, parsed from udev properties (no pyudev import needed here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_UNDERSCORED = {"ID_VENDOR", "ID_MODEL"}


@dataclass(frozen=True)
class CameraInfo:
    """One video4linux node. ``identity`` survives reboots and re-plugging: the USB serial when the camera has
    one, else udev's by-path id (stable while it stays in the same port), else the /dev node."""

    devnode: str
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    bus_path: str | None = None
    capabilities: tuple[str, ...] = ()
    vendor_id: str | None = None
    model_id: str | None = None
    sys_path: str | None = None

    @property
    def identity(self) -> str:
        if self.serial:
            return f"serial:{self.serial}"
        if self.bus_path:
            return f"path:{self.bus_path}"
        return f"v4l2:{self.devnode}"

    @property
    def is_capture(self) -> bool:
        return "capture" in self.capabilities

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["capabilities"] = list(self.capabilities)
        data["identity"] = self.identity
        return data


def parse_capabilities(value: str | None) -> tuple[str, ...]:
    """udev's ``ID_V4L_CAPABILITIES`` (``:capture:video_output:``) as a tuple of names."""
    return tuple(part for part in (value or "").split(":") if part)


def _decode(value: str | None) -> str | None:
    """udev's *_ENC values escape spaces and odd bytes as \\xNN."""
    if not value:
        return None
    text = _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value).strip()
    return text or None


def _first(props: Mapping[str, str], *keys: str, encoded: tuple[str, ...] = ()) -> str | None:
    for key in keys:
        value = props.get(key)
        if value:
            if key in encoded:
                return _decode(value)
            if key in _UNDERSCORED:  # udev replaced spaces with underscores in these
                value = value.replace("_", " ")
            return value.strip() or None
    return None


def camera_from_properties(props: Mapping[str, str], *, devnode: str | None = None, sys_path: str | None = None) -> CameraInfo:
    """Build a CameraInfo from udev properties (a pyudev Device works: it is a mapping with .get)."""
    node = devnode or props.get("DEVNAME") or ""
    if node and not node.startswith("/"):
        node = f"/dev/{node}"
    return CameraInfo(
        devnode=node,
        vendor=_first(props, "ID_VENDOR_FROM_DATABASE", "ID_VENDOR_ENC", "ID_VENDOR", encoded=("ID_VENDOR_ENC",)),
        model=_first(props, "ID_V4L_PRODUCT", "ID_MODEL_FROM_DATABASE", "ID_MODEL_ENC", "ID_MODEL", encoded=("ID_MODEL_ENC",)),
        serial=props.get("ID_SERIAL_SHORT") or None,
        bus_path=props.get("ID_PATH") or None,
        capabilities=parse_capabilities(props.get("ID_V4L_CAPABILITIES")),
        vendor_id=props.get("ID_VENDOR_ID") or None,
        model_id=props.get("ID_MODEL_ID") or None,
        sys_path=sys_path,
    )


def camera_from_device(device: Any) -> CameraInfo:
    """A CameraInfo from a pyudev Device (real or synthetic)."""
    return camera_from_properties(
        device.properties,
        devnode=getattr(device, "device_node", None),
        sys_path=getattr(device, "sys_path", None),
    )
