"""The embedded broker as a component: where it binds, how it starts and stops, what it keeps."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from edgefleet import protocol as p
from fleet_server.broker.embedded import DEFAULT_PORT, BrokerError, EmbeddedBroker
from fleet_server.broker.thread import BrokerThread
from tests.fleet_server.broker.conftest import Fleet, subscriptions_of
from tests.fleet_server.broker.credentials import StaticCredentials
from tests.mqtt_client import Peer
from tests.services import free_port, port_open
from tests.waiting import wait_for

CREDS = StaticCredentials("server", "pw", {"dev-a": "pa"})


def _lan_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_default_port_is_not_mosquittos() -> None:
    assert DEFAULT_PORT == 18830


def test_port_zero_binds_a_free_port_on_loopback_and_reports_it() -> None:
    with BrokerThread(port=0, checker=CREDS) as broker:
        assert broker.port > 0
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert port_open(broker.port)
        lan = _lan_address()
        if lan is not None:
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex((lan, broker.port)) != 0  # not reachable from outside loopback
    assert not port_open(broker.port)


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BrokerError, match=f"127.0.0.1:{port}"):
            BrokerThread(port=port, checker=CREDS).start()


def test_a_checker_is_required() -> None:
    with pytest.raises(BrokerError, match="credential checker"):
        EmbeddedBroker("127.0.0.1", 0, None)


def test_runs_on_the_callers_event_loop() -> None:
    async def main() -> tuple[int, bool]:
        broker = EmbeddedBroker("127.0.0.1", 0, CREDS)
        await broker.start()
        try:
            peer = Peer(broker.port, "dev-a", "dev-a", "pa")
            reason = await asyncio.to_thread(peer.connect)
            await asyncio.to_thread(peer.close)
            return broker.port, reason.is_failure
        finally:
            await broker.stop()

    port, refused = asyncio.run(main())
    assert refused is False
    assert not port_open(port)


def test_shared_subscriptions_are_refused_because_amqtt_cannot_deliver_them(fleet: Fleet) -> None:
    server = fleet.as_server()
    assert server.subscribe(*p.server_subscriptions(shared=True)) == [True, False, True, True, True, True]


def test_a_refused_login_logs_one_line_with_the_reason_and_no_amqtt_noise(
        fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    a = fleet.device("a")
    with caplog.at_level(logging.DEBUG, logger="fleet_server"):
        assert fleet.peer(a, a, "wrong").connect().is_failure
        assert fleet.peer(a).connect().is_failure
    mine = [r for r in caplog.records if r.name == "fleet_server.broker.auth"]
    assert [r.levelno for r in mine] == [logging.INFO, logging.INFO]
    assert "bad credentials" in mine[0].getMessage() and "anonymous" in mine[1].getMessage()
    amqtt_loud = [r for r in caplog.records if r.name.startswith("amqtt") and r.levelno >= logging.WARNING]
    assert amqtt_loud == []


def test_retained_messages_survive_a_restart_with_persistence(tmp_path: Path) -> None:
    store, port = tmp_path / "retained.sqlite", free_port()
    status, desired = p.status_topic("dev-a"), p.twin_desired_topic("dev-a")
    with BrokerThread(port=port, checker=CREDS, persistence_path=store) as broker:
        server = Peer(broker.port, "srv", "server", "pw")
        server.connect()
        server.publish(desired, b"desired v1", retain=True)
        server.publish(status, b"online", retain=True)
        server.publish(status, b"", retain=True)  # cleared: must not come back
        server.publish(desired, b"desired v2", retain=True)
        server.close()
    with BrokerThread(port=port, checker=CREDS, persistence_path=store) as broker:
        device = Peer(broker.port, "dev-a", "dev-a", "pa")
        device.connect()
        device.subscribe(status)
        device.subscribe(desired)
        got = device.expect(desired)
        device.close()
    assert (got.payload, got.retain) == (b"desired v2", True)
    assert device.topics() == [desired]


def test_no_message_is_lost_while_other_clients_subscribe(fleet: Fleet) -> None:
    """amqtt 0.12.1 dropped a message for all remaining subscribers when the subscription table changed
    while it was being broadcast ("dictionary changed size during iteration")."""
    a, b = fleet.device("a"), fleet.device("b")
    server = fleet.as_server()
    server.subscribe(f"{p.TOPIC_ROOT}/+/events", p.events_topic(a))  # amqtt delivers once per matching filter
    publisher, subscriber = fleet.as_device(a), fleet.as_device(b)
    count = 300
    for n in range(count):
        publisher.client.publish(p.events_topic(a), str(n).encode(), qos=1)
        subscriber.client.subscribe(f"{p.TOPIC_ROOT}/{b}/x/{n}", 0)  # a new filter: the table grows
    wait_for(lambda: len(server.topics()) >= 2 * count, what="every event to reach the server twice")
    assert sorted(int(m.payload) for m in server.messages) == sorted(list(range(count)) * 2)


def test_an_offline_devices_stored_session_expires() -> None:
    creds = StaticCredentials("server", "pw", {"dev-e": "pe"})
    with BrokerThread(port=0, checker=creds, session_expiry_s=1) as broker:
        device = Peer(broker.port, "dev-e", "dev-e", "pe", clean=False)
        device.connect()
        device.subscribe(p.twin_desired_topic("dev-e"))
        device.close()
        wait_for(lambda: broker.call(subscriptions_of, broker.broker, "dev-e") == [],
                   what="the stored session to expire")
        again = Peer(broker.port, "dev-e", "dev-e", "pe", clean=False)
        again.connect()
        again.close()
    assert again.session_present is False
