"""The production broker path: Mosquitto requiring client certificates (TLS 1.2), identity = certificate CN."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgefleet import protocol
from edge_agent.fleet.enroll import generate_key_and_csr
from edge_agent.fleet.sim import SimulatedDevice
from tests import services
from tests.edge_agent.conftest import make_config, write_state
from tests.mqtt_client import Peer, tls_context


def _cert(subject: str, public_key, issuer_key, issuer_name: x509.Name | None = None, *, ca: bool = False,
          san: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san), x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture()
def mtls_broker(tmp_path: Path, private_mosquitto: Callable[..., services.Mosquitto]):
    work = tmp_path / "mtls"
    work.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("fleet CA", ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("localhost", server_key.public_key(), ca_key, ca.subject, san="localhost")
    for name, data in (("ca.crt", _pem(ca)), ("server.crt", _pem(server)), ("server.key", _pem(server_key))):
        (work / name).write_bytes(data)
        os.chmod(work / name, 0o644)
    lines = ["per_listener_settings false", "allow_anonymous false", "listener {port} 127.0.0.1",
             f"cafile {work}/ca.crt", f"certfile {work}/server.crt", f"keyfile {work}/server.key",
             "require_certificate true", "use_identity_as_username true", "tls_version tlsv1.2"]
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    return private_mosquitto(lines, work), ca, ca_key


def test_agent_connects_with_its_client_certificate_over_tls12(mtls_broker, tmp_path):
    broker, ca, ca_key = mtls_broker
    config = make_config(broker.port, broker_url=f"mqtts://127.0.0.1:{broker.port}")
    state = write_state(tmp_path / "dev", config)
    key_pem, csr_pem = generate_key_and_csr("whatever")  # what enrollment does; the CA sets CN = device id
    csr = x509.load_pem_x509_csr(csr_pem)
    cert = _cert(config.device_id, csr.public_key(), ca_key, ca.subject)
    state.write_secret(state.key_path, key_pem)
    state.write_public(state.cert_path, _pem(cert))
    state.write_public(state.ca_path, _pem(ca))
    # the server side of this test: a client with its own certificate
    server_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "probe.crt").write_bytes(_pem(_cert("fleet-server", server_key.public_key(), ca_key, ca.subject)))
    (tmp_path / "probe.key").write_bytes(_pem(server_key))
    probe = Peer(broker.port, "fleet-server", tls=tls_context(state.ca_path, tmp_path / "probe.crt",
                                                              tmp_path / "probe.key"))
    assert not probe.connect().is_failure
    probe.subscribe(protocol.status_topic(config.device_id))
    device = SimulatedDevice(config, state.root).start()
    try:
        assert device.wait_ready(15), "the agent did not get through TLS + client-certificate auth"
        assert protocol.decode(protocol.Status, probe.expect(protocol.status_topic(config.device_id)).payload
                               ).state == "online"
    finally:
        device.stop()
        probe.close()


def test_agent_without_a_certificate_is_refused_and_keeps_retrying(mtls_broker, tmp_path):
    broker, ca, _ = mtls_broker
    config = make_config(broker.port, broker_url=f"mqtts://127.0.0.1:{broker.port}")
    state = write_state(tmp_path / "dev", config)
    state.write_public(state.ca_path, _pem(ca))  # trusts the broker, but has no certificate of its own
    device = SimulatedDevice(config, state.root).start()
    try:
        assert not device.wait_ready(2)
        assert device.host.running  # the pipeline runs while the link keeps trying
    finally:
        device.stop()
