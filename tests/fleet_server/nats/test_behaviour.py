"""How nats-server treats three things our protocol meets, recorded so a change of behaviour is noticed:
a device using another device's client id, the server's `$share/` subscription, and a device's retained
publish on a topic that the protocol does not retain."""

from __future__ import annotations

from edgefleet import protocol as p
from tests.fleet_server.nats.conftest import NatsFleet


def test_client_id_of_another_device_kicks_it_but_does_not_read_its_session(nats_fleet: NatsFleet) -> None:
    """nats-server keys sessions by client id alone, so B logging in with A's id replaces A's live
    connection (a device can knock another offline) and is told "session present". It does not get A's
    data: restoring A's subscriptions fails B's permission check, and A's queued messages wait for A."""
    a, b = nats_fleet.device("a"), nats_fleet.device("b")
    victim = nats_fleet.as_device(a, clean=False)
    assert victim.subscribe(p.device_subscriptions(a)[1]) == [True]
    victim.close()
    nats_fleet.as_server().publish(p.cmd_topic(a, "q1"), b"queued for a")
    impostor = nats_fleet.as_device(b, client_id=a, clean=False)
    assert impostor.session_present  # it resumes A's session record...
    impostor.subscribe(p.device_subscriptions(b)[1])  # a round trip: anything queued would have come first
    assert impostor.topics() == []  # ...but not A's subscriptions or messages
    impostor.close()
    back = nats_fleet.as_device(a, clean=False)
    assert back.expect(p.cmd_topic(a, "q1")).payload == b"queued for a"
    live = nats_fleet.as_device(a, client_id=f"{a}-live")
    nats_fleet.as_device(b, client_id=f"{a}-live")
    live.wait_disconnected()


def test_shared_subscription_is_refused_so_the_bridge_falls_back(nats_fleet: NatsFleet) -> None:
    """nats-server's MQTT has no `$share/`: the filter would be the literal subject `$share.fleet...`, which
    nothing publishes to. The server's allow-list does not cover it, so the SUBACK is 0x80 and the MQTT
    bridge subscribes to the plain filter instead (one server replica per broker)."""
    server = nats_fleet.as_server()
    shared = p.server_subscriptions(shared=True)
    assert server.subscribe(*shared) == [not f.startswith("$share/") for f in shared]


def test_device_may_retain_on_telemetry(nats_fleet: NatsFleet) -> None:
    """Permissions cannot say "no retain", so a device's retained telemetry is kept and replayed to each new
    subscriber with the retain flag: the server must treat a retained telemetry snapshot as a duplicate."""
    a = nats_fleet.device("a")
    nats_fleet.as_device(a).publish(p.telemetry_topic(a), b"stale snapshot", retain=True)
    server = nats_fleet.as_server()
    server.subscribe(f"{p.TOPIC_ROOT}/+/telemetry")
    got = server.expect(p.telemetry_topic(a))
    assert (got.payload, got.retain) == (b"stale snapshot", True)
