"""A client that uses a device's client id without the device's password changes nothing on the broker.

amqtt 0.12.1 on its own fails both cases (see fleet_server/broker/guarded.py): a refused resume of a
persistent session left the session marked connected with a dead handler, so messages queued for the
device were lost; a refused clean-session CONNECT deleted the device's subscriptions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgefleet import protocol as p
from tests.fleet_server.broker.conftest import Fleet, subscriptions_of
from tests.waiting import wait_for


def _queued(read: Callable, device: str) -> int:
    def count(broker) -> int:  # noqa: ANN001 - amqtt Broker
        session = broker._broker.sessions.get(device, (None, None))[0]  # noqa: SLF001
        return -1 if session is None else session.retained_messages.qsize()
    return read(count)


def _state(read: Callable, device: str) -> str | None:
    def state(broker) -> str | None:  # noqa: ANN001
        session = broker._broker.sessions.get(device, (None, None))[0]  # noqa: SLF001
        return None if session is None else session.transitions.state
    return read(state)


@pytest.mark.parametrize("impostor_password", [None, "guessed-wrong"])
def test_impostor_resuming_a_persistent_session_gets_nothing_and_loses_nothing(
        fleet: Fleet, broker_state: Callable, impostor_password: str | None) -> None:
    b = fleet.device("b")
    device = fleet.as_device(b, clean=False)
    device.subscribe(*p.device_subscriptions(b))
    device.close()
    wait_for(lambda: _state(broker_state, b) == "disconnected", what="the device's session to go offline")
    server = fleet.as_server()
    server.publish(p.cmd_topic(b, "before"), b"queued before")
    wait_for(lambda: _queued(broker_state, b) == 1, what="the command to be queued")

    user = b if impostor_password else None
    impostor = fleet.peer(b, user, impostor_password, clean=False)
    assert impostor.connect().is_failure
    assert impostor.session_present is False
    assert impostor.topics() == []

    # the session is still offline and still queues for the device
    assert _state(broker_state, b) == "disconnected"
    server.publish(p.cmd_topic(b, "after"), b"queued after")
    wait_for(lambda: _queued(broker_state, b) == 2, what="the second command to be queued")

    back = fleet.as_device(b, clean=False)
    assert back.session_present is True
    assert back.expect(p.cmd_topic(b, "before")).payload == b"queued before"
    assert back.expect(p.cmd_topic(b, "after")).payload == b"queued after"


@pytest.mark.parametrize("clean", [True, False])
def test_refused_impostor_neither_kicks_the_device_nor_removes_its_subscriptions(
        fleet: Fleet, broker_state: Callable, clean: bool) -> None:
    a, b = fleet.device("a"), fleet.device("b")
    device = fleet.as_device(b, clean=False)
    device.subscribe(*p.device_subscriptions(b))
    before = broker_state(lambda broker: subscriptions_of(broker, b))
    assert before == sorted(p.device_subscriptions(b))

    assert fleet.peer(b, b, "guessed-wrong", clean=clean).connect().is_failure
    assert fleet.peer(b, clean=clean).connect().is_failure
    assert fleet.peer(b, a, fleet.passwords[a], clean=clean).connect().is_failure  # A's own login, B's id

    assert broker_state(lambda broker: subscriptions_of(broker, b)) == before
    server = fleet.as_server()
    server.publish(p.cmd_topic(b, "r1"), b"still reaches the device")
    assert device.expect(p.cmd_topic(b, "r1")).payload == b"still reaches the device"
    assert device.disconnects == 0


def test_decommissioned_device_cannot_reconnect(fleet: Fleet) -> None:
    c = fleet.device("c")
    device = fleet.as_device(c)
    device.close()
    fleet.creds.revoke(c)
    assert fleet.peer(c, c, fleet.passwords[c]).connect().is_failure


def test_device_decommissioned_while_connected_is_dropped_and_its_will_goes_out(
        fleet: Fleet, broker_state: Callable) -> None:
    c = fleet.device("c")
    server = fleet.as_server()
    server.subscribe(p.status_topic(c))
    device = fleet.as_device(c, clean=False, will=(p.status_topic(c), b"offline"))
    device.subscribe(*p.device_subscriptions(c))

    fleet.creds.revoke(c)
    assert fleet.broker.disconnect(c) is True
    device.wait_disconnected()
    assert server.expect(p.status_topic(c)).payload == b"offline"
    assert broker_state(lambda broker: subscriptions_of(broker, c)) == []  # its stored session is gone
    assert fleet.peer(c, c, fleet.passwords[c], clean=False).connect().is_failure
    assert fleet.broker.disconnect(c) is False  # unknown now
