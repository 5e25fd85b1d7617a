"""Remote commands in the database: created (and audited with the caller) by the API, moved along by the
dispatcher (fleet_server.command_dispatch) as they are sent, answered, time out or expire.

States: `queued` -> `sent` -> `succeeded` | `failed` | `timed_out`, or `queued` -> `expired`. Each change is a
conditional update from the state it expects, so the reply handler, a caller that stopped waiting and the sweeper
can race without one undoing another: whoever moves a command first wins, the others change nothing.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgefleet.protocol import CommandReply
from fleet_server.db.models import CommandRow, Device
from fleet_server.errors import Conflict, NotFound
from fleet_server.services import audit
from fleet_server.services.devices import get_device

OfflinePolicy = Literal["fail", "queue"]
FINAL = ("succeeded", "failed", "expired", "timed_out")


class DeviceOffline(Conflict):
    """The device is offline and the caller asked not to queue the command."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_request_id() -> str:
    """Random, so a device cannot guess another's ids, and within the protocol's request id alphabet."""
    return secrets.token_hex(16)


def create(session: Session, device_id: str, *, name: str, args: dict[str, Any], caller: str, timeout_s: float,
           offline: OfflinePolicy, expires_s: int) -> tuple[CommandRow, bool]:
    """Store a command (state `queued`) and audit it; (row, whether the device is online now). An offline device
    with ``offline="fail"`` raises DeviceOffline and nothing is stored."""
    device = get_device(session, device_id)
    if not device.active:
        raise Conflict(f"device {device_id} is decommissioned; it cannot receive commands")
    online = device.status == "online"
    if not online and offline == "fail":
        seen = device.last_seen.isoformat() if device.last_seen else "never"
        raise DeviceOffline(f"device {device_id} is offline (last seen {seen}); send with offline=queue to deliver "
                            f"it when the device comes back")
    now = _now()
    row = CommandRow(id=new_request_id(), device_id=device_id, name=name, args=args, caller=caller, state="queued",
                     timeout_s=timeout_s, expires_at=now + timedelta(seconds=expires_s), created_at=now)
    session.add(row)
    audit.record(session, actor=caller, action="command.send", target=device_id,
                 details={"request_id": row.id, "name": name, "args": args, "online": online, "offline": offline})
    session.flush()
    return row, online


def _move(session: Session, request_id: str, from_states: tuple[str, ...], **values: Any) -> bool:
    result = session.execute(sa.update(CommandRow).where(CommandRow.id == request_id,
                                                         CommandRow.state.in_(from_states)).values(**values))
    return result.rowcount == 1


def mark_sent(session: Session, request_id: str, deadline: datetime) -> bool:
    return _move(session, request_id, ("queued",), state="sent", sent_at=_now(), deadline=deadline)


def requeue(session: Session, request_id: str) -> bool:
    """A claimed command whose publish failed goes back to the queue."""
    return _move(session, request_id, ("sent",), state="queued", sent_at=None, deadline=None)


def mark_unsent(session: Session, request_id: str, error: str) -> bool:
    """A command that could not be handed to the broker and will not be retried."""
    return _move(session, request_id, ("queued",), state="failed", error=error[:1000], finished_at=_now())


def record_reply(session: Session, device_id: str, request_id: str, reply: CommandReply) -> bool:
    """The device's reply. After a time-out it is still kept (the state says the caller stopped waiting); a
    second copy of a reply (QoS 1 redelivery) changes nothing; a reply from another device is ignored."""
    row = session.get(CommandRow, request_id)
    if row is None or row.device_id != device_id:
        return False
    stored = reply.model_dump(mode="json", exclude={"v"})
    if row.state == "timed_out" and row.reply is None:
        return _move(session, request_id, ("timed_out",), reply=stored)
    state = "succeeded" if reply.ok else "failed"
    return _move(session, request_id, ("sent", "queued"), state=state, reply=stored,
                 error=None if reply.ok else (reply.error or "the device answered ok=false")[:1000],
                 finished_at=_now())


def mark_timed_out(session: Session, request_id: str, error: str) -> bool:
    return _move(session, request_id, ("sent",), state="timed_out", error=error[:1000], finished_at=_now())


def expire_queued(session: Session, now: datetime) -> int:
    """Queued commands past their expiry: never sent, never to be."""
    result = session.execute(sa.update(CommandRow).where(CommandRow.state == "queued", CommandRow.expires_at <= now)
                             .values(state="expired", finished_at=now,
                                     error="the device did not come online before the command expired"))
    return result.rowcount or 0


def overdue(session: Session, now: datetime, grace_s: float) -> list[str]:
    """Sent commands whose deadline passed ``grace_s`` ago with no reply (after a server restart nobody waits)."""
    q = sa.select(CommandRow.id).where(CommandRow.state == "sent",
                                       CommandRow.deadline <= now - timedelta(seconds=grace_s))
    return list(session.scalars(q))


def deliverable(session: Session, now: datetime, limit: int = 100) -> list[CommandRow]:
    """Queued, unexpired commands of devices online now, oldest first."""
    q = (sa.select(CommandRow).join(Device, Device.id == CommandRow.device_id)
         .where(CommandRow.state == "queued", CommandRow.expires_at > now, Device.status == "online",
                Device.decommissioned_at.is_(None))
         .order_by(CommandRow.created_at).limit(limit))
    return list(session.scalars(q))


def get_command(session: Session, device_id: str, request_id: str) -> CommandRow:
    row = session.get(CommandRow, request_id)
    if row is None or row.device_id != device_id:
        get_device(session, device_id)  # an unknown device says so first
        raise NotFound(f"no command {request_id!r} for device {device_id}")
    return row


def list_commands(session: Session, device_id: str, *, state: str | None = None, limit: int = 50) -> list[CommandRow]:
    """Newest first."""
    get_device(session, device_id)
    q = sa.select(CommandRow).where(CommandRow.device_id == device_id)
    if state:
        q = q.where(CommandRow.state == state)
    return list(session.scalars(q.order_by(CommandRow.created_at.desc(), CommandRow.id).limit(limit)))
