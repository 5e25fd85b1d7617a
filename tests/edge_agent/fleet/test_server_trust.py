"""Enrollment over HTTPS with the fleet CA pinned by fingerprint (edge_agent/fleet/server_trust.py), against a
real server serving HTTPS and an embedded broker with a TLS listener, both with certificates from its fleet CA.
A wrong fingerprint, an unverifiable server or plain http off loopback are refused before the token is sent."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from edgefleet.trust import certificate_fingerprint
from edge_agent.errors import EnrollmentError
from edge_agent.fleet.enroll import enroll
from edge_agent.fleet.sim import SimulatedDevice
from edge_agent.cli import agent_app
from fleet_server.cli import token_app
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    settings = ServerSettings(state_dir=tmp_path_factory.mktemp("trust") / "server", port=0, embedded_broker_port=0,
                              tls=True, embedded_broker_tls=True)
    with start_server_in_thread(settings) as handle:
        yield handle


def _api(server: ServerHandle, method: str, path: str, **kw: object) -> httpx.Response:
    verify = ssl.create_default_context(cafile=str(server.fleet.ca.cert_path))
    return httpx.request(method, f"{server.url}/api/v1{path}", headers={"Authorization": f"Bearer {server.admin_key}"},
                         verify=verify, timeout=30, **kw)


def _token(server: ServerHandle) -> tuple[str, str]:
    created = _api(server, "POST", "/tokens", json={"uses": 1}).json()
    return created["id"], created["token"]


def _uses_left(server: ServerHandle, token_id: str) -> int:
    return next(t["uses_left"] for t in _api(server, "GET", "/tokens").json() if t["id"] == token_id)


def _colons(fingerprint: str) -> str:
    """openssl's way of writing it, which enroll also accepts."""
    return ":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()


def test_token_create_prints_the_fingerprint_of_the_ca_the_server_presents(server: ServerHandle) -> None:
    result = CliRunner().invoke(token_app, ["create", "--json", "--server", server.url, "--state-dir",
                                            str(server.settings.state_dir)])
    assert result.exit_code == 0, result.output  # the CLI verified the server against the local fleet CA
    assert '"ca_fingerprint": "' + certificate_fingerprint(server.fleet.ca.cert) in result.output
    assert _api(server, "GET", "/ca").json()["fingerprint_sha256"] == certificate_fingerprint(server.fleet.ca.cert)


def test_enrolling_over_https_with_the_right_fingerprint_gives_a_device_that_connects_over_tls(
        server: ServerHandle, tmp_path: Path) -> None:
    assert server.url.startswith("https://")
    token_id, token = _token(server)
    fingerprint = certificate_fingerprint(server.fleet.ca.cert)
    config = enroll(server.url, token, tmp_path / "agent", name="tls-cam", ca_fingerprint=_colons(fingerprint))
    assert _uses_left(server, token_id) == 0
    assert config.broker_url.startswith("mqtts://127.0.0.1:")
    assert certificate_fingerprint((tmp_path / "agent" / "ca.crt").read_bytes()) == fingerprint
    device = SimulatedDevice(config, tmp_path / "agent").start()
    try:
        assert device.wait_ready(30), "the agent did not connect to the embedded broker over TLS"
        wait_for(lambda: _api(server, "GET", f"/devices/{config.device_id}").json()["online"], 30,
                 "the device to be online")
    finally:
        device.stop()


def test_a_wrong_fingerprint_is_refused_before_the_token_is_sent(server: ServerHandle, tmp_path: Path) -> None:
    token_id, token = _token(server)
    with pytest.raises(EnrollmentError, match="refusing to send the token"):
        enroll(server.url, token, tmp_path / "agent", ca_fingerprint="ab" * 32)
    with pytest.raises(EnrollmentError, match="not a SHA-256 fingerprint"):
        enroll(server.url, token, tmp_path / "agent", ca_fingerprint="abc")
    # without a fingerprint the fleet-CA certificate cannot be verified, and the error says what to pass
    with pytest.raises(EnrollmentError, match="--ca-fingerprint"):
        enroll(server.url, token, tmp_path / "agent")
    cli = CliRunner().invoke(agent_app, ["enroll", "--server", server.url, "--token", token, "--state-dir",
                                         str(tmp_path / "agent"), "--ca-fingerprint", "cd" * 32])
    assert cli.exit_code != 0 and "refusing to send the token" in cli.output
    assert _uses_left(server, token_id) == 1
    assert not (tmp_path / "agent" / "agent.json").exists()


@pytest.mark.parametrize("url", ["http://10.255.255.1:8080", "http://fleet.example.com", "ftp://127.0.0.1"])
def test_plain_http_off_loopback_is_refused_before_connecting(url: str, tmp_path: Path) -> None:
    with pytest.raises(EnrollmentError, match="refusing to enroll over plain http|must look like"):
        enroll(url, "eft_never-sent.secret", tmp_path / "agent")
    assert not (tmp_path / "agent").exists()
