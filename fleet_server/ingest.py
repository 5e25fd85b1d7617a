"""What the server does with messages from devices: the `BridgeHandler` the MQTT bridge calls.

Callbacks run on the MQTT client's thread; each opens its own short transaction. A message from an unknown
or decommissioned device is counted and dropped; a database error is logged and never reaches the bridge.
Block requests (`ota/get`) go to the `OtaServer` when one is set (fleet_server.ota), which answers off this thread.
Stored telemetry and status changes are announced on `events` (fleet_server.events) once committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from edgefleet.protocol import CommandReply, Event, OtaGet, Status, Telemetry, TwinReported, utcnow
from fleet_server.db import Database
from fleet_server.events import FleetEvent, FleetEvents
from fleet_server.metrics import FleetMetrics
from fleet_server.services import devices
from fleet_server.services.redaction import redact

if TYPE_CHECKING:
    from fleet_server.ota import OtaServer

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, db: Database, metrics: FleetMetrics, ota: "OtaServer | None" = None, *,
                 events: FleetEvents | None = None, late_after_s: float = 60.0) -> None:
        self.db, self.metrics, self.ota = db, metrics, ota
        self.events = events or FleetEvents()
        self.late_after = timedelta(seconds=late_after_s)

    def _apply(self, kind: str, device_id: str, fn: Callable[..., bool], *args: object) -> bool | None:
        """True when stored, False for an unknown device, None when storing failed."""
        self.metrics.messages_in.labels(kind).inc()
        try:
            with self.db.session() as session:
                known = fn(session, device_id, *args)
        except Exception:  # noqa: BLE001 - a failing message must not kill the MQTT thread
            log.exception("storing %s from %s failed", kind, device_id)
            return None
        if not known:
            self.metrics.ignored.labels(kind).inc()
            log.info("ignored %s from unknown or decommissioned device %s", kind, device_id)
        return known

    def on_status(self, device_id: str, status: Status) -> None:
        if self._apply("status", device_id, devices.record_status, status):
            self.events.publish(FleetEvent("status", device_id, {"state": status.state, "ts": status.ts.isoformat()}))

    def on_reported(self, device_id: str, reported: TwinReported) -> None:
        self._apply("reported", device_id, devices.record_reported, reported)

    def on_telemetry(self, device_id: str, telemetry: Telemetry) -> None:
        stored = self._apply("telemetry", device_id, devices.record_telemetry, telemetry)
        if stored is None:
            return
        self.metrics.telemetry.labels("stored" if stored else "ignored").inc()
        if stored:
            if utcnow() - telemetry.ts > self.late_after:
                self.metrics.telemetry_late.inc()
            self.events.publish(FleetEvent("telemetry", device_id, redact(telemetry.model_dump(mode="json"))))

    def on_event(self, device_id: str, event: Event) -> None:
        self._apply("event", device_id, devices.touch)

    def on_command_reply(self, device_id: str, request_id: str, reply: CommandReply) -> None:
        self._apply("command_reply", device_id, devices.touch)

    def on_ota_get(self, device_id: str, request: OtaGet) -> None:
        """Hand the request to the OtaServer (it only counts and queues here). No database write: a download asks
        for a block every few milliseconds, on this thread, and the device's telemetry keeps `last_seen` fresh."""
        self.metrics.messages_in.labels("ota_get").inc()
        if self.ota is not None:
            self.ota.handle(device_id, request)
