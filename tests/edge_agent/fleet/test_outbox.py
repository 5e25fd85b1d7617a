"""The offline outbox: in-order, at-least-once delivery across broker outages and agent restarts, bounded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edgefleet import protocol
from edgefleet.protocol import Event
from edge_agent.fleet.outbox import EVENT, TELEMETRY, Outbox
from tests import services
from tests.edge_agent.conftest import FleetProbe, make_config, write_state
from tests.waiting import wait_for


@pytest.fixture()
def broker(tmp_path: Path, private_mosquitto: Callable[..., services.Mosquitto]) -> services.Mosquitto:
    """A private Mosquitto this test may stop and restart (the shared one must stay up for everyone)."""
    work = tmp_path / "mosquitto"
    return private_mosquitto(services.plain_mosquitto_config(persistence_dir=work), work)


def _events(probe: FleetProbe) -> list[dict]:
    topic = protocol.events_topic(probe.device_id)
    return [json.loads(m.payload) for m in probe.on(topic)]


def test_messages_produced_during_an_outage_arrive_in_order_after_it(broker, tmp_path):
    from edge_agent.fleet.sim import SimulatedDevice

    config = make_config(broker.port, telemetry_interval_s=3600)
    write_state(tmp_path / "dev", config)
    dev = SimulatedDevice(config, tmp_path / "dev").start()
    assert dev.wait_ready()
    broker.stop()
    wait_for(lambda: not dev.link.connected.is_set(), 15, "the agent to notice the broker is gone")
    for i in range(30):
        dev.emit_event(Event(kind="camera", message=f"offline-{i}"))
    dev.publish_telemetry()
    assert dev.outbox.depth >= 31
    broker.start()
    probe = FleetProbe(config.device_id, broker.port)
    try:
        probe.wait_for(lambda ms: len([e for e in _events(probe) if e["message"].startswith("offline-")]) == 30,
                       timeout=40, what="the 30 queued events")
        seen = [e["message"] for e in _events(probe) if e["message"].startswith("offline-")]
        assert seen == [f"offline-{i}" for i in range(30)]
        probe.last(protocol.telemetry_topic(config.device_id))
        wait_for(lambda: dev.outbox.depth == 0, 10, "an empty outbox")
    finally:
        dev.stop()
        probe.close()


def test_outbox_survives_an_agent_restart(broker, tmp_path):
    from edge_agent.fleet.sim import SimulatedDevice

    config = make_config(broker.port, telemetry_interval_s=3600)
    write_state(tmp_path / "dev", config)
    broker.stop()
    dev = SimulatedDevice(config, tmp_path / "dev").start()  # starts while the broker is down
    for i in range(5):
        dev.emit_event(Event(kind="camera", message=f"before-restart-{i}"))
    dev.stop()
    broker.start()
    probe = FleetProbe(config.device_id, broker.port)
    again = SimulatedDevice(config, tmp_path / "dev").start()
    try:
        probe.wait_for(lambda ms: len([e for e in _events(probe) if e["message"].startswith("before-")]) == 5,
                       timeout=20, what="events queued before the restart")
        seen = [e["message"] for e in _events(probe) if e["message"].startswith("before-")]
        assert seen == [f"before-restart-{i}" for i in range(5)]
    finally:
        again.stop()
        probe.close()


def test_bound_drops_oldest_telemetry_first_and_counts_it(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_messages=10)
    try:
        box.enqueue(EVENT, "t/e", b"event-0")
        for i in range(12):
            box.enqueue(TELEMETRY, "t/t", f"tel-{i}".encode())
        kept = [m.payload.decode() for m in box.pending()]
        assert box.depth == 10 and box.dropped == 3
        assert kept == ["event-0"] + [f"tel-{i}" for i in range(3, 12)]
        for i in range(12):
            box.enqueue(EVENT, "t/e", f"ev-{i + 1}".encode())  # only events left to drop: oldest first
        assert box.depth == 10 and box.dropped == 3 + 12 + 1 - 1
        assert [m.payload.decode() for m in box.pending()][-1] == "ev-12"
    finally:
        box.close()
    reopened = Outbox(tmp_path / "o.sqlite", max_messages=10)
    try:
        assert reopened.dropped == 15 and reopened.depth == 10  # counters and contents persist
    finally:
        reopened.close()


def test_dropped_messages_are_reported_in_telemetry_and_an_outbox_event(mosquitto_port, tmp_path):
    from edge_agent.fleet.sim import SimulatedDevice

    config = make_config(mosquitto_port, telemetry_interval_s=3600, outbox_max_messages=10)
    write_state(tmp_path / "dev", config)
    dev = SimulatedDevice(config, tmp_path / "dev")
    dev.init_outbox()
    for i in range(15):  # produced while nothing delivers
        old = protocol.Telemetry(device_id=config.device_id, frames_captured=i)
        dev.outbox.enqueue(TELEMETRY, protocol.telemetry_topic(config.device_id), old.encode())
    dev.outbox.close()
    probe = FleetProbe(config.device_id, mosquitto_port)
    dev = SimulatedDevice(config, tmp_path / "dev", event_min_interval_s=3600).start()
    try:
        assert dev.wait_ready()
        snapshot = dev.publish_telemetry()
        assert snapshot.outbox_dropped >= 5  # the 5 above, plus any the running device has pushed out since
        outbox_event = probe.last(protocol.events_topic(config.device_id), lambda d: d["kind"] == "outbox")
        assert outbox_event["data"]["dropped_total"] >= 5
        telemetry = probe.last(protocol.telemetry_topic(config.device_id), lambda d: d["outbox_dropped"] >= 5)
        assert telemetry["outbox_dropped"] == snapshot.outbox_dropped
    finally:
        dev.stop()
        probe.close()


def test_unknown_kind_is_refused(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    try:
        with pytest.raises(ValueError, match="unknown outbox kind"):
            box.enqueue("gossip", "t", b"x")
        assert box.depth == 0
    finally:
        box.close()
