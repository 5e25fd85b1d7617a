"""`GET /whoami` (any valid key): which key this is and what it may do, so a client (the dashboard) can disable
what the key would be refused, and say why, instead of letting people find out by a 403."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fleet_server.api.deps import ViewerKey
from fleet_server.api.errors import responses
from fleet_server.schemas import Role
from fleet_server.services import apikeys

router = APIRouter(tags=["apikeys"], responses=responses(401, 403, 413))


class WhoAmI(BaseModel):
    id: int
    prefix: str
    name: str
    role: Role
    can_operate: bool = Field(description="operator or admin: may patch twins, send commands, run rollouts")
    can_admin: bool = Field(description="admin: may manage API keys and force rollouts")


@router.get("/whoami", response_model=WhoAmI)
def whoami(key: ViewerKey) -> WhoAmI:
    rank = apikeys.RANK[key.role]
    return WhoAmI(id=key.id, prefix=key.prefix, name=key.name, role=key.role,
                  can_operate=rank >= apikeys.RANK["operator"], can_admin=rank >= apikeys.RANK["admin"])
