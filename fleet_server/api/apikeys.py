"""API keys (admin only)."""

from __future__ import annotations

from fastapi import APIRouter

from fleet_server.api.deps import AdminKey, SessionDep
from fleet_server.api.errors import responses
from fleet_server.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyInfo
from fleet_server.services import apikeys

router = APIRouter(prefix="/apikeys", tags=["apikeys"], responses=responses(401, 403, 413))


@router.post("", response_model=ApiKeyCreated, status_code=201, responses=responses(400, 422))
def create_key(body: ApiKeyCreate, session: SessionDep, key: AdminKey) -> ApiKeyCreated:
    """A new key; its secret is in this reply only."""
    row, plaintext = apikeys.create_key(session, role=body.role, name=body.name, actor=apikeys.actor_of(key))
    session.commit()
    return ApiKeyCreated(**ApiKeyInfo.model_validate(row).model_dump(), key=plaintext)


@router.get("", response_model=list[ApiKeyInfo])
def list_keys(session: SessionDep, _key: AdminKey) -> list[ApiKeyInfo]:
    return [ApiKeyInfo.model_validate(k) for k in apikeys.list_keys(session)]


@router.delete("/{key_id}", response_model=ApiKeyInfo, responses=responses(404, 409, 422))
def revoke_key(key_id: int, session: SessionDep, key: AdminKey) -> ApiKeyInfo:
    row = apikeys.revoke_key(session, key_id, actor=apikeys.actor_of(key))
    session.commit()
    return ApiKeyInfo.model_validate(row)
