"""Each device stays inside its own `edgefleet/v1/{id}/` subtree, in the directions protocol v1 gives it.

"Not delivered" is proven without sleeping: after the forbidden message, a permitted one follows from the
same client; nats-server keeps a client's order, so once the permitted one arrives the forbidden one would
have arrived before it.
"""

from __future__ import annotations

import socket

from edgefleet import protocol as p
from tests.fleet_server.nats.conftest import NatsFleet

SHA = "ab" * 32


def test_device_publishes_its_own_uplink_topics_and_the_server_receives_them(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    server = nats_fleet.as_server()
    assert server.subscribe(*p.server_subscriptions(shared=False)) == [True] * 6
    device = nats_fleet.as_device(a)
    uplink = [p.status_topic(a), p.telemetry_topic(a), p.events_topic(a), p.twin_reported_topic(a),
              p.cmd_reply_topic(a, "r1"), p.ota_get_topic(a)]
    for topic in uplink:
        device.publish(topic, b"{}")
    for topic in uplink:
        server.expect(topic)
    assert sorted(server.topics()) == sorted(uplink)


def test_device_subscribes_its_own_downlink_and_receives_at_qos1(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    device = nats_fleet.as_device(a)
    assert device.subscribe(*p.device_subscriptions(a)) == [True, True, True]
    server = nats_fleet.as_server()
    downlink = [p.twin_desired_topic(a), p.cmd_topic(a, "r1"), p.ota_data_topic(a, SHA, 0)]
    for topic in downlink:
        server.publish(topic, b"x" * 10)
    for topic in downlink:
        device.expect(topic)
    assert device.topics() == downlink


def test_device_cannot_subscribe_outside_its_downlink(nats_fleet: NatsFleet) -> None:
    a, b = nats_fleet.device("a"), nats_fleet.device("b")
    device = nats_fleet.as_device(a)
    refused = [p.twin_desired_topic(b), p.cmd_topic(b, "r1"), f"{p.TOPIC_ROOT}/+/twin/desired", "#",
               f"{p.TOPIC_ROOT}/#", f"{p.TOPIC_ROOT}/{a}/#",  # its own subtree, but both directions
               p.status_topic(a), p.telemetry_topic(a), p.twin_reported_topic(a), p.cmd_reply_topic(a, "r1"),
               p.ota_get_topic(a), "$MQTT/sub/#", "$MQTT/msgs/#", "$MQTT/rmsgs/#", "$MQTT/sess/#", "$SYS/#"]
    assert device.subscribe(*refused) == [False] * len(refused)
    assert device.client.is_connected()


def test_device_publishes_outside_its_uplink_are_not_delivered(nats_fleet: NatsFleet) -> None:
    a, b = nats_fleet.device("a"), nats_fleet.device("b")
    watcher = nats_fleet.as_server()
    assert watcher.subscribe(f"{p.TOPIC_ROOT}/#") == [True]
    peer_b = nats_fleet.as_device(b)
    assert peer_b.subscribe(*p.device_subscriptions(b)) == [True, True, True]
    device = nats_fleet.as_device(a)
    forged = [p.twin_desired_topic(a), p.cmd_topic(a, "r1"), p.ota_data_topic(a, SHA, 0),  # its downlink
              p.twin_desired_topic(b), p.cmd_topic(b, "r1"), p.status_topic(b), p.telemetry_topic(b),
              f"$MQTT/msgs/{p.cmd_topic(b, 'r2')}"]
    for topic in forged:
        device.publish(topic, b"forged")
    device.publish(p.status_topic(a), b"a is online")
    watcher.expect(p.status_topic(a))
    assert watcher.topics() == [p.status_topic(a)]
    assert peer_b.topics() == []
    assert device.client.is_connected()  # dropped silently, as with Mosquitto's ACL


def test_wrong_or_missing_password_and_unknown_user_are_refused(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    attempts = [(a, "wrong-password"), (a, ""), ("not-enrolled", nats_fleet.passwords[a]),
                ("edgefleet-server", nats_fleet.passwords[a])]
    for username, password in attempts:
        peer = nats_fleet.peer(f"c-{len(nats_fleet.peers)}", username, password)
        assert peer.connect().is_failure
    anonymous = nats_fleet.peer("anon")
    assert anonymous.connect().is_failure
    assert nats_fleet.as_device(a).client.is_connected()


def test_restricted_device_keeps_a_persistent_qos1_session(nats_fleet: NatsFleet) -> None:
    """QoS 1 subscriptions of a persistent session live in JetStream; the device's allow-list grants no
    `$MQTT.` subject, and messages queued while it was away still reach it."""
    a = nats_fleet.device("a")
    device = nats_fleet.as_device(a, clean=False)
    assert device.subscribe(p.device_subscriptions(a)[1]) == [True]
    device.close()
    nats_fleet.as_server().publish(p.cmd_topic(a, "queued"), b"while away")
    again = nats_fleet.as_device(a, clean=False)
    assert again.session_present
    assert again.expect(p.cmd_topic(a, "queued")).payload == b"while away"


def test_device_cannot_use_the_nats_client_port(nats_fleet: NatsFleet) -> None:
    """Device users are MQTT-only: the (loopback) NATS port would otherwise accept their passwords too."""
    a = nats_fleet.device("a")
    with socket.create_connection(("127.0.0.1", nats_fleet.broker.client_port), timeout=10) as sock:
        sock.recv(4096)  # INFO
        connect = f'CONNECT {{"user":"{a}","pass":"{nats_fleet.passwords[a]}","verbose":true}}\r\nPING\r\n'
        sock.sendall(connect.encode())
        answer = sock.recv(4096).decode()
    assert "-ERR 'Authorization Violation'" in answer
