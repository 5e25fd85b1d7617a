"""Hot-plug end to end with synthetic udev events: the camera's capture waits and resumes by serial."""

from __future__ import annotations

import queue
import threading
import time

import pyudev
import pytest

from edge_agent.engine.capture_state import ReconnectPolicy
from edge_agent.engine.discovery import CameraEvent, CameraInfo, CameraManager, DeviceEventQueue, list_cameras
from edge_agent.engine.sources import FrameSource
from edge_agent.engine.sources.synthetic import SyntheticSource
from edgefleet.protocol import Event
from tests.edge_agent.engine.discovery.udev_devices import DeviceListContext, synthetic_device
from tests.waiting import wait_for

FAST = ReconnectPolicy(initial_delay_s=0.0, max_delay_s=0.0, jitter=0.0, device_poll_s=0.05)


class SyntheticCameras:
    """The source factory: each /dev node becomes a synthetic camera that carries the udev identity."""

    def __init__(self) -> None:
        self.built: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, spec: str, camera: CameraInfo | None) -> FrameSource:
        identity = camera.identity if camera else f"v4l2:{spec}"
        with self._lock:
            self.built.append((spec, identity))
        return SyntheticSource(32, 32, fps=200, identity=identity)


@pytest.fixture(scope="module")
def context() -> pyudev.Context:
    return pyudev.Context()


@pytest.fixture
def rig(context):
    events = DeviceEventQueue()
    factory = SyntheticCameras()
    reported: queue.Queue[CameraEvent] = queue.Queue()
    states: list[tuple[str, str]] = []
    plugged = [synthetic_device(context, devnode="/dev/video3", serial="CAM-A")]
    manager = CameraManager(
        "/dev/video3",
        source_factory=factory,
        monitor=events,
        cameras=lambda: list_cameras(DeviceListContext(plugged)),
        reconnect=FAST,
        on_state=lambda s, r: states.append((s, r)),
        on_event=reported.put,
    ).start()
    yield manager, events, factory, reported, states
    manager.stop()


def next_frame_index(manager: CameraManager, after: int | None) -> int:
    frame = manager.get_latest(timeout=5.0, after_index=after)
    assert frame is not None
    return frame.index


def test_camera_is_tracked_by_its_udev_serial(rig):
    manager, _, factory, _, _ = rig
    assert manager.identity == "serial:CAM-A"
    assert factory.built == [("/dev/video3", "serial:CAM-A")]
    assert manager.get_latest(timeout=5.0).source_id == "serial:CAM-A"


def test_unplug_waits_and_replug_elsewhere_resumes(rig, context):
    manager, events, factory, reported, states = rig
    before = next_frame_index(manager, None)

    events.push(synthetic_device(context, action="remove", devnode="/dev/video3", serial="CAM-A"))
    removed = reported.get(timeout=5.0)
    assert removed.name == "camera_removed" and removed.camera_id == "serial:CAM-A"
    wait_for(lambda: manager.state == "waiting_for_device")
    assert any(s == "waiting_for_device" and "removed" in r for s, r in states)

    events.push(synthetic_device(context, action="add", devnode="/dev/video4", serial="SOMEONE-ELSE"))
    events.push(synthetic_device(context, action="add", devnode="/dev/video7", serial="CAM-A"))
    returned = reported.get(timeout=5.0)
    assert returned.name == "camera_returned" and returned.data["devnode"] == "/dev/video7"
    assert [spec for spec, _ in factory.built] == ["/dev/video3", "/dev/video7"]  # the other camera was ignored
    wait_for(lambda: manager.state == "streaming")

    frame = manager.get_latest(timeout=5.0, after_index=before)
    assert frame.index > before and frame.source_id == "serial:CAM-A"
    assert manager.devnode == "/dev/video7"
    assert reported.empty()


def test_a_different_camera_plugged_in_while_waiting_is_ignored(rig, context):
    manager, events, factory, reported, _ = rig
    events.push(synthetic_device(context, action="remove", devnode="/dev/video3", serial="CAM-A"))
    reported.get(timeout=5.0)
    wait_for(lambda: manager.state == "waiting_for_device")
    events.push(synthetic_device(context, action="add", devnode="/dev/video3", serial="CAM-B"))
    events.push(synthetic_device(context, action="remove", devnode="/dev/video9", serial="CAM-C"))
    time.sleep(0.2)  # give the watcher time to (wrongly) act on them
    assert manager.state == "waiting_for_device" and reported.empty() and len(factory.built) == 1


def test_kernel_style_remove_of_our_dev_node_pauses_the_capture(rig, context):
    manager, events, _, reported, _ = rig
    manager.get_latest(timeout=5.0)
    events.push(synthetic_device(context, action="remove", devnode="/dev/video3", serial=None, capabilities=None))
    assert reported.get(timeout=5.0).name == "camera_removed"
    wait_for(lambda: manager.state == "waiting_for_device")


def test_camera_events_map_onto_the_protocol_event(rig, context):
    _, events, _, reported, _ = rig
    events.push(synthetic_device(context, action="remove", devnode="/dev/video3", serial="CAM-A"))
    event = Event(**reported.get(timeout=5.0).as_event_fields())
    assert event.kind == "camera" and event.camera_id == "serial:CAM-A"
    assert event.data == {"event": "camera_removed", "devnode": "/dev/video3", "serial": "CAM-A"}


def test_non_camera_sources_run_without_a_watcher():
    with CameraManager("synthetic:32x32@100") as manager:
        assert manager.watcher is None
        assert manager.get_latest(timeout=5.0).source_id == "synthetic:32x32@100"
    assert manager.state == "stopped"


def test_a_camera_absent_at_start_waits_and_starts_when_plugged_in(context):
    from edge_agent.engine.sources import open_source

    def factory(spec: str, camera: CameraInfo | None) -> FrameSource:
        if camera is None:  # the real V4L2 plug-in: finds no such camera here
            return open_source(spec, cameras=lambda: [])
        return SyntheticSource(32, 32, realtime=False, identity=camera.identity)  # lossless: frame 0 is kept

    events = DeviceEventQueue()
    reported: queue.Queue[CameraEvent] = queue.Queue()
    with CameraManager("serial:LATE", source_factory=factory, monitor=events, cameras=lambda: [],
                       reconnect=FAST, on_event=reported.put) as manager:  # fmt: skip
        assert manager.identity == "serial:LATE"
        wait_for(lambda: manager.state == "waiting_for_device")
        assert "not connected" in (manager.capture.last_error or "")
        events.push(synthetic_device(context, action="add", devnode="/dev/video2", serial="LATE"))
        assert reported.get(timeout=5.0).name == "camera_returned"
        frame = manager.get_latest(timeout=5.0)
        assert frame is not None and frame.index == 0 and frame.source_id == "serial:LATE"
