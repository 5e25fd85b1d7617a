"""Every change is written here in the same transaction as the change itself, so neither exists without the other.
Details are stored with URL credentials masked (services.redaction): the log is for reading, by anyone who may."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server.db.models import AuditEntry
from fleet_server.services.redaction import redact


def record(session: Session, *, actor: str, action: str, target: str | None = None,
           details: dict[str, Any] | None = None) -> AuditEntry:
    entry = AuditEntry(ts=datetime.now(timezone.utc), actor=actor, action=action, target=target,
                       details=redact(details or {}))
    session.add(entry)
    return entry


def entries(session: Session, *, action: str | None = None, target: str | None = None,
            limit: int = 100) -> list[AuditEntry]:
    """Newest first."""
    q = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        q = q.where(AuditEntry.action == action)
    if target:
        q = q.where(AuditEntry.target == target)
    return list(session.scalars(q))
