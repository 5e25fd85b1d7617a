"""The audit log (viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edgefleet.protocol.enrollment import PRINTABLE
from fleet_server.api.deps import SessionDep, ViewerKey
from fleet_server.api.errors import responses
from fleet_server.schemas import AuditView
from fleet_server.services import audit
from fleet_server.services.redaction import redact

router = APIRouter(prefix="/audit", tags=["audit"], responses=responses(401, 403, 413))


@router.get("", response_model=list[AuditView], responses=responses(422))
def list_audit(session: SessionDep, _key: ViewerKey,
               action: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
               target: Annotated[str | None, Query(max_length=128, pattern=PRINTABLE)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditView]:
    """Newest first. Details are masked again on the way out, for entries written before masking existed."""
    views = [AuditView.model_validate(e) for e in audit.entries(session, action=action, target=target, limit=limit)]
    return [v.model_copy(update={"details": redact(v.details)}) for v in views]
