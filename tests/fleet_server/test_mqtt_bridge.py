"""The server's MQTT bridge against BOTH brokers: the embedded nats-server (server logs in with its password)
and the real Mosquitto (plain and anonymous): what it receives, what it sends, and the limits it keeps. Devices
are real MQTT clients with ids of this run; what they leave retained on the machine's shared Mosquitto is
cleared by the session sweep (tests/conftest.py)."""

from __future__ import annotations

import secrets

import pytest

from edgefleet import protocol as p
from edgefleet.mqtt import BrokerUrl
from fleet_server.mqtt_bridge import BridgeError, MqttBridge
from tests.fleet_server.bridge_env import Env, Recorder, bridge, embedded_broker, env, event, recorder  # noqa: F401
from tests.fleet_server.mqtt_device import opened
from tests.fleet_server.nats_logins import SERVER_USER
from tests.mqtt_client import TIMEOUT, Peer, unique_id
from tests.waiting import wait_for

SHA = "a" * 64


# --------------------------------------------------------------------------------------------- receiving
def test_device_messages_reach_the_handler_decoded(env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    sent = {
        "status": (p.status_topic(dev), p.Status(state="online", agent_version="1.2.3")),
        "reported": (p.twin_reported_topic(dev), p.TwinReported(desired_revision=4, backend="onnxruntime", slot="A")),
        "telemetry": (p.telemetry_topic(dev), p.Telemetry(device_id=dev, fps=12.5, frames_inferred=100)),
        "event": (p.events_topic(dev), event(1)),
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
    device.publish(p.events_topic(dev), event(2).encode())
    assert recorder.wait_for("event", dev)[-1] == event(2)
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
        rogue.publish(bad, event(1).encode())
        rogue.publish(p.events_topic(dev), event(3).encode())
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
    device.publish(p.events_topic(dev), event(4).encode())
    recorder.wait_for("event", dev)
    assert bridge.handler_errors >= 1
    assert bridge.connected


def test_a_cleared_retained_message_is_ignored_silently(env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    device.publish(p.status_topic(dev), p.Status(state="online").encode(), retain=True)
    device.publish(p.status_topic(dev), b"", retain=True)
    device.publish(p.events_topic(dev), event(5).encode())
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
    assert got.retain and p.decode(p.TwinDesired, opened(got.topic, got.payload, bridge.signer.public_key)) == desired
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
    sealed = device.expect(p.cmd_topic(dev, "req-1"))
    assert p.decode(p.Command, opened(sealed.topic, sealed.payload, bridge.signer.public_key)) == command
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
                         *((SERVER_USER, env.server_password) if env.creds else (None, None)))
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
            flood.publish(p.events_topic(noisy), event(i).encode())
        wait_for(lambda: bridge.refused["rate_limited"] >= 30, what="the flood refused")
        env.connect(quiet).publish(p.events_topic(quiet), event(1).encode())
        recorder.wait_for("event", quiet)
        assert len([c for c in recorder.of(noisy) if c[0] == "event"]) <= 7
    finally:
        bridge.stop()


def test_a_sweep_finds_retained_messages_published_while_the_bridge_was_connected(
        env: Env, bridge: MqttBridge, recorder: Recorder) -> None:
    dev = env.device()
    device = env.connect(dev)
    device.publish(p.events_topic(dev), event(9).encode(), retain=True)  # arrives live, without its retain flag
    recorder.wait_for("event", dev)
    before = bridge.refused["retained"]
    assert bridge.sweep_retained()
    wait_for(lambda: bridge.refused["retained"] > before, what="the retained event found by the sweep")

    def cleared() -> bool:  # a new subscriber is offered nothing retained on the topic any more
        probe = Peer(env.port, f"probe-{secrets.token_hex(3)}",
                     *((SERVER_USER, env.server_password) if env.creds else (None, None)))
        try:
            assert not probe.connect().is_failure
            probe.subscribe(p.events_topic(dev))
            probe.sync(p.events_topic(dev))
            return not [m for m in probe.on(p.events_topic(dev)) if m.payload.startswith(b"{")]
        finally:
            probe.close()

    wait_for(cleared, what="the retained event cleared on the broker")


def test_a_burst_of_retained_messages_then_an_immediate_disconnect_keeps_them_all(env: Env) -> None:
    """Every retained message the broker PUBACKed is kept, even when the publisher leaves at once (amqtt kept
    121 of 200): the server's desired twins for 200 devices, as a republish after a reconnect sends them."""
    run = unique_id("r")
    devices = [f"{run}-{i:03d}" for i in range(200)]  # no logins needed: only the server publishes
    server = Peer(env.port, f"srv-{secrets.token_hex(3)}",
                  *((SERVER_USER, env.server_password) if env.creds else (None, None)))
    assert not server.connect().is_failure
    infos = [server.client.publish(p.twin_desired_topic(d), p.TwinDesired(revision=i + 1).encode(), qos=1,
                                   retain=True) for i, d in enumerate(devices)]
    for info in infos:
        info.wait_for_publish(TIMEOUT)
    server.client.disconnect()  # at once
    server.client.loop_stop()
    reader = Peer(env.port, f"reader-{secrets.token_hex(3)}",
                  *((SERVER_USER, env.server_password) if env.creds else (None, None)))
    try:
        assert not reader.connect().is_failure
        reader.subscribe(f"{p.TOPIC_ROOT}/+/twin/desired")
        wanted = {p.twin_desired_topic(d) for d in devices}
        kept = reader.wait_for(lambda ms: len({m.topic for m in ms if m.payload} & wanted) >= 200 and ms,
                               what="200 retained desired twins")
        assert {m.topic for m in kept if m.payload} & wanted == wanted
        reader.clear_retained(*[p.twin_desired_topic(d) for d in devices])
    finally:
        reader.close()
