"""Enrollment tokens: create (operator), list (viewer)."""

from __future__ import annotations

from fastapi import APIRouter

from fleet_server.api.deps import FleetDep, OperatorKey, SessionDep, ViewerKey
from fleet_server.api.errors import responses
from fleet_server.schemas import TokenCreate, TokenCreated, TokenInfo
from fleet_server.services import apikeys, tokens

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=responses(401, 403, 413))


@router.post("", response_model=TokenCreated, status_code=201, responses=responses(400, 422))
def create_token(body: TokenCreate, session: SessionDep, fleet: FleetDep, key: OperatorKey) -> TokenCreated:
    """A new enrollment token; its secret is in this reply only."""
    ttl_s = body.ttl_s or fleet.settings.token_default_ttl_s
    row, plaintext = tokens.create_token(session, actor=apikeys.actor_of(key), ttl_s=ttl_s, uses=body.uses,
                                         tags=body.tags)
    session.commit()
    return TokenCreated(**TokenInfo.model_validate(row).model_dump(), token=plaintext)


@router.get("", response_model=list[TokenInfo])
def list_tokens(session: SessionDep, _key: ViewerKey) -> list[TokenInfo]:
    return [TokenInfo.model_validate(t) for t in tokens.list_tokens(session)]
