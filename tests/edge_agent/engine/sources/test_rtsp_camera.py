"""A real IP camera (GStreamer's RTSP server on loopback) read by the agent: it streams at the camera's 30 fps,
survives the camera going away and coming back without help, and says so in one line per state change instead
of the native libraries' raw warnings on every retry."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from edge_agent.engine.capture import CaptureThread
from edge_agent.engine.capture_state import ReconnectPolicy
from edge_agent.engine.sources import open_source
from tests.cameras.rtsp_camera import RtspCamera, camera  # noqa: F401 - the fixture
from tests.edge_agent.engine.inference_fixtures import color_package, signed_package  # noqa: F401
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[4]
# What FFmpeg and OpenCV print on their own when a stream breaks; none of it may reach the agent's output.
NATIVE_NOISE = ("[h264 @", "[tcp @", "[rtsp @", "[ WARN:", "[ERROR:")


def test_the_stream_opens_with_the_cameras_size_and_rate_and_reconnects_after_an_outage(camera: RtspCamera) -> None:
    states: list[str] = []
    source = open_source(camera.url, open_timeout_s=3, read_timeout_s=2)
    capture = CaptureThread(source, reconnect=ReconnectPolicy(initial_delay_s=0.2, max_delay_s=0.5),
                            on_state=lambda state, _reason: states.append(state))
    with capture:
        wait_for(lambda: capture.captured > 30, 30, "frames from the camera")
        props = source.open()  # already open: the properties the capture got
        assert (props.width, props.height, props.fps) == (320, 240, 30.0)
        camera.stop()
        wait_for(lambda: capture.state == "reconnecting", 30, "the capture to notice the camera is gone")
        before = capture.captured
        camera.start()
        wait_for(lambda: capture.state == "streaming" and capture.captured > before + 30, 60,
                 "frames again once the camera is back")
    assert states[:2] == ["opening", "streaming"]
    assert "reconnecting" in states and states[-2:] == ["streaming", "stopped"]
    assert capture.reconnects >= 1


def test_agent_infer_rides_out_an_outage_with_one_line_per_state_change(camera: RtspCamera, color_package) -> None:
    pkg, pub = color_package
    agent = subprocess.Popen(
        [sys.executable, "-m", "edgefleet", "agent", "infer", "--model", str(pkg), "--key", str(pub),
         "--source", camera.url, "--json", "--max-fps", "10"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results: list[dict] = []
    reader = threading.Thread(target=lambda: results.extend(json.loads(line) for line in agent.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(results) >= 5, 60, "results from the camera")
        camera.stop()
        count = len(results)
        wait_for(lambda: len(results) == count, 10, "results to stop while the camera is gone")
        camera.start()
        wait_for(lambda: len(results) >= count + 5, 90, "results again once the camera is back")
    finally:
        agent.terminate()
        _, stderr = agent.communicate(timeout=30)
    transitions = [line for line in stderr.splitlines() if "capture rtsp://" in line and " -> " in line]
    assert any("streaming -> reconnecting" in line for line in transitions), stderr
    assert any("reconnecting -> streaming" in line for line in transitions), stderr
    noise = [line for line in stderr.splitlines() if line.lstrip().startswith(NATIVE_NOISE)]
    assert noise == [], noise
