"""Turning rows into API views (the one place `in_sync` is computed for a device). `reveal=False` masks
credentials in camera URLs (services.redaction) for callers that may only read; `in_sync` is computed from
the real values first, so masking never changes it."""

from __future__ import annotations

from typing import Any

from fleet_server.db.models import Device
from fleet_server.schemas import DeviceView
from fleet_server.services.redaction import redact
from fleet_server.services.twin import desired_of, in_sync, reported_of


def shown(value: Any, reveal: bool) -> Any:
    return value if reveal or value is None else redact(value)


def device_view(device: Device, *, reveal: bool = True) -> DeviceView:
    return DeviceView(
        id=device.id, name=device.name, tags=device.tags or {}, status=device.status,
        online=device.active and device.status == "online", agent_version=device.agent_version,
        last_seen=device.last_seen, enrolled_at=device.enrolled_at, decommissioned_at=device.decommissioned_at,
        desired=shown(device.desired, reveal), desired_revision=device.desired_revision,
        reported=shown(device.reported, reveal), reported_at=device.reported_at,
        in_sync=in_sync(desired_of(device.desired), reported_of(device.reported)),
        hardware=shown(device.hardware or {}, reveal), cert_serial=device.cert_serial,
    )
