"""The supervisor around the real binary: clear errors when nats-server cannot start, restarts after a crash
(bounded), and a leftover nats-server of a dead fleet server is replaced rather than fought with."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from fleet_server.nats import NatsBroker, NatsError
from fleet_server.nats.config import NatsConfig, write_config
from fleet_server.nats.users import bcrypt_hash, write_users_file
from tests.fleet_server.nats.conftest import NatsFleet
from tests.waiting import wait_for


def test_start_fails_clearly_when_the_mqtt_port_is_taken(nats_binary: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = NatsBroker(tmp_path / "nats", mqtt_port=taken.getsockname()[1], server_password="s",
                            binary=nats_binary)
        with pytest.raises(NatsError, match="address already in use"):
            broker.start()
    assert not broker.running and broker.pid is None


def test_crash_is_restarted_on_the_same_port_then_the_restart_budget_runs_out(nats_binary: Path,
                                                                              tmp_path: Path) -> None:
    broker = NatsBroker(tmp_path / "nats", mqtt_port=0, server_password="s", binary=nats_binary,
                        max_restarts=1).start()
    try:
        port, first = broker.mqtt_port, broker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: broker.running and broker.pid != first, 30, "the restart")
        assert (broker.mqtt_port, broker.restarts, broker.failure) == (port, 1, None)
        second = broker.pid
        assert second is not None
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: broker.failure is not None, 30, "the supervisor to give up")
        assert not broker.running and broker.restarts == 1
        assert "not restarting it again" in str(broker.failure)
    finally:
        broker.stop()


def test_set_devices_restarts_a_broker_that_died_under_it(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    os.kill(nats_fleet.broker.pid or 0, signal.SIGKILL)
    b = nats_fleet.device("b")  # whether set_devices or the watcher restarts it, b is live on return
    assert nats_fleet.broker.running
    for device in (a, b):
        nats_fleet.as_device(device)


def test_leftover_broker_of_a_dead_server_is_replaced(nats_binary: Path, tmp_path: Path) -> None:
    cfg = NatsConfig((tmp_path / "nats").resolve(), mqtt_port=0)
    write_config(cfg)
    write_users_file(cfg.users_path, bcrypt_hash("s"), [])
    orphan = subprocess.Popen([str(nats_binary), "-c", str(cfg.config_path)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: cfg.pid_path.exists() and cfg.pid_path.read_text().strip() == str(orphan.pid),
                 30, "the orphan's pid file")
        broker = NatsBroker(tmp_path / "nats", mqtt_port=0, server_password="s", binary=nats_binary).start()
        try:
            assert orphan.wait(timeout=30) == 0  # stopped with SIGTERM, not killed
            assert broker.running and broker.pid != orphan.pid
        finally:
            broker.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_stop_twice_and_start_again(nats_fleet: NatsFleet) -> None:
    a = nats_fleet.device("a")
    nats_fleet.broker.stop()
    nats_fleet.broker.stop()
    assert not nats_fleet.broker.running
    nats_fleet.broker.start()
    nats_fleet.as_device(a)
    with pytest.raises(NatsError, match="already started"):
        nats_fleet.broker.start()
