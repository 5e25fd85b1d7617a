"""The server's MQTT bridge against BOTH brokers: the embedded amqtt one (server logs in with its password)
and the real Mosquitto (plain and anonymous). Devices are real MQTT clients with ids of this run; what they
leave retained on the machine's shared Mosquitto is cleared by the session sweep (tests/conftest.py)."""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edgefleet import protocol as p
from fleet_server.broker.thread import BrokerThread
from edgefleet.mqtt import BrokerUrl
from fleet_server.mqtt_bridge import BridgeError, MqttBridge, TlsFiles
from tests import services
from tests.fleet_server.bridge_env import Env, Recorder
from tests.fleet_server.broker.credentials import StaticCredentials
from tests.mqtt_client import TIMEOUT, Peer, tls_context, unique_id
from tests.waiting import wait_for

SHA = "a" * 64


@pytest.fixture(scope="module")
def embedded_broker() -> Iterator[tuple[BrokerThread, StaticCredentials, str]]:
    password = secrets.token_urlsafe(12)
    creds = StaticCredentials("server", password)
    broker = BrokerThread(port=0, checker=creds).start()
    yield broker, creds, password
    broker.stop()


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param == "embedded":
        broker, creds, password = request.getfixturevalue("embedded_broker")
        e = Env("embedded", broker.port, creds, password)
    else:
        e = Env("mosquitto", request.getfixturevalue("mosquitto_port"))
    yield e
    e.close()


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture()
def bridge(env: Env, recorder: Recorder) -> Iterator[MqttBridge]:
    b = env.bridge(recorder, shared_telemetry=env.kind == "mosquitto")
    b.start()
    assert b.wait_connected(TIMEOUT)
    yield b
    b.stop()


def _event(n: int) -> p.Event:
    return p.Event(kind="detection", camera_id="cam0", data={"n": n}, ts=datetime(2026, 1, 1, tzinfo=timezone.utc))


