"""A real IP camera, end to end: an agent enrolled with the fleet reads a GStreamer RTSP stream with the model the
server delivered; when the camera goes away the server raises `camera_disconnected` for that device, and when it
is back (the agent reconnects by itself) the alert resolves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.fleet.agent import Agent
from edge_agent.fleet.enroll import enroll
from fleet_server.server import ServerHandle
from tests.cameras.rtsp_camera import RtspCamera, camera  # noqa: F401 - the fixture
from tests.fleet_server.live_server import running_server
from tests.fleet_server.model_packages import Packer
from tests.waiting import wait_for


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with running_server(tmp_path / "server", alert_eval_s=0.5) as handle:
        yield handle


def test_a_camera_outage_fires_and_resolves_the_camera_alert(server: ServerHandle, camera: RtspCamera,
                                                            tmp_path: Path) -> None:
    api = f"{server.url}/api/v1"
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    package = Packer.for_server(server.settings.signing_key_path(), tmp_path / "work").make("1.0.0")
    published = httpx.post(f"{api}/models", content=package.read_bytes(), timeout=30,
                           headers={**headers, "Content-Type": "application/octet-stream"})
    assert published.status_code == 201, published.text
    token = httpx.post(f"{api}/tokens", json={"uses": 1}, headers=headers).json()["token"]
    config = enroll(server.url, token, tmp_path / "agent", name="door", source=camera.url)
    agent = Agent(config.model_copy(update={"telemetry_interval_s": 0.5}), tmp_path / "agent",
                  source=camera.url).start()
    device = config.device_id

    def camera_state() -> str | None:
        rows = httpx.get(f"{api}/devices/{device}/telemetry", params={"limit": 1}, headers=headers).json()
        return rows[0].get("camera_state") if rows else None

    def alert(state: str) -> dict | None:
        found = httpx.get(f"{api}/alerts", params={"device_id": device}, headers=headers).json()
        return next((a for a in found if a["rule"] == "camera_disconnected" and a["state"] == state), None)

    try:
        model = {k: published.json()[k] for k in ("name", "version", "sha256", "size")}
        assert httpx.patch(f"{api}/devices/{device}/twin", json={"model": model}, headers=headers).status_code == 200
        wait_for(lambda: camera_state() == "streaming", 90, "the agent streaming the camera with the model")
        assert alert("firing") is None

        camera.stop()
        firing = wait_for(lambda: alert("firing"), 60, "the camera_disconnected alert")
        assert firing["details"]["camera_state"] in ("reconnecting", "waiting_for_device")

        camera.start()
        wait_for(lambda: alert("resolved"), 90, "the alert resolved once the agent reconnected by itself")
        assert camera_state() == "streaming"
    finally:
        agent.stop()
