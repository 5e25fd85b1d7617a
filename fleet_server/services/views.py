"""Turning rows into API views (the one place `in_sync` is computed for a device)."""

from __future__ import annotations

from fleet_server.db.models import Device
from fleet_server.schemas import DeviceView
from fleet_server.services.twin import desired_of, in_sync, reported_of


def device_view(device: Device) -> DeviceView:
    return DeviceView(
        id=device.id, name=device.name, tags=device.tags or {}, status=device.status,
        online=device.active and device.status == "online", agent_version=device.agent_version,
        last_seen=device.last_seen, enrolled_at=device.enrolled_at, decommissioned_at=device.decommissioned_at,
        desired=device.desired, desired_revision=device.desired_revision, reported=device.reported,
        reported_at=device.reported_at, in_sync=in_sync(desired_of(device.desired), reported_of(device.reported)),
        hardware=device.hardware or {}, cert_serial=device.cert_serial,
    )
