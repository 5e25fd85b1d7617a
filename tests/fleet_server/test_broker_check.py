"""The start-up check of an external broker (fleet_server/broker_check.py) against real Mosquitto processes: the
machine's stock one (anonymous allowed: refused, unless --insecure-broker, which warns), one with passwords and
an ACL, and mTLS ones with certificates from the fleet CA, with a per-device ACL (passes) and without (refused)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet_server.pki import CertificateAuthority
from fleet_server.server import ServerStartError, start_server_in_thread
from fleet_server.settings import ServerSettings
from fleet_server.tls_identity import issue_tls_identity
from tests import services

PER_DEVICE_ACL = "pattern readwrite edgefleet/v1/%u/#"


def _settings(tmp_path: Path, broker: str, **values: object) -> ServerSettings:
    return ServerSettings(state_dir=tmp_path / "server", port=0, broker=broker, shared_telemetry=False, **values)


def _root_line() -> list[str]:
    return ["user root"] if os.geteuid() == 0 else []


def test_a_broker_that_lets_anonymous_clients_in_is_refused_unless_insecure_is_asked_for(
        tmp_path: Path, mosquitto_port: int, caplog: pytest.LogCaptureFixture) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto_port}"
    with pytest.raises(ServerStartError, match="accepts anonymous clients.*--insecure-broker"):
        start_server_in_thread(_settings(tmp_path, url))
    with caplog.at_level(logging.WARNING, logger="fleet_server.broker_check"):
        with start_server_in_thread(_settings(tmp_path, url, insecure_broker=True)) as server:
            assert server.running
    assert any("INSECURE" in r.getMessage() and url in r.getMessage() for r in caplog.records)


def test_a_broker_with_passwords_and_an_acl_passes(tmp_path: Path,
                                                   private_mosquitto: Callable[..., services.Mosquitto]) -> None:
    work = tmp_path / "mosq"
    work.mkdir()
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(work / "passwd"), "edgefleet-server", "s3cret"], check=True)
    (work / "acl").write_text(f"user edgefleet-server\ntopic readwrite #\n{PER_DEVICE_ACL}\n")
    broker = private_mosquitto([*_root_line(), "per_listener_settings false", "allow_anonymous false",
                                f"password_file {work}/passwd", f"acl_file {work}/acl", "listener {port} 127.0.0.1"],
                               work)
    settings = _settings(tmp_path, f"mqtt://127.0.0.1:{broker.port}", broker_username="edgefleet-server",
                         broker_password="s3cret")
    with start_server_in_thread(settings) as server:
        assert server.fleet.bridge.wait_connected(30)


def _mtls_broker(tmp_path: Path, start: Callable[..., services.Mosquitto], acl: str) -> services.Mosquitto:
    """Mosquitto requiring client certificates from the server's own fleet CA (made here, as the server would)."""
    ca = CertificateAuthority.load_or_create(tmp_path / "server" / "pki")
    cert, key = issue_tls_identity(ca, "mosquitto", ["127.0.0.1", "localhost"])
    work = tmp_path / "mosq"
    work.mkdir()
    (work / "acl").write_text(acl)
    return start([*_root_line(), "per_listener_settings false", "allow_anonymous false", f"acl_file {work}/acl",
                  "listener {port} 127.0.0.1", f"cafile {ca.cert_path}", f"certfile {cert}", f"keyfile {key}",
                  "require_certificate true", "use_identity_as_username true", "use_username_as_clientid true",
                  "tls_version tlsv1.2"], work)


def test_an_mtls_broker_with_a_per_device_acl_passes(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                     private_mosquitto: Callable[..., services.Mosquitto]) -> None:
    broker = _mtls_broker(tmp_path, private_mosquitto, f"user server\ntopic readwrite #\n{PER_DEVICE_ACL}\n")
    with caplog.at_level(logging.INFO, logger="fleet_server.broker_check"):
        with start_server_in_thread(_settings(tmp_path, f"mqtts://127.0.0.1:{broker.port}")) as server:
            assert server.fleet.bridge.wait_connected(30)
    assert any("keeps devices to their own topics" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("acl,finding", [
    ("pattern readwrite edgefleet/#\n", "a device read another device's topic"),  # every device, all of it
    ("user server\ntopic readwrite #\npattern read edgefleet/v1/%u/#\npattern write edgefleet/#\n",
     "a device wrote into another device's topics"),
])
def test_an_mtls_broker_that_lets_a_device_reach_another_devices_topics_is_refused(
        tmp_path: Path, private_mosquitto: Callable[..., services.Mosquitto], acl: str, finding: str) -> None:
    broker = _mtls_broker(tmp_path, private_mosquitto, acl)
    with pytest.raises(ServerStartError, match=finding):
        start_server_in_thread(_settings(tmp_path, f"mqtts://127.0.0.1:{broker.port}"))
