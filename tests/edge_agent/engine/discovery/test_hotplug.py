import queue

import pyudev
import pytest

from edge_agent.engine.discovery import CameraInfo, DeviceEventQueue, HotplugWatcher, open_monitor
from tests.edge_agent.engine.discovery.udev_devices import synthetic_device


@pytest.fixture(scope="module")
def context() -> pyudev.Context:
    return pyudev.Context()


class Recorder:
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, CameraInfo]] = queue.Queue()

    def added(self, info: CameraInfo) -> None:
        self.events.put(("added", info))

    def removed(self, info: CameraInfo) -> None:
        self.events.put(("removed", info))

    def next(self) -> tuple[str, CameraInfo]:
        return self.events.get(timeout=5.0)


@pytest.fixture
def watched():
    events = DeviceEventQueue()
    recorder = Recorder()
    watcher = HotplugWatcher(recorder.added, recorder.removed, events, poll_interval_s=0.02).start()
    yield events, recorder, watcher
    watcher.stop()


def test_add_and_remove_events_become_camera_infos(context, watched):
    events, recorder, watcher = watched
    assert watcher.source == "injected" and watcher.running
    events.push(synthetic_device(context, action="add", devnode="/dev/video4", serial="S4"))
    kind, info = recorder.next()
    assert (kind, info.devnode, info.identity) == ("added", "/dev/video4", "serial:S4")
    events.push(synthetic_device(context, action="remove", devnode="/dev/video4", serial="S4"))
    kind, info = recorder.next()
    assert (kind, info.identity) == ("removed", "serial:S4")


def test_non_capture_nodes_and_other_subsystems_are_ignored(context, watched):
    events, recorder, _ = watched
    events.push(synthetic_device(context, devnode="/dev/video5", capabilities=":meta:"))
    events.push(synthetic_device(context, devnode="/dev/input7", subsystem="input"))
    events.push(synthetic_device(context, action="change", devnode="/dev/video6"))
    events.push(synthetic_device(context, devnode="/dev/video8", serial="LAST"))
    kind, info = recorder.next()
    assert (kind, info.devnode) == ("added", "/dev/video8")  # the three before it produced nothing
    assert recorder.events.empty()


def test_a_kernel_remove_without_udev_facts_is_named_from_what_was_seen(context, watched):
    events, recorder, _ = watched
    events.push(synthetic_device(context, action="add", devnode="/dev/video2", serial="KNOWN"))
    recorder.next()
    events.push(synthetic_device(context, action="remove", devnode="/dev/video2", serial=None, capabilities=None))
    kind, info = recorder.next()
    assert (kind, info.serial, info.identity) == ("removed", "KNOWN", "serial:KNOWN")


def test_a_failing_listener_does_not_end_the_watch(context):
    events, recorder = DeviceEventQueue(), Recorder()

    def broken(info: CameraInfo) -> None:
        raise RuntimeError("listener bug")

    watcher = HotplugWatcher(broken, recorder.removed, events, poll_interval_s=0.02).start()
    try:
        events.push(synthetic_device(context, action="add", devnode="/dev/video1"))
        events.push(synthetic_device(context, action="remove", devnode="/dev/video1"))
        assert recorder.next()[0] == "removed" and watcher.running
    finally:
        watcher.stop()


def test_the_real_udev_monitor_starts_and_stops_cleanly():
    recorder = Recorder()
    watcher = HotplugWatcher(recorder.added, recorder.removed, poll_interval_s=0.05).start()
    try:
        assert watcher.source in ("udev", "kernel") and watcher.running
    finally:
        watcher.stop()
    assert not watcher.running and recorder.events.empty()


@pytest.mark.parametrize("source", ["udev", "kernel"])
def test_open_monitor_with_either_event_source(source, context):
    monitor, used = open_monitor(context, source=source)
    assert used == source and monitor.started
    assert monitor.poll(timeout=0.01) is None  # no cameras come and go here
