"""A rollout end to end: the whole server (API, scheduler thread, bridge, embedded broker, OTA over MQTT) and two
simulated agents running the real agent code, enrolled through the API. The canary downloads, verifies and
installs the package first; the second device starts only once the canary passed. Then a package that is
signed but does not load halts at the canary, which is set back to the good model; the other never starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.fleet.sim import SimulatedDevice, enroll_simulated
from fleet_server.server import ServerHandle
from tests.fleet_server.live_server import running_server
from tests.fleet_server.model_packages import Packer
from tests.waiting import wait_for

ROLLOUT_WAIT_S = 120


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with running_server(tmp_path / "server") as handle:
        yield handle


def _publish(api: str, headers: dict[str, str], package: Path) -> str:
    r = httpx.post(f"{api}/models", content=package.read_bytes(), timeout=30,
                   headers={**headers, "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return r.json()["sha256"]


def _roll(api: str, headers: dict[str, str], model: str) -> dict:
    r = httpx.post(f"{api}/rollouts", headers=headers, json={
        "model": model, "target": "tag=site=e2e", "canary_percent": 50, "waves": 1, "max_p95_ms": 60_000,
        "wave_timeout_s": 300})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    def ended() -> dict | None:
        view = httpx.get(f"{api}/rollouts/{rid}", headers=headers, timeout=30).json()
        return view if view["state"] != "running" else None

    return wait_for(ended, ROLLOUT_WAIT_S, f"rollout of {model} to end")


def test_two_agents_take_a_rollout_canary_first_and_a_broken_model_halts(server: ServerHandle,
                                                                         tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    api = f"{server.url}/api/v1"
    packer = Packer.for_server(server.settings.signing_key_path(), tmp_path / "work")
    good = _publish(api, headers, packer.make("1.0.0"))
    _publish(api, headers, packer.make("2.0.0", extra=b"\0" * 1000))  # signed, but not an ONNX model any more
    token = httpx.post(f"{api}/tokens", json={"uses": 2, "tags": {"site": "e2e"}}, headers=headers).json()["token"]
    configs = enroll_simulated(server.url, token, tmp_path / "agents", 2, prefix="roll")
    agents = [SimulatedDevice(c, tmp_path / "agents" / f"roll-{i:04d}", fps=5, ota_block=4096).start()
              for i, c in enumerate(configs)]
    try:
        for agent in agents:
            assert agent.wait_ready(30)
        view = _roll(api, headers, "tiny:1.0.0")
        assert view["state"] == "succeeded", view
        canary, second = view["wave_list"][0]["devices"][0], view["wave_list"][1]["devices"][0]
        assert canary["state"] == second["state"] == "succeeded"
        assert second["started_at"] >= canary["finished_at"]
        for agent in agents:
            device = httpx.get(f"{api}/devices/{agent.config.device_id}", headers=headers).json()
            assert device["reported"]["model"]["sha256"] == good
            assert device["reported"]["properties"]["ota"]["state"] == "installed"

        view = _roll(api, headers, "tiny:2.0.0")
        assert view["state"] == "halted" and "canary: 1 of 1" in view["reason"], view
        canary, second = view["wave_list"][0]["devices"][0], view["wave_list"][1]["devices"][0]
        assert canary["state"] == "failed" and "does not load" in canary["reason"]
        assert second["state"] == "pending" and second["started_at"] is None
        assert canary["previous_model"]["sha256"] == good
        device = httpx.get(f"{api}/devices/{canary['device_id']}", headers=headers).json()
        assert device["desired"]["model"]["sha256"] == good
        wait_for(lambda: httpx.get(f"{api}/devices/{canary['device_id']}", headers=headers).json()["in_sync"],
                 60, "the canary back on the good model")
    finally:
        for agent in agents:
            agent.stop()
