"""What a broker must get right for the fleet, checked on nats-server: nothing PUBACKed is lost, retained messages
outlive the process, a second connection with the same client id replaces the first, the Last Will is
sent and retained, and a socket that never sends CONNECT is closed."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from edgefleet import protocol as p
from fleet_server.nats import NatsLimits
from tests.fleet_server.nats.conftest import NatsFleet
from tests.waiting import wait_for

BURST = 1000


def test_burst_pubacked_then_disconnect_reaches_the_server_whole(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    server = nats_fleet.as_server()
    assert server.subscribe(f"{p.TOPIC_ROOT}/+/telemetry") == [True]
    device = nats_fleet.as_device(a)
    device.publish_burst(p.telemetry_topic(a), [str(i).encode() for i in range(BURST)])
    device.drop()  # gone right after the last PUBACK, without DISCONNECT
    server.wait_messages(BURST)
    assert sorted(int(m.payload) for m in server.messages) == list(range(BURST))


def _restart_by_kill(nats_fleet: NatsFleet) -> None:
    """SIGKILL the process we started and wait for the supervisor to bring a new one up."""
    broker, old = nats_fleet.broker, nats_fleet.broker.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: broker.running and broker.pid != old, 30, "the supervisor to start a new nats-server")
    assert broker.running and broker.pid != old and broker.restarts == 1


@pytest.mark.parametrize("restart", ["stop-start", "kill"])
def test_retained_messages_survive_a_broker_restart(nats_fleet: NatsFleet, restart: str) -> None:
    a = nats_fleet.device("a")
    device = nats_fleet.as_device(a)
    device.publish(p.status_topic(a), b"online", retain=True)
    nats_fleet.as_server().publish(p.twin_desired_topic(a), b"desired", retain=True)
    port = nats_fleet.port
    if restart == "kill":
        _restart_by_kill(nats_fleet)
    else:
        nats_fleet.broker.stop()
        nats_fleet.broker.start()
    assert nats_fleet.port == port  # a port picked at first start is kept, so clients find the broker again
    for peer in nats_fleet.peers:
        peer.close()
    server = nats_fleet.as_server()
    server.subscribe(p.status_topic(a))
    assert (server.expect(p.status_topic(a)).payload, server.messages[0].retain) == (b"online", True)
    again = nats_fleet.as_device(a, client_id=f"{a}-2")
    again.subscribe(p.twin_desired_topic(a))
    assert again.expect(p.twin_desired_topic(a)).payload == b"desired"


def test_same_client_id_takes_over_and_disconnects_the_first(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    first = nats_fleet.as_device(a)
    second = nats_fleet.as_device(a)
    first.wait_disconnected()
    assert second.client.is_connected()
    second.subscribe(p.twin_desired_topic(a))
    nats_fleet.as_server().publish(p.twin_desired_topic(a), b"to the new one")
    assert second.expect(p.twin_desired_topic(a)).payload == b"to the new one"
    assert first.topics() == []


def test_last_will_fires_on_a_dropped_socket_and_is_retained(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    server = nats_fleet.as_server()
    server.subscribe(p.status_topic(a))
    will = p.Status(state="offline", reason="lost").encode()
    device = nats_fleet.as_device(a, will=(p.status_topic(a), will))
    device.publish(p.status_topic(a), b"online", retain=True)
    server.expect(p.status_topic(a))
    device.drop()
    server.wait_messages(2)
    assert server.messages[1].payload == will
    later = nats_fleet.as_server()
    later.subscribe(p.status_topic(a))
    assert (later.expect(p.status_topic(a)).payload, later.messages[0].retain) == (will, True)


@pytest.mark.parametrize("nats_limits", [NatsLimits(auth_timeout_s=1.0)])
@pytest.mark.parametrize("sent", [b"", b"\x10"], ids=["nothing", "half-a-connect"])
def test_socket_that_never_completes_connect_is_closed(nats_fleet: NatsFleet, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", nats_fleet.port), timeout=15) as sock:
        sock.sendall(sent)
        assert sock.recv(16) == b""  # EOF: nats-server closed it (a timeout here raises instead)
