"""Camera discovery and hot-plug (udev behind a small interface, so tests feed synthetic devices)."""

from edge_agent.engine.discovery.hotplug import DeviceEventQueue, DeviceEventSource, HotplugWatcher
from edge_agent.engine.discovery.info import CameraInfo, camera_from_device, camera_from_properties, parse_capabilities
from edge_agent.engine.discovery.manager import CameraEvent, CameraManager, SourceFactory, default_source_factory
from edge_agent.engine.discovery.udev import list_cameras, open_monitor

__all__ = [
    "CameraEvent", "CameraInfo", "CameraManager", "DeviceEventQueue", "DeviceEventSource", "HotplugWatcher",
    "SourceFactory", "camera_from_device", "camera_from_properties", "default_source_factory", "list_cameras",
    "open_monitor", "parse_capabilities",
]  # fmt: skip
