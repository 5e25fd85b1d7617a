import pyudev
import pytest

from edge_agent.engine.discovery import CameraInfo, camera_from_device, camera_from_properties, list_cameras
from edge_agent.engine.discovery.info import parse_capabilities
from tests.edge_agent.engine.discovery.udev_devices import DeviceListContext, synthetic_device


@pytest.fixture(scope="module")
def context() -> pyudev.Context:
    return pyudev.Context()


def test_list_cameras_on_this_machine_is_empty_without_error():
    assert list_cameras() == []


def test_a_synthetic_udev_device_parses_into_camera_info(context):
    info = camera_from_device(synthetic_device(context, devnode="/dev/video2", serial="A1B2C3"))
    assert info.devnode == "/dev/video2"
    assert (info.vendor, info.model, info.serial) == ("Logitech, Inc.", "HD Pro Webcam C920", "A1B2C3")
    assert (info.vendor_id, info.model_id) == ("046d", "082d")
    assert info.bus_path == "pci-0000:00:14.0-usb-0:2:1.0"
    assert info.capabilities == ("capture",) and info.is_capture
    assert info.identity == "serial:A1B2C3"
    assert info.sys_path and info.sys_path.endswith("/video4linux/video2")


def test_list_cameras_keeps_capture_nodes_only_in_natural_order(context):
    devices = [
        synthetic_device(context, devnode="/dev/video10", serial="B"),
        synthetic_device(context, devnode="/dev/video3", serial="A", capabilities=":meta:"),  # metadata node
        synthetic_device(context, devnode="/dev/video2", serial="A", capabilities=":capture:video_output:"),
        synthetic_device(context, devnode="/dev/video5", serial=None, capabilities=None),  # no udev facts
    ]
    cameras = list_cameras(DeviceListContext(devices))
    assert [c.devnode for c in cameras] == ["/dev/video2", "/dev/video10"]
    assert [c.serial for c in cameras] == ["A", "B"]


def test_identity_falls_back_to_by_path_then_dev_node():
    assert CameraInfo("/dev/video0", serial="S").identity == "serial:S"
    assert CameraInfo("/dev/video0", bus_path="pci-0000:00:14.0-usb-0:1:1.0").identity == (
        "path:pci-0000:00:14.0-usb-0:1:1.0"
    )
    assert CameraInfo("/dev/video0").identity == "v4l2:/dev/video0"


def test_encoded_names_are_decoded_and_database_names_preferred():
    info = camera_from_properties(
        {"DEVNAME": "video1", "ID_VENDOR_ENC": "Acme\\x20Vision", "ID_MODEL_ENC": "Cam\\x20X", "ID_VENDOR": "Acme_V",
         "ID_MODEL_FROM_DATABASE": "CamX Pro"}  # fmt: skip
    )
    assert info.devnode == "/dev/video1"
    assert (info.vendor, info.model) == ("Acme Vision", "CamX Pro")


def test_capabilities_parse():
    assert parse_capabilities(":capture:video_output:") == ("capture", "video_output")
    assert parse_capabilities(None) == ()


def test_camera_info_as_dict_is_json_ready(context):
    data = camera_from_device(synthetic_device(context)).as_dict()
    assert data["identity"] == "serial:SN0001" and data["capabilities"] == ["capture"]
