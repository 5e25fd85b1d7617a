"""The server's MQTT bridge and its connection: refused logins, a broker that comes up late or restarts
(embedded and Mosquitto), the on_connected callback, and client certificates over TLS 1.2."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from edgefleet import protocol as p
from fleet_server.mqtt_bridge import MqttBridge, TlsFiles
from tests import services
from tests.fleet_server.bridge_env import Env, Recorder, embedded_broker, event, recorder  # noqa: F401
from tests.fleet_server.nats_logins import SERVER_USER, NatsLogins, start_nats
from tests.mqtt_client import TIMEOUT, Peer, tls_context, unique_id
from tests.waiting import wait_for


# --------------------------------------------------------------------------------------------- connection
def test_a_refused_login_never_counts_as_connected(embedded_broker: tuple, recorder: Recorder) -> None:
    broker, _, _ = embedded_broker
    b = MqttBridge(broker.url, recorder, username=SERVER_USER, password="wrong", client_id="edgefleet-server-x")
    b.start()
    try:
        wait_for(lambda: b.last_error is not None, what="the broker's refusal")
        assert "Not authorized" in b.last_error
        assert not b.connected and not b.wait_connected(0)
    finally:
        b.stop()


def test_bridge_started_before_the_broker_connects_when_it_comes_up(recorder: Recorder, tmp_path: Path) -> None:
    port, password = services.free_port(), "pw"
    b = MqttBridge(f"mqtt://127.0.0.1:{port}", recorder, username=SERVER_USER, password=password)
    b.start()
    broker = None
    try:
        wait_for(lambda: b.last_error is not None, what="a failed first connect")
        assert "cannot reach" in b.last_error and not b.connected
        broker = start_nats(tmp_path / "nats", password, port)
        assert b.wait_connected(TIMEOUT * 2)
        assert b.last_error is None
    finally:
        b.stop()
        if broker is not None:
            broker.stop()


def _survives_restart(env: Env, recorder: Recorder, restart: Callable[[MqttBridge], None]) -> None:
    b = env.bridge(recorder, shared_telemetry=False)
    b.start()
    try:
        assert b.wait_connected(TIMEOUT)
        restart(b)
        assert b.wait_connected(TIMEOUT * 3)
        dev = env.device()
        env.connect(dev).publish(p.events_topic(dev), event(6).encode())
        recorder.wait_for("event", dev)  # resubscribed after the restart
    finally:
        b.stop()


def test_bridge_reconnects_and_resubscribes_after_the_embedded_broker_restarts(recorder: Recorder,
                                                                              tmp_path: Path) -> None:
    logins = NatsLogins()
    brokers = [start_nats(tmp_path / "nats", "pw", logins=logins)]
    env = Env("embedded", brokers[0].mqtt_port, logins, "pw")

    def restart(bridge: MqttBridge) -> None:
        brokers[-1].stop()
        wait_for(lambda: not bridge.connected, what="the bridge to notice the broker is gone")
        brokers.append(start_nats(tmp_path / "nats", "pw", env.port, logins))

    try:
        _survives_restart(env, recorder, restart)
    finally:
        env.close()
        brokers[-1].stop()


def test_on_connected_is_called_once_per_connection_after_the_subscriptions(recorder: Recorder,
                                                                           tmp_path: Path) -> None:
    """The app republishes desired twins from this callback, so it must come after every reconnect, and only
    once the bridge is subscribed (a reply to what it publishes there must not be missed)."""
    broker = start_nats(tmp_path / "nats", "pw")
    port = broker.mqtt_port
    seen: list[tuple[bool, bool]] = []
    b = MqttBridge(f"mqtt://127.0.0.1:{port}", recorder, username=SERVER_USER, password="pw", shared_telemetry=False,
                   on_connected=lambda: seen.append((b.connected, b.wait_connected(0))))
    b.start()
    try:
        wait_for(lambda: len(seen) == 1, what="the first on_connected")
        broker.stop()
        wait_for(lambda: not b.connected, what="the bridge to notice the broker is gone")
        assert len(seen) == 1
        broker = start_nats(tmp_path / "nats", "pw", port)
        wait_for(lambda: len(seen) == 2, timeout=TIMEOUT * 3, what="on_connected after the reconnect")
        assert seen == [(True, True), (True, True)]
    finally:
        b.stop()
        broker.stop()


def test_bridge_reconnects_and_resubscribes_after_mosquitto_restarts(
        recorder: Recorder, private_mosquitto: Callable[..., services.Mosquitto]) -> None:
    mosquitto = private_mosquitto()
    env = Env("mosquitto", mosquitto.port)

    def restart(bridge: MqttBridge) -> None:
        mosquitto.stop()
        wait_for(lambda: not bridge.connected, what="the bridge to notice the broker is gone")
        mosquitto.start()

    try:
        _survives_restart(env, recorder, restart)
    finally:
        env.close()


# --------------------------------------------------------------------------------------------- mTLS
def test_bridge_connects_with_client_certificates_over_tls_1_2(
        recorder: Recorder, tmp_path: Path, private_mosquitto: Callable[..., services.Mosquitto]) -> None:
    """Mosquitto with `require_certificate` (the production set-up, docs/MEASUREMENTS.md): the bridge logs in
    with the server's certificate, a device with the one the fleet CA issued it; a certificate from another CA
    is refused."""
    from cryptography.hazmat.primitives import serialization

    from fleet_server.pki import CertificateAuthority, write_private
    from tests.fleet_server.conftest import make_csr

    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    server_cert, server_key = ca.server_identity(["127.0.0.1"])
    dev = unique_id("tls")
    key, csr = make_csr()
    (tmp_path / "dev.crt").write_bytes(ca.sign_csr(csr, dev).public_bytes(serialization.Encoding.PEM))
    write_private(tmp_path / "dev.key", key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    other_ca = CertificateAuthority.load_or_create(tmp_path / "other")
    other_cert, other_key = other_ca.server_identity(["127.0.0.1"])

    acl = tmp_path / "acl"
    acl.write_text("user server\ntopic readwrite #\n\npattern readwrite edgefleet/v1/%u/#\n")
    for f in tmp_path.rglob("*"):
        f.chmod(0o644 if f.is_file() else 0o755)  # Mosquitto may drop to its own user
    lines = services.plain_mosquitto_config()
    lines = [line for line in lines if not line.startswith(("listener", "allow_anonymous"))] + [
        "per_listener_settings false", "allow_anonymous false", f"acl_file {acl}",
        "listener {port} 127.0.0.1", f"cafile {ca.cert_path}", f"certfile {server_cert}", f"keyfile {server_key}",
        "require_certificate true", "use_identity_as_username true", "use_username_as_clientid true",
        "tls_version tlsv1.2",
    ]
    mosquitto = private_mosquitto(lines, tmp_path)
    b = MqttBridge(f"mqtts://127.0.0.1:{mosquitto.port}", recorder, client_id="server", shared_telemetry=False,
                   tls=TlsFiles(ca=ca.cert_path, cert=server_cert, key=server_key))
    b.start()
    try:
        assert b.wait_connected(TIMEOUT)
        device = Peer(mosquitto.port, dev, tls=tls_context(ca.cert_path, tmp_path / "dev.crt", tmp_path / "dev.key"))
        assert not device.connect().is_failure
        device.publish(p.events_topic(dev), event(7).encode())
        assert recorder.wait_for("event", dev)[-1] == event(7)
        device.close()
        stranger = Peer(mosquitto.port, dev, tls=tls_context(ca.cert_path, other_cert, other_key))
        with pytest.raises(ssl.SSLError, match="unknown ca"):
            stranger.connect()
        stranger.close()
    finally:
        b.stop()
