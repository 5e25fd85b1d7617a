"""Devices on the embedded broker stay inside their own `edgefleet/v1/{id}/` subtree; the server sees all.

"Receives nothing" is proven without sleeping: after the forbidden message, a permitted one follows on
the same path; the broker keeps order, so once the permitted one arrives the forbidden one would have too.
"""

from __future__ import annotations

from edgefleet import protocol as p
from tests.fleet_server.broker.conftest import Fleet


def test_device_cannot_subscribe_to_another_device_or_across_devices(fleet: Fleet) -> None:
    a, b = fleet.device("a"), fleet.device("b")
    peer = fleet.as_device(a)
    granted = peer.subscribe(p.twin_desired_topic(b), f"{p.TOPIC_ROOT}/+/telemetry", f"{p.TOPIC_ROOT}/#", "#",
                             f"{p.TOPIC_ROOT}/{b}/#", p.twin_desired_topic(a), *p.device_subscriptions(a))
    assert granted == [False, False, False, False, False, True, True, True, True]


def test_device_receives_nothing_of_another_device(fleet: Fleet) -> None:
    a, b = fleet.device("a"), fleet.device("b")
    peer_a = fleet.as_device(a)
    peer_a.subscribe(p.twin_desired_topic(b), f"{p.TOPIC_ROOT}/+/status")  # refused, as above
    peer_a.subscribe(p.twin_desired_topic(a))
    peer_b = fleet.as_device(b)
    server = fleet.as_server()
    server.subscribe(p.status_topic(b))
    server.publish(p.twin_desired_topic(b), b"for b")
    peer_b.publish(p.status_topic(b), b"b is online")
    server.expect(p.status_topic(b))  # B's message has been broadcast by now
    server.publish(p.twin_desired_topic(a), b"for a")
    assert peer_a.expect(p.twin_desired_topic(a)).payload == b"for a"
    assert peer_a.topics() == [p.twin_desired_topic(a)]


def test_device_cannot_publish_into_another_device(fleet: Fleet) -> None:
    a, b = fleet.device("a"), fleet.device("b")
    peer_b = fleet.as_device(b)
    assert peer_b.subscribe(*p.device_subscriptions(b)) == [True, True, True]
    server = fleet.as_server()
    assert server.subscribe(f"{p.TOPIC_ROOT}/#") == [True]
    peer_a = fleet.as_device(a)
    peer_a.publish(p.twin_desired_topic(b), b"forged desired state")
    peer_a.publish(p.cmd_topic(b, "r1"), b"forged command")
    peer_a.publish(p.status_topic(b), b"forged status")
    peer_a.publish(p.status_topic(a), b"a is online")
    server.expect(p.status_topic(a))
    assert server.topics() == [p.status_topic(a)]
    assert peer_b.topics() == []
    assert peer_a.client.is_connected()  # dropped silently, like Mosquitto's ACL


def test_server_identity_sees_and_reaches_every_device(fleet: Fleet) -> None:
    a, b = fleet.device("a"), fleet.device("b")
    server = fleet.as_server()
    assert server.subscribe(*p.server_subscriptions(shared=False)) == [True] * 6
    peers = {d: fleet.as_device(d) for d in (a, b)}
    for device, peer in peers.items():
        peer.subscribe(*p.device_subscriptions(device))
        peer.publish(p.telemetry_topic(device), b"{}", qos=0)
        peer.publish(p.events_topic(device), b"{}")
        server.expect(p.telemetry_topic(device))
        server.expect(p.events_topic(device))
        server.publish(p.cmd_topic(device, "r9"), b"cmd")
        assert peer.expect(p.cmd_topic(device, "r9")).payload == b"cmd"


def test_anonymous_and_wrong_password_logins_are_refused(fleet: Fleet) -> None:
    a = fleet.device("a")
    assert fleet.peer(a).connect().is_failure
    assert fleet.peer(a, a, "not-the-password").connect().is_failure
    assert fleet.peer(a, "server", "not-the-password").connect().is_failure
    assert fleet.peer("someone", "nobody", "x").connect().is_failure
    assert not fleet.peer(a, a, fleet.passwords[a]).connect().is_failure


def test_client_id_must_equal_the_device_username(fleet: Fleet) -> None:
    a, b = fleet.device("a"), fleet.device("b")
    reason = fleet.peer(b, a, fleet.passwords[a]).connect()
    assert reason.is_failure and reason.getName() == "Not authorized"
    assert fleet.peer(f"{a}-2", a, fleet.passwords[a]).connect().is_failure


def test_device_cannot_leave_a_last_will_on_another_devices_topic(fleet: Fleet) -> None:
    """amqtt publishes a Last Will without asking the topic plug-in, so the will topic is checked at login."""
    a, b = fleet.device("a"), fleet.device("b")
    forged = fleet.peer(a, a, fleet.passwords[a], will=(p.status_topic(b), b"forged offline"))
    assert forged.connect().is_failure
    own = fleet.peer(a, a, fleet.passwords[a], will=(p.status_topic(a), b"offline"))
    assert not own.connect().is_failure


def test_a_connecting_device_gets_no_retained_message_of_another_device(fleet: Fleet) -> None:
    """amqtt 0.12.1 sends, at every CONNECT, the retained messages of every filter ANY client holds (the
    server's `edgefleet/v1/+/status` included) without asking the topic plug-in; GuardedBroker does not."""
    a, b = fleet.device("a"), fleet.device("b")
    server = fleet.as_server()
    server.subscribe(f"{p.TOPIC_ROOT}/+/status", f"{p.TOPIC_ROOT}/+/twin/reported")
    peer_a = fleet.as_device(a)
    peer_a.publish(p.status_topic(a), b"a is online", retain=True)
    peer_a.publish(p.twin_reported_topic(a), b"a reports", retain=True)
    server.expect(p.twin_reported_topic(a))  # both are retained in the broker by now
    server.publish(p.twin_desired_topic(b), b"for b", retain=True)
    peer_b = fleet.peer(b, b, fleet.passwords[b], clean=False)
    assert not peer_b.connect().is_failure
    peer_b.subscribe(*p.device_subscriptions(b))
    assert peer_b.expect(p.twin_desired_topic(b)).payload == b"for b"  # its own retained twin does arrive
    peer_b.close()
    again = fleet.peer(b, b, fleet.passwords[b], clean=False)  # a persistent session's reconnect
    assert not again.connect().is_failure
    assert again.expect(p.twin_desired_topic(b)).payload == b"for b"
    server.publish(p.cmd_topic(b, "after"), b"marker")
    again.expect(p.cmd_topic(b, "after"))
    assert set(again.topics()) == {p.twin_desired_topic(b), p.cmd_topic(b, "after")}
    assert peer_b.topics() == [p.twin_desired_topic(b)]
    for topic in (p.status_topic(a), p.twin_reported_topic(a), p.twin_desired_topic(b)):
        server.publish(topic, b"", retain=True)  # clear what this test retained
