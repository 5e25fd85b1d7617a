"""The systemd units: what `agent install-service` writes and the shipped server unit pass `systemd-analyze
verify` and carry the hardening the deployment relies on; secrets reach the agent and the server through
systemd credentials ($CREDENTIALS_DIRECTORY), as the units hand them over."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from edge_agent.cli import agent_app
from edge_agent.cli.service import AgentUnit, default_executable, render_unit
from edge_agent.fleet.state import StateDir
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SHIPPED_EXECUTABLE = "/opt/edgefleet/bin/edgefleet"
runner = CliRunner()


def _directives(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (keys repeat: Environment=, LoadCredential=)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _verify(unit: Path) -> None:
    """`systemd-analyze verify`: syntax, known directives, and an ExecStart= that exists and is executable."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def _real_executable() -> Path:
    exe = default_executable()
    assert exe.exists(), f"no edgefleet program beside {sys.executable} or on PATH to point the unit at"
    return exe


def test_install_service_writes_a_hardened_agent_unit_that_verifies(tmp_path: Path) -> None:
    unit = tmp_path / "edgefleet-agent.service"
    result = runner.invoke(agent_app, ["install-service", "--out", str(unit), "--user", "camera",
                                       "--state-dir", "/var/lib/edgefleet/cam0", "--server", "https://fleet.test"])
    assert result.exit_code == 0, result.output
    _verify(unit)
    d = _directives(unit.read_text())
    assert d["User"] == ["camera"] and d["SupplementaryGroups"] == ["video"]
    assert d["ExecStart"] == [f"{_real_executable()} agent run --state-dir /var/lib/edgefleet/cam0"]
    assert d["ReadWritePaths"] == ["/var/lib/edgefleet/cam0"] and d["StateDirectory"] == ["edgefleet/cam0"]
    for key, value in {"Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "LoadCredential": "edgefleet-enroll-token"}.items():
        assert d[key] == [value], key
    assert d["ExecStartPre"] == [f"{_real_executable()} agent enroll --if-needed --server https://fleet.test "
                                 f"--state-dir /var/lib/edgefleet/cam0"]


def test_install_service_refuses_a_relative_state_dir_and_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(agent_app, ["install-service", "--out", str(tmp_path / "x.service"),
                                       "--state-dir", "relative/agent"])
    assert result.exit_code == 2 and "absolute" in result.output
    assert not (tmp_path / "x.service").exists()


def test_the_shipped_units_verify_and_the_agent_one_is_what_install_service_writes(tmp_path: Path) -> None:
    shipped = (DEPLOY / "edgefleet-agent.service").read_text()
    assert shipped == render_unit(AgentUnit(executable=Path(SHIPPED_EXECUTABLE), server="https://fleet.example.com"))
    for name in ("edgefleet-agent.service", "edgefleet-server.service"):
        local = tmp_path / name
        local.write_text((DEPLOY / name).read_text().replace(SHIPPED_EXECUTABLE, str(_real_executable())))
        _verify(local)
    d = _directives((DEPLOY / "edgefleet-server.service").read_text())
    assert d["ExecStart"] == [f"{SHIPPED_EXECUTABLE} server run"] and d["LoadCredential"] == ["edgefleet_db_url"]
    assert "/var/lib/edgefleet/server" in d["ReadWritePaths"][0].split()
    for key, value in {"Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "User": "edgefleet"}.items():
        assert d[key] == [value], key


@pytest.fixture()
def api_server(tmp_path: Path) -> Iterator[ServerHandle]:
    settings = ServerSettings(state_dir=tmp_path / "server", port=0, public_broker_url="mqtts://127.0.0.1:8883")
    with start_server_in_thread(settings, start_mqtt=False) as handle:
        yield handle


def test_the_agent_enrolls_with_the_token_credential_once_and_later_starts_need_none(
        api_server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = httpx.post(f"{api_server.url}/api/v1/tokens", json={},
                       headers={"Authorization": f"Bearer {api_server.admin_key}"}).json()["token"]
    credentials, state = tmp_path / "credentials", tmp_path / "agent"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.delenv("EDGEFLEET_ENROLL_TOKEN", raising=False)
    monkeypatch.delenv("EDGEFLEET_ENROLL_TOKEN_FILE", raising=False)
    enroll = ["enroll", "--if-needed", "--server", api_server.url, "--state-dir", str(state)]
    (credentials / "edgefleet-enroll-token").write_text("\n")  # the unit's SetCredential= fallback: no token
    refused = runner.invoke(agent_app, enroll)
    assert refused.exit_code == 2 and "edgefleet-enroll-token" in refused.output
    assert not StateDir(state).is_enrolled()
    (credentials / "edgefleet-enroll-token").write_text(token + "\n")
    first = runner.invoke(agent_app, enroll)
    assert first.exit_code == 0 and StateDir(state).is_enrolled(), first.output
    (credentials / "edgefleet-enroll-token").write_text("\n")  # the spent token's file removed
    again = runner.invoke(agent_app, enroll)
    assert again.exit_code == 0 and "already enrolled" in again.output


def test_server_settings_come_from_credentials_below_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "edgefleet_db_url").write_text("postgresql+psycopg://fleet@db.internal/fleet\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.delenv("EDGEFLEET_DB_URL", raising=False)
    assert ServerSettings(state_dir=tmp_path).database_url() == "postgresql+psycopg://fleet@db.internal/fleet"
    monkeypatch.setenv("EDGEFLEET_DB_URL", "sqlite:///elsewhere.db")
    assert ServerSettings(state_dir=tmp_path).database_url() == "sqlite:///elsewhere.db"