# --------------------------------------------------------------------------------------------- receiving
def test_device_messages_reach_the_handler_decoded(env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    sent = {
        "status": (p.status_topic(dev), p.Status(state="online", agent_version="1.2.3")),
        "reported": (p.twin_reported_topic(dev), p.TwinReported(desired_revision=4, backend="onnxruntime", slot="A")),
        "telemetry": (p.telemetry_topic(dev), p.Telemetry(device_id=dev, fps=12.5, frames_inferred=100)),
        "event": (p.events_topic(dev), _event(1)),
        "reply": (p.cmd_reply_topic(dev, "req-7"), p.CommandReply(ok=True, result={"pong": 1})),
        "ota_get": (p.ota_get_topic(dev), p.OtaGet(sha256=SHA, offset=262144, length=262144)),
    }
    for kind, (topic, message) in sent.items():
        device.publish(topic, message.encode(), retain=kind in ("status", "reported"))
    for kind, (_, message) in sent.items():
        call = recorder.wait_for(kind, dev)
        assert call[-1] == message
    assert recorder.wait_for("reply", dev)[2] == "req-7"


def test_malformed_messages_are_counted_and_dropped_and_the_next_good_one_arrives(
        env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev, other = env.device(), env.device("other")
    device = env.connect(dev)
    before = bridge.malformed_count
    device.publish(p.status_topic(dev), b"{not json")
    device.publish(p.events_topic(dev), b"\xff\xfe\x00")
    device.publish(p.telemetry_topic(dev), p.Telemetry(device_id=other).encode())  # claims another device
    device.publish(p.ota_get_topic(dev), b'{"v": 2, "sha256": "x", "offset": 0, "length": 1}')
    device.publish(p.events_topic(dev), _event(2).encode())
    assert recorder.wait_for("event", dev)[-1] == _event(2)
    assert [c[0] for c in recorder.of(dev)] == ["event"]
    assert bridge.malformed_count >= before + 4
    dropped = {topic: reason for topic, reason in bridge.recent_malformed}
    assert "Status" in dropped[p.status_topic(dev)]
    assert "UTF-8" in dropped[p.events_topic(dev)]
    assert other in dropped[p.telemetry_topic(dev)]
    assert "OtaGet" in dropped[p.ota_get_topic(dev)]


def test_a_malformed_topic_is_counted_and_dropped(recorder: Recorder, mosquitto_port: int) -> None:
    """Only an anonymous broker lets a client publish under an invalid device id, so this runs on Mosquitto."""
    env = Env("mosquitto", mosquitto_port)
    b = env.bridge(recorder, shared_telemetry=False)
    b.start()
    try:
        assert b.wait_connected(TIMEOUT)
        dev = env.device()
        rogue = Peer(mosquitto_port, unique_id("rogue"))
        rogue.connect()
        bad = f"{p.TOPIC_ROOT}/Not_A_Valid_ID/events"
        rogue.publish(bad, _event(1).encode())
        rogue.publish(p.events_topic(dev), _event(3).encode())
        recorder.wait_for("event", dev)
        rogue.close()
        assert bad in dict(b.recent_malformed)
        assert "invalid device id" in dict(b.recent_malformed)[bad]
    finally:
        b.stop()


def test_a_failing_handler_is_logged_and_the_bridge_keeps_going(
        env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    recorder.fail_on = "reply"
    device.publish(p.cmd_reply_topic(dev, "r1"), p.CommandReply(ok=False, error="boom").encode())
    device.publish(p.events_topic(dev), _event(4).encode())
    recorder.wait_for("event", dev)
    assert bridge.handler_errors >= 1
    assert bridge.connected


def test_a_cleared_retained_message_is_ignored_silently(env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    device.publish(p.status_topic(dev), p.Status(state="online").encode(), retain=True)
    device.publish(p.status_topic(dev), b"", retain=True)
    device.publish(p.events_topic(dev), _event(5).encode())
    recorder.wait_for("event", dev)
    assert [c[0] for c in recorder.of(dev)] == ["status", "event"]
    assert p.status_topic(dev) not in dict(bridge.recent_malformed)


def test_shared_telemetry_works_on_mosquitto_and_falls_back_on_the_embedded_broker(
        env: Env, recorder: Recorder) -> None:
    b = env.bridge(recorder, shared_telemetry=True)
    b.start()
    try:
        assert b.wait_connected(TIMEOUT)
        assert b.shared_telemetry is (env.kind == "mosquitto")
        dev = env.device()
        env.connect(dev).publish(p.telemetry_topic(dev), p.Telemetry(device_id=dev).encode(), qos=0)
        recorder.wait_for("telemetry", dev)
    finally:
        b.stop()


# --------------------------------------------------------------------------------------------- sending
def test_desired_twin_is_retained_for_a_late_subscriber_and_cleared_on_decommission(
        env: Env, bridge: MqttBridge) -> None:
    dev = env.device()
    desired = p.TwinDesired(revision=3, camera="synthetic", properties={"site": "lab"})
    bridge.publish_desired(dev, desired, timeout=TIMEOUT)
    late = env.connect(dev)
    late.subscribe(p.twin_desired_topic(dev))
    got = late.expect(p.twin_desired_topic(dev))
    assert got.retain and p.decode(p.TwinDesired, got.payload) == desired
    late.close()

    bridge.clear_device(dev, timeout=TIMEOUT)
    later = env.connect(dev)
    later.subscribe(p.twin_desired_topic(dev))
    later.subscribe(p.device_subscriptions(dev)[1])  # cmd/+: its SUBACK comes after the first one's retained messages
    bridge.publish_command(dev, "after-clear", p.Command(name="ping"), timeout=TIMEOUT)
    later.expect(p.cmd_topic(dev, "after-clear"))
    assert later.topics() == [p.cmd_topic(dev, "after-clear")]


def test_commands_and_ota_blocks_reach_the_device(env: Env, bridge: MqttBridge) -> None:
    dev = env.device()
    device = env.connect(dev)
    assert device.subscribe(*p.device_subscriptions(dev)) == [True, True, True]
    command = p.Command(name="restart_pipeline", args={"why": "test"})
    bridge.publish_command(dev, "req-1", command, timeout=TIMEOUT)
    block = bytes(range(256)) * 4
    bridge.publish_ota_block(dev, SHA, 1024, block, timeout=TIMEOUT)
    assert p.decode(p.Command, device.expect(p.cmd_topic(dev, "req-1")).payload) == command
    assert device.expect(p.ota_data_topic(dev, SHA, 1024)).payload == block


def test_publishing_while_not_connected_raises_and_queues_nothing(env: Env, recorder: Recorder) -> None:
    b = env.bridge(recorder)
    with pytest.raises(BridgeError, match="not connected"):
        b.publish_desired(env.device(), p.TwinDesired(revision=1))


def test_the_share_group_is_configurable_and_validated(recorder: Recorder) -> None:
    b = MqttBridge("mqtt://127.0.0.1:1", recorder, share_group="fleet-b")
    assert f"$share/fleet-b/{p.TOPIC_ROOT}/+/telemetry" in b.subscriptions()
    assert MqttBridge("mqtt://127.0.0.1:1", recorder).subscriptions() == p.server_subscriptions(shared=True)
    plain = MqttBridge("mqtt://127.0.0.1:1", recorder, shared_telemetry=False).subscriptions()
    assert plain == p.server_subscriptions(shared=False)
    for bad in ("", "a/b", "+", "#"):
        with pytest.raises(BridgeError, match="share group"):
            MqttBridge("mqtt://127.0.0.1:1", recorder, share_group=bad)


def test_bad_urls_are_refused(recorder: Recorder) -> None:
    assert MqttBridge("mqtts://broker.local:8884", recorder).broker == BrokerUrl(True, "broker.local", 8884)
    assert MqttBridge("mqtt://127.0.0.1", recorder).broker == BrokerUrl(False, "127.0.0.1", 1883)
    for bad in ("http://x:1", "mqtt://", "127.0.0.1:1883", "mqtt://host:99999"):
        with pytest.raises(BridgeError):
            MqttBridge(bad, recorder)


# --------------------------------------------------------------------------------------------- connection
def test_a_refused_login_never_counts_as_connected(embedded_broker: tuple, recorder: Recorder) -> None:
    broker, _, _ = embedded_broker
    b = MqttBridge(broker.url, recorder, username="server", password="wrong", client_id="edgefleet-server-x")
    b.start()
    try:
        wait_for(lambda: b.last_error is not None, what="the broker's refusal")
        assert "Not authorized" in b.last_error
        assert not b.connected and not b.wait_connected(0)
    finally:
        b.stop()


def test_bridge_started_before_the_broker_connects_when_it_comes_up(recorder: Recorder) -> None:
    port, password = services.free_port(), "pw"
    creds = StaticCredentials("server", password)
    b = MqttBridge(f"mqtt://127.0.0.1:{port}", recorder, username="server", password=password)
    b.start()
    try:
        wait_for(lambda: b.last_error is not None, what="a failed first connect")
        assert "cannot reach" in b.last_error and not b.connected
        with BrokerThread(port=port, checker=creds):
            assert b.wait_connected(TIMEOUT * 2)
            assert b.last_error is None
    finally:
        b.stop()


def _survives_restart(env: Env, recorder: Recorder, restart: Callable[[MqttBridge], None]) -> None:
    b = env.bridge(recorder, shared_telemetry=False)
    b.start()
    try:
        assert b.wait_connected(TIMEOUT)
        restart(b)
        assert b.wait_connected(TIMEOUT * 3)
        dev = env.device()
        env.connect(dev).publish(p.events_topic(dev), _event(6).encode())
        recorder.wait_for("event", dev)  # resubscribed after the restart
    finally:
        b.stop()


def test_bridge_reconnects_and_resubscribes_after_the_embedded_broker_restarts(recorder: Recorder) -> None:
    creds = StaticCredentials("server", "pw")
    brokers = [BrokerThread(port=0, checker=creds).start()]
    env = Env("embedded", brokers[0].port, creds, "pw")

    def restart(bridge: MqttBridge) -> None:
        brokers[-1].stop()
        wait_for(lambda: not bridge.connected, what="the bridge to notice the broker is gone")
        brokers.append(BrokerThread(port=env.port, checker=creds).start())

    try:
        _survives_restart(env, recorder, restart)
    finally:
        env.close()
        brokers[-1].stop()


def test_on_connected_is_called_once_per_connection_after_the_subscriptions(recorder: Recorder) -> None:
    """The app republishes desired twins from this callback, so it must come after every reconnect, and only
    once the bridge is subscribed (a reply to what it publishes there must not be missed)."""
    creds = StaticCredentials("server", "pw")
    broker = BrokerThread(port=0, checker=creds).start()
    port = broker.port
    seen: list[tuple[bool, bool]] = []
    b = MqttBridge(f"mqtt://127.0.0.1:{port}", recorder, username="server", password="pw", shared_telemetry=False,
                   on_connected=lambda: seen.append((b.connected, b.wait_connected(0))))
    b.start()
    try:
        wait_for(lambda: len(seen) == 1, what="the first on_connected")
        broker.stop()
        wait_for(lambda: not b.connected, what="the bridge to notice the broker is gone")
        assert len(seen) == 1
        broker = BrokerThread(port=port, checker=creds).start()
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
        device.publish(p.events_topic(dev), _event(7).encode())
        assert recorder.wait_for("event", dev)[-1] == _event(7)
        device.close()
        stranger = Peer(mosquitto.port, dev, tls=tls_context(ca.cert_path, other_cert, other_key))
        with pytest.raises(ssl.SSLError, match="unknown ca"):
            stranger.connect()
        stranger.close()
    finally:
        b.stop()


def test_a_retained_message_on_a_topic_devices_may_not_retain_is_cleared_and_counted(
        env: Env, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    device.publish(p.telemetry_topic(dev), p.Telemetry(device_id=dev).encode(), retain=True)
    device.publish(p.status_topic(dev), p.Status(state="online").encode(), retain=True)  # allowed
    late = env.bridge(recorder)  # a server that connects later is offered the retained messages
    late.start()
    try:
        assert late.wait_connected(TIMEOUT)
        recorder.wait_for("status", dev)
        wait_for(lambda: late.refused["retained"] >= 1, what="the retained telemetry refused")
        assert not [c for c in recorder.of(dev) if c[0] == "telemetry"]
        def cleared() -> bool:  # a new subscriber is offered the retained status but no telemetry any more
            probe = Peer(env.port, f"probe-{secrets.token_hex(3)}",
                         *(("server", env.server_password) if env.creds else (None, None)))
            try:
                assert not probe.connect().is_failure
                probe.subscribe(p.telemetry_topic(dev), p.status_topic(dev))  # retained come in this order
                probe.expect(p.status_topic(dev))
                return p.telemetry_topic(dev) not in probe.topics()
            finally:
                probe.close()

        wait_for(cleared, what="the retained telemetry cleared on the broker")
    finally:
        late.stop()


def test_a_device_over_its_message_rate_is_cut_off_while_others_still_get_through(
        env: Env, recorder: Recorder) -> None:
    from fleet_server.mqtt_limits import DeviceRateLimiter

    noisy, quiet = env.device("noisy"), env.device("quiet")
    bridge = env.bridge(recorder, shared_telemetry=False, limiter=DeviceRateLimiter(rate=1.0, burst=5))
    bridge.start()
    try:
        assert bridge.wait_connected(TIMEOUT)
        flood = env.connect(noisy)
        for i in range(40):
            flood.publish(p.events_topic(noisy), _event(i).encode())
        wait_for(lambda: bridge.refused["rate_limited"] >= 30, what="the flood refused")
        env.connect(quiet).publish(p.events_topic(quiet), _event(1).encode())
        recorder.wait_for("event", quiet)
        assert len([c for c in recorder.of(noisy) if c[0] == "event"]) <= 7
    finally:
        bridge.stop()
