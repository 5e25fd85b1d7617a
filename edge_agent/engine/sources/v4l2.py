"""Local cameras through OpenCV's V4L2 backend: ``/dev/videoN``, ``usb:N`` (the N-th capture camera udev lists),
``serial:S`` and ``path:P`` (udev's by-path id). Serial and path specs are resolved at every open, so a camera
that comes back at another /dev/videoN is found again."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from edge_agent.errors import SourceError
from edge_agent.engine.sources.base import DEFAULT_PRIORITY, SOURCES, DeviceGone, SourceProperties
from edge_agent.engine.sources.native_logs import quiet_native_video_logs

if TYPE_CHECKING:
    from edge_agent.engine.discovery.info import CameraInfo

_DEVNODE = re.compile(r"^/dev/video(\d+)$")
_USB = re.compile(r"^usb:(\d+)$")
PREFIXES = ("usb:", "serial:", "path:", "v4l2:")


def is_v4l2_spec(spec: str) -> bool:
    return spec.startswith("/dev/") or spec.startswith(PREFIXES)


def _default_cameras() -> list[CameraInfo]:
    """udev's capture cameras, or [] where pyudev or udev is missing (then only /dev paths work)."""
    try:
        from edge_agent.engine.discovery.udev import list_cameras
    except ImportError:
        return []
    try:
        return list_cameras()
    except Exception:  # noqa: BLE001 - udev unreadable (containers): fall back to plain /dev paths
        return []


@SOURCES.register("v4l2")
class V4L2Source:
    """One local camera. ``width``/``height``/``fps``/``fourcc`` are requested from the driver (it may pick the
    nearest mode; the properties returned by open() say what it chose); ``buffersize=1`` keeps the driver from
    queueing stale frames. ``camera`` (udev facts) fixes the identity when the caller already knows them."""

    def __init__(
        self,
        spec: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        buffersize: int | None = 1,
        camera: CameraInfo | None = None,
        cameras: Callable[[], list[CameraInfo]] = _default_cameras,
    ) -> None:
        spec = spec[len("v4l2:") :] if spec.startswith("v4l2:") else spec
        dev_path = spec.startswith("/dev/") and not spec.endswith("/")
        if not (_DEVNODE.match(spec) or _USB.match(spec) or dev_path or spec.startswith(("serial:", "path:"))):
            raise SourceError(f"bad camera spec {spec!r}: expected /dev/videoN, usb:N, serial:S or path:P")
        if spec in ("serial:", "path:"):
            raise SourceError(f"bad camera spec {spec!r}: the {spec[:-1]} is empty")
        if fourcc is not None and len(fourcc) != 4:
            raise SourceError(f"fourcc must be 4 characters (e.g. MJPG), got {fourcc!r}")
        self.spec = spec
        self.width, self.height, self.fps, self.fourcc, self.buffersize = width, height, fps, fourcc, buffersize
        self._cameras = cameras
        self.camera = camera if camera is not None else self._lookup()
        self.identity = self._identity()
        self.devnode: str | None = self.camera.devnode if self.camera else None
        self._cap: cv2.VideoCapture | None = None
        self._properties: SourceProperties | None = None

    priority: ClassVar[int] = DEFAULT_PRIORITY

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """``/dev/...``, ``usb:N``, ``serial:S``, ``path:P`` and ``v4l2:...`` (case matters: these are paths and ids)."""
        return is_v4l2_spec(spec)

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> V4L2Source:
        return cls(spec, **options)  # type: ignore[arg-type]

    def _identity(self) -> str:
        if self.spec.startswith(("serial:", "path:")):
            return self.spec
        if self.camera is not None:
            return self.camera.identity
        return self.spec if self.spec.startswith("usb:") else f"v4l2:{self.spec}"

    def _lookup(self) -> CameraInfo | None:
        """The udev facts for this spec now, or None when udev does not know the camera."""
        cameras = self._cameras()
        if m := _USB.match(self.spec):
            n = int(m.group(1))
            return cameras[n] if n < len(cameras) else None
        for camera in cameras:
            if self.spec in (camera.devnode, camera.identity) or (
                self.spec.startswith("/dev/") and os.path.realpath(self.spec) == camera.devnode
            ):
                return camera
        return None

    def _resolve_devnode(self) -> str:
        if self.spec.startswith("/dev/"):
            devnode = self.spec
        else:
            camera = self._lookup()
            if camera is None:
                if m := _USB.match(self.spec):
                    fallback = f"/dev/video{m.group(1)}"
                    if not self._cameras() and os.path.exists(fallback):
                        return fallback  # no udev to ask: usb:N means /dev/videoN, as in OpenCV
                    raise DeviceGone(f"no camera {self.spec}: udev lists {len(self._cameras())} capture camera(s)")
                raise DeviceGone(f"camera {self.spec} is not connected")
            devnode = camera.devnode
        if not os.path.exists(devnode):
            raise DeviceGone(
                f"camera {devnode} does not exist (not connected?); `edgefleet agent cameras` lists connected cameras"
            )
        return devnode

    def open(self) -> SourceProperties:
        if self._cap is not None and self._properties is not None:
            return self._properties
        devnode = self._resolve_devnode()
        m = _DEVNODE.match(os.path.realpath(devnode))
        quiet_native_video_logs()
        cap = cv2.VideoCapture(int(m.group(1)) if m else devnode, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open camera {devnode} with V4L2 (busy, no permission, or not a capture device)")
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps), (cv2.CAP_PROP_BUFFERSIZE, self.buffersize)):  # fmt: skip
            if value is not None:
                cap.set(prop, value)
        self._cap, self.devnode = cap, devnode
        self._properties = SourceProperties(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None,
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None,
            fps=cap.get(cv2.CAP_PROP_FPS) or None,
            is_live=True,
            extra={"kind": "v4l2", "devnode": devnode},
        )
        return self._properties

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceError(f"{self.identity} is not open")
        ok, image = self._cap.read()
        if not ok:
            if self.devnode is not None and not os.path.exists(self.devnode):
                raise DeviceGone(f"camera {self.identity} was unplugged ({self.devnode} is gone)")
            raise SourceError(f"camera {self.identity} at {self.devnode} returned no frame")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._properties = None
