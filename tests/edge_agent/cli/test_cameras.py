import io
import json

import pyudev
from rich.console import Console

from edge_agent.cli.cameras import cameras_command
from tests.edge_agent.engine.discovery.udev_devices import DeviceListContext, synthetic_device
from tests.waiting import wait_for


def console() -> Console:
    return Console(file=io.StringIO(), width=200, color_system=None)


def output(c: Console) -> str:
    return c.file.getvalue()  # type: ignore[attr-defined]


def test_no_cameras_here_is_said_plainly():
    c = console()
    assert cameras_command(console=c) == []
    assert "no cameras found" in output(c)


def test_json_output_is_an_empty_list_here():
    c = console()
    cameras_command(json_out=True, console=c)
    assert json.loads(output(c)) == []


def test_table_lists_vendor_model_serial_and_dev_node():
    context = pyudev.Context()
    fake = DeviceListContext([synthetic_device(context, devnode="/dev/video2", serial="SN42")])
    c = console()
    cameras = cameras_command(context=fake, console=c)
    text = output(c)
    assert [cam.devnode for cam in cameras] == ["/dev/video2"]
    for expected in ("/dev/video2", "Logitech, Inc.", "HD Pro Webcam C920", "SN42", "serial:SN42"):
        assert expected in text


def test_json_output_carries_every_field():
    context = pyudev.Context()
    fake = DeviceListContext([synthetic_device(context, devnode="/dev/video0", serial="SN1")])
    c = console()
    cameras_command(json_out=True, context=fake, console=c)
    (camera,) = json.loads(output(c))
    assert camera["devnode"] == "/dev/video0" and camera["serial"] == "SN1" and camera["identity"] == "serial:SN1"
    assert camera["vendor"] == "Logitech, Inc." and camera["capabilities"] == ["capture"]


def test_watch_prints_cameras_as_they_come_and_go():
    import threading

    from edge_agent.engine.discovery import DeviceEventQueue
    from edge_agent.cli.cameras import watch_cameras

    context = pyudev.Context()
    events, stop, c = DeviceEventQueue(), threading.Event(), console()
    events.push(synthetic_device(context, action="add", devnode="/dev/video6", serial="W1"))
    events.push(synthetic_device(context, action="remove", devnode="/dev/video6", serial="W1"))
    thread = threading.Thread(target=watch_cameras, kwargs={"console": c, "monitor": events, "stop": stop})
    thread.start()
    try:
        wait_for(lambda: "removed /dev/video6" in output(c), 10, "the watcher to print the removal")
    finally:
        stop.set()
    thread.join(5)
    assert "added /dev/video6" in output(c) and "removed /dev/video6" in output(c) and "serial:W1" in output(c)
    assert not thread.is_alive()


def test_agent_cameras_watch_lists_then_watches_until_ctrl_c():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "agent", "cameras", "--watch"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**__import__("os").environ,
                                                                                 "COLUMNS": "200"})
    try:
        lines: list[str] = []
        wait_for(lambda: (line := proc.stdout.readline()) and (lines.append(line) or "watching for cameras" in line),
                 timeout=60, what="the watch to start")
        assert any("no cameras found" in line for line in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
