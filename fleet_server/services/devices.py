"""The device inventory: listing, looking up, decommissioning, and recording what devices say over MQTT."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgefleet.protocol import Status, Telemetry, TwinReported
from fleet_server.db.locking import get_for_update
from fleet_server.db.models import Device, RevokedCert, TelemetryRow
from fleet_server.errors import Conflict, NotFound
from fleet_server.services import audit


def _now() -> datetime:
    return datetime.now(timezone.utc)


def get_device(session: Session, device_id: str, *, for_update: bool = False) -> Device:
    """The device or NotFound. `for_update` locks its row for a read-modify-write (fleet_server.db.locking)."""
    device = (get_for_update(session, Device, Device.id, device_id, Device.desired_revision) if for_update
              else session.get(Device, device_id))
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    return device


def list_devices(session: Session, *, tags: dict[str, str] | None = None,
                 include_decommissioned: bool = False) -> list[Device]:
    """Devices ordered by id; `tags` keeps those carrying every given key=value (filtered in Python so the
    same code works on SQLite's and PostgreSQL's JSON)."""
    q = sa.select(Device).order_by(Device.id)
    if not include_decommissioned:
        q = q.where(Device.decommissioned_at.is_(None))
    devices = list(session.scalars(q))
    if tags:
        devices = [d for d in devices if all((d.tags or {}).get(k) == v for k, v in tags.items())]
    return devices


def count_online(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Device).where(
        Device.status == "online", Device.decommissioned_at.is_(None))) or 0


def decommission(session: Session, device_id: str, *, actor: str) -> Device:
    """Revoke the device's MQTT password and certificate; keep the row (marked decommissioned) for history.
    The caller then rewrites the CRL and clears the retained desired twin."""
    device = get_device(session, device_id, for_update=True)
    if not device.active:
        raise Conflict(f"device {device_id} was already decommissioned at {device.decommissioned_at}")
    now = _now()
    device.decommissioned_at = now
    device.mqtt_password_hash = None
    device.mqtt_password_bcrypt = None
    device.status = "decommissioned"
    if device.cert_serial:
        session.add(RevokedCert(serial=device.cert_serial, device_id=device_id, revoked_at=now))
    audit.record(session, actor=actor, action="device.decommission", target=device_id,
                 details={"cert_serial": device.cert_serial})
    session.flush()
    return device


def broker_logins(session: Session) -> list[tuple[str, str]]:
    """(device id, bcrypt hash) of every active device that can log in to the embedded broker."""
    q = (sa.select(Device.id, Device.mqtt_password_bcrypt)
         .where(Device.decommissioned_at.is_(None), Device.mqtt_password_bcrypt.is_not(None)).order_by(Device.id))
    return [(device_id, hashed) for device_id, hashed in session.execute(q)]


def revoked_serials(session: Session) -> list[tuple[str, datetime]]:
    return [(r.serial, r.revoked_at) for r in session.scalars(sa.select(RevokedCert).order_by(RevokedCert.revoked_at))]


# ----------------------------------------------------------------------------- from MQTT


def _active(session: Session, device_id: str) -> Device | None:
    device = session.get(Device, device_id)
    return device if device is not None and device.active else None


def record_status(session: Session, device_id: str, status: Status) -> bool:
    """Online/offline from the retained status or the Last Will. False (and nothing stored) for a device
    that is unknown or decommissioned: anyone can publish on an anonymous broker."""
    device = _active(session, device_id)
    if device is None:
        return False
    device.status = status.state
    if status.agent_version:
        device.agent_version = status.agent_version[:64]
    # The status is retained: after a server restart it is replayed, possibly hours old. Trust its own
    # timestamp (never past now, in case the device's clock runs ahead) and never move last_seen backwards.
    seen = min(_now(), status.ts)
    if device.last_seen is None or seen > device.last_seen:
        device.last_seen = seen
    return True


def record_reported(session: Session, device_id: str, reported: TwinReported) -> bool:
    device = _active(session, device_id)
    if device is None:
        return False
    device.reported = reported.model_dump(mode="json")
    device.reported_at = _now()
    device.last_seen = device.reported_at
    return True


def record_telemetry(session: Session, device_id: str, telemetry: Telemetry) -> bool:
    device = _active(session, device_id)
    if device is None or telemetry.device_id != device_id:
        return False
    payload: dict[str, Any] = telemetry.model_dump(mode="json")
    session.add(TelemetryRow(device_id=device_id, ts=telemetry.ts, payload=payload))
    device.last_seen = _now()
    if device.last_telemetry_at is None or telemetry.ts >= device.last_telemetry_at:  # an outbox replay is older
        device.last_telemetry, device.last_telemetry_at = payload, telemetry.ts
    return True


def recent_telemetry(session: Session, device_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first: what the device last said about itself (fps, latency, counters)."""
    get_device(session, device_id)  # 404 for an unknown device, not an empty list
    rows = session.scalars(
        sa.select(TelemetryRow).where(TelemetryRow.device_id == device_id)
        .order_by(TelemetryRow.ts.desc(), TelemetryRow.id.desc()).limit(limit)
    )
    return [row.payload for row in rows]


def touch(session: Session, device_id: str) -> bool:
    device = _active(session, device_id)
    if device is None:
        return False
    device.last_seen = _now()
    return True
