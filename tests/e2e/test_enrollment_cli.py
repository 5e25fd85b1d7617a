"""Issue 2's round trip, from the CLI as an operator and a device would run it, against the embedded broker
and against the machine's Mosquitto: token -> enroll -> agent online over MQTT -> desired twin reported back
-> decommission; and every bad token leaves nothing behind. The device's name carries this run's tag, so what
it leaves retained on the shared Mosquitto is cleared by the session sweep (tests/conftest.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.cli import ServerProcess, start_agent
from tests.mqtt_client import unique_name
from tests.waiting import wait_for


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> ServerProcess:
    broker = "embedded"
    if request.param == "mosquitto":
        broker = f"mqtt://127.0.0.1:{request.getfixturevalue('mosquitto_port')}"
    proc = ServerProcess(tmp_path, broker=broker).start()
    yield proc
    proc.stop()


def _device(server: ServerProcess, device_id: str) -> dict:
    return server.cli_json("devices", "show", device_id)


def test_enrollment_round_trip_from_the_cli(server: ServerProcess, tmp_path: Path) -> None:
    token = server.cli_json("token", "create", "--uses", "1", "--ttl", "10m", "--tags", "site=lab")["token"]
    agent_dir = tmp_path / "agent"
    enrolled = server.cli("agent", "enroll", "--server", server.url, "--token", token, "--state-dir",
                          str(agent_dir), "--name", unique_name("lab-cam"), "--source", "synthetic")
    assert enrolled.returncode == 0, enrolled.stderr + enrolled.stdout
    devices = server.cli_json("devices", "ls")
    assert len(devices) == 1
    device_id = devices[0]["id"]
    assert devices[0]["tags"] == {"site": "lab"} and devices[0]["status"] == "offline"

    # the one-time token is spent: a second enrollment is refused with a clear message and creates nothing
    again = server.cli("agent", "enroll", "--server", server.url, "--token", token, "--state-dir",
                       str(tmp_path / "agent2"))
    assert again.returncode != 0
    assert "token" in (again.stderr + again.stdout).lower()
    assert len(server.cli_json("devices", "ls")) == 1

    agent = start_agent(server, agent_dir)
    try:
        wait_for(lambda: _device(server, device_id)["online"], 60, "the agent to come online over MQTT")
        key = (server.state_dir / "admin-api-key").read_text().strip()
        patch = httpx.patch(f"{server.url}/api/v1/devices/{device_id}/twin", headers={"X-API-Key": key},
                            json={"pipeline": {"score_threshold": 0.8}, "properties": {"zone": "dock"}})
        assert patch.status_code == 200, patch.text
        shown = wait_for(lambda: (d := _device(server, device_id))["in_sync"] and d, 60, "the twin to sync")
        # the agent reports its own properties (its backend choice), not the desired ones: the revision is the proof
        assert shown["reported"]["desired_revision"] == shown["desired_revision"] == 1
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    wait_for(lambda: not _device(server, device_id)["online"], 30, "the agent to be offline")

    gone = server.cli("devices", "decommission", device_id, "--state-dir", str(server.state_dir))
    assert gone.returncode == 0, gone.stderr + gone.stdout
    assert _device(server, device_id)["status"] == "decommissioned"


@pytest.mark.parametrize("token", ["efe_forged-token-that-was-never-issued", "short"])
def test_a_bad_token_is_refused_and_creates_nothing(token: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        result = server.cli("agent", "enroll", "--server", server.url, "--token", token, "--state-dir",
                            str(tmp_path / "agent"))
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert server.cli_json("devices", "ls") == []
        assert not (tmp_path / "agent" / "agent.json").exists()
    finally:
        server.stop()
