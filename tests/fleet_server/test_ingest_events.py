"""What ingest tells the rest of the server about telemetry and status: the snapshot counters (stored, late,
ignored) and the events on the hub (only for what was stored), and that a broken listener costs nothing but a
log line."""

from __future__ import annotations

from datetime import timedelta

from edgefleet.protocol import Status, Telemetry, utcnow
from fleet_server.db import Database
from fleet_server.events import EventHub, HubEvent
from fleet_server.ingest import Ingest
from fleet_server.metrics import FleetMetrics
from tests.fleet_server.services.rollout_env import add_device


def _count(metrics: FleetMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_snapshots_are_counted_and_announced_and_a_failing_listener_stops_nothing(db: Database) -> None:
    add_device(db, "cam-1", model=None)
    events, metrics, heard = EventHub(), FleetMetrics(), []

    def broken(event: HubEvent) -> None:
        raise RuntimeError("a listener bug")

    events.listen(broken)
    stop = events.listen(heard.append)
    ingest = Ingest(db, metrics, events=events, late_after_s=60)

    ingest.on_status("cam-1", Status(state="online"))
    ingest.on_telemetry("cam-1", Telemetry(device_id="cam-1", fps=9.0))
    ingest.on_telemetry("cam-1", Telemetry(device_id="cam-1", ts=utcnow() - timedelta(minutes=5), fps=8.0))
    ingest.on_telemetry("ghost", Telemetry(device_id="ghost", fps=1.0))

    assert _count(metrics, "edgefleet_telemetry_snapshots_total", result="stored") == 2
    assert _count(metrics, "edgefleet_telemetry_snapshots_total", result="ignored") == 1
    assert _count(metrics, "edgefleet_telemetry_late_snapshots_total") == 1
    assert [(e.kind, e.data["device_id"]) for e in heard] == [
        ("device.status", "cam-1"), ("device.telemetry", "cam-1"), ("device.telemetry", "cam-1")]
    assert heard[0].data["status"]["state"] == "online" and heard[1].data["telemetry"]["fps"] == 9.0

    stop()
    ingest.on_telemetry("cam-1", Telemetry(device_id="cam-1", fps=7.0))
    assert len(heard) == 3 and _count(metrics, "edgefleet_telemetry_snapshots_total", result="stored") == 3
