"""`set_devices` rewrites the users file and reloads nats-server, and returns only once the reload is live:
a device added can log in at once, a device removed (or whose password changed) loses its connection."""

from __future__ import annotations

import os
import secrets
import stat
import threading
from pathlib import Path

import pytest

from edgefleet import protocol as p
from fleet_server.nats import NatsBroker, NatsError, bcrypt_hash
from tests.mqtt_client import unique_id
from tests.fleet_server.nats.conftest import NatsFleet

# The brief for this broker: a removed device is cut off within 2 s of set_devices returning.
CUT_OFF_S = 2.0


def test_device_added_by_set_devices_connects_right_after_it_returns(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.add("a")
    assert nats_fleet.peer("before", a, nats_fleet.passwords[a]).connect().is_failure
    nats_fleet.apply()
    # one attempt, no retry: the reload is applied when set_devices returns
    assert not nats_fleet.peer(a, a, nats_fleet.passwords[a]).connect().is_failure


def test_device_removed_by_set_devices_loses_its_live_connection(nats_fleet: NatsFleet) -> None:
    a, b = nats_fleet.device("a"), nats_fleet.device("b")
    peer_a, peer_b = nats_fleet.as_device(a), nats_fleet.as_device(b)
    gone = threading.Event()
    peer_a.client.on_disconnect = lambda *_args: gone.set()
    del nats_fleet.passwords[a]
    nats_fleet.apply()
    assert gone.wait(CUT_OFF_S)
    assert nats_fleet.peer("again", a, "whatever").connect().is_failure
    assert peer_b.client.is_connected()
    peer_b.publish(p.status_topic(b), b"still here")  # and still authorised


def test_changed_password_cuts_the_old_login(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    old = nats_fleet.passwords[a]
    peer = nats_fleet.as_device(a)
    gone = threading.Event()
    peer.client.on_disconnect = lambda *_args: gone.set()
    nats_fleet.passwords[a] = secrets.token_urlsafe(32)
    nats_fleet.apply()
    assert gone.wait(CUT_OFF_S)
    assert nats_fleet.peer("old", a, old).connect().is_failure
    assert not nats_fleet.peer("new", a, nats_fleet.passwords[a]).connect().is_failure


def test_users_file_is_private_and_holds_only_bcrypt_hashes(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    users = nats_fleet.broker.log_path.parent / "users.conf"
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    text = users.read_text()
    assert nats_fleet.passwords[a] not in text and nats_fleet.server_password not in text
    assert text.count('password: "$2b$04$') == 2


def test_set_devices_refuses_a_non_bcrypt_hash_and_keeps_the_old_users(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    with pytest.raises(ValueError):
        nats_fleet.broker.set_devices([(a, "sha256:" + "0" * 64)])
    assert not nats_fleet.peer(a, a, nats_fleet.passwords[a]).connect().is_failure


def test_devices_set_before_start_can_log_in_once_started(nats_binary: Path, tmp_path: Path) -> None:
    device, password = unique_id("early"), secrets.token_urlsafe(32)
    broker = NatsBroker(tmp_path / "nats", mqtt_port=0, server_password="s", binary=nats_binary)
    broker.set_devices([(device, bcrypt_hash(password))])
    broker.start()
    try:
        fleet = NatsFleet(broker, "s", {device: password})
        fleet.as_device(device).close()
    finally:
        broker.stop()
    with pytest.raises(NatsError):
        _ = NatsBroker(tmp_path / "other", mqtt_port=0, server_password="s").mqtt_port
