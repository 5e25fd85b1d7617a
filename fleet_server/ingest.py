"""What the server does with messages from devices: the `BridgeHandler` the MQTT bridge calls.

Callbacks run on the MQTT client's thread; each opens its own short transaction. A message from an unknown
or decommissioned device is counted and dropped; a database error is logged and never reaches the bridge.
Block requests (`ota/get`) go to the `OtaServer` when one is set (fleet_server.ota), which answers off this thread;
command replies to the `CommandDispatcher` (fleet_server.command_dispatch), which stores them off this thread, and
a device coming online wakes it to send what was queued for the device.
Stored messages are announced on `events` (fleet_server.events) once committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from edgefleet.protocol import CommandReply, Event, OtaGet, Status, Telemetry, TwinReported, utcnow
from fleet_server.db import Database
from fleet_server.events import EventHub
from fleet_server.metrics import FleetMetrics
from fleet_server.services import devices

if TYPE_CHECKING:
    from fleet_server.command_dispatch import CommandDispatcher
    from fleet_server.ota import OtaServer

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, db: Database, metrics: FleetMetrics, ota: "OtaServer | None" = None, *,
                 commands: "CommandDispatcher | None" = None, events: EventHub | None = None,
                 late_after_s: float = 60.0) -> None:
        self.db, self.metrics, self.ota, self.events = db, metrics, ota, events or EventHub()
        self.commands = commands
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
        self.events.device_message(kind, device_id, args[0] if args else None)  # stored: show it live
        return known

    def on_status(self, device_id: str, status: Status) -> None:
        self._apply("status", device_id, devices.record_status, status)
        if status.state == "online" and self.commands is not None:
            self.commands.wake()

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

    def on_event(self, device_id: str, event: Event) -> None:
        self._apply("event", device_id, devices.touch)

    def on_command_reply(self, device_id: str, request_id: str, reply: CommandReply) -> None:
        known = self._apply("command_reply", device_id, devices.touch)
        if self.commands is not None:
            self.commands.on_reply(device_id, request_id, reply)
        if known:  # as for every other message: nothing from an unknown device reaches the live view
            self.events.publish("command.reply", {"device_id": device_id, "request_id": request_id,
                                                  "reply": reply.model_dump(mode="json")})

    def on_ota_get(self, device_id: str, request: OtaGet) -> None:
        """Hand the request to the OtaServer (it only counts and queues here). No database write: a download asks
        for a block every few milliseconds, on this thread, and the device's telemetry keeps `last_seen` fresh."""
        self.metrics.messages_in.labels("ota_get").inc()
        if self.ota is not None:
            self.ota.handle(device_id, request)
