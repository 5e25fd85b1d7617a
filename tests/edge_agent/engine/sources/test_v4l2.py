import pytest

from edge_agent.engine.discovery.info import CameraInfo
from edge_agent.errors import SourceError
from edge_agent.engine.sources import DeviceGone, open_source
from edge_agent.engine.sources.v4l2 import V4L2Source

GONE = "/dev/video97"


def no_cameras() -> list[CameraInfo]:
    return []


def test_a_missing_dev_node_is_a_clear_source_error_on_open():
    source = open_source(GONE, cameras=no_cameras)
    assert isinstance(source, V4L2Source)
    with pytest.raises(SourceError, match=f"camera {GONE} does not exist"):
        source.open()


def test_missing_camera_is_device_gone_so_a_capture_waits_for_it():
    with pytest.raises(DeviceGone):
        open_source(GONE, cameras=no_cameras).open()


def test_usb_index_beyond_the_connected_cameras_is_a_clear_error():
    source = open_source("usb:3", cameras=no_cameras)
    with pytest.raises(SourceError, match="no camera usb:3: udev lists 0 capture camera"):
        source.open()


def test_usb_index_with_real_udev_here_finds_nothing():
    with pytest.raises(SourceError, match="no camera usb:7"):
        open_source("usb:7").open()


def test_serial_spec_of_an_absent_camera_is_not_connected():
    with pytest.raises(DeviceGone, match="camera serial:XYZ is not connected"):
        open_source("serial:XYZ", cameras=no_cameras).open()


def test_identity_comes_from_udev_serial_when_known():
    camera = CameraInfo(devnode=GONE, serial="SN123", capabilities=("capture",))
    source = open_source(GONE, cameras=lambda: [camera])
    assert source.identity == "serial:SN123"
    assert open_source("usb:0", cameras=lambda: [camera]).identity == "serial:SN123"
    assert open_source(GONE, camera=camera, cameras=no_cameras).identity == "serial:SN123"


def test_identity_without_udev_facts_is_the_spec():
    assert open_source(GONE, cameras=no_cameras).identity == f"v4l2:{GONE}"
    assert open_source("usb:2", cameras=no_cameras).identity == "usb:2"


def test_serial_spec_resolves_the_current_dev_node_at_every_open():
    where = {"node": "/dev/video96"}
    source = V4L2Source("serial:S1", cameras=lambda: [CameraInfo(devnode=where["node"], serial="S1")])
    with pytest.raises(DeviceGone, match="/dev/video96"):
        source.open()
    where["node"] = "/dev/video95"
    with pytest.raises(DeviceGone, match="/dev/video95"):
        source.open()


@pytest.mark.parametrize("spec", ["/dev/", "serial:", "v4l2:usb:x"])
def test_malformed_camera_specs_are_refused(spec):
    with pytest.raises(SourceError, match="bad camera spec"):
        open_source(spec, cameras=no_cameras)


def test_bad_fourcc_is_refused():
    with pytest.raises(SourceError, match="fourcc must be 4 characters"):
        open_source(GONE, fourcc="MJPEG", cameras=no_cameras)
