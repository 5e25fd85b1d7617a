"""Remote commands end to end: the whole server (API, dispatcher, bridge, embedded broker) and a simulated agent
running the real agent code, enrolled through the API; then `edgefleet devices cmd` against the same server.
Covers a reply carried back to the HTTP caller (a snapshot's JPEG included), the device's own refusals, an offline
device (409, or queued, delivered when it comes back, or expired), a device that never answers (timed out, its
late reply still kept), and the CLI's exit codes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from edgefleet import protocol as p
from edgefleet.cli import cli
from edge_agent.fleet.sim import SimulatedDevice, enroll_simulated
from edge_agent.fleet.state import StateDir
from fleet_server.server import ServerHandle
from tests.fleet_server.conftest import make_csr
from tests.fleet_server.live_server import CLI_ENV, running_server
from tests.fleet_server.mqtt_device import SimDevice, opened
from tests.mqtt_client import unique_name
from tests.waiting import wait_for

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("commands") / "server") as handle:
        yield handle


class Api:
    def __init__(self, server: ServerHandle) -> None:
        self.base = f"{server.url}/api/v1"
        self.headers = {"Authorization": f"Bearer {server.admin_key}"}

    def send(self, device_id: str, name: str, **body: object) -> httpx.Response:
        return httpx.post(f"{self.base}/devices/{device_id}/commands", json={"name": name, **body},
                          headers=self.headers, timeout=60)

    def command(self, device_id: str, request_id: str) -> dict:
        return httpx.get(f"{self.base}/devices/{device_id}/commands/{request_id}", headers=self.headers,
                         timeout=30).json()

    def online(self, device_id: str) -> bool:
        return httpx.get(f"{self.base}/devices/{device_id}", headers=self.headers, timeout=30).json()["online"]


@pytest.fixture(scope="module")
def api(server: ServerHandle) -> Api:
    return Api(server)


@pytest.fixture(scope="module")
def agent_dir(server: ServerHandle, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Path:
    token = httpx.post(f"{api.base}/tokens", json={}, headers=api.headers).json()["token"]
    root = tmp_path_factory.mktemp("agents")
    enroll_simulated(server.url, token, root, 1, prefix="cmd")
    return root / "cmd-0000"


def _read_id(agent_dir: Path) -> str:
    return StateDir(agent_dir).load_config().device_id


def _agent(agent_dir: Path) -> SimulatedDevice:
    agent = SimulatedDevice(StateDir(agent_dir).load_config(), agent_dir, fps=10).start()
    assert agent.wait_ready(30)
    return agent


def test_replies_reach_the_caller_and_the_device_refusals_are_recorded(api: Api, agent_dir: Path) -> None:
    agent = _agent(agent_dir)
    device_id = agent.config.device_id
    try:
        wait_for(lambda: api.online(device_id), what="the device online at the server")
        wait_for(lambda: agent.latest_result is not None, what="a first frame")
        r = api.send(device_id, "snapshot", args={"max_bytes": 50_000})
        assert r.status_code == 200, r.text
        shot = r.json()
        assert shot["state"] == "succeeded" and shot["deadline"] and shot["sent_at"], shot
        jpeg = base64.b64decode(shot["reply"]["result"]["jpeg_base64"])
        assert jpeg[:2] == b"\xff\xd8" and len(jpeg) <= 50_000
        assert api.command(device_id, shot["request_id"])["reply"] == shot["reply"]

        unknown = api.send(device_id, "self_destruct").json()
        assert unknown["state"] == "failed" and "unknown command 'self_destruct'" in unknown["error"]
        bad = api.send(device_id, "get_logs", args={"lines": "all"}).json()
        assert bad["state"] == "failed" and "bad arguments for get_logs: 'lines'" in bad["error"]
    finally:
        agent.stop()


def test_an_offline_device_refuses_or_queues_and_gets_queued_commands_when_it_comes_back(api: Api,
                                                                                         agent_dir: Path) -> None:
    device_id = _read_id(agent_dir)
    wait_for(lambda: not api.online(device_id), what="the device offline (its clean stop said so)")
    refused = api.send(device_id, "ping")
    assert refused.status_code == 409 and refused.json()["error"] == "DeviceOffline"
    kept = api.send(device_id, "ping", offline="queue", expires_s=3600)
    short = api.send(device_id, "restart_pipeline", offline="queue", expires_s=1)
    assert kept.status_code == short.status_code == 202
    wait_for(lambda: api.command(device_id, short.json()["request_id"])["state"] == "expired", 30,
             "the short-lived queued command to expire")
    agent = _agent(agent_dir)
    try:
        done = wait_for(lambda: (c := api.command(device_id, kept.json()["request_id"]))["state"] == "succeeded"
                        and c, 30, "the queued ping delivered on reconnect")
        assert done["reply"]["result"]["pong"] is True and done["sent_at"] > done["created_at"]
        assert api.command(device_id, short.json()["request_id"])["state"] == "expired"
        assert agent.host.rebuilds == 1  # the expired restart_pipeline never ran
    finally:
        agent.stop()


def test_a_device_that_does_not_answer_times_out_and_its_late_reply_is_kept(server: ServerHandle, api: Api,
                                                                            tmp_path: Path) -> None:
    token = httpx.post(f"{api.base}/tokens", json={}, headers=api.headers).json()["token"]
    creds = httpx.post(f"{api.base}/enroll", json={"token": token, "csr": make_csr()[1],
                                                   "name": unique_name("mute")}, timeout=30).json()
    mute = SimDevice(creds["device_id"], creds["broker_url"], creds["mqtt_username"], creds["mqtt_password"]).start()
    device_id = creds["device_id"]
    try:
        mute.peer.subscribe(f"{p.TOPIC_ROOT}/{device_id}/cmd/+")
        wait_for(lambda: api.online(device_id), what="the mute device online")
        r = api.send(device_id, "ping", timeout_s=1)
        command = r.json()
        assert r.status_code == 200 and command["state"] == "timed_out", command
        assert "no reply within 1 s" in command["error"]
        sealed = mute.peer.expect(p.cmd_topic(device_id, command["request_id"]))
        sent = json.loads(opened(sealed.topic, sealed.payload))
        assert sent["name"] == "ping" and sent["deadline"]  # every command carries a deadline
        late = p.CommandReply(ok=True, result={"pong": True})
        mute.peer.publish(p.cmd_reply_topic(device_id, command["request_id"]), late.encode())
        kept = wait_for(lambda: (c := api.command(device_id, command["request_id"]))["reply"] and c,
                        what="the late reply stored")
        assert kept["state"] == "timed_out" and kept["reply"]["ok"] is True
        key_file = tmp_path / "key"
        key_file.write_text(server.admin_key)
        silent = _cli(server, key_file, device_id, "ping", "--timeout", "0.5")
        assert silent.exit_code == 4 and "timed_out" in silent.output
    finally:
        mute.stop()


def _cli(server: ServerHandle, key_file: Path, *args: str):  # noqa: ANN202 - click Result
    """`edgefleet devices cmd ...` as a user types it (in-process: the same code, without a Python start-up)."""
    return runner.invoke(cli, ["devices", "cmd", *args, "--server", server.url, "--api-key-file", str(key_file)],
                         env=CLI_ENV)


def test_the_cli_runs_a_command_and_says_how_it_went_in_its_exit_code(server: ServerHandle, api: Api,
                                                                     agent_dir: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(server.admin_key)
    device_id = _read_id(agent_dir)
    wait_for(lambda: not api.online(device_id), what="the device offline")
    offline = _cli(server, key_file, device_id, "ping")
    assert offline.exit_code == 1 and "offline" in offline.output
    queued = _cli(server, key_file, device_id, "get_logs", "--arg", "lines=3", "--queue", "--json")
    assert queued.exit_code == 0 and json.loads(queued.stdout)["state"] == "queued"
    assert json.loads(queued.stdout)["args"] == {"lines": 3}  # k=v values are read as JSON
    bad = _cli(server, key_file, device_id, "ping", "--arg", "oops")
    assert bad.exit_code == 2 and "key=value" in bad.output
    agent = _agent(agent_dir)
    try:
        wait_for(lambda: api.online(device_id), what="the device online")
        shot = tmp_path / "shot.jpg"
        ok = _cli(server, key_file, device_id, "snapshot", "--save", str(shot))
        assert ok.exit_code == 0, ok.output
        assert "succeeded" in ok.output and shot.read_bytes()[:2] == b"\xff\xd8"
        refused = _cli(server, key_file, device_id, "reboot")
        assert refused.exit_code == 1 and "not allowed" in refused.output
    finally:
        agent.stop()
