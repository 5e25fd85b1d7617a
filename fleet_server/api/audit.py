"""The audit log (viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fleet_server.api.deps import SessionDep, ViewerKey
from fleet_server.schemas import AuditView
from fleet_server.services import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditView])
def list_audit(session: SessionDep, _key: ViewerKey, action: str | None = None, target: str | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditView]:
    """Newest first."""
    return [AuditView.model_validate(e) for e in audit.entries(session, action=action, target=target, limit=limit)]
