"""The CLI as a user runs it, against a whole server running in-process on a free port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_server.cli import apikey_app, devices_app, parse_duration, token_app
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings
from tests.fleet_server.conftest import make_csr

runner = CliRunner()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    settings = ServerSettings(state_dir=tmp_path / "server", port=0, embedded_broker_port=0)
    with start_server_in_thread(settings, start_mqtt=False) as handle:
        yield handle


def _run(app, server: ServerHandle, *args: str, key: str | None = None):  # noqa: ANN001, ANN202
    result = runner.invoke(app, [*args, "--server", server.url, "--api-key", key or server.admin_key])
    return result


def _enroll(server: ServerHandle, token: str) -> str:
    import httpx

    r = httpx.post(f"{server.url}/api/v1/enroll", json={"token": token, "csr": make_csr()[1], "name": "cli cam"})
    assert r.status_code == 200, r.text
    return r.json()["device_id"]


def test_token_create_then_enroll_then_devices_ls_and_show(server: ServerHandle) -> None:
    result = _run(token_app, server, "create", "--ttl", "10m", "--uses", "2", "--tags", "site=lab,floor=2", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["uses_left"] == 2 and created["tags"] == {"site": "lab", "floor": "2"}
    device_id = _enroll(server, created["token"])

    listed = json.loads(_run(devices_app, server, "ls", "--json").output)
    assert [d["id"] for d in listed] == [device_id] and listed[0]["status"] == "offline"
    filtered = json.loads(_run(devices_app, server, "ls", "--tag", "site=elsewhere", "--json").output)
    assert filtered == []
    shown = json.loads(_run(devices_app, server, "show", device_id, "--json").output)
    assert shown["id"] == device_id and shown["tags"] == {"site": "lab", "floor": "2"}

    table = _run(devices_app, server, "ls")
    assert table.exit_code == 0 and device_id in table.output
    tokens = json.loads(_run(token_app, server, "ls", "--json").output)
    assert tokens[0]["uses_left"] == 1 and "token" not in tokens[0]


def test_token_create_plain_prints_the_token_on_its_own_line(server: ServerHandle) -> None:
    result = _run(token_app, server, "create")
    assert result.exit_code == 0
    assert result.output.strip().splitlines()[-1].startswith("eft_")


def test_decommission_from_the_cli(server: ServerHandle) -> None:
    token = json.loads(_run(token_app, server, "create", "--json").output)["token"]
    device_id = _enroll(server, token)
    result = _run(devices_app, server, "decommission", device_id)
    assert result.exit_code == 0 and "decommissioned" in result.output
    again = _run(devices_app, server, "decommission", device_id)
    assert again.exit_code == 1 and "already decommissioned" in again.output


def test_apikey_create_and_ls_and_a_viewer_key_cannot_create_tokens(server: ServerHandle) -> None:
    created = json.loads(_run(apikey_app, server, "create", "--role", "viewer", "--name", "grafana", "--json").output)
    listing = json.loads(_run(apikey_app, server, "ls", "--json").output)
    assert {k["role"] for k in listing} == {"admin", "viewer"}
    refused = _run(token_app, server, "create", key=created["key"])
    assert refused.exit_code == 1 and "403" in refused.output


def test_the_local_admin_key_file_is_used_when_no_key_is_given(server: ServerHandle,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEFLEET_API_KEY", raising=False)
    result = runner.invoke(devices_app, ["ls", "--json", "--server", server.url,
                                         "--state-dir", str(server.settings.state_dir)])
    assert result.exit_code == 0, result.output


def test_a_wrong_key_and_an_unreachable_server_fail_with_clear_messages(server: ServerHandle) -> None:
    wrong = _run(devices_app, server, "ls", key="efk_0123456789ab." + "C" * 43)
    assert wrong.exit_code == 1 and "invalid API key" in wrong.output
    gone = runner.invoke(devices_app, ["ls", "--server", "http://127.0.0.1:9", "--api-key", "x"])
    assert gone.exit_code == 3 and "cannot reach" in gone.output


def test_token_create_directly_on_the_database_for_bootstrapping(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'boot.db'}"
    result = runner.invoke(token_app, ["create", "--db", url, "--uses", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["uses_left"] == 3


@pytest.mark.parametrize("text,seconds", [("90", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations_and_tags_are_usage_errors(server: ServerHandle) -> None:
    assert _run(token_app, server, "create", "--ttl", "soon").exit_code == 2
    assert _run(token_app, server, "create", "--tags", "novalue").exit_code == 2


def test_server_run_prints_its_addresses_and_admin_key_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from fleet_server.cli import server_app; server_app(prog_name='server')", "run",
         "--port", "0", "--broker-port", "0", "--state-dir", str(tmp_path / "srv")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "efk_" in line or "admin API key: in" in line:
                break
        text = "".join(lines)
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", text)
        key = re.search(r"(efk_\S+)", text)
        assert url and key and re.search(r"MQTT broker: mqtt://127\.0\.0\.1:\d+", text), text
        listed = runner.invoke(devices_app, ["ls", "--json", "--server", url.group(1), "--api-key", key.group(1)])
        assert listed.exit_code == 0 and json.loads(listed.output) == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
