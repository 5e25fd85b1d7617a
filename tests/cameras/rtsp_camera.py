"""`RtspCamera`: a GStreamer RTSP server in a subprocess that a test can stop and start again on the same port,
the way a real IP camera drops off the network and comes back."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port, service_missing, wait_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
PROBE = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
INSTALL = ("apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
           "gstreamer1.0-plugins-ugly")


def require_gstreamer_rtsp() -> None:
    """Skip (or, under CI=true, fail) when the system Python cannot serve RTSP."""
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        service_missing(f"no {SYSTEM_PYTHON} to run GStreamer's RTSP server: {exc}")
    if probe.returncode != 0:
        service_missing(f"GStreamer's RTSP server is not installed ({INSTALL})")


class RtspCamera:
    """One camera at ``url``; ``stop()`` kills the server (every client's stream ends), ``start()`` brings it back."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self._log = log_dir / "rtsp-camera.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RtspCamera:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.port)],
                                          stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


@pytest.fixture()
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    """A running RTSP camera for one test (skipped, or failed under CI=true, without GStreamer's RTSP server)."""
    require_gstreamer_rtsp()
    cam = RtspCamera(tmp_path).start()
    yield cam
    cam.stop()
