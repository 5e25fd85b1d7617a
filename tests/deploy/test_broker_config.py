"""The production broker: a real Mosquitto started from exactly what `edgefleet server broker-config` writes,
with the whole server (API + bridge) on it and devices enrolled through the real API.

One scenario covers the facts, since starting the broker, the server and an agent is most of the cost: the
enrolled agent logs in with the certificate it got and talks to the server both ways; another device's
certificate neither reaches nor forges a third device's topics; no certificate, another CA's certificate and
a decommissioned device's certificate are all refused; the server's own identity runs the bridge.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from edge_agent.fleet.enroll import enroll
from edge_agent.fleet.sim import SimulatedDevice
from edgefleet import protocol as p
from fleet_server.cli import server_app
from fleet_server.pki import CertificateAuthority, cert_pem
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings
from tests import services
from tests.fleet_server.conftest import make_csr
from tests.mqtt_client import Peer, tls_context, unique_id, unique_name
from tests.waiting import wait_for

@dataclass
class Deployment:
    port: int
    out: Path
    server: ServerHandle

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}/api/v1{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.server.admin_key}"}, **kw)

    def token(self) -> str:
        return self.api("POST", "/tokens", json={}).json()["token"]

    def device(self, device_id: str) -> dict:
        return self.api("GET", f"/devices/{device_id}").json()


@pytest.fixture()
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    assert request.node.get_closest_marker("mosquitto"), "tests of the deployment need the mosquitto marker"
    binary = services.mosquitto_binary()
    if binary is None:
        services.service_missing("mosquitto is not installed (apt-get install mosquitto)")
    port, out, state = services.free_port(), tmp_path / "broker", tmp_path / "server"
    run_as = ["--run-as", "root"] if os.geteuid() == 0 else []  # else it drops to `mosquitto`, who cannot read tmp
    written = CliRunner().invoke(server_app, ["broker-config", "--out", str(out), "--state-dir", str(state),
                                              "--port", str(port), "--bind", "127.0.0.1", *run_as])
    assert written.exit_code == 0, written.output
    log = (tmp_path / "mosquitto.log").open("wb")
    broker = subprocess.Popen([binary, "-c", str(out / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        services.wait_port(port)
        settings = ServerSettings(state_dir=state, port=0, broker=f"mqtts://127.0.0.1:{port}",
                                  broker_crl_file=out / "crl.pem", broker_pid_file=out / "mosquitto.pid")
        with start_server_in_thread(settings) as handle:
            assert handle.fleet.bridge.wait_connected(30), "the server's identity did not connect and subscribe"
            yield Deployment(port, out, handle)
    finally:
        broker.terminate()
        broker.wait(10)
        log.close()


def _raw_device(deploy: Deployment, tmp_path: Path, name: str) -> tuple[str, ssl.SSLContext]:
    """Enroll through the API with a key we hold; return the device id and a TLS context with its certificate."""
    key, csr = make_csr()
    r = httpx.post(f"{deploy.server.url}/api/v1/enroll", json={"token": deploy.token(), "csr": csr,
                                                                "name": unique_name(name)})
    assert r.status_code == 200, r.text
    creds = r.json()
    files = tmp_path / creds["device_id"]
    files.mkdir()
    (files / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (files / "cert.pem").write_text(creds["certificate"])
    (files / "ca.pem").write_text(creds["ca_certificate"])
    return creds["device_id"], tls_context(files / "ca.pem", files / "cert.pem", files / "key.pem")


def _refused(port: int, tls: ssl.SSLContext) -> bool:
    """Whether the broker turns this TLS identity away (in the handshake, or with a failed CONNACK)."""
    peer = Peer(port, unique_id("probe"), tls=tls)
    try:
        return peer.connect().is_failure
    except (OSError, ssl.SSLError):
        return True
    finally:
        peer.close()


def _other_ca_identity(tmp_path: Path) -> ssl.SSLContext:
    """A well-formed device certificate signed by a CA that is not the fleet's."""
    other = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    key, csr = make_csr()
    (tmp_path / "other.crt").write_text(cert_pem(other.sign_csr(csr, "dev-000000000000")))
    (tmp_path / "other.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return tls_context(deployment_ca(tmp_path), tmp_path / "other.crt", tmp_path / "other.key")


def deployment_ca(tmp_path: Path) -> Path:
    return tmp_path / "broker" / "ca.crt"


@pytest.mark.mosquitto
def test_the_written_mosquitto_config_logs_devices_in_by_certificate_and_confines_them(
        deployment: Deployment, tmp_path: Path) -> None:
    deploy = deployment
    config = enroll(deploy.server.url, deploy.token(), tmp_path / "agent", name=unique_name("cam"),
                    source="synthetic")
    assert config.broker_url == f"mqtts://127.0.0.1:{deploy.port}"
    agent = SimulatedDevice(config, tmp_path / "agent").start()
    try:
        assert agent.wait_ready(15), "the agent did not log in with its enrollment certificate"
        wait_for(lambda: deploy.device(config.device_id)["online"], what="the agent online at the server")
        # both ways: the server publishes a desired twin, the agent applies it, reports it, and sends telemetry
        # through the server's shared subscription
        r = deploy.api("PATCH", f"/devices/{config.device_id}/twin",
                       json={"pipeline": {"telemetry_interval_s": 0.5}, "properties": {"site": "dock"}})
        assert r.json()["published"] is True
        wait_for(lambda: deploy.device(config.device_id)["in_sync"], what="the agent's report of the twin")
        wait_for(lambda: deploy.api("GET", f"/devices/{config.device_id}/telemetry").json(), what="telemetry")

        intruder_id, intruder_tls = _raw_device(deploy, tmp_path, "intruder")
        victim_id, victim_tls = _raw_device(deploy, tmp_path, "victim")
        victim = Peer(deploy.port, victim_id, tls=victim_tls)
        intruder = Peer(deploy.port, intruder_id, tls=intruder_tls)
        assert not victim.connect().is_failure and not intruder.connect().is_failure
        victim.subscribe(*p.device_subscriptions(victim_id))
        intruder.subscribe("edgefleet/v1/#", *p.device_subscriptions(intruder_id))
        # forging: the server's view of the agent and the victim's desired twin and commands
        intruder.publish(p.status_topic(config.device_id), p.Status(state="offline", reason="forged").encode(),
                         retain=True)
        forged = p.TwinDesired(revision=99).encode()
        intruder.publish(p.twin_desired_topic(victim_id), forged, retain=True)
        intruder.publish(p.cmd_topic(victim_id, "forged1"), b'{"forged": true}')
        intruder.publish(p.status_topic(intruder_id), p.Status(state="online", agent_version="t").encode())
        wait_for(lambda: deploy.device(intruder_id)["online"], what="the intruder's own status at the server")
        assert deploy.device(config.device_id)["online"], "another device's certificate wrote the agent's status"
        # the server's messages to the victim, then to the intruder: it would have seen the victim's first
        assert deploy.api("PATCH", f"/devices/{victim_id}/twin", json={"camera": "usb:0"}).json()["published"]
        assert deploy.api("PATCH", f"/devices/{intruder_id}/twin", json={"camera": "usb:1"}).json()["published"]
        victim.expect(p.twin_desired_topic(victim_id))
        intruder.expect(p.twin_desired_topic(intruder_id))
        assert [m.payload for m in victim.messages if m.payload == forged or b"forged" in m.payload] == []
        assert {m.topic for m in intruder.messages} == {p.twin_desired_topic(intruder_id)}

        # logins refused: no certificate, another CA's, and the intruder's once decommissioned
        no_cert = ssl.create_default_context(cafile=str(deployment_ca(tmp_path)))
        no_cert.maximum_version = ssl.TLSVersion.TLSv1_2
        assert _refused(deploy.port, no_cert)
        assert _refused(deploy.port, _other_ca_identity(tmp_path))
        intruder.close()
        assert deploy.api("DELETE", f"/devices/{intruder_id}").status_code == 200
        wait_for(lambda: _refused(deploy.port, intruder_tls), what="the decommissioned certificate refused")
        victim.close()
        assert not _refused(deploy.port, victim_tls), "after the CRL reload a valid certificate is refused"
        assert deploy.device(config.device_id)["online"]  # the agent's session lived through the reload
    finally:
        agent.stop()


def test_broker_config_into_a_path_that_is_a_file_is_a_clear_error_and_leaves_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "broker"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(server_app, ["broker-config", "--out", str(blocker), "--state-dir",
                                             str(tmp_path / "server")])
    assert result.exit_code == 1 and "cannot write the broker config" in result.output
    assert blocker.read_text() == "not a directory"
